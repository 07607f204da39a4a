# tether/observe: Arize Phoenix for the trace integration test, the tracing benchmark and the
# screenshots; Debian's chromium for the screenshots (Playwright drives it; its own browser
# download is not reachable).
#   phoenix-setup  arize-phoenix (pinned) in its own venv, .tether/phoenix-venv: its dependency
#                  pins clash with ours, and Tether never imports it. Stamped per version
#                  (.installed-VERSION): a second `make` does nothing, a new pin reinstalls.
#                  From scratch (no uv cache) 29 s here, ~650 MB.
#   phoenix        (in SERVICES) starts Phoenix on 127.0.0.1 in the background (working dir
#                  .tether/phoenix, log .tether/phoenix/phoenix.log) and waits until it is healthy;
#                  a healthy one already running is reused. Stop it: make phoenix-stop.
#                  Ports: TETHER_PHOENIX_URL (http://127.0.0.1:16006: UI, REST API, OTLP/HTTP),
#                  TETHER_PHOENIX_GRPC_PORT (14317: OTLP/gRPC). tests/observe/phoenix_support.py.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV := .tether/phoenix-venv
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)

APT_PACKAGES += chromium
SERVICES += phoenix

.PHONY: phoenix-setup phoenix phoenix-stop

phoenix-setup: $(PHOENIX_STAMP)

$(PHOENIX_STAMP): | $(STAMP)
	@rm -rf $(PHOENIX_VENV)
	$(BIN)/uv venv -q --python $(PYTHON) $(PHOENIX_VENV)
	$(BIN)/uv pip install -q --python $(PHOENIX_VENV)/bin/python "arize-phoenix==$(PHOENIX_VERSION)"
	@touch $@

phoenix: $(PHOENIX_STAMP)
	$(BIN)/python -m tests.observe.phoenix_support start

phoenix-stop:
	$(BIN)/python -m tests.observe.phoenix_support stop

# CPU per durable step with live OTLP export on vs off (benchmarks/bench_tracing.py), to a minimal
# OTLP/HTTP receiver (Phoenix's own ingestion would compete for the cores: `--collector phoenix`
# measures against it); writes benchmarks/results/tracing.md.
BENCH_TARGETS += bench-tracing

.PHONY: bench-tracing

bench-tracing: setup
	$(BIN)/python benchmarks/bench_tracing.py

# docs/images/observability-*.png: a run's trace in Phoenix's UI and `tether trace`, taken with
# Debian's headless chromium through Playwright (tests/observe/screenshots.py).
.PHONY: observe-screenshots

observe-screenshots: setup phoenix
	$(BIN)/python -m tests.observe.screenshots
