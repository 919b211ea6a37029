//go:build tools

// Package tools pins Jaeger v2 (module v1.x), the tracing backend the real node runs (make images).
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/jaeger"
)
