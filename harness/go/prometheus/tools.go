//go:build tools

// Package tools pins Prometheus (module v0.3xx.y is Prometheus v3.xx.y), which the real node runs (make images).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
