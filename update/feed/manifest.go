package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// File names inside a feed directory.
const (
	ManifestFile  = "manifest.json"
	SignatureExt  = ".minisig"
	ManifestSig   = ManifestFile + SignatureExt
	manifestFmt   = 1
	maxPercent    = 100
	artifactStem  = "falconet-agent"
	maxManifestSz = 4 << 20
)

// Manifest is a feed's signed index of releases.
type Manifest struct {
	// Format is the manifest format version (1).
	Format int `json:"format"`
	// Serial grows with every signed change. An agent refuses a manifest
	// whose serial is lower than one it has seen (a replayed old manifest
	// must not undo a halt).
	Serial int64 `json:"serial"`
	// Updated is when the manifest was last signed.
	Updated time.Time `json:"updated"`
	// Releases in publishing order, newest last.
	Releases []Release `json:"releases"`
}

// Release is one version of the agent.
type Release struct {
	Version   string    `json:"version"`
	Published time.Time `json:"published"`
	// Percent of agents (0-100) that take this release (see Eligible).
	Percent int `json:"percent"`
	// Halted releases are taken by nobody, and agents running one return
	// to the version they ran before.
	Halted bool `json:"halted,omitempty"`
	// Rollback allows agents on a newer version to move to this one.
	Rollback bool `json:"rollback,omitempty"`
	// MinVersion, if set: only agents running at least this version take
	// the release.
	MinVersion string `json:"min_version,omitempty"`
	Notes      string `json:"notes,omitempty"`
	// Artifacts by platform, "linux/amd64".
	Artifacts map[string]Artifact `json:"artifacts"`
}

// Artifact is one binary of a release.
type Artifact struct {
	// Path relative to the feed directory.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Signature is the minisign signature text of the binary (also in
	// Path + ".minisig").
	Signature string `json:"signature"`
}

// ErrBadManifest is wrapped by every manifest format problem.
var ErrBadManifest = errors.New("feed: bad manifest")

// ParseManifest decodes and checks a manifest's structure (not its
// signature: see VerifyManifest).
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if m.Format != manifestFmt {
		return nil, fmt.Errorf("%w: format %d, want %d", ErrBadManifest, m.Format, manifestFmt)
	}
	seen := map[string]bool{}
	for i, r := range m.Releases {
		if !ParseVersion(r.Version).Valid() {
			return nil, fmt.Errorf("%w: releases[%d].version %q is not MAJOR.MINOR.PATCH", ErrBadManifest, i, r.Version)
		}
		if seen[r.Version] {
			return nil, fmt.Errorf("%w: releases[%d].version %q appears twice", ErrBadManifest, i, r.Version)
		}
		seen[r.Version] = true
		if r.Percent < 0 || r.Percent > maxPercent {
			return nil, fmt.Errorf("%w: releases[%d].percent %d: want 0-100", ErrBadManifest, i, r.Percent)
		}
		for p, a := range r.Artifacts {
			if a.Size <= 0 || len(a.SHA256) != 64 || a.Path == "" || a.Signature == "" {
				return nil, fmt.Errorf("%w: releases[%d].artifacts[%s]: path, size, sha256 and signature are required", ErrBadManifest, i, p)
			}
		}
	}
	return &m, nil
}

// Marshal encodes the manifest (indented, newline-terminated).
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// VerifyManifest checks the manifest's signature against the keyring and
// parses it.
func VerifyManifest(data, sig []byte, kr Keyring) (*Manifest, error) {
	if _, err := kr.Verify(data, sig); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return ParseManifest(data)
}

// Find returns the release with this version, or nil.
func (m *Manifest) Find(version string) *Release {
	for i := range m.Releases {
		if m.Releases[i].Version == version {
			return &m.Releases[i]
		}
	}
	return nil
}

// Latest returns the newest release that is not halted, or nil.
func (m *Manifest) Latest() *Release {
	for i := len(m.Releases) - 1; i >= 0; i-- {
		if !m.Releases[i].Halted {
			return &m.Releases[i]
		}
	}
	return nil
}

// Platform is "os/arch".
func Platform(goos, goarch string) string { return goos + "/" + goarch }

// ArtifactPath is where publish puts a release's binary for a platform.
func ArtifactPath(version, goos, goarch string) string {
	return version + "/" + artifactStem + "-" + goos + "-" + goarch
}
