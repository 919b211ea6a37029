"""One module per target; each builds its resources and returns the same `Foundation`.

Modules are imported only for the chosen cloud: the provider SDKs are large (a local stack never
loads pulumi_azure_native) and a cloud's module may read that cloud's provider config on import.
"""

from __future__ import annotations

import importlib

from config import PlatformConfig
from foundation import Foundation


def build_foundation(cfg: PlatformConfig) -> Foundation:
    """The Foundation of `cfg.cloud` (aws, gcp, azure or local), built by `clouds/<cloud>.py`."""
    module = importlib.import_module(f"clouds.{cfg.cloud}")
    foundation: Foundation = module.build(cfg)
    return foundation
