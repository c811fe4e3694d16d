"""FADA (Motiian et al., NeurIPS 2017, "Few-Shot Adversarial Domain Adaptation") as `dg_variant = "fada"`.

The backbone is FADA's embedding g, the shared classifier head its h. A domain-class discriminator
(DCD) reads pairs of embeddings [g(a), g(b)] and names their group:
  G1 same class, same domain (source-source)      G2 same class, different domain (source-target)
  G3 other class, same domain (source-source)     G4 other class, different domain (source-target)
Stage 1 (`stage1_steps` training steps): joint training of g, h on the source domains and the few target
labels (the losses the weighting method combines). Stage 2: `dcd_steps` updates of the DCD alone, g
frozen. Stage 3 (the remaining steps): each step adds to the weighted classification losses
`adv_weight` x the confusion loss (the DCD should take G2 pairs for G1 and G4 pairs for G3), then
updates the DCD on all four groups (`dcd_updates` times, embeddings detached). With weighting
"uniform" this is FADA; with "arml" the source domains' losses are reweighted with the target labels
(FADA + ARML). Options: `TrainConfig.fada_options`, keys and defaults in `DEFAULTS`.
The DCD is a head of the model ("dcd"), so checkpoints hold it; its own Adam moments restart on resume.
Stage 1 here trains on the source losses and the target labels together (FADA's stage 1 uses the sources
only), so that FADA and the other variants share their first steps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.dg_variants import DGVariant
from trainables.distributed import average_gradients
from trainables.errors import ConfigError
from trainables.streams import step_generator

GROUPS = ("G1", "G2", "G3", "G4")
# key -> (default, meaning); stage1_steps -1: a third of the run's steps
DEFAULTS: dict[str, tuple[Any, str]] = {
    "stage1_steps": (-1, "training steps of stage 1 (joint training) before the adversarial term; -1: steps // 3"),
    "dcd_steps": (200, "stage 2: DCD updates with the embedding frozen, on fresh batches"),
    "adv_weight": (0.1, "weight of the confusion loss on the embedding in stage 3 (FADA's gamma)"),
    "dcd_hidden": (64, "width of the DCD's two hidden layers"),
    "dcd_lr": (0.001, "Adam learning rate of the DCD"),
    "dcd_updates": (1, "DCD updates after each stage-3 step"),
    "pairs": (32, "pairs drawn per group at each update"),
}


def fada_options(options: dict[str, Any], steps: int) -> dict[str, Any]:
    """`options` checked against `DEFAULTS` (names and types) with the defaults filled in."""
    out = {}
    for key, value in options.items():
        if key not in DEFAULTS:
            raise ConfigError(f"fada_options: unknown key {key!r}; valid keys: {', '.join(DEFAULTS)}")
        default = DEFAULTS[key][0]
        wanted = float if isinstance(default, float) else int
        if isinstance(value, bool) or not isinstance(value, wanted if wanted is int else (int, float)):
            raise ConfigError(f"fada_options: {key} must be {'a number' if wanted is float else 'an integer'}, "
                              f"got {value!r}")
        out[key] = wanted(value)
    merged = {key: out.get(key, default) for key, (default, _) in DEFAULTS.items()}
    if merged["stage1_steps"] < 0:
        merged["stage1_steps"] = steps // 3
    for key in ("dcd_hidden", "pairs"):
        if merged[key] < 1:
            raise ConfigError(f"fada_options: {key} must be >= 1, got {merged[key]}")
    if merged["adv_weight"] < 0 or merged["dcd_lr"] <= 0 or merged["dcd_steps"] < 0 or merged["dcd_updates"] < 0:
        raise ConfigError("fada_options: adv_weight, dcd_steps and dcd_updates must be >= 0 and dcd_lr > 0")
    return merged


def group_masks(labels: torch.Tensor, domains: torch.Tensor, is_target: torch.Tensor) -> list[torch.Tensor]:
    """[N, N] masks of the pairs (i, j) in G1..G4: i is always a source image; j != i."""
    same_class = labels[:, None] == labels[None, :]
    same_domain = domains[:, None] == domains[None, :]
    source_i = ~is_target[:, None]
    target_j, source_j = is_target[None, :], ~is_target[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    source_pair = source_i & source_j & same_domain & not_self
    return [source_pair & same_class, source_i & target_j & same_class,
            source_pair & ~same_class, source_i & target_j & ~same_class]


def sample_pairs(labels: torch.Tensor, domains: torch.Tensor, is_target: torch.Tensor, per_group: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first, second, group) LongTensors: `per_group` random pairs of each group (with replacement); a
    group without any pair in this batch is left out."""
    firsts, seconds, groups = [], [], []
    for g, mask in enumerate(group_masks(labels, domains, is_target)):
        pairs = mask.nonzero().cpu()
        if len(pairs) == 0:
            continue
        chosen = pairs[torch.randint(len(pairs), (per_group,), generator=generator)]
        firsts.append(chosen[:, 0])
        seconds.append(chosen[:, 1])
        groups.append(torch.full((per_group,), g, dtype=torch.long))
    if not groups:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    return torch.cat(firsts), torch.cat(seconds), torch.cat(groups)


