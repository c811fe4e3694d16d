"""Paired comparisons of methods over seeds, with verdicts that can say "not decided": the one place verdicts are
decided.

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

from orchestrator.analysis.run_data import RunData, budget_rows, load_run
from orchestrator.analysis.stats import bootstrap, paired_t
from orchestrator.store.schema import TEST_AT_BEST_VAL

MIN_PAIRS = 3
MAX_SEEDS_ESTIMATE = 1000
BETTER, AS_GOOD, WORSE, NOT_DECIDED = "better", "as good", "worse", "not decided"
COLUMNS = ["budget_key", "budget", "method", "versus", "n_pairs", "mean_diff", "diff_low", "diff_high",
           "boot_low", "boot_high", "margin", "verdict", "decided_at", "seeds_to_decide", "seeds"]


def per_seed(data: RunData, method: str, budget: float) -> pd.Series:
    """Test accuracy (at best validation) per seed of the method's validation-chosen trial at `budget` (its
    selection's choice: a single run's trial, a grid's point, a search's best draw per seed). Index: seed."""
    done = budget_rows(data.done[data.done["method"] == method], budget)
    done = done[done[TEST_AT_BEST_VAL].notna()]
    if done.empty:
        return pd.Series(dtype="float64")
    done, _ = data.selection(method).chosen(done)
    return done.groupby("seed")[TEST_AT_BEST_VAL].first().astype("float64")


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
    return [method for method in data.methods if data.selection(method).searches
            or data.weighting[method] == "uniform" or is_main_only(data, method)]


def is_main_only(data: RunData, method: str) -> bool:
    """A fixed-weight method whose weights are all 0 (the main task alone)."""
    if data.weighting[method] != "fixed" or data.selection(method).searches:
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
class UndecidedComparisons:
    """What `--until-decided` needs to know of a run folder's paired comparisons."""

    compared: int                 # comparisons made (0: no reference with finished trials)
    undecided: int                # of them, not decided
    seeds_to_decide: list[float]  # per undecided one, the seeds that would likely decide it (inf: none)
    min_pairs: int = MIN_PAIRS
    open_cells: list[dict] = field(default_factory=list)   # the sweep cells with an undecided comparison


def undecided_comparisons(run_dir: str) -> UndecidedComparisons:
    """The paired comparisons of a run folder that are still not decided, cell by cell (the narrow question
    running asks)."""
    data = load_run(run_dir)
    compared, still, cells = 0, [], []
    for cell, sub in data.cells():
        frame = comparisons(sub, float(data.plan.margin))
        open_ = undecided(frame)
        compared += len(frame)
        still += [float(n) for n in open_["seeds_to_decide"]]
        if len(open_):
            cells.append(cell)
    return UndecidedComparisons(compared, len(still), still, open_cells=cells)


def verdict_of(paired: pd.DataFrame, arml: str | None, method: str, budget: float) -> str:
    """The paired verdict of `arml` against `method` at `budget` ('' for itself or without a comparison)."""
    if not arml or method == arml or paired.empty:
        return ""
    at = paired[(paired["method"] == arml) & (paired["versus"] == method) & (
        paired["budget"] == budget if not math.isnan(budget) else paired["budget"].isna())]
    return str(at["verdict"].iloc[0]) if len(at) else ""
