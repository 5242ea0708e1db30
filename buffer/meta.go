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

// candidatePageSizes are tried when the first meta page is unreadable.
var candidatePageSizes = []int64{4096, 8192, 16384, 32768, 65536}

// readMeta returns the newest valid meta page of a bbolt file, or false.
func readMeta(r io.ReaderAt) (boltMeta, bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	m0, ok0 := boltMeta{}, false
	if _, err := r.ReadAt(buf, 0); err == nil {
		m0, ok0 = parseMeta(buf)
	}
	sizes := candidatePageSizes
	if ok0 {
		sizes = []int64{int64(m0.pageSize)}
	}
	for _, ps := range sizes {
		if _, err := r.ReadAt(buf, ps); err != nil {
			continue
		}
		if m1, ok1 := parseMeta(buf); ok1 && int64(m1.pageSize) == ps {
			if !ok0 || m1.txid > m0.txid {
				return m1, true
			}
			break
		}
	}
	return m0, ok0
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
