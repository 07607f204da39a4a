# tether serve (issue 15): the REST API. Its tests need only the `server` and `dev` extras the
# Makefile installs (FastAPI, uvicorn[standard], schemathesis); nothing from Debian.
#   bench-api  submits through a real `tether serve` (benchmarks/bench_api.py): (a) 1,000 fired at
#              once, retried with their idempotency keys; (b) a steady 40/s while 1,000+ runs are
#              in flight (the p99 <= 100 ms target's setting); against LangGraph's local API server
#              (`langgraph dev`) on the same workload. Fails if a run is lost or duplicated.
#              langgraph-cli[inmem] goes into its own venv, .tether/lgapi-venv (git-ignored,
#              stamped: a second run reuses it); never a Tether dependency. If it does not
#              install, the benchmark runs Tether alone and says so.
LGAPI_VENV := .tether/lgapi-venv
LGAPI_STAMP := $(LGAPI_VENV)/.installed
LGAPI_SPECS := "langgraph-cli[inmem]==0.4.40" "langgraph-api==0.16.7"

BENCH_TARGETS += bench-api

.PHONY: bench-api bench-api-langgraph

bench-api-langgraph: $(LGAPI_STAMP)

$(LGAPI_STAMP): mk/server.mk
	@test -x $(LGAPI_VENV)/bin/python || $(PYTHON) -m venv $(LGAPI_VENV)
	@($(LGAPI_VENV)/bin/python -m pip install -q --upgrade pip && \
	  $(LGAPI_VENV)/bin/python -m pip install -q $(LGAPI_SPECS) && touch $@) || \
	  echo "bench-api: langgraph-cli[inmem] did not install; the benchmark runs Tether alone"

bench-api: setup bench-api-langgraph
	$(BIN)/python benchmarks/bench_api.py
