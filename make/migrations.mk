# Writing a migration: autogenerate against a throwaway PostgreSQL at head (tools/revision.py).

m ?=

.PHONY: revision
revision: venv ## New migration from the models: make revision m="add colour" (next id, ruff-formatted)
	@test -n "$(m)" || { echo 'make revision: give a message: make revision m="add colour"'; exit 2; }
	$(PY) -m tools.revision "$(m)"
