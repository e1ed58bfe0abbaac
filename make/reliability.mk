# Fault, load and hostile-input checks beyond the regular suite (which runs short versions).

SOAK_SECONDS ?= 300

.PHONY: soak
soak: venv ## Mixed load for SOAK_SECONDS (default 300): zero errors, flat memory, bounded connections
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest tests/reliability/test_soak.py -s -q

.PHONY: audit
audit: venv ## Check every locked dependency against PyPI's vulnerability advisories
	$(PY) -m tools.audit requirements.lock requirements-dev.lock
