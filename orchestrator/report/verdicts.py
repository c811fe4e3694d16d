"""Paired comparisons of methods over seeds, with verdicts that can say "not decided".

The same seed gives every method the same split, label subset, auxiliary data order and initialisation, so
two methods are compared by their per-seed differences in test accuracy (each method's trial selected on
validation only): the mean difference and its 95% paired Student-t interval decide the verdict against a
non-inferiority margin of `margin` accuracy points:

- better: the interval lies above 0;
- as good: the interval lies above -margin (the method may be slightly worse, by less than the margin);
- worse: the interval lies below 0 and reaches below -margin (significantly worse, and not within the margin;
  we use 0 rather than -margin as the upper bound so that a clear loss is never reported as "not decided");
- not decided: anything else, and always with fewer than MIN_PAIRS pairs; `seeds_to_decide` then estimates
  how many seeds would likely decide it at the observed spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.report.data import RunData, _budget_rows, chosen_grid_point, load_run
from orchestrator.report.text import budget_text, md_table, points_text, seconds
from orchestrator.study.vocabulary import search_words

MIN_PAIRS = 3
MAX_SEEDS_ESTIMATE = 1000
BETTER, AS_GOOD, WORSE, NOT_DECIDED = "better", "as good", "worse", "not decided"
COLUMNS = ["budget_key", "budget", "method", "versus", "n_pairs", "mean_diff", "diff_low", "diff_high",
           "boot_low", "boot_high", "margin", "verdict", "decided_at", "seeds_to_decide", "seeds"]


def per_seed(data: RunData, method: str, budget: float) -> pd.Series:
    """Test accuracy (at best validation) per seed of the method's validation-chosen trial at `budget`:
    a single-run method's trial; a grid's point with the best mean validation accuracy over seeds; a search's
    trial with the best validation accuracy in that seed. Index: seed."""
    done = _budget_rows(data.done[data.done["method"] == method], budget)
    done = done[done["test_acc_at_best_val"].notna()]
    if done.empty:
        return pd.Series(dtype="float64")
    if data.is_search(method):
        valid = done[done["best_val_acc"].notna()]
        done = valid.loc[valid.groupby("seed")["best_val_acc"].idxmax()] if len(valid) else valid
    elif data.is_grid(method):
        done = done[done["grid_point"] == chosen_grid_point(done)]
    return done.groupby("seed")["test_acc_at_best_val"].first().astype("float64")


def paired_t(diffs: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% paired Student-t interval; NaN bounds for fewer than 2 pairs."""
    from scipy import stats

    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(diffs))
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def bootstrap(diffs: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean difference (seeded, so a report is reproducible); NaN
    below 6 pairs, where resampling a handful of values says less than the t interval."""
    if len(diffs) < 6 or float(np.ptp(diffs)) == 0.0:
        return (math.nan, math.nan) if len(diffs) < 6 else (float(diffs[0]), float(diffs[0]))
    from scipy import stats

    result = stats.bootstrap((diffs,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                             rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def decide(n: int, low: float, high: float, margin: float) -> str:
    """The verdict for a paired interval [low, high] (accuracy fractions) and a margin (fraction)."""
    if n < MIN_PAIRS or math.isnan(low):
        return NOT_DECIDED
    if low > 0:
        return BETTER
    if low > -margin:
        return AS_GOOD
    if high < 0:
        return WORSE
    return NOT_DECIDED


def seeds_to_decide(diffs: np.ndarray, margin: float) -> float:
    """Seeds (pairs) that would likely decide the comparison if the mean and spread stayed as observed: the
    smallest n >= 3 whose t half-width is below the distance from the mean to the nearest decision bound."""
    from scipy import stats

    if len(diffs) < 2:
        return math.nan
    mean, sd = float(np.mean(diffs)), float(np.std(diffs, ddof=1))
    slack = max(mean + margin, abs(mean))
    if slack <= 0:
        return math.inf
    for n in range(MIN_PAIRS, MAX_SEEDS_ESTIMATE + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < slack:
            return float(n)
    return math.inf


def compare(a: pd.Series, b: pd.Series, margin: float) -> dict[str, Any]:
    """Paired comparison of two per-seed series (a - b) over their common seeds."""
    seeds = sorted(set(a.index) & set(b.index))
    diffs = (a.loc[seeds] - b.loc[seeds]).to_numpy(dtype="float64") if seeds else np.array([])
    mean, low, high = paired_t(diffs)
    boot_low, boot_high = bootstrap(diffs)
    verdict = decide(len(diffs), low, high, margin)
    decided_at = math.nan
    for k in range(MIN_PAIRS, len(diffs) + 1):   # the first seeds (in seed order) that already decided it
        _, first_low, first_high = paired_t(diffs[:k])
        if decide(k, first_low, first_high, margin) != NOT_DECIDED:
            decided_at = float(k)
            break
    return {"decided_at": decided_at,
            "n_pairs": len(diffs), "mean_diff": mean, "diff_low": low, "diff_high": high, "boot_low": boot_low,
            "boot_high": boot_high, "verdict": verdict,
            "seeds_to_decide": seeds_to_decide(diffs, margin) if verdict == NOT_DECIDED else float(len(diffs)),
            "seeds": " ".join(str(int(s)) for s in seeds)}


def references(data: RunData) -> list[str]:
    """The methods every other method is compared with: each grid's and each search's validation choice,
    Uniform, and main-only (fixed weights all 0) when the study has them, in study order."""
    out = []
    for method in data.methods:
        if data.is_grid(method) or data.is_search(method) or data.weighting[method] == "uniform" \
                or is_main_only(data, method):
            out.append(method)
    return out


def is_main_only(data: RunData, method: str) -> bool:
    """A fixed-weight method whose weights are all 0 (the main task alone)."""
    if data.weighting[method] != "fixed" or data.is_grid(method) or data.is_search(method):
        return False
    options = next((m.weighting_options or {} for m in data.plan.trials if m.method == method), {})
    weights = options.get("weights") or []
    return bool(weights) and all(float(w) == 0.0 for w in weights)


def comparisons(data: RunData, margin_points: float) -> pd.DataFrame:
    """Per budget, every method against every reference (never itself): the rows of comparisons.csv.
    `margin_points` is in accuracy points (1.0 = one percentage point); the table's numbers are fractions."""
    margin = margin_points / 100.0
    refs = references(data)
    out = []
    for budget in data.budgets or [math.nan]:
        series = {m: per_seed(data, m, budget) for m in data.methods}
        for method in data.methods:
            if series[method].empty:
                continue
            for versus in refs:
                if versus == method or series[versus].empty:
                    continue
                row = compare(series[method], series[versus], margin)
                out.append({"budget_key": data.budget_key, "budget": budget, "method": method, "versus": versus,
                            "margin": margin, **row})
    return pd.DataFrame(out, columns=COLUMNS)


def decided_winner(data: RunData, budget: float, margin_points: float) -> str | None:
    """The method with the best mean at `budget` if it is "better" than every other method there (paired);
    None when the data cannot single one out."""
    series = {m: per_seed(data, m, budget) for m in data.methods}
    series = {m: s for m, s in series.items() if not s.empty}
    if len(series) < 2:
        return None
    best = max(series, key=lambda m: float(series[m].mean()))
    margin = margin_points / 100.0
    wins = all(compare(series[best], other, margin)["verdict"] == BETTER
               for m, other in series.items() if m != best)
    return best if wins else None


def unordered(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Each pair of methods once per budget: where both are references (A vs B and B vs A), the row whose
    reference comes first in the study (grid vs uniform, not uniform vs grid)."""
    order = {m: i for i, m in enumerate(methods)}
    seen = set(zip(frame["budget"].astype(str), frame["method"], frame["versus"]))
    keep = [not ((str(r["budget"]), r["versus"], r["method"]) in seen
                 and order.get(r["method"], 0) < order.get(r["versus"], 0))
            for _, r in frame.iterrows()]
    return frame[keep]


def undecided(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparisons still "not decided"."""
    return frame[frame["verdict"] == NOT_DECIDED]


@dataclass(frozen=True)
class OpenQuestions:
    """What `--until-decided` needs to know of a run folder's paired comparisons."""

    compared: int                 # comparisons made (0: no reference with finished trials)
    undecided: int                # of them, not decided
    seeds_to_decide: list[float]  # per undecided one, the seeds that would likely decide it (inf: none)
    min_pairs: int = MIN_PAIRS
    open_cells: list[dict] = field(default_factory=list)   # the sweep cells with an undecided comparison


def open_questions(run_dir: str) -> OpenQuestions:
    """The paired comparisons of a run folder that are still open, cell by cell (the narrow question running
    asks)."""
    data = load_run(run_dir)
    compared, still, cells = 0, [], []
    for cell, sub in data.cells():
        frame = comparisons(sub, float(data.plan.margin))
        open_ = undecided(frame)
        compared += len(frame)
        still += [float(n) for n in open_["seeds_to_decide"]]
        if len(open_):
            cells.append(cell)
    return OpenQuestions(compared, len(still), still, open_cells=cells)


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
    for budget, group in unordered(frame, data.methods).groupby("budget", sort=True, dropna=False):
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


def verdict_of(paired: pd.DataFrame, arml: str | None, method: str, budget: float) -> str:
    """The paired verdict of `arml` against `method` at `budget` ('' for itself or without a comparison)."""
    if not arml or method == arml or paired.empty:
        return ""
    at = paired[(paired["method"] == arml) & (paired["versus"] == method) & (
        paired["budget"] == budget if not math.isnan(budget) else paired["budget"].isna())]
    return str(at["verdict"].iloc[0]) if len(at) else ""


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
