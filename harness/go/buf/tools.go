//go:build tools

// Package tools pins buf's version through this module's go.mod and go.sum.
package tools

import _ "github.com/bufbuild/buf/cmd/buf"
