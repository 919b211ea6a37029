//go:build tools

// Package tools pins kustomize, which Argo CD's repo server runs to render a Kustomize folder: the
// version Argo CD v3.6.2 ships in its image (its hack/tool-versions.sh).
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
