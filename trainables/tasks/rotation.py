"""Rotation (Gidaris et al. 2018, S4L): predict which of 0/90/180/270 degrees an unlabeled image was turned."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.augment import rotate, to_device
from trainables.tasks.base import AuxTask, Context


class Rotation(AuxTask):
    """Each auxiliary image is turned by a random multiple of 90 degrees; a 4-way head names it."""

    settings = ("ssl",)

    def __init__(self, data, feature_dim, config) -> None:
        self.names = ["rotation"]
        self.feature_dim = feature_dim

    def heads(self) -> dict[str, nn.Module]:
        return {"rotation": nn.Linear(self.feature_dim, 4)}

    def prepare(self, batch, context: Context):
        images, _ = batch
        turns = to_device(torch.randint(0, 4, (images.shape[0],), generator=context.generator), images.device)
        return [rotate(images, turns)], turns

    def losses(self, heads, features, turns) -> torch.Tensor:
        return F.cross_entropy(heads["rotation"](features[0]), turns).reshape(1)
