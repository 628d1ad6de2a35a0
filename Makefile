# kdfir: incident response and threat hunting for Kubernetes.
#   make demo   build everything and run kdfir's main job on a local cluster (KEEP=1 keeps it running)
#   make test   vet, staticcheck and the whole test suite with -race
#   make tools  install etcd, kube-apiserver & co, kwok, staticcheck, azurite
#   make bench  benchmarks
#   make bench-hunt  kdfir against DuckDB on a generated audit log (SIZES=200000,1000000)
#   make score  detection scorecard on the labelled fixtures in ../shared/data
#   make fuzz   every fuzzer for FUZZTIME each (make test runs it too)

SHELL := /usr/bin/env bash
GO ?= go
export KDFIR_TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kdfir/tools
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/kdfir/kdfir/internal/version.Version=$(VERSION) -X github.com/kdfir/kdfir/internal/version.Commit=$(COMMIT)
TEST_TIMEOUT ?= 75m

.PHONY: all tools build install test vet staticcheck unit fuzz demo bench bench-hunt score clean

all: build

tools:
	@hack/install-tools.sh

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kdfir ./cmd/kdfir
	ln -sf kdfir bin/kubectl-kdfir

install:
	$(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/kdfir
	ln -sf kdfir "$$($(GO) env GOPATH)/bin/kubectl-kdfir"

vet:
	$(GO) vet ./...

staticcheck: tools
	"$(KDFIR_TOOLS_DIR)/bin/staticcheck" ./...

unit:
	KDFIR_SKIP_CLUSTER=1 $(GO) test ./...

# Packages run one at a time (-p 1): each starts its own control plane,
# and two of them at once under -race starve a 2-core machine.
test: tools vet staticcheck
	KDFIR_REQUIRE_BROWSERS=1 $(GO) test -race -p 1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz

# Each fuzzer runs for FUZZTIME beyond its seed corpus (the audit decoders'
# seeds are generated, so they never depend on ../shared/data).
FUZZTIME ?= 10s
FUZZERS := internal/audit:FuzzDecode internal/audit:FuzzDecodeRecords internal/audit:FuzzParseEvent \
	internal/audit:FuzzDynamic internal/audit:FuzzValid internal/alert:FuzzParse internal/kql/syntax:FuzzParse internal/kql/eval:FuzzRun
fuzz:
	@set -e; for f in $(FUZZERS); do \
		echo "fuzz $${f%%:*} $${f#*:} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) ./$${f%%:*} >/tmp/kdfir-fuzz.log 2>&1 || { cat /tmp/kdfir-fuzz.log; exit 1; }; \
	done

demo: tools build
	@KEEP=$(KEEP) hack/demo.sh

bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x ./... 

# Ingest and hunt side by side with DuckDB, one Markdown table per size.
# Extra flags (-memcap 12GiB, -timeout 5m, -runs, -keep, -dir) go in BENCH_HUNT_FLAGS.
SIZES ?= 200000,1000000
BENCH_HUNT_FLAGS ?=
bench-hunt: build
	$(GO) run ./hack/benchhunt -kdfir bin/kdfir -sizes '$(SIZES)' $(BENCH_HUNT_FLAGS)

# The detection scorecard on the labelled fixtures in ../shared/data (see
# hack/score/mapping.yaml); fails when a claimed behaviour misses its target.
SCORE_DATA ?= ../shared/data
score:
	$(GO) run ./hack/score -data '$(SCORE_DATA)' -map hack/score/mapping.yaml -check

clean:
	rm -rf bin
