# AI-OTS — the two commands a newcomer needs:
#   make run    create .venv, install, build, start the whole local stack (Ctrl-C stops it)
#   make test   create/update .venv, install with test extras, lint, type-check, run all tests
# Both are idempotent; a second run only redoes what changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
BUF := $(VENV)/bin/buf
BUILD_REQS := "setuptools>=70" wheel "Cython>=3.0,<4" "numpy>=2.0" grpcio-tools==1.85.1 "mypy-protobuf>=3.6" "googleapis-common-protos>=1.70"
CORE_SRC := $(wildcard core/*.pyx core/*.pxd core/*.pxi)
PROTO_SRC := $(wildcard protos/aiots/v1/*.proto)
PYTEST_ARGS ?=
# compiler output of the Cython build goes here (shown only when the build fails)
BUILD_LOG := build/build.log
export PIP_DISABLE_PIP_VERSION_CHECK := 1
BUILD_CORE = @mkdir -p build; $(PIP) install -q --no-build-isolation $(1) -e . >$(BUILD_LOG) 2>&1 || { \
	  tail -n 40 $(BUILD_LOG); echo "build failed; full log: $(BUILD_LOG)"; exit 1; }

.PHONY: run test lint typecheck protos-deps sysdeps checkov bench clean help check-python check-node web web-test

help:
	@echo "make run | make test | make lint | make bench | make clean"

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "AI-OTS needs Python 3.11+ as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1)). Set PYTHON=python3.11."; exit 1; }
	@command -v cc >/dev/null || command -v gcc >/dev/null || { \
	  echo "No C compiler: on Debian/Ubuntu run 'apt-get install build-essential python3-dev'."; exit 1; }

$(VENV)/.stamp-venv: | check-python
	@echo "==> [1/3] creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'."; exit 1; }
	$(PIP) install -q -U pip
	touch $@

# The dashboard (web/, issue 17): Node.js 20+ and npm build it; npm ci installs exactly the
# committed package-lock.json, and the page is rebuilt only when its sources or the contract change.
NODE_MIN := 20
WEB_SRC := $(shell find web/src web/scripts -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/package.json

check-node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "The dashboard needs Node.js $(NODE_MIN)+ and npm, not found: on Debian/Ubuntu 'apt-get install nodejs npm' (if that is older than $(NODE_MIN): https://nodejs.org/en/download)."; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= $(NODE_MIN) ? 0 : 1)' || { \
	  echo "The dashboard needs Node.js $(NODE_MIN)+ (found $$(node --version)): https://nodejs.org/en/download"; exit 1; }

web/node_modules/.stamp: web/package-lock.json web/package.json | check-node
	@echo "==> installing the dashboard's npm packages (npm ci)"
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# gen:api writes src/api/{openapi.json,schema.d.ts} from the current contract (the venv's python),
# so the page always matches the protos; `make test` checks that the committed copies are fresh.
web/dist/.stamp: $(WEB_SRC) $(PROTO_SRC) web/node_modules/.stamp $(VENV)/.stamp-build
	@echo "==> building the dashboard (web/dist)"
	@cd web && AIOTS_PYTHON=$(CURDIR)/$(PY) npm run -s gen:api && npm run -s build >../build/web-build.log 2>&1 || { \
	  tail -n 40 ../build/web-build.log; echo "dashboard build failed; full log: build/web-build.log"; exit 1; }
	@touch $@

web: web/dist/.stamp

# vitest: unit tests and the staleness test of the generated API types (before any rebuild).
web-test: web/node_modules/.stamp $(VENV)/.stamp-build
	cd web && AIOTS_PYTHON=$(CURDIR)/$(PY) npm test -s

# Runtime + build dependencies (re-run when pyproject.toml changes).
$(VENV)/.stamp-deps: pyproject.toml $(VENV)/.stamp-venv
	@echo "==> [2/3] installing dependencies into $(VENV) (first run: a few minutes)"
	$(PIP) install -q $(BUILD_REQS)
	@mkdir -p build; $(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >build/requirements.txt
	$(PIP) install -q -r build/requirements.txt
	@echo "==> [3/3] building the Cython core and the gRPC stubs (about a minute; compiler output: $(BUILD_LOG))"
	$(call BUILD_CORE,--no-deps)
	@echo "==> done"
	@touch $@

# Test extras on top.
$(VENV)/.stamp-test-deps: pyproject.toml $(VENV)/.stamp-deps
	@echo "==> installing the test dependencies"
	$(PIP) install -q --no-build-isolation -e '.[test]'
	@touch $@

# Compiled core + generated protobuf modules (re-run only when their sources change).
$(VENV)/.stamp-build: $(CORE_SRC) $(PROTO_SRC) setup.py $(VENV)/.stamp-deps
	@echo "==> building the Cython core and the gRPC stubs (compiler output: $(BUILD_LOG))"
	$(call BUILD_CORE,--no-deps)
	@touch $@

protos/third_party/google/api/http.proto: $(VENV)/.stamp-deps
	@mkdir -p protos/third_party/google/api
	@src=$$($(PY) -c 'import google.api.annotations_pb2 as a, os; print(os.path.dirname(a.__file__))'); \
	  cp $$src/annotations.proto $$src/http.proto protos/third_party/google/api/
	@touch $@

# google.rpc.Status: the `error` trailer of every server stream (issue 18)
protos/third_party/google/rpc/status.proto: $(VENV)/.stamp-deps
	@mkdir -p protos/third_party/google/rpc
	@src=$$($(PY) -c 'import google.rpc.status_pb2 as a, os; print(os.path.dirname(a.__file__))'); \
	  cp $$src/status.proto protos/third_party/google/rpc/
	@touch $@

protos-deps: protos/third_party/google/api/http.proto protos/third_party/google/rpc/status.proto

# checkov (IaC scanner, tests/unit/deploy/test_aws_checkov.py) in its own venv: its pins (packaging<24,
# bc-python-hcl2 installing the same `hcl2` package as python-hcl2, boto3==, networkx<2.7) conflict
# with the project's. Pinned so that a new checkov release cannot turn `make test` red by itself.
CHECKOV_VERSION := 3.3.30
$(VENV)/checkov/.stamp: $(VENV)/.stamp-venv
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q "checkov==$(CHECKOV_VERSION)"
	touch $@

checkov: $(VENV)/checkov/.stamp

# Debian packages the tests need (promtool for alert rules, chromium for the dashboard's browser
# tests, driven by the playwright wheel; `playwright install` is never run). Installed only when missing.
sysdeps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	      || echo "warning: could not install Debian 'chromium'; the dashboard's browser tests will skip"; \
	  else echo "note: chromium not found (apt-get install chromium); the dashboard's browser tests will skip"; fi; }
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "warning: could not install Debian 'prometheus' (promtool); its test will skip"; \
	  else echo "note: promtool not found (apt-get install prometheus); its test will skip"; fi; }

lint: $(VENV)/.stamp-test-deps $(VENV)/.stamp-build protos-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/cython-lint core
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) build -o /dev/null
	PY=$(PY) BUF=$(BUF) .ci/buf-breaking

# mypy sees the aiots namespace through a symlink map of the package_dir layout, so imports
# between services, gateway, core stubs and the generated aiots.v1 stubs are all type-checked.
typecheck: $(VENV)/.stamp-test-deps $(VENV)/.stamp-build
	@mkdir -p build/mypy/aiots
	@for d in services gateway core; do ln -sfn ../../../$$d build/mypy/aiots/$$d; done
	@ln -sfn ../../../protos/aiots/v1 build/mypy/aiots/v1
	MYPYPATH=build/mypy $(VENV)/bin/mypy build/mypy/aiots/services build/mypy/aiots/gateway bench/*.py

test: lint typecheck sysdeps checkov web-test
	@$(MAKE) --no-print-directory web
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

run: $(VENV)/.stamp-build web
	$(VENV)/bin/aiots up $(ARGS)

bench: $(VENV)/.stamp-test-deps $(VENV)/.stamp-build
	$(PIP) install -q --no-build-isolation -e '.[test,bench]'
	@command -v h2load >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null) \
	      || echo "warning: could not install Debian 'nghttp2-client' (h2load), which bench/gateway.py and bench/cache.py's processes table need"; \
	  else echo "note: h2load not found (apt-get install nghttp2-client)"; fi; }
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build dist *.egg-info protos/third_party core/*.c core/*.so protos/aiots/v1/*_pb2*.py* protos/aiots/v1/aiots.pb
	rm -f $(VENV)/.stamp-build
	rm -rf web/dist
