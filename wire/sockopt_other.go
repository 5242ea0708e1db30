//go:build !linux

package wire

import (
	"net"
	"syscall"
	"time"
)

// SetUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist; write
// deadlines and heartbeats still bound how long a dead link goes unnoticed.
func SetUserTimeout(c net.Conn, d time.Duration) error { return nil }

// DialControl is a no-op where TCP_USER_TIMEOUT does not exist.
func DialControl(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
