"""The report's figures (PNG, matplotlib without pyplot, so nothing global changes): accuracy against the
number of labels (paper Fig. 2/3) and auxiliary weights against training step (paper Fig. 4)."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report.text import budget_text, points_text, seeds_text
from orchestrator.store.folder import atomic_path
from orchestrator.study.vocabulary import BY_FIELD

MAX_LINES = 10   # tasks drawn per weight panel: the 5 highest and 5 lowest final weights beyond this


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def method_colors(methods: list[str]) -> dict[str, str]:
    """One fixed colour per method (study order), the same in every figure of a report."""
    return {method: f"C{i % 10}" for i, method in enumerate(methods)}


def _clipped_band(ax, x, low, high, color) -> bool:
    """Draws a 95% band clipped to [0, 100] %; returns True if anything was clipped."""
    clipped = bool(((low < 0) | (high > 1)).any())
    ax.fill_between(x, 100 * low.clip(0, 1), 100 * high.clip(0, 1), color=color, alpha=0.15, linewidth=0)
    return clipped


def _clipped_bars(ax, x, mean, low, high, color, marker: str, label: str | None = None) -> bool:
    """Points with 95% error bars clipped to [0, 100] % (fractions in); returns True if a bar was clipped."""
    import numpy as np

    mean, low, high = (np.asarray(v, dtype="float64") for v in (mean, low, high))
    clipped = bool(((low < 0) | (high > 1)).any())
    err = [100 * np.nan_to_num(mean - low.clip(0, 1)), 100 * np.nan_to_num(high.clip(0, 1) - mean)]
    ax.errorbar(x, 100 * mean, yerr=err, fmt=marker, color=color, capsize=4, markersize=7, label=label, alpha=0.9)
    return clipped


def _fit_y(ax, values, low: float = 0.0, high: float = 100.0) -> None:
    """The y axis fitted to `values` (the points and interval ends drawn) with a little padding, kept in
    [low, high]; left alone without finite values."""
    finite = [float(v) for v in values if v == v and abs(float(v)) != float("inf")]
    if not finite:
        return
    bottom, top = min(finite), max(finite)
    pad = max(0.08 * (top - bottom), 1.0)
    ax.set_ylim(max(low, bottom - pad), min(high, top + pad))


def _caption(fig, text: str) -> None:
    """The figure's caption (selection rule, seeds) under the axes; constrained layout makes room for it."""
    import textwrap

    width = int(fig.get_figwidth() * 17)   # characters per line at fontsize 7
    fig.supxlabel("\n".join(textwrap.wrap(text, width)), fontsize=7, color="dimgrey", ha="left", x=0.01)


def data_requirement_plot(points: pd.DataFrame, paired: pd.DataFrame, path: str, study: str, budget_key: str,
                          targets: list[float], colors: dict[str, str], uniform: str | None) -> None:
    """Left: test accuracy (%) vs label budget, one line per method, 95% CI band over seeds (clipped to
    [0, 100], clipping marked). Right: each method minus Uniform, paired over seeds, with its 95% interval.
    With a single label budget (or none) both panels show one x position per method, with error bars."""
    diffs = paired[paired["versus"] == uniform] if uniform and len(paired) else paired.iloc[0:0]
    fig = _figure(12 if len(diffs) else 7, 5.0)
    axes = fig.subplots(1, 2 if len(diffs) else 1, squeeze=False)[0]
    ax = axes[0]
    budgets = sorted(points["budget"].dropna().unique())
    single = len(budgets) <= 1
    if points.empty:
        _empty(ax, "no finished trials yet")
    if single:
        clipped = _accuracy_by_method(ax, points, colors, targets)
        where = budget_text(budget_key, budgets[0]) if budgets else "all labels"
        ax.set_title(f"{study}: accuracy at {where} (mean, 95% CI over seeds)", fontsize=10)
    else:
        clipped = _accuracy_by_budget(ax, points, colors)
        ax.set_ylim(0, 100)
        ax.set_title(f"{study}: accuracy vs labels (mean, 95% CI over seeds)", fontsize=10)
    for target in targets:
        ax.axhline(100 * target, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"target {100 * target:g}%", (0.99, 100 * target), xycoords=("axes fraction", "data"),
                    fontsize=8, color="grey", va="bottom", ha="right", annotation_clip=True)
    for a in axes:
        if not single:
            if budgets[0] > 0 and budgets[-1] / budgets[0] >= 8:
                a.set_xscale("log")
            a.set_xticks(budgets, [f"{b:g}" for b in budgets])
            a.minorticks_off()
            a.set_xlabel(BY_FIELD[budget_key].axis if budget_key in BY_FIELD else "label budget")
        elif budgets:
            a.set_xlabel(f"method (at {budget_text(budget_key, budgets[0])})")
        else:
            a.set_xlabel("method")
        a.grid(alpha=0.3)
    if clipped:
        ax.annotate("some 95% intervals clipped at 0 or 100%", (0.01, 0.01), xycoords="axes fraction", fontsize=7,
                    color="dimgrey")
    ax.set_ylabel("test accuracy at best validation (%)")
    if not points.empty and not single:   # with one budget the methods are named under the axis
        ax.legend(fontsize=8)
    if len(diffs):
        _difference_panel(axes[1], diffs, colors, uniform or "uniform", single)
    seeds = int(points["seeds"].max()) if len(points) else 0
    right = (f" Right: per-seed differences to {uniform}, mean and 95% paired t interval (the same seed gives both "
             "methods the same labels and initialisation).") if len(diffs) else ""
    _caption(fig, "Selection on validation only: each trial's test accuracy at its best-validation evaluation; "
                  "a grid's point by mean validation accuracy over seeds; a search's trial per seed by validation. "
                  + ("Under a grid's name, its weights chosen on validation. " if single and
                     points["selected_weights"].astype(bool).any() else "")
                  + f"Up to {seeds_text(seeds)} per {'method' if single else 'point'}.{right}")
    with atomic_path(path) as temporary:
        fig.savefig(temporary)


