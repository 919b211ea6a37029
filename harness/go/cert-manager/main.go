// Command cert-manager-controller runs cert-manager's own controllers (issuers, certificates, certificate
// requests, ACME orders and challenges, the Ingress shim) from the pinned module's public pkg/controller
// API. It is a STAND-IN for the controller's main: that main is a module of its own
// (github.com/cert-manager/cert-manager/controller-binary, in cmd/controller), which no module proxy
// serves and the root module leaves out. What it leaves out of the real main: leader election, the
// configuration file and most flags (it reads the chart's DNS-01 ones), metrics, the health server and
// the Gateway API controllers.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each controller and issuer registers itself when its package is imported.
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the kubeconfig to reach the API server with")
	namespace := flag.String("cluster-resource-namespace", "cert-manager", "where ClusterIssuers' Secrets live")
	// The real controller's DNS-01 flags, as the chart's dns01RecursiveNameservers(Only) values set them.
	nameservers := flag.String("dns01-recursive-nameservers", "", "host:port,... to check DNS-01 records with")
	only := flag.Bool("dns01-recursive-nameservers-only", false, "check with those only, not the zone's own")
	retry := flag.Duration("dns01-check-retry-period", 10*time.Second, "between two checks of a DNS-01 record")
	flag.Parse()
	logf.InitLogs()
	defer logf.FlushLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	// The real controller's defaults for what this stand-in does not read from flags.
	opts := controller.ContextOptions{Kubeconfig: *kubeconfig, KubernetesAPIQPS: 20, KubernetesAPIBurst: 50}
	opts.ClusterResourceNamespace = *namespace
	opts.DNS01CheckAuthoritative = !*only
	opts.DNS01CheckRetryPeriod = *retry
	if *nameservers != "" {
		opts.DNS01Nameservers = strings.Split(*nameservers, ",")
	}
	opts.MaxConcurrentChallenges = 60
	factory, err := controller.NewContextFactory(ctx, opts)
	if err != nil {
		log.Error(err, "connecting to the API server")
		os.Exit(1)
	}
	shared, err := factory.Build()
	if err != nil {
		log.Error(err, "building the controllers' context")
		os.Exit(1)
	}
	var running sync.WaitGroup
	for name, construct := range controller.Known() {
		loop, err := construct(factory)
		if err != nil {
			log.Error(err, "constructing a controller", "controller", name)
			os.Exit(1)
		}
		running.Go(func() {
			if err := loop.Run(2, ctx); err != nil {
				log.Error(err, "controller stopped", "controller", name)
			}
		})
	}
	// The controllers share these informers; they start once every controller has registered its own.
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	running.Wait()
}
