"""Data sets loaded through the real code: digits from scikit-learn, the others from fake files in tmp."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from fakedata import (
    CELEBA_ATTRIBUTES,
    write_fake_celeba,
    write_fake_cifar10,
    write_fake_pacs,
    write_fake_svhn,
)
from PIL import Image

from trainables.data import DATASETS, aux_names, build_data, status_table
from trainables.data.base import DataRequest, FileImageSet, TensorImageSet
from trainables.data.digits import ATTRIBUTES, attributes
from trainables.data.registry import ImageFileLoader
from trainables.errors import ConfigError, DataNotFoundError, PluginError, UnknownNameError


def req(setting: str, root: object = "unused", **kw: object) -> DataRequest:
    return DataRequest(setting=setting, data_root=os.fspath(root), **kw)  # type: ignore[arg-type]


def same(a: TensorImageSet, b: TensorImageSet) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)


# --- registry -------------------------------------------------------------------------------------------


def test_registry_names_and_errors() -> None:
    assert DATASETS.names() == ["celeba", "cifar10", "digits", "pacs", "svhn"]
    with pytest.raises(UnknownNameError, match="valid names: celeba, cifar10, digits, pacs, svhn"):
        build_data("mnist", req("ssl"))
    with pytest.raises(ConfigError, match="data set 'cifar10' supports settings: ssl; got 'mlc'"):
        build_data("cifar10", req("mlc"))
    with pytest.raises(ConfigError, match="supports settings: ssl, mlc, dg; got 'rl'"):
        aux_names("digits", req("rl"))


def test_aux_names_without_files() -> None:
    assert aux_names("cifar10", req("ssl")) == []
    assert aux_names("digits", req("dg", target_domain="rotated")) == ["original", "inverted", "noisy"]
    assert aux_names("pacs", req("dg", target_domain="photo")) == ["art_painting", "cartoon", "sketch"]
    celeba = aux_names("celeba", req("mlc", main_attribute="5_o_Clock_Shadow"))
    assert celeba == CELEBA_ATTRIBUTES[1:] and len(celeba) == 39
    chosen = req("mlc", main_attribute="odd", aux_attributes=("prime", "ge5"))
    assert aux_names("digits", chosen) == ["prime", "ge5"]
    with pytest.raises(ConfigError, match="'spots'.*valid names: odd, ge5"):
        aux_names("digits", req("mlc", main_attribute="spots"))
    with pytest.raises(ConfigError, match="'moon'.*valid names: photo, art_painting, cartoon, sketch"):
        aux_names("pacs", req("dg", target_domain="moon"))


# --- digits ---------------------------------------------------------------------------------------------


def test_digits_ssl_splits_and_balanced_budget() -> None:
    data = build_data("digits", req("ssl", label_budget=55, seed=1))
    sizes = [len(data.labeled), len(data.unlabeled), len(data.val), len(data.test)]
    assert sum(sizes) == 1797 and sizes[2:] == [270, 539] and sizes[0] == 55
    assert data.labeled.targets.bincount().tolist() == [6] * 5 + [5] * 5
    assert (data.unlabeled.targets == -1).all()
    x, y = data.val[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert data.info.image_shape == (1, 8, 8) and data.info.num_classes == 10 and data.info.augment == "none"
    other = build_data("digits", req("ssl", label_budget=55, seed=2))
    assert not same(data.labeled, other.labeled)
    assert same(data.val, other.val) and same(data.test, other.test)
    assert same(data.labeled, build_data("digits", req("ssl", label_budget=55, seed=1)).labeled)


def test_digits_ssl_budget_errors() -> None:
    with pytest.raises(ConfigError, match="label_budget 5000 is larger than the 988"):
        build_data("digits", req("ssl", label_budget=5000))
    with pytest.raises(ConfigError, match="must be > 0"):
        build_data("digits", req("ssl", label_budget=0))
    with pytest.raises(ConfigError, match="label_budget 985 .*class"):  # 988 images, < 99 in some class
        build_data("digits", req("ssl", label_budget=985))


def test_digits_resized() -> None:
    data = build_data("digits", req("ssl", label_budget=10, image_size=16))
    assert data.labeled.images.shape[1:] == (1, 16, 16) and data.info.image_shape == (1, 16, 16)


def test_digits_attributes_of_known_digits() -> None:
    table = attributes(torch.arange(10))
    col = {name: table[:, ATTRIBUTES.index(name)].tolist() for name in ATTRIBUTES}
    assert col["odd"] == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert col["ge5"] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert col["has_loop"] == [1, 0, 0, 0, 0, 0, 1, 0, 1, 1]
    assert col["prime"] == [0, 0, 1, 1, 0, 1, 0, 1, 0, 0]
    assert [col[f"is_{d}"].index(1) for d in range(10)] == list(range(10))


def test_digits_mlc_targets() -> None:
    data = build_data("digits", req("mlc", main_attribute="has_loop", label_budget=40, seed=0))
    assert data.main_name == "has_loop" and data.aux_names == [a for a in ATTRIBUTES if a != "has_loop"]
    assert data.info.num_classes == 2 and data.train.targets.shape == (988, 18)
    main = data.train.targets[:, 0]
    assert (main >= 0).sum() == 40 and set(main[main >= 0].tolist()) == {0, 1}
    assert (data.val.targets >= 0).all() and (data.test.targets >= 0).all()
    # the attributes agree with the digit read off the is_d columns
    t = data.test.targets
    names = [data.main_name, *data.aux_names]
    digit = t[:, [names.index(f"is_{d}") for d in range(10)]].argmax(1)
    assert torch.equal(t[:, 0], torch.isin(digit, torch.tensor([0, 6, 8, 9])).long())
    assert torch.equal(t[:, names.index("odd")], digit % 2)
    other = build_data("digits", req("mlc", main_attribute="has_loop", label_budget=40, seed=1))
    assert not torch.equal(main, other.train.targets[:, 0])
    assert torch.equal(data.train.targets[:, 1:], other.train.targets[:, 1:])  # random_i independent of seed
    assert same(data.val, other.val) and same(data.test, other.test)


def test_digits_mlc_fraction_and_errors() -> None:
    request = req("mlc", main_attribute="odd", label_fraction=0.1, aux_attributes=("random_0",))
    data = build_data("digits", request)
    assert (data.train.targets[:, 0] >= 0).sum() == round(0.1 * 988) and data.train.targets.shape[1] == 2
    with pytest.raises(ConfigError, match="label_budget > 0 or label_fraction > 0"):
        build_data("digits", req("mlc", main_attribute="odd"))
    with pytest.raises(ConfigError, match="not both"):
        build_data("digits", req("mlc", main_attribute="odd", label_budget=5, label_fraction=0.1))
    with pytest.raises(ConfigError, match="label_budget 2000 is larger than the 988"):
        build_data("digits", req("mlc", main_attribute="odd", label_budget=2000))
    with pytest.raises(ConfigError, match="auxiliary attribute 'nope'"):
        build_data("digits", req("mlc", main_attribute="odd", label_budget=5, aux_attributes=("nope",)))


def test_digits_dg_domains() -> None:
    data = build_data("digits", req("dg", target_domain="inverted", per_class=5, seed=0))
    assert list(data.sources) == ["original", "rotated", "noisy"] == list(data.source_val)
    for name in data.sources:
        n_train, n_val = len(data.sources[name]), len(data.source_val[name])
        assert n_val == round(0.1 * (n_train + n_val))
    total = sum(len(data.sources[n]) + len(data.source_val[n]) for n in data.sources) + len(data.target_test)
    assert total == 1797
    assert data.target_labeled.targets.bincount().tolist() == [5] * 10
    assert data.target_test.images.mean() > 0.6 > 0.4 > data.sources["original"].images.mean()
    original = data.sources["original"].images.mean(0)
    rotated = data.sources["rotated"].images.mean(0)
    turned = torch.rot90(original, 1, dims=(1, 2))
    assert (turned - rotated).abs().mean() < 0.3 * (original - rotated).abs().mean()
    noisy = data.sources["noisy"].images
    assert ((noisy * 16 - (noisy * 16).round()).abs() > 1e-3).float().mean() > 0.3  # off the 1/16 grid
    other = build_data("digits", req("dg", target_domain="inverted", per_class=5, seed=1))
    assert not same(data.target_labeled, other.target_labeled)
    assert same(data.target_test, other.target_test) and same(data.sources["noisy"], other.sources["noisy"])


def test_digits_dg_errors() -> None:
    with pytest.raises(ConfigError, match="per_class must be in 1..4[0-9] for digits.*got 500"):
        build_data("digits", req("dg", target_domain="noisy", per_class=500))
    with pytest.raises(ConfigError, match="unknown target_domain 'sky'.*original, inverted, rotated, noisy"):
        build_data("digits", req("dg", target_domain="sky", per_class=1))


# --- cifar10 and svhn -----------------------------------------------------------------------------------


def test_cifar10_from_fake_files(tmp_path) -> None:
    write_fake_cifar10(tmp_path, n_train=100, n_test=20)
    data = build_data("cifar10", req("ssl", tmp_path, label_budget=20, seed=0))
    assert [len(data.labeled), len(data.unlabeled), len(data.val), len(data.test)] == [20, 70, 10, 20]
    assert data.labeled.targets.bincount().tolist() == [2] * 10 and (data.unlabeled.targets == -1).all()
    assert data.labeled.images.dtype == torch.uint8 and data.info.augment == "flip_crop"
    x, _ = data.test[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)[b"data"]
    assert torch.equal(data.test.images, torch.from_numpy(raw.reshape(-1, 3, 32, 32)))  # channel-major
    other = build_data("cifar10", req("ssl", tmp_path, label_budget=20, seed=1))
    assert not same(data.labeled, other.labeled) and same(data.val, other.val)
    small = build_data("cifar10", req("ssl", tmp_path, label_budget=10, image_size=16))
    assert small.val.images.shape[1:] == (3, 16, 16) and small.info.image_shape == (3, 16, 16)
    with pytest.raises(ConfigError, match="label_budget 91 is larger than the 90"):
        build_data("cifar10", req("ssl", tmp_path, label_budget=91))


def test_cifar10_missing_and_unsafe_pickle(tmp_path) -> None:
    with pytest.raises(DataNotFoundError) as error:
        build_data("cifar10", req("ssl", tmp_path, label_budget=10))
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "cifar-10-python.tar.gz" in message
    assert "--data-root" in message and "ARML_DATA" in message and "data_batch_1" in message
    write_fake_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*getcwd"):
        build_data("cifar10", req("ssl", tmp_path, label_budget=10))
    assert "could not read it: " in status_table(str(tmp_path))  # the table still shows every data set


@pytest.mark.parametrize("subfolder", [False, True])
def test_svhn_from_fake_files(tmp_path, subfolder: bool) -> None:
    write_fake_svhn(tmp_path, n_train=200, n_test=30, subfolder=subfolder)
    data = build_data("svhn", req("ssl", tmp_path, label_budget=50, seed=3))
    n_val = round(200 * 7325 / 73257)
    sizes = [len(data.labeled), len(data.unlabeled), len(data.val), len(data.test)]
    assert sizes == [50, 150 - n_val, n_val, 30]
    assert data.labeled.targets.bincount().tolist() == [5] * 10 and data.info.augment == "crop"
    assert data.test.targets.tolist()[:11] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # 10 means digit 0
    from scipy.io import loadmat

    folder = tmp_path / "svhn" if subfolder else tmp_path
    x = loadmat(folder / "test_32x32.mat")["X"]
    assert torch.equal(data.test.images[4], torch.from_numpy(x[:, :, :, 4].transpose(2, 0, 1).copy()))
    with pytest.raises(ConfigError, match="label_budget 181"):
        build_data("svhn", req("ssl", tmp_path, label_budget=181))


def test_svhn_missing_names_both_paths(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match=f"{tmp_path} or {tmp_path / 'svhn'}.*train_32x32.mat"):
        build_data("svhn", req("ssl", tmp_path, label_budget=10))


# --- celeba and pacs ------------------------------------------------------------------------------------


def test_celeba_from_fake_files(tmp_path) -> None:
    write_fake_celeba(tmp_path, partition=(20, 6, 6))
    main_name = "5_o_Clock_Shadow"
    request = req("mlc", tmp_path, main_attribute=main_name, label_budget=4, seed=0)
    data = build_data("celeba", request)
    assert isinstance(data.train, FileImageSet) and data.info.augment == "flip"
    assert [len(data.train), len(data.val), len(data.test)] == [20, 6, 6]
    assert data.aux_names == CELEBA_ATTRIBUTES[1:] == aux_names("celeba", request)
    main = data.train.targets[:, 0]
    assert (main >= 0).sum() == 4 and main[main >= 0].bincount().tolist() == [2, 2]
    assert data.val.targets[:, 0].tolist() == [1, 0, 1, 0, 1, 0]  # image i (0-based) has it when i is even
    x, y = data.test[0]
    assert x.shape == (3, 64, 64) == data.info.image_shape and y.shape == (40,)
    assert 0 <= x.min() <= x.max() <= 1
    other = build_data("celeba", req("mlc", tmp_path, main_attribute=main_name, label_fraction=0.5, seed=1))
    assert (other.train.targets[:, 0] >= 0).sum() == 10 and other.val.paths == data.val.paths
    small = build_data(
        "celeba", req("mlc", tmp_path, main_attribute="Smiling", label_budget=2, image_size=16)
    )
    assert small.train[0][0].shape == (3, 16, 16) and small.aux_names[0] == "5_o_Clock_Shadow"
    with pytest.raises(ConfigError, match="'Freckles'.*valid names: 5_o_Clock_Shadow"):
        build_data("celeba", req("mlc", tmp_path, main_attribute="Freckles", label_budget=2))
    with pytest.raises(ConfigError, match="label_budget 21 is larger than the 20"):
        build_data("celeba", req("mlc", tmp_path, main_attribute="Smiling", label_budget=21))


def test_celeba_missing(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match=f"{tmp_path / 'celeba'}.*list_attr_celeba.txt.*ARML_DATA"):
        build_data("celeba", req("mlc", tmp_path, main_attribute="Smiling", label_budget=2))


def test_image_loader_center_crops(tmp_path) -> None:
    pixels = np.zeros((218, 178, 3), dtype=np.uint8)
    pixels[:20], pixels[20:198], pixels[198:] = (255, 0, 0), (0, 255, 0), (255, 0, 0)  # red bands top/bottom
    Image.fromarray(pixels).save(tmp_path / "face.png")
    x = ImageFileLoader(16, crop=178)(str(tmp_path / "face.png"))
    assert x.shape == (3, 16, 16) and x[0].max() < 0.05 and x[1].min() > 0.95
    assert ImageFileLoader(16)(str(tmp_path / "face.png"))[0].max() > 0.5  # no crop: red stays


def test_pacs_from_fake_files(tmp_path) -> None:
    write_fake_pacs(tmp_path, per_class=3, size=40)
    data = build_data("pacs", req("dg", tmp_path, target_domain="cartoon", per_class=2, image_size=32))
    assert list(data.sources) == ["photo", "art_painting", "sketch"] and data.class_names[0] == "dog"
    assert all(len(data.sources[d]) == 19 and len(data.source_val[d]) == 2 for d in data.sources)
    assert len(data.target_test) == 21 and data.target_labeled.targets.bincount().tolist() == [2] * 7
    assert data.info.augment == "resized_crop_flip" and data.info.image_shape == (3, 32, 32)
    x, y = data.sources["sketch"][0]  # png files
    assert x.shape == (3, 32, 32) and int(y) == 0 and 0 <= x.min() <= x.max() <= 1
    other = build_data("pacs", req("dg", tmp_path, target_domain="cartoon", per_class=2, seed=5))
    assert other.target_labeled.paths != data.target_labeled.paths
    assert other.source_val["photo"].paths == data.source_val["photo"].paths
    default = build_data("pacs", req("dg", tmp_path, target_domain="photo", per_class=1))
    assert default.info.image_shape == (3, 224, 224) == default.target_test[0][0].shape
    with pytest.raises(ConfigError, match="per_class must be in 1..3 .*got 4"):
        build_data("pacs", req("dg", tmp_path, target_domain="cartoon", per_class=4))


def test_pacs_missing_domain(tmp_path) -> None:
    write_fake_pacs(tmp_path, per_class=1, size=8, domains=("photo", "cartoon", "sketch"))
    with pytest.raises(DataNotFoundError, match=f"{tmp_path / 'pacs'} .*missing: art_painting/"):
        build_data("pacs", req("dg", tmp_path, target_domain="photo", per_class=1))


# --- status table and CLI -------------------------------------------------------------------------------


def test_status_table_and_cli(tmp_path) -> None:
    write_fake_cifar10(tmp_path, n_train=50, n_test=10)
    write_fake_pacs(tmp_path, per_class=1, size=8)
    table = status_table(str(tmp_path))
    rows = {line.split()[0]: line for line in table.splitlines() if line and not line.startswith(" ")}
    assert "found" in rows["cifar10"] and "train 45, val 5, test 10" in rows["cifar10"]
    assert "found" in rows["digits"] and "found" in rows["pacs"] and "photo 7" in rows["pacs"]
    assert "MISSING" in rows["svhn"] and "MISSING" in rows["celeba"]
    assert "ufldl.stanford.edu" in table and str(tmp_path / "celeba") in table
    env = {**os.environ, "ARML_DATA": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-m", "trainables.data", "--data-root", str(tmp_path)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    assert "cifar10" in out and "MISSING" in out and str(tmp_path) in out


def test_cli_help(capsys) -> None:
    from trainables.data.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "--data-root" in help_text and "ARML_DATA" in help_text and "downloaded" in help_text


# --- data sets from other packages (entry points) ----------------------------------------------------------

PLUGIN = '''
import torch
from trainables.data.base import DataInfo, DatasetStatus, SSLData, TensorImageSet


class Stripes:
    """A made-up data set: 2 classes of 4x4 images, horizontal or vertical stripes."""

    settings = ("ssl",)

    def build(self, request):
        labels = torch.arange(40) % 2
        images = torch.zeros(40, 1, 4, 4)
        images[labels == 0, :, ::2, :] = 1.0
        images[labels == 1, :, :, ::2] = 1.0
        part = TensorImageSet(images, labels)
        info = DataInfo("stripes", (1, 4, 4), 2, (0.5,), (0.5,))
        hidden = TensorImageSet(images, torch.full((40,), -1))
        return SSLData(info, part.subset(torch.arange(request.label_budget)), hidden, part, part)

    def check(self, data_root):
        return DatasetStatus("stripes", True, {"train": 40}, "made up")

    def aux_names(self, request):
        return []
'''


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A package installed the way pip leaves it: the module plus a .dist-info with METADATA and entry points."""
    (tmp_path / "stripes_plugin.py").write_text(PLUGIN)
    info = tmp_path / "stripes_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stripes-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[trainables.datasets]\nstripes = stripes_plugin:Stripes\nbroken = stripes_missing_module:Thing\n"
        "digits = stripes_plugin:Stripes\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    DATASETS.reload_plugins()
    yield
    monkeypatch.undo()
    sys.modules.pop("stripes_plugin", None)
    DATASETS.reload_plugins()


