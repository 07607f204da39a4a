# Tether — `make demo` and `make test` work on a fresh Debian machine: they install what they need.
# Area-specific setup lives in mk/<area>.mk; each fragment may append to
#   APT_PACKAGES   Debian packages installed when running as root (by `make test`)
#   DEMO_APT_PACKAGES  the part of them `make demo` needs too (and installs alone)
#   SETUP_TARGETS  extra targets `setup` depends on (e.g. a sandbox runtime environment)
#   SERVICES       targets that start local services (PostgreSQL, ...) before tests
#   BENCH_TARGETS  benchmark targets run by `make bench`
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tether-installed
EXTRAS ?= dev,embeddings,otel,mcp,server,postgres,ray
APT_PACKAGES :=
DEMO_APT_PACKAGES :=
SETUP_TARGETS :=
SERVICES :=
BENCH_TARGETS := bench-core
PYTEST_ARGS ?=

-include mk/*.mk

.PHONY: setup apt apt-demo demo test lint typecheck bench bench-core clean services
.DEFAULT_GOAL := help

help:
	@echo "make demo   - install everything and run Tether's demo agent"
	@echo "make test   - install everything and run the whole test suite"
	@echo "make bench  - run the benchmarks and write docs/benchmarks.md"
	@echo "make lint   - ruff + mypy"

# $(call apt_install,PACKAGES): install those of PACKAGES that are missing (as root; otherwise
# say which are needed)
define apt_install
	@if [ "$$(id -u)" = "0" ] && [ -n "$(strip $(1))" ]; then \
	  missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	elif [ -n "$(strip $(1))" ]; then \
	  echo "not root: make sure these Debian packages are installed: $(1)"; \
	fi
endef

apt:
	$(call apt_install,$(sort $(APT_PACKAGES) $(DEMO_APT_PACKAGES)))

# what the demo runs on only: no browser, database server or Node for the tests
apt-demo:
	$(call apt_install,$(sort $(DEMO_APT_PACKAGES)))

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e ".[$(EXTRAS)]"
	@touch $@

setup: apt $(STAMP) $(SETUP_TARGETS)

services: setup $(SERVICES)

# In a terminal the demo asks before the action that needs approval; DEMO_ARGS=--yes approves it
# for scripts and CI (without a terminal and without --yes it is denied, and the demo says so).
DEMO_ARGS ?=

# what the demo runs on (the embedder, the local model, the sandbox), not what only the tests
# use (the MCP conformance tools and servers): a new user's first command installs less
DEMO_SETUP := apt-demo $(STAMP) guards-setup models-setup models-large sandbox-setup

demo: $(DEMO_SETUP)
	$(BIN)/python -m tether.demo $(DEMO_ARGS)

test: services
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench-core: setup
	$(BIN)/python benchmarks/bench_core.py

bench: setup $(BENCH_TARGETS)
	$(BIN)/python benchmarks/collect.py

clean:
	rm -rf $(VENV) .tether .pytest_cache .mypy_cache .ruff_cache
