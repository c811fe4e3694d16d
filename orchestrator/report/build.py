"""`arml report RUN_DIR` and `make_report`: a study's curves and tables in RUN_DIR/report/, and the same files
as artifacts on the study's MLflow parent run when a tracking URI is given (report/publish.py).

Files: results.md (paper Tables 1/2/4 style, with the trials that did not finish), data_requirement.csv/.png
(Fig. 2), labels_to_reach.csv, compute_cost.csv/.md (grid search vs ARML, with a verdict), cost_vs_accuracy.csv/
.png (searches' best-so-far vs device-seconds, ARML and Uniform as points), weights.csv/.png
(Fig. 4), for the multi-label setting relationships.md (Table 3), and with weight diagnostics in the records
diagnostics.csv/_summary.csv/.png (report/diagnostics.py). Every number is computed in orchestrator/analysis;
this module writes and draws. See docs/results.md.
"""

from __future__ import annotations

import os

import pandas as pd

from orchestrator.analysis.diagnostics import has_diagnostics, summary_table, task_table
from orchestrator.analysis.headline import CellNumbers
from orchestrator.analysis.run_data import RunData, load_run, not_done, weight_trajectories
from orchestrator.analysis.search_cost import has_searches
from orchestrator.analysis.tables import compute_cost, cost_vs_accuracy, data_requirement, device_of, labels_to_reach
from orchestrator.analysis.verdicts import comparisons
from orchestrator.report.files import published, write_csv, write_text
from orchestrator.report.markdown import (
    comparisons_markdown,
    cost_markdown,
    margin_of,
    relationships_markdown,
    results_markdown,
)
from orchestrator.store.folder import REPORT_DIR, TRIALS_CSV, ReportFiles, RunFolder

FILES = ReportFiles


def report_folder(run_dir: str, log_mlflow: bool = False, mlflow_uri: str | None = None) -> int:
    """`arml report RUN_DIR`: writes the report and lists its files; 1 when --log-mlflow could not reach the
    tracking store (the user must try again), else 0."""
    from orchestrator.report.publish import report_uri

    folder = RunFolder(run_dir)
    folder.require_plan()
    uri = report_uri(run_dir, mlflow_uri, log_mlflow)
    trials_csv = folder.file(TRIALS_CSV)
    report, logged, _ = _make_report(run_dir, uri, log_mlflow,
                                     (trials_csv,) if log_mlflow and os.path.exists(trials_csv) else (), False)
    print(f"report: {report}")
    for name in sorted(os.listdir(report)):
        print(f"  {name}")
    return 1 if log_mlflow and uri and not logged else 0


def make_report(run_dir: str, mlflow_uri: str | None = None, log_records: bool = False,
                extra_artifacts: tuple[str, ...] = (), final: bool = False) -> str:
    """Writes RUN_DIR/report/ and returns its path; with `mlflow_uri`, logs it (and `extra_artifacts`) on the
    study's parent run, closing it once when every trial has ended (and, with `log_records`, logs every trial's
    records where MLflow lacks them). MLflow failures print one line and never lose the files."""
    return _make_report(run_dir, mlflow_uri, log_records, extra_artifacts, final)[0]


def report_with_headline(run_dir: str, mlflow_uri: str | None, extra_artifacts: tuple[str, ...] = ()
                         ) -> tuple[str, list[str]]:
    """The end of `arml run`: `make_report(..., final=True)`, and the headline's lines (what was found) for the
    summary."""
    folder, _, lines = _make_report(run_dir, mlflow_uri, False, extra_artifacts, True)
    return folder, lines


def _make_report(run_dir: str, mlflow_uri: str | None, log_records: bool, extra_artifacts: tuple[str, ...],
                 final: bool) -> tuple[str, bool, list[str]]:
    """(the report's folder, whether MLflow was reached: True without a URI, the headline's lines)."""
    from orchestrator.analysis.headline import cell_numbers, headline
    from orchestrator.report.headline import headline_lines

    data = load_run(run_dir)
    folder = RunFolder(run_dir).file(REPORT_DIR)
    os.makedirs(folder, exist_ok=True)
    numbers = cell_numbers(data, margin_of(data))
    write_files(data, folder, numbers)
    lines = headline_lines(headline(numbers), margin_of(data))
    missing = not_done(data)
    if len(missing):
        counts = missing["status"].value_counts()
        print(f"report: {len(missing)} of {len(data.trials)} trials did not finish "
              f"({', '.join(f'{n} {s}' for s, n in counts.items())}); they are listed in "
              f"{os.path.join(folder, FILES.RESULTS_MD)}; the report shows what finished")
    if not mlflow_uri:
        return folder, True, lines
    from orchestrator.report.publish import log_to_mlflow

    logged = log_to_mlflow(data, run_dir, mlflow_uri, folder, log_records, extra_artifacts, final, numbers)
    return folder, logged, lines


