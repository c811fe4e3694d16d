"""One training configuration (`TrainConfig`) and the named presets with the paper's settings.

A study file's `[train]` section and a trial's options are checked against `TrainConfig`'s fields,
so this file is the single list of what a training run can be told.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from trainables.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from trainables.data.base import DataRequest

SETTINGS = ("ssl", "mlc", "dg")
OPTIMIZERS = ("adam", "sgd")
# dg: "joint" trains on the target's labels too, "baseline" only reweights the source domains
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `trainables.fit` needs to train and evaluate one model."""

    # what to learn
    setting: str = "ssl"                      # "ssl" semi-supervised, "mlc" multi-label, "dg" domain generalization
    dataset: str = "digits"                   # a name in trainables.data.DATASETS
    data_root: str = ""                       # "" -> $ARML_DATA, else ./data
    model: str = "small_cnn"                  # a name in trainables.models.BACKBONES
    model_options: dict = field(default_factory=dict)
    aux_tasks: tuple = ("rotation", "exemplar_mt")  # names in trainables.tasks.AUX_TASKS
    aux_scale: float = 1.0                    # constant factor on every auxiliary loss (official code: 0.5 in S4L)
    image_size: int = 0                       # 0 -> the data set's native size
    # how many labels (the label budget)
    label_budget: int = 0                     # ssl: labeled training images; mlc: images with the main label
    label_fraction: float = 0.0               # mlc alternative to label_budget (paper: 0.01)
    per_class: int = 0                        # dg: N_m labeled target images per class
    main_attribute: str = ""                  # mlc: the main attribute's name
    aux_attributes: tuple = ()                # mlc: auxiliary attributes (empty -> all the others)
    target_domain: str = ""                   # dg: the held-out target domain
    dg_variant: str = "joint"                 # dg: a name in trainables.dg_variants.DG_VARIANTS: "joint" (target
    #   labels in the loss), "baseline" (source losses only; the target labels only steer the weights) or "fada"
    fada_options: dict = field(default_factory=dict)  # dg_variant "fada" (trainables/fada.py DEFAULTS): stage1_steps
    #   (joint training first; -1: steps // 3), dcd_steps (200 DCD updates, embedding frozen), adv_weight (0.1),
    #   dcd_hidden (64), dcd_lr (0.001), dcd_updates (1 per step), pairs (32 per group)
    # weighting of the auxiliary tasks
    weighting: str = "uniform"                # a name in arml.WEIGHTINGS
    weighting_options: dict = field(default_factory=dict)
    # optimisation
    steps: int = 1000
    batch_size: int = 64                      # labeled (main-task) batch
    aux_batch_size: int = 0                   # batch for auxiliary tasks (0 -> batch_size)
    optimizer: str = "adam"                   # "adam" or "sgd"
    lr: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_milestones: tuple = ()                 # steps at which the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    ema_decay: float = 0.999                  # time-averaged teacher of exemplar-MT
    # evaluation, checkpoints, runtime
    eval_every: int = 100
    eval_batch_size: int = 512
    checkpoint_every: int = 0                 # 0 -> at every evaluation
    seed: int = 0
    device: str = "auto"                      # "auto", "cpu", "cuda", "cuda:1"
    amp: bool = False                         # mixed precision on CUDA
    channels_last: bool = False               # model and batches in NHWC memory order (faster convolutions on a
    #   GPU, above all with amp); how fast a trial runs, not what it computes: trial ids leave it out
    compile: bool = False                     # torch.compile the backbone in place (the first steps pay the
    #   compile time); how fast, not what: trial ids leave it out
    num_workers: int = 0                      # data loader worker processes for file-based data sets
    max_eval_items: int = 0                   # 0 -> whole splits; >0 caps val/test size (smoke runs)
    diagnostics: bool = False                 # at each evaluation also report grad_norm_ratio/<task> and
    #   grad_cos/<task> on the step's batch (trainables/diagnostics.py; K + 1 extra backward passes per evaluation)

    def resolved_data_root(self) -> str:
        return self.data_root or os.environ.get("ARML_DATA", "") or "./data"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        """Builds a config from plain values, refusing unknown keys and values of the wrong type."""
        return cls(**check_fields(values, where))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **check_fields(changes, "config"))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_HINTS = typing.get_type_hints(TrainConfig)
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def check_fields(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Checks names and types of config values; lists are turned into tuples."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(FIELDS)}")
        out[key] = _coerce(key, value, where)
    return out


