"""`arml run --until-decided` through real Ray and MLflow: seeds are added in waves until every paired comparison
is decided or the cap is reached; a run killed between waves resumes; every trial is recorded exactly once in
records, trials.csv and MLflow; MLflow runs have readable unique names and one closed parent with params."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from studyfiles import tiny_study

import orchestrator.run.runner as runner
from orchestrator.cli import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

# margin 0: identical methods (4 training steps barely move ARML's weights) are never "as good" within a zero
# margin, so the comparison stays undecided and seeds are added until the cap
EXTRA = "[budget]\nlabels = [20]\n[report]\nmargin = 0.0\n"


@pytest.fixture(autouse=True)
def _ray(local_ray):
    """Every test here runs studies in this process on the shared local Ray."""


def check_once(run_dir, expected_trials: int) -> pd.DataFrame:
    records = pd.read_parquet(run_dir / "records.parquet")
    assert not records.duplicated(["trial_id", "step"]).any()
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == expected_trials and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"finished"}
    assert records["trial_id"].nunique() == expected_trials
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("undecided")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert experiment.artifact_location.startswith(f"file://{run_dir}")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("arml_role") == "study"]
    children = [r for r in runs if r.data.tags.get("arml_role") == "trial"]
    assert len(parents) == 1 and len(children) == expected_trials
    names = [c.info.run_name for c in children]
    assert len(set(names)) == len(names) and "arml 20 s0" in names
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["preset"] == "digits_mlc" and parent.data.params["methods"] == "uniform, arml"
    assert "test_acc/arml/20" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report", "study.toml", "trials.csv"} <= artifacts
    return trials


@pytest.mark.slow
def test_seeds_are_added_until_the_cap_and_a_killed_run_resumes(tmp_path, monkeypatch, capsys):
    study = tiny_study(tmp_path, "undecided", extra=EXTRA)
    storage = tmp_path / "runs"
    run_dir = storage / "undecided"
    calls = {"n": 0}
    real = runner.launch

    def killed_in_second_wave(plan, wave, *args):
        calls["n"] += 1
        if calls["n"] == 2:          # the driver dies as the first added wave starts
            raise KeyboardInterrupt
        return real(plan, wave, *args)

    monkeypatch.setattr(runner, "launch", killed_in_second_wave)
    args = ["run", str(study), "--storage", str(storage), "--until-decided", "--max-seeds", "5"]
    assert main(args) == 130
    waves = json.loads((run_dir / "waves.json").read_text())
    assert [w["seeds"] for w in waves[1:]] == [[3]]           # 3 seeds, then one more (at most double)
    monkeypatch.setattr(runner, "launch", real)

    assert main(args + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "still not decided at the cap of 5 seeds" in out
    waves = json.loads((run_dir / "waves.json").read_text())
    assert [w["seeds"] for w in waves[1:]] == [[3], [4]]
    trials = check_once(run_dir, expected_trials=2 * 5)
    assert sorted(trials["seed"].unique()) == [0, 1, 2, 3, 4]
    comparisons = pd.read_csv(run_dir / "report" / "comparisons.csv")
    row = comparisons[(comparisons["method"] == "arml") & (comparisons["versus"] == "uniform")].iloc[0]
    assert row["n_pairs"] == 5 and row["verdict"] == "not decided"
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["seeds"] == [0, 1, 2, 3, 4]

    assert main(args + ["--resume"]) == 0      # nothing left: resuming again records nothing twice
    check_once(run_dir, expected_trials=2 * 5)
    assert [p.name for p in storage.iterdir()] == ["undecided"]          # the waves live inside the run folder
    assert (run_dir / "wave1-1-s3").is_dir() and (run_dir / "wave2-1-s4").is_dir()   # an added wave: seed by seed
