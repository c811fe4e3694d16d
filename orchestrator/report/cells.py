"""A sweep's report, cell by cell: every table with one column per swept key, the Markdown with one section per
cell, and the sweep's own figures: test accuracy along a numeric axis (one line per method, one panel per value of
the other axes) and the regime map (per comparison: each method against Uniform, each single run against each
search given 16x its compute, and the single run chosen on validation against each search; a grid of cells
coloured by the paired verdict, the mean difference written in each cell)."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pandas as pd

from orchestrator.analysis.run_data import RunData
from orchestrator.analysis.verdicts import AS_GOOD, BETTER, NOT_DECIDED, WORSE, unordered
from orchestrator.report.text import budget_text, points_text
from orchestrator.store.folder import ReportFiles, atomic_path
from orchestrator.study.sweep import cell_label
from orchestrator.study.vocabulary import BY_FIELD

VERDICT_COLORS = {BETTER: "#1a9850", AS_GOOD: "#a6d96a", NOT_DECIDED: "#e0e0e0", WORSE: "#d73027"}
AXIS_WORDS = {"aux_count": "auxiliary tasks K", "steps": "training steps"}
SHORT = {"aux_count": "K"}   # an axis' name in a panel's labels

__all__ = ["cell_label", "cell_slug", "combine_markdown", "sweep_figures", "with_cell"]


def cell_slug(cell: dict[str, Any]) -> str:
    """A folder name for a cell: 'steps-100_target_domain-photo'."""
    text = "_".join(f"{key}-{value}" for key, value in cell.items())
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text) or "all"


def with_cell(frame: pd.DataFrame, cell: dict[str, Any]) -> pd.DataFrame:
    """`frame` with one column per swept key in front, named after the key."""
    out = frame.copy()
    for at, (key, value) in enumerate(cell.items()):
        out.insert(at, key, [value] * len(out))
    return out


def combine_markdown(data: RunData, sections: list[tuple[dict[str, Any], str]]) -> str:
    """One document from one Markdown text per cell: the first cell's title (its cell named in it taken out),
    then each cell's text under '## <cell>' with its own headings one level down."""
    title = sections[0][1].splitlines()[0] if sections else f"# {data.plan.study}"
    for cell, _ in sections[:1]:
        title = title.replace(f" ({cell_label(cell)})", "")
    lines = [title, "", f"Swept: {', '.join(data.axes)}; {len(sections)} cells, each compared on its own (pairs "
             "are seed-matched within a cell). Each cell's figures are in cells/<cell>/.", ""]
    for cell, text in sections:
        body = text.splitlines()[1:]
        if "## Files" in body:
            body = body[:body.index("## Files")]
        lines += [f"## {cell_label(cell)}", ""] + [f"#{line}" if line.startswith("#") else line for line in body]
    return "\n".join(lines).rstrip("\n") + "\n"


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and not pd.isna(v) for v in values)


def _axes_of(data: RunData, frame: pd.DataFrame) -> list[tuple[str, list[Any]]]:
    """The report's axes with their values, in order: the swept keys, then the label budget when it has several
    values (a sweep of its own)."""
    axes = [(key, list(dict.fromkeys(frame[key]))) for key in data.axes if key in frame]
    if "budget" in frame and frame["budget"].nunique() > 1:
        axes.append(("budget", sorted(frame["budget"].dropna().unique().tolist())))
    return axes


def _axis_words(data: RunData, key: str) -> str:
    if key == "budget":
        kind = BY_FIELD.get(data.budget_key)
        return kind.axis if kind else "label budget"
    return AXIS_WORDS.get(key, key)


