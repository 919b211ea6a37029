"""JSON log lines on stdout, each carrying the trace and span id of the request that wrote it."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger
from opentelemetry import trace

from product_service.proxies import trusted_proxies

# The app stores a request's ids under these WSGI environ keys for the access log line.
TRACE_ID_ENVIRON_KEY = "product_service.trace_id"
SPAN_ID_ENVIRON_KEY = "product_service.span_id"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `extra={"fields": {...}}` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["trace_id"] = format(span_context.trace_id, "032x")
            line["span_id"] = format(span_context.span_id, "016x")
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` document: the app's, gunicorn's error and access logs, as JSON."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))


class JsonAccessLogger(GunicornLogger):
    """gunicorn's logger with one JSON object per request in the access log. `remote_addr` is the
    connection's peer (behind the ingress, a Traefik pod), `client_addr` the client's address: the one
    the peer puts last in X-Forwarded-For when gunicorn's `forwarded_allow_ips` trusts it (proxies.py)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        peer = environ.get("REMOTE_ADDR")
        proxies = trusted_proxies(tuple(self.cfg.forwarded_allow_ips))
        fields = {
            "remote_addr": peer,
            "client_addr": proxies.client(peer, environ.get("HTTP_X_FORWARDED_FOR")),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": _status_code(resp),
            "response_bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            # The request's span has ended by now; the app left its ids in the WSGI environ.
            "trace_id": environ.get(TRACE_ID_ENVIRON_KEY),
            "span_id": environ.get(SPAN_ID_ENVIRON_KEY),
        }
        self.access_log.info("request", extra={"fields": fields})


def _status_code(resp: Any) -> int | None:
    # gunicorn's own error answers set only `status` ("400 Bad Request"), never `status_code`.
    code = getattr(resp, "status_code", None)
    if code is None and isinstance(getattr(resp, "status", None), str):
        head = resp.status.partition(" ")[0]
        code = int(head) if head.isdigit() else None
    return code
