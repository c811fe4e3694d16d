"""The weight diagnostics in the report: final weights against gradient size and alignment, the correlations, and
the warning when a method's weights follow size rather than alignment."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runfolders import write_folder
from scipy import stats

from orchestrator.analysis.diagnostics import follows_size, summary_table, task_table
from orchestrator.analysis.run_data import load_run
from orchestrator.report.build import make_report

TASKS = [f"t{i}" for i in range(8)]
SIZE = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4])       # |g_k| / |g_main| per task
COS = np.array([0.1, -0.1, -0.1, 0.1, 0.1, -0.1, -0.1, 0.1])     # cos(g_k, g_main) per task, unrelated to size


def final_weight(method: str) -> np.ndarray:
    if method == "arml":          # the smaller the gradient, the larger the weight: follows size
        return 8.0 - np.log2(SIZE / SIZE.min()) + np.array([0, 0.5, 0, -0.5, 0.3, 0, -0.3, 0])
    if method == "aligned":       # follows the cosine
        return 1.0 + 2.0 * COS
    return np.ones(len(TASKS))


def diagnosed_run(folder: Path, seeds: int = 3, diagnostics: bool = True) -> Path:
    """Uniform (weights fixed at 1), 'arml' (weights ending at final_weight('arml')) and 'aligned', two
    evaluations per trial; the size ratio is SIZE * 0.5 at the first evaluation and SIZE * 1.5 at the second
    (run average: SIZE), the cosine COS -/+ 0.1 (average COS). Seed s adds s/100 to every final weight."""
    trials, states, rows = [], {}, []
    for n, method in enumerate(("uniform", "arml", "aligned")):
        for seed in range(seeds):
            tid = f"t{n}s{seed}"
            trials.append({"trial_id": tid, "method": method, "weighting": "uniform" if method == "uniform" else "arml",
                           "budget_key": "label_budget", "budget": 40, "seed": seed, "grid_point": None,
                           "weighting_options": {}, "config": {"setting": "mlc", "label_budget": 40}})
            states[tid] = {"status": "finished", "failures": 0}
            for step, (scale, shift) in ((10, (0.5, -0.1)), (20, (1.5, 0.1))):
                weights = np.ones(len(TASKS)) if step == 10 else final_weight(method) + (
                    0 if method == "uniform" else seed / 100)
                row = {"trial_id": tid, "method": method, "seed": seed, "step": step, "best_val_acc": 0.8,
                       "test_acc_at_best_val": 0.8, "cpu_s": 1.0, "wall_s": 1.0, "gpu_s": 0.0}
                for k, task in enumerate(TASKS):
                    row[f"weight/{task}"] = float(weights[k])
                    if diagnostics:
                        row[f"grad_norm_ratio/{task}"] = float(SIZE[k] * scale)
                        row[f"grad_cos/{task}"] = float(COS[k] + shift)
                rows.append(row)
    return write_folder(folder, {"study": "why", "aux_names": TASKS, "trials": trials}, rows, states)


def test_each_learned_method_gets_its_weights_against_size_and_alignment(tmp_path):
    data = load_run(str(diagnosed_run(tmp_path / "run")))
    tasks = task_table(data).set_index(["method", "task"])
    assert set(tasks.index.get_level_values("method")) == {"arml", "aligned"}   # Uniform's weights never move
    assert tasks.loc[("arml", "t3"), "grad_norm_ratio"] == pytest.approx(SIZE[3])       # averaged over the run
    assert tasks.loc[("arml", "t3"), "grad_cos"] == pytest.approx(COS[3])
    assert tasks.loc[("arml", "t3"), "weight"] == pytest.approx(final_weight("arml")[3] + 0.01)   # last, mean of seeds
    assert tasks.loc[("arml", "t3"), "seeds"] == 3

    summary = summary_table(task_table(data)).set_index("method")
    expected = stats.pearsonr(final_weight("arml"), np.log(SIZE))     # r with the size's logarithm
    assert summary.loc["arml", "r_size"] == pytest.approx(expected.statistic)
    assert summary.loc["arml", "p_size"] == pytest.approx(expected.pvalue)
    assert summary.loc["arml", "r_cos"] == pytest.approx(stats.pearsonr(final_weight("arml"), COS).statistic)
    assert bool(summary.loc["arml", "follows_size"]) and not bool(summary.loc["aligned", "follows_size"])
    assert summary.loc["aligned", "r_cos"] == pytest.approx(1.0)


def test_the_warning_needs_a_strong_significant_size_correlation_and_a_weak_alignment_one():
    assert follows_size(-0.8, 0.01, 0.1)
    assert not follows_size(-0.69, 0.01, 0.1)           # size explains under half the spread
    assert not follows_size(-0.9, 0.10, 0.1)            # a handful of tasks: could be chance
    assert not follows_size(-0.8, 0.01, 0.35)           # alignment matters too
    assert not follows_size(math.nan, math.nan, 0.0)    # constant weights: nothing to correlate


def test_the_report_draws_the_figure_and_warns_in_results_md(tmp_path):
    run = diagnosed_run(tmp_path / "run")
    folder = Path(make_report(str(run)))
    assert (folder / "diagnostics.png").stat().st_size > 0
    frame = pd.read_csv(folder / "diagnostics_summary.csv")
    assert list(frame["method"]) == ["arml", "aligned"]
    text = (folder / "results.md").read_text()
    assert "## Why the weights are what they are" in text
    warnings = [line for line in text.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: arml at 40 labels weights the tasks by gradient "
                                                         "size") and "small gradients" in warnings[0]


def test_without_diagnostics_the_report_has_none_of_it(tmp_path):
    folder = Path(make_report(str(diagnosed_run(tmp_path / "run", diagnostics=False))))
    assert not (folder / "diagnostics.png").exists() and not (folder / "diagnostics.csv").exists()
    assert "Why the weights" not in (folder / "results.md").read_text()
