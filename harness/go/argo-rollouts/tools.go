//go:build tools

// Package tools pins the Argo Rollouts controller, which runs the service's canaries on the real node (make images).
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
)
