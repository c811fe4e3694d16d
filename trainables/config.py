"""One training configuration (`TrainConfig`) and the named presets with the paper's settings.

`TrainConfig` declares every value a training run can be told, with its type and the values a trial can use
(a pydantic dataclass, strict): a study file's `[train]`, a preset, a `--set` and `fit(dict)` are all checked by
building one, and the first problem is one `ConfigError` naming the key ("steps must be greater than or equal to
1, got 0"). Checks that depend on how long a run is (learning-rate milestones beyond `steps`) are
`check_whole_run`, since a smoke run shortens `steps` on purpose.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from dataclasses import field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from trainables.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from trainables.data.base import DataRequest

SETTINGS = ("ssl", "mlc", "dg")   # the one list of settings (trainables/settings.py has a class for each)
OPTIMIZERS = ("adam", "sgd")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Values beyond these can only hang or overflow a trial: the paper's longest run is 200k steps at batch 256, and a
# learning rate above 1e30 overflows float32 updates at once (the tests use 1e30 to make a run diverge on purpose)
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
MAX_LR = 1e30
MAX_IMAGE_SIZE = 4096


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Count = Annotated[int, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
StepNumbers = Annotated[tuple[AtLeastOne, ...], BeforeValidator(_as_tuple)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
ImageSize = Annotated[int, Field(ge=0, le=MAX_IMAGE_SIZE)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
AuxBatch = Annotated[int, Field(ge=0, le=MAX_BATCH)]
LearningRate = Annotated[float, Field(gt=0)]
Momentum = Annotated[float, Field(ge=0, lt=1)]
Gamma = Annotated[float, Field(gt=0, le=1)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Workers = Annotated[int, Field(ge=0, le=256)]


@dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid"))
class TrainConfig:
    """Everything `trainables.fit` needs to train and evaluate one model, checked when built (see the module)."""

    # what to learn
    setting: str = "ssl"                      # "ssl" semi-supervised, "mlc" multi-label, "dg" domain generalization
    dataset: str = "digits"                   # a name in trainables.data.DATASETS
    data_root: str = ""                       # "" -> $ARML_DATA, else ./data
    model: str = "small_cnn"                  # a name in trainables.models.BACKBONES
    model_options: dict = field(default_factory=dict)
    aux_tasks: Names = ("rotation", "exemplar_mt")  # names in trainables.tasks.AUX_TASKS
    aux_scale: NonNegative = 1.0             # constant factor on every auxiliary loss (official code: 0.5 in S4L)
    image_size: ImageSize = 0                 # 0 -> the data set's native size
    # how many labels (the label budget)
    label_budget: Count = 0                   # ssl: labeled training images; mlc: images with the main label
    label_fraction: Fraction = 0.0            # mlc alternative to label_budget (paper: 0.01)
    per_class: Count = 0                      # dg: N_m labeled target images per class
    main_attribute: str = ""                  # mlc: the main attribute's name
    aux_attributes: Names = ()                # mlc: auxiliary attributes (empty -> all the others)
    target_domain: str = ""                   # dg: the held-out target domain
    val_labels: Count = 0                     # labeled validation images drawn per seed from the fixed validation
    #   split (stratified; dg: from the source domains' held-out parts); 0 -> the whole split. Model selection
    #   (best step, grid point, search trial) sees only these
    dg_variant: str = "joint"                 # dg: a name in trainables.dg_variants.DG_VARIANTS: "joint" (target
    #   labels in the loss), "baseline" (source losses only; the target labels only steer the weights) or "fada"
    fada_options: dict = field(default_factory=dict)  # dg_variant "fada" (trainables/fada.py DEFAULTS): stage1_steps
    #   (joint training first; -1: steps // 3), dcd_steps (200 DCD updates, embedding frozen), adv_weight (0.1),
    #   dcd_hidden (64), dcd_lr (0.001), dcd_updates (1 per step), pairs (32 per group)
    # weighting of the auxiliary tasks
    weighting: str = "uniform"                # a name in arml.WEIGHTINGS
    weighting_options: dict = field(default_factory=dict)
    # optimisation
    steps: Steps = 1000
    batch_size: Batch = 64                    # labeled (main-task) batch
    aux_batch_size: AuxBatch = 0              # batch for auxiliary tasks (0 -> batch_size)
    optimizer: str = "adam"                   # "adam" or "sgd"
    lr: LearningRate = 0.001
    momentum: Momentum = 0.9
    nesterov: bool = False
    weight_decay: NonNegative = 0.0
    lr_milestones: StepNumbers = ()           # steps at which the learning rate is multiplied by lr_gamma
    lr_gamma: Gamma = 0.1
    ema_decay: Fraction = 0.999               # time-averaged teacher of exemplar-MT
    # evaluation, checkpoints, runtime
    eval_every: AtLeastOne = 100
    eval_batch_size: Batch = 512
    checkpoint_every: Count = 0               # 0 -> at every evaluation
    seed: Seed = 0
    device: str = "auto"                      # "auto", "cpu", "cuda", "cuda:1"
    amp: bool = False                         # mixed precision on CUDA
    channels_last: bool = False               # model and batches in NHWC memory order (faster convolutions on a
    #   GPU, above all with amp); how fast a trial runs, not what it computes: trial ids leave it out
    compile: bool = False                     # torch.compile the backbone in place (the first steps pay the
    #   compile time); how fast, not what: trial ids leave it out
    num_workers: Workers = 0                  # data loader worker processes for file-based data sets
    max_eval_items: Count = 0                 # 0 -> whole splits; >0 caps val/test size (smoke runs)
    diagnostics: bool = False                 # at each evaluation also report grad_norm_ratio/<task> and
    #   grad_cos/<task> on the step's batch (trainables/diagnostics.py; K + 1 extra backward passes per evaluation)

    @field_validator("setting")
    @classmethod
    def _known_setting(cls, value: str) -> str:
        if value not in SETTINGS:
            raise ValueError(f"be one of {', '.join(SETTINGS)}{_did_you_mean(value, SETTINGS)}")
        return value

    @field_validator("dg_variant", "optimizer")
    @classmethod
    def _known_name(cls, value: str, info: Any) -> str:
        names = dg_variant_names() if info.field_name == "dg_variant" else list(OPTIMIZERS)
        if value not in names:
            raise ValueError(f"be one of {', '.join(names)}{_did_you_mean(value, names)}")
        return value

    @field_validator("lr")
    @classmethod
    def _not_overflowing(cls, value: float) -> float:
        if value > MAX_LR:
            raise ValueError(f"be at most {MAX_LR:g} (larger ones overflow float32 updates)")
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

    @model_validator(mode="after")
    def _together(self) -> TrainConfig:
        if self.optimizer != "sgd" and self.nesterov:
            raise ValueError("nesterov = true needs optimizer = 'sgd'; remove nesterov or use sgd")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov = true needs momentum > 0")
        if self.dg_variant == "fada" or self.fada_options:
            from trainables.fada import fada_options

            fada_options(self.fada_options, self.steps)
        return self

    def resolved_data_root(self) -> str:
        return self.data_root or os.environ.get("ARML_DATA", "") or "./data"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        """Builds a config from plain values; unknown keys and values a trial cannot use are a ConfigError."""
        check_keys(values, where)
        return _built(lambda: cls(**values), values, where)

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> TrainConfig:
        """A config written by any version (plan.json): keys it does not know are left out, and values that the
        checks of this version refuse are kept as they were run."""
        known = {k: v for k, v in values.items() if k in FIELDS}
        try:
            return cls(**known)
        except (ValidationError, ConfigError, UnknownNameError):
            config = object.__new__(cls)
            for name in FIELDS:
                value = known.get(name, _default(name))
                object.__setattr__(config, name, tuple(value) if isinstance(value, list) else value)
            return config

    def replace(self, **changes: Any) -> TrainConfig:
        check_keys(changes, "config")
        return _built(lambda: dataclasses.replace(self, **changes), changes, "config")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _default(name: str) -> Any:
    spec = FIELDS[name]
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def check_keys(values: dict[str, Any], where: str) -> None:
    """ConfigError naming an unknown key, with the close ones and every valid one."""
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(FIELDS)}")


# pydantic's error types for a value of the wrong type -> what the value must be
TYPE_WORDS = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
              "string_type": "a string", "dict_type": "a table", "tuple_type": "a list", "list_type": "a list",
              "int_from_float": "an integer"}
# fields whose type errors say more than the type's name
FIELD_WORDS = {"aux_tasks": "a list of names (strings)", "aux_attributes": "a list of names (strings)",
               "lr_milestones": "a list of step numbers"}


def first_problem(error: ValidationError) -> tuple[tuple, str, Any]:
    """A pydantic validation error's first problem in words: (where: the location's keys, what the value must be
    or do: 'be a number', 'be greater than or equal to 1'; the value given). The one reading of pydantic's errors
    for every checked value (a [train] key here, a study file's sections in orchestrator/study/reader.py)."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    kind = FIELD_WORDS.get(str(loc[0])) if loc and first["type"] in TYPE_WORDS else None
    kind = kind or TYPE_WORDS.get(first["type"])
    need = f"be {kind}" if kind else re.sub(r"^(Value error, )?(Input should )?", "", str(first["msg"]))
    return loc, need, first.get("input")


def _built(build: typing.Callable[[], TrainConfig], given: dict[str, Any], where: str) -> TrainConfig:
    """`build()`; its first validation error as ConfigError("WHERE: KEY must ..., got VALUE")."""
    try:
        return build()
    except ValidationError as error:
        loc, need, value = first_problem(error)
        if not loc:   # a check across fields (model validator)
            raise ConfigError(f"{where}: {str(error.errors()[0]['msg']).removeprefix('Value error, ')}") from None
        key = str(loc[0])
        value = given.get(key, value)
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"{where}: {key} must {need}, got {shown!r}") from None


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
    return TrainConfig.from_dict(values)


