"""The K-scaling study: the random-search sampler (different weights per sample and seed, reproducible), the
study files (the first K of AUX_ORDER, the grid only where it is small), the K-scaling report on hand-made run
folders ("as good as ARML after i trials", "never", selection on validation only), and a small K = 2 study
end to end through real Ray, then its K-scaling report."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from runfolders import write_folder

from orchestrator.analysis.run_data import load_run
from orchestrator.cli import main
from orchestrator.errors import StudyError
from orchestrator.report.search_cost import write_searches
from orchestrator.study.spec import parse_study

ROOT = Path(__file__).resolve().parents[2]
KS = (2, 4, 8, 16, 32)


STUDY = ROOT / "studies" / "digits_k_scaling.toml"


def has_amortize() -> bool:
    from arml import WEIGHTINGS

    return "amortize" in inspect.signature(WEIGHTINGS.get("arml").__init__).parameters


def without_amortize(text: str) -> str:
    """The study text runnable before the cheap ARML exists on this branch (arml_cheap is then plain ARML)."""
    return text if has_amortize() else re.sub(r"(?m)^amortize = .*\n", "", text)


# ---- the random sampler -----------------------------------------------------------------------------------

def draws(sampler: str, groups: tuple[str, ...], samples: int = 4, k: int = 3) -> dict[str, list[list[float]]]:
    """Weights a StudySearcher hands out for `samples` trials per group (no Ray cluster needed)."""
    from orchestrator.run.search import StudySearcher

    search = {"sampler": sampler, "num_samples": samples, "space": "box", "w_max": 2.0}
    order = [f"{g}-{i}" for g in groups for i in range(samples)]
    meta = {tid: {"group": tid.rsplit("-", 1)[0], "search": search} for tid in order}
    searcher = StudySearcher(order, meta, k)
    out: dict[str, list[list[float]]] = {g: [] for g in groups}
    for n, tid in enumerate(order):
        config = searcher.suggest(f"tune{n}")
        out[meta[tid]["group"]].append(config["weights"])
        searcher.on_trial_complete(f"tune{n}", {"best_val_acc": 0.5 + 0.01 * n})
    return out


def test_random_sampler_draws_new_weights_per_sample_and_seed_and_reproduces():
    from optuna.samplers import RandomSampler, TPESampler

    from orchestrator.run.search import make_sampler

    search = {"sampler": "random", "num_samples": 4, "space": "box", "w_max": 2.0}
    assert isinstance(make_sampler(search, "g"), RandomSampler)
    assert isinstance(make_sampler({**search, "sampler": "tpe"}, "g"), TPESampler)
    first = draws("random", ("seed0", "seed1"))
    for weights in first.values():
        assert len({tuple(w) for w in weights}) == 4
        assert all(len(w) == 3 and all(0.0 <= x <= 2.0 for x in w) for w in weights)
    assert first["seed0"] != first["seed1"]                 # every seed's group draws its own weights
    assert draws("random", ("seed0", "seed1")) == first      # and the same again in another run
    assert draws("tpe", ("seed0", "seed1")) != first         # a different sampler


def test_sampler_random_is_accepted_and_an_unknown_sampler_names_the_choices():
    from orchestrator.run import search
    from orchestrator.study import vocabulary

    assert set(vocabulary.SAMPLERS) == set(search.SAMPLERS)      # every sampler a study may name can draw
    head = ('[study]\nname = "s"\npreset = "digits_mlc"\n[train]\naux_attributes = ["is_0", "random_0"]\n'
            '[methods.rs]\nweighting = "search"\nnum_samples = 3\n')
    s = parse_study(head + 'sampler = "random"\n')
    assert s.methods[0].search["sampler"] == "random"
    with pytest.raises(StudyError, match=r'\[methods\.rs\] sampler "grid" is unknown.*valid: tpe, random'):
        parse_study(head + 'sampler = "grid"\n')


# ---- the study file ---------------------------------------------------------------------------------------

# digests of the sorted trial ids of each K, as the five per-K study files planned them when the K-scaling numbers
# in docs/results.md were run: the one sweep study plans exactly those trials, so the same ids give the same tables;
# all but ARML's (10 per K), whose ids changed with the default of its alpha gradient (forward mode, exact) since
PUBLISHED = {2: (1330, "adae23387b5412b5"), 4: (1690, "a6d62290bf626c02"), 8: (1285, "4636aec11cf0546e"),
             16: (1285, "20e84b39b13ad7f5"), 32: (1285, "0c2167b4a13ddaa9")}


def test_the_k_scaling_study_is_one_sweep_over_k_with_the_published_trials(tmp_path, capsys):
    import hashlib

    from orchestrator.study.plan import make_plan
    from orchestrator.study.spec import load_study
    from trainables.data.digits_attributes import digits_aux_set

    doc = tomllib.loads(STUDY.read_text())
    assert doc["train"]["aux_attributes"] == list(digits_aux_set(32))
    assert doc["sweep"]["train"]["aux_count"] == list(KS) and doc["methods"]["grid"]["cells"] == {"aux_count": [2, 4]}
    plan = make_plan(load_study(STUDY))
    for k, (count, digest) in PUBLISHED.items():
        ids = sorted(t.trial_id for t in plan.trials if t.cell["aux_count"] == k and t.weighting != "arml")
        assert (len(ids), hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]) == (count, digest), k
        assert all(t.config.aux_attributes == digits_aux_set(k) for t in plan.trials if t.cell["aux_count"] == k)
    assert main(["run", str(STUDY), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "total: 6925 trials" in out and "aux_count in 2, 4, 8, 16, 32 (5 cells" in out


# ---- the report on hand-made run folders ------------------------------------------------------------------

ARML = [0.80, 0.82, 0.78, 0.81, 0.79]


def search_run(folder: Path, k: int, methods: dict[str, tuple[str, list[list[tuple[float, float, float]]]]],
              margin: float = 1.0) -> Path:
    """A run folder: `methods[name] = (kind, per seed [(best val, test, cpu-seconds) per trial in plan order])`,
    kind 'arml', 'uniform', 'tpe'/'random' (a search) or 'grid' (trial i of every seed is grid point i)."""
    trials, states, rows = [], {}, []
    for name, (kind, seeds) in methods.items():
        weighting = kind if kind in ("arml", "uniform") else "fixed"
        search = {"sampler": kind, "num_samples": len(seeds[0]), "space": "box", "w_max": 2.0} \
            if kind in ("tpe", "random") else None
        for seed, results in enumerate(seeds):
            for i, (val, test, cost) in enumerate(results):
                tid = f"{name}-s{seed}-{i:02d}"
                point = [float(i)] * k if kind == "grid" else None
                trials.append({"trial_id": tid, "method": name, "weighting": weighting, "budget_key": "label_budget",
                               "budget": 40, "seed": seed, "grid_point": point, "weighting_options": {},
                               "config": {"setting": "mlc", "label_budget": 40}, "sample": i if search else None,
                               "scheduler": None, "search": search})
                states[tid] = {"status": "finished", "failures": 0}
                if search:
                    states[tid]["weights"] = [0.1 * i] * k
                rows.append({"trial_id": tid, "step": 10, "best_val_acc": val, "test_acc_at_best_val": test,
                             "wall_s": cost, "cpu_s": cost, "gpu_s": 0.0})
    return write_folder(folder, {"study": f"k{k}", "aux_names": [f"a{i}" for i in range(k)], "margin": margin,
                                 "trials": trials}, rows, states)


def hand_made(folder: Path, k: int) -> Path:
    near = (0.001, 0.002, 0.0, 0.001, 0.002)   # within a fraction of a point of ARML, seed by seed
    good = [[(0.5, a - 0.10, 1.0), (0.6, a - 0.05, 1.0), (0.7, a + d, 1.0), (0.65, 0.99, 1.0), (0.6, 0.99, 1.0)]
            for a, d in zip(ARML, near)]
    # never: the best test accuracy (0.99) sits on a trial with poor validation accuracy, never selected
    never = [[(0.7, a - 0.05, 0.5), (0.3, 0.99, 0.5), (0.6, 0.5, 0.5), (0.6, 0.5, 0.5), (0.6, 0.5, 0.5)]
             for a in ARML]
    # a grid whose second point (all seeds' mean validation) is as good as ARML
    grid = [[(0.6, a - 0.05, 2.0), (0.7, a + d, 2.0), (0.5, 0.99, 2.0)] for a, d in zip(ARML, near)]
    return search_run(folder, k, {
        "uniform": ("uniform", [[(0.6, a - 0.03, 1.0)] for a in ARML]),
        "arml": ("arml", [[(0.7, a, 2.0)] for a in ARML]),
        "tpe_box": ("tpe", good), "random": ("random", never), "grid": ("grid", grid)})


def searches_of(runs: list[Path], out: Path, multiple: float = 16.0) -> None:
    """The searches' files (what `arml report` writes for a sweep over aux_count) over run folders, one K each."""
    write_searches([cell for run in runs for cell in load_run(str(run)).cells()], str(out), multiple=multiple)


