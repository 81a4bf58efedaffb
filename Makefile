# Arcade. `make test` runs every test; `make run` runs the example job on an
# all-in-one server + agent with embedded SQLite.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

PROTOC_GEN_GO_VERSION      ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
PROTOC_GEN_GRPC_GATEWAY_VERSION ?= v2.33.0
PROTO_FILES := $(shell find api -name '*.proto' | sort)
# The generated files record the protoc that made them; another version
# writes other files and `make check` fails, so `make proto` insists on this
# one (Debian bookworm's protobuf-compiler).
PROTOC_VERSION ?= 3.21.12

.PHONY: all build run test test-short bench check fmt vet tidy-check proto proto-version proto-install proto-clean proto-lint proto-check clean plugins

all: build

build:
	$(GO) build -o bin/arcade ./cmd/arcade

# First-party plugins: plugins/NAME/ → plugins/NAME.wasm (build output, not
# committed), the files conf.d/plugins.yaml points at.
plugins:
	@set -e; for d in plugins/*/; do n=$$(basename $$d); [ -f $$d/main.go ] || continue; \
		echo "plugins/$$n.wasm"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o plugins/$$n.wasm ./$$d; \
	done

run: plugins
	$(GO) run ./cmd/arcade up --data-dir data --run examples/pipelines/ci.arcade.yaml

# Every test of both modules, with the race detector. PostgreSQL-backed
# tests start a throwaway cluster when initdb/pg_ctl exist
# (ARCADE_REQUIRE_POSTGRES=1 makes their absence a failure).
# The repository holds two Go modules: the main one (.) and the PDK (./pdk,
# standard library only, which the main module replaces with the local copy).
test:
	$(GO) test -race -count=1 -timeout 30m ./...
	cd pdk && $(GO) test -race -count=1 ./...

test-short:
	$(GO) test -short -count=1 ./...
	cd pdk && $(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -count 1 ./core/... ./server/... ./host/... | tee bench.out
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -v ./e2e/ | grep -E 'Benchmark|_test.go:[0-9]+:|^ok|FAIL' | tee -a bench.out

check: fmt vet tidy-check proto-check proto-lint

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The PDK is vetted twice: for the machine (its types, as tools use them)
# and for plugins (GOOS=wasip1, its kernel imports).
vet:
	$(GO) vet ./...
	cd pdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

# The PDK requires nothing: it has no go.sum.
tidy-check:
	$(GO) mod tidy
	cd pdk && $(GO) mod tidy
	git diff --exit-code -- go.mod go.sum pdk/go.mod
	@if [ -e pdk/go.sum ]; then echo "pdk/go.sum: the PDK must require nothing"; exit 1; fi

proto-install:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	$(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(PROTOC_GEN_GRPC_GATEWAY_VERSION)
	@command -v protoc >/dev/null || echo "protoc missing: apt-get install -y protobuf-compiler (Debian) or brew install protobuf"

# The *.pb.gw.go files are the HTTP/JSON gateway (server/gateway), bound to
# paths by api/gateway.yaml rather than by annotations in the .proto files.
proto: proto-version
	protoc -I . -I /usr/include \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		--grpc-gateway_out=. --grpc-gateway_opt=paths=source_relative,grpc_api_configuration=api/gateway.yaml \
		$(PROTO_FILES)

proto-version:
	@v=$$(protoc --version 2>/dev/null | awk '{print $$2}'); \
	if [ "$$v" != "$(PROTOC_VERSION)" ]; then \
		echo "make proto needs protoc $(PROTOC_VERSION) (found: $${v:-none}); the committed code was generated with it." >&2; \
		echo "Debian bookworm: apt-get install -y protobuf-compiler; elsewhere: https://github.com/protocolbuffers/protobuf/releases/tag/v21.12" >&2; \
		exit 1; \
	fi

proto-clean:
	find api -name '*.pb.go' -delete
	find api -name '*.pb.gw.go' -delete

# Regenerating must leave the committed code unchanged.
proto-check: proto
	git diff --exit-code -- api

# Lint: protoc must accept every file with all warnings, and the contracts
# follow the naming rules checked by ./api/lint.
proto-lint:
	$(GO) test -count=1 -run TestProtoLint ./api/

clean:
	rm -rf bin data bench.out
