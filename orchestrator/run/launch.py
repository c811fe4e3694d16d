"""One launch of a wave's trials: a new Ray Tune experiment over the trials the records do not show as finished
(RUN_DIR/<wave>-<launch>), built from one reading of the records (orchestrator/run/resume.py): each interrupted trial
continues from the last checkpoint its records name, a search's sampler and a scheduler's rungs are told what
was recorded before."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.run import population, resume
from orchestrator.run.signals import Interrupts
from orchestrator.run.trial_worker import run_trial, trial_resources
from orchestrator.store.folder import RunFolder
from orchestrator.store.records import RunRecords
from orchestrator.store.schema import PLAN_FORMAT
from orchestrator.study.plan import Plan

CHECKPOINTS_KEPT = 4   # per trial; the records name the last one reported


def launch(plan: Plan, wave: dict[str, Any], waves: list[dict[str, Any]], run_dir: str, uri: str,
           interrupts: Interrupts) -> None:
    """Runs the wave's trials that have not finished (nothing when all have): the members of population-based
    training in a Tune experiment of their own after the others (Tune's PBT refuses a search algorithm beside it).
    A wave of added seeds runs one seed at a time (every method, search and population of it, in every cell it is
    for), so a wave stopped half-way leaves whole seeds for the report and the next wave's count; a search's or a
    population's seed cut short would not count (orchestrator/analysis/run_data.py)."""
    records = RunRecords.read(run_dir)
    ids = resume.to_run(wave["trials"], records.states())
    if not ids:
        return
    wave["launches"] = wave.get("launches", 0) + 1
    RunFolder(run_dir).save_waves(waves)
    chosen = set(ids)
    trials = [t for t in plan.trials if t.trial_id in chosen]
    name = f"{wave['name']}-{wave['launches']}"
    groups = ([(f"-s{seed}", [t for t in trials if t.seed == seed]) for seed in sorted({t.seed for t in trials})]
              if wave.get("seeds") else [("", trials)])
    for group, mine in groups:
        parts = [("", [t for t in mine if not t.population]), ("-pbt", [t for t in mine if t.population])]
        for suffix, part in parts:
            if part and not interrupts.received:
                _launch_part(plan, dataclasses.replace(plan, trials=tuple(part)), f"{name}{group}{suffix}", run_dir,
                             uri, interrupts, RunRecords.read(run_dir) if (group or suffix) else records)


def _launch_part(plan: Plan, sub: Plan, name: str, run_dir: str, uri: str, interrupts: Interrupts,
                 records: RunRecords) -> None:
    """One Tune experiment (RUN_DIR/`name`) over the trials of `sub`, all of them unfinished."""
    from ray import tune

    from orchestrator.run.callback import StudyCallback

    states = records.states()
    ids = [t.trial_id for t in sub.trials]
    saved = records.plan
    callback = StudyCallback(run_dir, plan.study.name, saved.trials, uri, interrupts, states=states)
    table = _trial_table(sub, resume.checkpoints(records.rows, ids, plan.tune_home, run_dir,
                                                 legacy=saved.format < PLAN_FORMAT))
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials=table),
                                    trial_resources(dataclasses.asdict(plan.study.resources)))
    r = plan.study.resources
    tuner = tune.Tuner(
        trainable,
        **_param_space(sub, plan, records),
        tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent or None, reuse_actors=True,
                                    **_search(sub, plan, records)),
        run_config=tune.RunConfig(
            name=name, storage_path=plan.tune_home, callbacks=[callback],
            verbose=0, failure_config=tune.FailureConfig(max_failures=r.max_failures),
            # a population's members keep every checkpoint (one per perturbation): the one a member copies must be
            # there when it restarts, however long it waits for a CPU
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if any(t.population for t in sub.trials) else CHECKPOINTS_KEPT)),
    )
    try:
        tuner.fit()
    except Exception:
        if callback.faults:   # recording failed (disk full, read-only storage): one line, not Tune's traceback
            raise callback.faults[-1] from None
        raise
    finally:
        interrupts.after_tune()


def _trial_table(plan: Plan, resume_from: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What each trial's Tune actor is handed: its config, the study's resources, where a data-parallel trial's
    workers keep their checkpoints, the checkpoint an earlier launch left (`resume_from`) and, for a population's
    member, its number of weights (`k`: its config holds them as w0..)."""
    resources = dataclasses.asdict(plan.study.resources)
    return {t.trial_id: {"trial_id": t.trial_id, "config": t.config.to_dict(), "resources": resources,
                         "storage": plan.tune_home, "resume_from": resume_from.get(t.trial_id),
                         **({"k": _k(t, plan)} if t.population else {})} for t in plan.trials}


def _search_meta(plan: Plan) -> dict[str, dict[str, Any]]:
    return {t.trial_id: {"group": t.group, "scheduler": t.scheduler, "search": t.search, "population": t.population,
                         "k": _k(t, plan), "steps": t.config.steps, "eval_every": t.config.eval_every}
            for t in plan.trials}


def _k(trial: Any, plan: Plan) -> int:
    """A trial's number of auxiliary weights (its cell's aux_count in a sweep over it)."""
    if "aux_count" in trial.cell:
        return int(trial.cell["aux_count"])
    return len(plan.aux_names)


def _param_space(sub: Plan, plan: Plan, records: RunRecords) -> dict[str, Any]:
    """Tuner arguments: every trial of the launch by id (a grid over ids), unless a search draws some weights; a
    population's members with their weights (orchestrator/run/population.py), those a resumed member's records
    last show."""
    from ray import tune

    if any(t.population for t in sub.trials):
        return {"param_space": population.param_space([t.trial_id for t in sub.trials], _search_meta(plan),
                                                      resume.member_weights(sub.trials, records.last_rows()))}
    if any(t.search for t in sub.trials):
        return {}
    return {"param_space": {"trial_id": tune.grid_search([t.trial_id for t in sub.trials])}}


def _search(sub: Plan, plan: Plan, records: RunRecords) -> dict[str, Any]:
    """TuneConfig arguments for a launch of `sub` (trials of `plan`): the study's scheduler (FIFO, with
    successive halving for the groups that ask for it, fed the results already recorded) and, when the launch
    has a search, the searcher that hands out its trials and draws their weights, told what the records hold."""
    from orchestrator.run.search import StudyScheduler, StudySearcher

    meta = _search_meta(plan)
    out: dict[str, Any] = {}
    if any(t.scheduler or t.population for t in sub.trials):
        scheduler = StudyScheduler(meta)
        scheduler.replay(records.rows)
        out["scheduler"] = scheduler
    if any(t.search for t in sub.trials):
        history, preset = resume.search_state(records.plan.trials, records.states(), records.last_rows())
        out["search_alg"] = StudySearcher([t.trial_id for t in sub.trials], meta, len(plan.aux_names), history,
                                          preset)
        out["num_samples"] = len(sub.trials)
    return out
