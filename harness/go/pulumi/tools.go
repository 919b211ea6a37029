//go:build tools

// Package tools pins the Pulumi CLI: `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` here
// builds exactly the versions in go.mod and go.sum.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
