# Two commands on a fresh machine (Go, Java 17, Node with npm, Python with moto[server]):
#   make dev    the whole product locally: AWS stack, Atlassian simulator, every function under the Lambda
#               Runtime Interface Emulator behind a local HTTP API
#   make test   gofmt, go vet, cfn-lint, go test -race against the real local stack
# Both install what they need (npm packages, the emulator) themselves.

SHELL        := /bin/bash
GO           ?= go
BUILD_DIR    := .build
TOOLS_DIR    := $(BUILD_DIR)/tools
LAMBDA_DIR   := $(BUILD_DIR)/lambda
HOST_DIR     := $(BUILD_DIR)/host
FUNCTIONS    := $(sort $(notdir $(patsubst %/,%,$(wildcard functions/*/))))
GOFLAGS_LAMBDA := -tags lambda.norpc -trimpath -ldflags="-s -w -buildid="
RIE          := $(TOOLS_DIR)/aws-lambda-rie
GOLANGCI     := $(TOOLS_DIR)/golangci-lint
DDB_LOCAL    := infra/dynamodb-local/node_modules/.package-lock.json
ADF_SCHEMA   := infra/adf-schema/node_modules/.package-lock.json
TEST_TIMEOUT ?= 20m
FUZZTIME     ?= 15s

.PHONY: all deps build build-host test test-short lint golangci fmt-check vet cfn-lint gotest dev demo stack bench fuzz clean help

all: build

help:
	@echo "make demo | make dev | make test | make test-short | make lint | make build | make bench | make fuzz | make stack | make clean"

## deps: everything the local stack and the tests need, installed by the project itself
deps: $(DDB_LOCAL) $(ADF_SCHEMA) $(RIE) check-prereqs

$(DDB_LOCAL): infra/dynamodb-local/package.json infra/dynamodb-local/package-lock.json
	npm ci --prefix infra/dynamodb-local --no-audit --no-fund --loglevel=error
	@touch $@

# Atlassian's ADF JSON schema (@atlaskit/adf-schema, json-schema/v1/full.json), pinned: tests validate the
# simulator's documents and the Markdown converter's corpus against it.
$(ADF_SCHEMA): infra/adf-schema/package.json infra/adf-schema/package-lock.json
	npm ci --prefix infra/adf-schema --no-audit --no-fund --loglevel=error --ignore-scripts
	@touch $@

$(RIE): go.mod go.sum
	@mkdir -p $(TOOLS_DIR)
	CGO_ENABLED=0 $(GO) build -o $@ github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie

# golangci-lint is pinned by infra/tools/go.mod's tool directive: a module of its own, so the linters'
# dependencies never enter the product's module graph.
$(GOLANGCI): infra/tools/go.mod infra/tools/go.sum
	@mkdir -p $(TOOLS_DIR)
	$(GO) -C infra/tools build -o $(abspath $@) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: check-prereqs
check-prereqs:
	@command -v java >/dev/null || { echo "Java 17+ is required (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v npm >/dev/null || { echo "Node.js with npm is required"; exit 1; }
	@command -v moto_server >/dev/null || python3 -c 'import moto.server' 2>/dev/null || { echo "moto not found: installing moto[server] with pip"; \
		python3 -m pip install --user "moto[server]" || { echo 'install it with: pip install "moto[server]" (or in a virtualenv on PATH)'; exit 1; }; }
	@command -v cfn-lint >/dev/null || python3 -c 'import cfnlint' 2>/dev/null || { echo "cfn-lint not found: installing with pip"; \
		python3 -m pip install --user cfn-lint || { echo 'install it with: pip install cfn-lint (or in a virtualenv on PATH)'; exit 1; }; }

## build: every functions/<name> as a linux/arm64 bootstrap under .build/lambda/<name>/
build: $(addprefix $(LAMBDA_DIR)/,$(addsuffix /bootstrap,$(FUNCTIONS)))

$(LAMBDA_DIR)/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $@ ./functions/$*

## build-host: the same functions for this machine, as the emulator runs them
build-host: $(addprefix $(HOST_DIR)/,$(addsuffix /bootstrap,$(FUNCTIONS)))

$(HOST_DIR)/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_LAMBDA) -o $@ ./functions/$*

# SAM (BuildMethod: makefile) runs `make build-<LogicalId>` with ARTIFACTS_DIR set; <Name>Function is built
# from functions/<name> (the same convention infra/samtemplate uses).
build-%Function:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(shell echo '$*' | tr '[:upper:]' '[:lower:]')

FORCE:

## test: the whole suite against the real local stack (one stack shared by every package)
test: deps lint $(TOOLS_DIR)/localstack
	AWS_LAMBDA_RIE=$(abspath $(RIE)) $(TOOLS_DIR)/localstack run -- \
		$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# The long-running commands are built, then exec'd, rather than started with `go run`: `go run` does not pass
# SIGTERM on to its child, which would leave the emulators running.
$(TOOLS_DIR)/localstack $(TOOLS_DIR)/dev $(TOOLS_DIR)/demo: FORCE
	@mkdir -p $(TOOLS_DIR)
	$(GO) build -o $@ ./infra/cmd/$(notdir $@)

## test-short: only the pure tests (parsers, converters, schedules, problem mapping, scrubber, redaction), no
## emulator needed; tests that need one are skipped, and listed with the reason
test-short:
	GO=$(GO) ./infra/test-short.sh

lint: fmt-check vet golangci cfn-lint

golangci: $(GOLANGCI)
	$(GOLANGCI) run ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.build/*')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# pip --user may leave cfn-lint off PATH; the module form works either way.
cfn-lint:
	@if command -v cfn-lint >/dev/null; then cfn-lint template.yaml; else python3 -m cfnlint template.yaml; fi

## dev: the whole product locally (Ctrl-C stops everything); DEV_FLAGS passes flags, e.g.
## make dev DEV_FLAGS="-schedule-speedup 60 -async-retry-delays 2s,4s"
dev: deps $(TOOLS_DIR)/dev
	AWS_LAMBDA_RIE=$(abspath $(RIE)) exec $(TOOLS_DIR)/dev $(DEV_FLAGS)

## demo: the product at work in one command: starts dev, connects through the simulator's consent page, creates
## a connector, runs an export, prints the run, the S3 tree and one issue's document, stops everything
demo: deps $(TOOLS_DIR)/dev $(TOOLS_DIR)/demo
	AWS_LAMBDA_RIE=$(abspath $(RIE)) $(TOOLS_DIR)/demo -dev $(TOOLS_DIR)/dev

## stack: the local AWS stack provisioned from template.yaml, with the functions on a local Lambda endpoint and
## the schedules (STACK_FLAGS= for the AWS emulators alone)
STACK_FLAGS ?= -lambda
stack: deps $(TOOLS_DIR)/localstack
	AWS_LAMBDA_RIE=$(abspath $(RIE)) exec $(TOOLS_DIR)/localstack up $(STACK_FLAGS)

## bench: benchmarks, results in BENCHMARKS.md
bench: deps $(TOOLS_DIR)/localstack
	AWS_LAMBDA_RIE=$(abspath $(RIE)) $(TOOLS_DIR)/localstack run -- ./infra/bench.sh

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BUILD_DIR) .aws-sam .local