def test_k_scaling_report_finds_when_each_search_is_as_good_as_arml_and_when_never(tmp_path):
    runs = [hand_made(tmp_path / "k4", 4), hand_made(tmp_path / "k2", 2)]
    out = tmp_path / "out"
    searches_of(runs, out)
    table = pd.read_csv(out / "searches.csv")
    assert table["K"].tolist()[:5] == [2] * 5 and set(table["K"]) == {2, 4}
    rows = table[table["K"] == 2].set_index("method")
    assert rows.loc["arml", "arml_device_s"] == 2.0 and rows.loc["arml", "device_s_per_trial"] == 2.0
    good = rows.loc["tpe_box"]
    assert good["as_good_after"] == 3 and not good["never"]
    assert good["device_s_to_as_good"] == 3.0 and good["ratio_to_arml"] == 1.5
    assert good["trials_per_seed"] == 5 and good["total_device_s"] == 5.0
    never = rows.loc["random"]
    assert never["never"] and pd.isna(never["as_good_after"]) and never["ratio_total"] == pytest.approx(1.25)
    grid = rows.loc["grid"]
    assert grid["as_good_after"] == 2 and grid["device_s_to_as_good"] == 4.0 and grid["kind"] == "grid"
    assert rows.loc["uniform", "ratio_total"] == 0.5
    assert rows.loc["arml", "test_acc"] == pytest.approx(sum(ARML) / 5)           # test accuracy, once per seed
    assert rows.loc["tpe_box", "test_acc"] == pytest.approx(sum(ARML) / 5 + 0.0012)   # its validation choice

    verdicts = pd.read_csv(out / "searches_verdicts.csv")
    mine = verdicts[verdicts["K"] == 2].set_index(["method", "trials"])["verdict"]
    assert mine[("tpe_box", 4)] in ("as good", "better") and mine[("tpe_box", 5)] in ("as good", "better")
    assert mine[("random", 4)] == mine[("random", 5)] == "worse" and mine[("uniform", 1)] == "worse"
    assert ("arml", 1) not in mine.index and ("grid", 3) in mine.index
    text = (out / "searches.md").read_text()
    assert "after 3 trials" in text and "never" in text
    assert (out / "searches.png").stat().st_size > 0

    # each single run against each search given 16x its device-seconds (ARML: 2 s a run, Uniform 1 s)
    budgeted = pd.read_csv(out / "searches_budgeted.csv")
    assert set(budgeted["method"]) == {"arml", "uniform"}     # every method that is not a search
    assert (budgeted["multiple"] == 16).all()
    uniform = budgeted[(budgeted["K"] == 2) & (budgeted["method"] == "uniform")].set_index("search")
    assert uniform.loc["grid", "trials"] == 3 and uniform.loc["tpe_box", "trials"] == 5   # 6 s and 5 s fit 16 s
    assert uniform.loc["tpe_box", "verdict"] == "worse"     # 3 points below ARML, the search about level with it
    assert set(budgeted.loc[budgeted["chosen"], "method"]) == {"arml"}   # validation 0.7 against Uniform's 0.6
    assert "Is one run enough?" in text
    mine = budgeted[(budgeted["K"] == 2) & (budgeted["method"] == "arml")].set_index("search")
    assert mine.loc["tpe_box", "trials"] == 5 and mine.loc["tpe_box", "verdict"] == "as good"
    assert mine.loc["grid", "trials"] == 3 and mine.loc["grid", "search_device_s"] == 6.0
    assert mine.loc["random", "verdict"] == "better"
    assert "given 16x its device-seconds" in text