def test_data_set_plugin_from_an_entry_point(plugin_package) -> None:
    from trainables.config import resolve_config
    from trainables.data.digits import Digits
    from trainables.loop import fit

    assert DATASETS.names() == ["broken", "celeba", "cifar10", "digits", "pacs", "stripes", "svhn"]
    assert "stripes_plugin" not in sys.modules            # listed, not imported, until asked for
    data = build_data("stripes", req("ssl", label_budget=6))
    assert len(data.labeled) == 6 and data.info.name == "stripes" and "stripes_plugin" in sys.modules
    assert isinstance(DATASETS.get("digits"), Digits)    # a built-in name is never replaced
    config = resolve_config(dataset="stripes", setting="ssl", label_budget=6, steps=3, eval_every=3,
                            aux_tasks=("rotation",), device="cpu", model_options={"width": 4})
    assert fit(config)["step"] == 3
    with pytest.raises(PluginError, match=r"'broken' \(entry point broken = 'stripes_missing_module:Thing' in "
                                          r"group trainables.datasets of package stripes-plugin\) failed to load"):
        build_data("broken", req("ssl"))
    table = status_table("unused")
    assert "broken    MISSING" in table and "stripes   found" in table and "failed to load" in table


def test_no_plugins_after_reload() -> None:
    DATASETS.reload_plugins()
    assert DATASETS.names() == ["celeba", "cifar10", "digits", "pacs", "svhn"]
    with pytest.raises(UnknownNameError, match="'stripes'"):
        DATASETS.get("stripes")
