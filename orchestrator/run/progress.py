"""What `arml run` tells the terminal while a study runs, and what it keeps away from it.

`Progress` counts trials from Tune's own trial list (each trial's `.status`), not from a snapshot of the
record book, so "running" is what runs now. It estimates the time left from this session's completion
rate and shows, per method, the best validation accuracy so far: selection is on validation only, no
test number chosen across trials ever reaches the line. On a terminal the line updates in place and fits
the terminal's width (shorter words first, then without the rate and time left, the accuracies last); in
a log (stdout not a TTY) it is a timestamped line every `every_s` seconds, changed or not, and at each
completion once Tune has started the next trial in its place (or 2 s later): a line written the moment a trial
ends would always show one trial fewer running than the study runs. Until Ray starts a first trial the line
says it is waiting for Ray to schedule trials.

`quiet_ray(run_dir)` sends Ray's and Tune's own output (TensorBoard hint, token-authentication warning,
Tune's tables) to `RUN_DIR/ray.log` and keeps MLflow's INFO lines out of the terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from orchestrator.store.folder import RAY_LOG, RunFolder

# Tune's trial states -> ours; a trial Tune has not created yet (a searcher still to draw it) is pending
TUNE_STATES = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "pending", "TERMINATED": "finished",
               "ERROR": "failed"}
# what keeps Ray's and Tune's own messages out of the terminal (set before Tune builds its reporters)
QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",                   # the legacy reporter, which verbose=0 silences: no boxes
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",   # no TensorBoard/CSV/JSON loggers per trial (we keep records)
    "RAY_DEDUP_LOGS": "0",                       # no "repeated Nx across cluster" summaries
    "MLFLOW_LOGGING_LEVEL": "WARNING",           # no "Creating initial MLflow database tables" lines
}
RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air", "ray.data", "ray._private")


class _QuietFileHandler(logging.FileHandler):
    """RUN_DIR/ray.log: a message that cannot be written (a full disk) is dropped, never printed to the terminal
    as Python's "--- Logging error ---" traceback; the run itself says in one line what went wrong."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def quiet_ray(run_dir: str) -> str:
    """Routes Ray's and Tune's loggers to RUN_DIR/ray.log (their messages are kept, not shown) and sets the
    environment that stops Tune's console reporter and per-trial loggers; returns the log file's path.
    Call it before `tune.Tuner(...)`; a variable the user set is left alone."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.makedirs(run_dir, exist_ok=True)
    path = RunFolder(run_dir).file(RAY_LOG)
    handler = _QuietFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.arml_run_log = True  # type: ignore[attr-defined]  # replaced by the next study in this process
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "arml_run_log", False) or not isinstance(old, logging.FileHandler):
                logger.removeHandler(old)  # the console, or an earlier study's ray.log; other files stay
        logger.addHandler(handler)
        logger.propagate = False
    return path


@contextlib.contextmanager
def native_stderr_to(path: str) -> Iterator[None]:
    """While Ray runs, what its native code writes to this process's stderr (the driver's C++ core worker: a lost
    node's raylet lines with their colour codes, "Failed to connect to GCS") goes to `path` (RUN_DIR/ray.log);
    Python's own `sys.stderr` (the run's one-line messages) still reaches the terminal. Only when `sys.stderr` is
    the process's file descriptor 2 (not under a test's capture)."""
    try:
        redirect = sys.stderr is sys.__stderr__ and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        redirect = False
    if not redirect:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    original = sys.stderr
    sys.stderr = io.TextIOWrapper(io.FileIO(saved, "w", closefd=False), line_buffering=True,
                                  encoding=original.encoding, errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


LOG_WIDTH = 120   # a log line is never cut; up to this width it uses the long wording
COUNT_EVERY_S = 0.25   # Tune's loop asks many times a second; counting a wide study's trials is not free


def _acc(value: float) -> str:
    """'.915' (3 decimals, no leading zero), '1.000'."""
    text = f"{value:.3f}"
    return text[1:] if text.startswith("0.") else text


class Progress:
    """The progress line of one study run (driver side); every method is safe to call often."""

    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 30.0,
                 tty: bool | None = None, clock=time.time, width: int | None = None,
                 ended_before: dict[str, int] | None = None) -> None:
        self.total, self.every_s, self.clock, self.width = total, every_s, clock, width
        # trials of the study outside Tune's list that ended in an earlier launch (resume): {"finished": n, ...}
        self.ended_before = {"finished": 0, "failed": 0, **(ended_before or {})}
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.start = clock()
        self.best_val: dict[str, float] = {}
        self.counts = {"finished": 0, "running": 0, "pending": total, "failed": 0}
        self._done_at_start: int | None = None   # trials already finished when this session started (resume)
        self._started = False                    # whether a trial ran or ended in this session
        self._slots = 0                          # the most trials seen running at once (the study's concurrency)
        self._due: float | None = None           # when a trial ended whose log line waits for its slot's next trial
        self._last_print = 0.0
        self._counted = float("-inf")
        self._last_line = ""
        self._open_line = False

    # ---- inputs ---------------------------------------------------------------------------------
    def count(self, trials: Iterable[Any], ending: tuple[Any, str] | None = None) -> dict[str, int]:
        """Counts from Tune's trial list: each trial's `.status` (PENDING, RUNNING, TERMINATED, ERROR...).
        `ending` = (trial, our state): Tune calls on_trial_complete while that trial is still RUNNING."""
        counts = {"finished": 0, "running": 0, "pending": 0, "failed": 0}
        for trial in trials:
            if ending is not None and trial is ending[0]:
                counts[ending[1]] += 1
                continue
            counts[TUNE_STATES.get(str(getattr(trial, "status", "PENDING")), "pending")] += 1
        for key in ("finished", "failed"):
            counts[key] += self.ended_before[key]
        counts["pending"] += max(0, self.total - sum(counts.values()))
        self.counts = counts
        self._slots = max(self._slots, counts["running"] + (ending is not None))   # the ending trial ran too
        if self._done_at_start is None:
            self._done_at_start = counts["finished"] + counts["failed"]
        self._started |= counts["running"] > 0 or counts["finished"] + counts["failed"] > self._done_at_start
        return counts

    def note_val(self, method: str, best_val_acc: Any) -> None:
        """A trial's best validation accuracy; the line shows each method's best so far."""
        try:
            value = float(best_val_acc)
        except (TypeError, ValueError):
            return
        if value == value:
            self.best_val[method] = max(self.best_val.get(method, float("-inf")), value)

    # ---- output ---------------------------------------------------------------------------------
    def line(self, width: int | None = None) -> str:
        """The progress line; with `width`, the longest wording that fits: counts, time left and each method's
        best validation accuracy, with fewer words first, then without the rate and time, then cut."""
        texts = self._wordings()
        if width is None:
            return texts[0]
        return next((text for text in texts if len(text) <= width), texts[-1][:width - 1].rstrip() + "…")

    def _wordings(self) -> list[str]:
        c = self.counts
        counts = (f"{c['finished']}/{self.total} done, {c['running']} running, {c['pending']} pending, "
                  f"{c['failed']} failed")
        short = f"{c['finished']}/{self.total} done {c['running']} run {c['pending']} pend {c['failed']} fail"
        ended = c["finished"] + c["failed"]
        elapsed = self.clock() - self.start
        new = ended - (self._done_at_start or 0)
        waiting = False
        if ended >= self.total:
            timing = middle = brief = ""
        elif waiting := not self._started and c["running"] == 0:
            timing = middle = f"waiting for Ray to schedule trials ({_duration(elapsed)})"
            brief = f"waiting for Ray ({_duration(elapsed)})"
        elif new > 0 and elapsed > 0:
            rate = new / elapsed
            left = _duration((self.total - ended) / rate)
            timing, middle, brief = f"{rate * 60:.1f} trials/min, ~{left} left", f"~{left} left", f"~{left}"
        else:
            timing = middle = brief = f"{_duration(elapsed)} elapsed"
        accs, short_accs = "", ""
        if self.best_val:
            ranked = sorted(self.best_val.items())
            accs = "best val acc: " + "  ".join(f"{m} {v:.3f}" for m, v in ranked)
            short_accs = "val " + " ".join(f"{m} {_acc(v)}" for m, v in ranked)

        def join(*parts: str) -> str:
            return " | ".join(part for part in parts if part)

        return [join(counts, timing, accs), join(counts, middle, short_accs), join(short, middle, short_accs),
                join(short, brief, short_accs), join(short, brief if waiting else "", short_accs)]

    def update(self, trials: Iterable[Any] | None = None, force: bool = False,
               ending: tuple[Any, str] | None = None) -> None:
        """Recounts from `trials` and shows the line: in place on a terminal (at most twice a second, at once when
        `force`), as a timestamped line in a log (every `every_s` seconds; at once when `force`; for a trial that
        is `ending`, once the next trial runs in its place or 2 s later, at most one line per 2 s)."""
        now = self.clock()
        if trials is not None and (force or ending is not None or now - self._counted >= COUNT_EVERY_S):
            self.count(trials, ending)   # each trial of Tune's list: at most every COUNT_EVERY_S between events
            self._counted = now
        if self.tty:
            if force or now - self._last_print >= 0.5:
                self._last_print = now
                self.stream.write("\r\033[K" + self.line(self._width()))
                self.stream.flush()
                self._open_line = True
            return
        if ending is not None and self._due is None:
            self._due = now
        gap = self.every_s                   # in a log: every `every_s` seconds even when nothing changed
        if force and ending is None:
            gap = 2.0
        elif self._due is not None:
            c = self.counts
            unfinished = self.total - c["finished"] - c["failed"]
            if c["running"] < min(self._slots, unfinished) and now - self._due < 2.0:
                return                       # the ended trial's slot not refilled yet: wait for it
            gap = 2.0
        if now - self._last_print < gap:
            return
        text = self._log_line()
        self._last_print, self._last_line, self._due = now, text, None
        self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()

    def _log_line(self) -> str:
        """A log line is never cut: the longest wording up to LOG_WIDTH, else the shorter words in full."""
        texts = self._wordings()
        return next((text for text in texts if len(text) <= LOG_WIDTH), texts[2])

    def say(self, message: str) -> None:
        """A message on its own line (a failed trial), without breaking the in-place line."""
        self._end_line()
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self, trials: Iterable[Any] | None = None, counts: dict[str, int] | None = None) -> None:
        """The final line, printed once whatever the throttling, then a newline on a terminal; `counts` (from the
        records) replace Tune's view, which calls a trial stopped by Ctrl-C terminated."""
        if trials is not None:
            self.count(trials)
        if counts is not None:
            self.counts = {**self.counts, **counts}
        if self.tty:
            text = self.line(self._width())
            self.stream.write("\r\033[K" + text + "\n")
            self._open_line = False
        elif (text := self._log_line()) != self._last_line:
            self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self._last_line = text
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def _width(self) -> int:
        """The terminal's columns less one (a full line would wrap on some terminals)."""
        if self.width:
            return self.width
        try:
            return max(40, os.get_terminal_size(self.stream.fileno()).columns - 1)
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            try:
                return max(40, os.get_terminal_size().columns - 1)
            except OSError:
                return 200
