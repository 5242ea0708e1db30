package feed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

func mustKey(t *testing.T) SecretKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSecretKeyRoundTrip(t *testing.T) {
	k := mustKey(t)
	for _, pw := range []string{"", "correct horse"} {
		data, err := k.Marshal(pw, testCost)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseSecretKey(data, func() (string, error) { return pw, nil })
		if err != nil {
			t.Fatalf("password %q: ParseSecretKey: %v", pw, err)
		}
		if got.ID() != k.ID() || got.PublicKey() != k.PublicKey() {
			t.Fatalf("password %q: got key %X %s, want %X %s", pw, got.ID(), got.PublicKey(), k.ID(), k.PublicKey())
		}
	}
	enc, _ := k.Marshal("right", testCost)
	if _, err := ParseSecretKey(enc, func() (string, error) { return "wrong", nil }); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password: got %v, want ErrBadPassword", err)
	}
	if _, err := ParseSecretKey([]byte("untrusted comment: x\nbm90IGEga2V5\n"), nil); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("garbage key: got %v, want ErrBadKeyFile", err)
	}
}

// The encrypted format is minisign's: aead.dev/minisign decrypts it and
// its signatures verify with our public key text.
func TestEncryptedKeyReadByMinisignLibrary(t *testing.T) {
	k := mustKey(t)
	data, err := k.Marshal("pw", testCost)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := minisign.DecryptKey("pw", data)
	if err != nil {
		t.Fatalf("minisign.DecryptKey: %v", err)
	}
	pub, err := ParsePublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if !minisign.Verify(pub, msg, minisign.Sign(priv, msg)) {
		t.Fatal("a signature by the decrypted key does not verify with our public key")
	}
}

