"""The exported tables of a run folder: typed columns (grid points as lists in Parquet, one number per
auxiliary task in CSV), a main_task column, none of Ray's leftovers, no all-NaN columns in trials.csv, and
one definition of which record keys are metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.store.records import RecordBook, main_task, metric_values
from orchestrator.store.schema import Trial, read_plan
from orchestrator.store.tables import export_tables, trials_table

AUX = ["is_0", "random_0"]


def meta(tid: str, method: str, point: list[float] | None, search: dict | None = None) -> dict:
    return {"trial_id": tid, "method": method, "weighting": "fixed" if point else method, "budget_key": "label_budget",
            "budget": 20, "seed": 0, "grid_point": point, "weighting_options": {},
            "config": {"setting": "mlc", "dataset": "digits", "main_attribute": "has_loop", "steps": 4},
            "sample": None, "scheduler": None, "search": search}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    trials = [meta("a", "uniform", None), meta("g1", "grid", [0.0, 1.0]), meta("g2", "grid", [1.0, 0.5])]
    (tmp_path / "plan.json").write_text(json.dumps({
        "study": "t", "description": "", "setting": "mlc", "dataset": "digits", "preset": "digits_mlc",
        "aux_names": AUX, "targets": [], "smoke": False, "trials": trials}))
    book = RecordBook(str(tmp_path), [Trial.from_dict(t) for t in trials])
    for tid in ("a", "g1", "g2"):
        book.set_state(tid, "running", failures=0)
        for step in (2, 4):
            book.row(tid, {"step": step, "val_acc": 0.5 + step / 100, "test_acc": 0.4, "best_val_acc": 0.54,
                                 "test_acc_at_best_val": 0.4, "best_step": step, "weight/is_0": 1.0,
                                 "wall_s": 1.0, "cpu_s": 0.9, "gpu_s": 0.0, "node_id": "n1", "hostname": "h",
                                 "pid": 123, "node_ip": "10.0.0.1", "time_total_s": 3.0, "failures": 0,
                                 "training_iteration": step // 2, "config": {"x": 1}})
        book.set_state(tid, "finished", failures=0)
    book.close()
    return tmp_path


def test_parquet_exports_are_typed(run_dir: Path) -> None:
    paths = export_tables(str(run_dir))
    records = pd.read_parquet(paths["records.parquet"])
    assert len(records) == 6 and set(records["main_task"]) == {"has_loop"}
    grid = records[records["method"] == "grid"].groupby("trial_id")["grid_point"].first()
    assert [list(p) for p in grid] == [[0.0, 1.0], [1.0, 0.5]]
    assert records.loc[records["method"] == "uniform", "grid_point"].isna().all()
    assert not {"pid", "node_ip", "time_total_s", "time", "failures", "training_iteration", "config"} & set(records)
    assert {"node_id", "hostname", "wall_s", "cpu_s", "gpu_s", "recorded_at"} <= set(records)
    trials = pd.read_parquet(paths["trials.parquet"])
    assert len(trials) == 3 and list(trials["grid_point"].iloc[1]) == [0.0, 1.0]
    for column in ("search", "scheduler", "error"):
        assert trials[column].map(type).eq(str).all(), column
    assert trials["failures"].dtype.kind == "i" and trials["final_step"].dtype.kind in "if"


def test_csv_exports_have_a_number_per_aux_task_and_no_all_nan_columns(run_dir: Path) -> None:
    paths = export_tables(str(run_dir))
    trials = pd.read_csv(paths["trials.csv"])
    assert not [c for c in trials if trials[c].isna().all()]
    assert trials["w/is_0"].tolist()[1:] == [0.0, 1.0] and trials["w/random_0"].tolist()[1:] == [1.0, 0.5]
    assert pd.isna(trials["w/is_0"].iloc[0]) and trials["w/is_0"].dtype.kind == "f"
    assert trials["main_task"].eq("has_loop").all()
    records = pd.read_csv(paths["records.csv"])
    assert records["w/random_0"].dtype.kind == "f" and "pid" not in records
    assert json.loads(records.loc[records["trial_id"] == "g2", "grid_point"].iloc[0]) == [1.0, 0.5]


def test_in_memory_tables_keep_grid_points_as_json_text(run_dir: Path) -> None:
    """The report parses the text; only the exports change types."""
    export_tables(str(run_dir))
    table = trials_table(str(run_dir))
    assert pd.isna(table["grid_point"].iloc[0]) and table["grid_point"].tolist()[1:] == ["[0.0, 1.0]", "[1.0, 0.5]"]
    assert table["search"].isna().all() and table["scheduler"].isna().all()   # None, as the report expects


def test_failed_trial_errors_stay_in_trials_csv(run_dir: Path) -> None:
    book = RecordBook(str(run_dir), read_plan(str(run_dir)).trials)
    book.set_state("a", "failed", error="ConfigError: label budget too large")
    book.close()
    trials = pd.read_csv(export_tables(str(run_dir))["trials.csv"])
    assert trials.loc[trials["trial_id"] == "a", "error"].item() == "ConfigError: label budget too large"


def test_metric_values_is_the_one_list_of_metrics() -> None:
    row = {"trial_id": "a", "method": "arml", "seed": 0, "budget": 20, "grid_point": None, "main_task": "has_loop",
           "step": 4, "val_acc": 0.5, "weight/is_0": 1.2, "cpu_s": 2.0, "pid": 9, "node_ip": "x", "failures": 1,
           "time_total_s": 3.0, "recorded_at": 1e9, "node_id": "n", "hostname": "h", "rank": 0, "workers": 2,
           "done": True, "nan": float("nan"), "flag": True}
    assert metric_values(row) == {"step": 4.0, "val_acc": 0.5, "weight/is_0": 1.2, "cpu_s": 2.0}


@pytest.mark.parametrize(("config", "name"), [
    ({"setting": "mlc", "main_attribute": "Smiling"}, "Smiling"),
    ({"setting": "dg", "target_domain": "art_painting"}, "classes on art_painting"),
    ({"setting": "ssl", "dataset": "cifar10"}, "cifar10 classes"),
])
def test_main_task_names_the_settings_main_task(config: dict, name: str) -> None:
    from trainables.config import TrainConfig

    assert main_task(TrainConfig.from_dict(config)) == name


def test_a_row_after_a_cut_last_line_starts_a_line_of_its_own(run_dir: Path) -> None:
    """A crash cut records.jsonl's last line: the next row must not be glued onto it (and lost with it)."""
    path = run_dir / "records.jsonl"
    path.write_text(path.read_text() + '{"trial_id": "a", "step": 6, "val_a')
    plan = read_plan(str(run_dir))
    book = RecordBook(str(run_dir), plan.trials)
    book.row("a", {"step": 8, "val_acc": 0.7})
    book.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 8 and lines[-2].endswith('"val_a')
    from orchestrator.store.records import RunRecords

    assert sorted(RunRecords.read(str(run_dir)).frame().query("trial_id == 'a'")["step"]) == [2, 4, 8]


def test_trials_json_cannot_claim_a_trial_finished_that_has_no_records(run_dir: Path) -> None:
    """What a run reports comes from the records: an edited trials.json does not make a trial finished."""
    from orchestrator.store.records import load_states

    (run_dir / "records.jsonl").write_text("".join(
        line + "\n" for line in (run_dir / "records.jsonl").read_text().splitlines() if '"a"' in line))
    states = json.loads((run_dir / "trials.json").read_text())
    states["g1"]["status"] = states["g2"]["status"] = "finished"
    (run_dir / "trials.json").write_text(json.dumps(states))
    settled = load_states(str(run_dir))
    assert settled["a"]["status"] == "finished"
    assert settled["g1"]["status"] == settled["g2"]["status"] == "pending"
    assert list(trials_table(str(run_dir))["status"]) == ["finished", "pending", "pending"]


def test_a_damaged_trials_json_is_rebuilt_from_the_records(run_dir: Path, capsys) -> None:
    from orchestrator.store.records import load_states

    (run_dir / "trials.json").write_text("")
    assert {s["status"] for s in load_states(str(run_dir)).values()} == {"finished"}   # rows reach step 4 of 4
    assert "trials.json is damaged" in capsys.readouterr().err
