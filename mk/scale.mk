# Scale benchmarks (issue 18): Tether against DBOS Transact on one PostgreSQL, and Tether's
# throughput and worker memory as in-flight runs grow, on SQLite and PostgreSQL, with 1/2/4
# worker processes. Both need the private PostgreSQL of mk/postgres.mk (`make postgres`).
#   bench-dbos   benchmarks/bench_dbos.py: 1,000 concurrent workflows x 10 steps, Tether and DBOS
#                interleaved in one run on the same server (each in its own database), synchronous
#                commit on for both; steps/s and CPU per durable step; Tether SQLite vs PostgreSQL;
#                Tether with 1, 2 and 4 worker processes. Writes benchmarks/results/dbos.md.
#                DBOS Transact (`dbos` 3.x from PyPI) goes into its own venv, .tether/dbos-venv
#                (git-ignored, stamped: a second run reuses it); never a Tether dependency. Its
#                side runs as benchmarks/dbos_side.py under that venv's python, exchanging JSON.
#   bench-scale  benchmarks/bench_scale.py: 10k/50k/100k in-flight runs x 1/2/4 worker processes
#                x both stores: steps/s and peak RSS per worker. Writes benchmarks/results/scale.md.
DBOS_VENV := .tether/dbos-venv
DBOS_STAMP := $(DBOS_VENV)/.installed
DBOS_SPECS := "dbos>=3,<4"

BENCH_TARGETS += bench-dbos bench-scale

.PHONY: bench-dbos bench-scale bench-dbos-venv

bench-dbos-venv: $(DBOS_STAMP)

$(DBOS_STAMP): mk/scale.mk mk/bench.mk  # competitor_venv (the recipe) is in mk/bench.mk
	$(call competitor_venv,$(DBOS_VENV),$(DBOS_SPECS),dbos)

bench-dbos: setup postgres $(DBOS_STAMP)
	$(BIN)/python benchmarks/bench_dbos.py

bench-scale: setup postgres
	$(BIN)/python benchmarks/bench_scale.py
