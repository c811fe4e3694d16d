"""The paper's three settings: where the main task's labels and the auxiliary batches come from, the main
loss, and how the main task is evaluated (validation and test accuracy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from arml.registry import Registry
from trainables.config import TrainConfig
from trainables.data.base import DGData, ImageSet, MLCData, SSLData
from trainables.dg_variants import DG_VARIANTS
from trainables.errors import ConfigError
from trainables.streams import BatchStream, iterate_once

# File-based training sets (CelebA, PACS) are decoded once and kept on a GPU (uint8) when all of a run's
# streams together take at most this share of its memory: the CPU loader then decodes each image once
# instead of once per epoch (it cannot keep up with a GPU). 0 turns this off.
CACHE_FRACTION = 0.1


class Setting:
    """Batches for one step, the main loss, and evaluation of the main task."""

    main_head = "main"
    shared_heads: tuple[str, ...] = ()       # heads every task uses (counted as shared parameters)

    def __init__(self, data: Any, config: TrainConfig, device: torch.device, start: dict[str, int],
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.config, self.device = data, config, device
        self.rank, self.world = rank, world
        self.streams: dict[str, BatchStream] = {}
        self.start = start
        self._cache_bytes = 0

    def _stream(self, name: str, images: ImageSet, batch_size: int, seed_offset: int) -> None:
        self.streams[name] = BatchStream(
            images, batch_size * self.world, self.config.seed * 1000 + seed_offset, self.device,
            self.config.num_workers, self.start.get(name, 0), self.rank, self.world, self._cache(images))

    def _cache(self, images: ImageSet) -> bool:
        """Whether to keep this file-based set's decoded images on the GPU (see CACHE_FRACTION)."""
        if images.in_memory or self.device.type != "cuda" or CACHE_FRACTION <= 0:
            return False
        c, h, w = self.data.info.image_shape
        self._cache_bytes += len(images) * c * h * w
        return self._cache_bytes <= CACHE_FRACTION * torch.cuda.get_device_properties(self.device).total_memory

    def stream_state(self) -> dict[str, int]:
        return {name: s.given for name, s in self.streams.items()}

    @property
    def aux_batch_size(self) -> int:
        return self.config.aux_batch_size or self.config.batch_size

    def heads(self, feature_dim: int) -> dict[str, nn.Module]:
        raise NotImplementedError

    def next_batches(self) -> tuple[tuple[torch.Tensor, torch.Tensor], Any]:
        """(main images, main targets), and the auxiliary batch in the form the setting's tasks take."""
        raise NotImplementedError

    def augment_aux(self, batch: Any, augment: Callable, generator: torch.Generator) -> Any:
        """The data set's train-time augmentation applied to the auxiliary batch's images."""
        images, targets = batch
        return augment(images, generator), targets

    def main_loss(self, heads: nn.ModuleDict, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def main_weight(self) -> float:
        """The main loss's weight in the backward pass (0: the main task only steers the weighting)."""
        return 1.0

    def after_backward(self, model: nn.Module, step: int, main_batch: tuple[torch.Tensor, torch.Tensor],
                       aux_batch: Any) -> None:
        """Adds gradients of the setting's own extra losses (none by default) before the optimizer step."""

    def extra_metrics(self) -> dict[str, float]:
        """The setting's own metrics, reported at every evaluation (none by default)."""
        return {}

    def correct(self, heads: nn.ModuleDict, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def eval_sets(self) -> dict[str, list[ImageSet]]:
        raise NotImplementedError

    def num_train_images(self) -> int:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> tuple[int, int]:
        """(correct, total) of the main task on `split`, this worker's shard."""
        correct, total = torch.zeros((), dtype=torch.long, device=self.device), 0
        for images in self.eval_sets()[split]:
            for x, y in iterate_once(images, self.config.eval_batch_size, self.device, self.config.num_workers,
                                     self.config.max_eval_items, self.rank, self.world):
                if self.config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                correct += self.correct(model.heads, model.features(x), y).sum()
                total += int(y.shape[0])
        return int(correct), total


SETTING_CLASSES: Registry[type[Setting]] = Registry("setting")   # one class per name in config.SETTINGS


@SETTING_CLASSES.register("ssl")
class SemiSupervised(Setting):
    """A few labeled images (the main task, cross-entropy) and unlabeled images for the auxiliary tasks."""

    def __init__(self, data: SSLData, config, device, start, rank=0, world=1) -> None:
        super().__init__(data, config, device, start, rank, world)
        self._stream("labeled", data.labeled, config.batch_size, 1)
        self._stream("unlabeled", data.unlabeled, self.aux_batch_size, 2)

    def heads(self, feature_dim):
        return {"main": nn.Linear(feature_dim, self.data.info.num_classes)}

    def next_batches(self):
        return self.streams["labeled"].next(), self.streams["unlabeled"].next()

    def main_loss(self, heads, features, targets):
        return F.cross_entropy(heads["main"](features).float(), targets)

    def correct(self, heads, features, targets):
        return heads["main"](features).argmax(1) == targets

    def eval_sets(self):
        return {"val": [self.data.val], "test": [self.data.test]}

    def num_train_images(self) -> int:
        return len(self.data.unlabeled) + len(self.data.labeled)


@SETTING_CLASSES.register("mlc")
class MultiLabel(Setting):
    """The main attribute (binary, logistic loss) labeled on a few images; auxiliary attributes on all."""

    def __init__(self, data: MLCData, config, device, start, rank=0, world=1) -> None:
        super().__init__(data, config, device, start, rank, world)
        labeled = torch.nonzero(data.train.targets[:, 0] >= 0).flatten()
        if len(labeled) == 0:
            raise ConfigError("mlc: no training image has the main label; raise label_budget or label_fraction")
        self._stream("labeled", data.train.subset(labeled), config.batch_size, 1)
        self._stream("all", data.train, self.aux_batch_size, 2)

    def heads(self, feature_dim):
        return {"main": nn.Linear(feature_dim, 1)}

    def next_batches(self):
        x, y = self.streams["labeled"].next()
        return (x, y[:, 0]), self.streams["all"].next()

    def main_loss(self, heads, features, targets):
        return F.binary_cross_entropy_with_logits(heads["main"](features).float().squeeze(1), targets.float())

    def correct(self, heads, features, targets):
        return (heads["main"](features).squeeze(1) > 0).long() == targets[:, 0]

    def eval_sets(self):
        return {"val": [self.data.val], "test": [self.data.test]}

    def num_train_images(self) -> int:
        return len(self.data.train)


@SETTING_CLASSES.register("dg")
class DomainGeneralization(Setting):
    """Source domains are the auxiliary tasks; N_m labeled target images per class are the main task.
    Validation: the source domains' held-out parts (no target labels; `val_labels` draws that many of their
    labeled images, see trainables/data/pacs.py); test: the whole target domain.
    How the two are combined is the `dg_variant` (trainables/dg_variants.py)."""

    main_head = "classifier"
    shared_heads = ("classifier",)

    def __init__(self, data: DGData, config, device, start, rank=0, world=1) -> None:
        super().__init__(data, config, device, start, rank, world)
        self.variant = DG_VARIANTS.get(config.dg_variant)(self)
        self._stream("target", data.target_labeled, config.batch_size, 1)
        for i, (name, images) in enumerate(data.sources.items()):
            self._stream(f"source:{name}", images, self.aux_batch_size, 10 + i)

    def heads(self, feature_dim):
        return {"classifier": nn.Linear(feature_dim, self.data.info.num_classes), **self.variant.heads(feature_dim)}

    @property
    def main_weight(self) -> float:
        return self.variant.main_weight

    def after_backward(self, model, step, main_batch, aux_batch) -> None:
        self.variant.after_backward(model, step, main_batch, aux_batch)

    def extra_metrics(self) -> dict[str, float]:
        return self.variant.metrics()

    def next_batches(self):
        sources = {name: self.streams[f"source:{name}"].next() for name in self.data.sources}
        return self.streams["target"].next(), sources

    def augment_aux(self, batch, augment, generator):
        return {name: (augment(x, generator), y) for name, (x, y) in batch.items()}

    def main_loss(self, heads, features, targets):
        return F.cross_entropy(heads["classifier"](features).float(), targets)

    def correct(self, heads, features, targets):
        return heads["classifier"](features).argmax(1) == targets

    def eval_sets(self):
        return {"val": list(self.data.source_val.values()), "test": [self.data.target_test]}

    def num_train_images(self) -> int:
        return sum(len(s) for s in self.data.sources.values())
