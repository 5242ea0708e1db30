package memtrim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseBinary unmaps the resident pages of this process's executable
// segments that are read-only and hold no private copies, and returns the
// size of the ranges advised.
func ReleaseBinary() (uint64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	regions, err := ReadOnlyRegions(f, exe)
	_ = f.Close()
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, r := range regions {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(r.Start), uintptr(r.Len()), syscall.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %x-%x: %w", r.Start, r.End, errno)
		}
		total += r.Len()
	}
	return total, nil
}

// ReadOnlyRegions reads smaps (the format of /proc/PID/smaps) and returns
// the mappings of file path that are private, not writable, and hold no
// anonymous (private, copied-on-write) pages.
func ReadOnlyRegions(smaps io.Reader, path string) ([]Region, error) {
	var (
		out  []Region
		cur  Region
		keep bool
	)
	flush := func() {
		if keep {
			out = append(out, cur)
		}
		keep = false
	}
	sc := bufio.NewScanner(smaps)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fs[0], "-"); ok && len(fs) >= 5 && !strings.HasSuffix(fs[0], ":") {
			flush()
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				return nil, fmt.Errorf("memtrim: bad mapping line %q", line)
			}
			cur = Region{start, end}
			perms := fs[1]
			keep = len(fs) >= 6 && strings.Join(fs[5:], " ") == path &&
				len(perms) == 4 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p'
			continue
		}
		if keep && fs[0] == "Anonymous:" && len(fs) >= 2 && fs[1] != "0" {
			keep = false // private copies would be lost
		}
	}
	flush()
	return out, sc.Err()
}
