//go:build tools

// The commands this module builds (tools/from_source.py runs go build on them).
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
