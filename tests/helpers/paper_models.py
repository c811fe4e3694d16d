"""The paper's three models on one small batch of fake files in the real formats, as `trainables.fit` builds them:
WRN-28-2 at 32 px (S4L on CIFAR-10, K = 2), ResNet-18 at 112 px (CelebA, K = 39) and ResNet-18 at 224 px (PACS,
K = 3). For the accuracy checks of the directional derivatives (tests/trainables/test_paper_directional.py,
benchmarks/directional_accuracy.py): the step's losses as a function of the parameters, in float32 or, on a
float64 copy of the model, in float64."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs

import trainables.loop as loop
from trainables.config import resolve_config
from trainables.streams import step_generator
from trainables.tasks import Context

CPU = torch.device("cpu")
Losses = Callable[[], tuple[torch.Tensor, torch.Tensor]]

# setting: (preset, overrides): the presets at the paper's resolutions, with small batches
PAPER_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "S4L WRN-28-2 32px": ("ssl_cifar10_paper", dict(label_budget=20, batch_size=4, aux_batch_size=4)),
    "CelebA ResNet-18 112px": ("mlc_celeba_paper", dict(label_fraction=0.5, batch_size=4, aux_batch_size=4)),
    "PACS ResNet-18 224px": ("dg_pacs_paper", dict(per_class=2, batch_size=4, aux_batch_size=4)),
}


def write_paper_data(root: str | os.PathLike) -> None:
    """Fake CIFAR-10, CelebA (178x218 JPEGs) and PACS (227x227) files, enough for the batches above."""
    write_fake_cifar10(root, n_train=100, n_test=20)
    write_fake_celeba(root, partition=(20, 6, 6))
    write_fake_pacs(root, per_class=3, size=227)


@dataclass
class PaperBatch:
    """One step's batch of a paper setting: the built model, tasks and weighting, and the step's inputs."""

    built: loop.Built
    groups: list[torch.Tensor]
    y_main: torch.Tensor
    prepared: list

    def losses(self, model: torch.nn.Module | None = None, dtype: torch.dtype = torch.float32) -> Losses:
        """The step's losses over `model` (default: the built one) with the inputs cast to `dtype`."""
        model = model if model is not None else self.built.model
        return loop._step_losses(model, self.built.setting, self.built.tasks, _cast(self.groups, dtype),
                                 self.y_main, _cast(self.prepared, dtype), self.built.config.aux_scale)

    def float64_model(self) -> torch.nn.Module:
        """A float64 copy of the model (parameters and buffers), for a float64 reference."""
        return copy.deepcopy(self.built.model).double()


def paper_batch(name: str, root: str, seed: int = 0, **overrides: Any) -> PaperBatch:
    """The model of PAPER_MODELS[name] as `fit` builds it (seeded), and its first step's batch."""
    preset, options = PAPER_MODELS[name]
    config = resolve_config(preset, data_root=str(root), device="cpu", num_workers=0, seed=seed,
                            **{**options, **overrides})
    torch.manual_seed(seed)
    built = loop.build(config, CPU)
    built.model.train()
    (x_main, y_main), aux_batch = built.setting.next_batches()
    teacher = built.teacher.model if built.teacher else None
    context = Context(step_generator(config.seed, 1, "augment/0"), teacher)
    x_main = built.augment(x_main, context.generator)
    aux_batch = built.setting.augment_aux(aux_batch, built.augment, context.generator)
    prepared = [task.prepare(aux_batch, context) for task in built.tasks]
    groups = [x_main] + [x for inputs, _ in prepared for x in inputs]
    return PaperBatch(built, groups, y_main, prepared)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value
