// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider v4.25.0 from its Go module.
//
// The provider's own cmd/ embeds files that its release build generates and the module lacks
// (the schema with its version set, the Terraform mapping); the Makefile writes them beside this
// file from the module's schema.json and terraform-mapping.json before `go build`.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
