"""Algorithm 1: Eq. A9's Langevin step under SGD, measured, and a first stage that ends by default,
after which the noise stops and the weights freeze."""

from __future__ import annotations

import torch
from torch import nn

import arml

F64 = torch.float64


def quadratic(n: int = 20000):
    """A parameter vector and the centre c of the quadratic loss 0.5 * sum (theta - c)^2."""
    gen = torch.Generator().manual_seed(3)
    theta = nn.Parameter(torch.randn(n, generator=gen, dtype=F64))
    c = torch.randn(n, generator=gen, dtype=F64)
    return theta, c


def test_sgd_step_with_noise_is_eq_a9():
    """theta <- theta - eps grad L + N(0, 2 eps T) per coordinate: the drift is SGD's, the noise's mean 0
    and variance 2 eps T (T = 1/N from bind(num_train=N)), measured over 20,000 coordinates."""
    theta, c = quadratic()
    eps, n_train = 0.05, 8
    opt = torch.optim.SGD([theta], lr=eps)
    w = arml.ARML(1, langevin=True)
    w.bind(optimizer=opt, num_train=n_train)
    before = theta.detach().clone()
    main = 0.5 * ((theta - c) ** 2).sum()
    w.backward(main, main.reshape(1) * 0.0, [theta])   # the auxiliary loss adds no gradient
    opt.step()
    drift = before - eps * (before - c)                 # theta + eps * grad log p with log p = -L
    noise = theta.detach() - drift
    variance = 2 * eps * (1 / n_train)
    assert abs(float(noise.mean())) < 4 * (variance / noise.numel()) ** 0.5
    assert abs(float(noise.var()) / variance - 1) < 0.05


def test_first_stage_ends_by_default_then_no_noise_and_frozen_weights():
    theta, c = quadratic(2000)
    aux_dir = torch.randn(2, 2000, dtype=F64, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.SGD([theta], lr=0.0)      # lr 0: the parameters move only by the noise
    w = arml.ARML(2, lr=0.01, langevin=True, langevin_lr=1e-4)
    w.bind(optimizer=opt, total_steps=24)
    assert w.first_stage_steps == 6 and w.converge_window == 50   # a quarter of the run; default window
    moves, weights = [], []
    for _ in range(12):
        opt.zero_grad()
        before = theta.detach().clone()
        main = 0.5 * ((theta - c) ** 2).sum()
        w.backward(main, aux_dir @ theta, [theta])
        opt.step()
        moves.append(float((theta.detach() - before).abs().max()))
        weights.append(w.weights)
    assert all(m > 0 for m in moves[:6]) and all(m == 0 for m in moves[6:])
    assert w.converged and w.updates == 6 and w.history_steps()[-1] == 6
    assert all(torch.equal(x, weights[5]) for x in weights[6:])
    assert not torch.equal(weights[0], weights[5])


def test_langevin_without_a_run_length_stops_after_the_authors_first_stage():
    assert arml.ARML(2, langevin=True).first_stage_steps == 50_000
    assert arml.ARML(2).first_stage_steps is None                 # Algorithm 2: never frozen
    frozen = arml.ARML(2, first_stage_steps=3)                     # also freezes without noise when given
    theta, c = quadratic(10)
    for _ in range(5):
        theta.grad = None
        main = 0.5 * ((theta - c) ** 2).sum()
        frozen.backward(main, torch.stack([main, 2 * main]), [theta])
    assert frozen.converged and frozen.updates == 3
