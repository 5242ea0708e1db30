# falconet: make help lists the targets.
SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X github.com/falconet/falconet/internal/version.Version=$(VERSION) \
              -X github.com/falconet/falconet/internal/version.Commit=$(COMMIT)
BINARIES   := $(notdir $(wildcard cmd/*))
TEST_FLAGS ?= -race -timeout 20m
GO_MIN     := $(shell sed -n 's/^go //p' go.mod)
# make test runs this staticcheck; `make tools` installs it.
STATICCHECK_VERSION := 0.8.2
STATICCHECK := $(shell command -v staticcheck 2>/dev/null || echo "$$($(GO) env GOPATH 2>/dev/null)/bin/staticcheck")
# Where test-fault writes its log (the fault tests write their report and logs under $TMPDIR too).
FAULT_TMP  := $(or $(TMPDIR),/tmp)

.PHONY: help go-version tools build test test-short test-fault test-fault-soak test-packages packages bench demo lint tidy-check clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

go-version: ## check that the Go on PATH is at least go.mod's version (build, test and demo do it first)
	@have=$$($(GO) env GOVERSION 2>/dev/null) || { echo "Go not found on PATH: falconet needs Go $(GO_MIN) or newer (README: Quick start)"; exit 1; }; \
	 have=$${have#go}; \
	 if [ "$$(printf '%s\n' "$(GO_MIN)" "$$have" | sort -V | head -1)" != "$(GO_MIN)" ]; then \
	   echo "Go $$have is too old: falconet needs Go $(GO_MIN) or newer (README: Quick start says how to get it)"; exit 1; fi

# The package tests (root) need nfpm and goreleaser; goreleaser takes minutes to build, so each tool is
# installed only when missing.
NFPM_VERSION       := 2.45.2
GORELEASER_VERSION := 2.15.1
GOBIN_DIR          := $(shell $(GO) env GOPATH 2>/dev/null)/bin
tools: go-version ## install the pinned tools make test runs: staticcheck 0.8.2, nfpm, goreleaser (into $(go env GOPATH)/bin)
	@"$(STATICCHECK)" -version 2>/dev/null | grep -qF "($(STATICCHECK_VERSION))" || \
	 { echo "installing staticcheck $(STATICCHECK_VERSION)"; $(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION); }
	@command -v nfpm >/dev/null || [ -x "$(GOBIN_DIR)/nfpm" ] || \
	 { echo "installing nfpm $(NFPM_VERSION)"; $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@v$(NFPM_VERSION); }
	@command -v goreleaser >/dev/null || [ -x "$(GOBIN_DIR)/goreleaser" ] || \
	 { echo "installing goreleaser $(GORELEASER_VERSION) (a few minutes to build, once)"; $(GO) install github.com/goreleaser/goreleaser/v2@v$(GORELEASER_VERSION); }

build: go-version ## build every binary into bin/, version stamped from git
	@mkdir -p bin
	@for b in $(BINARIES); do $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$b ./cmd/$$b || exit 1; done
	@ls bin

test: build ## everything CI runs: vet, staticcheck, unit and integration tests under -race (a 24 s demo run with a relay kill among them), fault tests (root)
	$(GO) vet ./...
	$(GO) vet -tags fault ./...
	@if ! "$(STATICCHECK)" -version 2>/dev/null | grep -qF "($(STATICCHECK_VERSION))"; then \
	   echo "staticcheck $(STATICCHECK_VERSION) is not installed (make test runs it): run  make tools  (go install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION))"; exit 1; fi
	"$(STATICCHECK)" ./...
	"$(STATICCHECK)" -tags fault ./fault/...
	FALCONET_BIN_DIR=$(CURDIR)/bin $(GO) test $(TEST_FLAGS) ./...
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fault; \
	 else echo "test-fault: skipped, needs root for network namespaces (CI runs as root)"; fi
	@$(MAKE) --no-print-directory test-packages

test-short: go-version ## quick unit tests, no race detector (skips the demo run)
	$(GO) test -short ./...

test-fault: build ## network-namespace fault tests (root); log and report table in $TMPDIR (default /tmp): falconet-fault.log, falconet-fault-report.md
	$(GO) test -tags fault -timeout 20m -count=1 -p 1 -v ./fault/... 2>&1 | tee $(FAULT_TMP)/falconet-fault.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|\||fault suite|report)|_test.go' ; exit $${PIPESTATUS[0]}

test-packages: ## package tests (root): debs/rpms from .goreleaser.yaml installed, upgraded, removed, purged in a scratch root; rpm -qp; systemd-analyze verify
	FALCONET_PACKAGE_TEST=1 $(GO) test -count=1 -v -timeout 15m ./packaging/
	FALCONET_PACKAGE_TEST=1 $(GO) test -count=1 -v -timeout 10m -run '^TestPackagedAgentSelfUpdate$$' ./update/

# goreleaser when installed (go install github.com/goreleaser/goreleaser/v2@v2.15.1), otherwise the same
# .goreleaser.yaml through nfpm (packaging/cmd/pkgbuild); a tagged clean HEAD gives a release version.
packages: ## deb and rpm packages of every binary for amd64 and arm64 into dist/, from .goreleaser.yaml
	@rm -rf dist
	@if command -v goreleaser >/dev/null; then \
	   if git describe --tags --exact-match --match 'v[0-9]*' >/dev/null 2>&1 && [ -z "$$(git status --porcelain --untracked-files=no)" ]; \
	   then goreleaser release --clean --skip=publish; else goreleaser release --snapshot --clean --skip=publish; fi; \
	 else echo "packages: goreleaser not installed, building .goreleaser.yaml's nfpms with nfpm"; \
	   $(GO) run ./packaging/cmd/pkgbuild -config .goreleaser.yaml -dist dist; fi
	@ls -l dist/*.deb dist/*.rpm

SOAK ?= 10m
test-fault-soak: build ## random fault sequences for SOAK (default 10m), contract checked after each (root; not in CI)
	FALCONET_FAULT_SOAK=$(SOAK) $(GO) test -tags fault -timeout 0 -count=1 -p 1 -v -run '^TestSoak$$' ./fault/ 2>&1 | tee $(FAULT_TMP)/falconet-fault-soak.log; exit $${PIPESTATUS[0]}

bench: ## Go benchmarks + agent footprint beside collectd and node_exporter in one bounded run: bench/results.json, bench/results.md (minutes; not in CI)
	@command -v collectd >/dev/null || [ -x /usr/sbin/collectd ] || \
	  { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends collectd-core; } || \
	  { echo "bench: needs collectd (as root: apt-get install collectd-core)"; exit 1; }
	@command -v prometheus-node-exporter >/dev/null || command -v node_exporter >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter; } || \
	  { echo "bench: needs node_exporter (as root: apt-get install prometheus-node-exporter)"; exit 1; }
	python3 bench/run.py

DEMO_ARGS ?= -duration 90s -fault relay-kill
demo: build ## the whole pipeline on loopback for 90 s, a relay killed mid-run, then the verdict (DEMO_ARGS= runs until Ctrl-C)
	./bin/falconet demo $(DEMO_ARGS)

lint: ## golangci-lint with .golangci.yml
	@command -v golangci-lint >/dev/null || { echo "golangci-lint not installed: see .ci/run"; exit 1; }
	golangci-lint run ./...

tidy-check: ## go.mod and go.sum are tidy
	$(GO) mod tidy -diff

clean:
	rm -rf bin dist bench.out