def _coerce(key: str, value: Any, where: str) -> Any:
    hint = _HINTS[key]
    if isinstance(hint, types.GenericAlias):
        hint = typing.get_origin(hint)
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        tuple: lambda v: isinstance(v, (list, tuple)),
        dict: lambda v: isinstance(v, dict),
    }[hint]
    if not ok(value):
        raise ConfigError(
            f"{where}: {key} must be {hint.__name__ if hint is not tuple else 'a list'}, got {value!r}"
        )
    if hint is float:
        return float(value)
    if hint is tuple:
        return tuple(value)
    return value


# The paper's settings (Appendix B) and the digits twins that run on a CPU in seconds to a minute.
PRESETS: dict[str, dict[str, Any]] = {
    "ssl_cifar10_paper": dict(
        setting="ssl", dataset="cifar10", model="wrn28_2", aux_tasks=("rotation", "exemplar_mt"),
        aux_scale=0.5, label_budget=4000, steps=200_000, batch_size=256, optimizer="adam", lr=0.005,
        lr_milestones=(160_000,), lr_gamma=0.2, eval_every=2000, ema_decay=0.999, num_workers=4,
    ),
    "ssl_svhn_paper": dict(
        setting="ssl", dataset="svhn", model="wrn28_2", aux_tasks=("rotation", "exemplar_mt"),
        aux_scale=0.5, label_budget=1000, steps=200_000, batch_size=256, optimizer="adam", lr=0.005,
        lr_milestones=(160_000,), lr_gamma=0.2, eval_every=2000, ema_decay=0.999, num_workers=4,
    ),
    # 90 epochs of the 162,770 CelebA training images at batch 256 = 57,225 steps; x0.1 every 30 epochs.
    "mlc_celeba_paper": dict(
        setting="mlc", dataset="celeba", model="resnet18", aux_tasks=("attributes",),
        main_attribute="5_o_Clock_Shadow", label_fraction=0.01, image_size=112, steps=57_225,
        batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
        lr_milestones=(19_075, 38_150), lr_gamma=0.1, eval_every=2000, num_workers=8,
    ),
    # Appendix B.3 is cut from our copy of the paper; these are the usual PACS settings (JiGen, ResNet-18).
    "dg_pacs_paper": dict(
        setting="dg", dataset="pacs", model="resnet18", aux_tasks=("source_domains",),
        target_domain="art_painting", per_class=5, dg_variant="joint", image_size=224, steps=6000,
        batch_size=32, aux_batch_size=32, optimizer="sgd", lr=0.001, momentum=0.9, weight_decay=5e-4,
        lr_milestones=(4800,), lr_gamma=0.1, eval_every=300, num_workers=8,
    ),
    "digits_ssl": dict(
        setting="ssl", dataset="digits", model="small_cnn", aux_tasks=("rotation", "exemplar_mt"),
        label_budget=50, steps=600, batch_size=32, aux_batch_size=128, optimizer="adam", lr=0.003,
        lr_milestones=(480,), lr_gamma=0.2, eval_every=50, ema_decay=0.99,
    ),
    "digits_mlc": dict(
        setting="mlc", dataset="digits", model="small_cnn", aux_tasks=("attributes",),
        main_attribute="has_loop", label_budget=40, steps=500, batch_size=32, aux_batch_size=128,
        optimizer="adam", lr=0.003, lr_milestones=(400,), lr_gamma=0.2, eval_every=50,
    ),
    "digits_dg": dict(
        setting="dg", dataset="digits", model="small_cnn", aux_tasks=("source_domains",),
        target_domain="inverted", per_class=5, dg_variant="joint", steps=500, batch_size=50,
        aux_batch_size=64, optimizer="adam", lr=0.003, lr_milestones=(400,), lr_gamma=0.2, eval_every=50,
    ),
}


def resolve_config(preset: str = "", **overrides: Any) -> TrainConfig:
    """The preset's values, then `overrides` on top: `resolve_config("digits_mlc", seed=2)`."""
    values: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise UnknownNameError(f"unknown preset {preset!r}; valid names: {', '.join(sorted(PRESETS))}")
        values.update(PRESETS[preset])
    values.update(overrides)
    config = TrainConfig.from_dict(values)
    if config.setting not in SETTINGS:
        raise ConfigError(f"config: setting must be one of {', '.join(SETTINGS)}, got {config.setting!r}")
    if config.dg_variant != "joint" or config.fada_options:  # checked here so that a dry run catches mistakes
        from trainables.dg_variants import DG_VARIANTS
        from trainables.fada import fada_options  # (registers "fada")

        if config.dg_variant not in DG_VARIANTS:
            raise ConfigError(f"config: dg_variant must be one of {', '.join(DG_VARIANTS.names())}"
                              f"{_did_you_mean(config.dg_variant, DG_VARIANTS.names())}, got {config.dg_variant!r}")
        fada_options(config.fada_options, config.steps)
    return config


