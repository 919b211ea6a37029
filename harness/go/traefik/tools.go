//go:build tools

// Package tools pins Traefik, the ingress controller the real node runs (make images).
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)
