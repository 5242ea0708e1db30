package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Version is the protocol version this build speaks.
const Version = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 12

// DefaultMaxFrame is the largest payload a Reader accepts unless told
// otherwise.
const DefaultMaxFrame = 16 << 20

// Magic starts every frame.
const Magic = "FN"

// Type is a frame's message type.
type Type uint8

// Message types.
const (
	TypeHello     Type = 1
	TypeWelcome   Type = 2
	TypeReject    Type = 3
	TypeBatch     Type = 4
	TypeAck       Type = 5
	TypeHeartbeat Type = 6
	TypePong      Type = 7
	TypeDrain     Type = 8
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeWelcome:
		return "welcome"
	case TypeReject:
		return "reject"
	case TypeBatch:
		return "batch"
	case TypeAck:
		return "ack"
	case TypeHeartbeat:
		return "heartbeat"
	case TypePong:
		return "pong"
	case TypeDrain:
		return "drain"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors a Reader or a decoder returns; wrapped with detail.
var (
	ErrBadMagic      = errors.New("wire: not a falconet frame")
	ErrVersion       = errors.New("wire: unsupported protocol version")
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrChecksum      = errors.New("wire: checksum mismatch")
	ErrUnknownType   = errors.New("wire: unknown message type")
	ErrMalformed     = errors.New("wire: malformed message")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is a decoded frame header.
type Header struct {
	Version uint8
	Type    Type
	Length  int
	CRC     uint32
}

func putHeader(h []byte, t Type, n int) {
	h[0], h[1] = Magic[0], Magic[1]
	h[2] = Version
	h[3] = byte(t)
	binary.BigEndian.PutUint32(h[4:8], uint32(n))
}

// AppendFrame appends a complete frame of type t with payload p to dst.
func AppendFrame(dst []byte, t Type, p []byte) []byte {
	var h [HeaderSize]byte
	putHeader(h[:], t, len(p))
	crc := crc32.Update(0, castagnoli, h[:8])
	crc = crc32.Update(crc, castagnoli, p)
	binary.BigEndian.PutUint32(h[8:], crc)
	dst = append(dst, h[:]...)
	return append(dst, p...)
}

// AppendMessage appends m as a complete frame to dst.
func AppendMessage(dst []byte, m Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = m.appendPayload(dst)
	p := dst[start+HeaderSize:]
	h := dst[start : start+HeaderSize]
	putHeader(h, m.Type(), len(p))
	crc := crc32.Update(0, castagnoli, h[:8])
	crc = crc32.Update(crc, castagnoli, p)
	binary.BigEndian.PutUint32(h[8:], crc)
	return dst
}

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r        io.Reader
	maxFrame int
	hdr      [HeaderSize]byte
	buf      []byte
}

// keepBuf is the largest buffer a Reader keeps between frames; bigger frames
// get a buffer of their own, so an idle connection holds little memory.
const keepBuf = 32 << 10

// NewReader returns a Reader refusing payloads over maxFrame bytes (<= 0:
// DefaultMaxFrame).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Reader{r: r, maxFrame: maxFrame}
}

// ReadHeader reads and checks the next frame header. The caller must then
// call ReadPayload with it (a relay reserves memory in between).
func (r *Reader) ReadHeader() (Header, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Header{}, err
	}
	return ParseHeader(r.hdr[:], r.maxFrame)
}

// ParseHeader checks a 12-byte header against maxFrame.
func ParseHeader(b []byte, maxFrame int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short header (%d bytes)", ErrMalformed, len(b))
	}
	if b[0] != Magic[0] || b[1] != Magic[1] {
		return Header{}, fmt.Errorf("%w: first bytes %q", ErrBadMagic, b[:4])
	}
	h := Header{Version: b[2], Type: Type(b[3]), Length: int(binary.BigEndian.Uint32(b[4:8])), CRC: binary.BigEndian.Uint32(b[8:12])}
	if h.Version != Version {
		return h, fmt.Errorf("%w: peer speaks %d, this build %d", ErrVersion, h.Version, Version)
	}
	if h.Length > maxFrame || h.Length < 0 {
		return h, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, h.Length, maxFrame)
	}
	if h.Type < TypeHello || h.Type > TypeDrain {
		return h, fmt.Errorf("%w: %d", ErrUnknownType, uint8(h.Type))
	}
	return h, nil
}

// ReadPayload reads the payload announced by h and checks its CRC. The slice
// is valid until the next ReadPayload.
func (r *Reader) ReadPayload(h Header) ([]byte, error) {
	if cap(r.buf) < h.Length || cap(r.buf) > keepBuf {
		r.buf = make([]byte, h.Length, max(h.Length, 4096))
	}
	p := r.buf[:h.Length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	crc := crc32.Update(0, castagnoli, r.hdr[:8])
	crc = crc32.Update(crc, castagnoli, p)
	if crc != h.CRC {
		return nil, fmt.Errorf("%w: %s frame of %d bytes", ErrChecksum, h.Type, h.Length)
	}
	return p, nil
}

// ReadMessage reads and decodes the next frame. A Batch's payload aliases the
// Reader's buffer until the next read.
func (r *Reader) ReadMessage() (Message, error) {
	h, err := r.ReadHeader()
	if err != nil {
		return nil, err
	}
	p, err := r.ReadPayload(h)
	if err != nil {
		return nil, err
	}
	return Decode(h.Type, p)
}

// Writer writes frames through a buffer; call Flush to send them. It is not
// safe for concurrent use.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer on w with a 64 KiB buffer.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, 64<<10) }

// NewWriterSize returns a Writer with a buffer of size bytes (small for
// many mostly idle connections; a batch larger than the buffer is written
// straight through).
func NewWriterSize(w io.Writer, size int) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, size)}
}

// WriteMessage buffers m as one frame.
func (w *Writer) WriteMessage(m Message) error {
	if b, ok := m.(*Batch); ok {
		return w.WriteBatch(b.Seq, b.Payload)
	}
	w.buf = AppendMessage(w.buf[:0], m)
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > keepBuf {
		w.buf = nil
	}
	return err
}

// WriteBatch buffers a Batch frame without copying payload into an
// intermediate buffer.
func (w *Writer) WriteBatch(seq uint64, payload []byte) error {
	var h [HeaderSize + 8]byte
	putHeader(h[:], TypeBatch, 8+len(payload))
	binary.BigEndian.PutUint64(h[HeaderSize:], seq)
	crc := crc32.Update(0, castagnoli, h[:8])
	crc = crc32.Update(crc, castagnoli, h[HeaderSize:])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.BigEndian.PutUint32(h[8:12], crc)
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.w.Buffered() }
