//go:build tools

// Package tools pins Argo CD, whose one binary is every component (it picks one by the name it runs as):
// the real node's GitOps test runs its application controller and repo server.
package tools

import _ "github.com/argoproj/argo-cd/v3/cmd"
