package feed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MirrorConfig configures a Mirror.
type MirrorConfig struct {
	// Upstream is the feed URL mirrored (manifest.json inside).
	Upstream string
	// Dir keeps the mirrored files, so a restarted relay serves them
	// before the upstream answers again.
	Dir string
	// Interval between upstream checks. Default 1m.
	Interval time.Duration
	// MaxArtifact bounds one artifact's size. Default 256 MiB.
	MaxArtifact int64
	// Client fetches the upstream; default one with timeouts.
	Client *http.Client
}

// Mirror copies a feed from an upstream URL into a directory and serves
// it over HTTP (a relay mounts it at /update/ on its HTTP port), so agents
// that may talk only to their relay can update. It does not verify
// signatures (agents do, with their own keys), but it switches to a new
// manifest only after every artifact it lists is on disk with the size and
// SHA-256 the manifest gives, and it serves only files the current
// manifest lists. Until then, and while the upstream is unreachable, it
// keeps serving the last complete copy.
type Mirror struct {
	cfg    MirrorConfig
	log    *slog.Logger
	client *http.Client

	mu       sync.RWMutex
	manifest []byte
	sig      []byte
	files    map[string]bool // artifact paths and their signatures
	synced   time.Time
}

// NewMirror returns a Mirror and loads the copy already in cfg.Dir.
func NewMirror(cfg MirrorConfig, logger *slog.Logger) (*Mirror, error) {
	if cfg.Upstream == "" || cfg.Dir == "" {
		return nil, errors.New("feed: mirror needs an upstream URL and a directory")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.MaxArtifact <= 0 {
		cfg.MaxArtifact = 256 << 20
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second}}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("feed mirror: %w", err)
	}
	m := &Mirror{cfg: cfg, log: logger.With("component", "feed-mirror"), client: client}
	data, derr := os.ReadFile(filepath.Join(cfg.Dir, ManifestFile))
	sig, serr := os.ReadFile(filepath.Join(cfg.Dir, ManifestSig))
	if derr == nil && serr == nil {
		if man, err := ParseManifest(data); err == nil && m.complete(man) {
			m.install(data, sig, man)
		}
	}
	return m, nil
}

// Run syncs from the upstream every interval until ctx ends.
func (m *Mirror) Run(ctx context.Context) error {
	var lastErr string
	for {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			if err.Error() != lastErr {
				m.log.Warn("feed mirror: sync failed; serving the last complete copy", "upstream", m.cfg.Upstream, "err", err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(m.cfg.Interval):
		}
	}
}

// Sync fetches the upstream manifest and any artifact not yet mirrored,
// then switches to the new manifest.
func (m *Mirror) Sync(ctx context.Context) error {
	data, err := m.get(ctx, ManifestFile, maxManifestSz)
	if err != nil {
		return err
	}
	sig, err := m.get(ctx, ManifestSig, 64<<10)
	if err != nil {
		return err
	}
	m.mu.RLock()
	same := bytes.Equal(data, m.manifest) && bytes.Equal(sig, m.sig)
	m.mu.RUnlock()
	if same {
		return nil
	}
	man, err := ParseManifest(data)
	if err != nil {
		return err
	}
	fetched := 0
	for _, r := range man.Releases {
		for _, a := range r.Artifacts {
			if !safePath(a.Path) {
				return fmt.Errorf("release %s: artifact path %q leaves the feed", r.Version, a.Path)
			}
			if m.have(a) {
				continue
			}
			if a.Size > m.cfg.MaxArtifact {
				return fmt.Errorf("release %s: artifact %s of %d bytes exceeds %d", r.Version, a.Path, a.Size, m.cfg.MaxArtifact)
			}
			body, err := m.get(ctx, a.Path, a.Size)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			if int64(len(body)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
				return fmt.Errorf("release %s: upstream %s is %d bytes with sha256 %x, the manifest says %d and %s",
					r.Version, a.Path, len(body), sum, a.Size, a.SHA256)
			}
			full := filepath.Join(m.cfg.Dir, filepath.FromSlash(a.Path))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := writeAtomic(full, body); err != nil {
				return err
			}
			if err := writeAtomic(full+SignatureExt, []byte(a.Signature)); err != nil {
				return err
			}
			fetched++
		}
	}
	if err := writeAtomic(filepath.Join(m.cfg.Dir, ManifestFile), data); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(m.cfg.Dir, ManifestSig), sig); err != nil {
		return err
	}
	m.install(data, sig, man)
	m.prune()
	m.log.Info("feed mirror: new manifest", "serial", man.Serial, "releases", len(man.Releases), "artifacts_fetched", fetched)
	return nil
}

func safePath(p string) bool {
	c := path.Clean(p)
	return p != "" && !path.IsAbs(c) && c != ".." && !strings.HasPrefix(c, "../") && !strings.Contains(p, "\\") &&
		c != ManifestFile && c != ManifestSig
}

// have reports whether artifact a is on disk, whole.
func (m *Mirror) have(a Artifact) bool {
	full := filepath.Join(m.cfg.Dir, filepath.FromSlash(a.Path))
	b, err := os.ReadFile(full)
	if err != nil || int64(len(b)) != a.Size {
		return false
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == a.SHA256
}

func (m *Mirror) complete(man *Manifest) bool {
	for _, r := range man.Releases {
		for _, a := range r.Artifacts {
			if !safePath(a.Path) || !m.have(a) {
				return false
			}
		}
	}
	return true
}

func (m *Mirror) install(data, sig []byte, man *Manifest) {
	files := map[string]bool{}
	for _, r := range man.Releases {
		for _, a := range r.Artifacts {
			p := path.Clean(a.Path)
			files[p] = true
			files[p+SignatureExt] = true
		}
	}
	m.mu.Lock()
	m.manifest, m.sig, m.files, m.synced = data, sig, files, time.Now()
	m.mu.Unlock()
}

// prune removes mirrored files the manifest no longer lists.
func (m *Mirror) prune() {
	m.mu.RLock()
	files := m.files
	m.mu.RUnlock()
	_ = filepath.WalkDir(m.cfg.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(m.cfg.Dir, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel != ManifestFile && rel != ManifestSig && !files[rel] {
			_ = os.Remove(p)
		}
		return nil
	})
}

func (m *Mirror) get(ctx context.Context, rel string, limit int64) ([]byte, error) {
	url := strings.TrimSuffix(m.cfg.Upstream, "/") + "/" + rel
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", url, limit)
	}
	return b, nil
}

// ServeHTTP serves the mirrored feed; mount it with http.StripPrefix.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	m.mu.RLock()
	data, sig, files, synced := m.manifest, m.sig, m.files, m.synced
	m.mu.RUnlock()
	switch {
	case data == nil:
		http.Error(w, "feed mirror: nothing mirrored yet", http.StatusServiceUnavailable)
	case p == ManifestFile:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, ManifestFile, synced, bytes.NewReader(data))
	case p == ManifestSig:
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, ManifestSig, synced, bytes.NewReader(sig))
	case files[p]:
		http.ServeFile(w, r, filepath.Join(m.cfg.Dir, filepath.FromSlash(p)))
	default:
		http.NotFound(w, r)
	}
}
