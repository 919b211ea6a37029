//go:build tools

// Package tools pins Helm for `make charts`: the same Helm release the Kubernetes provider embeds
// (harness/go/pulumi-kubernetes/go.mod), so the audit renders charts as `pulumi up` installs them.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
