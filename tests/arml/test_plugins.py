"""Weighting methods from outside the package: `@arml.register_weighting` and the entry-point group
`arml.weightings`, loaded on the first lookup; a plug-in that fails to load is an error naming it."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

import arml

PLUGIN = '''
import arml


class Halves(arml.Weighting):
    """Every auxiliary weight is 0.5."""

    name = "myplugin"
    fixed_weights = True

    def __init__(self, num_aux, *, value=0.5, task_names=None):
        super().__init__(num_aux, task_names=task_names)
        self._set_initial_weights([value] * num_aux)
'''


def install(tmp_path: Path, entry: str, module: str = "myplugin_pkg", code: str = PLUGIN) -> None:
    """A package with a `*.dist-info` (METADATA and entry_points.txt) on sys.path, as pip would leave it."""
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(textwrap.dedent(code))
    info = tmp_path / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[arml.weightings]\n{entry}\n")


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """arml.WEIGHTINGS as if no lookup had happened yet, tmp_path on sys.path; both undone afterwards."""
    monkeypatch.setattr(arml.WEIGHTINGS, "_items", dict(arml.WEIGHTINGS._items))
    monkeypatch.setattr(arml.WEIGHTINGS, "_plugins_loaded", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [m for m in sys.modules if m.startswith(("myplugin_pkg", "broken_pkg"))]:
        del sys.modules[name]


def test_an_entry_point_plugin_is_found_on_first_lookup(tmp_path, fresh_registry):
    install(tmp_path, "myplugin = myplugin_pkg:Halves")
    assert "myplugin_pkg" not in sys.modules          # nothing imported before a lookup
    w = arml.make_weighting("myplugin", num_aux=3, value=0.25)
    assert w.weights.tolist() == [0.25] * 3 and type(w).fixed_weights
    assert "myplugin" in arml.WEIGHTINGS.names() and "arml" in arml.WEIGHTINGS
    theta = torch.nn.Parameter(torch.ones(2))
    w.backward(theta.sum(), torch.stack([theta[0], theta[1], theta.sum()]), [theta])
    assert theta.grad.tolist() == [1.5, 1.5]


def test_a_plugin_that_fails_to_import_is_named(tmp_path, fresh_registry):
    install(tmp_path, "broken = broken_pkg:Missing", module="broken_pkg", code="import not_a_module_anywhere\n")
    with pytest.raises(arml.PluginError, match="entry point 'broken' = 'broken_pkg:Missing'.*not_a_module"):
        arml.WEIGHTINGS.names()


def test_a_plugin_must_be_a_weighting_with_its_name_and_fixed_weights(tmp_path, fresh_registry):
    install(tmp_path, "other = myplugin_pkg:Halves")
    with pytest.raises(arml.PluginError, match="set name = 'other'"):
        arml.WEIGHTINGS.get("other")


def test_register_weighting_decorator(monkeypatch):
    monkeypatch.setattr(arml.WEIGHTINGS, "_items", dict(arml.WEIGHTINGS._items))

    @arml.register_weighting
    class Zero(arml.Weighting):
        name = "zero"
        fixed_weights = True

        def __init__(self, num_aux, *, task_names=None):
            super().__init__(num_aux, task_names=task_names)
            self._set_initial_weights([0.0] * num_aux)

    assert arml.make_weighting("zero", num_aux=2).weights.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="registered twice"):
        arml.register_weighting(type("Other", (Zero,), {"name": "zero", "fixed_weights": True}))

    class Undeclared(arml.Weighting):
        name = "undeclared"

    with pytest.raises(ValueError, match="declare fixed_weights"):
        arml.register_weighting(Undeclared)
    with pytest.raises(TypeError, match="subclass of arml.Weighting"):
        arml.WEIGHTINGS.register("thing")(object)
