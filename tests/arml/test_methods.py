"""The rule that defines each weighting method, checked against explicit per-task gradients or a known
answer, and a state_dict round trip for every method that continues exactly like an uninterrupted run."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_nets import F64, MLP, resume_through_checkpoint
from torch import nn

import arml
from arml.gradients import flatten


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    return flatten(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params)


def train(w: arml.Weighting, net: MLP, steps: int, closure: bool = False, lr: float = 0.05, losses=None,
          opt: torch.optim.Optimizer | None = None, each=None) -> list[torch.Tensor]:
    """SGD on `net` with weighting `w`; `losses` replaces net.losses; returns the weights after each step."""
    losses = losses or net.losses
    opt = opt or torch.optim.SGD(net.parameters(), lr=lr)
    after = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        main, aux = losses()
        if each is not None:
            each(main, aux)
        w.backward(main, aux, net.shared(), closure=arml.stateless(losses, net) if closure else None)
        opt.step()
        after.append(w.state_dict()["weights"])
    return after


def test_uniform_weights_are_one_forever():
    w = arml.make_weighting("uniform", num_aux=3)
    train(w, MLP(3), 5)
    assert torch.equal(w.weights, torch.ones(3)) and w.history().shape == (1, 3) and w.history_steps() == [0]


def test_fixed_uses_exactly_the_given_weights_and_rejects_bad_ones():
    net = MLP(3)
    w = arml.make_weighting("fixed", num_aux=3, weights=[0.0, 0.25, 3.0])
    main, aux = net.losses()
    expected = grads(main + 0.25 * aux[1] + 3.0 * aux[2], list(net.parameters()))
    w.backward(main, aux, net.shared())
    assert torch.equal(flatten([p.grad for p in net.parameters()], list(net.parameters())), expected)
    train(w, net, 3)
    assert w.weights.tolist() == [0.0, 0.25, 3.0] and w.history().shape == (1, 3)
    for bad in ([1.0, -0.1, 1.0], [1.0, math.nan, 1.0], [1.0, math.inf, 1.0], [1.0, 1.0], [1.0] * 4):
        with pytest.raises(ValueError):
            arml.make_weighting("fixed", num_aux=3, weights=bad)


@pytest.mark.parametrize("ema", [0.0, 0.7])
def test_adaloss_weights_are_inverse_running_losses(ema):
    net, eps = MLP(3), 1e-6
    w = arml.AdaLoss(3, rule="inverse", ema=ema, eps=eps)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    average = None
    for _ in range(4):
        opt.zero_grad()
        main, aux = net.losses()
        average = aux.detach() if average is None else ema * average + (1 - ema) * aux.detach()
        if ema == 0.0:  # the filled gradient is that of main + sum_k log(L_k + eps)
            expected = grads(main + torch.log(aux + eps).sum(), list(net.parameters()))
        used = w.backward(main, aux, net.shared())
        torch.testing.assert_close(w.state_dict()["weights"], 1.0 / (average + eps), rtol=1e-12, atol=0)
        assert torch.equal(used, w.weights)
        if ema == 0.0:
            got = flatten([p.grad for p in net.parameters()], list(net.parameters()))
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)
        opt.step()
    assert w.updates == 4
    with pytest.raises(ValueError):
        arml.AdaLoss(3, ema=1.0)


# ---- GradNorm -------------------------------------------------------------------------------------------
def gradnorm_by_hand(weights, norms, losses, initial, lr, asymmetry):
    """One GradNorm step with a constant target T_k = mean(w G) * r_k ** asymmetry."""
    ratio = losses / initial
    target = (weights * norms).mean() * (ratio / ratio.mean()) ** asymmetry
    new = (weights - lr * torch.sign(weights * norms - target) * norms).clamp(min=0)
    return new * len(new) / new.sum()


def layer_norms(net: MLP, layer: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    main, aux = net.losses()
    norms = torch.stack([grads(aux[k], layer).norm() for k in range(aux.numel())])
    return norms, aux.detach()


@pytest.mark.parametrize("use_first_layer", [False, True])
def test_gradnorm_update_by_hand_with_a_constant_target(use_first_layer):
    net = MLP(3)
    layer = [net.backbone[0].weight] if use_first_layer else [net.backbone[2].weight]
    options = {"layer_params": layer} if use_first_layer else {}
    w = arml.GradNorm(3, lr=0.05, asymmetry=1.5, **options)
    weights, initial = torch.ones(3, dtype=F64), None
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    for _ in range(3):
        norms, losses = layer_norms(net, layer)
        initial = losses if initial is None else initial
        expected = gradnorm_by_hand(weights, norms, losses, initial, 0.05, 1.5)
        train(w, net, 1, opt=opt)
        got = w.state_dict()["weights"]
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        assert bool((got >= 0).all()) and abs(float(got.sum()) - 3) < 1e-12
        # a target that depended on w would add -sum_j sign_j dT_j/dw_k: a different update
        ratio = losses / initial
        rel = (ratio / ratio.mean()) ** 1.5
        sign = torch.sign(weights * norms - (weights * norms).mean() * rel)
        leaky = (weights - 0.05 * (sign * norms - (sign * rel).sum() * norms / 3)).clamp(min=0)
        assert float((leaky * 3 / leaky.sum() - got).abs().max()) > 1e-4
        weights = got
    other = [net.backbone[2].weight] if use_first_layer else [net.backbone[0].weight]
    assert not torch.allclose(layer_norms(net, layer)[0], layer_norms(net, other)[0])


def test_gradnorm_takes_weight_from_a_task_with_larger_gradients():
    net = MLP(1)
    scaled = lambda: (lambda m, a: (m, torch.stack([a[0], 10 * a[0]])))(*net.losses())
    w = arml.GradNorm(2, lr=0.01)
    for weights in train(w, net, 20, losses=scaled):
        assert bool((weights >= 0).all()) and abs(float(weights.sum()) - 2) < 1e-12
    assert float(w.weights[1]) < 1 < float(w.weights[0])


@pytest.mark.parametrize("asymmetry", [0.0, 1.5])
def test_gradnorm_favours_the_task_that_trains_slower(asymmetry):
    """Two tasks with identical gradients; L_1 = L_0 + 5 falls relatively slower (higher L/L(0))."""
    net = MLP(1)
    shifted = lambda: (lambda m, a: (m, torch.stack([a[0], a[0] + 5.0])))(*net.losses())
    w = arml.GradNorm(2, lr=0.01, asymmetry=asymmetry)
    train(w, net, 10, losses=shifted, lr=0.2)
    if asymmetry == 0.0:
        assert torch.equal(w.weights, torch.ones(2))
    else:
        assert float(w.weights[1]) > 1 > float(w.weights[0])


# ---- CosineSim ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_closure", [False, True])
def test_cosinesim_binary_keeps_an_aligned_task_and_drops_an_opposed_one(use_closure):
    net = MLP(1)
    losses = lambda: (lambda m, a: (m, torch.stack([m, -m])))(*net.losses())
    w = arml.CosineSim(2)
    for weights in train(w, net, 3, closure=use_closure, losses=losses):
        assert weights.tolist() == [1.0, 0.0]


def linear_tasks(main_dir, aux_dirs):
    """theta in R^d, L = <c, theta>: every gradient is a constant vector we choose."""
    theta = nn.Parameter(torch.randn(len(main_dir), dtype=F64))
    c_main, c_aux = torch.tensor(main_dir, dtype=F64), torch.tensor(aux_dirs, dtype=F64)
    losses = lambda: (c_main @ theta, c_aux @ theta)
    holder = nn.Module()
    holder.theta = theta
    holder.shared = lambda: [theta]
    return holder, losses, c_main, c_aux


@pytest.mark.parametrize("use_closure", [False, True])
def test_cosinesim_cosine_mode_is_the_clamped_cosine(use_closure):
    aux_dirs = [[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.01, 5.0, 0.0]]
    holder, losses, c_main, c_aux = linear_tasks([1.0, 0.0, 0.0], aux_dirs)
    closure = arml.stateless(losses, holder) if use_closure else None
    cosine, binary = arml.CosineSim(5, mode="cosine"), arml.CosineSim(5)
    cosine.backward(*losses(), [holder.theta], closure=closure)
    binary.backward(*losses(), [holder.theta], closure=closure)
    expected = [2 ** -0.5, 0.0, 0.0, 1.0, 0.01 / math.hypot(0.01, 5.0)]
    torch.testing.assert_close(cosine.state_dict()["weights"], torch.tensor(expected, dtype=F64))
    assert binary.weights.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]


# ---- OL_AUX ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_closure", [False, True])
def test_olaux_moves_every_horizon_by_the_mean_inner_product(use_closure):
    net, lr, horizon = MLP(2), 0.5, 3
    losses = lambda: (lambda m, a: (m, torch.stack([a[0], a[1], -20 * m])))(*net.losses())
    inner = []

    def record(main, aux):
        g_main = grads(main, net.shared())
        inner.append(torch.stack([grads(aux[k], net.shared()) @ g_main for k in range(3)]))

    w = arml.OLAux(3, lr=lr, horizon=horizon)
    after = train(w, net, 7, closure=use_closure, losses=losses, each=record)
    expected = torch.ones(3, dtype=F64)
    for step, weights in enumerate(after, start=1):
        if step % horizon == 0:
            expected = (expected + lr * torch.stack(inner[step - horizon:step]).mean(0)).clamp(min=0)
        torch.testing.assert_close(weights, expected, rtol=1e-6, atol=1e-9)
    assert w.history_steps() == [0, 3, 6] and float(w.weights[2]) == 0.0 and float(w.weights[0]) != 1.0


# ---- ARML -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_closure", [False, True])
def test_arml_converges_to_the_known_minimiser(use_closure):
    """g_1 = g_main (G = |g|^2 = 4), g_2 orthogonal (H = 1): min over a1 + a2 = 2 of
    G (1 - a1)^2 + H a2^2 is a1 = (G + 2H) / (G + H) = 1.2, a2 = 0.8."""
    holder, losses, _, _ = linear_tasks([2.0, 0.0, 0.0], [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    w = arml.ARML(2, lr=0.1)
    after = train(w, holder, 60, closure=use_closure, losses=losses, lr=0.0)
    assert all(b[0] > a[0] and b[1] < a[1] for a, b in zip(after, after[1:]) if abs(float(a[0]) - 1.2) > 1e-9)
    torch.testing.assert_close(after[-1], torch.tensor([1.2, 0.8], dtype=F64), rtol=0, atol=1e-6)


def test_arml_raises_an_aligned_task_and_lowers_a_noise_task_while_training():
    net = MLP(2)
    gen = torch.Generator().manual_seed(1)
    noise_x = torch.randn(24, 5, generator=gen, dtype=F64)

    def losses():
        main, aux = net.losses()
        noise = ((net.heads[2](net.backbone(noise_x)).squeeze(1) - net.y[2]) ** 2).mean()
        return main, torch.stack([main, noise])

    w = arml.ARML(2, lr=0.5)
    after = train(w, net, 40, closure=True, losses=losses)
    for before, weights in zip([torch.ones(2, dtype=F64)] + after, after):
        assert bool((weights >= 0).all()) and abs(float(weights.sum()) - 2) < 1e-12
        assert weights[0] > before[0]
    assert float(w.weights[0]) > 1.1 and float(w.weights[1]) < 0.9


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_arml_normalize_judges_directions_not_sizes(scale):
    """Unit gradients: g_1 along g_main, g_2 orthogonal, whatever their lengths; min over a1 + a2 = 2 of
    (1 - a1)^2 + a2^2 is a1 = 1.5, a2 = 0.5. The paper's rule moves with the sizes (here to 1.96 / 2.0)."""
    holder, losses, _, _ = linear_tasks([2.0, 0.0, 0.0], [[2.0, 0.0, 0.0], [0.0, 10.0 * scale, 0.0]])
    scaled = arml.ARML(2, lr=0.1, normalize=True)
    after = train(scaled, holder, 80, losses=losses, lr=0.0)
    torch.testing.assert_close(after[-1], torch.tensor([1.5, 0.5], dtype=F64), rtol=0, atol=1e-6)
    paper = arml.ARML(2, lr=0.001)
    train(paper, holder, 400, closure=True, losses=losses, lr=0.0)
    assert float(paper.weights[0]) > 1.9   # 4 (1 - a1)^2 + 100 s^2 (2 - a1)^2: the large task gets weight 0


