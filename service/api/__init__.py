"""The versioned JSON API: one module per resource."""
