"""The platform: stack config -> Foundation (the chosen cloud) -> cluster add-ons + app -> outputs."""

import pulumi

import config
from clouds import build_foundation

cfg = config.load()
foundation = build_foundation(cfg)
pulumi.export("kubeconfig", foundation.kubeconfig)
pulumi.export("database_endpoint", pulumi.Output.concat(foundation.postgres.host, ":", str(foundation.postgres.port)))
