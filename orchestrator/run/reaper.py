"""Ends the local Ray a driver started when the driver dies without shutting it down (kill -9, the OOM killer):
left alone, the processes its raylet started (agents, workers) linger about a minute, holding CPUs and memory.

`start(pids)` launches this file as a small watcher process that waits on a pipe from the driver and notes,
five times a second, every process below the given ones (the driver itself, from before `ray.init`: what Ray starts
is noted from its first moment, before a raylet that dies can orphan its agents). A driver that ends normally
calls `release(watcher)` after `ray.shutdown()` and the watcher exits; `reap_now(watcher)` (a `ray.init` stopped
half-way) has it end everything it noted below the driver at once; if the pipe closes without a word, the driver
is gone, and the watcher freezes every process it noted that is still alive (each checked against its start time,
so a reused PID is never hit) and all below them, then kills them. The watcher never counts itself, nor the
processes it was given (a live driver is never touched).
Linux only (it reads /proc); elsewhere `start` returns None and Ray's own timeouts apply. Standalone on purpose:
the watcher imports nothing from this package.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

DONE = "done"
REAP = "reap"
POLL_S = 0.2          # how often the watcher notes the processes below the ones it watches


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


def _table() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, start time), from one pass over /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            out[int(name)] = stat
    return out


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (none where there is no /proc)."""
    if not os.path.isdir("/proc"):
        return []
    return [child for child, (parent, _) in _table().items() if parent == pid]


def descendants(pids: list[int]) -> list[int]:
    """`pids` and every live process below them (one pass over /proc)."""
    if not os.path.isdir("/proc"):
        return []
    table = _table()
    below: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        below.setdefault(parent, []).append(child)
    seen, todo = [], [pid for pid in pids if pid in table]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += below.get(pid, [])
    return seen


def roots(pids: list[int]) -> dict[int, int]:
    """The live processes among `pids` with their start times (what `reap` takes)."""
    return {pid: stat[1] for pid in pids if (stat := _stat(pid)) is not None}


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
    _tell(watcher, DONE)


def reap_now(watcher: subprocess.Popen | None) -> None:
    """Ends, now, every process the watcher noted below the ones it watches (not those), then lets it go: what a
    `ray.init` stopped half-way leaves behind."""
    _tell(watcher, REAP, timeout=15)


def _tell(watcher: subprocess.Popen | None, word: str, timeout: float = 5) -> None:
    if watcher is None:
        return
    try:
        watcher.stdin.write(word + "\n")
        watcher.stdin.close()
        watcher.wait(timeout=timeout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        watcher.kill()


def reap(roots: dict[int, int], rounds: int = 50) -> list[int]:
    """Freezes (SIGSTOP) the roots still alive with their recorded start times and every process below them,
    again until no new one appears (a frozen process cannot start another: a raylet would otherwise restart an
    agent that died before it), then kills them all (SIGKILL); returns the pids killed."""
    live = [pid for pid, started in roots.items() if (stat := _stat(pid)) is not None and stat[1] == started]
    frozen: list[int] = []
    for _ in range(rounds):
        new = [pid for pid in descendants(live + frozen) if pid not in frozen]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen += new
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    return frozen


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:   # gone already
        pass


def main(argv: list[str]) -> int:
    """Waits for the driver's word; meanwhile notes, every POLL_S seconds, every process below the roots (Ray
    makes its server and raylet die with the driver, but their children, the agents and workers, are then
    orphans that no tree walk finds), and on end of file without the word reaps all it has noted."""
    given = {int(pid): int(started) for pid, started in (arg.split(":") for arg in argv)}
    known = dict(given)
    me = os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C in the driver's terminal is the driver's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so is a SIGTERM to the driver's process group
    text = b""
    while True:
        ready, _, _ = select.select([0], [], [], POLL_S)
        if ready:
            chunk = os.read(0, 64)
            if not chunk:                          # end of file: the driver is gone
                break
            text += chunk
            if DONE.encode() in text:
                return 0
            if REAP.encode() in text:              # the driver lives on: leave it (and what it was given) alone
                reap({pid: started for pid, started in known.items() if pid not in given})
                return 0
            continue
        alive = [pid for pid, started in known.items() if (stat := _stat(pid)) is not None and stat[1] == started]
        for pid in descendants(alive):
            if pid != me and pid not in known and (stat := _stat(pid)) is not None:
                known[pid] = stat[1]
    reap(known)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
