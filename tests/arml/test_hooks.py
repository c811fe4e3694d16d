"""The hooks a training loop uses instead of method names: `bind`, `step_model`, `fixed_weights`, and the
base class's initial weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import arml
from arml.base import last_shared_layer

F64 = torch.float64


class Net(nn.Module):
    """A backbone that declares its last shared layer (its first Linear, on purpose not the last matrix)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh()).to(F64)
        self.backbone.last_shared_parameters = lambda: [self.backbone[0].weight]
        self.heads = nn.ModuleList(nn.Linear(5, 1) for _ in range(3)).to(F64)
        self.x = torch.randn(16, 4, dtype=F64)
        self.y = torch.randn(3, 16, dtype=F64)

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(self.x)
        out = [((h(f).squeeze(1) - y) ** 2).mean() for h, y in zip(self.heads, self.y)]
        return out[0], torch.stack(out[1:])


def test_fixed_weights_is_declared_by_every_method():
    fixed = {name for name in arml.WEIGHTINGS.names() if arml.WEIGHTINGS.get(name).fixed_weights}
    assert fixed == {"uniform", "fixed"}


def test_the_default_hooks_change_nothing():
    w = arml.Uniform(2)
    w.bind(model=nn.Linear(2, 2), optimizer=None, num_train=10, total_steps=5)
    assert w.step_model and torch.equal(w.weights, torch.ones(2))


def test_initial_weights_are_row_zero_of_the_history_and_only_before_the_first_step():
    w = arml.Fixed(3, weights=[0.0, 2.0, 0.5])
    assert w.history().tolist() == [[0.0, 2.0, 0.5]] and w.history_steps() == [0] and w.updates == 0
    a = arml.ARML(2, init=[3.0, -1.0])
    assert a.history().tolist() == [[2.0, 0.0]] and a.history_steps() == [0] and a.updates == 0
    net = Net()
    a.backward(*net.losses(), list(net.backbone.parameters()))
    assert a.history().shape == (2, 2)
    with pytest.raises(RuntimeError, match="before the first step"):
        a._set_initial_weights([1.0, 1.0])


def test_last_shared_layer_rule():
    net = Net()
    assert last_shared_layer(net) == [net.backbone[0].weight]          # the backbone declares it
    net.last_shared_parameters = lambda: [net.backbone[2].bias]
    assert last_shared_layer(net) == [net.backbone[2].bias]            # the model itself comes first
    assert last_shared_layer(nn.Linear(2, 2)) is None and last_shared_layer(None) is None


def test_gradnorm_takes_its_layer_from_the_bound_model():
    net = Net()
    shared = list(net.backbone.parameters())
    bound, unbound = arml.GradNorm(2, lr=0.1), arml.GradNorm(2, lr=0.1)
    bound.bind(model=net)
    first = arml.GradNorm(2, lr=0.1, layer_params=[net.backbone[0].weight])
    last = arml.GradNorm(2, lr=0.1, layer_params=[net.backbone[2].weight])
    for w in (bound, unbound, first, last):
        net.zero_grad()
        w.backward(*net.losses(), shared)
    assert torch.equal(bound.weights, first.weights)         # the declared layer
    assert torch.equal(unbound.weights, last.weights)        # else the last matrix of the shared parameters
    assert not torch.equal(first.weights, last.weights)


def test_arml_bind_attaches_the_optimizer_and_sets_the_temperature():
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    w = arml.ARML(2, langevin=True)
    w.bind(model=net, optimizer=opt, num_train=250, total_steps=40)
    assert w.temperature == 1 / 250 and w.first_stage_steps == 10
    given = arml.ARML(2, langevin=True, temperature=0.5, first_stage_steps=7)
    given.bind(optimizer=opt, num_train=250, total_steps=40)
    assert given.temperature == 0.5 and given.first_stage_steps == 7
    plain = arml.ARML(2)
    plain.bind(optimizer=opt, num_train=250, total_steps=40)
    assert plain.temperature == 1.0 and plain.first_stage_steps is None and plain.converge_window == 0
    before = [p.detach().clone() for p in net.parameters()]
    opt.zero_grad()
    w.backward(*net.losses(), list(net.backbone.parameters()))
    opt.step()
    plain_step = [b - 0.1 * p.grad for b, p in zip(before, net.parameters())]
    noise = torch.cat([(p.detach() - q).reshape(-1) for p, q in zip(net.parameters(), plain_step)])
    assert float(noise.abs().max()) > 0   # the noise arrived through the bound optimizer
