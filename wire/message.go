package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Message is one protocol message.
type Message interface {
	Type() Type
	appendPayload(b []byte) []byte
}

// MaxString bounds any string field, so a decoder refuses absurd lengths.
const MaxString = 64 << 10

// MaxRedirects bounds the addresses in a Reject or Drain.
const MaxRedirects = 64

// Capabilities an agent announces in Hello (bit set). None are defined yet;
// the field lets later versions negotiate without a new protocol version.
type Capabilities uint64

// Hello is the agent's first frame.
type Hello struct {
	AgentID      string // the host's stable id (hostname unless configured)
	AgentVersion string // software version, for the relay's logs
	Token        string // shared secret; empty when the relay needs none
	Capabilities Capabilities
}

// Welcome accepts a Hello.
type Welcome struct {
	RelayID      string
	RelayVersion string
	// MaxInFlight is the most unacked batches the relay wants on this
	// connection; the agent uses the smaller of this and its own window.
	MaxInFlight int
	// MaxFrame is the largest frame payload the relay reads.
	MaxFrame int
	// IdleTimeout: the relay closes a connection silent for this long; the
	// agent heartbeats well within it.
	IdleTimeout time.Duration
}

// RejectCode says why a connection is refused or closed.
type RejectCode uint8

// Reject codes.
const (
	RejectAuth     RejectCode = 1 // wrong or missing token, or TLS identity refused
	RejectVersion  RejectCode = 2 // protocol version not spoken
	RejectBusy     RejectCode = 3 // overloaded or Kafka unavailable: go elsewhere, retry later
	RejectProtocol RejectCode = 4 // garbage, bad checksum, oversized or unexpected frame
	RejectShutdown RejectCode = 5 // the relay is shutting down
	RejectTimeout  RejectCode = 6 // no hello or heartbeat in time
)

