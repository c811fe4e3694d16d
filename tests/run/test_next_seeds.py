"""`--until-decided` chooses each wave's seeds from the open cells (no Ray here; the waves through Ray are in
test_waves.py): a sweep cell that joined the study after earlier waves first gets the seeds the others have."""

from __future__ import annotations

import dataclasses

import pytest
from studyfiles import tiny_study

from orchestrator.analysis.verdicts import UndecidedComparisons
from orchestrator.run import waves
from orchestrator.study.plan import make_plan
from orchestrator.study.spec import load_study

SWEEP = "[budget]\nlabels = [20]\n[sweep.train]\nval_labels = [20, 40]\n"


def _plan(tmp_path, lagging_from: int | None):
    """A two-cell sweep (20 and 40 validation labels) with seeds 0-5; from seed `lagging_from` on, the 40-label cell
    has no trials (it joined the study after a wave gave the 20-label cell those seeds)."""
    study = load_study(tiny_study(tmp_path, "lag", extra=SWEEP))
    plan = make_plan(dataclasses.replace(study, seeds=tuple(range(6))))
    if lagging_from is None:
        return plan
    return dataclasses.replace(plan, trials=tuple(t for t in plan.trials
                                                  if t.cell["val_labels"] == 20 or t.seed < lagging_from))


def _open(monkeypatch, cells, needs=(12.0,)):
    monkeypatch.setattr(waves, "undecided_comparisons", lambda run_dir: UndecidedComparisons(
        compared=4, undecided=len(needs), seeds_to_decide=list(needs), open_cells=cells))


def _seeds(plan, labels):
    return sorted({t.seed for t in plan.trials if t.cell["val_labels"] == labels})


def test_a_cell_that_joined_late_first_gets_the_seeds_the_others_have(tmp_path, monkeypatch):
    plan = _plan(tmp_path, lagging_from=3)
    _open(monkeypatch, [{"val_labels": 20}, {"val_labels": 40}])
    extra, cells = waves.next_seeds(str(tmp_path), plan, max_seeds=6)
    assert extra == [] and cells == [{"val_labels": 20}, {"val_labels": 40}]   # the 40-label cell: 3 seeds, to 6
    bigger = waves.with_seeds(plan, [*plan.study.seeds, *extra], cells)
    assert _seeds(bigger, 40) == _seeds(bigger, 20) == list(range(6))
    old = {t.trial_id for t in plan.trials}
    assert old <= {t.trial_id for t in bigger.trials}                  # nothing planned before changes id


def test_the_wave_is_counted_in_the_open_cell_with_the_fewest_seeds(tmp_path, monkeypatch):
    plan = _plan(tmp_path, lagging_from=3)
    _open(monkeypatch, [{"val_labels": 20}, {"val_labels": 40}])
    # at the cap of 6 the 20-label cell is done, but the 40-label cell has 3 seeds: the old count (the study's 6)
    # stopped here, leaving that cell at half the seeds the cap allows
    assert waves.next_seeds(str(tmp_path), plan, max_seeds=6) is not None
    full = _plan(tmp_path, lagging_from=None)
    assert waves.next_seeds(str(tmp_path), full, max_seeds=6) is None
    extra, _ = waves.next_seeds(str(tmp_path), full, max_seeds=24)
    assert extra == list(range(6, 12))                                 # at most double, then toward 12
    _open(monkeypatch, [{"val_labels": 40}])                                 # only the 40-label cell still open
    extra, cells = waves.next_seeds(str(tmp_path), full, max_seeds=8)
    assert extra == [6, 7] and cells == [{"val_labels": 40}]
    bigger = waves.with_seeds(full, [*full.study.seeds, *extra], cells)
    assert _seeds(bigger, 20) == list(range(6)) and _seeds(bigger, 40) == list(range(8))


@pytest.mark.parametrize("needs", [(), (float("inf"),)])
def test_no_wave_when_decided_and_never_past_the_cap(tmp_path, monkeypatch, needs):
    full = _plan(tmp_path, lagging_from=None)
    _open(monkeypatch, [{"val_labels": 20}] if needs else [], needs)
    following = waves.next_seeds(str(tmp_path), full, max_seeds=7)
    assert following is None if not needs else following == ([6], [{"val_labels": 20}])
