"""`--until-decided`: after the planned seeds, more seeds in waves while a paired comparison is not decided.

Which comparisons are still open is the verdicts' question, asked through the one function the options carry
(`RunOptions.open_questions`, from orchestrator/report/verdicts.py): running never imports reporting. A wave's
new trials keep the old ones' ids (ids hash what a trial computes), so a resumed study finds every finished one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from orchestrator.store.folder import RunFolder
from orchestrator.store.schema import read_plan
from orchestrator.study.plan import Plan, make_plan, map_configs, smoke

DEFAULT_MAX_SEEDS = 20


def with_seeds(plan: Plan, seeds: list[int]) -> Plan:
    """The same study with these seeds: new trials for new seeds, the old ones with their ids unchanged."""
    study = dataclasses.replace(plan.study, seeds=tuple(seeds))
    bigger = make_plan(study, allow_large=True)
    if plan.smoke:
        bigger = smoke(bigger)
    root = plan.trials[0].config.data_root if plan.trials else ""
    bigger = map_configs(bigger, lambda c: c.replace(data_root=root)) if root else bigger
    return dataclasses.replace(bigger, tune_home=plan.tune_home)


def with_saved_seeds(plan: Plan, run_dir: str) -> Plan:
    """On --resume: the seeds an earlier --until-decided added (kept in plan.json) join the study's own."""
    if not RunFolder(run_dir).has_plan():
        return plan
    extra = [s for s in read_plan(run_dir).seeds if s not in plan.study.seeds]
    return with_seeds(plan, [*plan.study.seeds, *extra]) if extra else plan


def next_seeds(run_dir: str, plan: Plan, max_seeds: int, open_questions: Callable[[str], Any]) -> list[int]:
    """The seeds of the next wave: none when every paired comparison is decided or the cap is reached; else
    enough to reach the largest likely-deciding count (at most double the seeds so far, within the cap)."""
    questions = open_questions(run_dir)
    have = len(plan.study.seeds)
    if not questions.compared:
        print("until decided: nothing to compare (no reference method with finished trials); no seeds added")
        return []
    if not questions.undecided:
        print(f"until decided: every paired comparison is decided with {have} seeds")
        return []
    if have >= max_seeds:
        print(f"until decided: {questions.undecided} comparison(s) still not decided at the cap of {max_seeds} "
              "seeds (raise --max-seeds, or accept 'not decided')")
        return []
    needs = [n for n in questions.seeds_to_decide if n == n and not math.isinf(n)]
    target = max([questions.min_pairs, have + 1, *(int(n) for n in needs)])
    target = min(target, 2 * have, max_seeds)
    first = max(plan.study.seeds) + 1
    return list(range(first, first + target - have))
