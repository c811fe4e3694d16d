"""Well-typed values a trial cannot use are refused before any trial starts: each case is one line that
names the file, the section and key, and the fix, through `parse_study` and through `arml run --dry-run`
(exit code 2). Also: overrides merged into a study, a registry that fails to import."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from studyfiles import BASE, changed, to_toml, write

from orchestrator.cli import main
from orchestrator.errors import StudyError
from orchestrator.study.spec import load_study, parse_study, parse_study_doc


def small(preset: str, **sections: Any) -> dict:
    """A minimal valid study on `preset` with `sections` added."""
    return {"study": {"name": "v", "preset": preset}, "methods": {"uniform": {}}, **sections}


CASES: list[tuple[str, dict, list[str]]] = [
    # (id, study document, pieces the one-line message must contain)
    ("optimizer", changed("train.optimizer", "adamw"),
     ["[train] optimizer must be one of adam, sgd", "did you mean adam?", "'adamw'"]),
    ("eval_every_zero", changed("train.eval_every", 0), ["[train] eval_every must be greater than or equal to 1"]),
    ("eval_every_negative", changed("train.eval_every", -10), ["[train] eval_every must be", "got -10"]),
    ("steps_negative", changed("train.steps", -5), ["[train] steps must be greater than or equal to 1", "got -5"]),
    ("steps_zero", changed("train.steps", 0), ["[train] steps must be greater than or equal to 1"]),
    ("lr_zero", changed("train.lr", 0), ["[train] lr must be greater than 0"]),
    ("lr_negative", changed("train.lr", -0.01), ["[train] lr must be greater than 0", "got -0.01"]),
    ("aux_batch_size", changed("train.aux_batch_size", -1), ["[train] aux_batch_size must be greater than or"]),
    ("batch_size", changed("train.batch_size", 0), ["[train] batch_size must be greater than or equal to 1"]),
    ("eval_batch_size", changed("train.eval_batch_size", 0), ["[train] eval_batch_size must be"]),
    # absurd values that could only hang or overflow a trial
    ("steps_huge", changed("train.steps", 10**12), ["[train] steps must be less than or equal to 10000000"]),
    ("batch_huge", changed("train.batch_size", 10**9), ["[train] batch_size must be less than or equal to 65536"]),
    ("lr_huge", changed("train.lr", 1e308), ["[train] lr must be at most 1e+30", "got 1e+308"]),
    ("image_huge", changed("train.image_size", 10**6), ["[train] image_size must be less than or equal to 4096"]),
    ("model_option_name", changed("train.model_options", {"widht": 16}),
     ["[train] model_options: widht is not an option of model small_cnn", "did you mean width?",
      "its options: width"]),
    ("model_option_type", changed("train.model_options", {"width": "wide"}),
     ['[train] model_options.width must be an integer, got "wide"']),
    ("model_width_zero", changed("train.model_options", {"width": 0}),
     ["[train] model_options = {width = 0}: model small_cnn cannot use these values", "change them"]),
    ("model_width_negative", changed("train.model_options", {"width": -4}),
     ["[train] model_options = {width = -4}: model small_cnn cannot use these values"]),
    ("model_option_resnet", changed("train", {**BASE["train"], "model": "resnet18",
                                              "model_options": {"small_input": "yes"}}),
     ["[train] model_options.small_input must be true or false"]),
    ("labels_beyond_digits", changed("budget.labels", [20, 20000]),
     ["[budget] labels = 20000 is more than digits (mlc) can give", "at most 988", "use values up to 988"]),
    ("fraction_rounds_to_zero", changed("budget", {"fraction": [0.0001]}),
     ["[budget] fraction = 0.0001 gives 0 labeled images", "use at least"]),
    ("ssl_labels_unbalanced", small("digits_ssl", budget={"labels": [969]}),
     ["[budget] labels = 969 is more than digits (ssl) can give", "at most 968"]),
    ("dg_per_class", small("digits_dg", budget={"per_class": [5, 500]}),
     ["[budget] per_class = 500 is more than digits (dg)", "at most 44 images per class of the target domain"]),
    ("preset_budget_on_another_dataset", small("ssl_svhn_paper", study={"name": "v", "preset": "ssl_svhn_paper",
                                                                         "dataset": "digits"}),
     ["[study] the preset's label_budget = 1000 is more than digits (ssl) can give", "add a [budget] with"]),
    ("momentum_one", changed("train.momentum", 1.0), ["[train] momentum must be less than 1"]),
    ("momentum_negative", changed("train.momentum", -0.5), ["[train] momentum must be greater than or equal"]),
    ("weight_decay", changed("train.weight_decay", -1e-4), ["[train] weight_decay must be greater than or equal"]),
    ("lr_gamma_zero", changed("train.lr_gamma", 0), ["[train] lr_gamma must be greater than 0"]),
    ("lr_gamma_above_one", changed("train.lr_gamma", 1.5), ["[train] lr_gamma must be less than or equal to 1"]),
    ("milestones_order", changed("train.lr_milestones", [20, 10]),
     ["[train] lr_milestones must be strictly increasing", "got [20, 10]"]),
    ("milestones_beyond_steps", changed("train.lr_milestones", [10, 30]),
     ["[train] lr_milestones must be below steps (30)", "drop the late ones or raise steps"]),
    ("milestone_zero", changed("train.lr_milestones", [0]), ["[train] lr_milestones", "greater than or equal to 1"]),
    ("dg_variant", small("digits_dg", train={"dg_variant": "jiont"}),
     ["[train] dg_variant must be one of baseline, fada, joint", "did you mean joint?"]),
    ("device", changed("train.device", "gpu"), ["[train] device must be auto, cpu, mps, cuda or cuda:N"]),
    ("ema_decay", changed("train.ema_decay", 1.5), ["[train] ema_decay must be less than or equal to 1"]),
    ("image_size", changed("train.image_size", -8), ["[train] image_size must be greater than or equal to 0"]),
    ("checkpoint_every", changed("train.checkpoint_every", -1), ["[train] checkpoint_every must be"]),
    ("num_workers", changed("train.num_workers", -2), ["[train] num_workers must be greater than or equal"]),
    ("max_eval_items", changed("train.max_eval_items", -1), ["[train] max_eval_items must be"]),
    ("aux_scale", changed("train.aux_scale", -1.0), ["[train] aux_scale must be greater than or equal to 0"]),
    ("nesterov_with_adam", changed("train.nesterov", True), ["[train] nesterov = true needs optimizer = 'sgd'"]),
    ("preset_value_named", changed("train.optimizer", None) | {"train": {**BASE["train"], "lr_gamma": 2.0}},
     ["[train] lr_gamma must be less than or equal to 1"]),
    ("aux_task_setting", changed("train.aux_tasks", ["rotation"]),
     ["[train] aux_tasks: rotation is an auxiliary task of the ssl setting, this study is mlc", "use attributes"]),
    ("model_name", changed("train.model", "resnet"), ['[train] model: "resnet" is not a name', "resnet18"]),
    ("seeds_negative", changed("study.seeds", [-1]), ["[study] seeds must be"]),
    ("arml_lr", changed("methods.arml.lr", -1.0), ["[methods.arml] weighting arml refuses these options: lr"]),
    ("weighting_option", changed("methods.arml.langevn", True),
     ["[methods.arml] langevn is not an option of weighting arml", "did you mean langevin or"]),
]


@pytest.mark.parametrize(("doc", "pieces"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_by_parse_study(doc: dict, pieces: list[str]) -> None:
    with pytest.raises(StudyError) as caught:
        parse_study(to_toml(doc), "v.toml")
    message = str(caught.value)
    assert message.startswith("v.toml: [") and "\n" not in message
    for piece in pieces:
        assert piece in message, message


@pytest.mark.parametrize(("doc", "pieces"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_by_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict,
                            pieces: list[str]) -> None:
    path = write(tmp_path, doc)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and pieces[0] in err, err


def test_documented_zeros_are_accepted() -> None:
    """0 means 'the default' for these keys (aux_batch_size 0 -> batch_size, image_size 0 -> native...)."""
    doc = copy.deepcopy(BASE)
    doc["train"].update(aux_batch_size=0, image_size=0, checkpoint_every=0, max_eval_items=0, lr_milestones=[])
    study = parse_study(to_toml(doc), "v.toml")
    assert study.config.aux_batch_size == 0 and study.config.lr_milestones == ()


def test_the_presets_schedule_may_outlast_a_shortened_run() -> None:
    """A preset's milestones beyond `steps` are its schedule cut short (smoke-sized studies rely on it)."""
    doc = small("digits_mlc", train={"steps": 4, "eval_every": 2})
    assert parse_study(to_toml(doc), "v.toml").config.lr_milestones == (400,)


def test_overrides_are_merged_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    study = load_study(path, {"train": {"steps": 100}, "budget": {"labels": [20]}})
    assert study.config.steps == 100 and study.budget.values == (20,)
    assert study.config.aux_attributes == ("is_0", "is_6", "random_0")     # the rest of [train] is kept
    assert load_study(path).config.steps == 30                              # the file is unchanged
    with pytest.raises(StudyError, match=r"--set train\.eval_every=0: \[train\] eval_every must be greater than or "
                                         r"equal to 1"):   # the --set is to blame, not the file
        load_study(path, {"train": {"eval_every": 0}})
    with pytest.raises(StudyError, match=r"\[train\] unknown key stepz \(did you mean steps\?\)"):
        load_study(path, {"train": {"stepz": 1}})
    assert parse_study_doc(copy.deepcopy(BASE), "d.toml").path == Path("d.toml")


def test_a_registry_that_fails_to_import_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trainables.models", None)   # `import trainables.models` raises
    with pytest.raises(StudyError, match=r"cannot check the study: trainables\.models\.BACKBONES is not available"):
        parse_study(to_toml(BASE), "v.toml")
