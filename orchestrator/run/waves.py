"""`--until-decided`: after the planned seeds, more seeds in waves while a paired comparison is not decided.

Which comparisons are still open is the verdicts' question (orchestrator/analysis/verdicts.py, the floor below
running and reporting). A wave's new trials keep the old ones' ids (ids hash what a trial computes), so a resumed
study finds every finished one.
"""

from __future__ import annotations

import dataclasses
import math

from orchestrator.analysis.verdicts import undecided_comparisons
from orchestrator.store.folder import RunFolder
from orchestrator.store.records import RunRecords
from orchestrator.store.schema import read_plan
from orchestrator.study.plan import Plan, make_plan, map_configs, smoke

DEFAULT_MAX_SEEDS = 20


def with_seeds(plan: Plan, seeds: list[int], cells: list[dict] | None = None) -> Plan:
    """The same study with these seeds: the old trials with their ids unchanged, the new seeds' trials in every
    cell, or only in `cells` (a sweep's cells whose comparisons are still open)."""
    study = dataclasses.replace(plan.study, seeds=tuple(seeds))
    bigger = make_plan(study, allow_large=True)
    if plan.smoke:
        bigger = smoke(bigger)
    root = plan.trials[0].config.data_root if plan.trials else ""
    bigger = map_configs(bigger, lambda c: c.replace(data_root=root)) if root else bigger
    old = {t.trial_id for t in plan.trials}
    wanted = None if cells is None else [_cell_key(c) for c in cells]
    kept = tuple(t for t in bigger.trials if t.trial_id in old or wanted is None or _cell_key(t.cell) in wanted)
    return dataclasses.replace(bigger, trials=kept, tune_home=plan.tune_home)


def with_saved_seeds(plan: Plan, run_dir: str) -> Plan:
    """On --resume: the seeds an earlier --until-decided added (kept in plan.json) join the study's own, with the
    trials it planned for them (only its open cells, in a sweep)."""
    folder = RunFolder(run_dir)
    if not folder.has_plan() and not folder.has_records():
        return plan
    saved = read_plan(run_dir) if folder.has_plan() else None
    if saved is None:   # plan.json lost or damaged: the seeds and trials the records show
        rows = RunRecords.read(run_dir).last_rows()
        seeds, planned = {row.get("seed") for row in rows.values()}, set(rows)
    else:
        seeds, planned = set(saved.seeds), {t.trial_id for t in saved.trials}
    extra = sorted(s for s in seeds if isinstance(s, int) and s not in plan.study.seeds)
    if not extra:
        return plan
    bigger = with_seeds(plan, [*plan.study.seeds, *extra])
    return dataclasses.replace(bigger, trials=tuple(t for t in bigger.trials
                                                    if t.seed in plan.study.seeds or t.trial_id in planned))


def next_seeds(run_dir: str, plan: Plan, max_seeds: int) -> tuple[list[int], list[dict] | None] | None:
    """The next wave: (the seeds it adds to the study, the sweep cells it is for; None: every cell), or None when
    every paired comparison is decided or the cap is reached. Counted in the open cell with the fewest seeds: a
    cell that joined the study after earlier waves (a new axis value) first gets the seeds the others have; the
    wave reaches the largest likely-deciding count (at most double the seeds so far, within the cap)."""
    questions = undecided_comparisons(run_dir)
    if not questions.compared:
        print("until decided: nothing to compare (no reference method with finished trials); no seeds added")
        return None
    cells = questions.open_cells if plan.study.sweep else None
    have = _fewest_seeds(plan, cells)
    if not questions.undecided:
        print(f"until decided: every paired comparison is decided with {have} seeds")
        return None
    if have >= max_seeds:
        print(f"until decided: {questions.undecided} comparison(s) still not decided at the cap of {max_seeds} "
              "seeds (raise --max-seeds, or accept 'not decided')")
        return None
    needs = [n for n in questions.seeds_to_decide if n == n and not math.isinf(n)]
    target = max([questions.min_pairs, have + 1, *(int(n) for n in needs)])
    target = min(target, 2 * have, max_seeds)
    first = max(plan.study.seeds) + 1
    return list(range(first, first + max(0, target - len(plan.study.seeds)))), cells


def _fewest_seeds(plan: Plan, cells: list[dict] | None) -> int:
    """The fewest seeds any of `cells` (None: the whole study) has trials for."""
    if cells is None:
        return len(plan.study.seeds)
    seeds: dict[tuple, set] = {_cell_key(c): set() for c in cells}
    for t in plan.trials:
        seeds.get(_cell_key(t.cell), set()).add(t.seed)
    return min((len(s) for s in seeds.values()), default=len(plan.study.seeds))


def _cell_key(cell: dict) -> tuple:
    """A sweep cell's values as text (a cell read from the report holds them as the CSV wrote them)."""
    return tuple(sorted((k, str(v)) for k, v in cell.items()))
