"""Ends the local Ray a driver started when the driver dies without shutting it down (kill -9, the OOM killer):
left alone, Ray's server, raylet and worker processes linger about a minute and hold the CPUs and memory.

`start(pids)` launches this file as a small watcher process that blocks reading a pipe from the driver. A driver
that ends normally calls `release(watcher)` after `ray.shutdown()` and the watcher exits; if the pipe closes
without that word, the driver is gone, and the watcher sends SIGTERM (then SIGKILL after 3 s) to the given
processes and all their descendants, each checked against its start time so a reused PID is never hit.
Linux only (it reads /proc); elsewhere `start` returns None and Ray's own timeouts apply. Standalone on purpose:
the watcher imports nothing from this package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

DONE = "done"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat and stat[0] == pid:
                out.append(int(name))
    return out


def descendants(pids: list[int]) -> list[int]:
    """`pids` and every live process below them."""
    seen, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen or _stat(pid) is None:
            continue
        seen.append(pid)
        todo += children(pid)
    return seen


def start(pids: list[int]) -> subprocess.Popen | None:
    """A watcher for these processes (with their start times), or None where /proc is missing or no pid is
    given."""
    known = [(pid, stat[1]) for pid in pids if (stat := _stat(pid)) is not None] if os.path.isdir("/proc") else []
    if not known:
        return None
    args = [f"{pid}:{started}" for pid, started in known]
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, text=True)


def release(watcher: subprocess.Popen | None) -> None:
    """The driver shut Ray down itself: the watcher exits without touching anything."""
    if watcher is None:
        return
    try:
        watcher.stdin.write(DONE + "\n")
        watcher.stdin.close()
        watcher.wait(timeout=5)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        watcher.kill()


def reap(roots: dict[int, int], grace: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL after `grace` seconds, to the roots still alive with their recorded start times and
    to all their descendants; returns the pids signalled."""
    live = [pid for pid, started in roots.items() if (stat := _stat(pid)) is not None and stat[1] == started]
    victims = descendants(live)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(_stat(pid) is not None for pid in victims):
        time.sleep(0.1)
    for pid in victims:
        if _stat(pid) is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return victims


def main(argv: list[str]) -> int:
    roots = {int(pid): int(started) for pid, started in (arg.split(":") for arg in argv)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C in the driver's terminal is the driver's to handle
    line = sys.stdin.readline()                    # blocks until the driver says DONE or dies (end of file)
    if line.strip() != DONE:
        reap(roots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
