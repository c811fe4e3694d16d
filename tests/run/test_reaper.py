"""The watcher that ends a local Ray when its driver dies without shutting it down: a process tree is ended when
the driver's pipe closes, left alone when the driver releases it, and a reused PID is never signalled; then the
real thing: `arml run` killed with SIGKILL leaves no Ray process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.run import reaper

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="the watcher reads /proc (Linux)")

TREE = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); " \
       "time.sleep(600)"


def tree() -> tuple[subprocess.Popen, list[int]]:
    """A process with one child (like raylet and its workers); returns it and both pids."""
    parent = subprocess.Popen([sys.executable, "-c", TREE])
    deadline = time.time() + 20
    while not reaper.children(parent.pid) and time.time() < deadline:
        time.sleep(0.05)
    kids = reaper.children(parent.pid)
    assert kids, "the test's process tree did not start"
    return parent, [parent.pid, *kids]


def alive(pid: int) -> bool:
    return reaper._stat(pid) is not None and not Path(f"/proc/{pid}/status").read_text().count("State:\tZ")


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def test_a_dead_driver_s_processes_and_their_children_are_ended():
    parent, pids = tree()
    watcher = reaper.start([parent.pid])
    assert watcher is not None
    watcher.stdin.close()          # what the kernel does when the driver dies
    assert wait_gone(pids, 10) == []
    parent.wait(timeout=5)
    assert watcher.wait(timeout=10) == 0


def test_a_released_watcher_touches_nothing():
    parent, pids = tree()
    try:
        watcher = reaper.start([parent.pid])
        reaper.release(watcher)
        assert watcher.returncode == 0
        time.sleep(0.5)
        assert all(alive(p) for p in pids)
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=5)


def test_a_reused_pid_is_never_signalled():
    parent, pids = tree()
    try:
        started = reaper._stat(parent.pid)[1]
        assert reaper.reap({parent.pid: started + 12345}) == []   # another process's start time
        assert all(alive(p) for p in pids)
        assert reaper.start([]) is None and reaper.start([2 ** 22 + 7]) is None   # nothing (live) to watch
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=5)


STUDY = """
[study]
name = "killed"
preset = "digits_mlc"
seeds = [0, 1, 2]
[train]
aux_attributes = ["is_0", "random_0"]
model_options = { width = 8 }
steps = 2000
eval_every = 50
[methods.uniform]
"""


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_driver_leaves_no_ray_process_behind(tmp_path):
    path = tmp_path / "killed.toml"
    path.write_text(textwrap.dedent(STUDY))
    run_dir = tmp_path / "runs" / "killed"
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--storage",
                               str(tmp_path / "runs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, rows = time.time() + 300, []
    while not rows and time.time() < deadline:   # trials are training: Ray's workers are up
        time.sleep(0.3)
        try:
            rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line]
        except (OSError, ValueError):
            rows = []
    assert rows, "no trial reported in time"
    ray_pids = [p for p in reaper.descendants(reaper.children(driver.pid)) if "reaper" not in
                Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
    assert int(rows[0]["pid"]) in ray_pids          # the trial workers are among them
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    left = wait_gone(ray_pids, 20)                  # Ray alone lingers about a minute
    assert left == [], [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:120], reaper._stat(p)) for p in left]
