"""End to end through real Ray (num_cpus=2) and MLflow: a tiny study's records and runs match its plan, a
2-worker TorchTrainer trial's metrics reach the records, a diverging trial fails alone."""

from __future__ import annotations

import pandas as pd
import pytest
from studyfiles import tiny_study

from orchestrator.cli import main

pytestmark = pytest.mark.integration   # starts a real Ray (and MLflow)

ray = pytest.importorskip("ray")


@pytest.fixture(autouse=True)
def _ray(local_ray):
    """Every test here runs studies in this process on the shared local Ray."""


GRID = "[methods.uniform]\n[methods.arml]\n[methods.grid]\nvalues = [0.0, 1.0]\n"


def test_tiny_study_records_and_mlflow_runs_match_the_plan(tmp_path, capsys):
    study = tiny_study(tmp_path, "tiny", seeds=(0,), methods=GRID)
    storage = str(tmp_path / "runs")
    assert main(["run", study, "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "6/6 done" in out and "records:" in out and "mlflow ui --backend-store-uri" in out
    run_dir = tmp_path / "runs" / "tiny"
    records = pd.read_parquet(run_dir / "records.parquet")
    assert len(records) == 6 * 2 and sorted(records["step"].unique()) == [2, 4]
    assert records.groupby("method")["trial_id"].nunique().to_dict() == {"arml": 1, "grid": 4, "uniform": 1}
    assert {"weight/is_0", "weight/random_0", "val_acc", "test_acc_at_best_val", "cpu_s", "node_id"} <= set(records)
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"finished"} and (trials["cpu_s"] > 0).all()
    grid = records[records["method"] == "grid"]
    assert set(map(tuple, grid["grid_point"])) == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}  # a list column

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parents = [r for r in runs if r.data.tags.get("arml_role") == "study"]
    children = [r for r in runs if r.data.tags.get("arml_role") == "trial"]
    assert len(parents) == 1 and len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags["trial_id"] for c in children} == set(trials["trial_id"])
    assert all("val_acc" in c.data.metrics and c.info.status == "FINISHED" for c in children)
    history = client.get_metric_history(children[0].info.run_id, "val_acc")
    assert sorted(m.step for m in history) == [2, 4]

    assert main(["status", str(run_dir)]) == 0
    assert "6 finished" in capsys.readouterr().out
    # the same study again without --resume would mix two runs: refused, exit 2
    assert main(["run", study, "--storage", storage]) == 2
    assert "--resume" in capsys.readouterr().err


def test_a_failing_trial_fails_alone_and_the_study_says_so(tmp_path, capsys):
    # weights beyond float32's range overflow the loss: a divergence only the trial finds out
    wild = '[methods.uniform]\n[methods.arml]\n[methods.wild]\nweighting = "fixed"\nweights = [1e39, 1e39]\n'
    study = tiny_study(tmp_path, "failing", seeds=(0,), methods=wild, extra="""
        [budget]
        labels = [20]
        [resources]
        max_failures = 0
        """)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    trials = pd.read_csv(tmp_path / "runs" / "failing" / "trials.csv")
    status = dict(zip(trials["method"], trials["status"]))
    assert status == {"uniform": "finished", "arml": "finished", "wild": "failed"}
    errors = trials.loc[trials["status"] == "failed", "error"]
    assert errors.str.contains("DivergenceError").all() and errors.str.contains("diverged").all()
    assert "1 trial(s) failed" in out and "diverged" in out


@pytest.mark.slow
def test_two_worker_trial_metrics_reach_the_records(tmp_path):
    study = tiny_study(tmp_path, "ddp", seeds=(0,), methods="[methods.arml]\n", extra="""
        [resources]
        cpus_per_trial = 2
        workers_per_trial = 2
        """)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 0
    records = pd.read_csv(tmp_path / "runs" / "ddp" / "records.csv")
    assert list(records["step"]) == [2, 4]
    assert (records["workers"] == 2).all() and (records["rank"] == 0).all()
    assert records["val_acc"].between(0, 1).all() and records["weight/is_0"].notna().all()
