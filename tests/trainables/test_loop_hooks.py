"""The training loop honours the weighting's hooks without knowing its name: `bind` before training and
`step_model` after each backward (the ARML authors' protocol leaves the model alone on update steps)."""

from __future__ import annotations

import torch

import arml
import trainables
from trainables.config import resolve_config


def tiny(weighting: str, **options) -> dict:
    return dict(weighting=weighting, weighting_options=options, steps=6, eval_every=6, label_budget=20,
                aux_attributes=["is_0", "is_6"], model_options={"width": 8}, batch_size=8, aux_batch_size=16,
                max_eval_items=64, device="cpu")


def test_the_loop_skips_the_optimizer_step_when_the_weighting_says_so(monkeypatch):
    steps: list[int] = []
    original = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    trainables.fit(resolve_config("digits_mlc", **tiny("arml", protocol="authors", update_every=2)))
    assert len(steps) == 3            # steps 1, 3, 5 update the weights and leave the model alone
    steps.clear()
    trainables.fit(resolve_config("digits_mlc", **tiny("arml", update_every=2)))
    assert len(steps) == 6


def test_the_loop_binds_the_weighting(monkeypatch):
    seen: dict = {}
    original = arml.ARML.bind

    def recording(self, **kwargs):
        seen.update(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(arml.ARML, "bind", recording)
    trainables.fit(resolve_config("digits_mlc", **tiny("arml", langevin=True)))
    assert seen["total_steps"] == 6 and seen["num_train"] > 0
    assert isinstance(seen["optimizer"], torch.optim.Adam) and hasattr(seen["model"], "backbone")
