"""A run folder written before the orchestrator moved into its rooms (Ray Tune's pickled state naming modules
that no longer exist, no checkpoints in the records) still resumes: finished trials are kept, the interrupted
one continues from its last checkpoint, the pending one runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main

LEGACY = Path(__file__).parents[1] / "data" / "legacy_run"
pytestmark = pytest.mark.integration


def test_a_run_folder_from_before_the_move_resumes(tmp_path, capsys):
    storage = tmp_path / "runs"
    shutil.copytree(LEGACY / "legacy", storage / "legacy")
    (storage / "legacy").chmod(0o755)
    before = [json.loads(line) for line in (storage / "legacy" / "records.jsonl").read_text().splitlines()]
    # its ARML trials were planned when the alpha gradient was a central difference: the study file as it was
    # is refused with the fix named, and with that option written in they resume as they were computed
    assert main(["run", str(LEGACY / "legacy.toml"), "--storage", str(storage), "--resume"]) == 2
    assert 'add directional = "central" to [methods.arml]' in capsys.readouterr().err
    study = tmp_path / "legacy.toml"
    study.write_text((LEGACY / "legacy.toml").read_text().replace("[methods.arml]\n",
                                                                   '[methods.arml]\ndirectional = "central"\n'))
    assert main(["run", str(study), "--storage", str(storage), "--resume"]) == 0
    plan = json.loads((storage / "legacy" / "plan.json").read_text())
    assert {t["weighting_options"].get("directional") for t in plan["trials"] if t["method"] == "arml"} == {"central"}
    rows = pd.read_parquet(storage / "legacy" / "records.parquet")
    assert not rows.duplicated(["trial_id", "step"]).any()
    assert rows.groupby("trial_id")["step"].max().eq(400).all() and rows["trial_id"].nunique() == 4
    trials = pd.read_csv(storage / "legacy" / "trials.csv")
    assert set(trials["status"]) == {"finished"}
    finished_before = {r["trial_id"] for r in before if r["step"] == 400}
    assert len(finished_before) == 2
    lines = [json.loads(line) for line in (storage / "legacy" / "records.jsonl").read_text().splitlines()]
    new = lines[len(before):]
    assert not {r["trial_id"] for r in new} & finished_before          # finished trials never trained again
    resumed = [r for r in new if r["trial_id"] == "266fd2ae223a"]
    assert resumed and min(r["step"] for r in resumed) == 160 and {r["retry_from_step"] for r in resumed} == {120}


@pytest.mark.slow
def test_a_sweep_grown_by_an_axis_value_resumes_and_trains_only_the_new_cell(tmp_path, local_ray):
    from studyfiles import tiny_study

    study = tiny_study(tmp_path, "grow", seeds=(0, 1), extra="[sweep.train]\nlr = [0.003]\n")
    storage = str(tmp_path / "runs")
    assert main(["run", study, "--storage", storage]) == 0
    rows = tmp_path / "runs" / "grow" / "records.jsonl"
    before = rows.read_text().splitlines()
    assert main(["run", study, "--storage", storage, "--resume", "--set", "sweep.train.lr=[0.003, 0.01]"]) == 0
    after = rows.read_text().splitlines()
    new = [json.loads(line) for line in after[len(before):]]
    assert {r["lr"] for r in map(json.loads, before)} == {0.003} and {r["lr"] for r in new} == {0.01}
    trials = pd.read_csv(tmp_path / "runs" / "grow" / "trials.csv")
    assert len(trials) == 8 and set(trials["status"]) == {"finished"} and set(trials["lr"]) == {0.003, 0.01}
    paired = pd.read_csv(tmp_path / "runs" / "grow" / "report" / "comparisons.csv")
    assert set(paired["lr"]) == {0.003, 0.01}
