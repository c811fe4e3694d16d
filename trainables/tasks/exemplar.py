"""Exemplar-MT (S4L with a mean teacher, Appendix B.1): features of an augmented image (flip, Gaussian noise,
Cutout) are pulled towards the time-averaged model's features of the original image (cosine similarity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.augment import cutout, flip, gaussian_noise
from trainables.tasks.base import AuxTask, Context


class ExemplarMT(AuxTask):
    """loss = 1 - mean cos(head(f(aug(x))), head_ema(f_ema(x))); the teacher is the EMA model."""

    settings = ("ssl",)
    needs_teacher = True

    def __init__(self, data, feature_dim, config) -> None:
        self.names = ["exemplar_mt"]
        self.feature_dim = feature_dim

    def heads(self) -> dict[str, nn.Module]:
        return {"exemplar": nn.Linear(self.feature_dim, self.feature_dim)}

    def prepare(self, batch, context: Context):
        images, _ = batch
        augmented = cutout(gaussian_noise(flip(images, context.generator), context.generator), context.generator)
        with torch.no_grad():
            teacher = context.teacher
            target = teacher.heads["exemplar"](teacher.features(images)).float()
        return [augmented], target

    def losses(self, heads, features, target) -> torch.Tensor:
        student = heads["exemplar"](features[0])
        return (1.0 - F.cosine_similarity(student.float(), target, dim=1).mean()).reshape(1)
