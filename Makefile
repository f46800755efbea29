# stationsync — `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/stationsync/stationsync/daemon.Version=$(VERSION)

.PHONY: help build demo test test-short lint bench dist clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/stationsync
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/stationsync ./cmd/stationsync

demo: ## run a local station of 3 nodes with sample data (Ctrl-C stops)
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/stationsync demo --dir demo-data

test: ## run every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

test-short: ## the fast unit tests only
	$(GO) test -short -count=1 ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

dist: ## cross-built release binaries in dist/
	GOOS=linux   GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/stationsync-linux-amd64 ./cmd/stationsync
	GOOS=linux   GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/stationsync-linux-arm64 ./cmd/stationsync
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/stationsync-windows-amd64.exe ./cmd/stationsync

clean: ## remove build output and demo data
	rm -rf bin dist demo-data
