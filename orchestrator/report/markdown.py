"""The report's Markdown: the paper-style results table (results.md), the paired comparisons (comparisons.md) and
their verdicts in words, compute cost with the verdict on each search against ARML (compute_cost.md) and the task
relationships of the multi-label setting (relationships.md). Every number comes from orchestrator/analysis."""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from orchestrator.analysis.run_data import RunData, final_weights, not_done
from orchestrator.analysis.verdicts import BETTER, MIN_PAIRS, NOT_DECIDED, WORSE, comparisons, decided_winner, unordered
from orchestrator.report.text import budget_text, md_table, pct, points_text, seconds, seeds_text
from orchestrator.store.folder import ReportFiles
from orchestrator.study.vocabulary import search_words


def margin_of(data: RunData) -> float:
    """The study's non-inferiority margin in accuracy points ([report] margin)."""
    return float(data.plan.margin)


def verdict_text(row: Any) -> str:
    """'as good (+0.40, 95% CI -0.35 to +1.15, 5 seeds)' in accuracy points; not decided adds the seeds
    likely needed."""
    if row["n_pairs"] == 0 or math.isnan(row["mean_diff"]):
        return "no common seeds"
    if math.isnan(row["diff_low"]):
        detail = f"{100 * row['mean_diff']:+.2f}, {int(row['n_pairs'])} seed"
    else:
        detail = (f"{100 * row['mean_diff']:+.2f}, 95% CI {100 * row['diff_low']:+.2f} to "
                  f"{100 * row['diff_high']:+.2f}, {int(row['n_pairs'])} seeds")
    text = f"{row['verdict']} ({detail})"
    if row["verdict"] == NOT_DECIDED:
        if int(row["n_pairs"]) < MIN_PAIRS:
            text += f"; needs at least {MIN_PAIRS} seeds"
        need = row["seeds_to_decide"]
        if not math.isnan(need):
            text += "; no number of seeds is likely to decide it" if math.isinf(need) else \
                f"; about {int(need)} seeds would likely decide it"
    return text


def chance_text(frame: pd.DataFrame) -> str:
    """How many of these comparisons (each pair once) would say better or worse by chance alone, beside how many
    do."""
    made = int((frame["n_pairs"] >= MIN_PAIRS).sum())
    decided = int(frame["verdict"].isin([BETTER, WORSE]).sum())
    return (f"Chance: {made} comparison{'s' if made != 1 else ''} here, each at 95%. Were no method different from "
            f"its reference, each would still come out better or worse with a chance of up to 5%: about "
            f"{made / 20:.1f} of them; {decided} {'is' if decided == 1 else 'are'} decided better or worse. A lone "
            "decided verdict among many open ones is weak evidence; verdicts that agree across budgets, cells and "
            "studies are stronger. Every wave `--until-decided` adds is another look at the same comparisons, "
            "which raises that chance (for a 5% test, to about 13% at four equally spaced looks).")


def comparisons_markdown(data: RunData, frame: pd.DataFrame, margin_points: float) -> str:
    """comparisons.md: one table per budget, every method against every reference (each pair once), with its
    verdict; only decided verdicts are bold."""
    study = data.plan.study
    lines = [f"# {study}: paired comparisons", "",
             "Each row compares a method with a reference over the seeds both finished: the per-seed difference in "
             "test accuracy (method minus reference; each method's trial chosen on validation only, a grid's point "
             "on mean validation accuracy, a search's trial per seed), its mean and 95% paired Student-t interval "
             "in accuracy points (and a percentile bootstrap interval from 6 seeds on). Verdicts, with a margin of "
             f"{points_text(margin_points)}: **better** the interval lies above 0; **as good** it lies above "
             f"-{margin_points:g}; **worse** it lies below 0 and reaches below -{margin_points:g}; otherwise "
             f"not decided (always with fewer than {MIN_PAIRS} seeds, and never bold), with the seeds likely needed "
             "at the observed spread. Two reference methods are compared once (the later one in the study minus "
             "the earlier one). `arml run FILE --until-decided` adds seeds until every comparison is decided.", ""]
    if frame.empty:
        return "\n".join(lines + ["No comparison: the study has no reference method (a grid, a search, Uniform or "
                                  "main-only) with finished trials beside another method.", ""])
    frame = unordered(frame, data.methods)
    lines += [chance_text(frame), ""] if (frame["n_pairs"] >= MIN_PAIRS).any() else []
    for budget, group in frame.groupby("budget", sort=True, dropna=False):
        rows = []
        for _, r in group.iterrows():
            boot = "" if math.isnan(r["boot_low"]) else f"{100 * r['boot_low']:+.2f} to {100 * r['boot_high']:+.2f}"
            interval = "" if math.isnan(r["diff_low"]) else \
                f"{100 * r['diff_low']:+.2f} to {100 * r['diff_high']:+.2f}"
            need = r["seeds_to_decide"]
            need_text = "" if r["verdict"] != NOT_DECIDED or math.isnan(need) else (
                "never at this spread" if math.isinf(need) else f"~{int(need)}")
            if r["verdict"] != NOT_DECIDED and not math.isnan(r["decided_at"]):
                need_text = f"decided at {int(r['decided_at'])}"
            rows.append([r["method"], r["versus"], str(int(r["n_pairs"])), f"{100 * r['mean_diff']:+.2f}", interval,
                         boot, r["verdict"] if r["verdict"] == NOT_DECIDED else f"**{r['verdict']}**", need_text])
        lines += [f"## {budget_text(data.budget_key, budget)}", "",
                  md_table(["method", "versus", "seeds", "mean diff", "95% t interval", "bootstrap 95%", "verdict",
                            "seeds: decided at / to decide"], rows), ""]
    return "\n".join(lines)


