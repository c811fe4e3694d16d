"""Auto-Lambda (`arml.AutoLambda`): its meta-gradient against the exact derivative of the main loss after one
virtual SGD step (a double backward), the Adam update, a model left as it was, the filled gradients, a
short training run, resuming and option checks."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_nets import F64, MLP, resume_through_checkpoint
from torch import nn
from torch.func import functional_call

import arml
from arml.gradients import flatten

INIT = [0.3, -0.2, 1.5]


def main_loss_at(net: MLP, new: dict[str, torch.Tensor]) -> torch.Tensor:
    """The main task's loss with the parameters named in `new` replaced (the others as they are)."""
    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in new.items() if k.startswith(prefix)}

    features = functional_call(net.backbone, part("backbone."), (net.x,))
    out = functional_call(net.heads[0], part("heads.0."), (features,)).squeeze(1)
    return ((out - net.y[0]) ** 2).mean()


def exact_meta_gradient(net: MLP, weights: list[float], alpha: float, names: list[str], main_weight: float = 1.0,
                        extra: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """d/dlambda L_main(theta - alpha * (grad_theta [w0 L_main + sum_k lambda_k L_k] + extra)) over the
    parameters `names`, by double backward; also the first-order value -alpha [<g_k, g_main(theta)>]_k."""
    lam = torch.tensor(weights, dtype=F64, requires_grad=True)
    params = dict(net.named_parameters())
    main, aux = net.losses()
    grads = torch.autograd.grad(main_weight * main + (lam * aux).sum(), [params[n] for n in names],
                                create_graph=True)
    extra = extra or {}
    new = {n: params[n] - alpha * (g + extra.get(n, 0.0)) for n, g in zip(names, grads)}
    (exact,) = torch.autograd.grad(main_loss_at(net, new), lam)
    theta = [params[n] for n in names]
    g_main = flatten(torch.autograd.grad(main, theta, retain_graph=True, allow_unused=True), theta)
    first = torch.stack([flatten(torch.autograd.grad(aux[k], theta, retain_graph=True, allow_unused=True), theta)
                         @ g_main for k in range(aux.numel())])
    return exact.detach(), -alpha * first.detach()


def method_meta_gradient(w: arml.AutoLambda, net: MLP, main_weight: float = 1.0) -> torch.Tensor:
    main, aux = net.losses()
    return w.meta_gradient(main, aux, net.shared(), arml.stateless(net.losses, net), main_weight)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


# ---- the meta-gradient --------------------------------------------------------------------------------
@pytest.mark.parametrize("directional", ["jvp", "double_backward", "central"])
@pytest.mark.parametrize("bound", [True, False])
def test_meta_gradient_is_the_exact_look_ahead_derivative(bound, directional):
    """Over every parameter with a bound model, over the shared ones without; by forward mode (the default), a
    double backward, or a central difference with a small fd_step: float64 precision."""
    net, alpha = MLP(3), 0.4
    w = arml.AutoLambda(3, init=INIT, virtual_lr=alpha, fd_step=1e-5, directional=directional)
    if bound:
        w.bind(model=net)
    names = [n for n, _ in net.named_parameters() if bound or n.startswith("backbone.")]
    exact, first = exact_meta_gradient(net, INIT, alpha, names)
    got = method_meta_gradient(w, net)
    torch.testing.assert_close(got, exact, rtol=1e-7, atol=1e-12)
    # the look-ahead matters here: the first-order value (the gradient at theta, not theta') is far off
    assert float((first - exact).abs().max()) > 1e-3 * float(exact.abs().max())
    # no component near 0: a wrong sign or factor on any of them would miss the tolerance by far
    assert float(exact.abs().min()) > 1e-3 * float(exact.abs().max())


def test_meta_gradient_uses_the_optimizers_rate_momentum_and_weight_decay():
    net = MLP(3)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, weight_decay=0.05)
    for _ in range(2):  # momentum buffers that are not zero, except the main head's: it has none
        opt.zero_grad()
        sum(net.losses()[1]).backward()
        opt.step()
    assert "momentum_buffer" not in opt.state[net.heads[0].weight]
    w = arml.AutoLambda(3, init=INIT, fd_step=1e-5)
    w.bind(model=net, optimizer=opt)
    names = [n for n, _ in net.named_parameters()]
    params = dict(net.named_parameters())
    extra = {n: 0.9 * opt.state[p].get("momentum_buffer", 0.0) + 0.05 * p.detach() for n, p in params.items()}
    exact, _ = exact_meta_gradient(net, INIT, 0.3, names, main_weight=0.5, extra=extra)
    got = method_meta_gradient(w, net, main_weight=0.5)
    torch.testing.assert_close(got, exact, rtol=1e-7, atol=1e-12)
    without, _ = exact_meta_gradient(net, INIT, 0.3, names, main_weight=0.5)
    assert float((without - exact).abs().max()) > 1e-3 * float(exact.abs().max())


