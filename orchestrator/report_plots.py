"""The report's figures (PNG, matplotlib without pyplot, so nothing global changes): accuracy against the
number of labels (paper Fig. 2/3) and auxiliary weights against training step (paper Fig. 4)."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report_tables import budget_text

AXIS = {"label_budget": "labeled training images", "per_class": "labeled target images per class",
        "label_fraction": "fraction of training images labeled"}
MAX_LINES = 10   # tasks drawn per weight panel: the 5 highest and 5 lowest final weights beyond this


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def data_requirement_plot(points: pd.DataFrame, path: str, study: str, budget_key: str,
                          targets: list[float]) -> None:
    """Test accuracy (%) vs label budget, one line per method, 95% CI band over seeds."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    if points.empty:
        _empty(ax, "no finished trials yet")
    for index, (method, group) in enumerate(points.groupby("method", sort=False)):
        group = group.sort_values("budget")
        color, marker = f"C{index % 10}", "os^Dv<>PX*"[index % 10]
        label = method + (" (point chosen on val)" if group["selected_weights"].astype(bool).any() else "")
        x, y = group["budget"], 100 * group["test_acc_mean"]
        ax.plot(x, y, marker=marker, color=color, label=label, alpha=0.9)
        band = group["test_acc_ci95"].notna()
        if band.any():   # the t interval can pass 100% with few seeds: drawn clipped to [0, 100]
            low, high = (100 * group[c][band].clip(0, 1) for c in ("test_acc_low", "test_acc_high"))
            ax.fill_between(x[band], low, high, color=color, alpha=0.15, linewidth=0)
    for target in targets:
        ax.axhline(100 * target, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"target {100 * target:g}%", (0.99, 100 * target), xycoords=("axes fraction", "data"),
                    fontsize=8, color="grey", va="bottom", ha="right")
    budgets = sorted(points["budget"].dropna().unique())
    if len(budgets) > 1 and budgets[0] > 0 and budgets[-1] / budgets[0] >= 8:
        ax.set_xscale("log")
    if budgets:
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
    ax.set_xlabel(AXIS.get(budget_key, "label budget"))
    ax.set_ylabel("test accuracy at best validation (%)")
    ax.set_title(f"{study}: accuracy vs labels (mean, 95% CI over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    if not points.empty:
        ax.legend(fontsize=8)
    fig.savefig(path)


def _shown_tasks(panel: pd.DataFrame) -> list[str]:
    final = panel.sort_values("step").groupby("task", sort=False)["weight_mean"].last()
    final = final.sort_values(ascending=False, kind="stable")
    if len(final) <= MAX_LINES:
        return list(final.index)
    half = MAX_LINES // 2
    return list(final.index[:half]) + list(final.index[-half:])


def weights_plot(trajectories: pd.DataFrame, path: str, study: str, budget_key: str,
                 aux_names: list[str]) -> None:
    """Each auxiliary weight vs training step (mean over seeds): rows = methods, columns = label budgets."""
    methods = list(dict.fromkeys(trajectories["method"]))
    budgets = sorted(trajectories["budget"].dropna().unique()) or [math.nan]
    rows, cols = max(1, len(methods)), len(budgets)
    fig = _figure(min(max(4.2 * cols + 2.4, 7.5), 22), min(3.0 * rows + 1.0, 24))
    color = {name: f"C{i % 10}" for i, name in enumerate(aux_names)}
    style = {name: ("-", "--", ":", "-.")[(i // 10) % 4] for i, name in enumerate(aux_names)}
    drawn: dict[str, object] = {}
    trimmed = False
    axes = fig.subplots(rows, cols, squeeze=False, sharey="row")   # methods differ in scale (AdaLoss: 1/loss)
    for r, method in enumerate(methods or [""]):
        for c, budget in enumerate(budgets):
            ax = axes[r][c]
            panel = trajectories[(trajectories["method"] == method) & (
                trajectories["budget"] == budget if not math.isnan(budget) else trajectories["budget"].isna())]
            ax.set_title(f"{method}, {budget_text(budget_key, budget)}", fontsize=9)
            if panel.empty:
                _empty(ax, "no finished trials")
                continue
            shown = _shown_tasks(panel)
            trimmed |= len(shown) < panel["task"].nunique()
            for task in shown:
                line = panel[panel["task"] == task].sort_values("step")
                (drawn[task],) = ax.plot(line["step"], line["weight_mean"], color=color.get(task, "k"),
                                         linestyle=style.get(task, "-"), label=task)
            ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
            ax.grid(alpha=0.3)
            if r == rows - 1:
                ax.set_xlabel("training step")
            if c == 0:
                ax.set_ylabel("auxiliary weight (mean over seeds)")
    if not methods:
        _empty(axes[0][0], "no method with adaptive weights")
    note = "\n(the 5 highest and 5 lowest final weights of each panel)" if trimmed else ""
    fig.suptitle(f"{study}: auxiliary task weights during training{note}", fontsize=10)
    if drawn:
        ordered = [name for name in aux_names if name in drawn]
        fig.legend([drawn[n] for n in ordered], ordered, loc="outside right upper", fontsize=8,
                   title="auxiliary task", title_fontsize=8)
    fig.savefig(path)


def cost_vs_accuracy_plot(progress: pd.DataFrame, singles: pd.DataFrame, path: str, study: str, budget_key: str,
                          device: str) -> None:
    """Best validation-selected test accuracy found so far vs device-seconds, one line per search method,
    the single-run methods (ARML, Uniform, ...) as points with 95% CI bars; one panel per label budget."""
    budgets = sorted({*progress["budget"].dropna().tolist(), *singles["budget"].dropna().tolist()}) or [math.nan]
    fig = _figure(5.5 * len(budgets), 4.3)
    axes = fig.subplots(1, len(budgets), squeeze=False)[0]
    methods = list(dict.fromkeys([*progress["method"], *singles["method"]]))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    def at(frame: pd.DataFrame, budget: float) -> pd.DataFrame:
        return frame[frame["budget"] == budget] if not math.isnan(budget) else frame[frame["budget"].isna()]

    for ax, budget in zip(axes, budgets):
        here, points = at(progress, budget), at(singles, budget)
        if here.empty and points.empty:
            _empty(ax, "no finished trials")
        for method, group in here.groupby("method", sort=False):
            ax.step(group["device_s"], 100 * group["test_acc_mean"], where="post", color=colors[method],
                    label=f"{method} (best so far)")
            ax.plot(group["device_s"].iloc[-1], 100 * group["test_acc_mean"].iloc[-1], "o", color=colors[method])
        for index, (_, r) in enumerate(points.iterrows()):
            err = None if math.isnan(r["test_acc_ci95"]) else 100 * r["test_acc_ci95"]
            ax.errorbar(r["device_s"], 100 * r["test_acc_mean"], yerr=err, fmt="sDv^<>"[index % 6],
                        color=colors[r["method"]], capsize=4, markersize=7, label=f"{r['method']} (one run)")
        values = [*here["device_s"], *points["device_s"]]
        if values and min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
        ax.set_xlabel(f"{device}-seconds per seed (cumulative for searches)")
        ax.set_ylabel("test accuracy at best validation (%)")
        ax.set_title(budget_text(budget_key, budget), fontsize=10)
        ax.grid(alpha=0.3)
        if len(here) or len(points):
            ax.legend(fontsize=7)
    fig.suptitle(f"{study}: accuracy found vs compute spent (mean over seeds)", fontsize=10)
    fig.savefig(path)
