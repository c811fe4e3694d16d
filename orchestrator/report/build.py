"""`arml report RUN_DIR` and `make_report`: a study's curves and tables in RUN_DIR/report/, and the same files
as artifacts on the study's MLflow parent run when a tracking URI is given.

Files: results.md (paper Tables 1/2/4 style, with the trials that did not finish), data_requirement.csv/.png
(Fig. 2), labels_to_reach.csv, compute_cost.csv/.md (grid search vs ARML, with a verdict), cost_vs_accuracy.csv/
.png (searches' best-so-far vs device-seconds, ARML and Uniform as points), weights.csv/.png
(Fig. 4), for the multi-label setting relationships.md (Table 3), and with weight diagnostics in the records
diagnostics.csv/_summary.csv/.png (report/diagnostics.py). See docs/results.md.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from orchestrator.report.data import RunData, load_run, not_done, search_progress, weight_trajectories
from orchestrator.report.tables import (
    compute_cost,
    cost_markdown,
    data_requirement,
    labels_to_reach,
    relationships_markdown,
)
from orchestrator.report.text import budget_text, md_table, pct, points_text, seeds_text
from orchestrator.report.verdicts import comparisons, comparisons_markdown, decided_winner
from orchestrator.store.folder import MLFLOW_DB, REPORT_DIR, RunFolder, atomic_path
from orchestrator.store.schema import ACTIVE, TrialStatus

FLOAT_FORMAT = "%.6g"
DEFAULT_MARGIN = 1.0


def run_hooks() -> dict[str, Any]:
    """What `arml run` hands the runner so that it can ask the verdicts and write the report without importing
    reporting: `RunOptions(..., **run_hooks())`."""
    from orchestrator.report.verdicts import open_questions

    def write_report(run_dir: str, uri: str, artifacts: tuple[str, ...]) -> str:
        return make_report(run_dir, mlflow_uri=uri, extra_artifacts=artifacts, final=True)

    return {"open_questions": open_questions, "write_report": write_report}


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


def report_folder(run_dir: str, log_mlflow: bool = False, mlflow_uri: str | None = None) -> int:
    """`arml report RUN_DIR`: writes the report and lists its files; 1 when --log-mlflow could not reach the
    tracking store (the user must try again), else 0."""
    RunFolder(run_dir).require_plan()
    uri = report_uri(run_dir, mlflow_uri, log_mlflow)
    trials_csv = RunFolder(run_dir).file("trials.csv")
    folder, logged = _make_report(run_dir, uri, log_mlflow,
                                  (trials_csv,) if log_mlflow and os.path.exists(trials_csv) else (), False)
    print(f"report: {folder}")
    for name in sorted(os.listdir(folder)):
        print(f"  {name}")
    return 1 if log_mlflow and uri and not logged else 0


def make_report(run_dir: str, mlflow_uri: str | None = None, log_records: bool = False,
                extra_artifacts: tuple[str, ...] = (), final: bool = False) -> str:
    """Writes RUN_DIR/report/ and returns its path; with `mlflow_uri`, logs it (and `extra_artifacts`) on the
    study's parent run, closing it once when every trial has ended (and, with `log_records`, logs every trial's
    records where MLflow lacks them). MLflow failures print one line and never lose the files."""
    return _make_report(run_dir, mlflow_uri, log_records, extra_artifacts, final)[0]


def _make_report(run_dir: str, mlflow_uri: str | None, log_records: bool, extra_artifacts: tuple[str, ...],
                 final: bool) -> tuple[str, bool]:
    """(the report's folder, whether MLflow was reached: True without a URI)."""
    data = load_run(run_dir)
    folder = RunFolder(run_dir).file(REPORT_DIR)
    os.makedirs(folder, exist_ok=True)
    write_files(data, folder)
    missing = not_done(data)
    if len(missing):
        counts = missing["status"].value_counts()
        print(f"report: {len(missing)} of {len(data.trials)} trials did not finish "
              f"({', '.join(f'{n} {s}' for s, n in counts.items())}); they are listed in "
              f"{os.path.join(folder, 'results.md')}; the report shows what finished")
    logged = log_to_mlflow(data, run_dir, mlflow_uri, folder, log_records, extra_artifacts, final) \
        if mlflow_uri else True
    return folder, logged


def margin_of(data: RunData) -> float:
    """The study's non-inferiority margin in accuracy points ([report] margin, default 1.0)."""
    return float(data.plan.margin)


def write_files(data: RunData, folder: str) -> None:
    """The report's files in `folder`. A sweep's are computed within each cell: its tables get one column per
    swept key, its Markdown one section per cell, each cell's figures go to cells/<cell>/, and the sweep's own
    figures (accuracy along the axes, the regime map) sit beside them."""
    from orchestrator.report.searches import has_searches, write_searches

    if has_searches(data):   # each search's cost to match ARML, per cell (the K-scaling report, along K)
        write_searches(data.cells(), folder)
    if not data.axes:
        for name, value in cell_outputs(data, folder, colors_for(data)).items():
            _write(value, folder, name)
        return
    from orchestrator.report.sweep import cell_slug, combine_markdown, sweep_figures, with_cell

    colors = colors_for(data)
    tables: dict[str, list[pd.DataFrame]] = {}
    texts: dict[str, list[tuple[dict, str]]] = {}
    for cell, sub in data.cells():
        where = os.path.join(folder, "cells", cell_slug(cell))
        os.makedirs(where, exist_ok=True)
        for name, value in cell_outputs(sub, where, colors, cell).items():
            if isinstance(value, pd.DataFrame):
                tables.setdefault(name, []).append(with_cell(value, cell))
            else:
                texts.setdefault(name, []).append((cell, value))
    for name, frames in tables.items():
        _csv(pd.concat(frames, ignore_index=True), folder, name)
    for name, sections in texts.items():
        _text(combine_markdown(data, sections), folder, name)
    sweep_figures(data, folder, colors)


def colors_for(data: RunData) -> dict[str, str]:
    from orchestrator.report.figures import method_colors

    return method_colors(data.methods)


def _write(value: pd.DataFrame | str, folder: str, name: str) -> None:
    if isinstance(value, pd.DataFrame):
        _csv(value, folder, name)
    else:
        _text(value, folder, name)


def cell_outputs(data: RunData, folder: str, colors: dict[str, str], cell: dict | None = None
                 ) -> dict[str, pd.DataFrame | str]:
    """One cell's tables (DataFrames) and texts (Markdown) by file name; its figures are drawn into `folder`."""
    from orchestrator.report.diagnostics import has_diagnostics, summary_table, task_table
    from orchestrator.report.diagnostics import markdown as diagnostics_markdown
    from orchestrator.report.diagnostics import plot as diagnostics_plot
    from orchestrator.report.figures import cost_vs_accuracy_plot, data_requirement_plot, weights_plot
    from orchestrator.report.sweep import cell_label

    study, key = data.plan.study, data.budget_key
    title = study + (f" ({cell_label(cell)})" if cell else "")
    out: dict[str, pd.DataFrame | str] = {}
    points = data_requirement(data)
    paired = comparisons(data, margin_of(data))
    out["comparisons.csv"] = paired
    out["comparisons.md"] = comparisons_markdown(data, paired, margin_of(data))
    out["data_requirement.csv"] = points
    data_requirement_plot(points, paired, os.path.join(folder, "data_requirement.png"), title, key,
                          list(data.plan.targets), colors, data.reference("uniform"))
    out["labels_to_reach.csv"] = labels_to_reach(data, points)
    cost = compute_cost(data, points, paired)
    out["compute_cost.csv"] = cost
    out["compute_cost.md"] = cost_markdown(data, cost, paired)
    progress, singles = cost_vs_accuracy(data, points, cost)
    if len(progress):
        out["cost_vs_accuracy.csv"] = pd.concat([progress.assign(kind="search"),
                                                 singles.assign(kind="single run")], ignore_index=True)
        cost_vs_accuracy_plot(progress, singles, os.path.join(folder, "cost_vs_accuracy.png"), title, key,
                              _device(cost), colors)
    trajectories = weight_trajectories(data)
    out["weights.csv"] = trajectories
    if not trajectories.empty:
        weights_plot(trajectories, os.path.join(folder, "weights.png"), title, key, list(data.plan.aux_names))
    if data.plan.setting == "mlc":
        out["relationships.md"] = relationships_markdown(data)
    why: list[str] = []
    if has_diagnostics(data):
        tasks = task_table(data)
        summary = summary_table(tasks)
        out["diagnostics.csv"] = tasks
        out["diagnostics_summary.csv"] = summary
        why = diagnostics_markdown(data, summary)
        if len(tasks):
            diagnostics_plot(data, tasks, summary, os.path.join(folder, "diagnostics.png"), title)
    out["results.md"] = results_markdown(data, points, folder, extra=list(out), sections=why)
    return out


def _device(cost: pd.DataFrame) -> str:
    return str(cost["device"].iloc[0]) if len(cost) else "CPU"


def cost_vs_accuracy(data: RunData, points: pd.DataFrame, cost: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(each search method's best-so-far curve, the other methods as single points: device-seconds per seed
    and test accuracy mean/CI); both empty when the study has no search over weights."""
    searches = data.searches()
    if not searches:
        return pd.DataFrame(), pd.DataFrame()
    device = _device(cost)
    budgets = data.budgets or [math.nan]
    progress = pd.concat([search_progress(data, m, b, device) for m in searches for b in budgets], ignore_index=True)
    singles = []
    for _, r in cost[~cost["method"].isin(searches)].iterrows():
        seeds = max(1, len(set(data.trials.loc[data.trials["method"] == r["method"], "seed"])))
        singles.append({"method": r["method"], "budget": r["budget"], "trials": r["trials"],
                        "device_s": r["device_s"] / seeds, "seeds": seeds, "test_acc_mean": r["test_acc_mean"],
                        "test_acc_ci95": r["test_acc_ci95"]})
    return progress, pd.DataFrame(singles, columns=list(progress.columns))


def _csv(frame: pd.DataFrame, folder: str, name: str) -> None:
    # rounded first: a CI of identical values is 1e-16, not 0, and that noise differs between machines
    with atomic_path(os.path.join(folder, name)) as temporary:
        frame.round(9).to_csv(temporary, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def _text(text: str, folder: str, name: str) -> None:
    with atomic_path(os.path.join(folder, name)) as temporary, open(temporary, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def results_markdown(data: RunData, points: pd.DataFrame, folder: str, extra: list[str] | None = None,
                     sections: list[str] | None = None) -> str:
    """Paper Tables 1/2/4: methods x budgets, test accuracy and error (%) mean ± 95% CI, best in bold; then the
    paired comparisons, `sections` (lines: e.g. the weight diagnostics), the trials that did not finish."""
    plan = data.plan
    seeds = sorted(set(data.trials["seed"]))
    done = data.done
    lines = [f"# {plan.study}: results", "", plan.description or "", "",
             f"Setting {plan.setting}, data set {plan.dataset}, preset {plan.preset}; "
             f"{len(plan.aux_names)} auxiliary tasks ({', '.join(plan.aux_names)}); "
             f"seeds {', '.join(map(str, seeds))}; {len(done)} of {len(data.trials)} trials finished.", ""]
    if plan.smoke:
        lines += ["**Smoke run** (a few steps per trial): these numbers check the pipeline, not the science.", ""]
    margin = margin_of(data)
    budgets = data.budgets or [math.nan]
    winners = {b: decided_winner(data, b, margin) for b in budgets}
    lines += ["Selection (validation only): each trial's test accuracy at its evaluation with the best validation "
              "accuracy; a grid search shows the grid point with the best mean validation accuracy over seeds at "
              "that budget (weights in brackets, one per auxiliary task); a TPE search, per seed, the trial with "
              "the best validation accuracy. Test accuracy is never used to choose. Cells: mean ± half-width of "
              f"the 95% Student-t interval over {seeds_text(len(seeds))}, in %. A cell is bold only when its method is "
              "*better* than every other method at that budget in the paired comparison over seeds (see "
              f"comparisons.md, margin {points_text(margin)}); "
              + ("here: " + ", ".join(f"{budget_text(data.budget_key, b)}: {w}" for b, w in winners.items() if w)
                 if any(winners.values()) else "here no budget has a decided winner, so nothing is bold") + ".", ""]
    planned = data.trials.groupby(["method", "budget"], dropna=False).apply(
        lambda g: g["seed"].nunique(), include_groups=False) if len(data.trials) else {}
    for title, error in (("Test accuracy (%)", False), ("Test error (%)", True)):
        header = ["method"] + [budget_text(data.budget_key, b) for b in budgets]
        rows = []
        for method in data.methods:
            row = [method]
            for b in budgets:
                at = points[(points["method"] == method) & ((points["budget"] == b) if not math.isnan(b)
                                                             else points["budget"].isna())]
                if at.empty:
                    row.append("-")
                    continue
                r = at.iloc[0]
                mean = 1 - r["test_acc_mean"] if error else r["test_acc_mean"]
                cell = pct(mean, r["test_acc_ci95"], int(r["seeds"]), int(planned.get((method, b), r["seeds"])))
                if r["selected_weights"]:
                    cell += f" {r['selected_weights']}"
                if winners.get(b) == method:
                    cell = f"**{cell}**"
                row.append(cell)
            rows.append(row)
        lines += [f"## {title}", "", md_table(header, rows), ""]
    lines += paired_summary(data, margin)
    lines += list(sections or [])
    lines += ["## Missing or failed trials", ""]
    missing = not_done(data)
    if missing.empty:
        lines += ["None: every planned trial finished.", ""]
    else:
        rows = [[r["trial_id"], r["method"], budget_text(data.budget_key, r["budget"]), str(r["seed"]),
                 r["status"], str(r.get("error") or "").replace("|", "/").replace("\n", " ")]
                for _, r in missing.iterrows()]
        lines += [f"{len(missing)} of {len(data.trials)} trials did not finish; the tables above use the others.",
                  "", md_table(["trial", "method", "budget", "seed", "status", "error"], rows), ""]
    files = sorted(set(os.listdir(folder)) | set(extra or ()) | {"results.md"})
    lines += ["## Files", "", "In this folder: " + ", ".join(files) + ".", ""]
    return "\n".join(lines)


def paired_summary(data: RunData, margin: float) -> list[str]:
    """results.md's section: each ARML method against each reference, per budget, in words."""
    from orchestrator.report.verdicts import comparisons as paired
    from orchestrator.report.verdicts import verdict_text

    frame = paired(data, margin)
    armls = [m for m in data.methods if data.weighting[m] == "arml"]
    frame = frame[frame["method"].isin(armls)]
    lines = ["## Paired comparisons", "",
             f"Per-seed differences in test accuracy (method minus reference, in points), 95% paired t interval, "
             f"margin {points_text(margin)}; all comparisons in comparisons.md.", ""]
    if frame.empty:
        return lines + ["No ARML method with a reference to compare against (or fewer than one common seed).", ""]
    rows = [[r["method"], f"vs {r['versus']}", budget_text(data.budget_key, r["budget"]), verdict_text(r)]
            for _, r in frame.iterrows()]
    return lines + [md_table(["method", "reference", "budget", "verdict"], rows), ""]


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
                  extra_artifacts: tuple[str, ...] = (), final: bool = False) -> bool:
    """Logs the report folder on the study's parent run (and missing trial records); False if MLflow failed.
    The parent run is closed when every trial has ended, or, with `final` (the end of `arml run`), as KILLED
    when some never ran (an interrupted study is never FINISHED)."""
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
    if busy:
        tracker._guard(tracker.client.log_artifacts, tracker.parent, folder, REPORT_DIR)
        print(f"MLflow: the study is running ({busy}): its runs' statuses are left to it")
    else:
        tracker.reconcile(states)   # every trial's run as its records say
        if statuses & ACTIVE:   # the study is not over: an interrupted one is KILLED, never FINISHED
            tracker.close("interrupted", [folder, *extra_artifacts], params=study_params(data),
                          metrics=headline_metrics(data))
        else:
            tracker.close(TrialStatus.FAILED if TrialStatus.FAILED in statuses else TrialStatus.FINISHED,
                          [folder, *extra_artifacts],
                          params=study_params(data), metrics=headline_metrics(data))
    if tracker.enabled:
        print(f"MLflow: report logged on the study's run ({redact(uri)})")
    return tracker.enabled
