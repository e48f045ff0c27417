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