def test_a_search_gets_only_the_prefix_that_fits_its_allowance(tmp_path):
    run = hand_made(tmp_path / "k2", 2)
    searches_of([run], tmp_path / "out", multiple=1)
    mine = pd.read_csv(tmp_path / "out" / "searches_budgeted.csv")
    mine = mine[mine["method"] == "arml"].set_index("search")
    # 1x ARML's 2 s: two 1-s TPE trials (whose choice is 5 points below ARML), one 2-s grid point
    assert mine.loc["tpe_box", "trials"] == 2 and mine.loc["grid", "trials"] == 1
    assert mine.loc["tpe_box", "verdict"] == "better" and mine.loc["tpe_box", "mean_diff"] == pytest.approx(0.05)


def test_fewer_than_three_seeds_are_never_as_good(tmp_path):
    from orchestrator.analysis.search_cost import searches_tables

    run = search_run(tmp_path / "run", 2, {"arml": ("arml", [[(0.7, 0.8, 1.0)]] * 2),
                                          "tpe": ("tpe", [[(0.7, 0.8, 1.0), (0.8, 0.9, 1.0)]] * 2)})
    table, verdicts, budgeted = searches_tables(load_run(str(run)).cells())
    assert table.set_index("method").loc["tpe", "never"]
    assert set(verdicts["verdict"]) == {"not decided"}
    assert set(budgeted["verdict"]) == {"not decided"} and len(budgeted) == 1   # arml vs tpe: one single run


