"""`arml report`: golden tables from hand-made run folders (tests/golden, see make_inputs.py there), failed and
missing trials, PNGs, usage errors, and the report and records logged to MLflow.

ARML_UPDATE_GOLDEN=1 pytest tests/report/test_build.py rewrites the expected files (then read the diff)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis.stats import mean_ci
from orchestrator.analysis.tables import labels_needed
from orchestrator.cli import main
from orchestrator.report.build import make_report

GOLDEN = Path(__file__).parents[1] / "golden"
INPUTS = ("plan.json", "trials.json", "records.jsonl")
CASES = ("ssl_sweep", "mlc_failed", "search_cost")


def run_folder(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    folder.mkdir()
    for name in INPUTS:
        shutil.copy(GOLDEN / case / name, folder / name)
    return folder


@pytest.mark.parametrize("case", CASES)
def test_tables_match_the_golden_files(tmp_path, case, capsys):
    folder = Path(make_report(str(run_folder(tmp_path, case))))
    expected_dir = GOLDEN / case / "expected"
    written = sorted(p.name for p in folder.iterdir() if p.suffix in (".csv", ".md"))
    if os.environ.get("ARML_UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir()
        for name in written:
            shutil.copy(folder / name, expected_dir / name)
    assert written == sorted(p.name for p in expected_dir.iterdir())
    for name in written:
        assert (folder / name).read_text() == (expected_dir / name).read_text(), f"{case}/{name} differs"


def test_grid_search_is_chosen_on_validation_not_test(tmp_path):
    # at 20 labels grid point [1, 0] has the best test accuracy but [0, 1] the best validation accuracy
    folder = Path(make_report(str(run_folder(tmp_path, "ssl_sweep"))))
    lines = (folder / "data_requirement.csv").read_text().splitlines()
    grid = [line for line in lines if line.startswith("grid,")]
    assert grid and all(line.endswith('"[0, 1]"') for line in grid)
    assert "58.00 ± 4.97 [0, 1]" in (folder / "results.md").read_text()


def test_failed_and_missing_trials_are_listed_and_the_rest_reported(tmp_path, capsys):
    folder = Path(make_report(str(run_folder(tmp_path, "mlc_failed"))))
    out = capsys.readouterr().out
    assert "2 of 9 trials did not finish (1 failed, 1 pending)" in out
    results = (folder / "results.md").read_text()
    section = results.split("## Missing or failed trials")[1]
    assert "| m004 | gradnorm | 1% labels | 1 | failed | DivergenceError: training diverged at step 3 |" in section
    assert "| m008 | arml | 1% labels | 2 | pending |" in section
    assert "92.50 ± 6.35 (2/3 seeds)" in results          # ARML's two finished seeds still count
    relationships = (folder / "relationships.md").read_text()
    assert "| 1 | attr_00 |" in relationships and "| 5 | attr_04 |" in relationships
    assert "| 1 | attr_00 | 1.665 ± 0.064 | attr_11 |" in relationships


@pytest.mark.parametrize("case", CASES)
def test_pngs_are_written(tmp_path, case):
    folder = Path(make_report(str(run_folder(tmp_path, case))))
    for name in ("data_requirement.png", "weights.png") + (("cost_vs_accuracy.png",) if case == "search_cost" else ()):
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name


def test_a_run_with_no_finished_trial_still_reports(tmp_path, capsys):
    folder = run_folder(tmp_path, "mlc_failed")
    (folder / "records.jsonl").write_text("")
    (folder / "trials.json").write_text("{}")
    report = Path(make_report(str(folder)))
    assert "0 of 9 trials finished" in (report / "results.md").read_text()
    assert (report / "data_requirement.png").stat().st_size > 0
    assert "9 of 9 trials did not finish (9 pending)" in capsys.readouterr().out


def test_cli_report_and_usage_errors(tmp_path, capsys):
    folder = run_folder(tmp_path, "ssl_sweep")
    assert main(["report", str(folder)]) == 0
    assert f"report: {folder / 'report'}" in capsys.readouterr().out
    for bad in (tmp_path / "nowhere", tmp_path):
        assert main(["report", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("arml: error:") and "not a study's run folder" in err and err.count("\n") == 1


def test_mean_ci_is_the_student_t_interval():
    n, mean, half = mean_ci([0.5, 0.6, 0.7])
    assert (n, round(mean, 6), round(half, 4)) == (3, 0.6, round(4.302653 * 0.1 / math.sqrt(3), 4))
    assert mean_ci([0.7])[2] != mean_ci([0.7])[2]          # one seed: no interval (NaN)
    assert mean_ci([])[0] == 0


def test_labels_needed_interpolates_on_the_mean_curve():
    curve = [(100, 0.5), (200, 0.7), (400, 0.8)]
    assert labels_needed(curve, 0.6) == (150, "")
    assert labels_needed(curve, 0.75) == (300, "")
    assert labels_needed(curve, 0.4) == (100, "reached at the smallest budget (an upper bound)")
    labels, note = labels_needed(curve, 0.9)
    assert math.isnan(labels) and note == "not reached up to 400"


def test_log_mlflow_logs_the_report_and_missing_records_once(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = run_folder(tmp_path, "mlc_failed")
    assert main(["report", str(folder), "--log-mlflow"]) == 0
    assert "8 trial run(s) logged, 0 were there already" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")   # the run folder's store was created
    runs = client.search_runs([client.get_experiment_by_name("golden_mlc").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("arml_role") == "study")
    children = {r.data.tags["trial_id"]: r for r in runs if r.data.tags.get("arml_role") == "trial"}
    assert len(children) == 8 and "m008" not in children            # the pending trial has nothing to log
    assert children["m004"].info.status == "FAILED" and children["m000"].info.status == "FINISHED"
    assert parent.info.status == "KILLED"     # a trial is still pending and no driver runs the study: not RUNNING
    assert {"report/results.md", "report/weights.png"} <= {
        f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    # what the study found, on the parent run itself: curve, cost, verdicts as tags, the headline as its note
    assert {"data_requirement/arml", "cost/cpu_s/arml", "cost/device_s/uniform"} <= set(parent.data.metrics)
    assert parent.data.tags["verdict/0.01/arml vs uniform"] == "not decided"   # 1% of the images labeled
    assert parent.data.tags["mlflow.note.content"].startswith("**golden_mlc**")
    assert main(["report", str(folder), "--log-mlflow"]) == 0       # again: nothing is logged twice
    assert "0 trial run(s) logged, 8 were there already" in capsys.readouterr().out
    assert len(client.get_metric_history(parent.info.run_id, "data_requirement/arml")) == 1
    history = client.get_metric_history(children["m000"].info.run_id, "test_acc_at_best_val")
    assert sorted(m.step for m in history) == [2, 4]


def test_log_mlflow_while_the_study_runs_leaves_the_statuses_to_it(tmp_path, monkeypatch, capsys):
    """A report logged while a driver holds the run folder never sets a run back to RUNNING or closes one: the
    running study owns its statuses. Afterwards, statuses follow the records (a run left RUNNING by a killed
    driver is closed)."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from orchestrator.store.folder import RunFolder

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = run_folder(tmp_path, "mlc_failed")
    assert main(["report", str(folder), "--log-mlflow"]) == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("golden_mlc").experiment_id])
    children = {r.data.tags["trial_id"]: r.info.run_id for r in runs if r.data.tags.get("arml_role") == "trial"}
    client.set_terminated(children["m001"], status="RUNNING")    # what a driver killed with -9 leaves
    lock = RunFolder(folder).lock()                                # a driver runs the study now
    try:
        assert main(["report", str(folder), "--log-mlflow"]) == 0
        assert "the study is running" in capsys.readouterr().out
        assert client.get_run(children["m000"]).info.status == "FINISHED"
        assert client.get_run(children["m001"]).info.status == "RUNNING"   # left to the driver
    finally:
        lock.close()
    assert main(["report", str(folder), "--log-mlflow"]) == 0
    assert client.get_run(children["m001"]).info.status == "FINISHED"      # as the records say


