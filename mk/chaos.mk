# Chaos benchmark: 1,000 trials of durable agents while worker processes are SIGKILLed
# (benchmarks/bench_chaos.py, harness in tests/runtime/chaos_harness.py; the suite runs the same
# harness with 200 trials in tests/runtime/test_chaos.py). Writes benchmarks/results/chaos.md.
BENCH_TARGETS += bench-chaos

.PHONY: bench-chaos

bench-chaos: setup
	$(BIN)/python benchmarks/bench_chaos.py
