"""Cheap ARML (`amortize=N`): which steps pay for the alpha gradient, and weights that move as fast as
per-step ARML's (unlike `update_every=N`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import arml

F64 = torch.float64


def linear_problem():
    """theta in R^3, L = <c, theta>: constant gradients g_main = (2, 0, 0), g_1 = (2, 0, 0), g_2 = (0, 1, 0);
    the alpha gradient 2 (M a - b) still depends on the weights (M = diag(4, 1), b = (4, 0))."""
    theta = nn.Parameter(torch.randn(3, dtype=F64))
    c_main = torch.tensor([2.0, 0.0, 0.0], dtype=F64)
    c_aux = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64)
    return theta, lambda: (c_main @ theta, c_aux @ theta)


def run(w: arml.Weighting, steps: int, calls: list[int] | None = None) -> list[torch.Tensor]:
    theta, losses = linear_problem()
    closure = arml.stateless(losses, nn.Module())

    def counting():
        if calls is not None:
            calls.append(w.steps)
        return closure()

    after = []
    for _ in range(steps):
        theta.grad = None
        w.backward(*losses(), [theta], closure=counting)
        after.append(w.state_dict()["weights"])
    return after


@pytest.mark.parametrize("directional,passes", [("jvp", 1), ("central", 2)])
def test_only_every_nth_step_pays_for_the_alpha_gradient(directional, passes):
    calls: list[int] = []
    w = arml.ARML(2, lr=0.01, amortize=4, directional=directional)
    run(w, 9, calls)
    assert calls == [s for s in (1, 5, 9) for _ in range(passes)]   # extra forward passes on steps 1, 5, 9 only
    assert w.updates == 3 and w.history_steps() == [0, 1, 5, 9] and w.update_every == 4


@pytest.mark.parametrize("n", [4, 10])
def test_weights_move_as_fast_as_per_step_updates(n):
    steps = 60
    per_step = run(arml.ARML(2, lr=0.005), steps)
    cheap = run(arml.ARML(2, lr=0.005, amortize=n), steps)
    slow = run(arml.ARML(2, lr=0.005, update_every=n), steps)
    start = torch.ones(2, dtype=F64)
    travelled = float((per_step[-1] - start).abs().max())
    assert travelled > 0.1
    # after every block of n steps the cheap weights are where n per-step updates took them, up to the
    # change of the alpha gradient within a block (here 2 * beta * |M| per step)
    for t in range(n - 1, steps, n):
        assert float((cheap[t] - per_step[t]).abs().max()) < 0.1 * travelled
    assert float((slow[-1] - start).abs().max()) < 0.5 * travelled   # update_every moves n times slower


def test_amortize_is_checked_and_not_combined_with_update_every():
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="amortize"):
            arml.ARML(2, amortize=bad)
    with pytest.raises(ValueError, match="not both"):
        arml.ARML(2, amortize=4, update_every=2)
