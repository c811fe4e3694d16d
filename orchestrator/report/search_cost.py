"""The report's pages on searches against single runs (the computation is orchestrator/analysis/search_cost.py):
searches.md (per cell, each search's cost to become "as good" as one ARML run, and every verdict against ARML),
searches.png (that cost along K) and the three tables searches.csv, searches_verdicts.csv, searches_budgeted.csv."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.analysis.run_data import RunData
from orchestrator.analysis.search_cost import BUDGETED_COLUMNS, COLUMNS, MULTIPLE, VERDICT_COLUMNS, searches_tables
from orchestrator.report.files import write_csv, write_text
from orchestrator.store.folder import ReportFiles, atomic_path


def markdown(table: pd.DataFrame, verdicts: pd.DataFrame, budgeted: pd.DataFrame | None = None) -> str:
    """searches.md: per K, each search's cost to become as good as ARML, and every verdict against ARML."""
    from orchestrator.report.text import md_table
    def fmt(x: float, spec: str = ".1f") -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    margin = float(verdicts["margin"].iloc[0]) * 100 if len(verdicts) else math.nan
    many = _where_columns(table)
    head = ["where"] if many else []

    def where(r: pd.Series) -> list[str]:
        return [_where(r, many)] if many else []

    lines = ["# ARML against searches over K auxiliary weights", "",
             "Device-seconds (mean per seed) a search needs, in plan order, until its validation-selected trial is "
             "**as good** as ARML (paired over seeds: the 95% t interval of search minus ARML lies above "
             f"-{fmt(margin, 'g')} points), and that cost over one ARML run's (a single run's cost: the median over "
             "seeds, since the first trial on each Ray worker pays one-off start-up). *never*: not as good within "
             "its trials; its total is shown.",
             ""]
    rows = []
    for _, r in table.iterrows():
        if r["trials_per_seed"] == 1:
            reach = "one run"
        elif r["never"]:
            reach = f"never (total {fmt(r['total_device_s'])} s, {fmt(r['ratio_total'], '.1f')}x)"
        else:
            after = int(r["as_good_after"])
            reach = f"after {after} trial{'s' if after > 1 else ''}: {fmt(r['device_s_to_as_good'])} s, " \
                    f"{fmt(r['ratio_to_arml'], '.1f')}x ARML"
        rows.append([*where(r), str(int(r["K"])), r["method"], r["kind"], str(int(r["trials_per_seed"])),
                     fmt(100 * r["test_acc"], ".2f"),
                     fmt(r["device_s_per_trial"], ".2f"), fmt(r["arml_device_s"], ".2f"), reach])
    unit = f"{table['device'].iloc[0] if len(table) else ''}-s/trial"
    lines += [md_table([*head, "K", "method", "kind", "trials/seed", "test acc % (end)", unit, "ARML s",
                        "as good as ARML"], rows), "",
              "## Paired verdicts against ARML", "",
              "Method minus ARML in test accuracy points, per seed; a search at its 4-, 16- and 64-trial prefix "
              "and at its end.", ""]
    vrows = [[*where(r), str(int(r["K"])), r["method"], str(int(r["trials"])), str(int(r["n_pairs"])),
              fmt(100 * r["mean_diff"], "+.2f"),
              "" if math.isnan(r["diff_low"]) else f"{100 * r['diff_low']:+.2f} to {100 * r['diff_high']:+.2f}",
              f"**{r['verdict']}**"] for _, r in verdicts.iterrows()]
    lines += [md_table([*head, "K", "method", "trials", "seeds", "mean diff", "95% t interval", "verdict"], vrows), ""]
    if budgeted is not None and len(budgeted):
        lines += [f"## Each single run against each search given {fmt(budgeted['multiple'].iloc[0], 'g')}x its "
                  "device-seconds", "",
                  "Single-run method minus the search's validation-selected trial after the longest prefix of its "
                  "trials that fits the allowance (mean cost per seed), per seed.", ""]
        brows = [[*where(r), str(int(r["K"])), r["method"], r["search"], str(int(r["trials"])),
                  f"{fmt(r['search_device_s'])} s / {fmt(r['method_device_s'], '.2f')} s", str(int(r["n_pairs"])),
                  fmt(100 * r["mean_diff"], "+.2f"),
                  "" if math.isnan(r["diff_low"]) else f"{100 * r['diff_low']:+.2f} to {100 * r['diff_high']:+.2f}",
                  f"**{r['verdict']}**"] for _, r in budgeted.iterrows()]
        lines += [md_table([*head, "K", "method", "search", "search trials", "search / method device-s", "seeds",
                            "mean diff", "95% t interval", "verdict"], brows), ""]
        best = budgeted[budgeted["chosen"].astype(bool)]
        lines += ["## Is one run enough? The single run chosen on validation against each search", "",
                  "Where a user picks the single-run method with the best mean validation accuracy (test unseen), "
                  f"is it as good as the search given {fmt(budgeted['multiple'].iloc[0], 'g')}x its device-seconds? "
                  "**better** or **as good**: one run is enough there; **worse**: search; **not decided**: more "
                  "seeds needed.", ""]
        crows = [[*where(r), str(int(r["K"])), r["method"], fmt(100 * r["method_val_acc"], ".2f"), r["search"],
                  fmt(100 * r["mean_diff"], "+.2f"),
                  "" if math.isnan(r["diff_low"]) else f"{100 * r['diff_low']:+.2f} to {100 * r['diff_high']:+.2f}",
                  f"**{r['verdict']}**"] for _, r in best.iterrows()]
        lines += [md_table([*head, "K", "chosen single run", "its val acc %", "search", "mean diff",
                            "95% t interval", "verdict"], crows), ""]
    return "\n".join(lines)