def sweep_figures(data: RunData, folder: str, colors: dict[str, str], points: pd.DataFrame, paired: pd.DataFrame,
                  budgeted: pd.DataFrame | None, summary: pd.DataFrame | None) -> None:
    """sweep.png (test accuracy along the first numeric axis), regime_map.png (two axes or more) and
    diagnostics_summary.png, from the sweep's tables (every cell's, with the swept keys as columns): the data
    requirement, the comparisons, each single run against each search at its allowance (or None) and the weight
    diagnostics' summary (or None)."""
    axes = _axes_of(data, points)
    numeric = [key for key, values in axes if _numeric(values) and len(values) > 1]
    if numeric:
        accuracy_along(data, points, numeric[0], [a for a in axes if a[0] != numeric[0]],
                       os.path.join(folder, ReportFiles.SWEEP_PNG), colors)
    if len(axes) >= 2 and len(paired):
        regime_map(data, regime_panels(data, paired, budgeted), axes, os.path.join(folder, ReportFiles.REGIME_MAP_PNG))
    if summary is not None and len(summary):
        from orchestrator.report.diagnostics import summary_plot

        summary_plot(summary, os.path.join(folder, ReportFiles.DIAGNOSTICS_SUMMARY_PNG), data.plan.study, colors)


def regime_panels(data: RunData, paired: pd.DataFrame, budgeted: pd.DataFrame | None
                  ) -> list[list[tuple[str, pd.DataFrame]]]:
    """The regime map's panels, each (title, rows with the axes' columns, verdict, mean_diff and optionally a
    `name` to write in the cell). With Uniform in the study: every other method against Uniform; with searches:
    every single-run method against each search given its allowance of device-seconds (searches_budgeted.csv),
    then, per search, the single run a user would choose on validation against it. Without Uniform: each pair
    of methods once. Returned in groups (against Uniform; against each search), each drawn on rows of its own."""
    uniform = data.reference("uniform")
    if uniform is None:
        paired = unordered(paired, data.methods)   # each pair once (grid vs uniform, not also uniform vs grid)
        pairs = sorted(dict.fromkeys(zip(paired["method"], paired["versus"])), key=lambda p: (p[1], p[0]))
        return [[(f"{m} vs {v}", paired[(paired["method"] == m) & (paired["versus"] == v)]) for m, v in pairs]]
    groups = [[(f"{method} vs {uniform}", mine) for method in data.methods if method != uniform
               and len(mine := paired[(paired["method"] == method) & (paired["versus"] == uniform)])]]
    if budgeted is None or budgeted.empty:
        return [g for g in groups if g]
    multiple = f"{float(budgeted['multiple'].iloc[0]):g}x"
    for search in dict.fromkeys(budgeted["search"]):
        against = budgeted[budgeted["search"] == search]
        group = [(f"{method} vs {search} at {float(mine['multiple'].iloc[0]):g}x its compute", mine)
                 for method in dict.fromkeys(against["method"]) if len(mine := against[against["method"] == method])]
        chosen = against[against["chosen"].astype(bool)].assign(name=lambda f: f["method"])
        if len(chosen):
            group.append((f"single run chosen on validation vs {search} at {multiple}", chosen))
        groups.append(group)
    return [g for g in groups if g]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _panels(others: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    panels = [{}]
    for key, values in others:
        panels = [{**p, key: v} for p in panels for v in values]
    return panels


def _where_text(data: RunData, where: dict[str, Any]) -> str:
    """'steps = 100, 40 labels' (a budget in its own words)."""
    return ", ".join(budget_text(data.budget_key, v) if key == "budget" else f"{SHORT.get(key, key)} = {v}"
                     for key, v in where.items())


def _select(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    for key, value in where.items():
        frame = frame[frame[key].astype(str) == str(value)]
    return frame


def accuracy_along(data: RunData, points: pd.DataFrame, key: str, others: list[tuple[str, list[Any]]], path: str,
                   colors: dict[str, str]) -> None:
    """Test accuracy (%) against the numeric axis `key`, one line per method with its 95% interval, one panel per
    value of the other axes."""
    panels = _panels(others)
    fig = _figure(min(4.2 * len(panels), 16), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, where in zip(axes, panels):
        here = _select(points, where)
        for method in data.methods:
            mine = here[here["method"] == method].sort_values(key)
            if mine.empty:
                continue
            x = mine[key].astype(float)
            ax.errorbar(x, 100 * mine["test_acc_mean"], yerr=100 * mine["test_acc_ci95"].fillna(0), marker="o",
                        capsize=3, color=colors.get(method), label=method)
        ax.set_xscale("log" if key == "aux_count" else "linear")
        values = sorted(here[key].astype(float).unique())
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set(xlabel=_axis_words(data, key), title=_where_text(data, where) or data.plan.study)
        ax.set_ylim(max(0.0, ax.get_ylim()[0]), min(100.0, ax.get_ylim()[1]))
        ax.grid(True, alpha=0.2)
    axes[0].set_ylabel("test accuracy % (at best validation), mean and 95% CI")
    axes[0].legend(fontsize=7)
    with atomic_path(path) as temporary:
        fig.savefig(temporary)


def regime_map(data: RunData, groups: list[list[tuple[str, pd.DataFrame]]], axes: list[tuple[str, list[Any]]],
               path: str) -> None:
    """One panel per comparison (regime_panels, each group starting a row): rows are the values of all axes but
    the last, columns the last axis' values; each cell is coloured by the paired verdict there and shows the mean
    difference in points (and the method's name where the panel chooses one per cell)."""
    rows_axes, (col_key, col_values) = axes[:-1], axes[-1]
    row_cells = _panels(rows_axes)
    cols = min(max(len(g) for g in groups), 6)
    places, line = [], 0      # (figure row, column) of each panel
    for group in groups:
        for at, panel in enumerate(group):
            places.append((line + at // cols, at % cols, panel))
        line += math.ceil(len(group) / cols)
    fig = _figure(3.6 * cols, (0.55 * len(row_cells) + 1.3) * line + 0.8)
    grid = fig.subplots(line, cols, squeeze=False)
    used = set()
    for row, col, (title, mine) in places:
        ax = grid[row][col]
        used.add((row, col))
        first = col == 0
        for i, where in enumerate(row_cells):
            for j, value in enumerate(col_values):
                at = _select(mine, {**where, col_key: value})
                verdict = str(at["verdict"].iloc[0]) if len(at) else ""
                ax.add_patch(_rect(j, i, VERDICT_COLORS.get(verdict, "white")))
                if len(at) and not pd.isna(at["mean_diff"].iloc[0]):
                    text = f"{100 * at['mean_diff'].iloc[0]:+.1f}"
                    if "name" in at:
                        text = f"{at['name'].iloc[0]}\n{text}"
                    ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7 if "name" in at else 8)
        ax.set_xlim(0, len(col_values))
        ax.set_ylim(len(row_cells), 0)
        ax.set_xticks([j + 0.5 for j in range(len(col_values))], [f"{v:g}" if isinstance(v, float) else str(v)
                                                                  for v in col_values])
        ax.set_yticks([i + 0.5 for i in range(len(row_cells))],
                      [_where_text(data, w) or "all" for w in row_cells] if first else [], fontsize=7)
        ax.tick_params(left=first)
        ax.set_xlabel(_axis_words(data, col_key), fontsize=8)
        ax.set_title(title, fontsize=8)
    for row in range(line):
        for col in range(cols):
            if (row, col) not in used:
                grid[row][col].set_visible(False)
    from matplotlib.patches import Patch

    margin = float(data.plan.margin)
    fig.legend(handles=[Patch(color=c, label=v) for v, c in VERDICT_COLORS.items()], loc="outside lower center",
               ncol=4, fontsize=8, title=f"paired verdict over seeds, method minus reference (margin "
                                           f"{points_text(margin)}); numbers: mean difference in points",
               title_fontsize=8)
    with atomic_path(path) as temporary:
        fig.savefig(temporary)


def _rect(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=color, edgecolor="white", linewidth=1.5)
