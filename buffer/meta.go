package buffer

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's meta page, as laid out on disk (page header 16 bytes, then meta).
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64
)

type boltMeta struct {
	pageSize uint32
	root     uint64 // root bucket's page
	freelist uint64 // freelist page, or noFreelist
	pgid     uint64 // high water mark: the file must hold pgid pages
	txid     uint64
}

func parseMeta(p []byte) (boltMeta, bool) {
	if len(p) < pageHeaderSize+metaSize {
		return boltMeta{}, false
	}
	m := p[pageHeaderSize : pageHeaderSize+metaSize]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic || binary.LittleEndian.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	bm := boltMeta{pageSize: binary.LittleEndian.Uint32(m[8:]), root: binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]), pgid: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}
	if bm.pageSize < 512 || bm.pageSize > 1<<20 || bm.pageSize&(bm.pageSize-1) != 0 {
		return boltMeta{}, false
	}
	return bm, true
}

// candidatePageSizes are tried when the first meta page is unreadable.
var candidatePageSizes = []int64{4096, 8192, 16384, 32768, 65536}

// readMeta returns the newest valid meta page of a bbolt file, or false.
func readMeta(r io.ReaderAt) (boltMeta, bool) {
	mp := readMetas(r)
	return mp.newest()
}

// metaPair is what the two meta pages of a bbolt file hold.
type metaPair struct {
	m  [2]boltMeta
	ok [2]bool
}

func (mp metaPair) newest() (boltMeta, bool) {
	switch {
	case mp.ok[0] && mp.ok[1] && mp.m[1].txid > mp.m[0].txid:
		return mp.m[1], true
	case mp.ok[0]:
		return mp.m[0], true
	case mp.ok[1]:
		return mp.m[1], true
	}
	return boltMeta{}, false
}

// problem says what is wrong with a pair in which at least one page is
// valid, or "". bbolt writes transaction t's meta to page t%2, so a sound
// file has two valid pages of the same page size with adjacent txids, each
// on its own parity. When one page is damaged bbolt silently falls back to
// the other, older one and forgets the last commit, whose records are
// still on disk: that is damage to report and to salvage, not to accept.
func (mp metaPair) problem() string {
	switch {
	case !mp.ok[0] && !mp.ok[1]:
		return "both meta pages are damaged"
	case !mp.ok[0] || !mp.ok[1]:
		bad, good := 0, 1
		if !mp.ok[1] {
			bad, good = 1, 0
		}
		return fmt.Sprintf("meta page %d is damaged (bad magic, version or checksum); meta page %d (txid %d) is valid, but bbolt would read only that one, which may be older than the last commit",
			bad, good, mp.m[good].txid)
	}
	m0, m1 := mp.m[0], mp.m[1]
	switch {
	case m0.pageSize != m1.pageSize:
		return fmt.Sprintf("meta pages disagree on the page size (%d and %d)", m0.pageSize, m1.pageSize)
	case m0.txid%2 != 0 || m1.txid%2 != 1:
		return fmt.Sprintf("meta pages hold txids %d and %d, not on their own parity (page t%%2 holds txid t)", m0.txid, m1.txid)
	case max(m0.txid, m1.txid)-min(m0.txid, m1.txid) != 1:
		return fmt.Sprintf("meta pages disagree: txids %d and %d are not adjacent", m0.txid, m1.txid)
	}
	return ""
}

// readMetas reads both meta pages. When the first is unreadable the page
// size is unknown and each candidate is tried for the second.
func readMetas(r io.ReaderAt) metaPair {
	var mp metaPair
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := r.ReadAt(buf, 0); err == nil {
		mp.m[0], mp.ok[0] = parseMeta(buf)
	}
	sizes := candidatePageSizes
	if mp.ok[0] {
		sizes = []int64{int64(mp.m[0].pageSize)}
	}
	for _, ps := range sizes {
		if _, err := r.ReadAt(buf, ps); err != nil {
			continue
		}
		if m1, ok1 := parseMeta(buf); ok1 && int64(m1.pageSize) == ps {
			mp.m[1], mp.ok[1] = m1, true
			break
		}
	}
	if mp.ok[0] && !mp.ok[1] {
		// The first page's size may be wrong while the second is right at
		// another size: then the sizes disagree.
		for _, ps := range candidatePageSizes {
			if ps == int64(mp.m[0].pageSize) {
				continue
			}
			if _, err := r.ReadAt(buf, ps); err != nil {
				continue
			}
			if m1, ok1 := parseMeta(buf); ok1 && int64(m1.pageSize) == ps {
				mp.m[1], mp.ok[1] = m1, true
				break
			}
		}
	}
	return mp
}

// metaProblemFile is metaPair.problem for the file at path ("" when sound
// or unreadable: the other checks report that).
func metaProblemFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	mp := readMetas(f)
	if !mp.ok[0] && !mp.ok[1] {
		return ""
	}
	return mp.problem()
}

// checkMeta verifies that path starts like a bbolt file and is not shorter
// than its meta page says.
func checkMeta(path string, size int64) (boltMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return boltMeta{}, err
	}
	defer f.Close()
	m, ok := readMeta(f)
	if !ok {
		return m, corruptf("%s has no valid bbolt meta page (not a bbolt file, or its header is damaged)", path)
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return m, corruptf("%s is truncated: %d bytes, its meta page needs %d", path, size, need)
	}
	return m, nil
}
