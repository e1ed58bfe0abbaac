"""HTTP plumbing shared by every route: errors, security headers, JSON, OpenAPI, probes."""
