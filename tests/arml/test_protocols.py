"""`protocol="authors"` (the ARML authors' code's choices), each switch against the default, and AdaLoss's
bounded weights."""

from __future__ import annotations

import pytest
import torch
from tiny_nets import F64, MLP
from torch import nn

import arml
from arml.gradients import flatten
from arml.projection import shift_then_clamp


def step(w: arml.Weighting, net: MLP, losses=None) -> None:
    net.zero_grad()
    w.backward(*(losses or net.losses)(), net.shared())


# ---- ARML ---------------------------------------------------------------------------------------------------
def test_arml_authors_cadence_and_model_steps():
    net = MLP(2)
    w, paper = arml.ARML(2, protocol="authors"), arml.ARML(2)
    stepped = []
    for _ in range(41):
        step(w, net)
        step(paper, net)
        stepped.append(w.step_model)
        assert paper.step_model
    assert w.update_every == 20 and w.history_steps() == [0, 1, 21, 41]
    assert [i + 1 for i, s in enumerate(stepped) if not s] == [1, 21, 41]
    assert arml.ARML(2, protocol="authors", update_every=5).update_every == 5


def test_arml_authors_projection_is_shift_then_clamp():
    torch.testing.assert_close(shift_then_clamp(torch.tensor([5.0, -3.0, 1.0]), 3.0), torch.tensor([5.0, 0.0, 1.0]))
    torch.testing.assert_close(shift_then_clamp(torch.tensor([2.0, -1.0, 5.0]), 3.0), torch.tensor([1.0, 0.0, 4.0]))
    assert arml.ARML(3, protocol="authors", init=[5.0, -3.0, 1.0]).weights.tolist() == [5.0, 0.0, 1.0]
    w = arml.ARML(2, lr=3.0, protocol="authors")
    w.update(torch.tensor([1.0, -1.0], dtype=F64))            # 1 - 3, 1 + 3: shift 0, clamp
    assert w.weights.tolist() == [0.0, 4.0]
    p = arml.ARML(2, lr=3.0)
    p.update(torch.tensor([1.0, -1.0], dtype=F64))
    assert p.weights.tolist() == [0.0, 2.0]                   # the exact projection keeps the sum at K


def test_unknown_protocol_is_refused_by_every_method():
    for name in ("arml", "adaloss", "gradnorm", "cosinesim", "olaux"):
        with pytest.raises(ValueError, match="protocol must be one of 'paper', 'authors'"):
            arml.make_weighting(name, num_aux=2, protocol="author")


# ---- AdaLoss ------------------------------------------------------------------------------------------------
def adaloss_weights(rule: str | None, losses: list[float], **options) -> list[float]:
    w = arml.AdaLoss(len(losses), rule=rule, **options)
    theta = nn.Parameter(torch.ones(1, dtype=F64))
    aux = torch.tensor(losses, dtype=F64) * theta
    w.backward(theta.sum(), aux, [theta])
    return w.state_dict()["weights"].tolist()


@pytest.mark.parametrize("tiny", [1e-3, 1e-9, 0.0])
def test_adaloss_weights_stay_bounded_as_a_loss_goes_to_zero(tiny):
    maxed = adaloss_weights(None, [tiny, 0.5, 2.0, 50.0])
    assert maxed[0] == 1.0 and all(0.3 <= x <= 1.0 for x in maxed)
    assert maxed[3] == 0.3                                    # floored
    offset = adaloss_weights("offset", [tiny, 0.5, 1.0, 2.0])
    assert offset[2] == 1.0 and 1.99 < offset[0] <= 2.0 and abs(offset[3] - 2 / 3) < 1e-12
    assert adaloss_weights("inverse", [tiny, 1.0])[0] > 900   # the authors' rule: unbounded
    assert adaloss_weights(None, [tiny, 1.0], protocol="authors") == adaloss_weights("inverse", [tiny, 1.0])


def test_adaloss_max_rule_is_the_inverse_normalised_by_its_maximum():
    got = adaloss_weights(None, [0.4, 0.8, 1.0], floor=0.1)
    torch.testing.assert_close(torch.tensor(got, dtype=F64), torch.tensor([1.0, 0.5, 0.4], dtype=F64),
                               rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="rule"):
        arml.AdaLoss(2, rule="log")


# ---- GradNorm, CosineSim, OL_AUX ------------------------------------------------------------------------------
def test_gradnorm_authors_differentiates_the_target_and_renormalises_before_the_clamp():
    net = MLP(3)
    layer = [net.backbone[2].weight]
    main, aux = net.losses()
    norms = torch.stack([flatten(torch.autograd.grad(aux[k], layer, retain_graph=True), layer).norm()
                         for k in range(3)])
    w = arml.GradNorm(3, lr=0.5, protocol="authors")
    assert w.asymmetry == 1.0 and arml.GradNorm(3).asymmetry == 1.5
    step(w, net)
    # first step: r_k = 1, target mean(G); d/dw_k sum_j |w_j G_j - mean(w G)| = sign_k G_k - sum_j sign_j G_k / K
    sign = torch.sign(norms - norms.mean())
    new = torch.ones(3, dtype=F64) - 0.5 * (sign * norms - sign.sum() * norms / 3)
    expected = (new * 3 / new.sum()).clamp(min=0)
    torch.testing.assert_close(w.state_dict()["weights"], expected.detach())


def test_cosinesim_authors_uses_one_layer_and_freezes():
    """On the last matrix the auxiliary gradient opposes the main one, over all shared parameters it agrees."""
    theta_a = nn.Parameter(torch.zeros(3, dtype=F64))
    theta_b = nn.Parameter(torch.zeros(3, 2, dtype=F64))
    holder = nn.Module()
    holder.a, holder.b = theta_a, theta_b
    ones = torch.ones(3, 2, dtype=F64)

    def losses():
        main = 10 * theta_a.sum() + (theta_b * ones).sum()
        return main, torch.stack([10 * theta_a.sum() - (theta_b * ones).sum()])

    paper = arml.CosineSim(1)
    authors = arml.CosineSim(1, protocol="authors", freeze_after=2)
    for _ in range(4):
        for w in (paper, authors):
            holder.zero_grad()
            w.backward(*losses(), [theta_a, theta_b], closure=arml.stateless(losses, holder))
    assert paper.weights.tolist() == [1.0] and authors.weights.tolist() == [0.0]
    assert authors.updates == 2 and paper.updates == 4
    assert arml.CosineSim(1, protocol="authors").freeze_after == 50_000 and paper.freeze_after is None


def test_olaux_authors_updates_every_step():
    assert arml.OLAux(2, protocol="authors").horizon == 1 and arml.OLAux(2).horizon == 5
    net = MLP(2)
    w = arml.OLAux(2, protocol="authors")
    for _ in range(3):
        step(w, net)
    assert w.history_steps() == [0, 1, 2, 3]
