"""Developer tooling: a throwaway PostgreSQL, outside-tool lookup, the `make run` launcher."""
