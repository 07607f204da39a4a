# tether/sandbox: bubblewrap (default backend), gVisor's runsc, and the libseccomp binding used to
# generate the sandbox's seccomp filter; python3-venv builds the sandbox's own Python environment.
#   sandbox-setup  (in SETUP_TARGETS) builds, under /opt/tether (as root; else
#                  ~/.local/share/tether): a read-only Python venv from /usr/bin/python3 with numpy
#                  and pandas, the seccomp BPF filter and the rootfs skeleton. Stamped per piece:
#                  a second `make` only regenerates the (tiny) seccomp filter.
#   bench-sandbox  (in BENCH_TARGETS) cold start / pool / import pandas per backend.
DEMO_APT_PACKAGES += bubblewrap runsc python3-seccomp python3-venv
SETUP_TARGETS += sandbox-setup
BENCH_TARGETS += bench-sandbox

.PHONY: sandbox-setup bench-sandbox

sandbox-setup: $(STAMP)
	$(BIN)/python -m tether.sandbox._setup

bench-sandbox: setup
	$(BIN)/python benchmarks/bench_sandbox.py