def test_an_unreachable_tracking_server_costs_one_line_and_no_files(tmp_path, capsys):
    folder = run_folder(tmp_path, "ssl_sweep")
    report = make_report(str(folder), mlflow_uri="http://127.0.0.1:9")
    out = capsys.readouterr().out
    assert out.count("MLflow logging failed") == 1 and "--log-mlflow" in out
    assert {"results.md", "compute_cost.md", "data_requirement.png"} <= set(os.listdir(report))


def test_log_mlflow_exits_non_zero_while_the_server_is_unreachable(tmp_path, monkeypatch, capsys):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    folder = run_folder(tmp_path, "ssl_sweep")
    code = main(["report", str(folder), "--log-mlflow", "--mlflow-uri", "http://bob:Hunter22@127.0.0.1:9"])
    out = capsys.readouterr()
    assert code == 1 and "MLflow logging failed" in out.out
    assert "Hunter22" not in out.out + out.err                     # the password never reaches the terminal


@pytest.fixture
def figures(monkeypatch):
    """The report's matplotlib figures, kept for inspection: {'data_requirement': fig, ...}."""
    from orchestrator.report import figures as report_plots

    made: dict[str, object] = {}
    make = report_plots._figure

    def keep(width, height):
        fig = make(width, height)
        save = fig.savefig
        # saved under a temporary name first (".data_requirement.<pid>.tmp.png"), then renamed
        fig.savefig = lambda path, **kw: (made.__setitem__(Path(path).name.lstrip(".").split(".")[0], fig),
                                          save(path, **kw))
        return fig

    monkeypatch.setattr(report_plots, "_figure", keep)
    return made


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def test_one_budget_draws_each_method_with_its_interval_and_readable_differences(tmp_path, figures):
    from matplotlib.container import ErrorbarContainer
    from runfolders import write_run

    # uniform's interval reaches past 100%: clipped, and drawn as an error bar, so the note is true
    accuracy = {"uniform": [0.96, 0.99, 0.93], "arml": [0.97, 0.99, 0.95], "gradnorm": [0.90, 0.92, 0.91]}
    make_report(str(write_run(tmp_path / "a", accuracy)))
    left, right = figures["data_requirement"].axes
    assert sum(isinstance(c, ErrorbarContainer) for c in left.containers) == 3     # a point and bar per method
    assert "clipped" in _texts(left)
    assert 50 < left.get_ylim()[0] and left.get_ylim()[1] <= 100                   # fitted, not 0-100
    assert [t.get_text() for t in right.get_xticklabels()] == ["arml", "gradnorm"]
    xs = [float(c.lines[0].get_xdata()[0]) for c in right.containers if isinstance(c, ErrorbarContainer)]
    assert xs == [0.0, 1.0]                                                        # one labelled place each
    # nothing clipped, nothing said
    figures.clear()
    make_report(str(write_run(tmp_path / "b", {"uniform": [0.70, 0.72, 0.74], "arml": [0.71, 0.75, 0.74]})))
    left = figures["data_requirement"].axes[0]
    assert "clipped" not in _texts(left)
    assert sum(isinstance(c, ErrorbarContainer) for c in left.containers) == 2


def test_several_budgets_keep_lines_and_bands(tmp_path, figures):
    from matplotlib.collections import PolyCollection

    make_report(str(run_folder(tmp_path, "ssl_sweep")))
    left, right = figures["data_requirement"].axes
    assert left.get_ylim() == (0, 100) and len(left.lines) >= 3
    assert sum(isinstance(c, PolyCollection) for c in left.collections) == 3      # a 95% band per method
    assert "clipped" not in _texts(left)
    assert [t.get_text() for t in right.get_xticklabels()] == ["20", "50"]


def test_cost_vs_accuracy_fits_its_y_axis_to_what_it_shows(tmp_path, figures):
    make_report(str(run_folder(tmp_path, "search_cost")))
    ax = figures["cost_vs_accuracy"].axes[0]
    low, high = ax.get_ylim()
    # curves 73.5-85%, single runs 78.5 ± 6.35 and 82.5 ± 6.35: all inside, with a little padding
    assert 65 < low < 72.15 and 88.85 < high < 95
