package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/falconet/falconet/metric"
)

// DefaultMaxPushBytes is the default push body limit.
const DefaultMaxPushBytes = 4 << 20

// maxListedItems bounds how many bad items a 400 body lists.
const maxListedItems = 100

// PushHandler is the local push API, mounted at POST /v1/push: a JSON array
// of metrics in Open-Falcon's form (as Open-Falcon's agent takes them), or in
// canonical form, or one object per line.
//
// Answers:
//   - 200 "success": every metric was written to the sink, which for the
//     durable buffer means it is on disk.
//   - 400: the body names each bad item ("item 3: ..."); nothing was stored,
//     so the client can fix and resend the whole body. An empty (or
//     whitespace-only) body is a 400 too, "empty body; nothing stored", as
//     Open-Falcon's agent answers it: a client that sent nothing by mistake
//     learns it. An empty array, [], is an explicit empty batch and answers
//     200 "success" with nothing stored, as Open-Falcon's agent does, so
//     clients that flush empty batches keep working.
//   - 413: the body exceeds the limit; nothing was stored.
//   - 503 with Retry-After: the sink refused (buffer full, closed); nothing
//     acknowledged, the client retries.
type PushHandler struct {
	sink     Sink
	maxBytes int64
	logger   *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	errLog   logLimiter
}

// NewPushHandler returns the push API writing to sink; maxBytes <= 0 means
// DefaultMaxPushBytes.
func NewPushHandler(sink Sink, maxBytes int64, logger *slog.Logger, metrics *Metrics) *PushHandler {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPushBytes
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PushHandler{sink: sink, maxBytes: maxBytes, logger: logger, metrics: orNewMetrics(metrics), now: time.Now}
}

func (h *PushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, body := h.serve(r)
	h.metrics.PushRequests.WithLabelValues(strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (h *PushHandler) serve(r *http.Request) (int, string) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.maxBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge,
				fmt.Sprintf("refused: body larger than %d bytes; nothing stored; send smaller batches\n", h.maxBytes)
		}
		return http.StatusBadRequest, fmt.Sprintf("refused: reading body: %v\n", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return http.StatusBadRequest, "refused: empty body; nothing stored\n"
	}
	ms, bad := metric.DecodeJSON(data, h.now().Unix())
	if len(bad) > 0 {
		var b strings.Builder
		if len(bad) == 1 && bad[0].Index == -1 {
			fmt.Fprintf(&b, "refused: body is not JSON metrics; nothing stored: %v\n", bad[0].Err)
			return http.StatusBadRequest, b.String()
		}
		fmt.Fprintf(&b, "refused: %d of %d items invalid; nothing stored\n", len(bad), len(ms)+len(bad))
		for i, e := range bad {
			if i == maxListedItems {
				fmt.Fprintf(&b, "... and %d more\n", len(bad)-i)
				break
			}
			fmt.Fprintf(&b, "item %d: %v\n", e.Index, e.Err)
		}
		return http.StatusBadRequest, b.String()
	}
	if len(ms) == 0 {
		return http.StatusOK, "success\n"
	}
	if err := h.sink.Write(r.Context(), ms); err != nil {
		h.metrics.SinkErrors.WithLabelValues("push").Inc()
		h.errLog.log(h.logger, "push: sink write failed; answered 503", "metrics", len(ms), "err", err)
		return http.StatusServiceUnavailable, fmt.Sprintf("not stored, retry: %v\n", err)
	}
	h.metrics.PushMetrics.Add(float64(len(ms)))
	return http.StatusOK, "success\n"
}
