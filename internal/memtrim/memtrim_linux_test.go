package memtrim

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
)

const sampleSmaps = `00400000-00a0f000 r-xp 00000000 fd:01 123 /usr/bin/falconet-agent
Size:               6204 kB
Rss:                5248 kB
Anonymous:             0 kB
00a10000-01092000 r--p 00610000 fd:01 123 /usr/bin/falconet-agent
Size:               6664 kB
Anonymous:             0 kB
01092000-010e9000 rw-p 00c92000 fd:01 123 /usr/bin/falconet-agent
Anonymous:           100 kB
010e9000-010f0000 r--p 00ce9000 fd:01 123 /usr/bin/falconet-agent
Anonymous:             8 kB
7f0000000000-7f0000010000 r-xp 00000000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7f0000020000-7f0000030000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f0000040000-7f0000050000 r--p 00000000 fd:01 789 /opt/my agent/falconet-agent
Anonymous:             0 kB
`

func TestReadOnlyRegions(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []Region
	}{
		// text and rodata; not the writable data, not the relocated (copied) page, not libc
		{"/usr/bin/falconet-agent", []Region{{0x400000, 0xa0f000}, {0xa10000, 0x1092000}}},
		{"/opt/my agent/falconet-agent", []Region{{0x7f0000040000, 0x7f0000050000}}},
		{"/nowhere", nil},
	} {
		got, err := ReadOnlyRegions(strings.NewReader(sampleSmaps), tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadOnlyRegions(%s): got %x, want %x", tc.path, got, tc.want)
		}
	}
}

// TestReleaseBinary releases this test binary's pages and keeps running:
// the code after the call and the strings it reads are mapped again.
func TestReleaseBinary(t *testing.T) {
	n, err := ReleaseBinary()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("released 0 bytes, want the text and read-only data of the test binary")
	}
	before := fileRSS(t)
	if _, err := ReleaseBinary(); err != nil { // twice is harmless
		t.Fatal(err)
	}
	if got := strings.Repeat("ok", 2); got != "okok" {
		t.Fatalf("got %q after releasing, want okok", got)
	}
	t.Logf("released %d bytes of mappings; file-backed RSS %d kB", n, before)
}

func fileRSS(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == "RssFile:" {
			var kb int
			for _, c := range fs[1] {
				kb = kb*10 + int(c-'0')
			}
			return kb
		}
	}
	return 0
}
