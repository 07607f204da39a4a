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

.PHONY: bench-lg-venv

bench-lg-venv: $(LG_STAMP)

$(LG_STAMP): mk/bench.mk
	@test -x $(LG_VENV)/bin/python || $(PYTHON) -m venv $(LG_VENV)
	$(LG_VENV)/bin/python -m pip install -q --upgrade pip
	$(LG_VENV)/bin/python -m pip install -q $(LG_SPECS)
	$(LG_VENV)/bin/python -c "import importlib.metadata as m; print('bench: langgraph', m.version('langgraph'))"
	@touch $@

bench-core: $(LG_STAMP)

# CLI start-up (benchmarks/bench_cli.py): `tether --help`, `tether runs`, ... as fresh processes,
# median/p90/min against the 0.3 s target; writes benchmarks/results/cli.md.
BENCH_TARGETS += bench-cli

.PHONY: bench-cli

bench-cli: setup
	$(BIN)/python benchmarks/bench_cli.py
