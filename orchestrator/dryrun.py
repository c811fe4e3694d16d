"""What `arml run --dry-run` prints: the plan as text or as JSON, and whether its folder already holds a run."""

from __future__ import annotations

import os
from typing import Any

from orchestrator.plan import DEFAULT_STORAGE, describe_resources, run_dir


def local_run_dir(plan: Any, storage: str | None) -> str:
    """The local folder of records and reports (with a URI storage: ./runs/STUDY, as the runner does)."""
    if storage and "://" in storage:
        return os.path.join(DEFAULT_STORAGE, plan.study.name)
    return run_dir(plan, storage)


def holds_run(folder: str) -> bool:
    """True when `folder` already holds a run of a study (its plan or Tune's experiment state)."""
    if not os.path.isdir(folder):
        return False
    names = os.listdir(folder)
    return "plan.json" in names or "tuner.pkl" in names or any(n.startswith("experiment_state") for n in names)


def _kind(method: Any, k: int) -> str:
    kind = method.weighting
    if method.is_grid:
        kind = f"grid ({len(method.grid_values)}^{k} = {len(method.grid_values) ** k} points)"
    elif method.is_search:
        s = method.search
        space = f"[0, {s['w_max']:g}]^{k}" if s["space"] == "box" else f"simplex sum {k}"
        kind = f"{s['sampler'].upper()} search ({s['num_samples']} samples in {space})"
    if method.scheduler:
        kind += f" + {method.scheduler['name'].upper()}"
    return kind


def plan_data(plan: Any, options: Any) -> dict[str, Any]:
    """The plan as plain values (`arml run --dry-run --json`)."""
    study, resources = plan.study, plan.study.resources
    counts = plan.counts_by_method()
    folder = run_dir(plan, options.storage)
    exists = holds_run(local_run_dir(plan, options.storage))
    return {
        "study": study.name, "description": study.description, "file": str(study.path), "preset": study.preset,
        "setting": study.setting, "dataset": study.dataset, "aux_tasks": list(plan.aux_names),
        "budget": {"field": study.budget.field, "values": list(study.budget.values)} if study.budget else None,
        "seeds": list(study.seeds),
        "methods": [{"label": m.label, "kind": _kind(m, len(plan.aux_names)), "trials": counts[m.label]}
                    for m in study.methods],
        "total_trials": len(plan.trials),
        "resources": {"per_trial": describe_resources(resources), "max_concurrent": resources.max_concurrent,
                      "max_failures": resources.max_failures},
        "output_folder": folder, "holds_run": exists, "resume": bool(options.resume), "smoke": bool(plan.smoke),
        "until_decided": bool(getattr(options, "until_decided", False)),
        "max_seeds": getattr(options, "max_seeds", None),
    }


def plan_text(plan: Any, options: Any) -> str:
    """What `arml run --dry-run` prints."""
    d = plan_data(plan, options)
    budget = f"{d['budget']['field']}: {', '.join(f'{v:g}' for v in d['budget']['values'])}" if d["budget"] \
        else "label budget: the preset's"
    lines = [
        f"study {d['study']}: {d['description'] or '(no description)'}",
        f"  file {d['file']}; preset {d['preset']}; setting {d['setting']}; data set {d['dataset']}",
        f"  {len(d['aux_tasks'])} auxiliary tasks: {', '.join(d['aux_tasks'])}",
        f"  {budget}; seeds: {', '.join(map(str, d['seeds']))}",
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
        f"output folder: {d['output_folder']}",
    ]
    if d["holds_run"] and d["resume"]:
        lines.append("  it holds a run of this study: --resume runs its unfinished trials, finished ones are kept")
    elif d["holds_run"]:
        lines.append("  it already holds a run of this study: add --resume to finish its unfinished trials, "
                     "or remove the folder, or pass another --storage")
    if d["smoke"]:
        lines.append("smoke: every trial shrunk to <= 4 steps, evaluation every 2 steps, batches <= 16")
    if d["until_decided"]:
        lines.append(f"until decided: seeds are added until each comparison is decided"
                     f"{'' if d['max_seeds'] is None else ' (at most ' + str(d['max_seeds']) + ' seeds)'}")
    lines.append("dry run: nothing was started (drop --dry-run to run)")
    return "\n".join(lines)
