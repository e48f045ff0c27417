# pgsvc — see README.md.
GO      ?= go
BIN     ?= bin/pgsvc
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build static test unit loopback-lab fuzz e2e vet bench clean pigsty-diff pigsty-record

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgsvc

# A static binary for packaging (no cgo, no libc).
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgsvc

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# The test command CI runs: unit, golden and real etcd + HAProxy tests (on
# the host's HAProxy, then on trixie's in a container), every fuzz target
# briefly, then the compose end-to-end suite on every lab flavour. Tests that need
# etcd, HAProxy or Docker fail, never skip, when they are missing (.ci/run
# installs them).
test: vet unit loopback-lab fuzz e2e

# -race: the daemon is concurrent (etcd and inventory sources, loop, metrics).
# The loopback tests use the haproxy and etcd on PATH.
unit:
	@echo "unit: loopback tests against $$(haproxy -v | sed -n 1p); $$(etcd --version | sed -n 1p)"
	$(GO) test -race -count=1 ./...

# The loopback tests again, against another suite's HAProxy and etcd (trixie:
# HAProxy 3.0, etcd 3.5) in a container with the host's Go toolchain, module
# and build caches (no -race: no C toolchain in the image).
# Every suite other than the host's (whose HAProxy `make unit` tested).
HOST_SUITE    := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
LOOPBACK_LABS ?= $(filter-out $(HOST_SUITE),bookworm trixie)
LOOPBACK_PKGS := ./cmd/... ./dataplaneapi/... ./reconcile/...
GOROOT_DIR     = $(shell $(GO) env GOROOT)
GOMODCACHE_DIR = $(shell $(GO) env GOMODCACHE)
GOCACHE_DIR    = $(shell $(GO) env GOCACHE)
loopback-lab:
	@set -e; for l in $(LOOPBACK_LABS); do \
	  SUITE=$$l integration/lab/base-image.sh; \
	  docker build -q -t pgsvc-lab-loopback:$$l --build-arg SUITE=$$l integration/lab/loopback >/dev/null; \
	  echo "loopback-lab: $$l: $$(docker run --rm pgsvc-lab-loopback:$$l haproxy -v | sed -n 1p); $$(docker run --rm pgsvc-lab-loopback:$$l etcd --version | sed -n 1p)"; \
	  docker run --rm --tmpfs /tmp:exec --user $$(id -u):$$(id -g) -e HOME=/tmp \
	    -v $(GOROOT_DIR):/usr/local/go:ro -v $(GOMODCACHE_DIR):/gomod -v $(GOCACHE_DIR):/gocache -e GOMODCACHE=/gomod -e GOCACHE=/gocache \
	    -v $(CURDIR):/src -w /src -e PATH=/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	    -e CGO_ENABLED=0 -e GOFLAGS=-buildvcs=false -e GOTOOLCHAIN=local -e GOPROXY=off \
	    pgsvc-lab-loopback:$$l go test -count=1 $(LOOPBACK_PKGS); \
	done

# A finding always writes its input to testdata/fuzz/<Fuzz...>/ and fails.
# A run that fails without writing one is the fuzzing harness itself (on a
# loaded machine its coordinator can report "context deadline exceeded" at
# the end of -fuzztime): that run is repeated once, and a second failure fails.
FUZZTIME ?= 10s
fuzz:
	@set -e; for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go')); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    before=$$(ls $$pkg/testdata/fuzz/$$t 2>/dev/null | wc -l); \
	    if ! $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; then \
	      test "$$(ls $$pkg/testdata/fuzz/$$t 2>/dev/null | wc -l)" = "$$before" || exit 1; \
	      echo "fuzz $$pkg $$t: the harness failed without a finding; once more"; \
	      $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	    fi; \
	  done; \
	done

# The end-to-end suite on every lab flavour, each with its own measured
# tables (the suite brings its flavour's lab up and down itself).
# One flavour: make e2e LABS=trixie. Every flavour runs even when one
# fails; the target fails if any did.
e2e: lab-images
	@rc=0; for l in $(LABS); do \
	  echo "=== e2e LAB=$$l"; \
	  LAB=$$l $(GO) test -count=1 -tags integration -timeout 25m -v ./integration || { echo "=== e2e LAB=$$l FAILED"; rc=1; }; \
	done; exit $$rc

