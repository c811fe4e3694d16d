"""The README's "Running studies" commands succeed in order after the quickstart has run (here a smoke run of
it stands in for `make demo`; commands that train get `--smoke` so the test takes seconds, not minutes).
docs/check_readme.py runs them exactly as written after a real `make demo`."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "docs"))
from check_readme import commands, run  # noqa: E402

# three `arml run` processes, each starting its own Ray: about 150 s on 2 CPUs, so it runs after the default suite
# (`make ci`, which CI runs) rather than in it
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ARML = [sys.executable, "-m", "orchestrator.cli"]


def test_readme_commands_run_in_order_after_the_demo(tmp_path):
    lines = commands()
    assert len(lines) >= 6 and lines[0].startswith("arml list")
    demo = run("arml run quickstart", ARML, ["--smoke"], cwd=str(tmp_path))
    assert demo.returncode == 0, demo.stderr[-2000:]
    for line in lines:
        trains = " run " in f" {line} " and "--dry-run" not in line
        result = run(line, ARML, ["--smoke"] if trains and "--smoke" not in line else [], cwd=str(tmp_path))
        assert result.returncode == 0, f"{line}\n{result.stdout[-1000:]}\n{result.stderr[-2000:]}"
        if "--dry-run" in line:
            assert "already holds" in result.stdout + result.stderr   # the demo's run is there: says --resume
