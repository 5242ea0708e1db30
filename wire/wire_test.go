package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func allMessages() []Message {
	return []Message{
		&Hello{AgentID: "host-1", AgentVersion: "1.2.3", Token: "s3cret", Capabilities: 5},
		&Hello{},
		&Welcome{RelayID: "relay-a", RelayVersion: "dev", MaxInFlight: 64, MaxFrame: 16 << 20, IdleTimeout: 30 * time.Second},
		&Reject{Code: RejectAuth, Reason: "wrong token"},
		&Reject{Code: RejectBusy, Reason: "kafka down", Redirect: []string{"10.0.0.2:8433", "10.0.0.3:8433"}},
		&Batch{Seq: 1<<63 + 7, Payload: []byte("FNB\x01\x00")},
		&Batch{Seq: 0, Payload: []byte{}},
		&Ack{Results: []AckResult{{Seq: 1}, {Seq: 2, Status: StatusInvalid, Reason: "corrupt"}, {Seq: 300000, Status: StatusRetryLater, Reason: "kafka: timeout"}}},
		&Ack{Results: []AckResult{}},
		&Heartbeat{Nonce: 42},
		&Pong{Nonce: 42},
		&Drain{Reason: "shutting down", Redirect: []string{"b:8433"}},
		&Drain{},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	msgs := allMessages()
	for _, m := range msgs {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&stream, 0)
	for i, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, want.Type(), err)
		}
		if b, ok := got.(*Batch); ok {
			b.Payload = append([]byte{}, b.Payload...) // aliases the reader
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: got %#v, want %#v", i, got, want)
		}
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestAppendMessageMatchesWriteBatch(t *testing.T) {
	b := &Batch{Seq: 9, Payload: []byte("hello payload")}
	var stream bytes.Buffer
	w := NewWriter(&stream)
	if err := w.WriteBatch(b.Seq, b.Payload); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got, want := stream.Bytes(), AppendMessage(nil, b); !bytes.Equal(got, want) {
		t.Errorf("WriteBatch wrote %x, AppendMessage %x", got, want)
	}
}

func TestBadFrames(t *testing.T) {
	good := AppendMessage(nil, &Hello{AgentID: "a", Token: "t"})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	tests := []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, ErrBadMagic},
		{"json line", []byte(`{"endpoint":"h","metric":"m","value":1}` + "\n"), 0, ErrBadMagic},
		{"wrong version", mod(func(b []byte) []byte { b[2] = 2; return b }), 0, ErrVersion},
		{"oversized", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1<<30); return b }), 1 << 20, ErrFrameTooLarge},
		{"over reader max", AppendMessage(nil, &Batch{Seq: 1, Payload: make([]byte, 100)}), 64, ErrFrameTooLarge},
		{"bad crc", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), 0, ErrChecksum},
		{"bad crc header", mod(func(b []byte) []byte { b[8] ^= 0x80; return b }), 0, ErrChecksum},
		{"unknown type", AppendFrame(nil, 99, nil), 0, ErrUnknownType},
		{"type zero", AppendFrame(nil, 0, nil), 0, ErrUnknownType},
		{"truncated payload", good[:len(good)-1], 0, io.ErrUnexpectedEOF},
		{"truncated header", good[:5], 0, io.ErrUnexpectedEOF},
		{"trailing bytes", AppendFrame(nil, TypeHeartbeat, make([]byte, 9)), 0, ErrMalformed},
		{"short heartbeat", AppendFrame(nil, TypeHeartbeat, make([]byte, 3)), 0, ErrMalformed},
		{"short batch", AppendFrame(nil, TypeBatch, make([]byte, 7)), 0, ErrMalformed},
		{"huge string", AppendFrame(nil, TypeHello, binary.AppendUvarint(nil, 1<<40)), 0, ErrMalformed},
		{"huge ack count", AppendFrame(nil, TypeAck, binary.AppendUvarint(nil, 1<<40)), 0, ErrMalformed},
		{"bad ack status", AppendFrame(nil, TypeAck, []byte{1, 1, 9, 0}), 0, ErrMalformed},
		{"many redirects", AppendFrame(nil, TypeDrain, append([]byte{0}, binary.AppendUvarint(nil, 1000)...)), 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input), tt.max).ReadMessage()
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStringsTruncatedOnEncode(t *testing.T) {
	m := &Reject{Code: RejectProtocol, Reason: strings.Repeat("x", MaxString+10)}
	got, err := NewReader(bytes.NewReader(AppendMessage(nil, m)), 0).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.(*Reject).Reason); n != MaxString {
		t.Errorf("reason length %d, want %d", n, MaxString)
	}
}

func TestReaderDropsBigBuffers(t *testing.T) {
	var stream []byte
	stream = AppendMessage(stream, &Batch{Seq: 1, Payload: make([]byte, 1<<20)})
	stream = AppendMessage(stream, &Heartbeat{Nonce: 1})
	r := NewReader(bytes.NewReader(stream), 0)
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if c := cap(r.buf); c > keepBuf {
		t.Errorf("after a small frame the reader holds %d bytes, want <= %d", c, keepBuf)
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the reader: it must never panic,
// and whatever decodes must re-encode to a frame that decodes the same.
func FuzzDecodeFrame(f *testing.F) {
	for _, m := range allMessages() {
		f.Add(AppendMessage(nil, m))
	}
	f.Add([]byte("FN"))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 1<<16)
		for range 8 {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			again, err := NewReader(bytes.NewReader(AppendMessage(nil, m)), 1<<17).ReadMessage()
			if err != nil {
				t.Fatalf("%s re-encoded does not decode: %v", m.Type(), err)
			}
			if !reflect.DeepEqual(normalize(m), normalize(again)) {
				t.Fatalf("re-encode changed %#v into %#v", m, again)
			}
		}
	})
}

func normalize(m Message) Message {
	switch v := m.(type) {
	case *Batch:
		return &Batch{Seq: v.Seq, Payload: append([]byte{}, v.Payload...)}
	case *Ack:
		if len(v.Results) == 0 {
			return &Ack{}
		}
	}
	return m
}

func BenchmarkWriteReadBatch(b *testing.B) {
	payload := make([]byte, 8<<10)
	var stream bytes.Buffer
	w := NewWriter(&stream)
	r := NewReader(&stream, 0)
	b.SetBytes(int64(len(payload)))
	for i := range b.N {
		w.WriteBatch(uint64(i), payload)
		w.Flush()
		if _, err := r.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}
