"""Paired comparisons and verdicts: decided where unpaired intervals overlap, never decided below 3 seeds,
"worse" when ARML loses, seeds-to-decide estimates, and no bold winner that the data cannot single out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runfolders import write_run

from orchestrator.analysis.run_data import load_run
from orchestrator.analysis.tables import data_requirement
from orchestrator.analysis.verdicts import AS_GOOD, BETTER, NOT_DECIDED, WORSE, compare, decide, seeds_to_decide
from orchestrator.report.build import make_report


def verdicts(folder: Path) -> pd.DataFrame:
    report = Path(make_report(str(folder)))
    return pd.read_csv(report / "comparisons.csv")


def row(frame: pd.DataFrame, method: str, versus: str) -> pd.Series:
    return frame[(frame["method"] == method) & (frame["versus"] == versus)].iloc[0]


def test_paired_comparison_decides_where_unpaired_intervals_overlap(tmp_path):
    uniform = [0.60, 0.70, 0.80, 0.65, 0.75]          # seeds differ a lot: wide unpaired intervals
    arml = [u + d for u, d in zip(uniform, (0.020, 0.025, 0.018, 0.022, 0.020))]
    folder = write_run(tmp_path / "run", {"uniform": uniform, "arml": arml})
    points = pd.read_csv(Path(make_report(str(folder))) / "data_requirement.csv").set_index("method")
    assert points.loc["arml", "test_acc_low"] < points.loc["uniform", "test_acc_high"]   # they overlap
    r = row(verdicts(folder), "arml", "uniform")
    assert r["verdict"] == BETTER and r["n_pairs"] == 5
    assert r["diff_low"] > 0 and math.isclose(r["mean_diff"], 0.021, abs_tol=1e-9)
    results = (folder / "report" / "results.md").read_text()
    assert "**" in results.split("## Test accuracy")[1].split("## Test error")[0]   # a decided winner is bold


def test_two_seeds_are_never_decided_and_nothing_is_bold(tmp_path):
    folder = write_run(tmp_path / "run", {"uniform": [0.5, 0.9], "arml": [0.8, 0.99]})
    r = row(verdicts(folder), "arml", "uniform")
    assert r["n_pairs"] == 2 and r["verdict"] == NOT_DECIDED
    results = (folder / "report" / "results.md").read_text()
    table = results.split("## Test accuracy")[1].split("## Paired comparisons")[0]
    assert "**" not in table
    assert "nothing is bold" in results
    assert "needs at least 3 seeds" in results


def test_arml_worse_than_the_grid_choice_says_so_and_never_says_skip(tmp_path):
    grid = {"[0, 1]": [0.80, 0.82, 0.78, 0.81, 0.79], "[1, 0]": [0.70, 0.71, 0.69, 0.70, 0.72]}
    arml = [0.74, 0.76, 0.73, 0.745, 0.735]
    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.71, 0.69, 0.70, 0.72], "arml": arml}, grid=grid)
    frame = verdicts(folder)
    r = row(frame, "arml", "grid")
    assert r["verdict"] == WORSE and r["diff_high"] < 0
    cost = (folder / "report" / "compute_cost.md").read_text()
    assert "skip the" not in cost and "more accurate here" in cost
    assert row(frame, "arml", "uniform")["verdict"] == BETTER


def test_skip_the_grid_only_when_arml_is_as_good_at_every_budget(tmp_path):
    grid = {"[0, 1]": [0.80, 0.82, 0.78, 0.81, 0.79], "[1, 0]": [0.70, 0.71, 0.69, 0.70, 0.72]}
    arml = [0.797, 0.818, 0.779, 0.806, 0.789]        # within 1 point of the grid's choice in every seed
    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.71, 0.69, 0.70, 0.72], "arml": arml}, grid=grid)
    r = row(verdicts(folder), "arml", "grid")
    assert r["verdict"] == AS_GOOD
    assert "skip the grid search" in (folder / "report" / "compute_cost.md").read_text()


def test_margin_comes_from_the_study(tmp_path):
    grid = {"[0, 1]": [0.80, 0.82, 0.78, 0.81, 0.79], "[1, 0]": [0.70, 0.71, 0.69, 0.70, 0.72]}
    arml = [0.785, 0.806, 0.769, 0.794, 0.777]         # about 1.5 points below the grid's choice
    uniform = [0.70, 0.71, 0.69, 0.70, 0.72]
    loose = row(verdicts(write_run(tmp_path / "a", {"uniform": uniform, "arml": arml}, 3.0, grid=grid)), "arml",
                "grid")
    strict = row(verdicts(write_run(tmp_path / "b", {"uniform": uniform, "arml": arml}, 1.0, grid=grid)), "arml",
                 "grid")
    assert loose["verdict"] == AS_GOOD and strict["verdict"] == WORSE


@pytest.mark.parametrize("n, low, high, expected", [
    (2, 0.05, 0.10, NOT_DECIDED), (3, 0.001, 0.02, BETTER), (3, -0.009, 0.02, AS_GOOD),
    (5, -0.03, -0.001, WORSE), (5, -0.03, 0.02, NOT_DECIDED), (5, -0.005, -0.001, AS_GOOD),
])
def test_decision_rule(n, low, high, expected):
    assert decide(n, low, high, 0.01) == expected


def test_seeds_to_decide_grows_with_spread_and_is_enough_when_the_spread_holds():
    rng = np.random.default_rng(0)
    narrow, wide = rng.normal(0.0, 0.01, 4), rng.normal(0.0, 0.03, 4)
    assert seeds_to_decide(narrow, 0.01) < seeds_to_decide(wide, 0.01)
    diffs = np.array([0.004, -0.012, 0.010, -0.008])    # mean -0.0015, not decided with 4 seeds at 1 point
    assert compare(pd.Series(diffs), pd.Series(np.zeros(4)), 0.01)["verdict"] == NOT_DECIDED
    need = int(seeds_to_decide(diffs, 0.01))
    more = np.tile(diffs, math.ceil(need / 4) + 1)[: max(need, 4) + 4]   # same mean and (about) the same spread
    assert compare(pd.Series(more), pd.Series(np.zeros(len(more))), 0.01)["verdict"] != NOT_DECIDED


def test_comparisons_md_bolds_only_decided_verdicts_and_lists_each_pair_once(tmp_path):
    grid = {"[0, 1]": [0.80, 0.82, 0.78], "[1, 0]": [0.70, 0.71, 0.69]}
    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.72, 0.74], "arml": [0.75, 0.84, 0.80]}, grid=grid)
    frame = verdicts(folder)
    # comparisons.csv keeps both directions (other code looks rows up by method and versus)
    assert row(frame, "grid", "uniform")["mean_diff"] == pytest.approx(-row(frame, "uniform", "grid")["mean_diff"])
    assert row(frame, "grid", "uniform")["verdict"] == AS_GOOD
    assert row(frame, "arml", "uniform")["verdict"] == row(frame, "arml", "grid")["verdict"] == NOT_DECIDED
    text = (folder / "report" / "comparisons.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    pairs = [frozenset(cell.strip() for cell in line.split("|")[1:3]) for line in table]
    assert len(pairs) == len(set(pairs)) == 3                       # arml-uniform, arml-grid, grid-uniform once
    assert "| grid | uniform |" in text and "| uniform | grid |" not in text   # the later method minus the earlier
    assert "**not decided**" not in text and "| not decided |" in text
    assert "| **as good** |" in text


@pytest.mark.parametrize("margin, words", [(1.0, "1 point"), (0.5, "0.5 points"), (2.0, "2 points")])
def test_the_margin_is_written_in_points_with_the_right_plural(tmp_path, margin, words):
    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.72, 0.74], "arml": [0.71, 0.75, 0.74]}, margin)
    make_report(str(folder))
    report = folder / "report"
    texts = {name: (report / name).read_text() for name in ("comparisons.md", "results.md")}
    assert f"margin of {words}:" in texts["comparisons.md"]
    assert f"comparisons.md, margin {words});" in texts["results.md"]
    assert f"margin {words}; all comparisons" in texts["results.md"]
    assert "over 3 seeds, in %" in texts["results.md"]
    for text in texts.values():
        assert "1 points" not in text and "seed(s)" not in text


def _with_random_search(folder: Path, pending: tuple[int, int] | None = None) -> Path:
    """The run in `folder` with a random search of 2 draws per seed (validation = test 0.70, then 0.78); the draw
    `pending` (seed, sample) not run yet."""
    plan = json.loads((folder / "plan.json").read_text())
    states = json.loads((folder / "trials.json").read_text())
    rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    search = {"sampler": "random", "num_samples": 2, "space": "box", "w_max": 2.0}
    for seed in range(4):
        for sample, value in enumerate((0.70, 0.78)):
            tid = f"r{seed}{sample}"
            plan["trials"].append({"trial_id": tid, "method": "random", "weighting": "fixed", "budget_key":
                                   "label_budget", "budget": 20, "seed": seed, "grid_point": None, "sample": sample,
                                   "search": search, "weighting_options": {}, "config": {"setting": "mlc"}})
            states[tid] = {"status": "finished", "failures": 0, "weights": [1.0, 0.5]}
            rows.append({"trial_id": tid, "method": "random", "weighting": "fixed", "budget_key": "label_budget",
                         "budget": 20, "seed": seed, "step": 10, "best_val_acc": value, "test_acc_at_best_val": value,
                         "cpu_s": 1.0, "wall_s": 1.0, "gpu_s": 0.0})
    if pending is not None:
        tid = f"r{pending[0]}{pending[1]}"
        states[tid] = {"status": "pending", "failures": 0}
        rows = [r for r in rows if r["trial_id"] != tid]
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "trials.json").write_text(json.dumps(states))
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_study_whose_only_search_is_random_gets_a_verdict_about_the_random_search(tmp_path: Path) -> None:
    folder = _with_random_search(write_run(tmp_path / "r", {"arml": [0.80, 0.82, 0.81, 0.83]}))
    text = (Path(make_report(str(folder))) / "compute_cost.md").read_text()
    verdict = next(line for line in text.splitlines() if line.startswith("Verdict"))
    assert "skip the random search:" in verdict and "the random search costs" in verdict


def test_a_search_seed_cut_short_is_left_out_until_its_draws_end(tmp_path: Path) -> None:
    """An interrupted run: seed 3's better draw never ran. Counted, the search's seed 3 would be a 1-draw search
    (0.70 instead of 0.78); it is left out of every table and verdict, and results.md says so."""
    folder = _with_random_search(write_run(tmp_path / "r", {"arml": [0.80, 0.82, 0.81, 0.83]}), pending=(3, 1))
    data = load_run(str(folder))
    random_done = data.done[data.done["method"] == "random"]
    assert sorted(set(random_done["seed"])) == [0, 1, 2]
    assert list(data.held_back()["trial_id"]) == ["r30"]
    point = data_requirement(data).set_index("method").loc["random"]
    assert point["seeds"] == 3 and point["test_acc_mean"] == pytest.approx(0.78)
    assert len(data.done[data.done["method"] == "arml"]) == 4       # a single run's seeds are not held back
    text = (Path(make_report(str(folder))) / "results.md").read_text()
    assert "1 finished trials are left out too" in text and "random at seed 3." in text
    states = json.loads((folder / "trials.json").read_text())
    states["r31"] = {"status": "failed", "failures": 3}          # it will not run again: the seed counts as it is
    (folder / "trials.json").write_text(json.dumps(states))
    done = load_run(str(folder)).done
    assert sorted(set(done[done["method"] == "random"]["seed"])) == [0, 1, 2, 3]


def test_comparisons_md_says_how_many_verdicts_chance_alone_would_give(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "r", {"uniform": [0.70, 0.72, 0.74, 0.71], "arml": [0.75, 0.78, 0.79, 0.77]},
                       grid={"[1, 0]": [0.70, 0.73, 0.74, 0.72], "[0, 1]": [0.69, 0.71, 0.73, 0.70]})
    text = (Path(make_report(str(folder))) / "comparisons.md").read_text()
    chance = next(line for line in text.splitlines() if line.startswith("Chance:"))
    # grid vs uniform (as good: +0.5), arml vs uniform and arml vs grid (better): 3 made, 2 better or worse
    assert chance.startswith("Chance: 3 comparisons here, each at 95%.")
    assert "about 0.1 of them; 2 are decided better or worse" in chance
    two_seeds = write_run(tmp_path / "two", {"uniform": [0.70, 0.72], "arml": [0.75, 0.78]})
    assert "Chance:" not in (Path(make_report(str(two_seeds))) / "comparisons.md").read_text()   # none made
