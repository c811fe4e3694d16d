"""Load: a study of 249 short trials (a 3^4 grid over 4 auxiliary tasks plus Uniform and ARML, 3 seeds) runs
through `arml run` on 2 CPUs, and its records, trials.csv and MLflow each hold every trial exactly once.

About a minute on 2 CPUs (0.1 s of orchestration per trial, see benchmarks/orchestration_overhead.py), so it
runs in the default suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytestmark = pytest.mark.integration   # starts a real Ray (and MLflow)

STUDY = """
[study]
name = "load"
preset = "digits_mlc"
seeds = [0, 1, 2]
max_trials = 300
[train]
aux_attributes = ["is_0", "is_6", "odd", "random_0"]
model_options = { width = 8 }
steps = 2
eval_every = 2
batch_size = 8
aux_batch_size = 8
eval_batch_size = 32
max_eval_items = 32
[methods.uniform]
[methods.arml]
[methods.grid]
values = [0.0, 0.5, 1.0]
[resources]
cpus_per_trial = 1
"""
TRIALS = 3 * (3**4 + 2)


@pytest.mark.slow   # a scale scenario (about a minute): make test-slow
def test_a_study_of_249_trials_completes_and_each_is_recorded_exactly_once(tmp_path):
    study = tmp_path / "load.toml"
    study.write_text(textwrap.dedent(STUDY))
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(study), "--storage",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{TRIALS}/{TRIALS} done" in out.stdout
    run_dir = tmp_path / "runs" / "load"

    records = pd.read_parquet(run_dir / "records.parquet")
    assert records["trial_id"].nunique() == TRIALS
    assert not records.duplicated(["trial_id", "step"]).any() and set(records["step"]) == {2}
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == TRIALS and trials["trial_id"].is_unique and set(trials["status"]) == {"finished"}
    assert trials.groupby("method").size().to_dict() == {"arml": 3, "grid": 243, "uniform": 3}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("load").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    children = [r for r in runs if r.data.tags.get("arml_role") == "trial"]
    assert len([r for r in runs if r.data.tags.get("arml_role") == "study"]) == 1
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(trials["trial_id"])
    assert {c.info.status for c in children} == {"FINISHED"}