class DCD(nn.Module):
    """The domain-class discriminator: an MLP from a pair of embeddings to the 4 groups' logits."""

    def __init__(self, feature_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, len(GROUPS)))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([first, second], dim=1))


def pool(main_batch: tuple[torch.Tensor, torch.Tensor], aux_batch: dict[str, tuple[torch.Tensor, torch.Tensor]]
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, labels, domains, is_target) of the step's source batches (domain 0..S-1) and target batch (S)."""
    parts = [*aux_batch.values(), main_batch]
    images = torch.cat([x for x, _ in parts])
    labels = torch.cat([y for _, y in parts])
    domains = torch.cat([torch.full((len(y),), d, dtype=torch.long, device=y.device) for d, (_, y) in enumerate(parts)])
    return images, labels, domains, domains == len(parts) - 1


def dcd_loss(dcd: nn.Module, features: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
             groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, accuracy) of the DCD naming each pair's group."""
    logits = dcd(features[first], features[second]).float()
    return F.cross_entropy(logits, groups), (logits.argmax(1) == groups).float().mean()


def confusion_loss(dcd: nn.Module, features: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                   groups: torch.Tensor) -> torch.Tensor:
    """The embedding's adversarial loss: G2 pairs classified as G1 and G4 pairs as G3 (0 without such pairs)."""
    cross = (groups == 1) | (groups == 3)
    if not cross.any():
        return features.sum() * 0.0
    logits = dcd(features[first[cross]], features[second[cross]]).float()
    return F.cross_entropy(logits, groups[cross] - 1)


class Fada(DGVariant):
    """FADA's three stages on top of joint training; the DCD lives in the model as head "dcd"."""

    main_weight = 1.0

    def __init__(self, setting: Any) -> None:
        super().__init__(setting)
        config = setting.config
        self.options = fada_options(config.fada_options, config.steps)
        self.seed = config.seed
        self.optimizer: torch.optim.Optimizer | None = None
        self._sums = {"dcd_loss": 0.0, "dcd_acc": 0.0, "adv_loss": 0.0}
        self._count = 0

    def heads(self, feature_dim: int) -> dict[str, nn.Module]:
        return {"dcd": DCD(feature_dim, self.options["dcd_hidden"])}

    def _dcd_update(self, dcd: nn.Module, features: torch.Tensor, batch: tuple, generator: torch.Generator
                    ) -> tuple[float, float]:
        first, second, groups = sample_pairs(*batch[1:], self.options["pairs"], generator)
        device = features.device
        loss, acc = dcd_loss(dcd, features, first.to(device), second.to(device), groups.to(device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(list(dcd.parameters()))
        self.optimizer.step()
        return float(loss.detach()), float(acc)

    def _pretrain_dcd(self, model: nn.Module, dcd: nn.Module, step: int) -> None:
        """Stage 2: the DCD alone on fresh batches, the embedding frozen (no gradient reaches it)."""
        for i in range(self.options["dcd_steps"]):
            main_batch, aux_batch = self.setting.next_batches()
            batch = pool(main_batch, aux_batch)
            with torch.no_grad():
                features = model.features(batch[0]).float()
            self._dcd_update(dcd, features, batch, step_generator(self.seed, i, f"fada/stage2/{step}"))

    def after_backward(self, model, step, main_batch, aux_batch) -> None:
        if step <= self.options["stage1_steps"]:
            return
        dcd = model.heads["dcd"]
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam(dcd.parameters(), lr=self.options["dcd_lr"])
        if step == self.options["stage1_steps"] + 1:
            self._pretrain_dcd(model, dcd, step)
        batch = pool(main_batch, aux_batch)
        features = model.features(batch[0]).float()
        generator = step_generator(self.seed, step, "fada/pairs")
        first, second, groups = (t.to(features.device) for t in sample_pairs(*batch[1:], self.options["pairs"],
                                                                            generator))
        adv = confusion_loss(dcd, features, first, second, groups)
        if self.options["adv_weight"] > 0:
            (self.options["adv_weight"] * adv).backward(inputs=[p for p in model.backbone.parameters()
                                                                if p.requires_grad])
        detached = features.detach()
        dcd_sum = acc_sum = 0.0
        for i in range(self.options["dcd_updates"]):
            loss, acc = self._dcd_update(dcd, detached, batch, step_generator(self.seed, step, f"fada/dcd/{i}"))
            dcd_sum, acc_sum = dcd_sum + loss, acc_sum + acc
        for p in dcd.parameters():  # the model's optimizer must not move the DCD
            p.grad = None
        updates = max(self.options["dcd_updates"], 1)
        self._sums["adv_loss"] += float(adv.detach())
        self._sums["dcd_loss"] += dcd_sum / updates
        self._sums["dcd_acc"] += acc_sum / updates
        self._count += 1

    def metrics(self) -> dict[str, float]:
        """Means since the last evaluation of the DCD's loss and accuracy and of the confusion loss (0 before
        stage 3), and the stage the run is in."""
        out = {f"fada/{k}": v / max(self._count, 1) for k, v in self._sums.items()}
        out["fada/stage"] = 3.0 if self._count else 1.0
        self._sums = dict.fromkeys(self._sums, 0.0)
        self._count = 0
        return out
