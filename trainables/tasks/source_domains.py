"""Source domains (domain generalization): one classification loss per source domain, shared classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.tasks.base import AuxTask, Context


class SourceDomains(AuxTask):
    """The auxiliary batch holds one batch per source domain; each gives one cross-entropy loss through the
    classifier head that the target domain (the main task) uses too."""

    settings = ("dg",)

    def __init__(self, data, feature_dim, config) -> None:
        self.names = list(data.sources)

    def prepare(self, batch, context: Context):
        return [batch[name][0] for name in self.names], [batch[name][1] for name in self.names]

    def losses(self, heads, features, labels) -> torch.Tensor:
        return torch.stack([F.cross_entropy(heads["classifier"](f).float(), y) for f, y in zip(features, labels)])
