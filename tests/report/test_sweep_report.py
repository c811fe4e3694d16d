"""The report of a sweep, computed within each cell: pairs are seed-matched inside a cell (never across), every
table gets one column per swept key, and the regime map is drawn for two axes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from runfolders import write_folder

from orchestrator.report.build import make_report

# accuracy[cell steps][method] per seed: at 100 steps ARML is 2 points above Uniform in every seed, at 400 it is
# 1 below; pooled over cells the two would cancel
ACCURACY = {100: {"uniform": [0.80, 0.70, 0.75, 0.78], "arml": [0.82, 0.72, 0.77, 0.80]},
            400: {"uniform": [0.90, 0.85, 0.88, 0.86], "arml": [0.89, 0.84, 0.87, 0.85]}}


def sweep_folder(folder: Path, budgets: tuple[int, ...] = (20,)) -> Path:
    trials, states, rows = [], {}, []
    for steps, methods in ACCURACY.items():
        for method, values in methods.items():
            for budget in budgets:
                for seed, value in enumerate(values):
                    value += 0.05 * budgets.index(budget)
                    tid = f"{method}{steps}b{budget}s{seed}"
                    trials.append({"trial_id": tid, "method": method, "weighting": method, "budget_key": "label_budget",
                                   "budget": budget, "seed": seed, "grid_point": None, "cell": {"steps": steps},
                                   "config": {"setting": "mlc", "steps": steps, "label_budget": budget}})
                    states[tid] = {"status": "finished"}
                    rows.append({"trial_id": tid, "step": steps, "best_val_acc": value, "test_acc_at_best_val": value,
                                 "cpu_s": 1.0, "wall_s": 1.0, "gpu_s": 0.0, "weight/a": 1.0})
    return write_folder(folder, {"study": "sweep", "aux_names": ["a"], "axes": ["steps"], "trials": trials}, rows,
                        states)


def test_each_cell_is_paired_on_its_own_and_tables_name_the_cell(tmp_path):
    report = Path(make_report(str(sweep_folder(tmp_path / "run"))))
    paired = pd.read_csv(report / "comparisons.csv")
    assert list(paired.columns[:2]) == ["steps", "budget_key"]
    mine = paired[(paired["method"] == "arml") & (paired["versus"] == "uniform")].set_index("steps")
    assert mine.loc[100, "mean_diff"] == pytest.approx(0.02) and mine.loc[400, "mean_diff"] == pytest.approx(-0.01)
    assert mine.loc[100, "verdict"] == "better" and mine.loc[100, "n_pairs"] == 4   # never 8: no cross-cell pairs
    points = pd.read_csv(report / "data_requirement.csv").set_index(["steps", "method"])
    assert points.loc[(400, "uniform"), "test_acc_mean"] == pytest.approx(sum(ACCURACY[400]["uniform"]) / 4)
    text = (report / "results.md").read_text()
    assert "## steps = 100" in text and "## steps = 400" in text and text.count("# sweep: results") == 1
    assert (report / "sweep.png").stat().st_size > 0
    assert (report / "cells" / "steps-400" / "data_requirement.png").exists()
    assert not (report / "regime_map.png").exists()          # one axis: no map


def test_two_axes_draw_the_regime_map(tmp_path):
    report = Path(make_report(str(sweep_folder(tmp_path / "run", budgets=(20, 40)))))
    assert (report / "regime_map.png").stat().st_size > 0
    paired = pd.read_csv(report / "comparisons.csv")
    assert len(paired[(paired["method"] == "arml") & (paired["versus"] == "uniform")]) == 4   # 2 steps x 2 budgets


def test_the_regime_map_compares_with_uniform_and_with_the_search_at_16x(tmp_path):
    from orchestrator.analysis.run_data import load_run
    from orchestrator.report.cells import regime_panels

    run = sweep_folder(tmp_path / "run", budgets=(20, 40))
    plan = json.loads((run / "plan.json").read_text())
    states = json.loads((run / "trials.json").read_text())
    rows = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for trial in [t for t in plan["trials"] if t["method"] == "uniform"]:   # a 3-draw random search beside them
        for sample, offset in enumerate((-0.02, 0.01, 0.0)):          # its second draw: Uniform + 1 point
            tid = trial["trial_id"].replace("uniform", "random") + f"d{sample}"
            plan["trials"].append({**trial, "trial_id": tid, "method": "random", "weighting": "fixed", "sample": sample,
                                   "search": {"sampler": "random", "num_samples": 3, "space": "box", "w_max": 2.0}})
            states[tid] = {"status": "finished", "weights": [0.5]}
            value = next(r for r in rows if r["trial_id"] == trial["trial_id"])["best_val_acc"] + offset
            rows.append({"trial_id": tid, "step": 1, "best_val_acc": value, "test_acc_at_best_val": value,
                         "cpu_s": 1.0, "wall_s": 1.0, "gpu_s": 0.0})
    for row in rows:                                                     # ARML costs 2 s a run, the others 1 s
        row["cpu_s"] = 2.0 if row["trial_id"].startswith("arml") else row["cpu_s"]
    (run / "plan.json").write_text(json.dumps(plan))
    (run / "trials.json").write_text(json.dumps(states))
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = Path(make_report(str(run)))
    assert (report / "regime_map.png").stat().st_size > 0
    groups = regime_panels(load_run(str(run)), pd.read_csv(report / "comparisons.csv"),
                           pd.read_csv(report / "searches_budgeted.csv"))
    assert [[title for title, _ in group] for group in groups] == [
        ["arml vs uniform", "random vs uniform"],
        ["uniform vs random at 16x its compute", "arml vs random at 16x its compute",
         "single run chosen on validation vs random at 16x"]]
    panels = dict(panel for group in groups for panel in group)
    vs_search = panels["arml vs random at 16x its compute"].set_index(["steps", "budget"])
    assert vs_search.loc[(100, 20), "mean_diff"] == pytest.approx(0.01)        # ARML +2, the search's choice +1
    assert vs_search.loc[(400, 20), "mean_diff"] == pytest.approx(-0.02) and vs_search.loc[(400, 20), "trials"] == 3
    chosen = panels["single run chosen on validation vs random at 16x"].set_index(["steps", "budget"])
    assert chosen.loc[(100, 40), "name"] == "arml" and chosen.loc[(400, 40), "name"] == "uniform"


def test_a_sweep_over_the_target_domain_reports_each_cells_own_source_domains(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    domains = ["photo", "art_painting", "cartoon", "sketch"]
    trials, states, rows = [], {}, []
    for target in ("photo", "sketch"):
        sources = [d for d in domains if d != target]
        for method in ("uniform", "arml"):
            for seed in range(3):
                tid = f"{method}-{target}-{seed}"
                trials.append({"trial_id": tid, "method": method, "weighting": method, "budget_key": "per_class",
                               "budget": 5, "seed": seed, "grid_point": None, "cell": {"target_domain": target},
                               "config": {"setting": "dg", "dataset": "pacs", "target_domain": target,
                                          "per_class": 5}})
                states[tid] = {"status": "finished"}
                for step, moved in ((10, 0.0), (20, 0.5)):
                    weights = {f"weight/{d}": 1.0 + (moved * (i - 1) if method == "arml" else 0.0)
                               for i, d in enumerate(sources)}
                    rows.append({"trial_id": tid, "step": step, "best_val_acc": 0.5, "test_acc_at_best_val": 0.5,
                                 "cpu_s": 1.0, "wall_s": 1.0, "gpu_s": 0.0, **weights})
    plan = {"study": "pacs", "setting": "dg", "dataset": "pacs", "preset": "dg_pacs_paper",
            "aux_names": ["art_painting", "cartoon", "sketch"], "margin": 1.0, "axes": ["target_domain"],
            "trials": trials}
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "trials.json").write_text(json.dumps(states))
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = Path(make_report(str(folder)))
    weights = pd.read_csv(report / "weights.csv")
    tasks = {target: set(weights.loc[weights["target_domain"] == target, "task"]) for target in ("photo", "sketch")}
    assert tasks == {"photo": {"art_painting", "cartoon", "sketch"}, "sketch": {"photo", "art_painting", "cartoon"}}
    assert "auxiliary tasks (photo, art_painting, cartoon)" in (report / "results.md").read_text()
