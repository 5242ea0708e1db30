// Command pkgbuild builds falconet's deb and rpm packages from
// .goreleaser.yaml with nfpm, for machines without goreleaser (make packages
// uses it then). See package packaging/pkgbuild.
//
//	go run ./packaging/cmd/pkgbuild -config .goreleaser.yaml -dist dist [-version 1.2.3] [-arch amd64,arm64] [-package falconet-agent] [-format deb]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/falconet/falconet/packaging/pkgbuild"
)

func main() {
	config := flag.String("config", ".goreleaser.yaml", "goreleaser configuration")
	dist := flag.String("dist", "dist", "output directory")
	version := flag.String("version", "", "package version (default: from git, as goreleaser)")
	arches := flag.String("arch", "", "comma-separated goarch list (default: every goarch of the builds)")
	packages := flag.String("package", "", "comma-separated nfpms ids (default: all)")
	formats := flag.String("format", "", "comma-separated formats (default: each entry's formats)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := pkgbuild.Load(*config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, err = cfg.Build(ctx, pkgbuild.Options{
		Dist: *dist, Version: *version,
		Arches: split(*arches), Packages: split(*packages), Formats: split(*formats),
		Log: os.Stdout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
