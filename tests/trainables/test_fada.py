"""FADA (dg_variant "fada"): the four pair groups, the discriminator, the options, and fits on digits and PACS."""

from __future__ import annotations

import math

import pytest
import torch
from fakedata import write_fake_pacs

from trainables import fada
from trainables.config import resolve_config
from trainables.errors import ConfigError
from trainables.loop import aux_names, fit

pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


def test_pairs_fall_in_their_groups() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (40,), generator=g)
    domains = torch.tensor([0] * 12 + [1] * 12 + [2] * 10 + [3] * 6)   # three sources, then the target (3)
    is_target = domains == 3
    first, second, groups = fada.sample_pairs(labels, domains, is_target, 50, g)
    assert groups.bincount(minlength=4).tolist() == [50, 50, 50, 50]
    same_class = labels[first] == labels[second]
    assert not is_target[first].any()                         # the first image is always a source image
    for group, want_class, target_second in ((0, True, False), (1, True, True), (2, False, False), (3, False, True)):
        at = groups == group
        assert (same_class[at] == want_class).all(), fada.GROUPS[group]
        assert (is_target[second[at]] == target_second).all(), fada.GROUPS[group]
        if not target_second:                                 # source-source pairs: one domain, two images
            assert (domains[first[at]] == domains[second[at]]).all() and (first[at] != second[at]).all()
    # every possible pair of a group can be drawn (no group is sampled from a subset)
    masks = fada.group_masks(labels, domains, is_target)
    assert masks[1].sum() == sum(int(((labels[~is_target] == c).sum()) * (labels[is_target] == c).sum())
                                 for c in range(3))


def test_missing_group_is_left_out() -> None:
    labels, domains = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1])   # target holds class 0 only
    first, second, groups = fada.sample_pairs(labels, domains, domains == 1, 5, torch.Generator())
    assert sorted(set(groups.tolist())) == [1, 2, 3]  # the two source images differ in class: no G1 pair
    assert (labels[first][groups == 1] == 0).all()


def test_dcd_learns_separable_groups() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(60) % 3
    domains = torch.tensor([0] * 20 + [1] * 20 + [2] * 20)
    is_target = domains == 2
    # embeddings: a class direction plus a domain offset: every group is recognisable from a pair
    features = torch.nn.functional.one_hot(labels, 3).float() * 2 + is_target[:, None].float() * 3
    features = torch.cat([features, torch.randn(60, 5, generator=g) * 0.1], 1)
    dcd = fada.DCD(features.shape[1], hidden=32)
    optimizer = torch.optim.Adam(dcd.parameters(), lr=0.01)
    losses = []
    for _ in range(150):
        first, second, groups = fada.sample_pairs(labels, domains, is_target, 32, g)
        loss, acc = fada.dcd_loss(dcd, features, first, second, groups)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 1.2 and sum(losses[-10:]) / 10 < 0.2 and float(acc) > 0.9
    # the confusion loss is what the embedding minimises: high when the DCD tells G2 from G1 and G4 from G3
    first, second, groups = fada.sample_pairs(labels, domains, is_target, 32, g)
    assert float(fada.confusion_loss(dcd, features, first, second, groups).detach()) > 2.0


def test_options_checked() -> None:
    defaults = fada.fada_options({}, 300)
    assert set(defaults) == set(fada.DEFAULTS) and 1 <= defaults["stage1_steps"] < 300
    filled = fada.fada_options({"adv_weight": 1, "pairs": 8}, 300)
    assert filled["adv_weight"] == 1.0 and filled["pairs"] == 8 and filled["stage1_steps"] >= 1
    with pytest.raises(ConfigError, match="fada_options: unknown key 'gamma'; valid keys: stage1_steps"):
        fada.fada_options({"gamma": 0.1}, 300)
    with pytest.raises(ConfigError, match="pairs must be an integer"):
        fada.fada_options({"pairs": 2.5}, 300)
    with pytest.raises(ConfigError, match="dg_variant must be one of baseline, fada, joint"):
        resolve_config("digits_dg", dg_variant="fadaa")         # what a study's dry run calls
    with pytest.raises(ConfigError, match="dg_variant must be one of baseline, fada, joint"):
        fit({"setting": "dg", "dg_variant": "fadaa", "target_domain": "inverted", "per_class": 1, "steps": 1,
             "aux_tasks": ["source_domains"], "device": "cpu"})
    with pytest.raises(ConfigError, match="fada_options: unknown key 'gamma'"):
        resolve_config("digits_dg", dg_variant="fada", fada_options={"gamma": 0.1})


def tiny(weighting: str = "uniform", **kw):
    return resolve_config("digits_dg", dg_variant="fada", weighting=weighting, steps=24, eval_every=12,
                          device="cpu", model_options={"width": 8}, aux_batch_size=32,
                          fada_options={"stage1_steps": 8, "dcd_steps": 10, "pairs": 8}, **kw)


@pytest.mark.parametrize("weighting", ["uniform", "arml"])
def test_fada_fit_on_digits_reports_metrics(weighting: str) -> None:
    config = tiny(weighting)
    reports = []
    final = fit(config, lambda m, checkpoint: reports.append(dict(m)))
    names = aux_names(config)
    assert [m["step"] for m in reports] == [12, 24] and final == reports[-1]
    for m in reports:
        assert all(math.isfinite(m[k]) for k in ("test_acc", "val_acc", "fada/dcd_loss", "fada/adv_loss"))
        assert m["fada/stage"] == 3.0 and 0 <= m["fada/dcd_acc"] <= 1 and m["fada/dcd_loss"] > 0
    weights = torch.tensor([final[f"weight/{n}"] for n in names])
    if weighting == "arml":   # FADA + ARML: the source losses are reweighted
        assert final["weight_updates"] == 24 and not torch.allclose(weights, torch.ones(3))
        assert float(weights.sum()) == pytest.approx(3.0)
    else:
        assert torch.equal(weights, torch.ones(3))


def test_fada_adversarial_term_changes_training_and_the_dcd_is_checkpointed() -> None:
    """adv_weight 0 vs 1: same data and seed, so only the confusion loss's gradient can make them differ."""
    runs = {}
    for adv in (0.0, 1.0):
        config = tiny().replace(fada_options={"stage1_steps": 4, "dcd_steps": 5, "pairs": 8, "adv_weight": adv},
                                steps=8, eval_every=8)
        states: list[dict] = []
        fit(config, lambda m, ck, into=states: into.append(torch.load(f"{ck}/state.pt", weights_only=True)))
        runs[adv] = states[-1]["model"]
    assert runs[0.0]["heads.dcd.net.0.weight"].shape == runs[1.0]["heads.dcd.net.0.weight"].shape
    assert not torch.equal(runs[0.0]["heads.classifier.weight"], runs[1.0]["heads.classifier.weight"])


@pytest.mark.slow
def test_fada_on_fake_pacs(tmp_path) -> None:
    write_fake_pacs(tmp_path, per_class=4, size=48)
    config = resolve_config(
        "dg_pacs_paper", data_root=str(tmp_path), model="small_cnn", image_size=32, per_class=2, steps=6,
        eval_every=3, batch_size=8, aux_batch_size=8, num_workers=0, device="cpu", lr_milestones=[],
        dg_variant="fada", weighting="arml", fada_options={"stage1_steps": 2, "dcd_steps": 3, "pairs": 4})
    final = fit(config)
    assert final["step"] == 6 and math.isfinite(final["fada/dcd_loss"]) and final["fada/stage"] == 3.0
    assert set(aux_names(config)) == {"photo", "cartoon", "sketch"}
