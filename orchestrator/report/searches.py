"""Searches over the fixed auxiliary weights against single runs (ARML, its cheap variant, Uniform), cell by cell
of a study: how much device time each search needs to become "as good" as one ARML run, the verdicts of every
method against ARML, and each single run against each search given `MULTIPLE` (16) times its device-seconds. With a
sweep over the number K of auxiliary tasks (`aux_count`), this is the K-scaling report.

For every cell and search method, each seed's search is read in plan order as a best-so-far curve: after its
first i trials, the trial with the best validation accuracy so far (a grid: the point with the best mean
validation accuracy over seeds among its first i points) and that trial's test accuracy. The search is "as good"
as ARML after i trials when the per-seed differences (search minus ARML, paired by seed) have a 95% Student-t
interval whose lower bound lies above -margin (the study's `[report] margin`), the rule of
`orchestrator.report.verdicts`. Its cost is the mean over seeds of the device-seconds its first i trials took,
shown relative to one ARML run's; a search that never gets there is shown at its total cost as "never". Selection
is on validation only; each test accuracy is read once, for the selected trial.

Files (in the report folder): `searches.csv`/`.md` (one row per cell and method), `searches_verdicts.csv` (each
method against ARML, a search at its 4-, 16- and 64-trial prefixes and at its end), `searches_budgeted.csv` (each
single-run method against each search given 16 times its device-seconds: the search's longest prefix that fits,
per seed) and `searches.png` (the cost to match ARML along K).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.report.data import DONE, RunData, _budget_rows, chosen_grid_point
from orchestrator.report.verdicts import AS_GOOD, BETTER, compare, per_seed
from orchestrator.store.folder import atomic_path

PREFIXES = (4, 16, 64)       # search budgets read as prefixes of one longer search
COLUMNS = ["K", "budget", "method", "kind", "trials_per_seed", "device", "arml_device_s", "device_s_per_trial",
           "as_good_after", "device_s_to_as_good", "ratio_to_arml", "never", "total_device_s", "ratio_total",
           "seeds", "test_acc"]
BUDGETED_COLUMNS = ["K", "budget", "method", "search", "multiple", "method_device_s", "trials",
                    "search_device_s", "n_pairs", "mean_diff", "diff_low", "diff_high", "margin", "verdict",
                    "method_val_acc", "chosen"]
MULTIPLE = 16.0              # the search's allowance, in units of one ARML run's device-seconds
VERDICT_COLUMNS = ["K", "budget", "method", "kind", "trials", "n_pairs", "mean_diff", "diff_low", "diff_high",
                   "margin", "verdict"]


def _column(data: RunData) -> tuple[str, str]:
    """('GPU', 'gpu_s') when the run used GPUs, else ('CPU', 'cpu_s')."""
    gpu = pd.to_numeric(data.trials.get("gpu_s"), errors="coerce")
    return ("GPU", "gpu_s") if gpu is not None and float(gpu.fillna(0).sum()) > 0 else ("CPU", "cpu_s")


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def _run_cost(done: pd.DataFrame, column: str) -> float:
    """One run's device-seconds: the median over its seeds' trials. The first trial on each Ray worker pays one-off
    start-up (data, first calls) and would make whichever method the plan starts with look dearer on a mean of 5."""
    return float(done[column].fillna(0).median()) if len(done) else math.nan


def _cost(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def search_curves(data: RunData, method: str, budget: float, column: str) -> dict[int, list[tuple[float, float]]]:
    """Per seed, after each of the search's trials in plan order: (device-seconds spent so far, test accuracy of
    the validation-selected trial so far; NaN before the first finished trial)."""
    mine = _budget_rows(data.trials[data.trials["method"] == method], budget).sort_values("order")
    curves: dict[int, list[tuple[float, float]]] = {}
    if data.is_grid(method):
        points = list(dict.fromkeys(mine["grid_point"].tolist()))
        for i in range(1, len(points) + 1):
            seen = mine[mine["grid_point"].isin(points[:i])]
            done = seen[seen["status"].isin(DONE) & seen["best_val_acc"].notna()]
            chosen = chosen_grid_point(done) if len(done) else None
            for seed, rows in seen.groupby("seed"):
                spent = sum(_cost(c) for c in rows[column])
                pick = rows[(rows["grid_point"] == chosen) & rows["status"].isin(DONE)]
                test = float(pick["test_acc_at_best_val"].iloc[0]) if len(pick) else math.nan
                curves.setdefault(int(seed), []).append((spent, test))
        return curves
    for seed, rows in mine.groupby("seed"):
        spent, best_val, best_test, curve = 0.0, -math.inf, math.nan, []
        for _, r in rows.iterrows():
            spent += _cost(r[column])
            if r["status"] in DONE and not math.isnan(r["best_val_acc"]) and r["best_val_acc"] > best_val:
                best_val, best_test = float(r["best_val_acc"]), float(r["test_acc_at_best_val"])
            curve.append((spent, best_test))
        curves[int(seed)] = curve
    return curves


def at_prefix(curves: dict[int, list[tuple[float, float]]], i: int) -> tuple[pd.Series, float]:
    """(test accuracy per seed after the first i trials, mean device-seconds per seed spent on them); a seed
    with fewer trials keeps its last value."""
    tests, spent = {}, []
    for seed, curve in curves.items():
        if curve:
            s, t = curve[min(i, len(curve)) - 1]
            spent.append(s)
            if not math.isnan(t):
                tests[seed] = t
    return pd.Series(tests, dtype="float64"), (float(np.mean(spent)) if spent else math.nan)


def paired(method: pd.Series, arml: pd.Series, margin: float) -> dict[str, Any]:
    """The paired comparison of method - arml over common seeds (orchestrator.report.verdicts.compare): n, mean,
    low, high and the verdict."""
    row = compare(method, arml, margin)
    return {key: row[key] for key in ("n_pairs", "mean_diff", "diff_low", "diff_high", "verdict")}


Curves = dict[int, list[tuple[float, float]]]


def _curves(data: RunData, method: str, budget: float, column: str, cache: dict[tuple, Curves]) -> Curves:
    """search_curves, computed once per run folder, search and budget (the headline and the budgeted
    comparisons read the same curves)."""
    key = (method, budget, column)
    if key not in cache:
        cache[key] = search_curves(data, method, budget, column)
    return cache[key]


def search_rows(data: RunData, method: str, budget: float, column: str, reference: pd.Series, base: dict,
                margin: float, cache: dict[tuple, Curves]) -> tuple[dict, list[dict]]:
    """A search's headline row (the first prefix as good as ARML, its cost) and its verdicts at the prefixes."""
    curves = _curves(data, method, budget, column, cache)
    n = max((len(c) for c in curves.values()), default=0)
    found, found_cost = math.nan, math.nan
    for i in range(1, n + 1):
        tests, spent = at_prefix(curves, i)
        if paired(tests, reference, margin)["verdict"] in (BETTER, AS_GOOD):
            found, found_cost = float(i), spent
            break
    final, total = at_prefix(curves, n) if n else (pd.Series(dtype="float64"), math.nan)
    arml_cost = base["arml_device_s"]
    row = {**base, "method": method, "kind": data.kind(method), "trials_per_seed": n,
           "device_s_per_trial": total / n if n else math.nan, "as_good_after": found,
           "device_s_to_as_good": found_cost, "ratio_to_arml": _ratio(found_cost, arml_cost),
           "never": math.isnan(found), "total_device_s": total, "ratio_total": _ratio(total, arml_cost),
           "seeds": len(curves), "test_acc": float(final.mean()) if len(final) else math.nan}
    verdicts = [{"K": base["K"], "budget": budget, "method": method, "kind": data.kind(method), "trials": i,
                 "margin": margin, **paired(at_prefix(curves, i)[0], reference, margin)}
                for i in sorted({p for p in PREFIXES if p < n} | ({n} if n else set()))]
    return row, verdicts


