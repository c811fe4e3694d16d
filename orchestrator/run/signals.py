"""Ctrl-C and SIGTERM for one `arml run`: both stop a study the same way, at any moment.

While Tune runs, the first SIGINT is Tune's: it stops the trials gracefully and `fit()` returns; a SIGTERM (what
`timeout`, schedulers and `kill` send) is turned into that same SIGINT. Outside Tune (starting Ray, the report),
either raises `Stopped` (a KeyboardInterrupt) at once. Where stopping half-way would lose or corrupt what was
recorded (exporting the records, closing the MLflow runs, the summary), `deferred()` only notes the signal and the
work finishes first. Either way `received` names the signal, so the runner can export what was recorded, mark the
runs, say so in one line and exit with 130 (SIGINT) or 143 (SIGTERM).

Ray takes the signals over twice: `ray.init` installs its own SIGTERM handler (exit at once, nothing saved), and
`ray.shutdown()` resets SIGTERM to the default action below Python (the handler Python reports is no longer the one
the process runs). `reclaim()` after each puts ours back; Tune leaves its own SIGINT handler installed after
`fit()`, and `after_tune()` puts ours back too.

`early()` covers the moments before a run installs its handlers (reading the study, importing Ray): a SIGTERM
there is the same one-line stop as a Ctrl-C, with exit code 143.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
PAUSE_ENV = "ARML_PAUSE_AT"   # fault-injection for tests: "PHASE[,PHASE...]" makes the driver wait there
PAUSE_S = 60.0


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal; `signal_name` is "SIGINT" or "SIGTERM"."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def exit_code_of(error: BaseException) -> int:
    """130 for a Ctrl-C, 143 for a SIGTERM."""
    return EXIT_CODES.get(getattr(error, "signal_name", "SIGINT"), 130)


def early() -> None:
    """SIGTERM raises `Stopped("SIGTERM")` until a run installs its own handlers (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_sigterm)


def _raise_sigterm(signum: int, frame: Any) -> None:
    raise Stopped("SIGTERM")


class Interrupts:
    """The driver's SIGINT/SIGTERM handlers for one run (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self._active = False
        self._deferred = 0
        self._recording = threading.Lock()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received or "SIGINT", 130)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._active = True
        for sig, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm)):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)

    def uninstall(self) -> None:
        """The handlers that were there before `install`."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._active = False

    def reclaim(self) -> None:
        """Ours again, set anew below Python too: after `ray.init` (its own SIGTERM handler) and after
        `ray.shutdown()` (which resets SIGTERM to the default action where Python cannot see it)."""
        if self._active:
            signal.signal(signal.SIGINT, self._on_sigint)
            signal.signal(signal.SIGTERM, self._on_sigterm)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside, a signal is only noted (`received`): work that must not stop half-way finishes first."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    @contextlib.contextmanager
    def recording(self, timeout: float = -1) -> Iterator[bool]:
        """Held while the driver writes a record or a state, and by whoever ends the run from another thread
        (Ray lost): the two never write at once. With `timeout`, gives up waiting after that many seconds (and
        yields False)."""
        got = self._recording.acquire(timeout=timeout)
        try:
            yield got
        finally:
            if got:
                self._recording.release()

    def during_tune(self) -> None:
        """Called once Tune has installed its own SIGINT handler (from the callback's setup): a SIGINT is still
        noted here before Tune handles it."""
        if not self._active:
            return
        tune_handler = signal.getsignal(signal.SIGINT)
        if tune_handler is self._on_sigint or not callable(tune_handler):
            return

        def on_sigint(signum: int, frame: Any) -> None:
            self.received = self.received or "SIGINT"
            if not self._deferred:
                tune_handler(signum, frame)   # Tune stops its trials, saves its state and reinstalls ours

        signal.signal(signal.SIGINT, on_sigint)

    def after_tune(self) -> None:
        """Ours again, whatever Tune left installed."""
        if self._active:
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.received = self.received or "SIGINT"
        if not self._deferred:
            raise Stopped(self.received)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.received = "SIGTERM"
        if self._deferred:
            return
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not self._on_sigint:
            handler(signal.SIGINT, frame)   # Tune's (through during_tune): the same graceful stop as Ctrl-C
            return
        raise Stopped("SIGTERM")

    def pause_point(self, phase: str) -> None:
        """Fault injection for the tests: when $ARML_PAUSE_AT names `phase`, say so on stderr and wait (up to a
        minute) until a signal arrives; raises `Stopped` there unless the signal is deferred. A no-op otherwise."""
        if phase not in os.environ.get(PAUSE_ENV, "").split(","):
            return
        print(f"arml: paused at {phase}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + PAUSE_S
        while self.received is None and time.monotonic() < deadline:
            time.sleep(0.05)
