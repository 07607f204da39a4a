"""The parts of `bench_tracing.py` (`make bench-tracing`): the local chat server its HTTP client
step talks to, and the results file's text."""
