package devstack

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The embedded broker differs from Kafka in two ways a third-party client
// notices when SASL is on; this file makes it answer as Kafka does.
//
//  1. It advertises SaslHandshake from version 1 only; Kafka advertises 0-1,
//     and librdkafka (kcat) refuses to authenticate without version 0 in the
//     range. saslApiVersions answers ApiVersions with the range widened (the
//     broker still gets version 1, the one clients use after ApiVersions).
//  2. On wrong credentials it closes the connection without an answer;
//     Kafka answers SaslAuthenticate with SASL_AUTHENTICATION_FAILED (58)
//     and a message, then closes. saslConn writes that answer when the
//     broker closes a connection whose last request was SaslAuthenticate
//     and is unanswered.

// saslListener accepts TCP connections, does TLS itself when tc is set (so
// saslConn sees the Kafka bytes), and wraps each in a saslConn.
type saslListener struct {
	net.Listener
	tc *tls.Config
}

func (l saslListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tc != nil {
		c = tls.Server(c, l.tc)
	}
	return &saslConn{Conn: c}, nil
}

// saslConn watches the request and response frames' headers.
type saslConn struct {
	net.Conn

	mu       sync.Mutex
	in, out  frameHeaders
	lastReq  reqHeader
	haveReq  bool
	lastResp int32
	haveResp bool
	once     sync.Once
}

type reqHeader struct {
	key, version int16
	corr         int32
}

func (c *saslConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.feed(p[:n], 8, func(h []byte) {
		c.lastReq = reqHeader{int16(binary.BigEndian.Uint16(h)), int16(binary.BigEndian.Uint16(h[2:])), int32(binary.BigEndian.Uint32(h[4:]))}
		c.haveReq = true
	})
	c.mu.Unlock()
	return n, err
}

func (c *saslConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out.feed(p[:n], 4, func(h []byte) {
		c.lastResp = int32(binary.BigEndian.Uint32(h))
		c.haveResp = true
	})
	c.mu.Unlock()
	return n, err
}

func (c *saslConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		r := c.lastReq
		unanswered := c.haveReq && r.key == 36 && (!c.haveResp || c.lastResp != r.corr)
		c.mu.Unlock()
		if unanswered {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write(saslFailedResponse(r))
		}
	})
	return c.Conn.Close()
}

// saslFailedResponse is Kafka's answer to a SaslAuthenticate with wrong
// credentials.
func saslFailedResponse(r reqHeader) []byte {
	msg := "Authentication failed: Invalid username or password"
	resp := kmsg.SASLAuthenticateResponse{Version: r.version, ErrorCode: 58, ErrorMessage: &msg}
	buf := []byte{0, 0, 0, 0}
	buf = binary.BigEndian.AppendUint32(buf, uint32(r.corr))
	if resp.IsFlexible() {
		buf = append(buf, 0) // empty tagged fields of the response header
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// frameHeaders follows a stream of size-prefixed frames and hands the first
// want bytes of each frame's body to fn.
type frameHeaders struct {
	size    [4]byte
	nsize   int
	left    int // body bytes left in the current frame
	head    []byte
	want    int
	inFrame bool
}

func (f *frameHeaders) feed(p []byte, want int, fn func([]byte)) {
	f.want = want
	for len(p) > 0 {
		if !f.inFrame {
			k := copy(f.size[f.nsize:], p)
			f.nsize += k
			p = p[k:]
			if f.nsize == 4 {
				f.left = int(binary.BigEndian.Uint32(f.size[:]))
				f.nsize, f.inFrame, f.head = 0, true, f.head[:0]
				if f.left == 0 {
					f.inFrame = false
				}
			}
			continue
		}
		k := min(len(p), f.left)
		if need := f.want - len(f.head); need > 0 {
			f.head = append(f.head, p[:min(k, need)]...)
			if len(f.head) == f.want {
				fn(f.head)
			}
		}
		f.left -= k
		p = p[k:]
		if f.left == 0 {
			f.inFrame = false
		}
	}
}

// saslApiVersions answers ApiVersions (versions 0 to 4) with what the
// broker itself answers, SaslHandshake widened to start at version 0. The
// broker's own answer is read once from a throw-away plain broker.
func saslApiVersions(c *kfake.Cluster) error {
	probe, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return err
	}
	defer probe.Close()
	conn, err := net.DialTimeout("tcp", probe.ListenAddrs()[0], 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := kmsg.NewApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "falconet-devstack", "1"
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, &req, 1)); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return err
	}
	canned := kmsg.NewApiVersionsResponse()
	canned.Version = 3
	if err := canned.ReadFrom(body[4:]); err != nil { // after the correlation id; ApiVersions has no header tags
		return fmt.Errorf("devstack: api versions: %w", err)
	}
	for i := range canned.ApiKeys {
		if canned.ApiKeys[i].ApiKey == 17 {
			canned.ApiKeys[i].MinVersion = 0
		}
	}
	c.ControlKey(18, func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.ApiVersionsRequest)
		if req.Version > 4 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = append([]kmsg.ApiVersionsResponseApiKey(nil), canned.ApiKeys...)
		resp.SupportedFeatures = canned.SupportedFeatures
		resp.FinalizedFeaturesEpoch = canned.FinalizedFeaturesEpoch
		resp.FinalizedFeatures = canned.FinalizedFeatures
		return resp, nil, true
	})
	return nil
}
