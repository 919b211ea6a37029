"""The gunicorn worker: gunicorn's threaded worker, with a read deadline and the service's JSON errors.

Threads, not sync workers: a sync worker serves one connection at a time, so two clients that open a
request and stop sending (slowloris) stalled both workers of a pod, `/health` included, until the
30 s worker timeout. gunicorn's threaded worker already parks a connection that sends nothing for 5 s
in its poller instead of a thread; this one also gives every read from a client `CLIENT_READ_TIMEOUT`
seconds, so a client that stops in the middle of its headers or body loses its connection instead of
holding a thread, and such connections are closed in their own thread, not on the worker's main loop.
Stalling a pod now takes `workers x threads` connections that each keep sending a byte every few
seconds, and the ingress in front of the pods buffers requests before they reach it.

Errors that gunicorn answers itself (a malformed request line or header, a bad Content-Length,
headers too large, an unsupported transfer coding) get the service's JSON error shape instead of
gunicorn's HTML page.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import gthread
from gunicorn.workers.gthread import TConn, ThreadWorker

from product_service.errors import error_body

CLIENT_READ_TIMEOUT = 5.0

# gunicorn's request errors -> (status, reason, code, what the client is told). The message describes
# the request, never gunicorn's or Python's text, which may echo the raw input.
_INTERNAL_ERROR = (500, "Internal Server Error", "internal_error", "the server failed to handle the request")
_REQUEST_ERRORS: tuple[tuple[type[Exception], int, str, str, str], ...] = (
    # The application's or the configuration's fault, not the client's.
    (http_errors.InvalidResponseHeader, *_INTERNAL_ERROR),
    (http_errors.InvalidResponseHeaderName, *_INTERNAL_ERROR),
    (http_errors.ConfigurationProblem, *_INTERNAL_ERROR),
    (http_errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long", "the request line is too long"),
    (
        http_errors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "request_header_fields_too_large",
        "the request headers are too many or too large",
    ),
    (
        http_errors.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        "not_implemented",
        "the request's Transfer-Encoding is not supported",
    ),
    (
        http_errors.ExpectationFailed,
        417,
        "Expectation Failed",
        "expectation_failed",
        "the request's Expect header cannot be met",
    ),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "the request is forbidden"),
    (http_errors.ParseException, 400, "Bad Request", "bad_request", "the request is not valid HTTP/1.1"),
)


class ProductServiceWorker(ThreadWorker):
    def init_process(self) -> None:
        self.log.error_log.addFilter(_ReadTimeoutsAreInfo())
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        self.nr_conns += 1
        client.setblocking(True)
        self.enqueue_req(_DeadlineConnection(self.cfg, client, address, listener.getsockname()))

    def handle(self, conn: TConn) -> Any:
        keep = super().handle(conn)
        if not keep and keep is not gthread._DEFER:
            # Closing lingers up to 2 s for the client to close first; gunicorn would do it on the
            # worker's main loop, which stops accepting meanwhile: one timed-out client per 2 s would
            # stall the worker. Here it costs only this thread.
            conn.close(graceful=True)
        return keep

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        status, reason, code, message = _describe(exc)
        if status == 500:
            self.log.exception("error handling request")
        else:
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], exc)
        if req is not None:
            self._log_access(req, client, addr, status, reason)
        body = error_body(code, message)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            client.sendall(head + body)
        except OSError:
            self.log.debug("failed to send the error response")

    def _log_access(self, req: Any, client: socket.socket, addr: Any, status: int, reason: str) -> None:
        environ = default_environ(req, client, self.cfg)
        environ["REMOTE_ADDR"] = (addr or ("",))[0]
        response = Response(req, client, self.cfg)
        response.status = f"{status} {reason}"
        response.status_code = status
        self.log.access(response, req, environ, timedelta(0))  # answered before any handling


class _DeadlineConnection(TConn):
    closed = False

    def init(self) -> None:
        super().init()
        # gunicorn makes the socket blocking (no timeout) before each request; give every read a bound.
        self.sock.settimeout(CLIENT_READ_TIMEOUT)

    def close(self, graceful: bool = False) -> None:
        # Once from `handle`, then again from gunicorn's main loop, which must find nothing to do: a
        # second close of the socket would raise there and make gunicorn count the connection twice.
        if not self.closed:
            self.closed = True
            super().close(graceful)


class _ReadTimeoutsAreInfo(logging.Filter):
    """gunicorn logs any socket error with its traceback at ERROR, a client that hit the read timeout
    too: that is the timeout doing its job, one line at INFO, or a slowloris would flood the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args, record.exc_info, record.exc_text = (
                f"client sent nothing for {CLIENT_READ_TIMEOUT:.0f} s: connection closed",
                None,
                None,
                None,
            )
        return True


def _describe(exc: BaseException) -> tuple[int, str, str, str]:
    for kind, status, reason, code, message in _REQUEST_ERRORS:
        if isinstance(exc, kind):
            return status, reason, code, message
    return _INTERNAL_ERROR
