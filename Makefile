# stationsync — `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/stationsync/stationsync/daemon.Version=$(VERSION)

FUZZTIME ?= 5s

.PHONY: help build demo test test-short fuzz-short lint bench dist clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/stationsync
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/stationsync ./cmd/stationsync

demo: ## run a local station of 3 nodes with sample data (Ctrl-C stops)
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/stationsync demo --dir demo-data

test: ## run every test with the race detector, then each fuzz target briefly
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory fuzz-short

fuzz-short: ## run each fuzz target for FUZZTIME (default 5s); their seed corpora also run in every test run
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  dir=$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "fuzz $$dir $$t ($(FUZZTIME))"; \
	    out=$$($(GO) test -run=NONE -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) ./$$dir 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
	  done; \
	done

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
