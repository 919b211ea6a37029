//go:build tools

// Package tools pins the Prometheus operator and its config reloader, which the real node runs (make images).
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
)
