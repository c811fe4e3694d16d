"""The run folder: a damaged JSON file is one line naming it and what to do, half-written files never take a
real name, and a folder with records in it holds a run (a plain run into it is refused)."""

from __future__ import annotations

import json

import pytest

from orchestrator.store.folder import PLAN_FILE, DamagedFile, RunFolder, atomic_path


def test_a_damaged_json_file_is_one_line_naming_it_and_the_fix(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / PLAN_FILE).write_text('{"study": "q", "trials": [')
    with pytest.raises(DamagedFile) as caught:
        folder.read_json(PLAN_FILE)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / PLAN_FILE) in message and "--resume" in message
    assert folder.read_json("missing.json", default=[]) == []
    assert folder.set_aside_if_damaged(PLAN_FILE) and not folder.has_plan()
    assert (tmp_path / "plan.json.damaged").exists()
    folder.write_json(PLAN_FILE, {"study": "q"})
    assert not folder.set_aside_if_damaged(PLAN_FILE) and folder.read_json(PLAN_FILE) == {"study": "q"}


def test_waves_survive_a_damaged_waves_json(tmp_path):
    (tmp_path / "waves.json").write_text("[{")
    assert RunFolder(tmp_path).waves() == []


def test_an_interrupted_write_leaves_neither_a_cut_file_nor_a_temporary_one(tmp_path):
    target = tmp_path / "data_requirement.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(str(target)) as temporary:
        assert temporary.endswith(".png") and temporary != str(target)
        with open(temporary, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["data_requirement.png"]
    with atomic_path(str(target)) as temporary:
        with open(temporary, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_a_folder_with_records_holds_a_run_even_without_its_plan(tmp_path):
    folder = RunFolder(tmp_path / "q")
    assert not folder.holds_run()
    folder.prepare()
    (tmp_path / "q" / "records.jsonl").write_text(json.dumps({"trial_id": "a", "step": 2}) + "\n")
    assert folder.holds_run() and folder.has_records() and not folder.has_plan()