def budgeted_rows(data: RunData, margin: float, multiple: float = MULTIPLE,
                  cache: dict[tuple, Curves] | None = None) -> list[dict]:
    """Each single-run method (ARML in its variants, Uniform, Auto-Lambda, ...: every method that is not a search)
    against each search given `multiple` times that method's device-seconds per run: the search's longest prefix
    whose mean cost per seed fits, and the paired verdict of the method minus the search's validation-selected
    trial after that prefix. A search whose first trial already costs more is left out (no prefix fits).
    `chosen` marks the single-run method a user would pick without looking at test: the best mean validation
    accuracy over its seeds at that budget (`method_val_acc`; the first in study order on a tie)."""
    device, column = _column(data)
    k = data.k
    searches = data.searches()
    singles = [m for m in data.methods if m not in searches]
    rows: list[dict] = []
    for budget in data.budgets or [math.nan]:
        val = {m: float(_budget_rows(data.done[data.done["method"] == m], budget)["best_val_acc"].mean())
               for m in singles}
        finite = {m: v for m, v in val.items() if not math.isnan(v)}
        chosen = max(finite, key=finite.__getitem__) if finite else None
        for method in singles:
            done = _budget_rows(data.done[data.done["method"] == method], budget)
            cost = _run_cost(done, column)
            if math.isnan(cost) or cost <= 0:
                continue
            mine = per_seed(data, method, budget)
            for search in searches:
                curves = _curves(data, search, budget, column, {} if cache is None else cache)
                n = max((len(c) for c in curves.values()), default=0)
                fits = [i for i in range(1, n + 1) if at_prefix(curves, i)[1] <= multiple * cost]
                if not fits:
                    continue
                tests, spent = at_prefix(curves, fits[-1])
                rows.append({"K": k, "budget": budget, "method": method, "search": search, "multiple": multiple,
                             "method_device_s": cost, "trials": fits[-1], "search_device_s": spent,
                             "margin": margin, **paired(mine, tests, margin), "method_val_acc": val[method],
                             "chosen": method == chosen})
    return rows


