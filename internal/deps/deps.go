//go:build deps

// Package deps pins the heavy dependencies in go.mod while the packages that
// use them are being written in parallel, so that go.mod does not churn. It
// is never built (build tag "deps"); delete an import here once a real
// package uses it.
package deps

import (
	_ "github.com/IBM/sarama"
	_ "github.com/olivere/elastic/v7"
	_ "github.com/shirou/gopsutil/v4/cpu"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
)
