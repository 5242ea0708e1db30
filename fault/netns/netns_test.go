//go:build fault

package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialFrom connects from inside node src to addr with a timeout, using bash's
// /dev/tcp so no helper binary is needed.
func dialFrom(src *Node, addr string, timeout time.Duration) error {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+2*time.Second)
	defer cancel()
	out, err := src.Exec(ctx, "timeout", fmt.Sprintf("%.1f", timeout.Seconds()), "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && echo hi >&3", host, port))
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func TestNetwork(t *testing.T) {
	n := New(t, t.TempDir())
	a, err := n.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddNode("b")
	if err != nil {
		t.Fatal(err)
	}
	// The listener in b is this test binary re-executed in b's namespace.
	lis, err := b.Start("echo", []string{"FALCONET_NETNS_LISTEN=:7000"}, os.Args[0], "-test.run=^TestHelperListener$")
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(10*time.Second, 50*time.Millisecond, func() error { return dialFrom(a, b.Addr(7000), time.Second) }); err != nil {
		t.Fatalf("a cannot reach b: %v\n%s", err, lis.Tail(2000))
	}
	// The root namespace reaches b too.
	if err := WaitTCP(b.Addr(7000), 5*time.Second); err != nil {
		t.Fatalf("host cannot reach b: %v", err)
	}

	t.Run("blackhole", func(t *testing.T) {
		if err := a.Blackhole(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := dialFrom(a, b.Addr(7000), 2*time.Second)
		if err == nil {
			t.Fatal("connect through a blackhole succeeded")
		}
		// Silent: the connect must hang until our timeout, not fail fast with a
		// refusal or unreachable error.
		if el := time.Since(start); el < 1900*time.Millisecond {
			t.Fatalf("connect failed after %v (%v), want a silent hang of 2s", el, err)
		}
		if err := a.Unblackhole(); err != nil {
			t.Fatal(err)
		}
		if err := WaitFor(5*time.Second, 50*time.Millisecond, func() error { return dialFrom(a, b.Addr(7000), time.Second) }); err != nil {
			t.Fatalf("after unblackhole: %v", err)
		}
	})

	t.Run("blackhole-silent", func(t *testing.T) {
		// Premise: without the blackhole, a connect to a closed port is refused.
		if _, err := net.DialTimeout("tcp", a.Addr(1), time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("connect to a:1 without blackhole: %v, want connection refused", err)
		}
		if err := a.Blackhole(); err != nil {
			t.Fatal(err)
		}
		defer a.Unblackhole()
		// Nothing listens on a:1; without the blackhole a connect is refused at
		// once (RST). Through it, the connect must time out: no RST comes back.
		c, err := net.DialTimeout("tcp", a.Addr(1), time.Second)
		if err == nil {
			c.Close()
			t.Fatal("connect to a:1 through the blackhole succeeded")
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("connect to a:1 through the blackhole: %v, want a timeout (silence, no RST)", err)
		}
		// From the host (not blackholed) to b still works.
		if err := WaitTCP(b.Addr(7000), 2*time.Second); err != nil {
			t.Fatalf("host to b during a's blackhole: %v", err)
		}
	})

	t.Run("link-down", func(t *testing.T) {
		if err := a.LinkDown(); err != nil {
			t.Fatal(err)
		}
		if err := dialFrom(a, b.Addr(7000), 1500*time.Millisecond); err == nil {
			t.Fatal("connect with the link down succeeded")
		}
		out, _ := a.Exec(context.Background(), "ip", "link", "show", "eth0")
		if !strings.Contains(string(out), "NO-CARRIER") {
			t.Errorf("a's eth0 with the cable pulled: %s, want NO-CARRIER", out)
		}
		if err := a.LinkUp(); err != nil {
			t.Fatal(err)
		}
		if err := WaitFor(10*time.Second, 50*time.Millisecond, func() error { return dialFrom(a, b.Addr(7000), time.Second) }); err != nil {
			t.Fatalf("after link up: %v", err)
		}
	})

	t.Run("kill-restart", func(t *testing.T) {
		pid := lis.Pid()
		lis.Kill()
		if lis.Running() {
			t.Fatal("still running after Kill")
		}
		if err := syscall.Kill(pid, 0); err == nil {
			t.Fatalf("pid %d still exists after Kill", pid)
		}
		if err := dialFrom(a, b.Addr(7000), time.Second); err == nil {
			t.Fatal("connect to a killed listener succeeded")
		}
		if err := lis.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := WaitFor(10*time.Second, 50*time.Millisecond, func() error { return dialFrom(a, b.Addr(7000), time.Second) }); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if err := lis.Stop(5 * time.Second); err != nil && !isSignalExit(err) {
			t.Fatalf("stop: %v", err)
		}
	})
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// TestHelperListener is the listener process the network test runs inside a
// namespace; it does nothing in a normal run.
func TestHelperListener(t *testing.T) {
	addr := os.Getenv("FALCONET_NETNS_LISTEN")
	if addr == "" {
		t.Skip("helper process for TestNetwork")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(buf)
			c.Close()
		}()
	}
}

func TestSweep(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	// A namespace that looks like the leftover of a dead run.
	name := fmt.Sprintf("%s%d-left", namePrefix, 999999999)
	if err := run("ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	removed := Sweep()
	found := false
	for _, r := range removed {
		if r == name {
			found = true
		}
	}
	if !found {
		run("ip", "netns", "del", name)
		t.Fatalf("Sweep removed %v, want it to include %s", removed, name)
	}
	// And it never touches a live run's namespaces.
	n, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, r := range Sweep() {
		if strings.HasPrefix(r, n.prefix) {
			t.Fatalf("Sweep removed %s of a live run", r)
		}
	}
}

func TestDialInside(t *testing.T) {
	n := New(t, t.TempDir())
	a, err := n.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	// A listener on a's loopback: unreachable from the root namespace,
	// reachable through a's dialer.
	lis, err := a.Start("lo-listener", []string{"FALCONET_NETNS_LISTEN=127.0.0.1:7001"}, os.Args[0], "-test.run=^TestHelperListener$")
	if err != nil {
		t.Fatal(err)
	}
	err = WaitFor(10*time.Second, 50*time.Millisecond, func() error {
		c, err := a.DialContext(context.Background(), "tcp", "127.0.0.1:7001")
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatalf("dial a's loopback from inside a: %v\n%s", err, lis.Tail(1000))
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:7001", time.Second); err == nil {
		c.Close()
		t.Fatal("a's loopback listener reachable from the root namespace")
	}
}
