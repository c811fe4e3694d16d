"""The gradient diagnostics (trainables/diagnostics.py): |g_k| / |g_main| and cos(g_k, g_main) as a direct autograd
computation gives them, nothing in the model changed by the probe (BatchNorm buffers, .grad, random streams), NaN
cosines for a zero main gradient, the same numbers on every data-parallel worker, and in `fit`: the metrics are
added at each evaluation while training stays bit for bit what it is without them."""

from __future__ import annotations

import datetime
import math
import os
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_nets import F64, MLP
from torch import nn

from trainables.config import resolve_config
from trainables.data.digits_attributes import digits_aux_set
from trainables.diagnostics import GradientDiagnostics, gradient_diagnostics
from trainables.errors import ConfigError
from trainables.loop import aux_names, fit

pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


def direct(net: MLP) -> tuple[torch.Tensor, torch.Tensor]:
    """Norm ratios and cosines from one autograd.grad per task, written out without the probe's helpers."""
    main, aux = net.losses()
    shared = net.shared()
    grads = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
             for loss in [main, *aux]]
    g_main = grads[0]
    ratio = torch.stack([g.norm() / g_main.norm() for g in grads[1:]])
    cos = torch.stack([(g @ g_main) / (g.norm() * g_main.norm()) for g in grads[1:]])
    return ratio.detach(), cos.detach()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probe_matches_a_direct_computation(seed: int) -> None:
    net = MLP(k=4, seed=seed)
    result = gradient_diagnostics(net.losses, net.shared(), net)
    ratio, cos = direct(net)
    assert result.norm_ratio.dtype == F64 and result.cosine.dtype == F64 and result.cosine.shape == (4,)
    torch.testing.assert_close(result.norm_ratio, ratio, rtol=1e-12, atol=0)
    torch.testing.assert_close(result.cosine, cos, rtol=0, atol=1e-12)
    assert cos.abs().max() < 0.999 and ratio.min() > 0       # a case with something to measure
    names = ["a", "b", "c", "d"]
    metrics = result.metrics(names)
    assert metrics["grad_norm_ratio/c"] == pytest.approx(float(ratio[2]), rel=1e-12)
    assert metrics["grad_cos/a"] == pytest.approx(float(cos[0]), abs=1e-12)
    assert set(metrics) == {f"grad_norm_ratio/{n}" for n in names} | {f"grad_cos/{n}" for n in names}
    with pytest.raises(ValueError, match="3 task names for 4"):
        result.metrics(names[:3])


def test_a_task_that_is_the_main_task_has_cosine_one_and_ratio_one() -> None:
    net = MLP(k=2)
    net.heads[1].load_state_dict(net.heads[0].state_dict())
    net.y[1] = net.y[0]
    result = gradient_diagnostics(net.losses, net.shared(), net)
    assert float(result.cosine[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(result.norm_ratio[0]) == pytest.approx(1.0, abs=1e-12)


class BNNet(MLP):
    """The tiny MLP with BatchNorm (running statistics, a counter) and dropout (draws from the global stream)."""

    def __init__(self, k: int) -> None:
        super().__init__(k)
        self.backbone = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.2),
                                      nn.Linear(8, 6), nn.Tanh()).to(F64)


def test_probe_leaves_buffers_grad_parameters_and_random_streams_untouched() -> None:
    net = BNNet(k=3).train()
    main, aux = net.losses()
    (main + aux.sum()).backward()                    # a step's backward: .grad filled, BatchNorm updated once
    net.heads[2].weight.grad = None                  # a parameter without a gradient stays without one
    buffers = {name: (b, b.clone(), b._version) for name, b in net.named_buffers()}
    grads = {name: (p.grad, None if p.grad is None else p.grad.clone(), None if p.grad is None else p.grad._version)
             for name, p in net.named_parameters()}
    params = {name: p.detach().clone() for name, p in net.named_parameters()}
    rng = torch.get_rng_state()

    result = gradient_diagnostics(net.losses, net.shared(), net)

    assert torch.isfinite(result.cosine).all() and torch.isfinite(result.norm_ratio).all()
    assert torch.equal(torch.get_rng_state(), rng), "the probe drew from the global random stream"
    for name, b in net.named_buffers():
        original, value, version = buffers[name]
        assert b is original and torch.equal(b, value) and b._version == version, name
    assert int(net.backbone[1].num_batches_tracked) == 1
    for name, p in net.named_parameters():
        original, value, version = grads[name]
        assert p.grad is original, name
        if value is not None:
            assert torch.equal(p.grad, value) and p.grad._version == version, name
        assert torch.equal(p.detach(), params[name]), name


