package update_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/update/feed"
)

// A good release is taken, runs in the same process (exec), proves itself
// and commits; every metric pushed across the update reaches Kafka. Then
// the release is halted and the agent returns to the installed version.
// The agent reaches the feed only through its relay's mirror.
func TestSelfUpdateGoodReleaseThenHalt(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	e.viaRelayMirror()
	a := e.startAgent("good-host", "1.0.0", "20s")
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	a.waitDelivering(30 * time.Second)
	installedSum := sha256File(t, a.installed)
	pid := a.cmd.Process.Pid

	// Push numbered metrics across the update; remember what was accepted.
	stopPush := make(chan struct{})
	var pushWG sync.WaitGroup
	var acceptedMu sync.Mutex
	var accepted []int
	nAccepted := func() int {
		acceptedMu.Lock()
		defer acceptedMu.Unlock()
		return len(accepted)
	}
	pushWG.Add(1)
	go func() {
		defer pushWG.Done()
		c := http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stopPush:
				return
			case <-time.After(50 * time.Millisecond):
			}
			body := fmt.Sprintf(`[{"endpoint":"good-host","metric":"upd.seq","value":%d,"timestamp":%d,"step":1,"counterType":"GAUGE","tags":"seq=%d"}]`,
				i, time.Now().Unix(), i)
			resp, err := c.Post("http://"+a.httpAddr+"/v1/push", "application/json", strings.NewReader(body))
			if err != nil {
				continue // the agent is between processes
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				acceptedMu.Lock()
				accepted = append(accepted, i)
				acceptedMu.Unlock()
			}
		}
	}()

	e.publish("1.1.0", bin(t, "agent-1.1.0"), "", 100)
	start := time.Now()
	a.waitRunning(60*time.Second, "1.1.0", "committed")
	t.Logf("1.1.0 committed %v after publishing", time.Since(start).Round(time.Millisecond))
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasSuffix(exe, "/versions/1.1.0/falconet-agent") {
		t.Fatalf("process %d runs %q (%v), want the same PID running versions/1.1.0/falconet-agent", pid, exe, err)
	}
	a.waitDelivering(30 * time.Second)
	waitFor(t, 10*time.Second, "the watcher gone and reaped (no zombie child)", func() bool { return len(children(pid)) == 0 },
		func() string { return fmt.Sprintf("children of %d: %v", pid, children(pid)) })
	if s := a.state(); s.Current != "1.1.0" || s.Trial != nil || len(s.Bad) != 0 {
		t.Fatalf("state after commit: got %+v, want current 1.1.0, no trial, nothing bad", s)
	}
	atCommit := nAccepted()
	waitFor(t, 10*time.Second, "20 pushes accepted by 1.1.0", func() bool { return nAccepted() >= atCommit+20 }, nil)
	close(stopPush)
	pushWG.Wait()
	if len(accepted) < 10 {
		t.Fatalf("only %d pushes accepted across the update", len(accepted))
	}

	// Every accepted push is in Kafka (at least once; replays carry the
	// same document id, so Elasticsearch stores each once).
	want := map[int]bool{}
	for _, i := range accepted {
		want[i] = true
	}
	var missing []int
	waitFor(t, 30*time.Second, "every accepted push in Kafka", func() bool {
		recs := relaytest.ReadTopic(t, e.kafka.Addr(), "falconet-metrics", 1, 3*time.Second)
		seen := map[int]bool{}
		for _, r := range recs {
			if !bytes.Contains(r.Value, []byte("upd.seq")) {
				continue
			}
			var m metric.Metric
			if err := m.UnmarshalJSON(r.Value); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			n, _ := strconv.Atoi(m.Tags["seq"])
			seen[n] = true
		}
		missing = missing[:0]
		for i := range want {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		return len(missing) == 0
	}, func() string {
		return fmt.Sprintf("%d of %d accepted pushes missing: %v", len(missing), len(want), missing)
	})

	// Halt: the agent returns to the installed 1.0.0 and never retakes 1.1.0.
	if _, err := feed.Halt(e.feedDir, e.key, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	s := a.state()
	if f, bad := s.Bad["1.1.0"]; !bad || f.Reason != "halted" || s.Current != "" {
		t.Fatalf("state after halt: got %+v, want 1.1.0 bad (halted) and current empty", s)
	}
	a.waitDelivering(30 * time.Second)
	if got := sha256File(t, a.installed); got != installedSum {
		t.Fatal("the installed binary changed")
	}
}

// Tampered binary and manifest, wrong key, truncated download, downgrade,
// another platform and a replayed old manifest are refused; the old
// version keeps running.
func TestSelfUpdateRefusals(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	a := e.startAgent("refuse-host", "1.0.0", "20s")
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	a.waitDelivering(30 * time.Second)
	good := bin(t, "agent-1.1.0")
	waitRefused := func(reason string, before float64) {
		t.Helper()
		waitFor(t, 30*time.Second, "refusal "+reason, func() bool {
			return a.value("falconet_update_refused_total", map[string]string{"reason": reason}) > before
		}, func() string { return a.log() })
	}
	refused := func(reason string) float64 {
		return max(0, a.value("falconet_update_refused_total", map[string]string{"reason": reason}))
	}

	e.publish("0.9.0", good, "", 100)
	waitRefused("downgrade", 0)

	e.publish("1.2.0", good, "linux/arm64", 100) // nothing for this host's platform
	waitRefused("platform", 0)

	// Published at 0 %, damaged, then rolled out: no window in which the
	// intact artifact is offered.
	e.publish("1.3.0", good, "", 0)
	art := filepath.Join(e.feedDir, feed.ArtifactPath("1.3.0", "linux", "amd64"))
	data, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff // one flipped byte, same size
	if err := os.WriteFile(art, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.SetPercent(e.feedDir, e.key, 100, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitRefused("checksum", 0)

	e.truncate.Store(feed.ArtifactPath("1.4.0", "linux", "amd64"))
	e.publish("1.4.0", good, "", 100)
	waitRefused("truncated", 0) // 1.4.0 stays cut for the rest of the test

	// A manifest edited after signing (1.5.0 raised from 0 to 100 %).
	e.publish("1.5.0", good, "", 0)
	mpath := filepath.Join(e.feedDir, feed.ManifestFile)
	m, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(m, []byte(`"percent": 0`), []byte(`"percent": 100`), 1)
	if bytes.Equal(edited, m) {
		t.Fatal("test bug: the manifest edit changed nothing")
	}
	bad := refused("bad_signature")
	if err := os.WriteFile(mpath, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	waitRefused("bad_signature", bad)

	// The same manifest properly signed, but by a key the agent does not trust.
	other, err := feed.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	mf, err := feed.ParseManifest(edited)
	if err != nil {
		t.Fatal(err)
	}
	bad = refused("bad_signature")
	if err := feed.WriteManifest(e.feedDir, mf, other, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitRefused("bad_signature", bad)

	// An old manifest, properly signed (serial 2), replayed after newer
	// ones were seen: refused, so a replay cannot undo a halt.
	old := &feed.Manifest{Format: 1, Serial: 1, Releases: mf.Releases[:1]}
	if err := feed.WriteManifest(e.feedDir, old, e.key, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitRefused("replay", 0)

	if v, s := a.running(); v != "1.0.0" || s != "installed" {
		t.Fatalf("after the refusals: running %s (%s), want 1.0.0 (installed)", v, s)
	}
	select {
	case <-a.exited:
		t.Fatal("the agent process exited")
	default:
	}
	for _, v := range []string{"0.9.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"} {
		if fi, err := os.Stat(filepath.Join(a.dir, "data", "versions", v, "falconet-agent")); err == nil && fi.Size() > 0 {
			t.Errorf("versions/%s/falconet-agent was written (%d bytes); a refused release must not be applied", v, fi.Size())
		}
	}
	a.waitDelivering(10 * time.Second)
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// children lists the processes whose parent is pid ("PID STATE" each).
func children(pid int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[bytes.LastIndexByte(b, ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, e.Name()+" "+f[0])
		}
	}
	return out
}
