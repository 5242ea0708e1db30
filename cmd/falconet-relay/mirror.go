package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/update/feed"
)

// startMirror serves the agents' release feed mirrored from [update]
// mirror at /update/ on the relay's HTTP port. The returned wait blocks
// until the mirror stopped (after ctx ended).
func startMirror(ctx context.Context, cfg relay.Config, srv *relay.Server, logger *slog.Logger) (wait func(), err error) {
	if cfg.Update.Mirror == "" {
		return func() {}, nil
	}
	m, err := feed.NewMirror(feed.MirrorConfig{Upstream: cfg.Update.Mirror, Dir: cfg.Update.MirrorDir,
		Interval: cfg.Update.MirrorInterval.D()}, logger)
	if err != nil {
		return nil, err
	}
	if err := srv.HandleHTTP(relay.FeedPath, http.StripPrefix(strings.TrimSuffix(relay.FeedPath, "/"), m)); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	logger.Info("mirroring the release feed", "upstream", cfg.Update.Mirror, "dir", cfg.Update.MirrorDir, "path", relay.FeedPath)
	return wg.Wait, nil
}