def cost_verdict(data: RunData, cost: pd.DataFrame) -> str:
    """Is a search worth it next to ARML, from the paired verdicts in the cost table: one sentence per search."""
    searches = data.searches()
    if not searches or not data.reference("arml"):
        return _verdict_one(data, cost, searches[0] if searches else None)
    return "\n\n".join(_verdict_one(data, cost, method) for method in searches)


def _verdict_one(data: RunData, cost: pd.DataFrame, grid: str | None) -> str:
    """'Skip the search' only when ARML is better than or as good as the search's validation choice at every
    budget (paired over seeds, within the margin); otherwise what is decided and what is not."""
    arml = data.reference("arml")
    if not arml or not grid:
        missing = "grid search" if arml else ("ARML method" if grid else "grid search and no ARML method")
        return f"Verdict: this study has no {missing}, so there is no grid-search-vs-ARML decision to make " \
               "here; the table shows what each method cost."
    rows = cost[cost["method"] == grid]
    grid_s = float(rows["device_s"].sum())
    arml_s = float(cost.loc[cost["method"] == arml, "device_s"].sum())
    unit = str(rows["device"].iloc[0]) if len(rows) else "CPU"
    ratio = f"{grid_s / arml_s:.1f}x ARML's {unit}-seconds ({seconds(grid_s)} vs {seconds(arml_s)})" if arml_s else \
        f"{seconds(grid_s)} {unit}-seconds (ARML's cost is unknown)"
    key = data.budget_key
    verdicts = {budget_text(key, b): v or "not decided" for b, v in zip(rows["budget"], rows["arml_verdict"])}
    good = [b for b, v in verdicts.items() if v in ("better", "as good")]
    bad = [b for b, v in verdicts.items() if v == "worse"]
    open_ = [b for b, v in verdicts.items() if v == "not decided"]
    every = "the one budget" if len(rows) == 1 else "every budget"
    name = _name(data, grid)
    if good and not bad and not open_:
        return (f"Verdict{_about(data, grid)}: skip the {name}: ARML is better than or as good as its "
                f"validation-chosen weights at {every} (paired over seeds, see comparisons.md), and the {name} "
                f"costs {ratio}.")
    if bad and not good and not open_:
        return (f"Verdict{_about(data, grid)}: the {name} is more accurate here: ARML is worse than its choice at "
                f"{every} (paired over seeds); it costs {ratio}: search only if that gap is worth the compute.")
    parts = []
    if good:
        parts.append(f"ARML is better or as good at {', '.join(good)}")
    if bad:
        parts.append(f"worse at {', '.join(bad)}")
    if open_:
        parts.append(f"not decided at {', '.join(open_)} (more seeds needed: see comparisons.md; "
                     "`--until-decided` adds them)")
    head = "not decided" if not good and not bad else "mixed"
    return f"Verdict{_about(data, grid)}: {head}: {'; '.join(parts)}. The {name} costs {ratio}."


def _name(data: RunData, method: str) -> str:
    return search_words(data.kind(method))


def _about(data: RunData, method: str) -> str:
    """' on grid' when the study has several searches to compare ARML with, else ''."""
    return f" on {method}" if len(data.searches()) > 1 else ""