def _accuracy_by_budget(ax, points: pd.DataFrame, colors: dict[str, str]) -> bool:
    """One line per method over the budgets, its 95% band (an error bar where a method has a single point);
    True if an interval drawn was clipped at 0 or 100%."""
    clipped = False
    for index, (method, group) in enumerate(points.groupby("method", sort=False)):
        group = group[group["budget"].notna()].sort_values("budget")
        color, marker = colors.get(method, "k"), "os^Dv<>PX*"[index % 10]
        label = method + (" (point chosen on val)" if group["selected_weights"].astype(bool).any() else "")
        x, y = group["budget"], 100 * group["test_acc_mean"]
        ax.plot(x, y, marker=marker, color=color, label=label, alpha=0.9)
        band = group["test_acc_ci95"].notna()
        if band.sum() >= 2:
            clipped |= _clipped_band(ax, x[band], group["test_acc_low"][band], group["test_acc_high"][band], color)
        elif band.any():   # a band needs two budgets: the lone interval as an error bar
            clipped |= _clipped_bars(ax, x[band], group["test_acc_mean"][band], group["test_acc_low"][band],
                                     group["test_acc_high"][band], color, marker)
    return clipped


def _accuracy_by_method(ax, points: pd.DataFrame, colors: dict[str, str], targets: list[float]) -> bool:
    """A single budget: one x position per method, its mean with the 95% interval as an error bar; the y axis
    fitted to what is drawn (and the targets). True if an interval drawn was clipped at 0 or 100%."""
    clipped, shown = False, [100 * t for t in targets]
    methods, names = list(dict.fromkeys(points["method"])), []
    for index, method in enumerate(methods):
        r = points[points["method"] == method].iloc[0]
        names.append(method + (f"\n{r['selected_weights']}" if r["selected_weights"] else ""))
        low, high = r["test_acc_low"], r["test_acc_high"]
        if r["test_acc_ci95"] != r["test_acc_ci95"]:   # one seed: no interval
            low = high = r["test_acc_mean"]
        clipped |= _clipped_bars(ax, [index], [r["test_acc_mean"]], [low], [high], colors.get(method, "k"),
                                 "os^Dv<>PX*"[index % 10])
        shown += [100 * min(max(v, 0.0), 1.0) for v in (low, high, r["test_acc_mean"])]
    ax.set_xticks(range(len(methods)), names, rotation=30 if len(methods) > 5 else 0,
                  ha="right" if len(methods) > 5 else "center")
    ax.set_xlim(-0.6, len(methods) - 0.4)
    _fit_y(ax, shown)
    return clipped


