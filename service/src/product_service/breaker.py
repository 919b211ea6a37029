"""A circuit breaker per backing service (Postgres, Redis), shared by every thread of a process.

Closed, calls go through. When a call fails, the breaker asks the service directly (its `probe`, with a
short timeout) on a thread of its own, one probe at a time: if the service answers, the failure was a
one-off (a dead pooled connection after a restart) and the breaker stays closed; if not, it opens. A
failing caller waits for that verdict at most `verdict_wait` seconds: Redis's breaker waits about its
short timeout (the next call is then refused at once instead of paying a timeout of its own); Postgres's
waits not at all, since its probe may take a connect timeout, beyond a request's budget (budget.py).
Open, calls are refused at once, without touching the network, and the same thread probes every
`probe_interval` seconds; the first probe that succeeds closes the breaker (after any `before_closing`
steps). So an outage costs one timeout per process, not one per request, and recovery is noticed
within one probe interval instead of at the next request that dares to try.

Pattern: Nygard, "Release It!", Circuit Breaker; the background probe replaces the half-open trial call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Probe = Callable[[], None]  # returns when the service answers, raises otherwise
StateListener = Callable[[str, bool], None]  # (service name, available)

DEFAULT_PROBE_INTERVAL_SECONDS = 0.5


class CircuitOpen(Exception):
    """The breaker of `service` is open: the call was not attempted."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} is unavailable")
        self.service = service


class CircuitBreaker:
    def __init__(
        self,
        service: str,
        probe: Probe,
        probe_interval: float = DEFAULT_PROBE_INTERVAL_SECONDS,
        on_change: StateListener | None = None,
        verdict_wait: float = 0.0,
    ) -> None:
        self.service = service
        self._probe = probe
        self._probe_interval = probe_interval
        self._verdict_wait = verdict_wait
        self._on_change = on_change
        self._lock = threading.Lock()
        self._open = False
        self._verdict: threading.Event | None = None  # set when the probe after a failure has decided
        self._closing_steps: list[Callable[[], None]] = []
        self._stopped = threading.Event()
        if on_change is not None:
            on_change(service, True)

    @property
    def is_open(self) -> bool:
        return self._open

    def check(self) -> None:
        """Raise `CircuitOpen` when calls must not be attempted."""
        if self._open:
            raise CircuitOpen(self.service)

    def record_failure(self) -> None:
        """A call failed: probe the service in the background, and open the breaker unless it answers."""
        with self._lock:
            if self._open:
                return
            if self._verdict is None:
                self._verdict = threading.Event()
                threading.Thread(
                    target=self._probe_after_failure,
                    args=(self._verdict,),
                    name=f"{self.service}-probe",
                    daemon=True,
                ).start()
            verdict = self._verdict
        if self._verdict_wait:
            verdict.wait(self._verdict_wait)

    def before_closing(self, step: Callable[[], None]) -> None:
        """Run `step` when the service answers again, before calls go through; while it raises, the
        breaker stays open (and tries again at the next probe)."""
        self._closing_steps.append(step)

    def close(self) -> None:
        """Stop probing (the process is shutting down)."""
        self._stopped.set()

    def _probe_after_failure(self, verdict: threading.Event) -> None:
        answers = self._answers()
        with self._lock:
            self._open = not answers
            self._verdict = None
        verdict.set()
        if answers:
            return
        log.warning(
            "%s does not answer: circuit open, probing every %.1f s", self.service, self._probe_interval
        )
        self._notify(available=False)
        while not self._stopped.wait(self._probe_interval):
            if self._answers() and self._closing_steps_done():
                with self._lock:
                    self._open = False
                log.warning("%s answers again: circuit closed", self.service)
                self._notify(available=True)
                return

    def _closing_steps_done(self) -> bool:
        try:
            for step in self._closing_steps:
                step()
        except Exception as error:
            log.warning("%s answers, but a step before closing its circuit failed: %r", self.service, error)
            return False
        return True

    def _answers(self) -> bool:
        try:
            self._probe()
        except Exception:
            return False
        return True

    def _notify(self, available: bool) -> None:
        if self._on_change is not None:
            self._on_change(self.service, available)
