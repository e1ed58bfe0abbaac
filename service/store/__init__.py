"""The data layer: engine and kept connections, models, queries per resource, schema revision."""
