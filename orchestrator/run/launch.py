"""One launch of a wave's trials: a new Ray Tune experiment over the trials the records do not show as finished
(RUN_DIR/<wave>-<launch>), built from one reading of the records (orchestrator/run/resume.py): each interrupted trial
continues from the last checkpoint its records name, a search's sampler and a scheduler's rungs are told what
was recorded before."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.run import resume
from orchestrator.run.signals import Interrupts
from orchestrator.run.trial_worker import run_trial, trial_resources
from orchestrator.store.folder import RunFolder
from orchestrator.store.records import RunRecords
from orchestrator.store.schema import PLAN_FORMAT
from orchestrator.study.plan import Plan

CHECKPOINTS_KEPT = 4   # per trial; the records name the last one reported


def launch(plan: Plan, wave: dict[str, Any], waves: list[dict[str, Any]], run_dir: str, uri: str,
           interrupts: Interrupts) -> None:
    """Runs the wave's trials that have not finished (nothing when all have)."""
    from ray import tune

    from orchestrator.run.callback import StudyCallback

    records = RunRecords.read(run_dir)
    states = records.states()
    ids = resume.to_run(wave["trials"], states)
    if not ids:
        return
    wave["launches"] = wave.get("launches", 0) + 1
    RunFolder(run_dir).save_waves(waves)
    rows = records.rows
    chosen = set(ids)
    sub = dataclasses.replace(plan, trials=tuple(t for t in plan.trials if t.trial_id in chosen))
    saved = records.plan
    callback = StudyCallback(run_dir, plan.study.name, saved.trials, uri, interrupts, states=states)
    table = _trial_table(sub, resume.checkpoints(rows, ids, plan.tune_home, run_dir,
                                                 legacy=saved.format < PLAN_FORMAT))
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials=table),
                                    trial_resources(dataclasses.asdict(plan.study.resources)))
    r = plan.study.resources
    tuner = tune.Tuner(
        trainable,
        **_param_space(sub),
        tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent or None, reuse_actors=True,
                                    **_search(sub, plan, records)),
        run_config=tune.RunConfig(
            name=f"{wave['name']}-{wave['launches']}", storage_path=plan.tune_home, callbacks=[callback],
            verbose=0, failure_config=tune.FailureConfig(max_failures=r.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)),
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
    workers keep their checkpoints, and the checkpoint an earlier launch left (`resume_from`)."""
    resources = dataclasses.asdict(plan.study.resources)
    return {t.trial_id: {"trial_id": t.trial_id, "config": t.config.to_dict(), "resources": resources,
                         "storage": plan.tune_home, "resume_from": resume_from.get(t.trial_id)} for t in plan.trials}


def _search_meta(plan: Plan) -> dict[str, dict[str, Any]]:
    return {t.trial_id: {"group": t.group, "scheduler": t.scheduler, "search": t.search, "k": _k(t, plan),
                         "steps": t.config.steps, "eval_every": t.config.eval_every} for t in plan.trials}


def _k(trial: Any, plan: Plan) -> int:
    """A trial's number of auxiliary weights (its cell's aux_count in a sweep over it)."""
    if "aux_count" in trial.cell:
        return int(trial.cell["aux_count"])
    return len(plan.aux_names)


def _param_space(plan: Plan) -> dict[str, Any]:
    """Tuner arguments: every trial of the launch by id (a grid over ids), unless a search draws some weights."""
    from ray import tune

    if any(t.search for t in plan.trials):
        return {}
    return {"param_space": {"trial_id": tune.grid_search([t.trial_id for t in plan.trials])}}


def _search(sub: Plan, plan: Plan, records: RunRecords) -> dict[str, Any]:
    """TuneConfig arguments for a launch of `sub` (trials of `plan`): the study's scheduler (FIFO, with
    successive halving for the groups that ask for it, fed the results already recorded) and, when the launch
    has a search, the searcher that hands out its trials and draws their weights, told what the records hold."""
    from orchestrator.run.search import StudyScheduler, StudySearcher

    meta = _search_meta(plan)
    out: dict[str, Any] = {}
    if any(t.scheduler for t in sub.trials):
        scheduler = StudyScheduler(meta)
        scheduler.replay(records.rows)
        out["scheduler"] = scheduler
    if any(t.search for t in sub.trials):
        history, preset = resume.search_state(records.plan.trials, records.states(), records.last_rows())
        out["search_alg"] = StudySearcher([t.trial_id for t in sub.trials], meta, len(plan.aux_names), history,
                                          preset)
        out["num_samples"] = len(sub.trials)
    return out
