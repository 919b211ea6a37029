"""gunicorn settings for the bare Flask baseline: the production config's settings without its hooks.

Plain settings (workers, worker class, timeouts, the JSON access logger, ...) are copied, so both
servers do the same per-request gunicorn work; the hooks are left out because they set up the product
service's metrics and tracing, which would make the baseline no longer bare.
"""

import inspect
import os
import runpy

from gunicorn.config import KNOWN_SETTINGS

_production = runpy.run_path(os.environ["BENCH_PRODUCTION_GUNICORN_CONFIG"])
_settings = {setting.name for setting in KNOWN_SETTINGS} - {"wsgi_app", "proc_name"}
globals().update({k: v for k, v in _production.items() if k in _settings and not inspect.isfunction(v)})
