# PostgreSQL (issue 18): a private server for the PostgreSQL store's tests and benchmarks.
#   postgres  (in SERVICES) runs Debian's `postgresql` binaries on a data directory of its own,
#             .tether/pg/data (git-ignored), listening on 127.0.0.1:$(PG_PORT) only (no Unix
#             socket), trust authentication for the superuser `tether`, and creates the
#             database `tether_test`. initdb refuses root, so as root the server runs as the
#             `postgres` user the Debian package creates (the data directory is owned by it).
#             Idempotent: a server already answering on the port is reused; a stopped one is
#             started again on its existing data directory. Durability is PostgreSQL's default
#             (fsync and synchronous_commit on), the same promise as SQLite's synchronous=FULL.
#   postgres-stop  stops it (the data directory stays), and PgBouncer below.
#   pgbouncer  (in SERVICES) Debian's PgBouncer in transaction mode on 127.0.0.1:$(PGB_PORT) in
#             front of that server (any database, user `tether`), as managed PostgreSQL services
#             put one: tests/store/test_pgbouncer.py runs the store through it. Runs as `postgres`
#             (it refuses root); its config, pid and log are in .tether/pgbouncer. Idempotent.
# tests/store/pg_support.py finds it at $TETHER_TEST_PG_URL or PG_URL below, and runs
# `make postgres` itself when nothing answers, so a bare `pytest` works too.
PG_PORT ?= 55432
PG_DIR := .tether/pg
PG_DATA := $(PG_DIR)/data
PG_LOG := $(PG_DIR)/server.log
PG_URL := postgresql://tether@127.0.0.1:$(PG_PORT)/tether_test
# the newest installed major version's binaries (resolved when the recipe runs, after apt)
PG_BIN = $$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
# as root, run the server's commands as `postgres`; otherwise as the current user
PG_AS = $$(if [ "$$(id -u)" = "0" ]; then echo "runuser -u postgres --"; fi)

APT_PACKAGES += postgresql pgbouncer
# libfaketime's `faketime`: a worker process whose host clock is skewed, for
# tests/runtime/test_clock_skew.py (leases and timers go by the server's clock)
APT_PACKAGES += faketime
SERVICES += postgres pgbouncer
PGB_PORT ?= 56432
PGB_DIR := .tether/pgbouncer

.PHONY: postgres postgres-stop pgbouncer pgbouncer-stop

postgres:
	@bin=$(PG_BIN); as="$(PG_AS)"; \
	test -x "$$bin/initdb" || { echo "postgres: PostgreSQL is not installed (Debian: apt-get install postgresql)"; exit 1; }; \
	if ! $$bin/pg_isready -q -h 127.0.0.1 -p $(PG_PORT); then \
	  mkdir -p $(PG_DIR); \
	  if [ -n "$$as" ]; then chown postgres: $(PG_DIR); fi; \
	  if [ ! -f $(PG_DATA)/PG_VERSION ]; then \
	    echo "postgres: initdb $(PG_DATA)"; \
	    $$as $$bin/initdb -D $(PG_DATA) -U tether --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null || exit 1; \
	  fi; \
	  echo "postgres: starting on 127.0.0.1:$(PG_PORT)"; \
	  $$as $$bin/pg_ctl -D $(PG_DATA) -l $(PG_LOG) -w -t 60 -s \
	    -o "-c listen_addresses=127.0.0.1 -p $(PG_PORT) -c unix_socket_directories='' -c max_connections=200" \
	    start || { tail -20 $(PG_LOG); exit 1; }; \
	fi; \
	for i in $$(seq 1 60); do $$bin/pg_isready -q -h 127.0.0.1 -p $(PG_PORT) && break; sleep 0.5; done; \
	$$bin/psql -q -h 127.0.0.1 -p $(PG_PORT) -U tether -d postgres -tAc \
	  "SELECT 1 FROM pg_database WHERE datname='tether_test'" | grep -q 1 || \
	  $$bin/createdb -h 127.0.0.1 -p $(PG_PORT) -U tether tether_test

postgres-stop: pgbouncer-stop
	@bin=$(PG_BIN); as="$(PG_AS)"; \
	if [ -f $(PG_DATA)/postmaster.pid ]; then $$as $$bin/pg_ctl -D $(PG_DATA) -s -m fast stop; fi

pgbouncer: postgres
	@bin=$(PG_BIN); as="$(PG_AS)"; \
	test -x /usr/sbin/pgbouncer || { echo "pgbouncer: not installed (Debian: apt-get install pgbouncer)"; exit 1; }; \
	if ! $$bin/pg_isready -q -h 127.0.0.1 -p $(PGB_PORT) -U tether -d postgres; then \
	  mkdir -p $(PGB_DIR); \
	  printf '%s\n' '[databases]' '* = host=127.0.0.1 port=$(PG_PORT) user=tether' '[pgbouncer]' \
	    'listen_addr = 127.0.0.1' 'listen_port = $(PGB_PORT)' 'unix_socket_dir =' 'auth_type = any' \
	    'pool_mode = transaction' 'max_client_conn = 500' 'default_pool_size = 20' \
	    'ignore_startup_parameters = extra_float_digits' \
	    "logfile = $$(pwd)/$(PGB_DIR)/pgbouncer.log" "pidfile = $$(pwd)/$(PGB_DIR)/pgbouncer.pid" \
	    > $(PGB_DIR)/pgbouncer.ini; \
	  if [ -n "$$as" ]; then chown -R postgres: $(PGB_DIR); fi; \
	  echo "pgbouncer: starting on 127.0.0.1:$(PGB_PORT) (transaction mode)"; \
	  $$as /usr/sbin/pgbouncer -q -d $(PGB_DIR)/pgbouncer.ini || { tail -20 $(PGB_DIR)/pgbouncer.log; exit 1; }; \
	  for i in $$(seq 1 40); do $$bin/pg_isready -q -h 127.0.0.1 -p $(PGB_PORT) -U tether -d postgres && break; sleep 0.25; done; \
	fi

pgbouncer-stop:
	@if [ -f $(PGB_DIR)/pgbouncer.pid ]; then kill $$(cat $(PGB_DIR)/pgbouncer.pid) 2>/dev/null || true; rm -f $(PGB_DIR)/pgbouncer.pid; fi
