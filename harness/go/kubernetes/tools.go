//go:build tools

// Package tools pins the Kubernetes control plane the e2e tier runs, the kubelet and kube-proxy of its
// real node (harness/e2e/node.py), and the kubectl it reads them with:
// `go build` of these commands here builds exactly the versions in go.mod and go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
