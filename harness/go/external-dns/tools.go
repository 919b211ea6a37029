//go:build tools

// Package tools pins external-dns (its main is the module root) for the e2e real node's HTTPS name.
package tools

import _ "sigs.k8s.io/external-dns"
