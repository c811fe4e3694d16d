"""The study's headline in words: the lines `arml run` ends with and the description (MLflow's note) of the study's
parent run. The numbers are orchestrator/analysis/headline.py's."""

from __future__ import annotations

import math

from orchestrator.analysis.headline import HeadlineRow, Versus
from orchestrator.report.text import budget_text, md_table, points_text, seeds_text

MAX_LINES = 12   # a sweep with many cells: the rest is in the report


def _cell(row: HeadlineRow) -> str:
    return ", ".join(f"{key}={value}" for key, value in row.cell.items())


def _versus(v: Versus | None, short: bool = False) -> str:
    """'as good, +0.40 [-0.35, +1.15] points' (short: without the word points)."""
    if v is None:
        return "-"
    if v.n_pairs == 0 or math.isnan(v.mean_diff):
        return "no common seeds"
    interval = "" if math.isnan(v.low) else f" [{v.low:+.2f}, {v.high:+.2f}]"
    return f"{v.verdict}, {v.mean_diff:+.2f}{interval}" if short else f"{v.verdict} ({v.mean_diff:+.2f}{interval})"


def _ratio(row: HeadlineRow) -> str:
    return "" if math.isnan(row.cost_ratio) else f"{row.cost_ratio:.1f}x"


def headline_lines(rows: list[HeadlineRow], margin_points: float) -> list[str]:
    """'what was found' and one line per budget (per cell and budget in a sweep): ARML against Uniform and the
    search's validation choice, paired over seeds, and the search's cost relative to ARML. Empty without ARML."""
    if not rows:
        return []
    seeds = max((v.n_pairs for r in rows for v in (r.vs_uniform, r.vs_search) if v is not None), default=0)
    out = [f"what was found (ARML minus the other in accuracy points [95% interval], test accuracy at the best "
           f"validation step, paired over {seeds_text(seeds)}; margin {points_text(margin_points)}):"]
    for row in rows[:MAX_LINES]:
        where = (f"{_cell(row)}, " if row.cell else "") + budget_text(row.budget_key, row.budget)
        parts = []
        if row.vs_uniform is not None:
            parts.append(f"{row.arml} vs {row.vs_uniform.versus} {_versus(row.vs_uniform)}")
        if row.vs_search is not None:
            parts.append(f"vs {row.search}'s choice {_versus(row.vs_search)}")
        if _ratio(row):
            parts.append(f"{row.search} cost {_ratio(row)} {row.arml}")
        out.append(f"  {where}: " + ("; ".join(parts) or "no comparison yet"))
    if len(rows) > MAX_LINES:
        out.append(f"  ... {len(rows) - MAX_LINES} more in the report's comparisons.md")
    return out


def summary_sentence(rows: list[HeadlineRow]) -> str:
    """'ARML (arml) against Uniform: better at 60 labels, not decided at 20 and 200 labels; against the grid's choice:
    as good at 200 labels, not decided at 20 and 60 labels; the grid cost 3.3-3.7x ARML.' (no sweep; '' without
    rows)."""
    if not rows or any(r.cell for r in rows):
        return ""

    def verdicts(pick) -> str:
        by: dict[str, list[str]] = {}
        for r in rows:
            v = pick(r)
            if v is not None:
                by.setdefault(v.verdict, []).append(budget_text(r.budget_key, r.budget))
        return ", ".join(f"{verdict} at {' and '.join(where)}" for verdict, where in by.items())

    parts = []
    uniform = verdicts(lambda r: r.vs_uniform)
    if uniform:
        parts.append(f"against {rows[0].vs_uniform.versus if rows[0].vs_uniform else 'Uniform'}: {uniform}")
    search = verdicts(lambda r: r.vs_search)
    if search:
        parts.append(f"against {rows[0].search}'s choice: {search}")
    ratios = [r.cost_ratio for r in rows if not math.isnan(r.cost_ratio)]
    if ratios:
        low, high = min(ratios), max(ratios)
        span = f"{low:.1f}x" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}x"
        parts.append(f"{rows[0].search} cost {span} {rows[0].arml}")
    return f"ARML ({rows[0].arml}) " + "; ".join(parts) + "." if parts else ""


def note_markdown(study: str, description: str, rows: list[HeadlineRow], margin_points: float,
                  report_files: list[str]) -> str:
    """The parent run's description: the study, the headline in a sentence and as a table, and where the charts
    and files are."""
    lines = [f"**{study}**" + (f": {description.strip()}" if description.strip() else ""), ""]
    if summary_sentence(rows):
        lines += [summary_sentence(rows), ""]
    if rows:
        search = next((r.search for r in rows if r.search), None)
        header = (["cell"] if any(r.cell for r in rows) else []) + ["budget", "ARML vs Uniform"]
        if search:
            header += [f"ARML vs {search}'s choice", f"{search}'s cost / ARML's"]
        table = []
        for r in rows:
            cells = ([_cell(r)] if any(x.cell for x in rows) else []) + [budget_text(r.budget_key, r.budget),
                                                                            _versus(r.vs_uniform, short=True)]
            if search:
                cells += [_versus(r.vs_search, short=True), _ratio(r) or "-"]
            table.append(cells)
        lines += [f"ARML ({rows[0].arml}) against each reference: paired verdict, mean difference and 95% interval "
                  f"in accuracy points (test accuracy at the best validation step; margin "
                  f"{points_text(margin_points)}).", "", md_table(header, table), ""]
    lines += ["Charts (Model metrics): `data_requirement/<method>` is test accuracy against the label budget "
              "(step = labels), `cost/device_s/<method>` and `cost/cpu_s/<method>` the compute each method used, "
              "`cost_ratio/<search>` a search's device-seconds over ARML's per budget, `labels_to_reach/...` the "
              "labels each method needs to reach a target. Every paired verdict is a tag `verdict/<budget>/<method> vs "
              "<reference>`."]
    if report_files:
        lines += ["", "Artifacts: " + ", ".join(f"`report/{name}`" for name in report_files) + "."]
    return "\n".join(lines)