def test_the_authors_fd_step_is_close_and_the_model_is_left_as_it_was():
    net, alpha = MLP(3), 0.4
    w = arml.AutoLambda(3, init=INIT, virtual_lr=alpha, directional="central")   # fd_step 0.01, the authors' move
    w.bind(model=net)
    exact, _ = exact_meta_gradient(net, INIT, alpha, [n for n, _ in net.named_parameters()])
    before = snapshot(net)
    got = method_meta_gradient(w, net)
    torch.testing.assert_close(got, exact, rtol=1e-4, atol=1e-9)
    assert all(torch.equal(before[k], v) for k, v in snapshot(net).items())
    assert all(p.grad is None for p in net.parameters())


# ---- one step: the update, the gradients it fills, the model --------------------------------------------
def test_a_step_is_adam_on_the_meta_gradient_and_fills_the_weighted_gradient():
    net = MLP(3)
    w = arml.make_weighting("autolambda", num_aux=3, lr=0.01, init=INIT, virtual_lr=0.4)
    assert isinstance(w, arml.AutoLambda) and not w.fixed_weights
    w.bind(model=net)
    lam = torch.tensor(INIT, dtype=F64, requires_grad=True)
    adam = torch.optim.Adam([lam], lr=0.01)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(1, 4):
        h = method_meta_gradient(w, net)
        lam.grad = h.clone()
        adam.step()
        before = snapshot(net)
        opt.zero_grad(set_to_none=True)
        main, aux = net.losses()
        used = w.backward(main, aux, net.shared(), closure=arml.stateless(net.losses, net))
        weights = w.state_dict()["weights"]
        torch.testing.assert_close(weights, lam.detach(), rtol=1e-12, atol=1e-15)
        assert torch.equal(used, weights.float()) and w.updates == step and w.history_steps()[-1] == step
        # the model is as it was, but for the gradient of the weighted loss at the weights it reports
        assert all(torch.equal(before[k], v) for k, v in snapshot(net).items())
        main, aux = net.losses()
        params = list(net.parameters())
        expected = flatten(torch.autograd.grad(main + (weights * aux).sum(), params), params)
        torch.testing.assert_close(flatten([p.grad for p in params], params), expected, rtol=1e-12, atol=1e-15)
        opt.step()


def test_batchnorm_statistics_see_only_the_training_forward():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh()).to(F64)
    heads = nn.ModuleList(nn.Linear(6, 1) for _ in range(3)).to(F64)
    model = nn.ModuleDict({"backbone": backbone, "heads": heads})
    x, y = torch.randn(16, 5, dtype=F64), torch.randn(3, 16, dtype=F64)

    def losses():
        f = backbone(x)
        out = [((h(f).squeeze(1) - t) ** 2).mean() for h, t in zip(heads, y)]
        return out[0], torch.stack(out[1:])

    w = arml.AutoLambda(2, init=1.0)
    w.bind(model=model)
    main, aux = losses()
    before = snapshot(model)
    w.backward(main, aux, list(backbone.parameters()), closure=arml.stateless(losses, model))
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())
    assert int(backbone[1].num_batches_tracked) == 1 and w.updates == 1


