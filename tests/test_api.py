"""The Python API for notebooks: `orchestrator.run(study, **overrides)` and `orchestrator.load(run_dir)`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.api import _load, load, run, study_overrides
from orchestrator.errors import StudyError, UsageError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"study": {"name": "nb", "preset": "digits_mlc", "seeds": [0, 1]},
        "train": {"aux_attributes": ["is_0", "random_0"], "eval_every": 2},
        "methods": {"uniform": {}, "arml": {}}, "budget": {"labels": [20]}}


def test_overrides_bare_keys_go_to_train_or_study() -> None:
    assert study_overrides({"budget.labels": [20]}, {"steps": 10, "seeds": [1]}) == {
        "budget": {"labels": [20]}, "train": {"steps": 10}, "study": {"seeds": [1]}}


def test_a_dict_is_validated_like_a_study_file_and_left_unchanged() -> None:
    study = _load(TINY, study_overrides(None, {"steps": 7}))
    assert study.name == "nb" and study.config.steps == 7 and study.seeds == (0, 1)
    assert TINY["train"] == {"aux_attributes": ["is_0", "random_0"], "eval_every": 2}
    with pytest.raises(StudyError, match="unknown key stepz"):
        _load(TINY, study_overrides(None, {"stepz": 7}))
    assert _load("quickstart", {}).name == "quickstart"


def test_import_orchestrator_is_cheap_and_reexports_lazily() -> None:
    code = ("import sys, orchestrator; print(sorted(m for m in ('pandas', 'ray', 'torch', 'orchestrator.api') "
            "if m in sys.modules)); print(orchestrator.run.__module__, orchestrator.load.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.splitlines() == ["[]", "orchestrator.api load"], out.stderr


def test_load_needs_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a study's run folder"):
        load(tmp_path)


@pytest.mark.integration
def test_run_a_tiny_study_end_to_end(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    result = run(TINY, steps=4, storage=str(tmp_path / "runs"))
    out, err = capfd.readouterr()
    assert result.exit_code == 0, out + err
    assert result.run_dir == (tmp_path / "runs" / "nb").resolve() and result.report_dir.is_dir()
    assert len(result.trials) == 4 and set(result.trials["status"]) == {"finished"}
    assert result.records.groupby("trial_id")["step"].apply(list).tolist() == [[2, 4]] * 4
    assert set(result.records["main_task"]) == {"has_loop"} and "pid" not in result.records
    assert isinstance(result.comparisons, pd.DataFrame)
    assert "4/4 done" in out and "best val acc:" in out
    for noise in ("TensorBoard", "Token authentication", "Trial status", "View detailed results"):
        assert noise not in out + err, noise
    assert (result.run_dir / "ray.log").is_file()
    again = load(result.run_dir)
    pd.testing.assert_frame_equal(again.trials, result.trials)
    assert "4 trials" in repr(again)


def test_load_a_running_folder_gives_the_same_column_types(tmp_path: Path) -> None:
    import json

    from orchestrator.store.records import RecordBook
    from orchestrator.store.schema import Trial

    meta = [{"trial_id": "g", "method": "grid", "weighting": "fixed", "budget_key": None, "budget": None, "seed": 0,
             "grid_point": [0.0, 2.0], "weighting_options": {}, "sample": None, "scheduler": None, "search": None,
             "config": {"setting": "mlc", "main_attribute": "has_loop", "steps": 4}}]
    (tmp_path / "plan.json").write_text(json.dumps({"study": "s", "setting": "mlc", "dataset": "digits",
                                                    "trials": meta}))
    book = RecordBook(str(tmp_path), [Trial.from_dict(m) for m in meta])
    book.row("g", {"step": 2, "val_acc": 0.5})
    book.close()
    result = load(tmp_path)      # nothing exported yet: the live records
    assert list(result.trials["grid_point"].iloc[0]) == [0.0, 2.0]
    assert list(result.records["grid_point"].iloc[0]) == [0.0, 2.0] and result.comparisons.empty
