"""The fault matrix: {Ctrl-C, SIGTERM to the driver, SIGTERM to its process group (what `timeout` and batch
schedulers send)} x {before Ray, during ray.init, trials running, export, report, summary} on the 10-trial
quickstart shape. Each cell ends with the documented exit code (130/143), one line and no traceback, the records
exported, MLflow's statuses as the records say and no Ray process left behind; the slow cells then run the same
command again (with --resume once trials were planned) and end with every trial finished and every evaluation
row exactly once (tests/helpers/faults.py).

`make test` runs the cells before trials start (no resume: they record nothing); `make test-slow` runs all 18
with the resume."""

from __future__ import annotations

import pytest
from faults import PHASES, SIGNALS, check_resumed, check_stopped, resume, stop_at

pytestmark = pytest.mark.integration
CHEAP = ("before_ray", "ray_init")


@pytest.mark.parametrize("phase", CHEAP)
@pytest.mark.parametrize("which", list(SIGNALS))
def test_a_stop_before_any_trial_is_one_line_and_leaves_nothing_running(tmp_path, which, phase):
    outcome, run_dir = stop_at(tmp_path, which, phase)
    check_stopped(outcome, run_dir, which, phase)
    assert not (run_dir / "plan.json").exists() and "before any trial started" in outcome.out
    if phase == "ray_init":   # the signal landed while Ray was starting, not after
        assert "Ray: started" not in outcome.out


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("which", list(SIGNALS))
def test_a_stop_at_any_moment_keeps_the_records_and_resume_completes_the_study(tmp_path, which, phase):
    outcome, run_dir = stop_at(tmp_path, which, phase)
    check_stopped(outcome, run_dir, which, phase)
    check_resumed(resume(tmp_path), run_dir)
