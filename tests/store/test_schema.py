"""plan.json, the contract between the orchestrator's pieces: every trial carries its kind (how its method chooses
among its trials), a plan.json written before kinds were (today's main, and older) still loads with the kind told
from what each trial is, and a run folder keeps the format of the version that began it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from orchestrator.store.schema import PLAN_FORMAT, read_plan, write_plan
from orchestrator.study.plan import GRID, SEARCH, SINGLE, build_plan
from orchestrator.study.spec import load_study

DATA = Path(__file__).parents[1] / "data"


def test_a_plan_without_kinds_loads_with_each_trial_s_kind(tmp_path):
    shutil.copy(DATA / "main_plan" / "plan.json", tmp_path / "plan.json")   # written by the main of 2026-12-06
    assert "kind" not in json.loads((tmp_path / "plan.json").read_text())["trials"][0]
    plan = read_plan(str(tmp_path))
    kinds = {t.method: t.kind for t in plan.trials}
    assert kinds == {"uniform": SINGLE, "arml": SINGLE, "grid": GRID, "grid_asha": GRID, "tpe": SEARCH}
    assert plan.format == 0
    legacy = read_plan(str(DATA / "legacy_run" / "legacy"))                 # older still
    assert {t.kind for t in legacy.trials} <= {SINGLE, GRID}


def test_kinds_are_written_and_a_folder_keeps_the_format_it_began_with(tmp_path):
    from orchestrator.study.catalogue import find_study

    plan = build_plan(load_study(find_study("digits_search_vs_arml"), {"study": {"seeds": [0]},
                                                                        "budget": {"labels": [20]}}))
    write_plan(str(tmp_path), plan)
    stored = json.loads((tmp_path / "plan.json").read_text())
    assert {t["method"]: t["kind"] for t in stored["trials"]}["tpe"] == SEARCH and stored["format"] == PLAN_FORMAT
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(DATA / "main_plan" / "plan.json", old / "plan.json")
    assert write_plan(str(old), plan).format == 0          # begun before records named every checkpoint
    assert [t.trial_id for t in read_plan(str(old)).trials] == [t.trial_id for t in plan.trials]
