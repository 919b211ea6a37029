//go:build tools

// Package tools pins metrics-server, the metrics API that the HPA reads on the real node (make images).
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
