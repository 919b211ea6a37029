// Command coredns is the cluster DNS of the e2e tier's real node (harness/e2e/node.py): CoreDNS from the
// pinned module with only the plugins its Corefile uses, so the build skips the cloud DNS providers'
// SDKs that the full plugin set pulls in.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
)

func main() {
	coremain.Run()
}
