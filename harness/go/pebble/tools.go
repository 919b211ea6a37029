//go:build tools

// Package tools pins Pebble, Let's Encrypt's ACME test server: the e2e's stand-in for Let's Encrypt, which
// it cannot reach (tests/e2e/test_real_node.py, the HTTPS name).
package tools

import _ "github.com/letsencrypt/pebble/v2/cmd/pebble"
