package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/selfupdate"

	"github.com/falconet/falconet/update/feed"
)

// refusal is a release or manifest refused for a reason the operator sees
// in falconet_update_refused_total{reason}.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(reason string, format string, args ...any) error {
	return &refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// check fetches and verifies the manifest and acts on it.
func (u *Updater) check(ctx context.Context) error {
	err := u.checkOnce(ctx)
	var r *refusal
	if errors.As(err, &r) {
		u.m.refused.WithLabelValues(r.reason).Inc()
		u.setErr(err)
		if u.once("refused:" + err.Error()) {
			u.log.Warn("update refused", "reason", r.reason, "err", r.err)
		}
		return nil
	}
	return err
}

func (u *Updater) checkOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	data, err := u.get(cctx, u.feedURL(feed.ManifestFile), 4<<20)
	if err != nil {
		return err
	}
	sig, err := u.get(cctx, u.feedURL(feed.ManifestSig), 64<<10)
	if err != nil {
		return refuse("unsigned", "manifest signature: %w", err)
	}
	m, err := feed.VerifyManifest(data, sig, u.kr)
	if err != nil {
		if errors.Is(err, feed.ErrBadSignature) {
			return refuse("bad_signature", "%w", err)
		}
		return refuse("bad_manifest", "%w", err)
	}
	s, err := u.st.load()
	if err != nil {
		return err
	}
	if m.Serial < s.Serial {
		return refuse("replay", "manifest serial %d is older than %d seen before (a replayed manifest?)", m.Serial, s.Serial)
	}
	if m.Serial > s.Serial {
		if _, err := u.st.update(func(s *State) error { s.Serial = max(s.Serial, m.Serial); return nil }); err != nil {
			return err
		}
	}
	u.m.manifestSerie.Set(float64(m.Serial))
	plan := feed.Decide(m, feed.Agent{ID: u.cfg.AgentID, Version: u.cfg.Version, Platform: u.cfg.Platform, Bad: s.IsBad})
	switch plan.Action {
	case feed.Revert:
		return u.revert(plan)
	case feed.Update:
		if !u.delivering() {
			if u.once("defer:" + plan.Release.Version) {
				u.log.Info("release deferred: no relay acked a batch recently, so a trial could not prove itself",
					"version", plan.Release.Version, "window", u.cfg.DeliveringWindow)
			}
			return nil
		}
		return u.stage(ctx, plan)
	}
	if plan.Refused != "" {
		reason := map[string]string{"downgrade": "downgrade", "marked bad on this host": "bad_version",
			"no artifact for this platform": "platform", "below min_version": "min_version"}[plan.Refused]
		return refuse(reason, "release %s: %s", plan.Release.Version, plan.Why)
	}
	if u.once("stay:" + plan.Why) {
		u.log.Debug("no update", "why", plan.Why)
	}
	return nil
}

