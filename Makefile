# falconet: make help lists the targets.
SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X github.com/falconet/falconet/internal/version.Version=$(VERSION) \
              -X github.com/falconet/falconet/internal/version.Commit=$(COMMIT)
BINARIES   := $(notdir $(wildcard cmd/*))
TEST_FLAGS ?= -race -timeout 20m

.PHONY: help build test test-short test-fault test-fault-soak bench demo lint tidy-check clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/, version stamped from git
	@mkdir -p bin
	@for b in $(BINARIES); do $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$b ./cmd/$$b || exit 1; done
	@ls bin

test: build ## everything CI runs: vet, unit and integration tests under -race, fault tests (root)
	$(GO) vet ./...
	$(GO) vet -tags fault ./...
	@if command -v staticcheck >/dev/null; then echo "staticcheck ./..."; staticcheck ./... && staticcheck -tags fault ./fault/...; \
	 else echo "staticcheck: not installed, skipped (.ci/run installs it)"; fi
	$(GO) test $(TEST_FLAGS) ./...
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fault; \
	 else echo "test-fault: skipped, needs root for network namespaces (CI runs as root)"; fi

test-short: ## quick unit tests, no race detector
	$(GO) test -short ./...

test-fault: build ## network-namespace fault tests (root); report table in /tmp/falconet-fault-report.md
	$(GO) test -tags fault -timeout 20m -count=1 -p 1 -v ./fault/... 2>&1 | tee /tmp/falconet-fault.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|\||fault suite|report)|_test.go' ; exit $${PIPESTATUS[0]}

SOAK ?= 10m
test-fault-soak: build ## random fault sequences for SOAK (default 10m), contract checked after each (root; not in CI)
	FALCONET_FAULT_SOAK=$(SOAK) $(GO) test -tags fault -timeout 0 -count=1 -p 1 -v -run '^TestSoak$$' ./fault/ 2>&1 | tee /tmp/falconet-fault-soak.log; exit $${PIPESTATUS[0]}

bench: ## Go benchmarks (numbers for the README)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./... | tee bench.out

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
