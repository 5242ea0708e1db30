package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The record format: the value stored under each batch's key. See doc.go.
const (
	recordVersion   = 1
	recordHeaderLen = 17 // crc(4) version(1) metrics(4) appended(8)
	keyLen          = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrRecordCorrupt is wrapped by every record decoding error.
var ErrRecordCorrupt = errors.New("buffer: corrupt record")

// record is one decoded stored batch.
type record struct {
	seq      uint64
	metrics  int
	appended int64 // unix nanoseconds
	payload  []byte
}

func seqKey(seq uint64) []byte {
	var k [keyLen]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != keyLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// encodeRecord returns the stored value for a batch.
func encodeRecord(seq uint64, payload []byte, metrics int, appended time.Time) []byte {
	v := make([]byte, recordHeaderLen+len(payload))
	v[4] = recordVersion
	binary.LittleEndian.PutUint32(v[5:], uint32(metrics))
	binary.LittleEndian.PutUint64(v[9:], uint64(appended.UnixNano()))
	copy(v[recordHeaderLen:], payload)
	binary.LittleEndian.PutUint32(v[0:], recordCRC(seq, v))
	return v
}

func recordCRC(seq uint64, v []byte) uint32 {
	var k [keyLen]byte
	binary.BigEndian.PutUint64(k[:], seq)
	c := crc32.Update(0, castagnoli, k[:])
	return crc32.Update(c, castagnoli, v[4:])
}

// decodeRecordHeader reads the header only: cheap, touches the first page of
// the value. It does not check the CRC.
func decodeRecordHeader(v []byte) (metrics int, appended int64, err error) {
	if len(v) < recordHeaderLen {
		return 0, 0, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrRecordCorrupt, len(v), recordHeaderLen)
	}
	if v[4] != recordVersion {
		return 0, 0, fmt.Errorf("%w: record version %d, this build reads %d", ErrRecordCorrupt, v[4], recordVersion)
	}
	return int(binary.LittleEndian.Uint32(v[5:])), int64(binary.LittleEndian.Uint64(v[9:])), nil
}

// decodeRecord checks a stored value against its key and returns it. The
// payload aliases v: copy it before the transaction ends.
func decodeRecord(key, v []byte) (record, error) {
	seq, ok := keySeq(key)
	if !ok {
		return record{}, fmt.Errorf("%w: key of %d bytes, want %d", ErrRecordCorrupt, len(key), keyLen)
	}
	metrics, appended, err := decodeRecordHeader(v)
	if err != nil {
		return record{seq: seq}, err
	}
	if got, want := recordCRC(seq, v), binary.LittleEndian.Uint32(v); got != want {
		return record{seq: seq}, fmt.Errorf("%w: batch %d: crc32c %08x, stored %08x", ErrRecordCorrupt, seq, got, want)
	}
	return record{seq: seq, metrics: metrics, appended: appended, payload: v[recordHeaderLen:]}, nil
}
