"""`trainables.fit` end to end: reported metrics and checkpoints, exact resume, every weighting, the multi-label
evidence (ARML weights the determining attributes above random ones), clear errors, and the file-based data
sets (fake CelebA/PACS/CIFAR-10/SVHN files) through the real loop."""

from __future__ import annotations

import math
import os
import shutil

import pytest
import torch
from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs, write_fake_svhn

import arml
from trainables.config import resolve_config
from trainables.errors import ConfigError, DivergenceError, UnknownNameError
from trainables.loop import aux_names, fit

KEYS = {"step", "val_acc", "test_acc", "test_error", "best_val_acc", "test_acc_at_best_val", "best_step",
        "main_loss", "lr", "weight_updates", "steps_per_s", "val_images"}
STATE_KEYS = {"step", "model", "optimizer", "weighting", "teacher", "streams", "best", "config"}
EVIDENCE = ["is_0", "is_6", "is_8", "is_9", "random_0", "random_1", "random_2", "random_3"]


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


def run(config, **kwargs) -> tuple[list[dict], list[dict]]:
    """fit(config); every report's metrics, and each checkpoint as loaded with weights_only=True."""
    metrics, states = [], []

    def report(m: dict, checkpoint: str | None) -> None:
        metrics.append(dict(m))
        assert checkpoint is not None and os.path.isdir(checkpoint)
        states.append(torch.load(os.path.join(checkpoint, "state.pt"), map_location="cpu", weights_only=True))

    final = fit(config, report, **kwargs)
    assert final == metrics[-1]
    return metrics, states


def check_reports(config, metrics: list[dict], states: list[dict], steps: list[int]) -> None:
    names = aux_names(config)
    expected = KEYS | {f"weight/{n}" for n in names} | {f"aux_loss/{n}" for n in names}
    assert [m["step"] for m in metrics] == steps
    for m, state in zip(metrics, states):
        assert set(m) == expected
        assert all(math.isfinite(v) for v in m.values())
        assert 0 <= m["test_acc"] <= 1 and m["test_error"] == pytest.approx(1 - m["test_acc"])
        assert m["best_val_acc"] >= m["val_acc"] and m["best_step"] <= m["step"]
        assert m["steps_per_s"] > 0 and m["lr"] > 0
        assert set(state) == STATE_KEYS and state["step"] == m["step"]
        assert state["config"] == config.to_dict()
        assert list(state["weighting"]["weights"].shape) == [len(names)]
        assert sum(state["streams"].values()) > 0