def test_arml_average_over_updates_once_with_the_mean_alpha_gradient():
    holder, losses, _, _ = linear_tasks([2.0, 0.0, 0.0], [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    every = arml.ARML(2, lr=0.1)
    averaged = arml.ARML(2, lr=0.1, average_over=3)
    first = train(every, holder, 1, losses=losses, lr=0.0)[0]
    steps = train(averaged, holder, 6, losses=losses, lr=0.0)
    # constant gradients: the mean of 3 equal alpha gradients is one of them, applied every 3rd step
    assert [s.tolist() for s in steps[:2]] == [[1.0, 1.0]] * 2
    torch.testing.assert_close(steps[2], first)
    assert averaged.updates == 2 and averaged.history_steps()[1:] == [3, 6]


def test_arml_init_is_projected_and_options_are_checked():
    w = arml.ARML(3, init=[3.0, -1.0, 1.0])
    torch.testing.assert_close(w.history()[0], torch.tensor([2.5, 0.0, 0.5]))
    assert torch.equal(w.history()[0], w.weights)
    for bad in ({"lr": 0}, {"lr": -1.0}, {"lr": math.nan}, {"update_every": 0}, {"update_every": 1.5},
                {"init": [1.0, 1.0]}, {"init": [1.0, math.nan, 1.0]}, {"converge_window": -1},
                {"converge_tol": 0}, {"langevin_lr": 0}, {"temperature": 0}, {"fd_eps": 0.0},
                {"average_over": 0}, {"average_over": 2.5}):
        with pytest.raises(ValueError):
            arml.ARML(3, **bad)


# ---- every method: resuming from a checkpoint -----------------------------------------------------------
ALL = [("uniform", {}, False), ("fixed", {"weights": [0.5, 1.0, 2.0]}, False),
       ("adaloss", {"ema": 0.5}, False), ("gradnorm", {}, False), ("cosinesim", {"update_every": 2}, True),
       ("cosinesim", {"mode": "cosine"}, False), ("olaux", {"horizon": 3}, True),
       ("olaux", {"horizon": 3}, False), ("arml", {}, True), ("arml", {}, False),
       ("arml", {"update_every": 2, "lr": 0.5}, True),
       ("arml", {"langevin": True, "langevin_lr": 1e-4}, True),
       ("arml", {"average_over": 3}, True), ("arml", {"normalize": True, "update_every": 2}, False),
       ("arml", {"amortize": 3, "lr": 0.1}, True), ("arml", {"protocol": "authors", "update_every": 3}, True),
       ("arml", {"langevin": True, "langevin_lr": 1e-4, "first_stage_steps": 5}, True),
       ("adaloss", {"rule": "offset", "ema": 0.5}, False),
       ("cosinesim", {"protocol": "authors", "freeze_after": 3}, True),
       ("gradnorm", {"protocol": "authors"}, False)]


@pytest.mark.parametrize("name,options,use_closure", ALL)
def test_state_dict_round_trip_continues_identically(name, options, use_closure):
    def fresh(net):
        w = arml.make_weighting(name, num_aux=3, **options)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        if options.get("langevin"):
            w.attach_optimizer(opt)
        return w, opt

    straight_net = MLP(3)
    straight, opt = fresh(straight_net)
    train(straight, straight_net, 8, closure=use_closure, opt=opt)

    first_net = MLP(3)
    first, opt = fresh(first_net)
    train(first, first_net, 4, closure=use_closure, opt=opt)
    resumed, resumed_net, opt = resume_through_checkpoint(first, first_net, opt, fresh)
    train(resumed, resumed_net, 4, closure=use_closure, opt=opt)

    a, b = straight.state_dict(), resumed.state_dict()
    assert torch.equal(a["weights"], b["weights"]) and torch.equal(a["history"], b["history"])
    assert torch.equal(b["history"][-1], b["weights"])  # the checkpoint keeps the history in float64
    assert (a["steps"], a["updates"], a["history_steps"]) == (b["steps"], b["updates"], b["history_steps"])
    assert name in ("uniform", "fixed") or a["updates"] > 0
