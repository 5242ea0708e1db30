// Command badagent stands in for broken agent releases in the update
// tests. Its behaviour is stamped at build time:
//
//	-ldflags "-X main.mode=exit"  exits with status 1 at once
//	-ldflags "-X main.mode=hang"  ignores SIGTERM and SIGINT and never ends
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

var mode = "exit"

func main() {
	if mode == "hang" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		for {
			<-time.After(time.Hour)
		}
	}
	os.Exit(1)
}