def same(a, b) -> bool:
    """Exact equality of nested checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# --- metrics and checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["uniform", "arml"])
@pytest.mark.parametrize("preset", ["digits_ssl", "digits_mlc", "digits_dg"])
def test_digits_presets_report_metrics_and_checkpoints(preset: str, weighting: str) -> None:
    config = resolve_config(preset, steps=20, eval_every=10, weighting=weighting, device="cpu")
    metrics, states = run(config)
    check_reports(config, metrics, states, [10, 20])
    assert (states[0]["teacher"] is not None) == (preset == "digits_ssl")   # exemplar-MT's EMA teacher
    if weighting == "arml":
        assert metrics[-1]["weight_updates"] == 20
        assert sum(metrics[-1][f"weight/{n}"] for n in aux_names(config)) == pytest.approx(len(aux_names(config)))
    else:
        assert all(metrics[-1][f"weight/{n}"] == 1.0 for n in aux_names(config))


# --- resume ------------------------------------------------------------------------------------------------


class Stop(Exception):
    pass


@pytest.mark.parametrize("preset,extra", [("digits_ssl", {}), ("digits_dg", {"dg_variant": "baseline"})])
def test_resume_continues_exactly(tmp_path, preset: str, extra: dict) -> None:
    # smaller batches than the preset's keep it fast; resuming does not depend on them
    config = resolve_config(preset, steps=40, eval_every=10, weighting="arml", device="cpu", batch_size=16,
                            aux_batch_size=32, **extra)
    full, full_states = run(config)
    check_reports(config, full, full_states, [10, 20, 30, 40])
    copy = tmp_path / "checkpoint"

    def stop_at_20(metrics: dict, checkpoint: str | None) -> None:
        if metrics["step"] == 20:
            shutil.copytree(checkpoint, copy)    # the loop deletes its folder once report returns
            raise Stop

    with pytest.raises(Stop):
        fit(config, stop_at_20)
    rest, rest_states = run(config, resume_from=str(copy))
    assert [m["step"] for m in rest] == [30, 40]
    for a, b in zip(full[2:], rest):
        a, b = dict(a), dict(b)
        a.pop("steps_per_s"), b.pop("steps_per_s")
        assert a == b
    for name in STATE_KEYS:
        assert same(full_states[-1][name], rest_states[-1][name]), name
    assert full_states[-1]["streams"] == rest_states[-1]["streams"] and rest_states[-1]["weighting"]["updates"] == 40


# --- every other weighting ---------------------------------------------------------------------------------


OTHER_WEIGHTINGS = {"adaloss": {}, "gradnorm": {}, "cosinesim": {}, "olaux": {"horizon": 5}, "fixed": "weights",
                    "autolambda": {}}


def test_every_weighting_is_covered() -> None:
    assert set(arml.WEIGHTINGS.names()) == {"uniform", "arml", *OTHER_WEIGHTINGS}


@pytest.mark.parametrize("weighting", sorted(OTHER_WEIGHTINGS))
def test_other_weightings_run_in_mlc(weighting: str) -> None:
    config = resolve_config("digits_mlc", steps=10, eval_every=10, weighting=weighting, device="cpu")
    names = aux_names(config)
    options = OTHER_WEIGHTINGS[weighting]
    if options == "weights":
        options = {"weights": [0.25 * (i % 4) for i in range(len(names))]}
    metrics = fit(config.replace(weighting_options=options))          # no report callable: fine too
    assert metrics["step"] == 10 and all(math.isfinite(v) for v in metrics.values())
    weights = [metrics[f"weight/{n}"] for n in names]
    if weighting == "fixed":
        assert weights == pytest.approx(options["weights"]) and metrics["weight_updates"] == 0
    elif weighting == "autolambda":   # Auto-Lambda's weights are not clamped (as in the authors' code)
        assert metrics["weight_updates"] >= 1 and all(math.isfinite(w) for w in weights)
    else:
        assert metrics["weight_updates"] >= 1 and min(weights) >= 0


# --- the multi-label evidence ------------------------------------------------------------------------------


def evidence_weights(seed: int, steps: int) -> dict[str, float]:
    config = resolve_config("digits_mlc", aux_attributes=EVIDENCE, weighting="arml", steps=steps, eval_every=steps,
                            seed=seed, device="cpu")
    assert config.main_attribute == "has_loop"
    metrics = fit(config)
    return {n: metrics[f"weight/{n}"] for n in EVIDENCE}


def assert_determining_above_random(weights: dict[str, float]) -> None:
    determining = [weights[n] for n in EVIDENCE[:4]]
    random = [weights[n] for n in EVIDENCE[4:]]
    assert min(determining) > max(random), weights


def test_arml_prefers_determining_attributes_seed0() -> None:
    assert_determining_above_random(evidence_weights(0, 100))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arml_prefers_determining_attributes_300_steps(seed: int) -> None:
    weights = evidence_weights(seed, 300)
    assert_determining_above_random(weights)
    assert min(weights[n] for n in EVIDENCE[:4]) > 1.5 and max(weights[n] for n in EVIDENCE[4:]) < 0.1


# --- bad input ---------------------------------------------------------------------------------------------


BAD = {
    "dataset": ("digits_ssl", {"dataset": "mnist"}, UnknownNameError, r"'mnist'.*valid names: celeba, cifar10, digits"),
    "model": ("digits_ssl", {"model": "vgg"}, UnknownNameError, r"'vgg'.*valid names: resnet18, small_cnn, wrn28_2"),
    "aux_task": ("digits_ssl", {"aux_tasks": ["jigsaw"]}, UnknownNameError,
                 r"'jigsaw'.*valid names: attributes, exemplar_mt, rotation, source_domains"),
    "weighting": ("digits_mlc", {"weighting": "magic"}, UnknownNameError,
                  r"'magic'.*valid names: adaloss, arml, autolambda, cosinesim, fixed, gradnorm, olaux, uniform"),
    "label_budget": ("digits_ssl", {"label_budget": 100000}, ConfigError, r"label_budget 100000"),
    "main_attribute": ("digits_mlc", {"main_attribute": "stripes"}, ConfigError, r"'stripes'.*valid names: odd"),
    "wrong_setting": ("digits_mlc", {"aux_tasks": ["rotation"]}, ConfigError, r"'rotation'.*ssl.*'mlc'"),
    "weighting_option": ("digits_mlc", {"weighting": "arml", "weighting_options": {"lr": -1.0}}, ConfigError,
                         r"'arml'.*lr"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error(case: str) -> None:
    preset, overrides, error, message = BAD[case]
    with pytest.raises(error, match=message):
        fit(resolve_config(preset, steps=2, eval_every=2, device="cpu", **overrides))


class _NoJvp(torch.autograd.Function):
    """An operation without a forward-mode rule (no jvp)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_a_model_without_forward_mode_rules_names_the_option_to_change(monkeypatch) -> None:
    from trainables.models.small_cnn import SmallCNN

    plain = SmallCNN.forward
    monkeypatch.setattr(SmallCNN, "forward", lambda self, x: _NoJvp.apply(plain(self, x)))
    config = resolve_config("digits_mlc", steps=2, eval_every=2, device="cpu", weighting="arml", batch_size=8,
                            aux_batch_size=16, max_eval_items=8)
    with pytest.raises(ConfigError, match=r"weighting 'arml'.*_NoJvp .*no forward-mode rule.*directional='central'"):
        fit(config)
    central = fit(config.replace(weighting_options={"directional": "central"}))
    assert central["step"] == 2 and central["weight_updates"] == 2


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"'digits_foo'.*valid names: dg_pacs_paper, digits_dg, digits_mlc"):
        resolve_config("digits_foo")