Count = Annotated[int, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]


class TrainValues(BaseModel):
    """The values a `TrainConfig` may hold (its types are checked by `check_fields`): what would fail or
    silently do nothing inside a trial is refused here, before any trial starts."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    setting: Literal["ssl", "mlc", "dg"]
    aux_scale: Annotated[float, Field(ge=0)]
    image_size: Count                         # 0: native size
    label_budget: Count
    label_fraction: Annotated[float, Field(ge=0, le=1)]
    per_class: Count
    dg_variant: str
    steps: AtLeastOne
    batch_size: AtLeastOne
    aux_batch_size: Count                     # 0: batch_size
    optimizer: str
    lr: Annotated[float, Field(gt=0)]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    weight_decay: Annotated[float, Field(ge=0)]
    lr_milestones: tuple[AtLeastOne, ...]
    lr_gamma: Annotated[float, Field(gt=0, le=1)]
    ema_decay: Annotated[float, Field(ge=0, le=1)]
    eval_every: AtLeastOne
    eval_batch_size: AtLeastOne
    checkpoint_every: Count                   # 0: at every evaluation
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    device: str
    num_workers: Count
    max_eval_items: Count                     # 0: whole splits

    @field_validator("dg_variant", "optimizer")
    @classmethod
    def _known_name(cls, value: str, info: ValidationInfo) -> str:
        names = dg_variant_names() if info.field_name == "dg_variant" else OPTIMIZERS
        if value not in names:
            raise ValueError(f"be one of {', '.join(names)}{_did_you_mean(value, names)}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError("be auto, cpu, mps, cuda or cuda:N")
        return value

    @field_validator("lr_milestones")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("be strictly increasing step numbers")
        return value


def dg_variant_names() -> list[str]:
    """The names in trainables.dg_variants.DG_VARIANTS (imported lazily: it needs torch)."""
    from trainables.dg_variants import DG_VARIANTS
    from trainables.fada import fada_options  # noqa: F401  (registers "fada")

    return DG_VARIANTS.names()


def _did_you_mean(value: Any, choices: typing.Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=2)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _constraint(error: dict[str, Any]) -> str:
    """Pydantic's 'Input should be greater than 0' / 'Value error, be ...' -> 'must be greater than 0'."""
    message = str(error["msg"]).removeprefix("Value error, ")
    message = re.sub(r"^Input should ", "", message)
    return "must " + message


def check_values(config: TrainConfig, whole_run: bool = True) -> None:
    """ConfigError('KEY must ..., got VALUE') for the first value a trial cannot use. `whole_run` adds the
    checks across fields that hold for a full run (a smoke run shortens `steps` below the milestones)."""
    try:
        TrainValues.model_validate(config.to_dict())
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0])
        value = getattr(config, key)
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"config: {key} {_constraint(first)}, got {shown!r}") from None
    if config.optimizer != "sgd" and config.nesterov:
        raise ConfigError("config: nesterov = true needs optimizer = 'sgd'; remove nesterov or use sgd")
    if config.nesterov and config.momentum == 0:
        raise ConfigError("config: nesterov = true needs momentum > 0")
    if whole_run and config.lr_milestones and config.lr_milestones[-1] >= config.steps:
        raise ConfigError(f"config: lr_milestones must be below steps ({config.steps}), got "
                          f"{list(config.lr_milestones)}; drop the late ones or raise steps")


def data_request(config: TrainConfig) -> DataRequest:
    """What the data set is asked for (trainables.data.base imported here: it needs torch)."""
    from trainables.data.base import DataRequest

    return DataRequest(
        setting=config.setting, data_root=config.resolved_data_root(), seed=config.seed,
        label_budget=config.label_budget, label_fraction=config.label_fraction, per_class=config.per_class,
        main_attribute=config.main_attribute, aux_attributes=tuple(config.aux_attributes),
        target_domain=config.target_domain, image_size=config.image_size,
    )


def aux_names(config: TrainConfig) -> list[str]:
    """The auxiliary losses' names in weight order (K = their count), without reading images: ssl the task
    names, mlc the auxiliary attributes, dg the source domains (from the data set's registry entry)."""
    if config.setting == "ssl":
        return list(config.aux_tasks)
    from trainables.data import aux_names as data_aux_names

    return data_aux_names(config.dataset, data_request(config))
