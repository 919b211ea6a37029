//go:build tools

// Package tools pins the Kubernetes control plane the e2e tier runs (and the kubectl it reads it with):
// `go build` of these commands here builds exactly the versions in go.mod and go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