def run_rows(data: RunData, margin: float, cache: dict[tuple, Curves] | None = None
             ) -> tuple[list[dict], list[dict]]:
    """The headline rows and the verdict rows of one run folder (one K); none without an ARML method."""
    k = data.k
    arml = data.reference("arml")
    device, column = _column(data)
    rows: list[dict] = []
    verdicts: list[dict] = []
    if arml is None:
        return rows, verdicts
    searches = data.searches()
    for budget in data.budgets or [math.nan]:
        reference = per_seed(data, arml, budget)
        arml_done = _budget_rows(data.done[data.done["method"] == arml], budget)
        arml_cost = _run_cost(arml_done, column)
        base = {"K": k, "budget": budget, "device": device, "arml_device_s": arml_cost}
        for method in data.methods:
            if method in searches:
                row, more = search_rows(data, method, budget, column, reference, base, margin,
                                        {} if cache is None else cache)
                rows.append(row)
                verdicts += more
                continue
            done = _budget_rows(data.done[data.done["method"] == method], budget)
            cost = _run_cost(done, column)
            rows.append({**base, "method": method, "kind": data.kind(method), "trials_per_seed": 1,
                         "device_s_per_trial": cost, "as_good_after": math.nan, "device_s_to_as_good": math.nan,
                         "ratio_to_arml": math.nan, "never": False, "total_device_s": cost,
                         "ratio_total": _ratio(cost, arml_cost), "seeds": int(done["seed"].nunique()),
                         "test_acc": float(per_seed(data, method, budget).mean())})
            if method != arml:
                verdicts.append({"K": k, "budget": budget, "method": method, "kind": data.kind(method), "trials": 1,
                                 "margin": margin, **paired(per_seed(data, method, budget), reference, margin)})
    return rows, verdicts


def searches_tables(cells: list[tuple[dict[str, Any], RunData]], margin_points: float | None = None,
                    multiple: float = MULTIPLE) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(headline, verdicts, budgeted) of each cell's searches against its single runs, with the cell's swept
    values as columns in front, sorted by K."""
    rows, verdicts, budgeted = [], [], []
    for cell, data in cells:
        points = margin_points if margin_points is not None else float(data.plan.margin)
        cache: dict[tuple, Curves] = {}
        r, v = run_rows(data, points / 100.0, cache)
        rows += [{**cell, **row} for row in r]
        verdicts += [{**cell, **row} for row in v]
        budgeted += [{**cell, **row} for row in budgeted_rows(data, points / 100.0, multiple, cache)]
    front = [key for key in dict.fromkeys(k for cell, _ in cells for k in cell) if key not in ("K", "budget")]

    def frame(items: list[dict], columns: list[str]) -> pd.DataFrame:
        table = pd.DataFrame(items, columns=[*front, *columns])
        return table.sort_values(["K", "budget"], kind="stable").reset_index(drop=True)

    return frame(rows, COLUMNS), frame(verdicts, VERDICT_COLUMNS), frame(budgeted, BUDGETED_COLUMNS)


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
                   multiple: float = MULTIPLE) -> dict[str, str]:
    """Writes searches.csv/.md/.png, searches_verdicts.csv and searches_budgeted.csv under out_dir (the report
    folder); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    table, verdicts, budgeted = searches_tables(cells, margin_points, multiple)
    paths = {name: os.path.join(out_dir, name) for name in
             ("searches.csv", "searches_verdicts.csv", "searches_budgeted.csv", "searches.md", "searches.png")}
    for frame, name in ((table, "searches.csv"), (verdicts, "searches_verdicts.csv"),
                        (budgeted, "searches_budgeted.csv")):   # rounded, as every table of the report
        with atomic_path(paths[name]) as temporary:
            frame.round(9).to_csv(temporary, index=False, float_format="%.6g", lineterminator="\n")
    with atomic_path(paths["searches.md"]) as temporary, open(temporary, "w") as f:
        f.write(markdown(table, verdicts, budgeted))
    plot(table, paths["searches.png"])
    return paths


def has_searches(data: RunData) -> bool:
    """Whether a study compares searches with an ARML method (the searches files are written then)."""
    return bool(data.searches()) and data.reference("arml") is not None
