//go:build tools

// The commands this module builds (tools/from_source.py runs go build on them).
package tools

import _ "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold"
