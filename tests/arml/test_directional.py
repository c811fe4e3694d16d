"""`arml.gradients.directional_derivatives`: the three ways to get [<grad L_k, v>]_k ("jvp", "central",
"double_backward") against explicit per-task gradients, a model and a caller's graph left as they were, the
one error for an operation without a forward-mode rule, and the `directional` option of the four methods that
use it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import arml
from arml.gradients import directional_derivatives, flatten, forward_mode

F64 = torch.float64


class ConvNet(nn.Module):
    """Conv + BatchNorm (training mode) + ReLU + pooling, K + 1 heads: cross-entropy and BCE-with-logits
    losses, the kinds of operations of the paper's models."""

    def __init__(self, k: int = 3, dtype=F64, channels_last: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.heads = nn.ModuleList(nn.Linear(8, 3) for _ in range(k + 1))
        self.to(dtype)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.x = torch.randn(10, 3, 8, 8, dtype=dtype)
        self.ys = torch.randint(0, 3, (k + 1, 10))

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(self.x)
        out = [nn.functional.cross_entropy(h(f), y) for h, y in zip(self.heads[:-1], self.ys)]
        out.append(nn.functional.binary_cross_entropy_with_logits(self.heads[-1](f), (self.ys[-1:].T == 1).to(
            f.dtype).expand(-1, 3)))
        return out[0], torch.stack(out[1:])

    def shared(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())


def explicit(net: ConvNet, direction: torch.Tensor) -> torch.Tensor:
    """[<grad L_k, v>]_k from one backward per task."""
    _, aux = net.losses()
    shared = net.shared()
    return torch.stack([flatten(torch.autograd.grad(aux[k], shared, retain_graph=True), shared) @ direction
                        for k in range(aux.numel())])


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).norm() / want.double().norm())


def random_direction(net: ConvNet) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    count = sum(p.numel() for p in net.shared())
    return torch.randn(count, generator=gen, dtype=net.x.dtype)


@pytest.mark.parametrize("directional,tolerance", [("jvp", 1e-12), ("double_backward", 1e-12), ("central", 1e-6)])
def test_each_method_gives_the_inner_products(directional, tolerance) -> None:
    net = ConvNet()
    v = random_direction(net)
    want = explicit(net, v)
    _, aux = net.losses()
    got = directional_derivatives(aux, net.shared(), v, arml.stateless(net.losses, net), directional=directional)
    assert rel(got, want) < tolerance


def test_jvp_in_float32_is_exact_where_the_central_difference_is_not() -> None:
    net = ConvNet(dtype=torch.float32)
    v = random_direction(net)
    _, aux = net.losses()
    closure = arml.stateless(net.losses, net)
    want = directional_derivatives(aux, net.shared(), v, closure, directional="double_backward")
    assert rel(directional_derivatives(aux, net.shared(), v, closure), want) < 1e-5    # the default: jvp
    assert rel(directional_derivatives(aux, net.shared(), v, closure, directional="central"), want) > 1e-4


def test_forward_mode_also_gives_the_main_loss_and_works_with_channels_last_parameters() -> None:
    net = ConvNet(channels_last=True)
    v = random_direction(net)
    main, aux = net.losses()
    shared = net.shared()
    d_main, d_aux = forward_mode(shared, v, arml.stateless(net.losses, net))
    assert rel(d_main, flatten(torch.autograd.grad(main, shared, retain_graph=True), shared) @ v) < 1e-12
    assert rel(d_aux, explicit(net, v)) < 1e-12


def test_jvp_leaves_parameters_buffers_and_the_callers_graph_as_they_were() -> None:
    net = ConvNet()
    main, aux = net.losses()
    state = {k: (v.clone(), v._version) for k, v in net.state_dict(keep_vars=True).items()}
    entries = [(m, dict(m._parameters)) for m in net.modules()]
    directional_derivatives(aux, net.shared(), random_direction(net), arml.stateless(net.losses, net))
    for key, value in net.state_dict(keep_vars=True).items():
        assert torch.equal(value, state[key][0]) and value._version == state[key][1], key
    for module, before in entries:
        assert all(module._parameters[n] is p for n, p in before.items())
    (main + aux.sum()).backward()                           # the step's graph still works
    assert all(p.grad is not None for p in net.shared())


