# pgsvc — see README.md.
GO      ?= go
BIN     ?= bin/pgsvc
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build static test vet bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgsvc

# A static binary for packaging (no cgo, no libc).
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgsvc

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# The test command CI runs. Tests that need etcd and HAProxy start them from
# Debian's packages (see .ci/run) and fail, never skip, when they are missing.
test: vet
	$(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin

# --- compose lab (lab/README.md): etcd, Patroni/PostgreSQL 15 x3, HAProxy + pgsvc ---
# docker compose v2 if present, else docker-compose v1.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)

.PHONY: lab-image demo demo-down

# Static pgsvc for the haproxy image (no Go toolchain image needed), the base
# image (pulled, or debootstrapped when there is no registry), then the images.
lab-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o lab/bin/pgsvc ./cmd/pgsvc
	lab/base-image.sh
	$(COMPOSE) build

demo: lab-image
	$(COMPOSE) up -d
	lab/wait-ready.sh

demo-down:
	$(COMPOSE) down -v --remove-orphans
