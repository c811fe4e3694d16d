"""Ends the local Ray a driver started when the driver dies without shutting it down (kill -9, the OOM killer):
left alone, the processes its raylet started (agents, workers) linger about a minute, holding CPUs and memory.

`start(pids)` launches this file as a small watcher process that waits on a pipe from the driver and notes,
twice a second, every process below the given ones. A driver that ends normally calls `release(watcher)` after
`ray.shutdown()` and the watcher exits; if the pipe closes without that word, the driver is gone, and the
watcher freezes every process it noted that is still alive (each checked against its start time, so a reused
PID is never hit) and all below them, then kills them.
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
POLL_S = 0.5          # how often the watcher notes the processes below the ones it watches


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
    """The live child processes of `pid` (none where there is no /proc)."""
    if not os.path.isdir("/proc"):
        return []
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
    if watcher is None:
        return
    try:
        watcher.stdin.write(DONE + "\n")
        watcher.stdin.close()
        watcher.wait(timeout=5)
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
    known = {int(pid): int(started) for pid, started in (arg.split(":") for arg in argv)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C in the driver's terminal is the driver's to handle
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
            continue
        alive = [pid for pid, started in known.items() if (stat := _stat(pid)) is not None and stat[1] == started]
        for pid in descendants(alive):
            if pid not in known and (stat := _stat(pid)) is not None:
                known[pid] = stat[1]
    reap(known)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
