"""`val_labels`: validation on a number of labeled images drawn per seed from the fixed validation split, in every
setting and every data set (digits, and CIFAR-10/SVHN/CelebA/PACS from fake files in their real formats). The
draw is exact in size, stable for a seed, different across seeds, stratified, independent of the label budget's
draw; training images, their labels and the test split stay as they were; `fit` reports val_acc on exactly it."""

from __future__ import annotations

import os

import pytest
import torch
from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs, write_fake_svhn

from trainables.config import resolve_config
from trainables.data import build_data, val_size
from trainables.data.base import DataRequest
from trainables.data.splits import draw_validation
from trainables.errors import ConfigError
from trainables.loop import fit

pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


def req(setting: str, root: object = "unused", **kw: object) -> DataRequest:
    return DataRequest(setting=setting, data_root=os.fspath(root), **kw)  # type: ignore[arg-type]


def members(images) -> list:
    """What identifies a set's items: file paths, else (image bytes, target) per item, in order."""
    if hasattr(images, "paths"):
        return list(images.paths)
    return [(images[i][0].numpy().tobytes(), images.targets[i].tolist()) for i in range(len(images))]


def training_and_test(data) -> dict[str, list]:
    """Every part of a bundle but its validation split, as `members` (training labels included)."""
    parts = {name: value for name, value in vars(data).items() if name not in ("val", "source_val")}
    out = {}
    for name, value in parts.items():
        if isinstance(value, dict):
            out.update({f"{name}/{k}": members(v) for k, v in value.items() if hasattr(v, "targets")})
        elif hasattr(value, "targets"):
            out[name] = members(value)
    return out


def val_parts(data) -> dict[str, list]:
    return {name: members(images) for name, images in data.val_sets().items()}


def check_draw(name: str, make, count: int, told: int | None = None) -> None:
    """Built with val_labels = count: exactly `count` validation images, all of the whole split's, the same for
    the same seed, others for another seed; everything else as with the whole split; one more than the split
    holds refused in one line. `told`: what `val_size` says when not the split built here (the real files')."""
    whole = build_data(name, make(seed=0))
    drawn = build_data(name, make(seed=0, val_labels=count))
    assert sum(len(v) for v in drawn.val_sets().values()) == count
    full = val_parts(whole)
    for part, items in val_parts(drawn).items():
        assert all(item in full[part] for item in items)           # drawn from the fixed validation split
        assert items == [i for i in full[part] if i in items]      # in the split's order
    assert training_and_test(drawn) == training_and_test(whole)    # training labels and test split untouched
    assert val_parts(build_data(name, make(seed=0, val_labels=count))) == val_parts(drawn)   # stable for a seed
    assert val_parts(build_data(name, make(seed=1, val_labels=count))) != val_parts(drawn)   # another seed
    assert val_parts(build_data(name, make(seed=0, val_labels=0))) == full                   # 0: the whole split
    size = sum(len(v) for v in full.values())
    assert val_size(name, make(seed=0)) == (size if told is None else told)   # what the study check compares with
    with pytest.raises(ConfigError) as caught:
        build_data(name, make(seed=0, val_labels=size + 1))
    message = str(caught.value)
    assert f"val_labels {size + 1} is more than {name} " in message and f": {size} labeled images" in message
    assert "\n" not in message


# --- digits: the three settings ------------------------------------------------------------------------------

DIGITS = {
    "ssl": dict(label_budget=30),
    "mlc": dict(main_attribute="has_loop", label_budget=30, aux_attributes=("is_0", "random_0")),
    "dg": dict(target_domain="inverted", per_class=2),
}


@pytest.mark.parametrize("setting", sorted(DIGITS))
def test_digits_draw(setting: str) -> None:
    check_draw("digits", lambda **kw: req(setting, **DIGITS[setting], **kw), 40)


