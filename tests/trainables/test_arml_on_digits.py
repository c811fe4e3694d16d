"""Evidence on real data (scikit-learn's digits; see benchmarks/digits_evidence.py for the problem):
what ARML's rule does with semantically related vs random-label auxiliary tasks, 3 fixed seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.digits_evidence import main_task_as_aux, make_problem, train  # noqa: E402

SEEDS = (0, 1, 2)
pytestmark = pytest.mark.slow   # 3 seeds of ARML on digits (about a minute): make test-slow


@pytest.fixture(scope="module")
def runs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster, and immune to a busy machine
    try:
        problems = {s: make_problem(s) for s in SEEDS}
        yield {
            "arml": {s: train(problems[s], "arml", s) for s in SEEDS},
            "blind": {s: train(problems[s], "arml", s, ablate_main=True) for s in SEEDS},
            "control": {s: train(main_task_as_aux(problems[s]), "arml", s) for s in SEEDS},
        }
    finally:
        torch.set_num_threads(threads)


@pytest.mark.xfail(strict=True, reason=(
    "Not what the paper's rule does here: with separate heads, cos(g_is_k, g_main) is ~0 (mean over "
    "training -0.06..0.02, as for the random tasks), so the alpha gradient is dominated by "
    "2<g_k, sum_j a_j g_j>: the weights follow the auxiliary gradients' sizes and overlaps (the min-norm "
    "part of the objective), not relatedness (see the tests below and benchmarks/digits_evidence.py)."))
def test_every_determining_attribute_outweighs_every_random_one(runs):
    for seed in SEEDS:
        w = runs["arml"][seed]["weights"]
        assert float(w[:4].min()) > float(w[4:].max()), f"seed {seed}: {w.tolist()}"


def test_the_weights_come_from_the_auxiliary_gradients_not_the_main_one(runs):
    """Removing g_main from the residual ||g_main - sum_k a_k g_k|| barely changes the weights."""
    for seed in SEEDS:
        w, blind = runs["arml"][seed]["weights"], runs["blind"][seed]["weights"]
        moved = float((w - 1).abs().max())
        assert moved > 0.2, f"seed {seed}: the weights hardly moved: {w.tolist()}"
        assert float((w - blind).abs().max()) < 0.25 * moved, f"seed {seed}: {w.tolist()} vs {blind.tolist()}"


def test_an_aligned_task_is_raised_first_then_cut_to_its_least_squares_share(runs):
    """Control: has_loop itself on all 1200 images. While its gradient is comparable to the main one,
    ARML raises it well above the random-label tasks; once it is larger, the weight falls towards
    <g_k, g_main> / ||g_k||^2 < 1 and the sum constraint hands the rest to the random-label tasks."""
    for seed in SEEDS:
        history = runs["control"][seed]["history"]
        early, final = history[1:61], history[-1]
        assert float(early[:, 0].max()) > 1.25 and bool((early[:, 0].max() > early[:, 1:].max(0).values).all())
        assert float(final[0]) < 0.8 < float(final[1:].min()), f"seed {seed}: {final.tolist()}"
