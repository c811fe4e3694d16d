"""Which checkpoint a resumed trial continues from: only one its records name (never one Ray wrote whose
evaluation was not recorded), and only a whole one (a full disk's empty state.pt or cut cost.json is passed over
for the one recorded before it); Tune's folders are searched only in run folders begun before records named
checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from orchestrator.run.resume import checkpoints
from trainables import checkpoint


def _checkpoint(path: Path, step: int, cost: str | None = None) -> Path:
    checkpoint.save(str(path), {"step": step})
    (path / "cost.json").write_text(cost if cost is not None else json.dumps({"wall_s": 1.0, "cpu_s": 1.0}))
    return path


def _trial_dir(run_dir: Path, tid: str) -> Path:
    return run_dir / "seeds-1" / f"run_trial_0000{tid}_trial_id={tid}_2026"


def test_a_checkpoint_the_records_never_named_is_not_used(tmp_path):
    trial = _trial_dir(tmp_path, "a")
    _checkpoint(trial / "checkpoint_000000", 20)
    _checkpoint(trial / "checkpoint_000001", 40)   # written by Ray; the driver never recorded its evaluation
    rows = [{"trial_id": "a", "step": 20, "checkpoint": f"seeds-1/{trial.name}/checkpoint_000000"}]
    assert checkpoints(rows, ["a", "b"], str(tmp_path), str(tmp_path)) == {"a": str(trial / "checkpoint_000000")}
    _checkpoint(_trial_dir(tmp_path, "b") / "checkpoint_000000", 20)
    assert "b" not in checkpoints(rows, ["b"], str(tmp_path), str(tmp_path))   # no row names one: from scratch


def test_a_cut_or_empty_checkpoint_gives_way_to_the_one_recorded_before_it(tmp_path):
    trial = _trial_dir(tmp_path, "a")
    _checkpoint(trial / "checkpoint_000000", 20)
    _checkpoint(trial / "checkpoint_000001", 40, cost="")                        # a full disk: empty cost.json
    (trial / "checkpoint_000002").mkdir()
    (trial / "checkpoint_000002" / "state.pt").write_bytes(b"")                  # and an empty state.pt
    cut = _checkpoint(trial / "checkpoint_000003", 80)
    data = (cut / "state.pt").read_bytes()
    (cut / "state.pt").write_bytes(data[: len(data) // 2])                       # cut half-way
    rows = [{"trial_id": "a", "step": 20 * (n + 1), "checkpoint": f"seeds-1/{trial.name}/checkpoint_00000{n}"}
            for n in range(4)]
    assert checkpoints(rows, ["a"], str(tmp_path), str(tmp_path)) == {"a": str(trial / "checkpoint_000000")}
    assert torch.load(trial / "checkpoint_000000" / "state.pt", weights_only=True) == {"step": 20}


def test_a_legacy_run_folder_still_finds_its_checkpoints_in_tunes_folders(tmp_path):
    trial = _trial_dir(tmp_path, "a")
    _checkpoint(trial / "checkpoint_000002", 60)
    rows = [{"trial_id": "a", "step": 60}]   # records of that time named no checkpoint
    assert checkpoints(rows, ["a"], str(tmp_path), str(tmp_path), legacy=True) == {
        "a": str(trial / "checkpoint_000002")}
    assert checkpoints(rows, ["a"], str(tmp_path), str(tmp_path), legacy=False) == {}