def _where_columns(table: pd.DataFrame) -> list[str]:
    """The columns besides K that tell a table's rows apart: the cell's other swept keys, and the budget when
    there are several."""
    front = [c for c in table.columns if c not in COLUMNS and c not in VERDICT_COLUMNS and c not in BUDGETED_COLUMNS]
    varied = [c for c in front if table[c].nunique(dropna=False) > 1]
    if "budget" in table and table["budget"].nunique(dropna=False) > 1:
        varied.append("budget")
    return varied


def _where(r: pd.Series, columns: list[str]) -> str:
    """'steps=100, budget=40' for a row (its values in `columns`)."""
    return ", ".join(f"{c}={r[c]:g}" if isinstance(r[c], float) else f"{c}={r[c]}" for c in columns)


def plot(table: pd.DataFrame, path: str) -> None:
    """Left: each search's cost to become as good as ARML over one ARML run's, against K (hollow: never, at its
    total). Right: one trial's device-seconds against K for the single-run methods."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    unit = f"{table['device'].iloc[0]}-s" if len(table) else "device-s"
    searches = table[table["trials_per_seed"] > 1]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    many = _where_columns(table)   # one line per method and cell (besides K) and budget
    styles = ["-", "--", ":", "-."]
    for n, (key, rows) in enumerate(searches.groupby(["method", *many], sort=False, dropna=False)):
        method = key[0] if isinstance(key, tuple) else key
        color = colors[n % len(colors)]
        y = np.where(rows["never"], rows["ratio_total"], rows["ratio_to_arml"])
        reached = ~rows["never"].to_numpy(dtype=bool)
        name = method if method == rows["kind"].iloc[0] else f"{method} ({rows['kind'].iloc[0]})"
        left.plot(rows["K"], y, color=color, linewidth=1, marker="o", markersize=0,
                  label=name + (f", {_where(rows.iloc[0], many)}" if many else ""))
        left.scatter(rows["K"][reached], y[reached], color=color, zorder=3)
        left.scatter(rows["K"][~reached], y[~reached], facecolors="white", edgecolors=color, zorder=3)
    left.scatter([], [], facecolors="white", edgecolors="grey", label="never as good: at its total cost")
    left.axhline(1.0, color="black", linestyle=":", linewidth=1, label="one ARML run")
    left.set(xscale="log", yscale="log", xlabel="auxiliary tasks K",
             ylabel=f"{unit} until as good as ARML / ARML's", title="searches: cost to match one ARML run")
    singles = table[table["trials_per_seed"] == 1]
    for n, (key, rows) in enumerate(singles.groupby(["method", *many], sort=False, dropna=False)):
        method = key[0] if isinstance(key, tuple) else key
        right.plot(rows["K"], rows["device_s_per_trial"], marker="o", color=colors[n % len(colors)],
                   linestyle=styles[(n // len(colors)) % len(styles)],
                   label=method + (f", {_where(rows.iloc[0], many)}" if many else ""))
    right.set(xscale="log", xlabel="auxiliary tasks K", ylabel=f"{unit} per run",
              title="one run's cost (median over seeds)")
    right.set_ylim(bottom=0)
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    for ax in (left, right):
        ks = sorted(table["K"].unique())
        if ks:
            ax.set_xticks(ks, [str(int(k)) for k in ks])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(plain)
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(fontsize=8)
    left.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


def write_searches(cells: list[tuple[dict[str, Any], RunData]], out_dir: str, margin_points: float | None = None,
                   multiple: float = MULTIPLE) -> pd.DataFrame:
    """Writes searches.csv/.md/.png, searches_verdicts.csv and searches_budgeted.csv under out_dir (the report
    folder); returns the budgeted table (the regime map draws it)."""
    os.makedirs(out_dir, exist_ok=True)
    table, verdicts, budgeted = searches_tables(cells, margin_points, multiple)
    for frame, name in ((table, ReportFiles.SEARCHES_CSV), (verdicts, ReportFiles.SEARCHES_VERDICTS_CSV),
                        (budgeted, ReportFiles.SEARCHES_BUDGETED_CSV)):   # rounded, as every table of the report
        write_csv(frame, out_dir, name)
    write_text(markdown(table, verdicts, budgeted), out_dir, ReportFiles.SEARCHES_MD)
    plot(table, os.path.join(out_dir, ReportFiles.SEARCHES_PNG))
    return budgeted
