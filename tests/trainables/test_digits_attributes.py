"""The digits multi-label attributes: deterministic, documented, balanced, opt-in, ordered sets for K-scaling."""

from __future__ import annotations

import pytest
import torch

from trainables.data import aux_names, build_data
from trainables.data import digits_attributes as da
from trainables.data.__main__ import main as data_check
from trainables.data.base import DataRequest
from trainables.errors import ConfigError


def mlc(**kw: object) -> DataRequest:
    return DataRequest(setting="mlc", data_root="unused", main_attribute="has_loop", label_budget=40, **kw)


def test_many_attributes_of_three_kinds_each_documented() -> None:
    assert len(da.EXTRA_ATTRIBUTES) >= 32 and len(set(da.ALL_ATTRIBUTES)) == len(da.ALL_ATTRIBUTES)
    assert list(da.DESCRIPTIONS) == list(da.ALL_ATTRIBUTES)
    kinds = {kind for kind, _ in da.DESCRIPTIONS.values()}
    assert kinds == {"class", "image", "random"}
    assert all(len(text) > 10 for _, text in da.DESCRIPTIONS.values())
    assert sum(kind == "image" for kind, _ in da.DESCRIPTIONS.values()) >= 16


def test_labels_are_deterministic_and_keep_the_default_set() -> None:
    table = da.attribute_table()
    da.attribute_table.cache_clear()
    assert torch.equal(table, da.attribute_table())  # recomputed from scratch: same labels
    assert table.shape == (1797, len(da.ALL_ATTRIBUTES)) and set(table.unique().tolist()) == {0, 1}
    _, labels = __import__("trainables.data.digits", fromlist=["load"]).load()
    assert torch.equal(table[:, :18], da.class_attributes(labels, da.ATTRIBUTES))
    assert torch.equal(table[:, da.ALL_ATTRIBUTES.index("random_0")],
                       torch.randint(0, 2, (1797,), generator=torch.Generator().manual_seed(1000)))
    # no two attributes carry the same (or the complementary) labels
    for i in range(table.shape[1]):
        agree = (table[:, i:i + 1] == table[:, i + 1:]).double().mean(0)
        assert ((agree > 0.02) & (agree < 0.98)).all(), da.ALL_ATTRIBUTES[i]


def test_image_attributes_are_balanced_and_follow_the_images() -> None:
    table = da.attribute_table().double()
    for name in da.IMAGE_MEASURES:
        share = table[:, da.ALL_ATTRIBUTES.index(name)].mean()
        assert 0.3 <= share <= 0.7, name
    x = torch.zeros(4, 1, 8, 8)
    x[0, 0, :4] = 1.0       # ink at the top
    x[1, 0, 4:] = 1.0       # ink at the bottom
    x[2, 0, :, :2] = 0.5    # a thin faint bar on the left
    x[3, 0, 2:6, 2:6] = 1.0  # a block in the middle
    got = dict(zip(da.IMAGE_MEASURES, da.image_attributes(x).T.tolist()))
    assert got["top_heavy"] == [1, 0, 0, 0] and got["low_centred"] == [0, 1, 0, 0]
    assert got["left_heavy"][2] == 1 and got["centre_ink"][3] == 1 and got["bold"][2] == 0


def test_new_attributes_are_opt_in_and_in_order() -> None:
    assert aux_names("digits", mlc()) == [a for a in da.ATTRIBUTES if a != "has_loop"]
    chosen = ("ink_top", "random_7", "round_shape", "lr_symmetric")
    assert aux_names("digits", mlc(aux_attributes=chosen)) == list(chosen)
    data = build_data("digits", mlc(aux_attributes=chosen))
    assert data.aux_names == list(chosen) and data.train.targets.shape[1] == 5
    full = da.attribute_table()
    test_rows = torch.cat([data.val.targets, data.test.targets])
    columns = full[:, [da.ALL_ATTRIBUTES.index(n) for n in chosen]]
    # every (val/test) target row is a row of the full table: the columns are the named attributes
    rows = {tuple(r) for r in torch.cat([full[:, [2]], columns], 1).tolist()}
    assert all(tuple(r) in rows for r in test_rows.tolist())
    with pytest.raises(ConfigError, match="'ink_up'"):
        aux_names("digits", mlc(aux_attributes=("ink_up",)))


def test_k_scaling_sets() -> None:
    sets = {k: da.digits_aux_set(k) for k in da.AUX_SET_SIZES}
    assert [len(s) for s in sets.values()] == [2, 4, 8, 16, 32]
    assert all(sets[k] == sets[32][:k] for k in sets)
    assert "has_loop" not in sets[32] and len(set(sets[32])) == 32
    assert set(sets[32]) <= set(da.ALL_ATTRIBUTES)
    for k in (4, 8, 16, 32):  # every set mixes the three kinds
        assert {da.DESCRIPTIONS[n][0] for n in sets[k]} == {"class", "image", "random"}
    assert aux_names("digits", mlc(aux_attributes=sets[8])) == list(sets[8])
    with pytest.raises(ConfigError, match="k must be in 1..32"):
        da.digits_aux_set(33)


def test_data_check_lists_the_attributes(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert data_check(["--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits: multi-label attributes" in out
    for name in ("has_loop", "random_11", "lr_symmetric", "round_shape"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert da.DESCRIPTIONS[name][1] in line
