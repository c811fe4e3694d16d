"""The fault matrix: {Ctrl-C, SIGTERM to the driver, SIGTERM to its process group (what `timeout` and batch
schedulers send)} x {before Ray, during ray.init, trials running, export, report, summary} on the 10-trial
quickstart shape. Each cell ends with the documented exit code (130/143), one line and no traceback, the records
exported, MLflow's statuses as the records say and no Ray process left behind; the slow cells then run the same
command again (with --resume once trials were planned) and end with every trial finished and every evaluation
row exactly once (tests/helpers/faults.py).

`make test` runs the cells before trials start (no resume: they record nothing), with one more moment inside
ray.init (the driver registering with its raylet, in Ray's native code), each ending within 20 s of the signal;
`make test-slow` runs all 18 with the resume."""

from __future__ import annotations

import json
import os
import signal
import time

import faults
import pytest
from faults import PHASES, SIGNALS, STARTING, check_resumed, check_stopped, resume, stop_at

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("phase", STARTING)
@pytest.mark.parametrize("which", list(SIGNALS))
def test_a_stop_before_any_trial_is_one_line_and_leaves_nothing_running(tmp_path, which, phase):
    outcome, run_dir = stop_at(tmp_path, which, phase)
    check_stopped(outcome, run_dir, which, phase)
    assert not (run_dir / "plan.json").exists() and "before any trial started" in outcome.out
    if phase != "before_ray":   # the signal landed while Ray was starting, not after
        assert "Ray: started" not in outcome.out
    assert outcome.took < 20, f"the stop took {outcome.took:.0f} s"


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("which", list(SIGNALS))
def test_a_stop_at_any_moment_keeps_the_records_and_resume_completes_the_study(tmp_path, which, phase):
    outcome, run_dir = stop_at(tmp_path, which, phase)
    check_stopped(outcome, run_dir, which, phase)
    check_resumed(resume(tmp_path), run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("program", ["raylet", "gcs_server"])
def test_ray_killed_under_the_run_keeps_the_records_and_resume_completes_the_study(tmp_path, program):
    """The OOM killer (or a user) ends the local Ray's raylet or GCS server while trials run: the driver says so in
    one line, exports what was recorded, leaves no Ray process behind and exits 1; --resume completes the study."""
    storage = tmp_path / "runs"
    run_dir = storage / "quickstart"
    run = faults.Watched([*faults.ARML, "run", *faults.SHAPE, "--storage", str(storage)],
                  {**os.environ, "ARML_PAUSE_AT": "", "MLFLOW_TRACKING_URI": ""})
    run.wait_for(lambda: faults.rows_recorded(run_dir) > 0)
    victim = next(pid for pid in list(run.seen) if faults._cmdline(pid).split(" ")[0].endswith(program))
    killed = time.time()
    os.kill(victim, signal.SIGKILL)
    outcome = run.finish(since=killed)
    text = outcome.out + outcome.err
    assert outcome.code == 1, text
    assert f"the run ended because the local Ray's {program} ended" in outcome.err, text
    assert "Traceback" not in text and outcome.left == [], (text, outcome.left)
    assert outcome.took < 30, f"the run took {outcome.took:.0f} s to end"
    assert (run_dir / "records.parquet").exists() and (run_dir / "trials.csv").exists()
    states = json.loads((run_dir / "trials.json").read_text())
    assert not {"running", "retrying"} & {s["status"] for s in states.values()}, states
    check_resumed(resume(tmp_path), run_dir)

