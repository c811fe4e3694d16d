"""Backbones: feature shapes, last shared parameters, WRN-28-2's size, local pretrained ResNet-18 weights."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from trainables.data.base import DataInfo
from trainables.errors import ConfigError, DataNotFoundError, UnknownNameError
from trainables.models import BACKBONES, build_backbone


def info(shape: tuple[int, int, int]) -> DataInfo:
    return DataInfo("fake", shape, 10, (0.5,) * shape[0], (0.25,) * shape[0])


@pytest.mark.parametrize(
    "name, shape, dim",
    [
        ("small_cnn", (1, 8, 8), 128),
        ("small_cnn", (3, 12, 10), 128),
        ("wrn28_2", (3, 32, 32), 128),
        ("wrn28_2", (1, 8, 8), 128),
        ("resnet18", (3, 32, 32), 512),
        ("resnet18", (1, 16, 16), 512),
        ("resnet18", (3, 72, 72), 512),
    ],
)
def test_forward_shape_and_last_shared(name: str, shape: tuple[int, int, int], dim: int) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, info(shape))
    features = model(torch.rand(2, *shape))
    assert features.shape == (2, dim) == (2, model.feature_dim)
    last = model.last_shared_parameters()
    assert last and all(any(p is q for q in model.parameters()) for p in last)
    features.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last)


def test_registry_and_unknown_option() -> None:
    assert BACKBONES.names() == ["resnet18", "small_cnn", "wrn28_2"]
    with pytest.raises(UnknownNameError, match="valid names: resnet18, small_cnn, wrn28_2"):
        build_backbone("vgg", info((3, 32, 32)))
    with pytest.raises(
        ConfigError, match="backbone 'wrn28_2' has no option 'widht'; valid options: bn_momentum"
    ):
        build_backbone("wrn28_2", info((3, 32, 32)), widht=4)
    assert build_backbone("small_cnn", info((1, 8, 8)), width=8).feature_dim == 32


def test_wrn28_2_as_in_the_paper() -> None:
    model = build_backbone("wrn28_2", info((3, 32, 32)))
    count = sum(p.numel() for p in model.parameters())
    assert count + 128 * 10 + 10 == 1_467_610  # the usual WRN-28-2 count, with a 10-way classifier
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 25 and all(m.momentum == 0.001 for m in norms)
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1 for m in model.modules())


def test_resnet18_small_input_switch() -> None:
    small = build_backbone("resnet18", info((3, 64, 64)))
    large = build_backbone("resnet18", info((3, 112, 112)))
    assert small.net.conv1.kernel_size == (3, 3) and isinstance(small.net.maxpool, torch.nn.Identity)
    assert large.net.conv1.kernel_size == (7, 7) and isinstance(large.net.maxpool, torch.nn.MaxPool2d)
    forced = build_backbone("resnet18", info((3, 112, 112)), small_input=True)
    assert forced.net.conv1.stride == (1, 1)


def test_resnet18_pretrained_from_local_file(tmp_path) -> None:
    torch.manual_seed(1)
    source = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_backbone("resnet18", info((3, 224, 224)), pretrained=str(path))
    assert torch.equal(model.net.conv1.weight, source.conv1.weight)
    assert torch.equal(model.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.skipped_pretrained == []
    small = build_backbone("resnet18", info((3, 32, 32)), pretrained=str(path))
    assert small.skipped_pretrained == ["conv1.weight"]
    assert torch.equal(small.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    with pytest.raises(DataNotFoundError, match="no pretrained weights at .*missing.pth"):
        build_backbone("resnet18", info((3, 224, 224)), pretrained=str(tmp_path / "missing.pth"))
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="not a resnet18 state dict"):
        build_backbone("resnet18", info((3, 224, 224)), pretrained=str(tmp_path / "other.pth"))
