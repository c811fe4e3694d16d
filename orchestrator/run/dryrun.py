"""What `arml run --dry-run` prints: the plan as text or as JSON, how long it would take on this machine, and
whether its run folder already holds a run or is in use."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from orchestrator.store.folder import PLAN_FILE, STATES_FILE, WAVES_FILE, RunFolder, locate
from orchestrator.study.plan import describe_resources
from orchestrator.study.vocabulary import SAMPLERS, SCHEDULERS

STEP_COSTS = Path(__file__).with_name("step_costs.json")   # written by benchmarks/step_costs.py
ORCHESTRATION_S = (12.0, 0.09)   # a study's fixed and per-trial cost beyond training (orchestration_overhead.py)


def model_key(model_options: dict[str, Any] | None) -> str:
    """How step_costs.json names a model variant of a preset: 'width=16' (options sorted), '' for the preset's."""
    return ",".join(f"{k}={v}" for k, v in sorted((model_options or {}).items()))


MIN_MEASURED = 4   # finished trials with a measured wall time that calibrate the estimate of the rest


def estimate(plan: Any, done: frozenset[str] | set[str] = frozenset(),
             measured: dict[str, float] | None = None) -> dict[str, Any] | None:
    """The time the plan's trials not in `done` would take on this machine, from the per-step costs of its preset
    (measured on the machine step_costs.json names; a model variant's own costs where they were measured, e.g.
    the width-16 CNN of the digits studies; a study's other batch sizes scale them, other weightings by their
    measured factor): training and evaluation seconds summed over trials, then spread over the trials that run
    at once. None when the preset was not measured. Rough: the per-step costs were measured one trial at a time
    with the preset's auxiliary tasks, and a study's trials ran up to 3x slower (16 auxiliary tasks, two trials
    sharing 2 CPUs). `measured` (trial id -> wall seconds, the trials a run folder finished) calibrates it: the
    rest take what those took over what the per-step costs said they would ("calibration" in the result)."""
    if not STEP_COSTS.exists():
        return None
    costs = json.loads(STEP_COSTS.read_text())
    preset = plan.study.preset
    base = costs["presets"].get(preset)
    if not base:
        return None
    from trainables.config import PRESETS, TrainConfig

    variants = costs.get("variants", {}).get(preset, {})
    reference = {**TrainConfig().to_dict(), **PRESETS[preset]}
    ref_batch = reference["batch_size"] + (reference["aux_batch_size"] or reference["batch_size"])
    factors = costs["weighting_factors"]

    def seconds(trial: Any) -> float:
        c = trial.config
        step = variants.get(model_key(c.model_options), base)
        scale = (c.batch_size + (c.aux_batch_size or c.batch_size)) / ref_batch
        name = trial.weighting
        if name == "arml" and int(trial.weighting_options.get("amortize", 1) or 1) > 1:
            name = "arml_amortized"
        evals = math.ceil(c.steps / c.eval_every)
        per_eval = step["eval_s"] * (min(1.0, 2 * c.max_eval_items / step["eval_images"])
                                     if c.max_eval_items else 1.0)
        return (step.get("setup_s") or 0.0) + c.steps * step["step_s"] * scale * factors.get(name, 1.5) \
            + evals * per_eval

    todo = [trial for trial in plan.trials if trial.trial_id not in done]
    total = sum(seconds(trial) for trial in todo)
    known = {trial.trial_id: trial for trial in plan.trials}
    seen = {tid: wall for tid, wall in (measured or {}).items() if tid in known and wall and wall > 0}
    calibration = None
    if len(seen) >= MIN_MEASURED and todo:
        ratio = sum(seen.values()) / max(sum(seconds(known[tid]) for tid in seen), 1e-9)
        total *= ratio
        calibration = {"trials": len(seen), "ratio": ratio}
    resources = plan.study.resources
    cpus = os.cpu_count() or 1
    at_once = max(1, int(cpus // max(resources.cpus_per_trial, 1e-9)))
    if resources.max_concurrent:
        at_once = min(at_once, resources.max_concurrent)
    at_once = min(at_once, max(1, len(todo)))
    fixed, per_trial = ORCHESTRATION_S
    return {"trial_s": total, "wall_s": total / at_once + fixed + per_trial * len(todo), "trials": len(todo),
            "done": len(plan.trials) - len(todo), "at_once": at_once, "measured_on": costs["machine"],
            "gpu": resources.gpus_per_trial > 0, "calibration": calibration}


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h', '2.1 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _kind(method: Any, k: int) -> str:
    kind = method.weighting
    if method.is_grid:
        kind = f"grid ({len(method.grid_values)}^{k} = {len(method.grid_values) ** k} points)"
    elif method.is_search:
        s = method.search
        space = f"[0, {s['w_max']:g}]^{k}" if s["space"] == "box" else f"simplex sum {k}"
        kind = f"{SAMPLERS[s['sampler']].words} ({s['num_samples']} samples in {space})"
    elif method.is_population:
        p = method.population
        every = f"every {p['interval']} steps" if p["interval"] else "about 5 times a run"
        kind = f"population-based training ({p['size']} members in [0, {p['w_max']:g}]^{k}, {every})"
    if method.scheduler:
        kind += f" + {SCHEDULERS[method.scheduler['name']]}"
    return kind


DAMAGED = {PLAN_FILE: "--resume sets it aside and writes it anew from the study file (the seeds the records show)",
           STATES_FILE: "--resume rebuilds the trial states from the records (a failed trial counts as not run)",
           WAVES_FILE: "--resume runs every unfinished trial in one wave"}


def _finished(plan: Any, folder: RunFolder) -> dict[str, float]:
    """The plan's trials the run folder records as done (what --resume keeps instead of running), each with the
    wall seconds it took (0 where not recorded)."""
    if not folder.has_plan() or folder.damaged():
        return {}
    from orchestrator.store.records import RunRecords
    from orchestrator.store.schema import DONE, WALL_S

    try:
        records = RunRecords.read(folder.path)
        states, last = records.states(), records.last_rows()
    except (OSError, ValueError, TypeError, KeyError):   # a plan or state file this version cannot read
        return {}                                        # the estimate counts every trial; the run says more
    return {t.trial_id: float(states[t.trial_id].get(WALL_S) or last.get(t.trial_id, {}).get(WALL_S) or 0.0)
            for t in plan.trials if states.get(t.trial_id, {}).get("status") in DONE}


def plan_data(plan: Any, options: Any) -> dict[str, Any]:
    """The plan as plain values (`arml run --dry-run --json`)."""
    study, resources = plan.study, plan.study.resources
    counts = plan.counts_by_method()
    where = locate(study.name, options.storage)
    folder = RunFolder(where.run_dir)
    return {
        "study": study.name, "description": study.description, "file": str(study.path), "preset": study.preset,
        "setting": study.setting, "dataset": study.dataset, "aux_tasks": list(plan.aux_names),
        "aux_tasks_by_cell": {cell: list(names) for cell, names in plan.aux_names_by_cell().items()},
        "budget": {"field": study.budget.field, "values": list(study.budget.values)} if study.budget else None,
        "seeds": list(study.seeds),
        "sweep": [{"key": axis.key, "values": list(axis.values)} for axis in study.sweep],
        "cells": len(study.cells()),
        "methods": [{"label": m.label, "kind": _kind(m, max(study.k(m, c) for c in study.cells(m)))
                     + (" in " + "; ".join(f"{key} {', '.join(map(str, v))}" for key, v in m.cells.items())
                        if m.cells else ""), "trials": counts[m.label]} for m in study.methods],
        "total_trials": len(plan.trials),
        "resources": {"per_trial": describe_resources(resources), "max_concurrent": resources.max_concurrent,
                      "max_failures": resources.max_failures},
        "output_folder": where.shown(), "tune_storage": where.tune_home if where.remote else None,
        "holds_run": folder.holds_run(), "in_use_by": folder.in_use(), "damaged": folder.damaged(),
        "resume": bool(options.resume), "smoke": bool(plan.smoke), "estimate": _estimate(plan, folder, options.resume),
        "until_decided": bool(getattr(options, "until_decided", False)),
        "max_seeds": getattr(options, "max_seeds", None),
    }


def _basis(guess: dict[str, Any], preset: str) -> str:
    """What the time estimate stands on, in words."""
    measured = f"per-step costs of preset {preset} measured on a {guess['measured_on']}"
    calibration = guess.get("calibration")
    if calibration:
        return (f"{measured}, times {calibration['ratio']:.1f}: what the {calibration['trials']} finished trials of "
                "this folder took over what those costs said; rough")
    return f"{measured}; rough: a study's trials took up to 3x that (more auxiliary tasks, trials sharing the CPUs)"


def _estimate(plan: Any, folder: RunFolder, resume: bool) -> dict[str, Any] | None:
    """The estimate of what a run would do: with --resume, of the trials the folder has not finished, calibrated on
    those it has."""
    finished = _finished(plan, folder) if resume else {}
    return estimate(plan, set(finished), finished)


def plan_text(plan: Any, options: Any) -> str:
    """What `arml run --dry-run` prints."""
    d = plan_data(plan, options)
    budget = f"{d['budget']['field']}: {', '.join(f'{v:g}' for v in d['budget']['values'])}" if d["budget"] \
        else "label budget: the preset's"
    lines = [
        f"study {d['study']}: {d['description'] or '(no description)'}",
        f"  file {d['file']}; preset {d['preset']}; setting {d['setting']}; data set {d['dataset']}",
        f"  {len(d['aux_tasks'])} auxiliary tasks: {', '.join(d['aux_tasks'])}" if not d["aux_tasks_by_cell"] else
        "  auxiliary tasks per cell: " + "; ".join(f"{cell}: {', '.join(names)}"
                                                     for cell, names in d["aux_tasks_by_cell"].items()),
        f"  {budget}; seeds: {', '.join(map(str, d['seeds']))}",
        *([f"  sweep: {'; '.join(a['key'] + ' in ' + ', '.join(map(str, a['values'])) for a in d['sweep'])} "
           f"({d['cells']} cells; each cell is compared on its own)"] if d["sweep"] else []),
        "trials per method:",
    ]
    width = max(len(m["label"]) for m in d["methods"])
    for m in d["methods"]:
        lines.append(f"  {m['label']:<{width}}  {m['kind']:<40} {m['trials']:>6}")
    concurrent = d["resources"]["max_concurrent"] or "as many as the resources allow"
    lines += [
        f"total: {d['total_trials']} trials",
        f"each trial asks for: {d['resources']['per_trial']}; max concurrent: {concurrent}; "
        f"retries: {d['resources']['max_failures']}",
        f"output folder: {d['output_folder']}"
        + (f" (records and report; Ray keeps the trials' checkpoints in {d['tune_storage']})"
           if d["tune_storage"] else ""),
    ]
    guess = d["estimate"]
    if guess and guess["gpu"]:
        lines.append("time: the trials ask for GPUs; per-step costs on a GPU are in docs/performance.md (this "
                     "machine's CPU figures do not apply)")
    elif guess and not guess["trials"]:
        lines.append(f"time: none; all {guess['done']} planned trials have finished")
    elif guess:
        left = (f" for the {guess['trials']} trials left ({guess['done']} finished are kept)" if guess["done"]
                else "")
        lines.append(f"time on this machine: about {duration(guess['wall_s'])}{left} ({duration(guess['trial_s'])} "
                     f"of training and evaluation, {guess['at_once']} trial{'s' if guess['at_once'] > 1 else ''} "
                     f"at a time; {_basis(guess, d['preset'])})")
        if guess["wall_s"] > 86400:
            lines.append(f"  that is {duration(guess['wall_s'])}: check the plan (trials, steps) before you start")
    else:
        lines.append(f"time: no per-step cost is measured for preset {d['preset']} "
                     "(benchmarks/step_costs.py measures them)")
    if d["in_use_by"]:
        lines.append(f"  it is in use right now: {d['in_use_by']} is running it; wait for it to end (or stop it) "
                     "before running it again")
    elif d["holds_run"] and d["resume"]:
        lines.append("  it holds a run of this study: --resume runs its unfinished trials, finished ones are kept")
    elif d["holds_run"]:
        lines.append("  it already holds a run of this study: add --resume to finish its unfinished trials, "
                     "or remove the folder, or pass another --storage")
    for name in d["damaged"]:
        lines.append(f"  its {name} is damaged (not valid JSON): "
                     + (DAMAGED.get(name, "--resume starts that part afresh") if d["resume"] else
                        "run with --resume to repair it from the study file and the records"))
    if d["smoke"]:
        lines.append("smoke: every trial shrunk to <= 4 steps, evaluation every 2 steps, batches <= 16")
    if d["until_decided"]:
        lines.append(f"until decided: seeds are added until each comparison is decided"
                     f"{'' if d['max_seeds'] is None else ' (at most ' + str(d['max_seeds']) + ' seeds)'}")
    lines.append("dry run: nothing was started (drop --dry-run to run)")
    return "\n".join(lines)
