"""Ctrl-C and SIGTERM for one `arml run`: both stop a study the same way.

While Tune runs, the first SIGINT is Tune's: it stops the trials gracefully and `fit()` returns; a SIGTERM (what
`timeout`, schedulers and `kill` send) is turned into that same SIGINT. Outside Tune (starting Ray, the report),
either raises KeyboardInterrupt at once. Either way `received` names the signal, so the runner can export what
was recorded, mark the runs, say so in one line and exit with 130 (SIGINT) or 143 (SIGTERM). Tune leaves its own
SIGINT handler installed after `fit()` when no signal came; `after_tune()` puts ours back, so a Ctrl-C during
the report is never swallowed.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Interrupts:
    """The driver's SIGINT/SIGTERM handlers for one run (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self._active = False

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
        """Ours again after `ray.init`, which installs its own SIGTERM handler (exit at once, nothing saved)."""
        if self._active:
            signal.signal(signal.SIGINT, self._on_sigint)
            signal.signal(signal.SIGTERM, self._on_sigterm)

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
            tune_handler(signum, frame)   # Tune stops its trials, saves its state and reinstalls ours

        signal.signal(signal.SIGINT, on_sigint)

    def after_tune(self) -> None:
        """Ours again, whatever Tune left installed."""
        if self._active:
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.received = self.received or "SIGINT"
        raise KeyboardInterrupt

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.received = "SIGTERM"
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not self._on_sigint:
            handler(signal.SIGINT, frame)   # Tune's (through during_tune): the same graceful stop as Ctrl-C
            return
        raise KeyboardInterrupt
