# stationsync — `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/stationsync/stationsync/daemon.Version=$(VERSION)

FUZZTIME ?= 5s

.PHONY: help build demo test test-short fuzz-short chaos lint bench dist clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/stationsync
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/stationsync ./cmd/stationsync

demo: ## run a local station of 3 nodes with sample data (Ctrl-C stops)
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/stationsync demo --dir demo-data

test: ## run every test with the race detector, then each fuzz target briefly
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=windows $(GO) build ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory fuzz-short
	cd bench && $(GO) run . -smoke

bench: ## stationsync vs etcd v3.7 on this machine (3 nodes each on loopback; about 30 minutes, -only/-skip NAME for single sections): results in bench/results.md, see BENCHMARKS.md
	cd bench && $(GO) run . -out results.md -cpuprofile goapi-cpu.pprof

CHAOS_DURATION ?= 30m

chaos: ## fault injection (root): 5 station PCs + a center in network namespaces, CHAOS_DURATION (default 30m) of partitions, kills, pauses, clock skew; figures appended to chaos-summary.txt
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SUMMARY=$(CURDIR)/chaos-summary.txt $(GO) test -count=1 -timeout 0 -run '^TestChaos$$' -v ./chaos/ 2>&1 | tee chaos.log | grep --line-buffered -E '^(--- |PASS|FAIL|ok)|nemesis |chaos: |converge: |violations'; grep -q '^ok' chaos.log

fuzz-short: ## run each fuzz target for FUZZTIME (default 5s); their seed corpora also run in every test run
	GO=$(GO) FUZZTIME=$(FUZZTIME) sh scripts/fuzz-short.sh

test-short: ## the fast unit tests only
	$(GO) test -short -count=1 ./...

lint: ## gofmt and go vet (also for windows)
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

DIST_TARGETS := windows/amd64 linux/amd64 linux/arm64

dist: ## release archives in dist/: stationsync-VERSION-OS-ARCH .zip (windows) / .tar.gz (linux) with the binary, configs and INSTALL.txt
	rm -rf dist
	@set -e; for t in $(DIST_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; name=stationsync-$(VERSION)-$$os-$$arch; dir=dist/$$name; exe=stationsync; \
	  if [ $$os = windows ]; then exe=stationsync.exe; fi; \
	  echo "dist $$name"; mkdir -p $$dir; \
	  GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/$$exe ./cmd/stationsync; \
	  sed -e 's|@VERSION@|$(VERSION)|g' -e "s|@ARCH@|$$arch|g" installer/dist/INSTALL-$$os.txt > $$dir/INSTALL.txt; \
	  cp configs/station.yaml configs/center.yaml $$dir/; \
	  if [ $$os = windows ]; then \
	    for f in INSTALL.txt station.yaml center.yaml; do sed -i 's/$$/\r/' $$dir/$$f; done; \
	    $(GO) run ./installer/internal/zipdir dist/$$name.zip $$dir; \
	  else \
	    tar -C dist --owner=0 --group=0 --numeric-owner -czf dist/$$name.tar.gz $$name; \
	  fi; \
	  rm -rf $$dir; \
	done
	cd dist && sha256sum *.zip *.tar.gz > SHA256SUMS
	@ls -l dist

clean: ## remove build output and demo data
	rm -rf bin dist demo-data