# Every benchmark the README quotes, with the event counts it quotes.
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkDesired|BenchmarkLoadComputeDiff' -benchmem ./reconcile
	$(GO) test -run '^$$' -bench BenchmarkRender -benchmem ./cmd/pgsvc
	$(GO) test -run '^$$' -bench BenchmarkEventToHAProxy -benchtime 200x ./reconcile
	$(GO) test -run '^$$' -bench BenchmarkLeaderChange1000 -benchtime 20x ./reconcile
	$(GO) test -run '^$$' -bench BenchmarkSyncer1000 -benchtime 10x ./reconcile

# Differential check against Pigsty's own template, rendered by Ansible, over
# random inventories: make pigsty-diff PIGSTY=/path/to/pigsty [ROUNDS=200].
# Needs ansible and python3-jmespath; not part of `make test` (CI has no Pigsty).
ROUNDS ?= 100
pigsty-diff:
	@test -n "$(PIGSTY)" || (echo "set PIGSTY to a Pigsty checkout"; exit 1)
	PIGSTY=$(PIGSTY) $(GO) test -tags pigsty -count=1 -timeout 0 -v -run 'TestTemplateEquivalence|TestPigstyCases' ./integration/pigsty -rounds $(ROUNDS)

# Records Pigsty's output for integration/pigsty/testdata/*/inventory.yml,
# which TestPigstyRecorded (part of make test) compares pgsvc with.
pigsty-record:
	@test -n "$(PIGSTY)" || (echo "set PIGSTY to a Pigsty checkout"; exit 1)
	PIGSTY=$(PIGSTY) $(GO) test -tags pigsty -count=1 -v -run TestPigstyCases ./integration/pigsty -record

clean:
	rm -rf bin

# --- compose lab (integration/lab/README.md): etcd, Patroni/PostgreSQL x3, HAProxy + pgsvc ---
# LAB selects the flavour, one Debian suite's packages each: trixie (HAProxy
# 3.0, Patroni 4.0, PostgreSQL 17, etcd 3.5) or bookworm (HAProxy 2.6, Patroni
# 3.0, PostgreSQL 15, etcd 3.4). Each flavour is its own compose project
# (pgsvc-<flavour>: its own volumes); one runs at a time.
LAB  ?= trixie
LABS ?= bookworm trixie
# docker compose v2 if present, else docker-compose v1.
COMPOSE_CMD ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
COMPOSE ?= LAB=$(LAB) $(COMPOSE_CMD) -p pgsvc-$(LAB)

.PHONY: lab-deps lab-bin lab-image lab-images demo demo-down

# What the demo needs on the host, installed the way .ci/run does.
lab-deps:
	integration/lab/install-deps.sh demo

# Static pgsvc for the haproxy image (no Go toolchain image needed).
lab-bin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o integration/lab/bin/pgsvc ./cmd/pgsvc

# The base image (pulled, or debootstrapped when there is no registry), then
# the flavour's images.
lab-image: lab-bin
	SUITE=$(LAB) integration/lab/base-image.sh
	$(COMPOSE) build

# Every flavour's images at once (CI): the builds wait on the network and
# the mirror more than on the CPU.
lab-images: lab-bin
	@set -e; pids=""; for l in $(LABS); do \
	  ( $(MAKE) --no-print-directory lab-image LAB=$$l > /tmp/pgsvc-lab-image-$$l.log 2>&1 ) & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for l in $(LABS); do echo "--- lab-image LAB=$$l"; tail -5 /tmp/pgsvc-lab-image-$$l.log; done; \
	if [ $$rc != 0 ]; then for l in $(LABS); do echo "--- LAB=$$l"; tail -40 /tmp/pgsvc-lab-image-$$l.log; done; exit 1; fi

demo: lab-deps lab-image
	integration/lab/one-flavour.sh $(LAB)
	$(COMPOSE) up -d
	LAB=$(LAB) integration/lab/wait-ready.sh

demo-down:
	$(COMPOSE) down -v --remove-orphans

# Record real Patroni DCS fixtures (fixtures/patroni/README.md) with the
# flavour's packages, in a container: make record-patroni LAB=trixie
# writes fixtures/patroni/p4-*.json(l) and record-p4.log (about 5 minutes).
.PHONY: record-patroni
record-patroni:
	SUITE=$(LAB) integration/lab/base-image.sh
	docker build -q -t pgsvc-record-patroni:$(LAB) --build-arg SUITE=$(LAB) fixtures/patroni
	docker run --rm --shm-size 256m -v $(CURDIR)/fixtures/patroni:/rec -e OUT=/rec pgsvc-record-patroni:$(LAB) /rec/record.sh
