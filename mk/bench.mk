# Core benchmarks (benchmarks/bench_core.py) against LangGraph.
#   benchmarks/.lg-venv  a separate venv holding ONLY LangGraph 1.2.x, its SQLite checkpointer and
#                        aiosqlite; bench_core.py runs LangGraph's side (benchmarks/lg_side.py) with
#                        its python. LangGraph is never a Tether dependency. Gitignored; stamped, so
#                        a second `make bench-core` reuses it (delete the directory to rebuild).
# `bench-core` itself (setup + run) is defined in the Makefile; this adds the venv as a prerequisite.
LG_VENV := benchmarks/.lg-venv
LG_STAMP := $(LG_VENV)/.installed
LG_SPECS := "langgraph>=1.2,<1.3" langgraph-checkpoint-sqlite aiosqlite

APT_PACKAGES += python3-venv

# $(call competitor_venv,VENV,SPECS,DIST): the recipe of a competitor's own venv (a stamp file's
# rule), for every benchmark fragment: create VENV, install SPECS, print DIST's version, touch the
# stamp. A competitor's dependencies would clash with ours, so it never enters .venv; the stamp
# makes a second run reuse the venv (the rule depends on the fragment naming its SPECS and this
# one, so a change to either rebuilds it).
define competitor_venv
@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
$(1)/bin/python -m pip install -q --upgrade pip
$(1)/bin/python -m pip install -q $(2)
$(1)/bin/python -c "import importlib.metadata as m; print('bench: $(3)', m.version('$(3)'))"
@touch $@
endef

.PHONY: bench-lg-venv

bench-lg-venv: $(LG_STAMP)

$(LG_STAMP): mk/bench.mk
	$(call competitor_venv,$(LG_VENV),$(LG_SPECS),langgraph)

bench-core: $(LG_STAMP)

# CLI start-up (benchmarks/bench_cli.py): `tether --help`, `tether runs`, ... as fresh processes,
# median/p90/min against the 0.3 s target; writes benchmarks/results/cli.md.
BENCH_TARGETS += bench-cli

.PHONY: bench-cli

bench-cli: setup
	$(BIN)/python benchmarks/bench_cli.py

# Importing a large OpenAPI document (benchmarks/bench_openapi.py): import seconds and peak RSS
# for 1,000 and 5,000 generated operations sharing 300 components; writes
# benchmarks/results/openapi.md (`--baseline DIR` adds another checkout's figures, same rounds).
BENCH_TARGETS += bench-openapi

.PHONY: bench-openapi

bench-openapi: setup
	$(BIN)/python benchmarks/bench_openapi.py
