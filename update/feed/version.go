package feed

import (
	"strconv"
	"strings"
)

// Version is a parsed release version: MAJOR.MINOR.PATCH with an optional
// "v" prefix and "-prerelease" suffix (semantic versioning's order, without
// build metadata). A string that is not of that form (a development build's
// "dev" or a bare commit) parses as 0.0.0 with that string as prerelease, so
// it sorts below every release.
type Version struct {
	Major, Minor, Patch int
	Pre                 string
	ok                  bool
}

// ParseVersion parses s; it never fails (see Version).
func ParseVersion(s string) Version {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexByte(t, '+'); i >= 0 {
		t = t[:i]
	}
	core, pre, _ := strings.Cut(t, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{Pre: s}
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p == "" {
			return Version{Pre: s}
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2], Pre: pre, ok: true}
}

// Valid reports whether the string was a release version.
func (v Version) Valid() bool { return v.ok }

// CompareVersions returns -1, 0 or +1 as a is older than, equal to or
// newer than b.
func CompareVersions(a, b string) int {
	va, vb := ParseVersion(a), ParseVersion(b)
	if va.ok != vb.ok {
		if va.ok {
			return 1
		}
		return -1
	}
	for _, d := range [3]int{va.Major - vb.Major, va.Minor - vb.Minor, va.Patch - vb.Patch} {
		if d != 0 {
			if d < 0 {
				return -1
			}
			return 1
		}
	}
	return comparePre(va.Pre, vb.Pre)
}

// comparePre orders prereleases as semantic versioning does: none is
// newer than any; dot-separated identifiers compare numerically when both
// are numbers, else as strings.
func comparePre(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" {
		return 1
	}
	if b == "" {
		return -1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, xerr := strconv.Atoi(as[i])
		y, yerr := strconv.Atoi(bs[i])
		switch {
		case xerr == nil && yerr == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case xerr == nil:
			return -1
		case yerr == nil:
			return 1
		default:
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}
