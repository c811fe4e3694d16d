"""Attributes (multi-label, CelebA-style): one binary logistic loss per auxiliary attribute."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.tasks.base import AuxTask, Context


class Attributes(AuxTask):
    """A linear head with one logit per auxiliary attribute; K losses, one per attribute."""

    settings = ("mlc",)

    def __init__(self, data, feature_dim, config) -> None:
        self.names = list(data.aux_names)
        self.feature_dim = feature_dim

    def heads(self) -> dict[str, nn.Module]:
        return {"attributes": nn.Linear(self.feature_dim, len(self.names))}

    def prepare(self, batch, context: Context):
        images, targets = batch          # targets [B, 1 + K]: column 0 the main attribute
        return [images], targets[:, 1:].float()

    def losses(self, heads, features, targets) -> torch.Tensor:
        logits = heads["attributes"](features[0]).float()
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(0)
