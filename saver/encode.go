package saver

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/falconet/falconet/metric"
)

// IndexPrefix and RollupPrefix name the indices the saver writes.
const (
	IndexPrefix  = "falconet-metrics-"
	RollupPrefix = "falconet-rollup-"
)

// Dead-letter reasons: the value of the falconet-dlq-reason header starts
// with one of these words, followed by ": " and the detail.
const (
	ReasonMalformed = "malformed" // not JSON, or not a metric
	ReasonInvalid   = "invalid"   // a metric that fails Validate
	ReasonFuture    = "future"    // timestamp beyond future_skew
	ReasonExpired   = "expired"   // older than retention_days: its index is already deleted
	ReasonRejected  = "rejected"  // Elasticsearch refused the document (400, mapping errors)
)

// DLQ record headers.
const (
	HeaderReason = "falconet-dlq-reason"
	HeaderSource = "falconet-dlq-source" // topic/partition/offset of the original record
)

var errFuture = errors.New("saver: timestamp in the future")

// decodeRecord turns a Kafka record value into a metric, or says why it goes
// to the dead-letter topic (reason word, detail).
func decodeRecord(value []byte, now time.Time, futureSkew time.Duration, retentionDays int) (metric.Metric, string, error) {
	var m metric.Metric
	if !decodeCanonical(value, &m) {
		if err := json.Unmarshal(value, &m); err != nil {
			return m, ReasonMalformed, err
		}
	}
	if err := m.Validate(); err != nil {
		return m, ReasonInvalid, err
	}
	if m.Timestamp > now.Add(futureSkew).Unix() {
		return m, ReasonFuture, fmt.Errorf("%w: %s is %s ahead of the saver's clock (future_skew %s)", errFuture,
			m.Time().Format(time.RFC3339), m.Time().Sub(now).Round(time.Second), futureSkew)
	}
	// Compared as seconds: the same as comparing UTC day names, without
	// formatting two dates per record (a twentieth of the saver's CPU).
	if retentionDays > 0 && m.Timestamp < retentionCutoffUnix(now, retentionDays) {
		return m, ReasonExpired, fmt.Errorf("saver: day %s is older than retention_days %d", m.Day(), retentionDays)
	}
	return m, "", nil
}

// appendBulkItem appends one bulk action line and its document line, each
// ending in '\n', and returns where the document line starts.
//
// The document is the canonical metric JSON plus "series" (the series key, a
// keyword that dashboards group by and rollups sort by).
func appendBulkItem(b []byte, op string, m *metric.Metric) ([]byte, int, error) {
	start := len(b)
	b = append(b, `{"`...)
	b = append(b, op...)
	b = append(b, `":{"_index":"`...)
	b = append(b, IndexPrefix...)
	b = m.Time().AppendFormat(b, "2006.01.02")
	b = append(b, `","_id":"`...)
	b = append(b, m.DocID()...)
	b = append(b, "\"}}\n"...)
	docStart := len(b)
	var err error
	b, err = m.AppendJSON(b)
	if err != nil {
		return b[:start], 0, err
	}
	b = b[:len(b)-1] // drop '}'
	b = append(b, `,"series":`...)
	var kb [256]byte
	b = appendJSONString(b, m.AppendSeriesKey(kb[:0]))
	b = append(b, "}\n"...)
	return b, docStart, nil
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// retentionCutoff is the oldest day ("YYYY.MM.DD") kept with retentionDays
// of retention at now: today minus retentionDays, UTC.
func retentionCutoff(now time.Time, retentionDays int) string {
	return now.UTC().AddDate(0, 0, -retentionDays).Format("2006.01.02")
}

// retentionCutoffUnix is the start (UTC midnight) of retentionCutoff's day,
// in unix seconds: a metric is older than the cutoff day exactly when its
// timestamp is before this.
func retentionCutoffUnix(now time.Time, retentionDays int) int64 {
	y, mo, d := now.UTC().AddDate(0, 0, -retentionDays).Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Unix()
}
