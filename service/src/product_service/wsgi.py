"""The WSGI entry point gunicorn serves: `product_service.wsgi:app`.

gunicorn imports this module in each worker after it forks (the configuration never preloads the
app), so the Postgres pool and the Redis client are opened by, and belong to, the worker that uses them.
"""

import os

from product_service.app import open_app
from product_service.settings import load_settings
from product_service.tracing import installed_tracer_provider

app = open_app(load_settings(os.environ), tracer_provider=installed_tracer_provider())
