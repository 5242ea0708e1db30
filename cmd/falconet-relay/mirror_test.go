package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/update/feed"
)

// [update] mirror: the relay serves the upstream feed at /update/ on its
// HTTP port, byte for byte, and the mirrored manifest verifies.
func TestUpdateMirror(t *testing.T) {
	k := devstack.StartKafkaT(t, "falconet-metrics")
	key, err := feed.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	up := t.TempDir()
	bin := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(bin, bytes.Repeat([]byte{0x7f}, 10000), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Publish(up, key, "1.2.3", []feed.Binary{{Path: bin, Platform: "linux/amd64"}}, feed.PublishOptions{Percent: 100}); err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(http.FileServer(http.Dir(up)))
	defer upstream.Close()

	httpAddr := freePort(t)
	conf := filepath.Join(t.TempDir(), "relay.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[listen]
protocol = %q
legacy = ""
http = %q
[kafka]
brokers = [%q]
[discovery]
bind = ""
[update]
mirror = %q
mirror_dir = %q
mirror_interval = "1s"
`, freePort(t), httpAddr, k.Addr(), upstream.URL, filepath.Join(t.TempDir(), "feed"))), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-config", conf}, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("relay exit %d", code)
			}
		case <-time.After(40 * time.Second):
			t.Error("relay did not stop")
		}
	}()
	get := func(p string) (int, []byte) {
		resp, err := http.Get("http://" + httpAddr + "/update/" + p)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get(feed.ManifestFile); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay did not serve the mirrored manifest within 20 s")
		}
		<-time.After(50 * time.Millisecond)
	}
	for _, p := range []string{feed.ManifestFile, feed.ManifestSig, feed.ArtifactPath("1.2.3", "linux", "amd64")} {
		want, err := os.ReadFile(filepath.Join(up, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if code, got := get(p); code != http.StatusOK || !bytes.Equal(got, want) {
			t.Errorf("/update/%s: got %d and %d bytes, want 200 and the upstream's %d bytes", p, code, len(got), len(want))
		}
	}
	_, data := get(feed.ManifestFile)
	_, sig := get(feed.ManifestSig)
	kr, _ := feed.ParseKeyring([]string{key.PublicKey()})
	if _, err := feed.VerifyManifest(data, sig, kr); err != nil {
		t.Fatalf("mirrored manifest: %v", err)
	}
}
