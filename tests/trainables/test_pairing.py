"""Paired comparisons rest on this: at the same seed every method sees the same split, label subset, validation
subset (`val_labels`), auxiliary data order and initial weights; only the weighting differs. A different seed
changes them."""

from __future__ import annotations

import pytest
import torch

import trainables.loop as loop
from trainables.config import resolve_config
from trainables.settings import SETTING_CLASSES

METHODS = (("uniform", {}), ("arml", {}), ("fixed", {"weights": [0.0, 2.0]}))
PRESETS = {
    "digits_ssl": dict(label_budget=20, val_labels=30),   # the validation draw is paired too
    "digits_mlc": dict(label_budget=20, aux_attributes=("is_0", "random_0")),
    "digits_dg": dict(per_class=2, aux_tasks=("source_domains",)),
}


def _flat(data) -> list[torch.Tensor]:
    """Every label tensor of a built data set (split membership and label subsets show up in them)."""
    out = []
    for value in vars(data).values():
        if hasattr(value, "targets"):
            out.append(value.targets.clone())
        elif isinstance(value, dict):
            out += [v.targets.clone() for v in value.values() if hasattr(v, "targets")]
    return out


def _batches_to_tensors(batches) -> list[torch.Tensor]:
    out = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            out.append(value.clone())
        elif isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(batches)
    return out


def observe(monkeypatch, preset: str, weighting: str, options: dict, seed: int) -> dict:
    """Trains 3 steps and returns what the run saw: labels, initial weights, the first batches."""
    seen: dict = {"batches": []}
    build, broadcast = loop.build_data, loop.broadcast_parameters

    def spy_build(name, request):
        data = build(name, request)
        seen["labels"] = _flat(data)
        return data

    def spy_broadcast(model):
        seen["init"] = {k: v.clone() for k, v in model.state_dict().items()}
        return broadcast(model)

    monkeypatch.setattr(loop, "build_data", spy_build)
    monkeypatch.setattr(loop, "broadcast_parameters", spy_broadcast)
    cls = SETTING_CLASSES.get(resolve_config(preset).setting)
    original = cls.next_batches

    def spy_next(self):
        batches = original(self)
        seen["batches"].append(_batches_to_tensors(batches))
        return batches

    monkeypatch.setattr(cls, "next_batches", spy_next)
    extra = dict(PRESETS[preset])
    if preset == "digits_dg":
        extra.pop("aux_tasks")
        options = {"weights": [0.0] * len(loop.aux_names(resolve_config(preset, **extra)))} \
            if weighting == "fixed" else options
    config = resolve_config(preset, steps=3, eval_every=3, seed=seed, weighting=weighting,
                            weighting_options=options, max_eval_items=64, **extra)
    loop.fit(config)
    monkeypatch.undo()
    return seen


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_same_seed_same_labels_init_and_data_order_for_every_method(monkeypatch, preset):
    runs = [observe(monkeypatch, preset, w, o, seed=3) for w, o in METHODS]
    first = runs[0]
    for other in runs[1:]:
        assert same(first["labels"], other["labels"])
        assert first["init"].keys() == other["init"].keys()
        assert all(torch.equal(first["init"][k], other["init"][k]) for k in first["init"])
        assert len(first["batches"]) == len(other["batches"]) == 3
        assert all(same(a, b) for a, b in zip(first["batches"], other["batches"]))


def test_another_seed_draws_other_labels_and_weights(monkeypatch):
    a = observe(monkeypatch, "digits_mlc", "uniform", {}, seed=0)
    b = observe(monkeypatch, "digits_mlc", "uniform", {}, seed=1)
    assert not same(a["labels"], b["labels"])
    assert any(not torch.equal(a["init"][k], b["init"][k]) for k in a["init"] if a["init"][k].is_floating_point())
