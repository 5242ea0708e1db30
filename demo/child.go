package demo

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is one process of the demo, in its own process group so that a
// signal reaches whatever it started too.
type child struct {
	member Member
	argv   []string
	cmd    *exec.Cmd
	done   chan struct{}
}

// start runs the process with stdout and stderr appended to its log file. A
// goroutine owned by the child waits for it; done closes when it has exited.
func (c *child) start() error {
	f, err := os.OpenFile(c.member.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", c.member.Name, err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	c.member.Pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return nil
}

func (c *child) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *child) signal(sig syscall.Signal) {
	if c.running() {
		_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit, then SIGKILL.
func (c *child) stop(grace time.Duration) {
	if !c.running() {
		return
	}
	c.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.signal(syscall.SIGKILL)
		<-c.done
	}
}

// kill sends SIGKILL and waits for the exit.
func (c *child) kill() {
	c.signal(syscall.SIGKILL)
	if c.done != nil {
		<-c.done
	}
}

func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