func TestSignVerify(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	kr, err := ParseKeyring([]string{other.PublicKey(), k.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("release bytes")
	sig := k.Sign(msg, "c")
	if pk, err := kr.Verify(msg, sig); err != nil || pk.ID() != k.ID() {
		t.Fatalf("Verify: got key %X, err %v; want key %X", pk.ID(), err, k.ID())
	}
	if _, err := kr.Verify([]byte("release bytez"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered message: got %v, want ErrBadSignature", err)
	}
	only, _ := ParseKeyring([]string{other.PublicKey()})
	if _, err := only.Verify(msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: got %v, want ErrBadSignature", err)
	}
}

func TestVersionOrder(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0},
		{"v1.2.3", "1.2.3", 0},
		{"1.2.3", "1.2.4", -1},
		{"1.10.0", "1.9.9", 1},
		{"2.0.0", "1.99.99", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-rc.2", "1.0.0-rc.10", -1},
		{"1.0.0-alpha", "1.0.0-beta", -1},
		{"dev", "0.0.1", -1},
		{"abc1234-dirty", "1.0.0", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q): got %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// Rollout percentages select the expected share of 1,000 agent ids, and a
// higher percentage keeps everyone a lower one selected.
func TestRolloutOverThousandAgents(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("host-%04d.dc1.example", i)
	}
	for _, v := range []string{"1.4.0", "1.5.0"} {
		prev := map[string]bool{}
		for _, pct := range []int{0, 1, 10, 25, 50, 90, 100} {
			n := 0
			cur := map[string]bool{}
			for _, id := range ids {
				if Eligible(id, v, pct) {
					n++
					cur[id] = true
				}
			}
			// Binomial(1000, p): allow 4 standard deviations.
			p := float64(pct) / 100
			sd := 4 * sqrt(1000*p*(1-p))
			if want := 1000 * p; float64(n) < want-sd-1 || float64(n) > want+sd+1 {
				t.Errorf("version %s at %d %%: %d of 1000 agents eligible, want %.0f ± %.0f", v, pct, n, want, sd)
			}
			for id := range prev {
				if !cur[id] {
					t.Errorf("version %s: %s eligible at a lower percentage but not at %d %%", v, id, pct)
				}
			}
			prev = cur
		}
	}
	// Different versions pick different first waves.
	same := 0
	for _, id := range ids {
		if Eligible(id, "1.4.0", 10) && Eligible(id, "1.5.0", 10) {
			same++
		}
	}
	if same > 40 {
		t.Errorf("%d agents in the first 10 %% wave of both 1.4.0 and 1.5.0; want about 10 (independent waves)", same)
	}
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		if z == 0 {
			return 0
		}
		z -= (z*z - x) / (2 * z)
	}
	return z
}

func TestDecide(t *testing.T) {
	art := Artifact{Path: "x", Size: 1, SHA256: strings.Repeat("a", 64), Signature: "s"}
	rel := func(v string, pct int, mods ...func(*Release)) Release {
		r := Release{Version: v, Percent: pct, Artifacts: map[string]Artifact{"linux/amd64": art}}
		for _, m := range mods {
			m(&r)
		}
		return r
	}
	halted := func(r *Release) { r.Halted = true }
	rollback := func(r *Release) { r.Rollback = true }
	arm := func(r *Release) { r.Artifacts = map[string]Artifact{"linux/arm64": art} }
	minv := func(r *Release) { r.MinVersion = "1.1.0" }
	agent := Agent{ID: "h1", Version: "1.0.0", Platform: "linux/amd64", Bad: func(v string) bool { return v == "1.6.6" }}
	tests := []struct {
		name        string
		rels        []Release
		agent       Agent
		want        Action
		wantVersion string
		wantRefused string
	}{
		{"newer at 100 %", []Release{rel("1.1.0", 100)}, agent, Update, "1.1.0", ""},
		{"up to date", []Release{rel("1.0.0", 100)}, agent, Stay, "1.0.0", ""},
		{"at 0 %", []Release{rel("1.1.0", 0)}, agent, Stay, "1.1.0", ""},
		{"downgrade", []Release{rel("0.9.0", 100)}, agent, Stay, "0.9.0", "downgrade"},
		{"rollback release", []Release{rel("0.9.0", 100, rollback)}, agent, Update, "0.9.0", ""},
		{"bad here", []Release{rel("1.6.6", 100)}, agent, Stay, "1.6.6", "marked bad on this host"},
		{"other platform", []Release{rel("1.1.0", 100, arm)}, agent, Stay, "1.1.0", "no artifact for this platform"},
		{"min version", []Release{rel("1.2.0", 100, minv)}, agent, Stay, "1.2.0", "below min_version"},
		{"newest halted: previous one", []Release{rel("1.1.0", 100), rel("1.2.0", 100, halted)}, agent, Update, "1.1.0", ""},
		{"running version halted", []Release{rel("1.0.0", 100, halted)}, agent, Revert, "1.0.0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(&Manifest{Format: 1, Releases: tt.rels}, tt.agent)
			if p.Action != tt.want || p.Release == nil || p.Release.Version != tt.wantVersion || p.Refused != tt.wantRefused {
				v := ""
				if p.Release != nil {
					v = p.Release.Version
				}
				t.Fatalf("got action %d release %q refused %q (%s); want %d %q %q", p.Action, v, p.Refused, p.Why, tt.want, tt.wantVersion, tt.wantRefused)
			}
		})
	}
}

// publish, rollout and halt through the feed directory; the manifest
// verifies only with the right key and only untampered.
func TestPublishRolloutHalt(t *testing.T) {
	dir := t.TempDir()
	k := mustKey(t)
	bin := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(dir, k, "1.1.0", []Binary{{Path: bin}}, PublishOptions{Percent: 5}); err == nil ||
		!strings.Contains(err.Error(), "FILE=os/arch") {
		t.Fatalf("publish of a non-Go file without os/arch: got %v, want an error asking for FILE=os/arch", err)
	}
	if _, err := Publish(dir, k, "1.1.0", []Binary{{Path: bin, Platform: "linux/amd64"}}, PublishOptions{Percent: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(dir, k, "1.1.0", []Binary{{Path: bin, Platform: "linux/amd64"}}, PublishOptions{}); err == nil {
		t.Fatal("publishing 1.1.0 twice: got nil, want an error")
	}
	if _, err := SetPercent(dir, k, 50, time.Now()); err != nil {
		t.Fatal(err)
	}
	kr, _ := ParseKeyring([]string{k.PublicKey()})
	read := func() ([]byte, []byte) {
		m, err := os.ReadFile(filepath.Join(dir, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		s, err := os.ReadFile(filepath.Join(dir, ManifestSig))
		if err != nil {
			t.Fatal(err)
		}
		return m, s
	}
	data, sig := read()
	m, err := VerifyManifest(data, sig, kr)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Latest(); r == nil || r.Version != "1.1.0" || r.Percent != 50 || m.Serial != 2 {
		t.Fatalf("after rollout: got %+v serial %d, want 1.1.0 at 50 %% serial 2", r, m.Serial)
	}
	tampered := []byte(strings.Replace(string(data), `"percent": 50`, `"percent": 100`, 1))
	if _, err := VerifyManifest(tampered, sig, kr); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered manifest: got %v, want ErrBadSignature", err)
	}
	wrong, _ := ParseKeyring([]string{mustKey(t).PublicKey()})
	if _, err := VerifyManifest(data, sig, wrong); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: got %v, want ErrBadSignature", err)
	}
	if _, err := Halt(dir, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	data, sig = read()
	if m, err = VerifyManifest(data, sig, kr); err != nil || !m.Releases[0].Halted || m.Latest() != nil {
		t.Fatalf("after halt: got %+v, %v; want the only release halted", m, err)
	}
}

// A feed signed with the Debian minisign command (with its own key) is
// accepted, and the minisign command verifies what
// falconet signs.
func TestMinisignCommandInterop(t *testing.T) {
	mini, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatal("the minisign command is not installed (apt-get install minisign; .ci/run does)")
	}
	dir := t.TempDir()
	pubPath, secPath := filepath.Join(dir, "mini.pub"), filepath.Join(dir, "mini.key")
	run := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(mini, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("minisign %v: %v\n%s", args, err, out)
		}
	}
	run("", "-G", "-W", "-p", pubPath, "-s", secPath)
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ParseKeyring([]string{string(pub)})
	if err != nil {
		t.Fatal(err)
	}
	// Sign an artifact and then the manifest with the command.
	feedDir := filepath.Join(dir, "feed")
	art := filepath.Join(feedDir, ArtifactPath("2.0.0", "linux", "amd64"))
	if err := os.MkdirAll(filepath.Dir(art), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(art, []byte("binary bytes"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("", "-S", "-s", secPath, "-m", art)
	artSig, err := os.ReadFile(art + SignatureExt)
	if err != nil {
		t.Fatal(err)
	}
	entry := SignArtifact(mustKey(t), ArtifactPath("2.0.0", "linux", "amd64"), []byte("binary bytes"))
	entry.Signature = string(artSig)
	m := &Manifest{Format: 1, Serial: 7, Releases: []Release{{Version: "2.0.0", Percent: 100,
		Artifacts: map[string]Artifact{"linux/amd64": entry}}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(feedDir, ManifestFile)
	if err := os.WriteFile(mpath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run("", "-S", "-s", secPath, "-m", mpath)
	msig, err := os.ReadFile(mpath + SignatureExt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyManifest(data, msig, kr)
	if err != nil {
		t.Fatalf("manifest signed by the minisign command: %v", err)
	}
	if _, err := kr.Verify([]byte("binary bytes"), []byte(got.Releases[0].Artifacts["linux/amd64"].Signature)); err != nil {
		t.Fatalf("artifact signed by the minisign command: %v", err)
	}
	// The other way: a falconet key and signature, checked by the command;
	// and the command's unencrypted key (-W) read by falconet.
	k := mustKey(t)
	fpub := filepath.Join(dir, "f.pub")
	if err := os.WriteFile(fpub, k.PublicKeyFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(art+SignatureExt, k.Sign([]byte("binary bytes"), "t"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("", "-V", "-p", fpub, "-m", art)
	// And the command's key (made with -W) signs with falconet.
	wk, err := ReadSecretKey(secPath, nil)
	if err != nil {
		t.Fatalf("reading the minisign -W key: %v", err)
	}
	if !strings.Contains(string(pub), wk.PublicKey()) {
		t.Fatalf("public key of the minisign -W key: got %s, want it inside %s", wk.PublicKey(), pub)
	}
	if _, err := kr.Verify(data, wk.Sign(data, "t")); err != nil {
		t.Fatalf("falconet signature with the minisign key: %v", err)
	}
}

// testCost keeps scrypt cheap under the race detector (1 MiB).
var testCost = KeyCost{Ops: 1 << 15, Mem: 1 << 20}
