package buffer_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

var long = flag.Bool("long", false, "run the long crash test (500 kills instead of 50)")

const crashChildEnv = "FALCONET_BUFFER_CRASH_CHILD"

// crashChild appends under load until it is killed: 4 writers, and a reader
// that acks some batches. It prints "A <id>" after an Append returned and
// "K <id>" before acking.
func crashChild() {
	path := os.Getenv(crashChildEnv)
	base, _ := strconv.ParseUint(os.Getenv("FALCONET_BUFFER_CRASH_BASE"), 10, 64)
	cfg := buffer.DefaultConfig()
	cfg.Path = path
	cfg.LockTimeout = 5 * time.Second
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	say := func(s string) {
		mu.Lock()
		os.Stdout.WriteString(s)
		mu.Unlock()
	}
	say("R\n")
	if os.Getenv("FALCONET_BUFFER_CRASH_COMPACT") != "" {
		// compact over and over: a kill can land mid-copy or mid-swap
		go func() {
			for {
				if err := q.Compact(); errors.Is(err, buffer.ErrClosed) {
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for w := range 4 {
		go func() {
			for i := uint64(0); ctx.Err() == nil; i++ {
				id := base + uint64(w)*1_000_000 + i
				if _, err := q.Append(ctx, buffertest.Payload(id, 10, 0), 10); err != nil {
					return
				}
				say("A " + strconv.FormatUint(id, 10) + "\n")
			}
		}()
	}
	go func() {
		for ctx.Err() == nil {
			bs, err := q.Next(ctx, 16)
			if err != nil {
				return
			}
			var acks []uint64
			for i, b := range bs {
				if i%3 == 0 {
					id, _ := buffertest.PayloadID(b.Payload)
					say("K " + strconv.FormatUint(id, 10) + "\n")
					acks = append(acks, b.Seq)
				}
			}
			_ = q.Ack(acks...)
		}
	}()
	<-ctx.Done()
	os.Exit(4) // the parent should have killed us long before
}

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}

// TestCrashKill kills a child appending under load with SIGKILL at random
// points; after each kill every batch whose Append returned must be in the
// file exactly once, and the file must open without salvage.
func TestCrashKill(t *testing.T) {
	rounds := 50
	if *long || os.Getenv("FALCONET_LONG") != "" {
		rounds = 500
	}
	crashRounds(t, rounds, false)
}

// TestCrashKillDuringCompaction is the same with the child compacting the
// file in a loop: a kill mid-copy or mid-swap must lose nothing either.
func TestCrashKillDuringCompaction(t *testing.T) {
	rounds := 20
	if *long || os.Getenv("FALCONET_LONG") != "" {
		rounds = 200
	}
	crashRounds(t, rounds, true)
}

func crashRounds(t *testing.T, rounds int, compact bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "buffer.db")
	mustHave := map[uint64]bool{} // Append returned, nobody acked
	gone := map[uint64]bool{}     // the parent acked and closed: must not come back
	maybe := map[uint64]bool{}    // a child acked: present at most once
	totalAppended := 0
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, "FALCONET_BUFFER_CRASH_BASE="+strconv.Itoa((round+1)*10_000_000))
		if compact {
			cmd.Env = append(cmd.Env, "FALCONET_BUFFER_CRASH_COMPACT=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		lines := make(chan []string, 1)
		go func() {
			var ls []string
			sc := bufio.NewScanner(out)
			first := true
			for sc.Scan() {
				if first && sc.Text() == "R" {
					close(ready)
					first = false
					continue
				}
				ls = append(ls, sc.Text())
			}
			if first {
				close(ready)
			}
			lines <- ls
		}()
		<-ready
		<-time.After(time.Duration(rand.IntN(150_000)) * time.Microsecond) // the random kill point
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		ls := <-lines
		werr := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("round %d: child did not die by SIGKILL: %v; stderr: %s", round, werr, stderr.String())
		}
		for _, l := range ls {
			id, err := strconv.ParseUint(l[2:], 10, 64)
			if err != nil {
				continue // a line cut by the kill
			}
			switch l[0] {
			case 'A':
				if !maybe[id] {
					mustHave[id] = true
				}
				totalAppended++
			case 'K':
				delete(mustHave, id)
				maybe[id] = true
			}
		}

		cfg := testConfig(dir)
		q, err := buffer.Open(cfg, nil, nil)
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		if st := q.Stats(); st.Salvaged != 0 || st.Quarantined != 0 {
			t.Fatalf("round %d: reopen salvaged %d, quarantined %d batches; want a clean file", round, st.Salvaged, st.Quarantined)
		}
		if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) > 0 {
			t.Fatalf("round %d: file was moved aside as corrupt: %v", round, m)
		}
		seen := map[uint64]uint64{}
		want := q.Stats().Batches
		var all []buffer.Batch
		for len(all) < want {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			bs, err := q.Next(c, 1000)
			cancel()
			if err != nil {
				t.Fatalf("round %d: Next after %d of %d: %v", round, len(all), want, err)
			}
			all = append(all, bs...)
		}
		for _, b := range all {
			id, err := buffertest.PayloadID(b.Payload)
			if err != nil {
				t.Fatalf("round %d: batch %d does not decode: %v", round, b.Seq, err)
			}
			if s, dup := seen[id]; dup {
				t.Fatalf("round %d: id %d stored twice (seqs %d and %d)", round, id, s, b.Seq)
			}
			if gone[id] {
				t.Fatalf("round %d: id %d came back after the parent acked it", round, id)
			}
			seen[id] = b.Seq
		}
		for id := range mustHave {
			if _, ok := seen[id]; !ok {
				t.Fatalf("round %d: id %d missing: its Append returned and nobody acked it (%d batches in file)", round, id, len(all))
			}
		}
		// ack half, so the file sees deletes and reuse across rounds
		var acks []uint64
		for i, b := range all {
			if i%2 == 0 {
				id, _ := buffertest.PayloadID(b.Payload)
				acks = append(acks, b.Seq)
				gone[id] = true
				delete(mustHave, id)
				delete(maybe, id)
			}
		}
		if err := q.Ack(acks...); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
	t.Logf("%d kills, %d appends acknowledged to children, %d still required at the end", rounds, totalAppended, len(mustHave))
}
