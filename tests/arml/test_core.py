"""The arml interface: gradients filled like loss.backward(), ARML's alpha gradient against an explicit
per-task reference, the projection, cadence, checkpoints and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import arml
from arml.gradients import flatten

K = 4


class Toy(nn.Module):
    """A conv net with BatchNorm and K + 1 heads, in float64 for exact comparisons."""

    def __init__(self, k: int = K, dtype=torch.float64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.heads = nn.ModuleList(nn.Linear(8, 3) for _ in range(k + 1))
        self.to(dtype)
        self.x = torch.randn(12, 3, 6, 6, dtype=dtype)
        self.ys = torch.randint(0, 3, (k + 1, 12))

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(self.x)
        out = [nn.functional.cross_entropy(h(f), y) for h, y in zip(self.heads, self.ys)]
        return out[0], torch.stack(out[1:])

    def shared(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())


def reference_alpha_grad(net: Toy, weights: torch.Tensor) -> torch.Tensor:
    """-2 [<g_k, g_main - sum_j a_j g_j>]_k from one explicit backward per task."""
    main, aux = net.losses()
    shared = net.shared()
    g_main = flatten(torch.autograd.grad(main, shared, retain_graph=True), shared)
    g = torch.stack([flatten(torch.autograd.grad(aux[k], shared, retain_graph=True, allow_unused=True), shared)
                     for k in range(aux.numel())])
    residual = g_main - (weights.double()[:, None] * g).sum(0)
    return -2.0 * (g @ residual)


def reference_grads(net: Toy, weights: torch.Tensor, main_weight: float = 1.0) -> list[torch.Tensor]:
    main, aux = net.losses()
    total = main_weight * main + (weights.to(aux.dtype) * aux).sum()
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(total, list(net.parameters()), allow_unused=True),
                            net.parameters())]


@pytest.mark.parametrize("use_closure", [False, True])
def test_alpha_gradient_matches_explicit_per_task_gradients(use_closure):
    net = Toy()
    init = [0.5, 1.5, 2.0, 0.0]
    w = arml.ARML(K, init=init)
    expected = reference_alpha_grad(net, torch.tensor(init))
    main, aux = net.losses()
    closure = arml.stateless(net.losses, net) if use_closure else None
    got = w.alpha_gradient(main, aux, net.shared(), closure, 1.0)
    assert torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected) < 1e-3


def test_alpha_gradient_in_float32_with_closure_is_close():
    net = Toy(dtype=torch.float32)
    w = arml.ARML(K)
    net64 = Toy()
    net64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    net64.x, net64.ys = net.x.double(), net.ys
    expected = reference_alpha_grad(net64, torch.ones(K))
    main, aux = net.losses()
    got = w.alpha_gradient(main, aux, net.shared(), arml.stateless(net.losses, net), 1.0)
    assert torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected) < 2e-2


@pytest.mark.parametrize("name,options,use_closure", [
    ("uniform", {}, False), ("fixed", {"weights": [0.0, 1.0, 2.0, 0.5]}, False), ("adaloss", {}, False),
    ("gradnorm", {}, False), ("cosinesim", {}, True), ("cosinesim", {}, False),
    ("cosinesim", {"mode": "cosine"}, False), ("olaux", {}, True), ("olaux", {}, False),
    ("arml", {}, True), ("arml", {}, False),
])
@pytest.mark.parametrize("main_weight", [1.0, 0.0])
def test_backward_fills_grad_like_loss_backward(name, options, use_closure, main_weight):
    net = Toy()
    w = arml.make_weighting(name, num_aux=K, **options)
    main, aux = net.losses()
    closure = arml.stateless(net.losses, net) if use_closure else None
    state = {k: v.clone() for k, v in net.state_dict().items()}
    used = w.backward(main, aux, net.shared(), closure=closure, main_weight=main_weight)
    got = [p.grad if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]
    net.load_state_dict(state)  # the reference forward must see the same BatchNorm state
    for g, ref in zip(got, reference_grads(net, used, main_weight)):
        torch.testing.assert_close(g, ref, rtol=1e-6, atol=1e-9)  # `used` is rounded to float32


def test_arml_update_is_the_projected_gradient_step():
    net = Toy()
    w = arml.ARML(K, lr=0.3, init=[1.0, 1.0, 1.5, 0.5])
    before = w.weights.double()
    expected = arml.project_simplex(before - 0.3 * reference_alpha_grad(net, before), float(K))
    main, aux = net.losses()
    w.backward(main, aux, net.shared())
    torch.testing.assert_close(w.weights.double(), expected.float().double(), rtol=1e-6, atol=1e-6)
    assert abs(float(w.weights.sum()) - K) < 1e-5 and bool((w.weights >= 0).all())


def test_closure_leaves_parameters_and_batchnorm_state_bit_identical():
    net = Toy()
    main, aux = net.losses()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    arml.ARML(K).backward(main, aux, net.shared(), closure=arml.stateless(net.losses, net))
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_projection_is_exact():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        v = torch.randn(7, generator=gen, dtype=torch.float64) * 3
        p = arml.project_simplex(v, 7.0)
        assert abs(float(p.sum()) - 7.0) < 1e-9 and bool((p >= 0).all())
        # optimality (KKT): p = max(v - theta, 0) for one theta
        support = p > 0
        theta = (v[support] - p[support]).mean()
        torch.testing.assert_close(p, torch.clamp(v - theta, min=0))
        # no random feasible point is closer
        q = arml.project_simplex(p + 0.1 * torch.randn(7, generator=gen, dtype=torch.float64), 7.0)
        assert (v - p).norm() <= (v - q).norm() + 1e-12
    # the official shift-then-clamp gives [5, 0, 1] (sum 6) here; the projection keeps the sum at K
    torch.testing.assert_close(arml.project_simplex(torch.tensor([5.0, -3.0, 1.0]), 3.0),
                               torch.tensor([3.0, 0.0, 0.0]))


def test_update_every_sets_the_cadence_and_history():
    net = Toy()
    w = arml.ARML(K, update_every=3)
    for _ in range(7):
        net.zero_grad()
        main, aux = net.losses()
        w.backward(main, aux, net.shared())
    assert w.updates == 3 and w.history_steps() == [0, 1, 4, 7]
    assert w.history().shape == (4, K)


def test_convergence_detection_freezes_weights_and_stops_noise():
    net = Toy()
    w = arml.ARML(K, lr=1e-9, converge_window=3, converge_tol=1e-6, langevin=True, langevin_lr=1e-4)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    w.attach_optimizer(opt)
    params_before = [p.detach().clone() for p in net.parameters()]
    for _ in range(3):
        opt.zero_grad()
        main, aux = net.losses()
        w.backward(main, aux, net.shared())
        opt.step()
    assert w.converged and w.updates == 3
    moved = sum(float((p.detach() - q).abs().sum()) for p, q in zip(net.parameters(), params_before))
    assert moved > 0  # Langevin noise was added while the weights were not yet converged
    frozen = [p.detach().clone() for p in net.parameters()]
    weights = w.weights
    opt.zero_grad()
    main, aux = net.losses()
    w.backward(main, aux, net.shared())
    opt.step()
    assert torch.equal(w.weights, weights) and w.updates == 3
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), frozen))  # lr 0 and no more noise


def test_langevin_noise_has_the_variance_of_eq_a9():
    p = nn.Parameter(torch.zeros(20000, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.01)
    w = arml.ARML(1, langevin=True, temperature=0.5)
    w.attach_optimizer(opt)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert abs(float(p.detach().std()) - (2 * 0.01 * 0.5) ** 0.5) < 0.005
    with pytest.raises(RuntimeError, match="attach_optimizer"):
        arml.ARML(1, langevin=True).backward(p.sum(), torch.stack([p.sum()]), [p])


def test_state_dict_round_trip():
    net = Toy()
    w = arml.ARML(K, lr=0.2)
    for _ in range(3):
        net.zero_grad()
        main, aux = net.losses()
        w.backward(main, aux, net.shared())
    again = arml.ARML(K, lr=0.2)
    again.load_state_dict(w.state_dict())
    assert torch.equal(again.weights, w.weights) and torch.equal(again.history(), w.history())
    assert again.steps == 3 and again.history_steps() == w.history_steps()
    with pytest.raises(ValueError, match="cannot be loaded"):
        arml.Uniform(K).load_state_dict(w.state_dict())


def test_bad_input_is_named():
    net = Toy()
    w = arml.ARML(K)
    main, aux = net.losses()
    with pytest.raises(ValueError, match="got 3 auxiliary losses"):
        w.backward(main, aux[:3], net.shared())
    with pytest.raises(ValueError, match="main_loss must be a scalar"):
        w.backward(aux, aux, net.shared())
    with pytest.raises(ValueError, match="shared_params is empty"):
        w.backward(main, aux, [])
    bad = aux.clone()
    bad[2] = float("nan")
    w.task_names[2] = "rotation"
    with pytest.raises(arml.NonFiniteLossError, match="rotation"):
        w.backward(main, bad, net.shared())
    with pytest.raises(arml.NonFiniteLossError, match="main"):
        w.backward(main * float("inf"), aux, net.shared())
    with pytest.raises(arml.UnknownNameError,
                       match="valid names: adaloss, arml, autolambda, cosinesim, fixed, gradnorm"):
        arml.make_weighting("armll", num_aux=2)
    with pytest.raises(ValueError, match="needs 4 weights"):
        arml.make_weighting("fixed", num_aux=4, weights=[1, 2])
    with pytest.raises(ValueError, match="num_aux"):
        arml.make_weighting("arml", num_aux=0)


def test_weights_never_become_nan():
    w = arml.ARML(3)
    w.update(torch.tensor([float("nan"), 0.0, 1.0], dtype=torch.float64))
    w.update(torch.tensor([float("inf"), 0.0, 1.0], dtype=torch.float64))
    assert torch.equal(w.weights, torch.ones(3)) and w.skipped_updates == 2
    w.update(torch.tensor([1e30, -1e30, 0.0], dtype=torch.float64))
    assert bool(torch.isfinite(w.weights).all()) and abs(float(w.weights.sum()) - 3) < 1e-4



def test_weights_are_copied_to_the_losses_device_once_per_change():
    """Fixed weights are copied to the losses' device and dtype once, not every step (a per-step copy to a GPU
    stalls the host); every change of the weights (an update, a loaded state) is used at the next step."""
    p = torch.ones(2, requires_grad=True)

    def step(weighting, scale):
        p.grad = None
        aux = p * torch.tensor(scale)                      # d aux_k / d p_k = scale_k
        used = weighting.backward((p * 0).sum(), aux, [p])
        return used, p.grad.clone()

    fixed = arml.make_weighting("fixed", num_aux=2, weights=[0.5, 2.0])
    first = fixed._weights_on(torch.device("cpu"), torch.float32)
    assert first.dtype == torch.float32 and first.tolist() == [0.5, 2.0]
    for _ in range(3):
        _, grad = step(fixed, [1.0, 1.0])
        assert grad.tolist() == [0.5, 2.0]
    assert fixed._weights_on(torch.device("cpu"), torch.float32) is first

    state = fixed.state_dict()
    state["weights"] = torch.tensor([3.0, 1.0], dtype=torch.float64)
    fixed.load_state_dict(state)
    assert step(fixed, [1.0, 1.0])[1].tolist() == [3.0, 1.0]

    adaloss = arml.make_weighting("adaloss", num_aux=2)      # moves its weights every step
    grads = []
    for scale in ([1.0, 4.0], [4.0, 1.0]):
        used, grad = step(adaloss, scale)
        assert torch.allclose(grad, used * torch.tensor(scale))
        grads.append(grad / torch.tensor(scale))
    # the weights moved, and each step used its own
    assert torch.allclose(grads[0], torch.tensor([1.0, 0.3])) and torch.allclose(grads[1], torch.tensor([0.3, 1.0]))