func (c RejectCode) String() string {
	switch c {
	case RejectAuth:
		return "auth"
	case RejectVersion:
		return "version"
	case RejectBusy:
		return "busy"
	case RejectProtocol:
		return "protocol"
	case RejectShutdown:
		return "shutdown"
	case RejectTimeout:
		return "timeout"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Reject refuses a Hello or announces that the sender closes the connection.
type Reject struct {
	Code     RejectCode
	Reason   string
	Redirect []string // relay addresses to try instead, best first; may be empty
}

// Batch carries one buffered batch: metric.EncodeBatch bytes, unchanged.
type Batch struct {
	Seq     uint64
	Payload []byte
}

// Status is the outcome of one batch.
type Status uint8

// Batch outcomes.
const (
	StatusOK         Status = 0 // in Kafka (acks=all): delete it
	StatusInvalid    Status = 1 // can never be delivered (corrupt): drop it, count it
	StatusRetryLater Status = 2 // not stored: keep it, send again later or elsewhere
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusInvalid:
		return "invalid"
	case StatusRetryLater:
		return "retry-later"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// AckResult is the outcome of one batch.
type AckResult struct {
	Seq    uint64
	Status Status
	Reason string // for Invalid and RetryLater; empty for OK
}

// Ack answers one or more batches, in any order.
type Ack struct {
	Results []AckResult
}

// Heartbeat keeps an idle connection proven alive; the relay answers Pong
// with the same Nonce.
type Heartbeat struct{ Nonce uint64 }

// Pong answers a Heartbeat.
type Pong struct{ Nonce uint64 }

// Drain tells the agent the relay is going away: send no new batches; the
// in-flight ones will still be acked; then reconnect, preferably to one of
// Redirect.
type Drain struct {
	Reason   string
	Redirect []string
}

func (*Hello) Type() Type     { return TypeHello }
func (*Welcome) Type() Type   { return TypeWelcome }
func (*Reject) Type() Type    { return TypeReject }
func (*Batch) Type() Type     { return TypeBatch }
func (*Ack) Type() Type       { return TypeAck }
func (*Heartbeat) Type() Type { return TypeHeartbeat }
func (*Pong) Type() Type      { return TypePong }
func (*Drain) Type() Type     { return TypeDrain }

func appendStr(b []byte, s string) []byte {
	if len(s) > MaxString {
		s = s[:MaxString]
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	if len(ss) > MaxRedirects {
		ss = ss[:MaxRedirects]
	}
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func (m *Hello) appendPayload(b []byte) []byte {
	b = appendStr(b, m.AgentID)
	b = appendStr(b, m.AgentVersion)
	b = appendStr(b, m.Token)
	return binary.AppendUvarint(b, uint64(m.Capabilities))
}

func (m *Welcome) appendPayload(b []byte) []byte {
	b = appendStr(b, m.RelayID)
	b = appendStr(b, m.RelayVersion)
	b = binary.AppendUvarint(b, uint64(max(m.MaxInFlight, 0)))
	b = binary.AppendUvarint(b, uint64(max(m.MaxFrame, 0)))
	return binary.AppendUvarint(b, uint64(max(m.IdleTimeout.Milliseconds(), 0)))
}

func (m *Reject) appendPayload(b []byte) []byte {
	b = append(b, byte(m.Code))
	b = appendStr(b, m.Reason)
	return appendStrs(b, m.Redirect)
}

func (m *Batch) appendPayload(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	return append(b, m.Payload...)
}

func (m *Ack) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(m.Results)))
	for _, r := range m.Results {
		b = binary.AppendUvarint(b, r.Seq)
		b = append(b, byte(r.Status))
		if r.Status != StatusOK {
			b = appendStr(b, r.Reason)
		}
	}
	return b
}

func (m *Heartbeat) appendPayload(b []byte) []byte { return binary.BigEndian.AppendUint64(b, m.Nonce) }
func (m *Pong) appendPayload(b []byte) []byte      { return binary.BigEndian.AppendUint64(b, m.Nonce) }

func (m *Drain) appendPayload(b []byte) []byte {
	b = appendStr(b, m.Reason)
	return appendStrs(b, m.Redirect)
}

// Decode decodes the payload of a frame of type t. Slices in the result
// (a Batch's Payload) alias p.
func Decode(t Type, p []byte) (Message, error) {
	d := decoder{b: p}
	var m Message
	switch t {
	case TypeHello:
		m = &Hello{AgentID: d.str(), AgentVersion: d.str(), Token: d.str(), Capabilities: Capabilities(d.uvarint())}
	case TypeWelcome:
		w := &Welcome{RelayID: d.str(), RelayVersion: d.str()}
		w.MaxInFlight = d.int()
		w.MaxFrame = d.int()
		ms := d.uvarint()
		if ms > uint64(365*24*time.Hour/time.Millisecond) {
			d.fail("idle timeout")
		}
		w.IdleTimeout = time.Duration(ms) * time.Millisecond
		m = w
	case TypeReject:
		m = &Reject{Code: RejectCode(d.byte()), Reason: d.str(), Redirect: d.strs()}
	case TypeBatch:
		if len(p) < 8 {
			return nil, fmt.Errorf("%w: batch of %d bytes, want at least 8", ErrMalformed, len(p))
		}
		return &Batch{Seq: binary.BigEndian.Uint64(p), Payload: p[8:]}, nil
	case TypeAck:
		n := d.uvarint()
		// each result takes at least 2 bytes
		if n > uint64(len(p))/2 {
			return nil, fmt.Errorf("%w: ack count %d larger than the %d bytes can hold", ErrMalformed, n, len(p))
		}
		a := &Ack{Results: make([]AckResult, 0, n)}
		for range n {
			r := AckResult{Seq: d.uvarint(), Status: Status(d.byte())}
			if r.Status > StatusRetryLater {
				d.fail("ack status")
			}
			if r.Status != StatusOK {
				r.Reason = d.str()
			}
			if d.err != nil {
				break
			}
			a.Results = append(a.Results, r)
		}
		m = a
	case TypeHeartbeat:
		m = &Heartbeat{Nonce: d.u64()}
	case TypePong:
		m = &Pong{Nonce: d.u64()}
	case TypeDrain:
		m = &Drain{Reason: d.str(), Redirect: d.strs()}
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, t, d.err)
	}
	if d.off != len(p) {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, t, len(p)-d.off)
	}
	return m, nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or bad %s at byte %d", what, d.off)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b[d.off:])
	if k <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.off += k
	return v
}

func (d *decoder) int() int {
	v := d.uvarint()
	if v > 1<<31 {
		d.fail("integer")
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("byte")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if d.off+8 > len(d.b) {
		d.fail("uint64")
		return 0
	}
	d.off += 8
	return binary.BigEndian.Uint64(d.b[d.off-8:])
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > MaxString || n > uint64(len(d.b)-d.off) {
		d.fail("string length")
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

func (d *decoder) strs() []string {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > MaxRedirects || n > uint64(len(d.b)-d.off) {
		d.fail("address count")
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.str())
	}
	return out
}
