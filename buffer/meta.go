package buffer

import (
	"encoding/binary"
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

// readMeta returns the newest valid meta page of a bbolt file, or false.
func readMeta(r io.ReaderAt) (boltMeta, bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return boltMeta{}, false
	}
	m0, ok0 := parseMeta(buf)
	ps := int64(4096)
	if ok0 {
		ps = int64(m0.pageSize)
	}
	var m1 boltMeta
	ok1 := false
	if _, err := r.ReadAt(buf, ps); err == nil {
		m1, ok1 = parseMeta(buf)
	}
	switch {
	case ok0 && ok1 && m1.txid > m0.txid:
		return m1, true
	case ok0:
		return m0, true
	case ok1:
		return m1, true
	}
	return boltMeta{}, false
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
