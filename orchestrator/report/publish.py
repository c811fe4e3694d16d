"""Publishing a report to MLflow: the study's parent run gets the report's files as artifacts, its params and
headline metrics, and every trial's run the status its records give (orchestrator/store/tracking.py writes)."""

from __future__ import annotations

import math
import os

from orchestrator.analysis.headline import CellNumbers, cell_numbers, headline, parent_metrics, verdict_tags
from orchestrator.analysis.run_data import RunData
from orchestrator.analysis.tables import data_requirement
from orchestrator.report.headline import note_markdown
from orchestrator.report.markdown import margin_of
from orchestrator.store.folder import MLFLOW_DB, REPORT_DIR, RunFolder
from orchestrator.store.schema import ACTIVE, TrialStatus


def report_uri(run_dir: str, flag: str | None, log_mlflow: bool) -> str | None:
    """The URI `arml report` logs to: --mlflow-uri; with --log-mlflow the run folder's sqlite store if it
    exists, else $MLFLOW_TRACKING_URI, else a new sqlite store there; None: no MLflow."""
    from orchestrator.store.tracking import default_uri

    if flag:
        return flag
    if not log_mlflow:
        return None
    if os.path.exists(RunFolder(run_dir).file(MLFLOW_DB)):
        return default_uri(run_dir)
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri(run_dir)


def study_params(data: RunData) -> dict[str, str]:
    """What the study's MLflow parent run shows as params: preset, setting, methods, budgets, seeds."""
    plan = data.plan
    return {"preset": plan.preset or "", "setting": plan.setting or "",
            "dataset": plan.dataset or "", "methods": ", ".join(data.methods),
            "budget_key": data.budget_key, "budgets": ", ".join(f"{b:g}" for b in data.budgets),
            "seeds": ", ".join(str(s) for s in sorted(set(data.trials["seed"]))),
            "aux_tasks": ", ".join(plan.aux_names), "margin_points": f"{margin_of(data):g}",
            "trials": str(len(data.trials)), "axes": ", ".join(data.axes),
            **{f"sweep.{key}": ", ".join(map(str, dict.fromkeys(data.trials[key]))) for key in data.axes}}


def headline_metrics(data: RunData) -> dict[str, float]:
    """Per method and budget: mean test accuracy (validation-selected) and seeds, as parent-run metrics."""
    out = {}
    for _, r in data_requirement(data).iterrows():
        budget = "all" if math.isnan(r["budget"]) else f"{r['budget']:g}"
        out[f"test_acc/{r['method']}/{budget}"] = float(r["test_acc_mean"])
        out[f"seeds/{r['method']}/{budget}"] = float(r["seeds"])
    return out


def log_to_mlflow(data: RunData, run_dir: str, uri: str, folder: str, log_records: bool,
                  extra_artifacts: tuple[str, ...] = (), final: bool = False,
                  numbers: list[CellNumbers] | None = None) -> bool:
    """Logs the report folder on the study's parent run (and missing trial records); False if MLflow failed.
    The parent run is closed when every trial has ended, or, with `final` (the end of `arml run`), as KILLED
    when some never ran (an interrupted study is never FINISHED). The parent run gets what the report found:
    `parent_metrics` (the data-requirement curve against the label budget, compute cost per method, each search's
    cost relative to ARML, labels to reach), every paired verdict as a tag and the headline as its description.
    `numbers`: each cell's tables, when computed already."""
    from orchestrator.store.tracking import Tracker, redact

    tracker = Tracker(uri, data.plan.study, run_dir, data.plan.trials)
    if not tracker.enabled:
        return False
    # a study running right now (another process holds the folder) owns its runs' statuses: only log
    busy = None if final else RunFolder(run_dir).in_use()
    states = dict(zip(data.trials["trial_id"], data.trials["status"]))
    if log_records:
        had = set(tracker.children)
        rows = data.rows.to_dict("records") if len(data.rows) else []
        by_trial: dict[str, list[dict]] = {}
        for row in rows:
            by_trial.setdefault(row["trial_id"], []).append(row)
        for trial_id, status in states.items():
            if trial_id not in by_trial and status != TrialStatus.FAILED:
                continue
            tracker.child(trial_id)
            for row in by_trial.get(trial_id, []):
                tracker.log(trial_id, row)
        new = len(set(tracker.children) - had)
        if tracker.enabled:
            print(f"MLflow: {new} trial run(s) logged, {len(had)} were there already ({redact(uri)})")
    statuses = set(states.values())
    numbers = numbers if numbers is not None else cell_numbers(data, margin_of(data))
    closing = {"params": study_params(data), "metrics": [(k, v, 0) for k, v in headline_metrics(data).items()]
               + parent_metrics(numbers), "tags": verdict_tags(numbers),
               "note": note_markdown(data.plan.study, data.plan.description, headline(numbers), margin_of(data),
                                     sorted(os.listdir(folder)) if os.path.isdir(folder) else [])}
    if busy:
        tracker._guard(tracker.client.log_artifacts, tracker.parent, folder, REPORT_DIR)
        print(f"MLflow: the study is running ({busy}): its runs' statuses are left to it")
    else:
        tracker.reconcile(states)   # every trial's run as its records say
        if statuses & ACTIVE:   # the study is not over: an interrupted one is KILLED, never FINISHED
            tracker.close("interrupted", [folder, *extra_artifacts], **closing)
        else:
            tracker.close(TrialStatus.FAILED if TrialStatus.FAILED in statuses else TrialStatus.FINISHED,
                          [folder, *extra_artifacts], **closing)
    if tracker.enabled:
        print(f"MLflow: report logged on the study's run ({redact(uri)})")
    return tracker.enabled
