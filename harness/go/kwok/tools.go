//go:build tools

// Package tools pins kwok, which plays the kubelet for fake nodes in the e2e control plane.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
