package relay

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/falconet/falconet/internal/confkit"
)

// UpdateConfig is [update]: the agents' release feed this relay mirrors and
// serves at /update/ on its HTTP port (see package update/feed's Mirror),
// so agents that may talk only to their relay can update.
type UpdateConfig struct {
	// Mirror is the upstream feed URL; empty: no mirror.
	Mirror string `toml:"mirror"`
	// MirrorDir keeps the mirrored files across restarts.
	MirrorDir string `toml:"mirror_dir"`
	// MirrorInterval is how often the upstream is checked.
	MirrorInterval confkit.Duration `toml:"mirror_interval"`
}

// DefaultUpdateConfig returns [update]'s defaults.
func DefaultUpdateConfig() UpdateConfig {
	return UpdateConfig{MirrorDir: "/var/lib/falconet/relay/feed", MirrorInterval: confkit.Duration(time.Minute)}
}

func (u *UpdateConfig) validate(httpListen string) error {
	if u.Mirror == "" {
		return nil
	}
	if pu, err := url.Parse(u.Mirror); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return fmt.Errorf("relay.update.mirror: %q: want an http:// or https:// URL", u.Mirror)
	}
	if u.MirrorDir == "" || !filepath.IsAbs(u.MirrorDir) {
		return fmt.Errorf("relay.update.mirror_dir: %q: want an absolute path", u.MirrorDir)
	}
	if d := u.MirrorInterval.D(); d < time.Second {
		return fmt.Errorf("relay.update.mirror_interval: %s: at least 1s", d)
	}
	if httpListen == "" {
		return errors.New("relay.update.mirror: set, but listen.http is empty: the mirror is served on the HTTP port")
	}
	return nil
}

// FeedPath is where the mirrored feed is served on the HTTP port; agents
// use http://RELAY:6060/update as their update.feed.
const FeedPath = "/update/"

// HandleHTTP mounts h under pattern on the relay's HTTP port (call it
// before Run). It fails when listen.http is empty.
func (s *Server) HandleHTTP(pattern string, h http.Handler) error {
	if s.http == nil {
		return errors.New("relay: listen.http is empty")
	}
	s.http.Handle(pattern, h)
	return nil
}