def test_parameters_the_losses_hold_themselves_are_seen_too() -> None:
    """A bare parameter outside any module, and one held by a module but used through the losses' own
    reference (never through the module): both get their tangent."""
    theta, owned = nn.Parameter(torch.randn(3, dtype=F64)), nn.Parameter(torch.randn(3, dtype=F64))
    holder = nn.Module()
    holder.owned = owned
    c = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], dtype=F64)

    def losses():
        return (theta * owned).sum(), c @ (theta * owned)

    v = torch.tensor([1.0, 0.0, -1.0, 2.0, 1.0, 0.5], dtype=F64)
    want = c @ (v[:3] * owned.detach() + theta.detach() * v[3:])     # d/dt c (theta + t v_1)(owned + t v_2)
    for closure in (arml.stateless(losses, holder), lambda: arml.stateless(losses)()):
        got = directional_derivatives(None, [theta, owned], v, closure)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


class Doubled(torch.autograd.Function):
    """A custom operation without a jvp (a forward-mode rule)."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class WithoutRule(ConvNet):
    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = Doubled.apply(self.backbone(self.x))
        out = [nn.functional.cross_entropy(h(f), y) for h, y in zip(self.heads, self.ys)]
        return out[0], torch.stack(out[1:])


def test_an_operation_without_a_forward_rule_is_one_clear_error_naming_it() -> None:
    net = WithoutRule()
    main, aux = net.losses()
    closure = arml.stateless(net.losses, net)
    with pytest.raises(arml.NoForwardRuleError, match=r"Doubled .*no forward-mode rule.*directional='central'.*"
                                                      r"directional='double_backward'"):
        arml.ARML(3).backward(main, aux, net.shared(), closure=closure)
    assert all(type(p) is nn.Parameter for m in net.modules() for p in m._parameters.values() if p is not None)
    for p in net.parameters():
        p.grad = None
    main, aux = net.losses()
    arml.ARML(3, directional="central").backward(main, aux, net.shared(), closure=closure)   # the way out
    assert all(p.grad is not None for p in net.shared())


def test_a_builtin_operation_without_a_forward_rule_is_named() -> None:
    weight = nn.Parameter(torch.randn(5, 3, dtype=F64))
    holder = nn.Module()
    holder.weight = weight

    def losses():
        bag = nn.functional.embedding_bag(torch.tensor([[0, 1], [2, 4]]), holder.weight)
        return bag.sum(), bag.sum(1)

    with pytest.raises(arml.NoForwardRuleError, match=r"_embedding_bag has no forward-mode rule"):
        directional_derivatives(None, [weight], torch.ones(15, dtype=F64), arml.stateless(losses, holder))


@pytest.mark.parametrize("name,extra", [("arml", {}), ("autolambda", {}), ("cosinesim", {}), ("olaux", {})])
def test_the_four_methods_take_the_option_and_refuse_bad_values(name, extra) -> None:
    for value in ("jvp", "central", "double_backward", None):
        assert arml.make_weighting(name, num_aux=2, directional=value, **extra).directional == value
    with pytest.raises(ValueError, match=r"directional must be one of 'jvp', 'central', 'double_backward'.*'jpv'"):
        arml.make_weighting(name, num_aux=2, directional="jpv", **extra)
    assert arml.WEIGHTINGS.get(name).recorded_defaults == {"directional": "jvp"}


@pytest.mark.parametrize("directional", ["jvp", "central"])
def test_asking_for_the_closure_without_giving_one_is_an_error(directional) -> None:
    net = ConvNet()
    main, aux = net.losses()
    with pytest.raises(ValueError, match=rf"directional='{directional}' re-evaluates the losses through the "
                                         "closure.*directional='double_backward'"):
        arml.ARML(3, directional=directional).backward(main, aux, net.shared())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", ["arml", "cosinesim", "olaux"])
def test_without_a_closure_the_default_is_the_exact_double_backward(name) -> None:
    net = ConvNet()
    main, aux = net.losses()
    arml.make_weighting(name, num_aux=3).backward(main, aux, net.shared())
    assert all(p.grad is not None for p in net.shared())


def test_arml_alpha_gradient_is_the_same_by_jvp_and_double_backward_with_a_closure() -> None:
    net = ConvNet()
    closure = arml.stateless(net.losses, net)
    grads = {}
    for directional in ("jvp", "double_backward"):
        main, aux = net.losses()
        grads[directional] = arml.ARML(3, directional=directional).alpha_gradient(main, aux, net.shared(),
                                                                                  closure, 1.0)
    assert rel(grads["jvp"], grads["double_backward"]) < 1e-12
