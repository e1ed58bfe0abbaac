//go:build tools

// The commands this module builds (tools/from_source.py runs go build on them).
package tools

import _ "sigs.k8s.io/kind"