def cost_markdown(data: RunData, cost: pd.DataFrame, paired: pd.DataFrame | None = None) -> str:
    study = data.plan.study
    unit = str(cost["device"].iloc[0]) if len(cost) else "CPU"
    rows = []
    for _, r in cost.iterrows():
        ratio = "" if math.isnan(r["device_s_vs_arml"]) else f"{r['device_s_vs_arml']:.2f}x"
        label = r["method"] + (f" ({r['kind']})" if r["kind"] not in (r["method"], "fixed") else "") \
            + (f" {r['selected_weights']}" if r["selected_weights"] else "")
        rows.append([budget_text(data.budget_key, r["budget"]), label, f"{r['trials_done']}/{r['trials']}",
                     seconds(r["cpu_s"]), seconds(r["gpu_s"]), seconds(r["wall_s"]), ratio,
                     pct(r["test_acc_mean"], r["test_acc_ci95"]), r["arml_verdict"]])
    header = ["budget", "method", "trials done", "CPU s", "GPU s", "wall s", f"{unit}-s vs ARML",
              "test acc % (95% CI)", "ARML vs this (paired)"]
    return "\n".join([
        f"# {study}: compute cost of ARML vs the other methods", "", cost_verdict(data, cost), "",
        md_table(header, rows), "",
        f"- Device-seconds are {unit}-seconds: "
        + ("GPU fraction held x wall time, summed over trials." if unit == "GPU" else
           "CPU time of every trial's processes, summed over trials (no GPUs were used)."),
        "- Costs count every trial that ran, failed ones included; a grid search's cost is all its points "
        "(ASHA-stopped points with what they used). `device_s_to_best` in compute_cost.csv: what a search "
        "spent until the trial it selects, in the order Tune started them.",
        "- A TPE search's accuracy: per seed, the sampled trial with the best validation accuracy.",
        "- Accuracy: test accuracy at the best validation step, mean and 95% CI (Student t) over seeds; "
        "for a grid search, of the grid point (shown in brackets) with the best mean validation accuracy.",
        "- \"ARML vs this\": the paired verdict of ARML against the method's validation-chosen trials over "
        "common seeds (better / as good / worse / not decided; margin and intervals in comparisons.md). "
        "Overlapping unpaired intervals decide nothing; only this column does.",
        "- Device-seconds exclude each Ray worker's one-off start-up (imports), so identical trials cost the same "
        "whichever runs first.",
        "",
    ])


def relationships_markdown(data: RunData) -> str:
    """Paper Table 3: per ARML method and budget, the auxiliary tasks with the highest and lowest final weight."""
    names = list(data.plan.aux_names)
    main = (data.plan.trials[0].config.main_attribute if data.plan.trials else "") or "the main task"
    k = len(names)
    top_n = min(5, math.ceil(k / 2))
    bottom_n = min(5, k - top_n)
    lines = [f"# {data.plan.study}: auxiliary tasks most and least related to {main}", "",
             f"Final ARML weight of each of the {k} auxiliary tasks (the weight at each trial's last evaluation, "
             f"mean ± 95% CI over seeds; the weights sum to {k}, so 1 is the uniform weight).", ""]
    methods = [m for m in data.methods if data.weighting[m] == "arml"]
    if not methods:
        lines.append("No ARML method in this study: no learned relationships to show.")
    for method in methods:
        for budget in data.budgets or [math.nan]:
            weights = final_weights(data, method, budget).sort_values("weight_mean", ascending=False, kind="stable")
            title = f"## {method}, {budget_text(data.budget_key, budget)}"
            if weights.empty:
                lines += [title, "", "No finished trials.", ""]
                continue
            top, bottom = weights.head(top_n), weights.tail(bottom_n).iloc[::-1]
            rows = []
            for i in range(max(len(top), len(bottom))):
                cells = [str(i + 1)]
                for part in (top, bottom):
                    if i < len(part):
                        r = part.iloc[i]
                        half = "" if math.isnan(r["weight_ci95"]) else f" ± {r['weight_ci95']:.3f}"
                        cells += [str(r["task"]), f"{r['weight_mean']:.3f}{half}"]
                    else:
                        cells += ["", ""]
                rows.append(cells)
            seeds = int(weights["seeds"].max())
            lines += [title + f" ({seeds} seed{'s' if seeds != 1 else ''})", "",
                      md_table(["rank", "most related", "weight", "least related", "weight"], rows), ""]
    return "\n".join(lines)


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
        held = data.held_back()
        if len(held):
            seeds = {m: sorted(set(s)) for m, s in held.groupby("method")["seed"]}
            lines += [f"{len(held)} finished trials are left out too, until the other trials of their seed end "
                      "(a search or population cut short would count as a smaller one): "
                      + "; ".join(f"{m} at seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}"
                                  for m, s in seeds.items()) + ".", ""]
    files = sorted(set(os.listdir(folder)) | set(extra or ()) | {ReportFiles.RESULTS_MD})
    lines += ["## Files", "", "In this folder: " + ", ".join(files) + ".", ""]
    return "\n".join(lines)


def paired_summary(data: RunData, margin: float) -> list[str]:
    """results.md's section: each ARML method against each reference, per budget, in words."""
    frame = comparisons(data, margin)
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