def write_files(data: RunData, folder: str, numbers: list | None = None) -> None:
    """The report's files in `folder`. A sweep's are computed within each cell: its tables get one column per
    swept key, its Markdown one section per cell, each cell's figures go to cells/<cell>/, and the sweep's own
    figures (accuracy along the axes, the regime map) sit beside them, drawn from the same tables. `numbers`: each
    cell's tables as `orchestrator.analysis.headline.cell_numbers` computed them (else computed here)."""
    from orchestrator.analysis.headline import cell_numbers
    from orchestrator.report.search_cost import write_searches

    numbers = numbers if numbers is not None else cell_numbers(data, margin_of(data))

    budgeted = None
    if has_searches(data):   # each search's cost to match ARML, per cell (the K-scaling report, along K)
        budgeted = write_searches(data.cells(), folder)
    if not data.axes:
        for name, value in cell_outputs(data, folder, colors_for(data), numbers=numbers[0]).items():
            _write(value, folder, name)
        return
    from orchestrator.report.cells import cell_slug, combine_markdown, sweep_figures, with_cell

    colors = colors_for(data)
    tables: dict[str, list[pd.DataFrame]] = {}
    texts: dict[str, list[tuple[dict, str]]] = {}
    for (cell, sub), computed in zip(data.cells(), numbers):
        where = os.path.join(folder, FILES.CELLS_DIR, cell_slug(cell))
        os.makedirs(where, exist_ok=True)
        for name, value in cell_outputs(sub, where, colors, cell, computed).items():
            if isinstance(value, pd.DataFrame):
                tables.setdefault(name, []).append(with_cell(value, cell))
            else:
                texts.setdefault(name, []).append((cell, value))
    combined = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
    for name, frame in combined.items():
        write_csv(frame, folder, name)
    for name, sections in texts.items():
        write_text(combine_markdown(data, sections), folder, name)
    summary = combined.get(FILES.DIAGNOSTICS_SUMMARY_CSV)
    sweep_figures(data, folder, colors, published(combined[FILES.DATA_REQUIREMENT_CSV]),
                  published(combined[FILES.COMPARISONS_CSV]), None if budgeted is None else published(budgeted),
                  None if summary is None else published(summary))


def colors_for(data: RunData) -> dict[str, str]:
    from orchestrator.report.figures import method_colors

    return method_colors(data.methods)


def _write(value: pd.DataFrame | str, folder: str, name: str) -> None:
    if isinstance(value, pd.DataFrame):
        write_csv(value, folder, name)
    else:
        write_text(value, folder, name)


def cell_outputs(data: RunData, folder: str, colors: dict[str, str], cell: dict | None = None,
                 numbers: CellNumbers | None = None) -> dict[str, pd.DataFrame | str]:
    """One cell's tables (DataFrames) and texts (Markdown) by file name; its figures are drawn into `folder`.
    `numbers`: the cell's comparisons, data requirement, compute cost and labels to reach, when computed already."""
    from orchestrator.report.cells import cell_label
    from orchestrator.report.diagnostics import markdown as diagnostics_markdown
    from orchestrator.report.diagnostics import plot as diagnostics_plot
    from orchestrator.report.figures import cost_vs_accuracy_plot, data_requirement_plot, weights_plot

    study, key = data.plan.study, data.budget_key
    title = study + (f" ({cell_label(cell)})" if cell else "")
    out: dict[str, pd.DataFrame | str] = {}
    points = numbers.points if numbers is not None else data_requirement(data)
    paired = numbers.paired if numbers is not None else comparisons(data, margin_of(data))
    out[FILES.COMPARISONS_CSV] = paired
    out[FILES.COMPARISONS_MD] = comparisons_markdown(data, paired, margin_of(data))
    out[FILES.DATA_REQUIREMENT_CSV] = points
    data_requirement_plot(points, paired, os.path.join(folder, FILES.DATA_REQUIREMENT_PNG), title, key,
                          list(data.plan.targets), colors, data.reference("uniform"))
    out[FILES.LABELS_TO_REACH_CSV] = numbers.reach if numbers is not None else labels_to_reach(data, points)
    cost = numbers.cost if numbers is not None else compute_cost(data, points, paired)
    out[FILES.COMPUTE_COST_CSV] = cost
    out[FILES.COMPUTE_COST_MD] = cost_markdown(data, cost, paired)
    progress, singles = cost_vs_accuracy(data, points, cost)
    if len(progress):
        out[FILES.COST_VS_ACCURACY_CSV] = pd.concat([progress.assign(kind="search"),
                                                     singles.assign(kind="single run")], ignore_index=True)
        cost_vs_accuracy_plot(progress, singles, os.path.join(folder, FILES.COST_VS_ACCURACY_PNG), title, key,
                              device_of(cost), colors)
    trajectories = weight_trajectories(data)
    out[FILES.WEIGHTS_CSV] = trajectories
    if not trajectories.empty:
        weights_plot(trajectories, os.path.join(folder, FILES.WEIGHTS_PNG), title, key, list(data.plan.aux_names))
    if data.plan.setting == "mlc":
        out[FILES.RELATIONSHIPS_MD] = relationships_markdown(data)
    why: list[str] = []
    if has_diagnostics(data):
        tasks = task_table(data)
        summary = summary_table(tasks)
        out[FILES.DIAGNOSTICS_CSV] = tasks
        out[FILES.DIAGNOSTICS_SUMMARY_CSV] = summary
        why = diagnostics_markdown(data, summary)
        if len(tasks):
            diagnostics_plot(data, tasks, summary, os.path.join(folder, FILES.DIAGNOSTICS_PNG), title)
    out[FILES.RESULTS_MD] = results_markdown(data, points, folder, extra=list(out), sections=why)
    return out