def _difference_panel(ax, diffs: pd.DataFrame, colors: dict[str, str], uniform: str, single: bool = False) -> None:
    methods = list(dict.fromkeys(diffs["method"]))
    for index, method in enumerate(methods):   # methods side by side around each budget, a few % apart
        rows = diffs[diffs["method"] == method].sort_values("budget")
        if single:   # one budget: one x position per method, labelled below
            x = [index] * len(rows)
        else:
            x = rows["budget"] * (1 + 0.015 * (index - (len(methods) - 1) / 2))
        y = 100 * rows["mean_diff"]
        err = [100 * (rows["mean_diff"] - rows["diff_low"]).fillna(0),
               100 * (rows["diff_high"] - rows["mean_diff"]).fillna(0)]
        ax.errorbar(x, y, yerr=err, fmt="o" if single else "o-", color=colors.get(method, "k"), capsize=3,
                    label=method, alpha=0.9)
    if single:
        ax.set_xticks(range(len(methods)), methods, rotation=30 if len(methods) > 5 else 0,
                      ha="right" if len(methods) > 5 else "center")
        ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.axhline(0, color="black", linewidth=0.8)
    margin = float(diffs["margin"].iloc[0]) if len(diffs) else 0.0
    if margin:
        ax.axhline(-100 * margin, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f"-margin ({points_text(100 * margin)})", (0.99, -100 * margin),
                    xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="top", ha="right")
    ax.set_ylabel(f"test accuracy minus {uniform} (points)")
    ax.set_title(f"paired difference to {uniform} (95% interval over seeds)", fontsize=10)
    if not single:
        ax.legend(fontsize=8)


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
    with atomic_path(path) as temporary:
        fig.savefig(temporary)


def cost_vs_accuracy_plot(progress: pd.DataFrame, singles: pd.DataFrame, path: str, study: str, budget_key: str,
                          device: str, colors: dict[str, str] | None = None) -> None:
    """Best validation-selected test accuracy found so far vs device-seconds, one line per search method,
    the single-run methods (ARML, Uniform, ...) as points with 95% CI bars; one panel per label budget."""
    budgets = sorted({*progress["budget"].dropna().tolist(), *singles["budget"].dropna().tolist()}) or [math.nan]
    fig = _figure(5.5 * len(budgets), 4.3)
    axes = fig.subplots(1, len(budgets), squeeze=False)[0]
    methods = list(dict.fromkeys([*progress["method"], *singles["method"]]))
    colors = colors or method_colors(methods)
    clipped = False

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
        shown = [100 * v for v in here["test_acc_mean"]]
        for index, (_, r) in enumerate(points.iterrows()):
            err = None
            mean = r["test_acc_mean"]
            shown.append(100 * mean)
            if not math.isnan(r["test_acc_ci95"]):   # the bar clipped to [0, 100] %
                half = r["test_acc_ci95"]
                clipped |= mean - half < 0 or mean + half > 1
                err = [[100 * (mean - max(mean - half, 0.0))], [100 * (min(mean + half, 1.0) - mean)]]
                shown += [100 * max(mean - half, 0.0), 100 * min(mean + half, 1.0)]
            ax.errorbar(r["device_s"], 100 * mean, yerr=err, fmt="sDv^<>"[index % 6],
                        color=colors[r["method"]], capsize=4, markersize=7, label=f"{r['method']} (one run)")
        values = [*here["device_s"], *points["device_s"]]
        if values and min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
        ax.set_xlabel(f"{device}-seconds per seed (cumulative for searches)")
        ax.set_ylabel("test accuracy at best validation (%)")
        _fit_y(ax, shown)   # the range that matters (say 80-92%), not 0-100
        ax.set_title(budget_text(budget_key, budget), fontsize=10)
        ax.grid(alpha=0.3)
        if len(here) or len(points):
            ax.legend(fontsize=7)
    seeds = int(max([*progress.get("seeds", pd.Series(dtype=float)).tolist(), *singles["seeds"].tolist(), 0]))
    fig.suptitle(f"{study}: accuracy found vs compute spent (mean over seeds)", fontsize=10)
    _caption(fig, "Selection on validation only. A grid's curve: after its first i points (per seed, in the order Tune "
                  "started them) the point with the best mean validation accuracy over seeds, so its last value is "
                  "the results table's; a search's curve: per seed, the trial with the best validation accuracy so "
                  f"far. Single runs: mean with 95% t interval over {seeds_text(seeds)}"
                  + ("; error bars clipped at 0 or 100%." if clipped else "."))
    with atomic_path(path) as temporary:
        fig.savefig(temporary)