def check_whole_run(config: TrainConfig) -> None:
    """What holds for a full run but not a smoke run (which shortens `steps`): every learning-rate milestone
    falls inside the run."""
    if config.lr_milestones and config.lr_milestones[-1] >= config.steps:
        raise ConfigError(f"config: lr_milestones must be below steps ({config.steps}), got "
                          f"{list(config.lr_milestones)}; drop the late ones or raise steps")


def dg_variant_names() -> list[str]:
    """The names in trainables.dg_variants.DG_VARIANTS (listed without importing torch)."""
    from trainables.dg_variants import DG_VARIANTS

    return DG_VARIANTS.names()


def _did_you_mean(value: Any, choices: typing.Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=2)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def data_request(config: TrainConfig) -> DataRequest:
    """What the data set is asked for (trainables.data.base imported here: it needs torch)."""
    from trainables.data.base import DataRequest

    return DataRequest(
        setting=config.setting, data_root=config.resolved_data_root(), seed=config.seed,
        label_budget=config.label_budget, label_fraction=config.label_fraction, per_class=config.per_class,
        main_attribute=config.main_attribute, aux_attributes=tuple(config.aux_attributes),
        target_domain=config.target_domain, image_size=config.image_size, val_labels=config.val_labels,
    )


def aux_names(config: TrainConfig) -> list[str]:
    """The auxiliary losses' names in weight order (K = their count), without reading images: ssl the task
    names, mlc the auxiliary attributes, dg the source domains (from the data set's registry entry)."""
    if config.setting == "ssl":
        return list(config.aux_tasks)
    from trainables.data import aux_names as data_aux_names

    return data_aux_names(config.dataset, data_request(config))
