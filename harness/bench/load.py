"""Loopback load generators: wrk when it is installed, otherwise a Python one.

Both run a closed loop: a fixed number of connections, each sending its next request as soon as the
previous response arrived, until a time limit or the end of a request list that may not repeat. Both
measure latency from writing the request to reading the whole response, so queueing in gunicorn's
listen backlog counts (a sync worker takes one connection at a time and closes it after responding).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    generator: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_choice = "auto"
_keep_alive = False


def choose_generator(name: str, keep_alive: bool = False) -> None:
    """ "auto" (wrk when installed, else Python), "wrk" or "python". With `keep_alive`, wrk reuses each
    connection for the next request instead of asking the server to close it after each response."""
    global _choice, _keep_alive
    if name == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    _choice, _keep_alive = name, keep_alive
    if keep_alive and generator_name() != "wrk":
        raise SystemExit("keep-alive needs wrk: the Python generator opens a connection per request")


def keep_alive() -> bool:
    return _keep_alive


def generator_name() -> str:
    if _choice == "python" or (_choice == "auto" and not shutil.which("wrk")):
        return "python"
    return "wrk"


def drive(
    port: int,
    requests: Sequence[Request],
    *,
    connections: int,
    seconds: float,
    once: bool = False,
) -> Result:
    """Send `requests` in order, cycling unless `once`; stop after `seconds` or, if `once`, the last one.

    `once` always uses the Python generator: wrk can stop sending, but not report when it stopped.
    """
    if not requests:
        raise ValueError("no requests to send")
    if generator_name() == "wrk" and not once:
        return _drive_wrk(port, requests, connections=connections, seconds=seconds)
    return asyncio.run(_drive_python(port, requests, connections=connections, seconds=seconds, once=once))


# --- wrk ------------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local requests = %(requests)s
local formatted = {}
local next_index = 0

init = function(args)
  for i, r in ipairs(requests) do
    local headers = %(connection)s
    for name, value in pairs(r[4]) do headers[name] = value end
    if r[3] ~= "" then headers["Content-Type"] = "application/json" end
    formatted[i] = wrk.format(r[1], r[2], headers, r[3] ~= "" and r[3] or nil)
  end
end

request = function()
  next_index = next_index + 1
  if next_index > #formatted then
    next_index = 1
  end
  return formatted[next_index]
end

done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"status_errors\\": %%d, " ..
    "\\"socket_errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _drive_wrk(port: int, requests: Sequence[Request], *, connections: int, seconds: float) -> Result:
    entries = ",\n".join(_lua_request(r) for r in requests)
    connection = "{}" if _keep_alive else '{["Connection"] = "close"}'
    script = _WRK_SCRIPT % {"requests": "{\n" + entries + "\n}", "connection": connection}
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = Path(tmp) / "scenario.lua"
        path.write_text(script)
        # One wrk thread is plenty for a few thousand requests per second and leaves the second core to
        # the server; the timeout is far above any latency we would accept, so slow responses still count.
        command = [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--script",
            str(path),
            f"http://{HOST}:{port}/",
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30)
    line = next(x for x in output.stdout.splitlines() if x.startswith("WRK_RESULT "))
    figures = json.loads(line.removeprefix("WRK_RESULT "))
    return Result(
        generator="wrk",
        requests=figures["requests"],
        errors=figures["status_errors"] + figures["socket_errors"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
    )


def _lua_request(request: Request) -> str:
    headers = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers)
    method, path, body = (_lua_string(x) for x in (request.method, request.path, request.body.decode()))
    return f"{{{method}, {path}, {body}, {{{headers}}}}}"


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal of ASCII text is a valid Lua string literal


# --- Python ---------------------------------------------------------------------------------------------


async def _drive_python(
    port: int, requests: Sequence[Request], *, connections: int, seconds: float, once: bool
) -> Result:
    encoded = [_encode(r) for r in requests]
    latencies: list[float] = []
    errors = 0
    position = 0
    start = time.perf_counter()
    deadline = start + seconds

    def next_request() -> bytes | None:
        nonlocal position
        if once and position >= len(encoded):
            return None
        raw = encoded[position % len(encoded)]
        position += 1
        return raw

    async def connection() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            raw = next_request()
            if raw is None:
                return
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
                sent = time.perf_counter()
                writer.write(raw)
                response = await asyncio.wait_for(reader.read(), timeout=5)
                latencies.append(time.perf_counter() - sent)
                writer.close()
            except (OSError, TimeoutError):
                errors += 1
                continue
            if not response.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                errors += 1

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return Result(
        generator="python",
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=_percentile(latencies, 50) * 1e3,
        p99_ms=_percentile(latencies, 99) * 1e3,
    )


def _encode(request: Request) -> bytes:
    head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in request.headers]
    if request.body:
        head += ["Content-Type: application/json", f"Content-Length: {len(request.body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + request.body


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]