# ---- training -------------------------------------------------------------------------------------------
def run(w: arml.Weighting, net: MLP, steps: int, opt: torch.optim.Optimizer, losses=None) -> list[torch.Tensor]:
    losses = losses or net.losses
    after = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        main, aux = losses()
        w.backward(main, aux, net.shared(), closure=arml.stateless(losses, net))
        if w.step_model:
            opt.step()
        after.append(w.state_dict()["weights"])
    return after


def test_training_raises_a_helpful_task_and_lowers_a_harmful_one():
    """aux 0 is the main loss itself (its gradient helps), aux 1 its negative (its gradient hurts)."""
    net = MLP(1)
    losses = lambda: (lambda m, a: (m, torch.stack([m, -m])))(*net.losses())
    w = arml.make_weighting("autolambda", num_aux=2, lr=0.01)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    w.bind(model=net, optimizer=opt)
    start = float(net.losses()[0].detach())
    after = run(w, net, 20, opt, losses)
    for before, weights in zip([torch.full((2,), 0.1, dtype=F64)] + after, after):
        assert weights[0] > before[0] and weights[1] < before[1]
    assert float(net.losses()[0].detach()) < start and w.updates == 20 and w.skipped_updates == 0


def test_update_every_and_a_plain_loop_without_bind():
    net = MLP(3)
    w = arml.make_weighting("autolambda", num_aux=3, update_every=2, lr=0.01)
    run(w, net, 5, torch.optim.SGD(net.parameters(), lr=0.05))
    assert w.history_steps() == [0, 1, 3, 5] and w.steps == 5
    assert bool(torch.isfinite(w.history()).all()) and not torch.equal(w.weights, torch.full((3,), 0.1))


def test_state_dict_round_trip_continues_identically():
    def fresh(net):
        w = arml.make_weighting("autolambda", num_aux=3, lr=0.01)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        w.bind(model=net, optimizer=opt)
        return w, opt

    straight_net = MLP(3)
    straight, opt = fresh(straight_net)
    run(straight, straight_net, 8, opt)

    first_net = MLP(3)
    first, opt = fresh(first_net)
    run(first, first_net, 4, opt)
    resumed, resumed_net, opt = resume_through_checkpoint(first, first_net, opt, fresh)
    assert resumed.state_dict()["extra"]["adam_steps"] == 4
    run(resumed, resumed_net, 4, opt)

    a, b = straight.state_dict(), resumed.state_dict()
    assert torch.equal(a["weights"], b["weights"]) and torch.equal(a["history"], b["history"])
    assert (a["steps"], a["updates"], a["history_steps"]) == (b["steps"], b["updates"], b["history_steps"])
    assert all(torch.equal(a["extra"][k], b["extra"][k]) for k in ("adam_m", "adam_v"))
    assert a["updates"] == 8 and not torch.equal(a["weights"], torch.full((3,), 0.1, dtype=F64))


# ---- options ----------------------------------------------------------------------------------------------
def test_defaults_are_the_authors():
    w = arml.AutoLambda(4)
    assert w.weights.tolist() == pytest.approx([0.1] * 4) and w.lr == 1e-4 and w.fd_step == 0.01
    assert w.update_every == 1 and w.virtual_lr is None
    assert arml.AutoLambda(2, init=[1.0, -0.5]).state_dict()["weights"].tolist() == [1.0, -0.5]


def test_bad_options_and_a_missing_closure_are_refused():
    for bad in ({"lr": 0}, {"lr": -1e-4}, {"lr": math.nan}, {"lr": math.inf}, {"lr": True}, {"lr": "1e-4"},
                {"virtual_lr": 0.0}, {"virtual_lr": -0.1}, {"fd_step": 0}, {"fd_step": math.nan},
                {"update_every": 0}, {"update_every": 1.5}, {"update_every": True}, {"init": [1.0, 1.0]},
                {"init": [1.0, math.nan, 1.0]}, {"init": math.inf}, {"init": "0.1"}, {"init": None}):
        with pytest.raises(ValueError):
            arml.make_weighting("autolambda", num_aux=3, **bad)
    net = MLP(3)
    with pytest.raises(ValueError, match="closure"):
        arml.AutoLambda(3).backward(*net.losses(), net.shared())
