"""The report's pages on why a learned weighting weighted the tasks as it did (the numbers and the rule are
orchestrator/analysis/diagnostics.py): results.md's section with the correlations and the warning, diagnostics.png
(per method, weight against size and against alignment) and, for a sweep, diagnostics_summary.png (every cell's two
correlations in one picture)."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.analysis.diagnostics import P_VALUE, R_COS, R_SIZE, SUMMARY_COLUMNS
from orchestrator.analysis.run_data import RunData
from orchestrator.store.folder import atomic_path


def _r_text(r: float, p: float) -> str:
    return "n/a" if math.isnan(r) else f"{r:+.2f} (p {p:.2g})"


def markdown(data: RunData, summary: pd.DataFrame) -> list[str]:
    """results.md's section: the correlations per method and budget, and one warning line per method and budget
    whose weights follow size rather than alignment."""
    from orchestrator.report.text import budget_text, md_table

    lines = ["## Why the weights are what they are", "",
             "Across the auxiliary tasks, Pearson's r of each learned method's final weight with the logarithm of the "
             "task's gradient size relative to the main task's (|g_k| / |g_main|) and with its cosine to the main "
             "gradient, both "
             "averaged over the run's evaluations and the seeds (diagnostics.csv, diagnostics.png). A method is "
             f"flagged when |r_size| >= {R_SIZE:g} (p < {P_VALUE:g}) and |r_cos| < {R_COS:g}: size explains about "
             "half the spread of its weights, alignment almost none.", ""]
    if summary.empty:
        return lines + ["No learned weighting recorded diagnostics here.", ""]
    rows = [[r["method"], budget_text(data.budget_key, r["budget"]), str(int(r["tasks"])), str(int(r["seeds"])),
             _r_text(r["r_size"], r["p_size"]), _r_text(r["r_cos"], r["p_cos"]),
             "**size, not alignment**" if r["follows_size"] else ""] for _, r in summary.iterrows()]
    lines += [md_table(["method", "budget", "tasks", "seeds", "r with size", "r with cosine", "weights follow"], rows),
              ""]
    for _, r in summary[summary["follows_size"]].iterrows():
        direction = "small" if r["r_size"] < 0 else "large"
        lines.append(f"Warning: {r['method']} at {budget_text(data.budget_key, r['budget'])} weights the tasks by "
                     f"gradient size (r = {r['r_size']:+.2f}: it favours tasks with {direction} gradients), not by "
                     f"alignment with the main task (r = {r['r_cos']:+.2f}).")
    return lines + [""]


def plot(data: RunData, tasks: pd.DataFrame, summary: pd.DataFrame, path: str, title: str) -> None:
    """One row per learned method: final weight against gradient size ratio (log x), and against the cosine;
    one colour per label budget, r in the legend."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from orchestrator.report.text import budget_text

    methods = list(dict.fromkeys(tasks["method"]))
    fig = Figure(figsize=(10, 2.9 * len(methods) + 0.6), dpi=110, layout="constrained")
    axes = fig.subplots(len(methods), 2, squeeze=False)
    for row, method in enumerate(methods):
        mine = tasks[tasks["method"] == method]
        for n, (budget, rows) in enumerate(mine.groupby("budget", sort=True, dropna=False)):
            at = summary[(summary["method"] == method) & ((summary["budget"] == budget)
                                                         if not pd.isna(budget) else summary["budget"].isna())]
            s = at.iloc[0] if len(at) else None
            where = budget_text(data.budget_key, budget) if not pd.isna(budget) else "all"
            for col, (x, key) in enumerate((("grad_norm_ratio", "size"), ("grad_cos", "cos"))):
                r = "" if s is None else f", r = {s['r_' + key]:+.2f}" if not pd.isna(s["r_" + key]) else ""
                axes[row][col].scatter(rows[x], rows["weight"], color=f"C{n}", s=22, label=f"{where}{r}")
                if col == 0:   # which task is which: named beside its point in the size panel
                    for _, t in rows.iterrows():
                        axes[row][0].annotate(t["task"], (t["grad_norm_ratio"], t["weight"]), fontsize=5,
                                              xytext=(3, 2), textcoords="offset points", color=f"C{n}")
        axes[row][0].set_xscale("log")
        axes[row][0].set(xlabel="|g_k| / |g_main| (run average)", ylabel=f"{method}: final weight")
        axes[row][1].set(xlabel="cos(g_k, g_main) (run average)")
        axes[row][1].axvline(0, color="grey", linewidth=0.8, linestyle=":")
        axes[row][1].xaxis.set_major_locator(MaxNLocator(6))
        flagged = summary[(summary["method"] == method) & summary["follows_size"]]
        axes[row][0].set_title("weight vs gradient size" + ("  (follows size)" if len(flagged) else ""), fontsize=9)
        axes[row][1].set_title("weight vs alignment with the main task", fontsize=9)
        for ax in axes[row]:
            ax.grid(True, alpha=0.2)
            ax.legend(fontsize=7)
    fig.suptitle(f"{title}: why the weights are what they are (one point per auxiliary task, mean over seeds)",
                 fontsize=10)
    with atomic_path(path) as temporary:
        fig.savefig(temporary)


def summary_plot(summary: pd.DataFrame, path: str, title: str, colors: dict[str, str]) -> None:
    """A sweep's diagnostics at a glance: per learned method, cell and budget, r with the gradient size against
    r with alignment; the shaded band is the warning's region (weights follow size, not alignment)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.5), dpi=110, layout="constrained")
    ax = fig.subplots()
    for sign in (-1, 1):
        ax.fill_between([-R_COS, R_COS], sign * R_SIZE, sign * 1.05, color="#d73027", alpha=0.12, linewidth=0)
    ax.fill_between([], [], [], color="#d73027", alpha=0.12, label=f"follows size: |r_size| >= {R_SIZE:g}, "
                                                                  f"|r_cos| < {R_COS:g} (flagged when p < {P_VALUE:g})")
    front = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    markers = "osD^v<>P*X"
    kinds = list(dict.fromkeys(summary[front[0]])) if front else []
    for method, rows in summary.groupby("method", sort=False):
        for kind, group in (rows.groupby(front[0], sort=False) if front else [(None, rows)]):
            marker = markers[kinds.index(kind) % len(markers)] if kinds else "o"
            flagged = group["follows_size"].astype(bool)
            label = None if kinds else method
            ax.scatter(group["r_cos"], group["r_size"], color=colors.get(method), marker=marker, s=40,
                       edgecolors=["black" if f else "none" for f in flagged], label=label)
        if kinds:   # one legend entry per method, one per marker
            ax.scatter([], [], color=colors.get(method), marker="o", label=method)
    for kind in kinds:
        ax.scatter([], [], color="grey", marker=markers[kinds.index(kind) % len(markers)], label=f"{front[0]} = {kind}")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="r of final weight with cos(g_k, g_main)",
           ylabel="r of final weight with log |g_k| / |g_main|",
           title=f"{title}: what the learned weights follow (one point per cell and budget; black edge: flagged)")
    ax.title.set_fontsize(9)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.grid(True, alpha=0.2)
    ax.legend(fontsize=7, loc="best")
    with atomic_path(path) as temporary:
        fig.savefig(temporary)
