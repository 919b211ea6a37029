"""The platform: stack config -> Foundation (the chosen cloud) -> cluster add-ons + app -> outputs.

Pulumi runs this file; `make plan` runs it too, under the offline engine (harness/plan/plan.py).
"""

import config
import pulumi
from app import NAME as SERVICE_NAME
from app import NAMESPACE as SERVICE_NAMESPACE
from app import ProductService
from clouds import build_foundation
from cluster import ClusterAddons

cfg = config.load()  # a wrong value stops here, before any resource is declared
foundation = build_foundation(cfg)
addons = ClusterAddons(
    "addons", cfg, foundation, service_job=SERVICE_NAME, service_namespace=SERVICE_NAMESPACE
)
service = ProductService("product-service", cfg, foundation, addons)
# The API's certificate goes into the service's namespace, which the service makes.
addons.certify(cfg.host, SERVICE_NAMESPACE, after=[service])

pulumi.export("kubeconfig", pulumi.Output.secret(foundation.kubeconfig))
pulumi.export("api_url", service.api_url)
# An add-on platform:addons leaves out has no URL, and no output.
for output, url in {
    "grafana_url": addons.grafana_url,
    "jaeger_url": addons.jaeger_url,
    "argocd_url": addons.argocd_url,
    # The local CA's certificate (platform:localTls), which clients of the local hosts trust.
    "ca_certificate": addons.local_ca,
}.items():
    if url is not None:
        pulumi.export(output, url)
# What the parent zone delegates platform:domain to (an NS record set), so the stack's records resolve.
if foundation.cluster.public_zone is not None:
    pulumi.export("name_servers", foundation.cluster.public_zone.name_servers)
# Endpoints only: passwords stay in the Kubernetes Secret and Pulumi's encrypted state.
pulumi.export(
    "database_endpoint", pulumi.Output.format("{0}:{1}", foundation.postgres.host, foundation.postgres.port)
)
pulumi.export("redis_endpoint", pulumi.Output.format("{0}:{1}", foundation.redis.host, foundation.redis.port))
