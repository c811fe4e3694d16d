"""The checks of a study's `[train]` and `[budget]` against trainables: names against its registries, model
options against the backbone's constructor, values by building `trainables.config.TrainConfig`, label budgets
against what the data set can give, `val_labels` against its validation split. Whatever would fail inside every
trial fails here, as one line."""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from orchestrator.study.reader import Reader, coerce, key_text, show
from trainables.config import FIELDS as TRAIN_KEYS
from trainables.errors import UnknownNameError


def registry_of(r: Reader, module_name: str, attr: str) -> Any:
    """`module_name.attr`, a registry of names; a module that fails to import is an error, never a skipped
    check (a study that passes here would fail in every trial)."""
    try:
        return getattr(importlib.import_module(module_name), attr)
    except Exception as error:  # an ImportError, or any error raised while the module registers its entries
        r.fail("", f"cannot check the study: {module_name}.{attr} is not available "
                   f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                   "fix that module or the installation")


def check_names(r: Reader, config: Any) -> None:
    """Data set, model and auxiliary task names against their registries."""
    checks = (("trainables.data", "DATASETS", "dataset", [config.dataset]),
              ("trainables.models", "BACKBONES", "model", [config.model]),
              ("trainables.tasks", "AUX_TASKS", "aux_tasks", list(config.aux_tasks)))
    for module_name, attr, key, names in checks:
        registry = registry_of(r, module_name, attr)
        for name in names:
            if name not in registry:
                section = "study" if key == "dataset" else "train"
                r.fail(section, f"{key}: {show(name)} is not a name in {module_name}.{attr}"
                                f"{r.close(name, list(registry))}; "
                                f"valid names: {', '.join(sorted(registry))}")
            settings = getattr(registry.get(name), "settings", None) if key != "model" else None
            if settings is not None and config.setting not in settings:
                if key == "dataset":
                    r.fail("study", f"data set {name} has no {config.setting} setting (it has: "
                                    f"{', '.join(settings)}); pick another dataset or preset")
                fits = [n for n in registry.names() if config.setting in getattr(registry.get(n), "settings", ())]
                r.fail("train", f"aux_tasks: {name} is an auxiliary task of the {'/'.join(settings)} setting, this "
                                f"study is {config.setting}; use {' or '.join(fits) or 'another preset'}")


def check_model_options(r: Reader, config: Any) -> None:
    """`[train] model_options` by name and type against the backbone's constructor `build(info, *, option=...)`."""
    factory = registry_of(r, "trainables.models", "BACKBONES").get(config.model)
    params = {name: p for name, p in inspect.signature(factory).parameters.items()
              if name != "info" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key, value in config.model_options.items():
        if key not in params:
            r.fail("train", f"model_options: {key_text(key)} is not an option of model {config.model}"
                            f"{r.close(key, params)}; its options: {', '.join(params) or 'none'}")
        coerce(r, "train", f"model_options.{key_text(key)}", value, params[key])
    if config.model_options:
        _try_backbone(r, config, factory)


def _try_backbone(r: Reader, config: Any, factory: Callable[..., Any]) -> None:
    """Builds the backbone with the study's options and passes two small images through it, so that values
    it cannot use (width = 0, a negative size) fail here, not in every trial. Cheap: no data is read."""
    import torch

    from trainables.data.base import DataInfo
    from trainables.errors import DataNotFoundError

    info = DataInfo("check", (3, 32, 32), 10, (0.5,) * 3, (0.5,) * 3)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # "zero-element tensors": the error that follows says it better
            backbone = factory(info, **config.model_options).eval()
            features = backbone(torch.rand(2, 3, 32, 32))
        if backbone.feature_dim < 1 or features.shape != (2, backbone.feature_dim):
            raise ValueError(f"it gives {tuple(features.shape[1:])} features per image")
    except DataNotFoundError:  # a pretrained-weights file that only the cluster's nodes may have
        return
    except Exception as error:  # whatever the constructor raises on a bad value
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        r.fail("train", f"model_options = {show(config.model_options)}: model {config.model} cannot use these "
                        f"values ({text}); change them")


def build_config(r: Reader, preset: str, values: dict, train: dict, section: str = "train", context: str = "") -> Any:
    """The preset with `values` on top, built as one `TrainConfig` (which checks every type and value: the one
    place they are checked); its first problem as a `[section]` error, and a value that comes from the preset
    says so. Milestones beyond the run are refused only when the file sets them (the preset's, in a shortened
    run, are its schedule cut short)."""
    from trainables.config import check_whole_run, resolve_config
    from trainables.errors import ConfigError

    try:
        config = resolve_config(preset, **values)
        if "lr_milestones" in train:
            check_whole_run(config)
    except (ConfigError, UnknownNameError) as error:
        message = str(error).removeprefix("config: ")
        key = message.split(" ", 1)[0]
        if key in TRAIN_KEYS and key not in train and key not in values:
            message += f" (preset {preset}'s value; set {key} in [{section}])"
        r.fail(section, f"{context}: {message}" if context else message)
    check_val_labels(r, config, section, context)
    return config


def check_val_labels(r: Reader, config: Any, section: str, context: str = "") -> None:
    """`val_labels` against the labeled images the data set's validation split holds for this configuration
    (its `val_size`, told without reading images). A data set that cannot tell here (PACS not under this data
    root, a plug-in without `val_size`) leaves it to the trial, which refuses it in one line as well."""
    if not config.val_labels:
        return
    from trainables.config import data_request
    from trainables.data import val_size
    from trainables.data.base import BUNDLES
    from trainables.errors import TrainablesError

    try:
        size = val_size(config.dataset, data_request(config))
    except (TrainablesError, UnknownNameError):   # an unknown data set or target domain: its own check says so
        return
    if size is not None and config.val_labels > size:
        words = BUNDLES[config.setting].val_words
        r.fail(section, f"{context + ': ' if context else ''}val_labels = {config.val_labels} is more than "
                        f"{config.dataset} ({config.setting}) holds in {words}: {size} labeled images; use values "
                        f"up to {size}, or 0 for all of them")


def check_budgets(r: Reader, config: Any, budget: Any) -> None:
    """Each label budget of `budget` (a BudgetSpec) against what the data set can give (its known size; no
    image is read). Without a `[budget]` (None) the configuration's own budget is checked."""
    from trainables.config import data_request
    from trainables.data import max_budget
    from trainables.errors import TrainablesError

    try:
        limit = max_budget(config.dataset, data_request(config))
    except TrainablesError as error:
        r.fail("train", f"cannot tell the label budgets {config.dataset} can give: {error}")
    if limit is None:
        return
    counted = "images per class of the target domain" if config.setting == "dg" else "labeled training images"
    if budget is None:  # the preset's budget, on a data set the study may have changed
        field = "per_class" if config.setting == "dg" else \
            "label_fraction" if config.label_fraction > 0 and not config.label_budget else "label_budget"
        section, key, values, fix = "study", f"the preset's {field}", [getattr(config, field)], "add a [budget] with"
    else:
        section, key, field, values, fix = "budget", budget.key, budget.field, budget.values, "use"
    for value in values:
        count = round(value * limit) if field == "label_fraction" else value
        if count > limit:
            r.fail(section, f"{key} = {show(value)} is more than {config.dataset} ({config.setting}) can give: "
                            f"at most {limit} {counted}; {fix} values up to {limit}")
        if count < 1:
            r.fail(section, f"{key} = {show(value)} gives {count} labeled images of {limit} in {config.dataset}; "
                            f"use at least {1 / limit:.2g}" if field == "label_fraction" else
                            f"{key} must be at least 1, got {show(value)}")
