"""Forward-mode differentiation (`directional = "jvp"`) on the paper's three models as `fit` builds them, on fake
files in the real formats, float32, one small batch: WRN-28-2 at 32 px (S4L, K = 2), ResNet-18 at 112 px (CelebA,
K = 39), ResNet-18 at 224 px (PACS, K = 3). ARML's alpha gradient (along its residual) and Auto-Lambda's
meta-gradient (along its d) within 1e-4 of the exact double backward, the model left bit for bit as it was.
Slow (about a minute per model on 2 CPUs): `make test-slow`. benchmarks/directional_accuracy.py measures the
central difference beside it (docs/performance.md)."""

from __future__ import annotations

import pytest
import torch
from paper_models import PAPER_MODELS, PaperBatch, paper_batch, write_paper_data

import arml

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4   # relative, float32


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("paper")
    write_paper_data(root)
    return str(root)


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def arml_alpha(batch: PaperBatch, directional: str) -> torch.Tensor:
    """ARML's alpha gradient on the batch; the model's parameters and buffers (BatchNorm statistics and
    counters included) are as the step's own forward pass left them: the gradient's passes change nothing."""
    model, losses = batch.built.model, batch.losses()
    for p in model.parameters():
        p.grad = None
    main, aux = losses()   # the step's forward (in training mode: it moves the BatchNorm statistics)
    state = {k: (v.detach().clone(), v._version) for k, v in model.state_dict(keep_vars=True).items()}
    weighting = arml.ARML(aux.numel(), directional=directional)
    alpha = weighting.alpha_gradient(main, aux, batch.built.shared, arml.stateless(losses, model),
                                     batch.built.setting.main_weight)
    for key, value in model.state_dict(keep_vars=True).items():
        assert torch.equal(value, state[key][0]) and value._version == state[key][1], (directional, key)
    return alpha


def autolambda_meta(batch: PaperBatch, directional: str) -> torch.Tensor:
    model, losses = batch.built.model, batch.losses()
    for p in model.parameters():
        p.grad = None
    main, aux = losses()
    weighting = arml.AutoLambda(aux.numel(), init=1.0, directional=directional)
    weighting.bind(model=model, optimizer=batch.built.optimizer)
    return weighting.meta_gradient(main, aux, batch.built.shared, arml.stateless(losses, model),
                                   batch.built.setting.main_weight)


@pytest.mark.parametrize("name", list(PAPER_MODELS))
def test_forward_mode_is_the_exact_value_on_the_paper_models(paper_root: str, name: str) -> None:
    batch = paper_batch(name, paper_root)
    model = batch.built.model
    assert model.training and len(batch.built.names) == {"S4L": 2, "Cel": 39, "PAC": 3}[name[:3]]

    exact = arml_alpha(batch, "double_backward")
    jvp = arml_alpha(batch, "jvp")   # and the state it found is the state it leaves (arml_alpha checks)
    assert float(exact.norm()) > 0 and rel(jvp, exact) < TOLERANCE, (name, rel(jvp, exact))

    exact = autolambda_meta(batch, "double_backward")
    jvp = autolambda_meta(batch, "jvp")
    assert float(exact.norm()) > 0 and rel(jvp, exact) < TOLERANCE, (name, rel(jvp, exact))
