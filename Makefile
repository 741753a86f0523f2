# agentetl build, test and benchmark entry points. Every target works on a
# fresh machine with Go and a reachable PostgreSQL (PG_DSN).
SHELL        := /bin/bash
GO           ?= go
PG_DSN       ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DATE         := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS      := -s -w -X main.Version=$(VERSION) -X main.DateBuilt=$(DATE)
GOTESTFLAGS  ?= -count=1 -timeout 20m
export PG_DSN

.PHONY: all build run run-sample test unit lint lint-configs test-configs bench clean

all: build

GOSRC        := $(shell find cmd internal plugins agents -name '*.go' 2>/dev/null) go.mod go.sum

build: bin/agentetl bin/orchestrator

bin/agentetl: $(GOSRC)
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/agentetl

bin/orchestrator: $(GOSRC)
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/orchestrator

# The one-command demo: builds both binaries and starts the orchestrator
# (SQLite metadata store under ./data, embedded NATS, a spawned engine) with
# the bundled demo of resources/demo, then keeps running until Ctrl-C. The
# demo writes to PostgreSQL when PG_DSN answers, else to ./data/demo-target.db.
# Idempotent: a second run reuses ./data. The API and UI listen on
# 127.0.0.1:8080 without a token (--insecure-dev, loopback only); set
# RUN_FLAGS='--demo resources/demo' and AGENTETL_TOKEN to require one.
# tests/demo starts the orchestrator with exactly these flags.
RUN_FLAGS    ?= --demo resources/demo --insecure-dev
run: build
	./bin/orchestrator $(RUN_FLAGS)

# The earlier quick start: loads resources/sample into a source table at
# PG_DSN and copies it with configs/examples/postgres-to-postgres.yaml.
run-sample: build
	./resources/sample/run.sh

# Everything: unit and integration tests (real PostgreSQL at PG_DSN), config
# lint and the configs' own unit tests.
# The fault-injection suite (tests/fault) writes one line per scenario to
# FAULT_SUMMARY; it is printed after the tests, pass or fail.
FAULT_SUMMARY ?= $(CURDIR)/data/fault-summary.txt
test: build lint-configs test-configs
	@mkdir -p $(dir $(FAULT_SUMMARY)) && rm -f $(FAULT_SUMMARY)
	@AGENTETL_BINARY=$(CURDIR)/bin/agentetl ORCHESTRATOR_BINARY=$(CURDIR)/bin/orchestrator FAULT_SUMMARY=$(FAULT_SUMMARY) \
		$(GO) test $(GOTESTFLAGS) ./...; status=$$?; \
		echo "fault injection (tests/fault):"; sort $(FAULT_SUMMARY) 2>/dev/null || echo "  no scenario ran"; exit $$status

lint: build lint-configs
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every pipeline config under configs/ and resources/, except the Kubernetes
# manifests in resources/deploy (their embedded pipelines are linted by
# tests/e2e TestDeployManifest).
PIPELINE_YAML := $(shell find configs resources -name '*.yaml' -not -name '*_benthos_test.yaml' -not -path 'resources/deploy/*' | sort)

lint-configs: build
	./bin/agentetl lint -e configs/lint.env $(PIPELINE_YAML)

test-configs: build
	./bin/agentetl test -e configs/lint.env ./configs/... ./resources/...

# One report, every figure beside its baseline of the same run: markdown on
# stdout and in bench/results.md. One section: go run ./bench/cmd/bench -only api
bench: build
	$(GO) run ./bench/cmd/bench -bin ./bin/agentetl -orchestrator ./bin/orchestrator -out bench/results.md

clean:
	rm -rf bin data
