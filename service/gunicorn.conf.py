"""The image's gunicorn configuration file: the settings and hooks of `product_service.gunicorn_conf`.

Kept as a file for `gunicorn --config /etc/product-service/gunicorn.conf.py`; tests and
`python -m product_service serve` load the same module as `python:product_service.gunicorn_conf`.
"""

from product_service.gunicorn_conf import *  # noqa: F403
