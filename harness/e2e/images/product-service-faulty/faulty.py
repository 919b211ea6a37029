"""The fault of the FAULTY release stand-in: every /api request answers 500, after Flask's own hooks, so the
service's metrics count each one (the probes, /metrics and gRPC are untouched)."""

import flask

_dispatch = flask.Flask.dispatch_request


def _failing(self: flask.Flask) -> object:
    if flask.request.path.startswith("/api/"):
        return {"error": "injected fault: a bad release"}, 500
    return _dispatch(self)


flask.Flask.dispatch_request = _failing  # type: ignore[method-assign]
