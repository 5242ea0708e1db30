package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/falconet/falconet/metric"
)

// registerOpenFalconRoutes adds Open-Falcon transfer's HTTP push API to the
// relay's HTTP port.
func (s *Server) registerOpenFalconRoutes() {
	if s.http != nil {
		s.http.Handle("POST /api/push", http.HandlerFunc(s.servePush))
	}
}

// servePush is Open-Falcon transfer's POST /api/push: a JSON array of
// MetricValue in, {"msg":"success","data":TransferResponse} out, answered
// after Kafka acked every valid item. Errors keep the shape with the reason
// in msg and data null, and a non-2xx status.
func (s *Server) servePush(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	peer := r.RemoteAddr
	if !s.cfg.OpenFalcon.Enabled {
		s.refuseUnauthenticated("http", "disabled", peer)
		s.pushAnswer(w, http.StatusForbidden, "Open-Falcon compatibility is off on this relay ([open_falcon] enabled = false)", nil)
		return
	}
	if !s.of.allowed(peer) {
		s.refuseUnauthenticated("http", "not_allowed", peer)
		s.pushAnswer(w, http.StatusForbidden, "source address not allowed (open_falcon.allow)", nil)
		return
	}
	// The body is held until it is decoded: count it in the in-flight budget.
	limit := int64(s.cfg.Limits.MaxFrame)
	est := limit
	if r.ContentLength >= 0 {
		est = min(r.ContentLength+1, limit)
	}
	n, err := s.global.acquire(r.Context(), est)
	if err != nil {
		return // client gone
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var items []metric.OpenFalconItem
	var bad []metric.ItemError
	if err == nil && len(bytes.TrimSpace(data)) == 0 {
		err = errors.New("blank body")
	}
	if err == nil {
		items, bad, err = metric.DecodeOpenFalconItems(data)
	}
	data = nil
	s.global.release(n)
	if err != nil {
		var tooLarge *http.MaxBytesError
		code := http.StatusBadRequest
		if errors.As(err, &tooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		s.rl.log(s.log, "push-bad:"+hostOf(peer), slog.LevelWarn, "bad /api/push request", "peer", peer, "err", err)
		s.pushAnswer(w, code, "decode error: "+err.Error(), nil)
		return
	}
	valid, invalid := s.ofConvert(items, bad, "openfalcon_http", peer)
	resp := transferResponse{Message: "ok", Total: len(items), Invalid: invalid}
	if len(valid) > 0 {
		done := make(chan error, 1)
		if err := s.ofProduce(r.Context(), nil, valid, "openfalcon_http", func(err error) { done <- err }); err != nil {
			if r.Context().Err() != nil {
				return
			}
			s.pushAnswer(w, http.StatusServiceUnavailable, "kafka unavailable, metrics not stored: "+err.Error(), nil)
			return
		}
		select {
		case err := <-done:
			if err != nil {
				s.pushAnswer(w, http.StatusServiceUnavailable, "kafka did not take the metrics: "+err.Error(), nil)
				return
			}
		case <-r.Context().Done():
			return
		}
	}
	resp.Latency = time.Since(start).Milliseconds()
	s.pushAnswer(w, http.StatusOK, "success", &resp)
}

func (s *Server) pushAnswer(w http.ResponseWriter, code int, msg string, data *transferResponse) {
	res := "ok"
	if code != http.StatusOK {
		res = "error"
	}
	s.of.calls.WithLabelValues("http", res).Inc()
	body, _ := json.Marshal(struct {
		Msg  string            `json:"msg"`
		Data *transferResponse `json:"data"`
	}{msg, data})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
