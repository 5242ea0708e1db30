// Package promtext reads values out of a Prometheus text exposition page, the
// /metrics page every falconet daemon serves. It is what the demo's status
// line and `falconet status` use to summarize a running pipeline; it is not a
// full parser (no histograms, no timestamps, no escaping in label values).
package promtext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client is the HTTP client Get uses: a short timeout, because a daemon that
// does not answer in 3 s is reported as down rather than waited for.
var Client = &http.Client{Timeout: 3 * time.Second}

// ErrNotExposed is returned by Scrape when the page has no sample of the name.
var ErrNotExposed = errors.New("promtext: metric not exposed")

// Get fetches url and returns the body of a 200 answer (at most 8 MiB).
func Get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), nil
}

// Scrape fetches a /metrics page and returns Sum of name; ErrNotExposed
// (wrapped) if the page has no sample of it.
func Scrape(ctx context.Context, url, name string) (float64, error) {
	page, err := Get(ctx, url)
	if err != nil {
		return 0, err
	}
	if !Has(page, name) {
		return 0, fmt.Errorf("%s: %w", name, ErrNotExposed)
	}
	return Sum(page, name), nil
}

// Has reports whether the page holds a sample of name (any label set).
func Has(page, name string) bool {
	for line := range strings.SplitSeq(page, "\n") {
		if sampleOf(line, name) {
			return true
		}
	}
	return false
}

func sampleOf(line, name string) bool {
	if !strings.HasPrefix(line, name) {
		return false
	}
	rest := line[len(name):]
	return rest != "" && (rest[0] == ' ' || rest[0] == '{')
}

// Sum adds every sample of name (all label sets) in a page. A name that is a
// prefix of another (falconet_buffer_metrics, falconet_buffer_metrics_total)
// matches only itself.
func Sum(page, name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(page, "\n") {
		if !sampleOf(line, name) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// Labeled returns each label set's value of name, keyed by the text between
// the braces (`addr="10.0.0.1:8433"`).
func Labeled(page, name string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(page, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[line[len(name)+1:end]] = v
		}
	}
	return out
}