// revert leaves a halted version for the one that ran before it.
func (u *Updater) revert(plan feed.Plan) error {
	if u.IsBase() {
		if u.once("halted-installed") {
			u.log.Warn("the installed version was halted in the feed; nothing older to return to", "version", u.cfg.Version)
		}
		return nil
	}
	v := u.cfg.Version
	s, err := u.st.update(func(s *State) error {
		s.markBad(v, "halted", "halted in the feed", time.Now())
		if s.Current == v {
			s.Current, s.Previous = s.Previous, ""
		}
		if s.Trial != nil && s.Trial.Version == v {
			s.Trial = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.m.rollbacks.WithLabelValues("halted").Inc()
	u.m.showState(&s)
	back := s.Current
	if back == "" {
		back = "the installed binary"
	}
	u.log.Warn("update rolled back: the running version was halted in the feed", "version", v, "back_to", back)
	return &Exec{Path: u.base, Reason: "halted " + v, u: u}
}

// stage downloads, verifies and applies the release into Dir/<version>
// and returns the *Exec that starts it on trial.
func (u *Updater) stage(ctx context.Context, plan feed.Plan) error {
	v, art := plan.Release.Version, plan.Artifact
	rel := path.Clean(art.Path)
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(art.Path, "\\") {
		return refuse("bad_manifest", "release %s: artifact path %q leaves the feed", v, art.Path)
	}
	if art.Size > u.cfg.MaxDownload {
		return refuse("size", "release %s: artifact of %d bytes is larger than the %d allowed", v, art.Size, u.cfg.MaxDownload)
	}
	want, err := hex.DecodeString(art.SHA256)
	if err != nil || len(want) != sha256.Size {
		return refuse("bad_manifest", "release %s: sha256 %q is not a SHA-256", v, art.SHA256)
	}
	dest := u.versionPath(v)
	if have, err := os.ReadFile(dest); err == nil {
		if sum := sha256.Sum256(have); bytes.Equal(sum[:], want) {
			u.log.Info("release already in the versions directory; starting it on trial", "version", v, "path", dest)
			return u.trialExec(plan)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, u.cfg.DownloadTimeout)
	defer cancel()
	start := time.Now()
	data, err := u.get(dctx, u.feedURL(rel), art.Size)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return refuse("truncated", "release %s: truncated download: the connection ended early: %w", v, err)
	}
	if err != nil {
		return fmt.Errorf("release %s: download: %w", v, err)
	}
	if int64(len(data)) < art.Size {
		return refuse("truncated", "release %s: truncated download: %d bytes, want %d", v, len(data), art.Size)
	}
	if int64(len(data)) != art.Size {
		return refuse("size", "release %s: download is %d bytes, want %d", v, len(data), art.Size)
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], want) {
		return refuse("checksum", "release %s: sha256 %x, want %s", v, sum, art.SHA256)
	}
	pk, err := u.kr.Verify(data, []byte(art.Signature))
	if err != nil {
		return refuse("bad_signature", "release %s: artifact: %w", v, err)
	}
	pkText, err := pk.MarshalText()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	sigPath := dest + feed.SignatureExt
	if err := writeFileSync(sigPath, []byte(art.Signature), 0o644); err != nil {
		return err
	}
	verifier := selfupdate.NewVerifier()
	if err := verifier.LoadFromFile(sigPath, string(pkText)); err != nil {
		return fmt.Errorf("release %s: signature: %w", v, err)
	}
	// selfupdate replaces an existing file (keeping the old one at
	// OldSavePath until the new one is in place); a new version directory
	// starts with an empty placeholder.
	if _, err := os.Stat(dest); err != nil {
		if err := os.WriteFile(dest, nil, 0o755); err != nil {
			return err
		}
	}
	old := dest + ".old"
	if err := selfupdate.Apply(bytes.NewReader(data), selfupdate.Options{
		TargetPath: dest, TargetMode: 0o755, Checksum: want, Verifier: verifier, OldSavePath: old,
	}); err != nil {
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("release %s: apply failed and restoring %s failed too: %v (apply: %w)", v, dest, rerr, err)
		}
		return refuse("apply", "release %s: apply: %w", v, err)
	}
	_ = os.Remove(old)
	if err := fsyncFile(dest); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return err
	}
	u.m.applied.Inc()
	u.log.Info("release verified and applied; restarting into it on trial", "version", v, "bytes", len(data),
		"download", time.Since(start).Round(time.Millisecond), "path", dest, "percent", plan.Release.Percent)
	return u.trialExec(plan)
}

func (u *Updater) trialExec(plan feed.Plan) error {
	v := plan.Release.Version
	from := u.cfg.Version
	if u.IsBase() {
		from = ""
	}
	return &Exec{Path: u.versionPath(v), Reason: "trial of " + v, u: u,
		trial: &Trial{Version: v, From: from, Base: u.base, Args: u.cfg.Args}}
}

func fsyncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
