"""Search baselines: `scheduler = "asha"` on a grid and `[methods.search]` (Optuna TPE through Ray Tune) in
study files, plans and a real run through Ray: ASHA stops trials early and records them as stopped with the
seconds they used, TPE draws weights inside the declared space, and both reach the compute-cost table."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest
from studyfiles import mlc_head

from orchestrator.cli import main
from orchestrator.errors import StudyError
from orchestrator.study.plan import make_plan
from orchestrator.study.spec import parse_study


def study(body: str, name: str = "s") -> str:
    return mlc_head(name) + textwrap.dedent(body)


def test_search_and_asha_parse_and_plan():
    s = parse_study(study("""
        [methods.grid]
        values = [0.0, 1.0]
        scheduler = "asha"
        grace_period = 4
        reduction_factor = 2
        [methods.search]
        num_samples = 5
        space = "simplex"
        [budget]
        labels = [20, 40]
        """))
    grid, search = s.methods
    assert grid.scheduler == {"name": "asha", "grace_period": 4, "reduction_factor": 2.0} and grid.is_grid
    assert search.is_search and search.search == {"sampler": "tpe", "num_samples": 5, "space": "simplex",
                                                  "w_max": 2.0}
    plan = make_plan(s)
    assert plan.counts_by_method() == {"grid": 8, "search": 10}
    samples = [t for t in plan.trials if t.method == "search"]
    assert [t.sample for t in samples[:5]] == [0, 1, 2, 3, 4] and len({t.trial_id for t in plan.trials}) == 18
    assert {t.scheduler["name"] for t in plan.trials if t.method == "grid"} == {"asha"}


@pytest.mark.parametrize("body, message", [
    ('[methods.grid]\nvalues = [0.0, 1.0]\nscheduler = "hyperband"', "scheduler \"hyperband\" is unknown"),
    ('[methods.grid]\nvalues = [0.0, 1.0]\ngrace_period = 3', "grace_period needs scheduler"),
    ('[methods.grid]\nvalues = [0.0, 1.0]\nscheduler = "asha"\nreduction_factor = 1', "greater than 1"),
    ('[methods.search]\nspace = "box"', "missing key num_samples"),
    ('[methods.search]\nnum_samples = 0', "num_samples must be between 1"),
    ('[methods.search]\nnum_samples = 4\nspace = "cube"', "space \"cube\" is unknown"),
    ('[methods.search]\nnum_samples = 4\nspace = "simplex"\nw_max = 3', "w_max is only for space"),
    ('[methods.search]\nnum_samples = 4\nsampler = "cmaes"', "sampler \"cmaes\" is unknown"),
    ('[methods.arml]\nscheduler = "asha"', "only for a grid search"),
])
def test_bad_search_options_name_the_key(body, message):
    with pytest.raises(StudyError, match=message):
        parse_study(study(body))


def test_dry_run_counts_search_samples(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(study('[methods.arml]\n[methods.search]\nnum_samples = 6\n'))
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "total: 7 trials" in out


@pytest.mark.integration
def test_asha_stops_grid_points_early_and_tpe_samples_inside_the_space(local_ray, tmp_path):
    path = tmp_path / "search.toml"
    path.write_text(study("""
        [methods.arml]
        [methods.grid_asha]
        weighting = "grid"
        values = [0.0, 0.5, 1.0]
        scheduler = "asha"
        grace_period = 10
        reduction_factor = 2
        [methods.tpe]
        weighting = "search"
        num_samples = 6
        w_max = 1.5
        [resources]
        max_concurrent = 1
        """, name="search"))
    code = main(["run", str(path), "--storage", str(tmp_path / "runs")])
    assert code == 0
    run_dir = tmp_path / "runs" / "search"
    trials = pd.read_csv(run_dir / "trials.csv")
    assert set(trials["status"]) <= {"finished", "stopped"}

    grid = trials[trials["method"] == "grid_asha"]
    stopped = grid[grid["status"] == "stopped"]
    assert len(grid) == 9 and len(stopped) >= 1, grid[["grid_point", "status", "final_step"]]
    assert (stopped["final_step"] == 10).all() and (stopped["cpu_s"] > 0).all()
    records = pd.read_parquet(run_dir / "records.parquet")
    assert records[records["trial_id"].isin(stopped["trial_id"])].groupby("trial_id")["step"].max().eq(10).all()

    tpe = trials[trials["method"] == "tpe"]
    weights = [json.loads(p) for p in tpe["grid_point"]]
    assert len(weights) == 6 and all(len(w) == 2 and all(0 <= x <= 1.5 for x in w) for w in weights)
    assert len({tuple(w) for w in weights}) == 6
    mine = records[records["trial_id"].isin(tpe["trial_id"])].groupby("trial_id").last()
    for tid, w in zip(tpe["trial_id"], weights):   # the trial trained with the weights it was given
        assert mine.loc[tid, "weight/is_0"] == pytest.approx(w[0]) and mine.loc[tid, "weight/random_0"] == \
            pytest.approx(w[1])

    cost = pd.read_csv(run_dir / "report" / "compute_cost.csv").set_index("method")
    assert cost.loc["grid_asha", "kind"] == "grid + asha" and cost.loc["tpe", "kind"] == "tpe"
    assert cost.loc["grid_asha", "trials"] == 9 and cost.loc["tpe", "trials"] == 6
    assert (run_dir / "report" / "cost_vs_accuracy.png").stat().st_size > 0
    curve = pd.read_csv(run_dir / "report" / "cost_vs_accuracy.csv")
    assert set(curve.loc[curve["kind"] == "search", "method"]) == {"grid_asha", "tpe"}


def test_sampled_weights_on_the_simplex_sum_to_k_and_the_box_is_kept():
    from orchestrator.run.search import grace_period, weights_from

    simplex = weights_from({"w0": 0.2, "w1": 0.6, "w2": 0.2}, {"space": "simplex"}, 3)
    assert sum(simplex) == pytest.approx(3.0) and simplex == pytest.approx([0.6, 1.8, 0.6])
    assert weights_from({"w0": 1.7, "w1": 0.0}, {"space": "box"}, 2) == [1.7, 0.0]
    # default grace period: the evaluation step nearest steps / rf^2, at least the first evaluation
    assert grace_period({"grace_period": 0, "reduction_factor": 3.0}, 300, 50) == 50
    assert grace_period({"grace_period": 0, "reduction_factor": 2.0}, 1000, 50) == 250
    assert grace_period({"grace_period": 40, "reduction_factor": 3.0}, 300, 50) == 40