def test_digits_draw_is_stratified_and_independent_of_the_label_draw() -> None:
    ssl = build_data("digits", req("ssl", label_budget=20, seed=3, val_labels=40))
    counts = ssl.val.targets.bincount(minlength=10)
    assert int(counts.sum()) == 40 and int(counts.max() - counts.min()) <= 1         # 27-28 per class in 270
    mlc = build_data("digits", req("mlc", **DIGITS["mlc"], seed=3, val_labels=30))
    whole = build_data("digits", req("mlc", **DIGITS["mlc"], seed=3))
    share = whole.val.targets[:, 0].float().mean()
    assert abs(int(mlc.val.targets[:, 0].sum()) - 30 * share) <= 1                  # the main attribute's share
    dg = build_data("digits", req("dg", **DIGITS["dg"], val_labels=30))
    assert {name: len(v) for name, v in dg.source_val.items()} == {"original": 10, "rotated": 10, "noisy": 10}
    assert all(v.targets.bincount(minlength=10).tolist() == [1] * 10 for v in dg.source_val.values())
    # the labels a seed draws for training are the same with any validation draw, and the other way round
    for budget in (20, 50):
        plain = build_data("digits", req("ssl", label_budget=budget, seed=3))
        cut = build_data("digits", req("ssl", label_budget=budget, seed=3, val_labels=40))
        assert members(cut.labeled) == members(plain.labeled)
        assert members(cut.val) == members(ssl.val)


def test_the_draw_is_nested_across_counts_and_never_uses_the_global_generator() -> None:
    labels = torch.arange(200) % 10
    torch.manual_seed(0)
    (small,) = draw_validation([labels], 20, seed=5, where="x")
    torch.manual_seed(1)
    (large,) = draw_validation([labels], 60, seed=5, where="x")
    assert set(small.tolist()) <= set(large.tolist())      # more validation labels add to the fewer ones
    with pytest.raises(ConfigError, match="val_labels must be >= 0"):
        draw_validation([labels], -1, seed=5, where="x")


def test_a_set_without_its_own_subset_is_cut_too() -> None:
    """A data set from another package may hand any ImageSet: the validation draw still applies to it."""
    from trainables.data.base import DataInfo, ImageSet, SSLData, TensorImageSet
    from trainables.data.splits import restrict_validation

    class Listed(ImageSet):
        def __init__(self, n: int) -> None:
            self.targets = torch.arange(n) % 4

        def __getitem__(self, i: int):
            return torch.full((1, 2, 2), float(i)), self.targets[i]

    empty = TensorImageSet(torch.zeros(0, 1, 2, 2), torch.zeros(0))
    data = SSLData(DataInfo("listed", (1, 2, 2), 4, (0.5,), (0.5,)), empty, empty, Listed(40), Listed(8))
    cut = restrict_validation(data, req("ssl", val_labels=8, seed=1), "listed (ssl)")
    assert len(cut.val) == 8 and cut.val.targets.bincount().tolist() == [2] * 4 and cut.test is data.test
    images, targets = cut.val.batch(torch.arange(8))
    assert torch.equal(targets, images[:, 0, 0, 0].long() % 4)   # each image with its own label
    assert restrict_validation(data, req("ssl", seed=1), "listed (ssl)") is data


# --- the other data sets, from fake files in their real formats ----------------------------------------------


def test_cifar10_draw(tmp_path) -> None:
    write_fake_cifar10(tmp_path, n_train=400, n_test=20)
    make = lambda **kw: req("ssl", tmp_path, label_budget=20, **kw)  # noqa: E731
    whole = build_data("cifar10", make())
    assert len(whole.val) == 40
    drawn = build_data("cifar10", make(val_labels=20))
    assert len(drawn.val) == 20 and drawn.val.targets.bincount().tolist() == [2] * 10
    check_draw("cifar10", make, 20, told=5_000)    # val_size tells the real files' split without reading them


def test_svhn_draw(tmp_path) -> None:
    write_fake_svhn(tmp_path, n_train=400, n_test=20)
    make = lambda **kw: req("ssl", tmp_path, label_budget=20, **kw)  # noqa: E731
    assert len(build_data("svhn", make()).val) == 40
    check_draw("svhn", make, 15, told=7_325)


def test_celeba_draw(tmp_path) -> None:
    write_fake_celeba(tmp_path, partition=(12, 16, 4), size=(24, 30))
    make = lambda **kw: req("mlc", tmp_path, main_attribute="5_o_Clock_Shadow", label_budget=4, image_size=8,  # noqa: E731
                            **kw)
    assert val_size("celeba", make()) == 16                       # read from list_eval_partition.txt
    assert val_size("celeba", req("mlc", tmp_path / "none", main_attribute="Smiling")) == 19_867
    check_draw("celeba", make, 6)
    drawn = build_data("celeba", make(val_labels=6))
    assert drawn.val.targets[:, 0].tolist().count(1) == 3         # the main attribute alternates: half of 6


