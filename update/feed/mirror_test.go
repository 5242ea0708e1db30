package feed

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestMirror(t *testing.T) {
	k := mustKey(t)
	kr, _ := ParseKeyring([]string{k.PublicKey()})
	up := t.TempDir()
	bin := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("falconet"), 4096), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(up, k, "1.1.0", []Binary{{Path: bin, Platform: "linux/amd64"}}, PublishOptions{Percent: 10}); err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(http.FileServer(http.Dir(up)))
	defer upstream.Close()

	dir := t.TempDir()
	m, err := NewMirror(MirrorConfig{Upstream: upstream.URL, Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/update", m))
	defer srv.Close()
	if code, _ := httpGet(t, srv.URL+"/update/manifest.json"); code != http.StatusServiceUnavailable {
		t.Fatalf("before the first sync: got %d, want 503", code)
	}
	ctx := context.Background()
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	verify := func() *Manifest {
		t.Helper()
		_, data := httpGet(t, srv.URL+"/update/manifest.json")
		_, sig := httpGet(t, srv.URL+"/update/manifest.json.minisig")
		man, err := VerifyManifest(data, sig, kr)
		if err != nil {
			t.Fatalf("mirrored manifest: %v", err)
		}
		return man
	}
	man := verify()
	a := man.Releases[0].Artifacts["linux/amd64"]
	want, _ := os.ReadFile(bin)
	if code, got := httpGet(t, srv.URL+"/update/"+a.Path); code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("mirrored artifact: got %d, %d bytes; want 200 and the %d published bytes", code, len(got), len(want))
	}
	if code, _ := httpGet(t, srv.URL+"/update/../../etc/passwd"); code != http.StatusNotFound {
		t.Fatalf("path outside the manifest: got %d, want 404", code)
	}

	// A change upstream (rollout) arrives with the next sync.
	if _, err := SetPercent(up, k, 60, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := verify().Releases[0].Percent; got != 60 {
		t.Fatalf("after the rollout: mirrored percent %d, want 60", got)
	}

	// A new release whose upstream artifact does not match its manifest:
	// the mirror keeps serving the last complete copy.
	if _, err := Publish(up, k, "1.2.0", []Binary{{Path: bin, Platform: "linux/amd64"}}, PublishOptions{Percent: 100}); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(up, filepath.FromSlash(ArtifactPath("1.2.0", "linux", "amd64")))
	if err := os.WriteFile(art, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("sync with a damaged upstream artifact: got %v, want an error naming the sha256", err)
	}
	if got := verify(); len(got.Releases) != 1 {
		t.Fatalf("after a failed sync: %d releases served, want the last complete manifest (1)", len(got.Releases))
	}

	// Upstream gone; a restarted mirror still serves its copy from disk.
	upstream.Close()
	m2, err := NewMirror(MirrorConfig{Upstream: upstream.URL, Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Sync(ctx); err == nil {
		t.Fatal("sync with the upstream down: got nil, want an error")
	}
	srv2 := httptest.NewServer(http.StripPrefix("/update", m2))
	defer srv2.Close()
	if code, got := httpGet(t, srv2.URL+"/update/"+a.Path); code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("restarted mirror, upstream down: got %d, %d bytes; want 200 and the artifact", code, len(got))
	}
}
