# pgsvc — see README.md.
GO      ?= go
BIN     ?= bin/pgsvc
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build static test unit fuzz e2e vet bench clean pigsty-diff

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgsvc

# A static binary for packaging (no cgo, no libc).
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgsvc

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# The test command CI runs: unit, golden and real etcd + HAProxy tests, every
# fuzz target briefly, then the compose end-to-end suite. Tests that need
# etcd, HAProxy or Docker fail, never skip, when they are missing (.ci/run
# installs them).
test: vet unit fuzz e2e

# -race: the daemon is concurrent (etcd and inventory sources, loop, metrics).
unit:
	$(GO) test -race -count=1 ./...

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

e2e:
	$(GO) test -count=1 -tags integration -timeout 25m -v ./integration

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
	PIGSTY=$(PIGSTY) $(GO) test -tags pigsty -count=1 -timeout 0 -v -run TestTemplateEquivalence ./integration/pigsty -rounds $(ROUNDS)

clean:
	rm -rf bin

# --- compose lab (integration/lab/README.md): etcd, Patroni/PostgreSQL 15 x3, HAProxy + pgsvc ---
# docker compose v2 if present, else docker-compose v1.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)

.PHONY: lab-image demo demo-down

# Static pgsvc for the haproxy image (no Go toolchain image needed), the base
# image (pulled, or debootstrapped when there is no registry), then the images.
lab-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o integration/lab/bin/pgsvc ./cmd/pgsvc
	integration/lab/base-image.sh
	$(COMPOSE) build

demo: lab-image
	$(COMPOSE) up -d
	integration/lab/wait-ready.sh

demo-down:
	$(COMPOSE) down -v --remove-orphans