@pytest.mark.parametrize("preset,lr,task", [("digits_ssl", 1e8, "exemplar_mt|rotation"), ("digits_mlc", 1e30, "main")])
def test_divergence_names_step_and_task(preset: str, lr: float, task: str) -> None:
    config = resolve_config(preset, optimizer="sgd", lr=lr, steps=20, eval_every=10, device="cpu")
    with pytest.raises(DivergenceError, match=rf"diverged at step \d+: loss of task [a-z_0-9, ]*({task})"):
        fit(config)


# --- file-based and 32x32 data sets through fit ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data")
    write_fake_celeba(root, partition=(20, 6, 6))
    write_fake_pacs(root, per_class=3, size=48)
    write_fake_cifar10(root, n_train=100, n_test=20)
    write_fake_svhn(root, n_train=100, n_test=20)
    return str(root)


SMALL = dict(steps=3, eval_every=2, batch_size=4, aux_batch_size=4, eval_batch_size=8, max_eval_items=8,
             device="cpu", num_workers=0)
REAL = {
    "celeba-resnet18": ("mlc_celeba_paper", dict(image_size=16, model="resnet18", label_fraction=0.5)),
    "celeba-small_cnn-arml-workers": ("mlc_celeba_paper", dict(image_size=32, model="small_cnn", label_fraction=0.5,
                                                               weighting="arml", num_workers=1)),
    "pacs-resnet18": ("dg_pacs_paper", dict(image_size=16, model="resnet18", per_class=1)),
    "pacs-small_cnn-arml-workers": ("dg_pacs_paper", dict(image_size=32, model="small_cnn", per_class=1,
                                                          weighting="arml", num_workers=1)),
    "cifar10-wrn28_2": ("ssl_cifar10_paper", dict(label_budget=10, steps=2)),
    "svhn-wrn28_2-arml": ("ssl_svhn_paper", dict(label_budget=20, steps=2, weighting="arml")),
}


@pytest.mark.parametrize("case", sorted(REAL))
def test_paper_presets_run_on_fake_files(fake_root: str, case: str) -> None:
    preset, overrides = REAL[case]
    config = resolve_config(preset, data_root=fake_root, **{**SMALL, **overrides})
    metrics, states = run(config)
    check_reports(config, metrics, states, [2] if config.steps == 2 else [2, 3])
