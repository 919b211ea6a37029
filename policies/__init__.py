"""The CrossGuard policy pack: guardrails for Kubernetes, AWS, GCP and Azure.

`pulumi preview --policy-pack policies` runs `__main__.py` (which starts the pack's gRPC server);
the offline plan runs the very same policy objects through `gate.py`. Both take them from
`pack.POLICIES`, so the engine and the offline gate can never disagree about which rules exist.
"""