def test_zero_main_gradient_gives_nan_cosines_not_an_error() -> None:
    net = MLP(k=3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        main, aux = net.losses()
        aux = aux.clone()
        aux[2] = aux[2] * 0.0                         # a task with a zero gradient too
        return (net.heads[0](torch.zeros(1, 6, dtype=F64)) ** 2).sum(), aux  # main: no path to the backbone

    result = gradient_diagnostics(losses, net.shared(), net)
    assert torch.isnan(result.cosine).all()
    assert torch.isinf(result.norm_ratio[:2]).all() and torch.isnan(result.norm_ratio[2])
    metrics = result.metrics(["a", "b", "c"])
    assert math.isnan(metrics["grad_cos/a"]) and math.isinf(metrics["grad_norm_ratio/a"])


def test_no_shared_parameters_and_no_auxiliary_loss() -> None:
    net = MLP(k=2)
    assert torch.isnan(gradient_diagnostics(net.losses, [], net).cosine).all()
    empty = gradient_diagnostics(lambda: (net.losses()[0], torch.zeros(0, dtype=F64)), net.shared(), net)
    assert empty.cosine.shape == (0,) and empty.metrics([]) == {}


# --- data parallelism: two gloo workers on halves of one batch --------------------------------------------


def halves_probe(rank: int, world: int) -> GradientDiagnostics:
    """The probe on this worker's half of the tiny net's batch (the whole batch on one process)."""
    net = MLP(k=3)
    share = slice(rank * 24 // world, (rank + 1) * 24 // world)
    net.x, net.y = net.x[share], net.y[:, share]
    return gradient_diagnostics(net.losses, net.shared(), net)


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        result = halves_probe(rank, world)
        torch.save({"ratio": result.norm_ratio, "cos": result.cosine}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_workers_report_the_numbers_of_the_averaged_gradients(tmp_path) -> None:
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(results[0]["ratio"], results[1]["ratio"]) and torch.equal(results[0]["cos"], results[1]["cos"])
    whole = halves_probe(0, 1)                        # mean of the halves' gradients = the whole batch's gradient
    torch.testing.assert_close(results[0]["ratio"], whole.norm_ratio, rtol=1e-10, atol=0)
    torch.testing.assert_close(results[0]["cos"], whole.cosine, rtol=0, atol=1e-10)
    alone = halves_probe(0, 2)                        # and not one worker's own half
    assert not torch.allclose(results[0]["cos"], alone.cosine, rtol=0, atol=1e-6)


# --- in the training loop ------------------------------------------------------------------------------------


def run(config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """fit(config); every report's metrics and the checkpoint it came with (loaded)."""
    metrics, states = [], []

    def report(m: dict[str, Any], checkpoint: str | None) -> None:
        metrics.append(dict(m))
        states.append(torch.load(os.path.join(checkpoint, "state.pt"), map_location="cpu", weights_only=True))

    fit(config, report)
    return metrics, states


def same(a: Any, b: Any) -> bool:
    """Exact equality of nested checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("preset,extra", [
    ("digits_mlc", {"aux_attributes": list(digits_aux_set(6))}),
    ("digits_ssl", {}),                               # EMA teacher, random rotations and augmentations
])
def test_fit_with_diagnostics_trains_bit_identically_and_adds_the_metrics(preset: str, extra: dict) -> None:
    # the probe runs at step 5, and training goes on to step 10: a change it made would show in the end state
    config = resolve_config(preset, steps=10, eval_every=5, device="cpu", weighting="arml", batch_size=16,
                            aux_batch_size=32, **extra)
    assert config.diagnostics is False
    plain, plain_states = run(config)
    probed, probed_states = run(config.replace(diagnostics=True))
    names = aux_names(config)
    added = {f"grad_norm_ratio/{n}" for n in names} | {f"grad_cos/{n}" for n in names}
    assert [m["step"] for m in probed] == [5, 10]
    for a, b, state_a, state_b in zip(plain, probed, plain_states, probed_states):
        assert set(b) == set(a) | added and not set(a) & added
        assert all(math.isfinite(b[key]) and b[key] >= 0 for key in added if key.startswith("grad_norm_ratio/"))
        assert all(-1 <= b[key] <= 1 for key in added if key.startswith("grad_cos/"))
        assert {k: v for k, v in a.items() if k != "steps_per_s"} == \
            {k: v for k, v in b.items() if k not in added and k != "steps_per_s"}
        state_b = dict(state_b, config=dict(state_b["config"], diagnostics=False))
        for key in state_a:
            assert same(state_a[key], state_b[key]), key
    assert len({round(probed[-1][key], 6) for key in added}) > 2   # distinct numbers, not a constant


def test_the_config_field() -> None:
    assert resolve_config("digits_mlc", diagnostics=True).diagnostics is True
    with pytest.raises(ConfigError, match="diagnostics must be true or false"):
        resolve_config("digits_mlc", diagnostics="yes")