def test_pacs_draw(tmp_path) -> None:
    write_fake_pacs(tmp_path, per_class={"photo": 20, "art_painting": 10, "cartoon": 10, "sketch": 10}, size=12)
    make = lambda **kw: req("dg", tmp_path, target_domain="sketch", per_class=2, image_size=8, **kw)  # noqa: E731
    whole = build_data("pacs", make())
    assert {d: len(v) for d, v in whole.source_val.items()} == {"photo": 14, "art_painting": 7, "cartoon": 7}
    check_draw("pacs", make, 14)
    drawn = build_data("pacs", make(val_labels=14))
    assert {d: len(v) for d, v in drawn.source_val.items()} == {"photo": 7, "art_painting": 4, "cartoon": 3}
    assert drawn.source_val["photo"].targets.bincount().tolist() == [1] * 7
    assert val_size("pacs", req("dg", tmp_path / "none", target_domain="photo")) is None   # not here: unknown


# --- fit: what validation metrics are computed on ------------------------------------------------------------


def test_fit_reports_val_acc_on_the_drawn_images_and_trains_the_same() -> None:
    """Model selection (best step, best_val_acc) reads val_acc: it must come from the drawn images only, while
    training and the test accuracy at every step are those of the same run validated on the whole split."""
    base = resolve_config("digits_ssl", label_budget=20, steps=4, eval_every=1, lr_milestones=(), device="cpu",
                          aux_tasks=("rotation",), model_options={"width": 4}, batch_size=8, aux_batch_size=8,
                          seed=2)
    runs = {}
    for count in (0, 25):
        seen: list[dict] = []
        fit(base.replace(val_labels=count), lambda m, _c, seen=seen: seen.append(dict(m)))
        runs[count] = seen
    assert [m["val_images"] for m in runs[0]] == [270] * 4 and [m["val_images"] for m in runs[25]] == [25] * 4
    assert [m["test_acc"] for m in runs[25]] == [m["test_acc"] for m in runs[0]]     # same training, same test
    assert [m["main_loss"] for m in runs[25]] == [m["main_loss"] for m in runs[0]]
    for m in runs[25]:
        assert abs(m["val_acc"] * 25 - round(m["val_acc"] * 25)) < 1e-9       # a share of 25 images
    best = max(runs[25], key=lambda m: (m["val_acc"], -m["step"]))
    assert runs[25][-1]["best_step"] == best["step"] and runs[25][-1]["test_acc_at_best_val"] == best["test_acc"]


def test_fit_evaluates_exactly_the_drawn_subset() -> None:
    """The loop's validation set is the data build's draw: the same images, not a re-draw or the whole split."""
    import trainables.loop as loop

    config = resolve_config("digits_mlc", label_budget=20, steps=2, eval_every=2, lr_milestones=(), device="cpu",
                            aux_attributes=("is_0",), model_options={"width": 4}, val_labels=12, seed=4)
    built = loop.build(config, torch.device("cpu"))
    expected = build_data("digits", req("mlc", main_attribute="has_loop", label_budget=20, aux_attributes=("is_0",),
                                        val_labels=12, seed=4))
    assert built.setting.eval_sets()["val"][0].targets.tolist() == expected.val.targets.tolist()
    assert members(built.setting.eval_sets()["val"][0]) == members(expected.val)
    assert len(built.setting.eval_sets()["test"][0]) == 539


def test_config_takes_val_labels_like_any_count() -> None:
    assert resolve_config("digits_ssl").val_labels == 0
    with pytest.raises(ConfigError, match="val_labels must be greater than or equal to 0, got -1"):
        resolve_config("digits_ssl", val_labels=-1)
    with pytest.raises(ConfigError, match="val_labels must be an integer"):
        resolve_config("digits_ssl", val_labels="20")
    with pytest.raises(ConfigError, match="val_labels 300 is more than digits \\(ssl\\) holds in its validation"):
        fit(resolve_config("digits_ssl", steps=1, val_labels=300, device="cpu"))
