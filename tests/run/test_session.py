"""Ray that cannot start on this machine ends `arml run` in one line (exit 1), not Ray's traceback."""

from __future__ import annotations

import textwrap

import pytest

ray = pytest.importorskip("ray")


def test_ray_that_times_out_at_start_is_one_line(tmp_path, monkeypatch, capsys):
    from orchestrator.cli import main

    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen because ...\nmore lines")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    study = tmp_path / "s.toml"
    study.write_text(textwrap.dedent("""
        [study]
        name = "s"
        preset = "digits_mlc"
        [train]
        aux_attributes = ["is_0"]
        steps = 2
        [methods.uniform]
        """))
    assert main(["run", str(study), "--storage", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Ray could not start on this machine (The current node timed out during startup" in err
