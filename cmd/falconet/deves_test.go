package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevESCommand runs `falconet dev-es` in-process: the URL is the first
// line of stdout, the server answers, and it stops when the context ends.
func TestDevESCommand(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	t.Cleanup(func() { os.Stdout = old })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDevES(ctx, []string{"-listen", "127.0.0.1:0", "-data", t.TempDir()}) }()
	line, err := bufio.NewReader(r).ReadString('\n')
	os.Stdout = old
	if err != nil {
		t.Fatalf("reading the URL: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line: got %q, want http://127.0.0.1:PORT", url)
	}
	res, err := http.Get(url + "/")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /: %v %v", res, err)
	}
	res.Body.Close()
	// SIGUSR1: goes away; SIGUSR2: back on the same port
	waitFor := func(up bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := http.Get(url + "/")
			if err == nil {
				res.Body.Close()
			}
			if (err == nil) == up {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("dev-es up=%v not reached: %v", up, err)
			}
			<-time.After(20 * time.Millisecond)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(false)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(true)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev-es returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("dev-es did not stop within 10 s")
	}
	// neither -data nor -memory: a usage error
	var ee exitError
	if err := runDevES(context.Background(), nil); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("no -data: got %v, want exit status 2", err)
	}
}