# ---- a small K-scaling study end to end ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.integration
def test_a_small_k_scaling_study_runs_and_gets_its_k_scaling_report(local_ray, tmp_path):
    text = without_amortize(STUDY.read_text())
    text = text.replace("seeds = [0, 1, 2, 3, 4]", "seeds = [0, 1]").replace("num_samples = 64", "num_samples = 4")
    path = tmp_path / "digits_k_scaling.toml"
    path.write_text(text)
    assert main(["run", str(path), "--smoke", "--storage", str(tmp_path / "runs"),
                 "--set", "sweep.train.aux_count=[2]", "--set", "methods.grid.cells={aux_count=[2]}"]) == 0
    run_dir = tmp_path / "runs" / "digits_k_scaling"
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 2 * (3 + 4 * 4 + 9) and set(trials["status"]) <= {"finished", "stopped"}
    assert set(trials["aux_count"]) == {2}
    random = trials[trials["method"] == "random"]
    assert len({tuple(json.loads(w)) for w in random["grid_point"]}) == 8   # 4 draws in each of 2 seeds

    paths = {name: run_dir / "report" / name for name in ("searches.csv", "searches.png")}
    table = pd.read_csv(paths["searches.csv"]).set_index("method")
    assert set(table.index) == {"uniform", "arml", "arml_cheap", "tpe_simplex", "tpe_box", "random",
                                "random_asha", "grid"}
    assert (table["K"] == 2).all() and table.loc["arml", "device_s_per_trial"] > 0
    searches = table[table["trials_per_seed"] > 1]
    assert searches["never"].all()          # two seeds never decide "as good"
    assert (searches["total_device_s"] > 0).all()
    assert Path(paths["searches.png"]).stat().st_size > 0
