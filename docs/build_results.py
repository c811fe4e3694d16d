"""Builds docs/results.md from the run folders of the digits studies (their report/ folders) and the
commentary in docs/results_notes.md: every table is read from the runs, every figure copied next to it.

    for s in digits_table1_ssl digits_table2_mlc ...; do arml run studies/$s.toml; done   # (see results.md)
    .venv/bin/python docs/build_results.py [--runs runs]
    .venv/bin/python docs/build_results.py --only regimes     # that section alone, from runs/digits_regimes
    .venv/bin/python docs/build_results.py --only minimum_data   # that section alone, from runs/digits_minimum_data
    .venv/bin/python docs/build_results.py --only digits_ssl_grid_vs_arml   # one grid-vs-ARML study alone
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import sys

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from orchestrator.analysis.run_data import final_weights, load_run  # noqa: E402
from orchestrator.analysis.search_cost import MULTIPLE  # noqa: E402
from orchestrator.analysis.tables import data_requirement  # noqa: E402
from orchestrator.analysis.verdicts import compare, comparisons, per_seed  # noqa: E402
from orchestrator.report.markdown import margin_of, verdict_text  # noqa: E402
from orchestrator.report.text import budget_text, md_table, pct  # noqa: E402
from orchestrator.store.folder import (  # noqa: E402
    DEFAULT_STORAGE,
    REPORT_DIR,
    ROWS_FILE,
    TRIALS_CSV,
    WAVES_FILE,
    ReportFiles,
    RunFolder,
)
from orchestrator.store.schema import ENDED  # noqa: E402

F = ReportFiles

TWINS = ["digits_table1_ssl", "digits_fig2_ssl_labels", "digits_table2_mlc", "digits_table4_dg", "digits_fig3_dg_shots",
         "digits_fig4_dg_scarcity"]
SEARCH = "digits_search_vs_arml"
GRID_VS_ARML = ["digits_ssl_grid_vs_arml", "digits_mlc_grid_vs_arml", "digits_dg_grid_vs_arml"]
FIGURES = (F.DATA_REQUIREMENT_PNG, F.WEIGHTS_PNG, F.COST_VS_ACCURACY_PNG)
KSCALING = "digits_k_scaling"   # one sweep over aux_count
REGIMES = "digits_regimes"       # K x steps x labels: single-run weightings against Uniform and a search
REGIMES_TITLE = "Where auxiliary weighting pays"
MINIMUM = "digits_minimum_data"  # steps x validation labels at 40 training labels: single runs, a search, PBT
# what the published run of it ran: the 100-step row first (seeds 0-9), then the whole study resumed with
# --until-decided --max-seeds 24 and stopped by SIGTERM after seed 13 (compute); its note says so
MINIMUM_OPTIONS = ("--set 'sweep.train.steps=[100]' --until-decided --max-seeds 10`, then "
                   "`arml run studies/digits_minimum_data.toml --resume --until-decided --max-seeds 24")
MINIMUM_TITLE = "When labels are scarce everywhere"
GRID_TITLE = "When one ARML run matches grid search"


def notes() -> dict[str, str]:
    """Sections of results_notes.md by their `<!-- name -->` markers."""
    text = open(os.path.join(HERE, "results_notes.md")).read()
    parts = re.split(r"<!-- (\S+) -->\n", text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def section(text: str, title: str) -> str:
    """The '## title' section of a Markdown file, without its heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    return match.group(1).strip() if match else ""


@functools.cache
def run_data(runs: str, study: str):
    """A study's run folder, read once (records included)."""
    return load_run(os.path.join(runs, study))


def budgets(runs: str, study: str) -> int:
    return run_data(runs, study).trials["budget"].nunique()


def figures(runs: str, study: str) -> list[str]:
    """Copies the report's figures next to results.md (accuracy vs labels only for a sweep of budgets)."""
    out = []
    target = os.path.join(HERE, "results", study)
    os.makedirs(target, exist_ok=True)
    sweep = budgets(runs, study) > 1
    for name in FIGURES:
        if name == F.DATA_REQUIREMENT_PNG and not sweep:
            continue
        path = report_file(runs, study, name)
        if os.path.exists(path):
            shutil.copy(path, os.path.join(target, name))
            out.append(f"![{study} {name[:-4]}](results/{study}/{name})")
    return out


def folder(runs: str, study: str) -> RunFolder:
    """A study's run folder under `runs`."""
    return RunFolder(os.path.join(runs, study))


def report_file(runs: str, study: str, *name: str) -> str:
    """A file of a study's report (RUN_DIR/report/...)."""
    return os.path.join(folder(runs, study).file(REPORT_DIR), *name)


def seconds_of(runs: str, study: str) -> str:
    trials = pd.read_csv(folder(runs, study).file(TRIALS_CSV))
    return f"{len(trials)} trials, {trials['cpu_s'].sum():.0f} CPU-seconds in all"


def span_s(runs: str, study: str) -> float:
    """Wall seconds during which some trial was training: the union of the trials' spans (Ray's start-up, the
    report and any pause between an interrupted run and its --resume excluded)."""
    with open(folder(runs, study).file(ROWS_FILE)) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    spans = sorted((r["recorded_at"] - r["time_total_s"], r["recorded_at"]) for r in rows)
    total, start, end = 0.0, *spans[0]
    for s, e in spans[1:]:
        if s > end:
            total, start = total + end - start, s
        end = max(end, e)
    return total + end - start


def paired(runs: str, study: str) -> list[str]:
    """Each ARML method against each reference (grid choice, searches, Uniform, main-only), per budget."""
    data = run_data(runs, study)
    frame = comparisons(data, margin_of(data))
    armls = [m for m in data.methods if data.weighting[m] == "arml"]
    frame = frame[frame["method"].isin(armls)]
    if frame.empty:
        return []
    rows = [[budget_text(data.budget_key, r["budget"]), r["method"], r["versus"], verdict_text(r)]
            for _, r in frame.iterrows()]
    return [f"Paired over seeds (method minus reference, points; margin {margin_of(data):g}):", "",
            md_table(["budget", "method", "versus", "verdict (mean diff, 95% CI, seeds)"], rows), ""]


def waves_of(runs: str, study: str) -> str:
    """'; seeds 0-2 planned, 3-5 added' when --until-decided added seeds, else ''."""
    path = folder(runs, study).file(WAVES_FILE)
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        added = sorted({seed for wave in json.load(f)[1:] for seed in wave.get("seeds", [])})
    trials = run_data(runs, study).trials
    planned = sorted(set(trials["seed"]) - set(added))
    ended = trials["status"].isin(ENDED)
    open_ = trials[~ended]
    whole = [seed for seed in added if seed not in set(open_["seed"])]
    span = lambda seeds: f"{min(seeds)}-{max(seeds)}" if len(seeds) > 1 else str(seeds[0])  # noqa: E731
    more = f", {span(whole)} added while a comparison was not decided" if whole else ""
    if len(whole) < len(added):   # stopped during a wave: the seeds it had not finished
        rest = [seed for seed in added if seed not in whole]
        started = sorted(set(trials.loc[trials["seed"].isin(rest) & ended, "seed"]))
        more += (f"; the run was stopped with seed{'s' if len(rest) > 1 else ''} {span(rest)} of that wave not "
                 f"finished" + (f" ({', '.join(map(str, started))} begun: the searches' and populations' trials "
                                "of a seed not finished are left out)" if started else ""))
    return f"; seeds {span(planned)} planned{more}"


def twin(runs: str, study: str, note: str) -> list[str]:
    results = open(report_file(runs, study, F.RESULTS_MD)).read()
    lines = [f"### {study}", "", f"`arml run studies/{study}.toml --until-decided --max-seeds 6` "
             f"({seconds_of(runs, study)}{waves_of(runs, study)}).", "", section(results, "Test accuracy (%)"), ""]
    cost = open(report_file(runs, study, F.COMPUTE_COST_MD)).read()
    verdict = [line for line in cost.splitlines() if line.startswith("Verdict")]
    if verdict and "no grid search" not in verdict[0]:
        lines += verdict + [""]
    lines += paired(runs, study)
    if os.path.exists(report_file(runs, study, F.RELATIONSHIPS_MD)):
        text = open(report_file(runs, study, F.RELATIONSHIPS_MD)).read()
        title = re.search(r"^## (arml, .*)$", text, flags=re.M)
        lines += [section(text, title.group(1)) if title else "", ""]
    if budgets(runs, study) > 1 and os.path.exists(report_file(runs, study, F.LABELS_TO_REACH_CSV)):
        reach = pd.read_csv(report_file(runs, study, F.LABELS_TO_REACH_CSV))
        if len(reach):
            rows = [[f"{100 * r['target']:g}%", r["method"],
                     "-" if math.isnan(r["labels_needed"]) else f"{r['labels_needed']:.0f}",
                     "" if math.isnan(r["ratio_to_uniform"]) else f"{r['ratio_to_uniform']:.2f}", r["note"]
                     if isinstance(r["note"], str) else ""] for _, r in reach.iterrows()]
            lines += ["Labels needed to reach each target (interpolated on the mean curve):", "",
                      md_table(["target", "method", "labels", "vs uniform", "note"], rows), ""]
    lines += figures(runs, study) + ["", note, ""]
    return lines


def search(runs: str, note: str) -> list[str]:
    cost = open(report_file(runs, SEARCH, F.COMPUTE_COST_MD)).read()
    body = cost.split("\n", 2)[2].split("\n- Device-seconds")[0].strip()
    table = pd.read_csv(report_file(runs, SEARCH, F.COMPUTE_COST_CSV))
    arml = table[table["method"] == "arml"].set_index("budget")
    rows = []
    for _, r in table[table["method"].isin(["grid", "grid_asha", "tpe"])].iterrows():
        a = arml.loc[r["budget"]]
        rows.append([budget_text("label_budget", r["budget"]), r["method"], f"{r['device_s']:.0f}",
                     f"{r['device_s_to_best']:.0f}", f"{a['device_s']:.0f}", f"{a['device_s'] / r['device_s']:.2f}",
                     pct(r["test_acc_mean"], r["test_acc_ci95"]), pct(a["test_acc_mean"], a["test_acc_ci95"]),
                     r["arml_verdict"]])
    summary = md_table(["budget", "search", "search CPU-s", "CPU-s to its pick", "ARML CPU-s", "ARML / search",
                        "search acc %", "ARML acc %", "ARML vs search (paired)"], rows)
    return ["## Search baselines vs one ARML run", "", f"`arml run studies/{SEARCH}.toml` "
            f"({seconds_of(runs, SEARCH)}).", "", body, "", "ARML's cost as a share of each search's:", "",
            summary, "", *figures(runs, SEARCH), "", note, ""]


def grid_vs_arml(runs: str, study: str, note: str) -> list[str]:
    data = run_data(runs, study)
    points = data_requirement(data)
    names = list(data.plan.aux_names)
    trials = data.trials
    waves = waves_of(runs, study)
    command = f"arml run studies/{study}.toml" + (" --until-decided" if "added" in waves else "")
    lines = [f"### {study}", "", f"`{command}` ({seconds_of(runs, study)}{waves}).", ""]
    frame = comparisons(data, margin_of(data))
    for budget in data.budgets or [math.nan]:
        at = points[points["budget"] == budget].set_index("method")
        grid = at.loc["grid"]
        grid_s = trials.loc[(trials["method"] == "grid") & (trials["budget"] == budget), "cpu_s"].sum()
        rows = []
        for method in data.methods:
            if method not in at.index:
                continue
            r = at.loc[method]
            spent = trials.loc[(trials["method"] == method) & (trials["budget"] == budget), "cpu_s"].sum()
            if method == "grid":
                weights, where = grid["selected_weights"] + " (chosen on val)", ""
            else:
                w = final_weights(data, method, budget)
                weights = "[" + ", ".join(f"{v:.2f}" for v in w["weight_mean"]) + "]" if len(w) else ""
                versus = frame[(frame["method"] == method) & (frame["versus"] == "grid") & (frame["budget"] == budget)]
                where = verdict_text(versus.iloc[0]) if len(versus) else ""
            rows.append([method, pct(r["test_acc_mean"], r["test_acc_ci95"]), where, f"{spent:.0f}",
                         f"{spent / grid_s:.3f}", weights])
        lines += [f"{budget_text(data.budget_key, budget)} (weights over {', '.join(names)}):", "",
                  md_table(["method", "test acc % (95% CI)", "vs the grid's choice (paired)", "CPU-s",
                            "share of grid's CPU-s",
                            "final weights (mean over seeds)"], rows), ""]
    lines += variants_vs_arml(data, trials)
    return lines + figures(runs, study) + ["", note, ""]


def variants_vs_arml(data, trials) -> list[str]:
    """Each ARML variant against the paper's per-step ARML (paired), with its CPU-seconds per trial relative to
    Uniform's: the cheap ARML's claim (as good, at little more than a plain run's cost) is read here."""
    margin = margin_of(data) / 100
    variants = [m for m in data.methods if data.weighting[m] == "arml" and m != "arml"]
    if "arml" not in data.methods or not variants:
        return []
    rows = []
    for budget in data.budgets or [math.nan]:
        here = trials[trials["budget"] == budget]
        per_trial = here.groupby("method")["cpu_s"].mean()
        uniform = per_trial.get("uniform", math.nan)
        for method in [*variants, "arml"]:
            verdict = "" if method == "arml" else verdict_text(
                {**compare(per_seed(data, method, budget), per_seed(data, "arml", budget), margin)})
            rows.append([budget_text(data.budget_key, budget), method, verdict,
                         f"{per_trial.get(method, math.nan) / uniform:.2f}x"])
    return ["Each ARML variant against the paper's per-step rule (paired), and its CPU-seconds per trial "
            "relative to a Uniform trial:", "",
            md_table(["budget", "variant", "vs arml (paired)", "cost vs uniform"], rows), ""]


def k_scaling(runs: str, study: str, note: str) -> list[str]:
    """The K-scaling section: the searches' report of the K-scaling sweep (report/searches.*, copied to
    results/k_scaling/), its headline and budgeted tables and a condensed view of its verdicts."""
    out = os.path.join(HERE, "results", "k_scaling")
    os.makedirs(out, exist_ok=True)
    paths = {}
    for name in (F.SEARCHES_MD, F.SEARCHES_CSV, F.SEARCHES_VERDICTS_CSV, F.SEARCHES_BUDGETED_CSV, F.SEARCHES_PNG):
        paths[name] = os.path.join(out, name)
        shutil.copyfile(report_file(runs, study, name), paths[name])
    report = open(paths[F.SEARCHES_MD]).read()
    headline = report.split("## Paired verdicts against ARML")[0].split("\n", 2)[2].strip()
    budgeted = section(report, report.split("\n## ")[-1].splitlines()[0]) if "given" in report else ""
    verdicts = pd.read_csv(paths[F.SEARCHES_VERDICTS_CSV])
    rows = []
    for (k, method), group in verdicts.groupby(["K", "method"], sort=False):
        cells = [(f"{int(r['trials'])}: " if len(group) > 1 else "") + f"{r['verdict']} ({100 * r['mean_diff']:+.1f})"
                 for _, r in group.iterrows()]
        rows.append([str(int(k)), method, "; ".join(cells)])
    trials = pd.read_csv(folder(runs, study).file(TRIALS_CSV))
    return ["## As the number of auxiliary tasks grows", "",
            f"`arml run studies/{study}.toml` ({len(trials)} trials, {trials['cpu_s'].sum():.0f} CPU-seconds of "
            f"training; {span_s(runs, study) / 60:.0f} minutes of trials on 2 CPUs; its report's searches.* "
            "files).", "",
            note, "", headline, "", "![k_scaling](results/k_scaling/searches.png)", "",
            "Each method against per-step ARML (paired over seeds, margin 1 point; mean difference in points in "
            "brackets; a search after its first 4, 16 and 64 trials per seed, in the order it ran them, each time "
            "the trial chosen on validation):", "",
            md_table(["K", "method", "verdict (trials: verdict)"], rows), "",
            *([f"**Each ARML run against each search given {MULTIPLE:g}x its own CPU-seconds.**", "", budgeted, ""]
              if budgeted else []),
            "Every number with its interval: [results/k_scaling/searches.md](results/k_scaling/searches.md), "
            "`searches.csv`, `searches_verdicts.csv`, `searches_budgeted.csv` next to it.", ""]


def _verdict_cell(row: pd.Series | None) -> str:
    """'**better** +1.2 [+0.3, +2.1]' (points) or '-' when there is no comparison."""
    if row is None or pd.isna(row.get("mean_diff")):
        return "-"
    low, high = 100 * row["diff_low"], 100 * row["diff_high"]
    interval = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
    return f"**{row['verdict']}** {100 * row['mean_diff']:+.1f}{interval}"


WORDS = {"aux_count": "K", "steps": "steps", "val_labels": "val labels"}   # a swept key in a table's header


class Cells:
    """A swept study's published tables, read from its report (and copied next to results.md with its figures:
    the section's numbers are theirs): per cell and method the accuracy, the cost per run, the verdicts against
    Uniform and against each search at the method's allowance."""

    FILES = (F.REGIME_MAP_PNG, F.SWEEP_PNG, F.DIAGNOSTICS_SUMMARY_PNG, F.SEARCHES_MD, F.RESULTS_MD, F.COMPARISONS_CSV,
             F.SEARCHES_BUDGETED_CSV, F.DATA_REQUIREMENT_CSV, F.DIAGNOSTICS_SUMMARY_CSV, F.DIAGNOSTICS_CSV,
             F.SEARCHES_CSV)

    def __init__(self, runs: str, study: str) -> None:
        self.study, self.report = study, folder(runs, study).file(REPORT_DIR)
        self.out = os.path.join(HERE, "results", study)
        os.makedirs(self.out, exist_ok=True)
        for name in self.FILES:
            if os.path.exists(os.path.join(self.report, name)):
                shutil.copyfile(os.path.join(self.report, name), os.path.join(self.out, name))
        self.data = run_data(runs, study)
        self.axes = list(self.data.axes)
        order = [*self.axes, "budget"]   # cell by cell, a budget's methods together, in study order
        self.points = self.read(F.DATA_REQUIREMENT_CSV).sort_values(order, kind="stable")
        self.paired = self.read(F.COMPARISONS_CSV)
        self.budgeted = self.read(F.SEARCHES_BUDGETED_CSV).sort_values(order, kind="stable")
        self.costs = self.read(F.SEARCHES_CSV)
        self.uniform = self.data.reference("uniform")
        self.searches = self.data.searches()
        self.trials = pd.read_csv(folder(runs, study).file(TRIALS_CSV))

    def read(self, name: str) -> pd.DataFrame:
        return pd.read_csv(os.path.join(self.report, name))

    def where(self, row: pd.Series) -> dict:
        return {axis: row[axis] for axis in self.axes} | {"budget": row["budget"]}

    def cell(self, row: pd.Series) -> list[str]:
        return [*(str(row[a]) for a in self.axes), f"{row['budget']:g}"]

    def head(self) -> list[str]:
        return [*(WORDS.get(a, a) for a in self.axes), "labels"]

    def run_cost(self, method: str, where: dict) -> pd.Series | None:
        return one(self.costs, method=method, **where)

    def table(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows): per cell and method, accuracy, CPU-s per run and the verdicts."""
        rows = []
        for _, p in self.points.iterrows():
            where = self.where(p)
            cost = self.run_cost(p["method"], where)
            vs_search = [one(self.budgeted, method=p["method"], search=s, **where) for s in self.searches]
            kind = self.data.selection(p["method"]).kind
            rows.append([*self.cell(p), p["method"],
                         f"{pct(p['test_acc_mean'], p['test_acc_ci95'])} ({int(p['seeds'])})",
                         "" if cost is None else f"{cost['device_s_per_trial']:.2f}"
                         + (f" x {int(cost['trials_per_seed'])}" if cost["trials_per_seed"] > 1 else "")
                         + (" (population)" if kind == "population" else ""),
                         "" if p["method"] == self.uniform else
                         _verdict_cell(one(self.paired, method=p["method"], versus=self.uniform, **where)),
                         *("" if p["method"] in self.searches else _verdict_cell(v) for v in vs_search)])
        header = [*self.head(), "method", "test acc % (95% CI, seeds)", "CPU-s per run", f"vs {self.uniform}",
                  *(f"vs {s} at 16x its CPU-s" for s in self.searches)]
        return header, rows

    def chosen(self) -> tuple[list[str], list[list[str]]]:
        """Per cell, the single run a user would choose on validation against each search at 16x its compute."""
        chosen = self.budgeted[self.budgeted["chosen"].astype(bool)]
        rows = [[*self.cell(r), r["method"], f"{100 * r['method_val_acc']:.2f}", r["search"], str(int(r["trials"])),
                 _verdict_cell(r)] for _, r in chosen.iterrows()]
        return [*self.head(), "chosen single run", "its val acc %", "search", "search draws", "verdict"], rows

    def command(self, options: str) -> str:
        ended = self.trials[self.trials["status"].isin(ENDED)]
        count = f"{len(ended)} trials" if len(ended) == len(self.trials) else \
            f"{len(ended)} of the {len(self.trials)} planned trials"
        return (f"`arml run studies/{self.study}.toml {options}` ({count}, "
                f"{self.trials['cpu_s'].sum() / 3600:.1f} CPU-hours of training; "
                f"{span_s(os.path.dirname(os.path.dirname(self.report)), self.study) / 60:.0f} minutes of trials on "
                f"2 CPUs{waves_of(os.path.dirname(os.path.dirname(self.report)), self.study)}).")


def one(frame: pd.DataFrame, **where) -> pd.Series | None:
    """The first row of `frame` with these values (None if there is none)."""
    for key, value in where.items():
        frame = frame[frame[key] == value]
    return frame.iloc[0] if len(frame) else None


def regimes(runs: str, study: str, note: str) -> list[str]:
    """The regime study's section: the command and its time, the regime map, per cell each method's accuracy,
    cost and verdicts against Uniform and against the search at 16x its compute, the single run chosen on
    validation against the search, and the weight diagnostics."""
    cells = Cells(runs, study)
    header, rows = cells.table()
    answer_header, answer = cells.chosen()
    summary = cells.read(F.DIAGNOSTICS_SUMMARY_CSV) \
        if os.path.exists(os.path.join(cells.report, F.DIAGNOSTICS_SUMMARY_CSV)) else pd.DataFrame()
    why = [[*cells.cell(r), r["method"], f"{r['r_size']:+.2f}", f"{r['r_cos']:+.2f}",
            "size" if r["follows_size"] else ""] for _, r in summary.iterrows()]
    cell_figure = os.path.join(F.CELLS_DIR, "aux_count-16_steps-400", F.DIAGNOSTICS_PNG)
    if os.path.exists(os.path.join(cells.report, cell_figure)):
        shutil.copyfile(os.path.join(cells.report, cell_figure),
                        os.path.join(cells.out, "diagnostics_k16_400steps.png"))
    return [f"## {REGIMES_TITLE}", "",
            cells.command("--until-decided --max-seeds 16"), "",
            note, "",
            f"![{study} regime map](results/{study}/regime_map.png)", "",
            "Per cell: each method's test accuracy (at its best validation step; a search's trial chosen on "
            "validation per seed), its CPU-seconds per run (median over seeds; a search: per trial x trials), and "
            "its paired verdict (method minus reference, points, 95% t interval; margin 1 point) against Uniform "
            "and against the random search given 16 times the method's CPU-seconds (the longest prefix of its "
            "draws that fits).", "",
            md_table(header, rows), "",
            "**Is one run enough?** Per cell, the single-run method with the best mean validation accuracy (what a "
            "user would pick without looking at test) against the search at 16x its compute:", "",
            md_table(answer_header, answer), "",
            "**Why the weights are what they are.** Pearson's r, across the K auxiliary tasks, of each learned "
            "method's final weight with the logarithm of the task's gradient size relative to the main task's and "
            "with the task's cosine to the main gradient (run averages, mean over seeds; 'size': |r_size| >= 0.7 "
            "with p < 0.05 and |r_cos| < 0.3):", "",
            md_table([*cells.head(), "method", "r with size", "r with cosine", "follows"], why), "",
            f"![{study} diagnostics](results/{study}/diagnostics_summary.png)", "",
            f"![{study} diagnostics at K = 16, 400 steps](results/{study}/diagnostics_k16_400steps.png)", "",
            f"Every number with its interval: [results/{study}/results.md](results/{study}/results.md) (per cell), "
            f"[searches.md](results/{study}/searches.md), and the CSV files next to them.", ""]


def minimum_data(runs: str, study: str, note: str) -> list[str]:
    """The minimum-data study's section: the command and its time, the regime map (steps x validation labels), per
    cell each method's accuracy, cost and verdicts against Uniform and against the search (16x a single run's
    compute, a population's own), the single run chosen on validation against the search, and per cell the
    cheapest method as good as the search with its cost as a multiple of one Uniform run."""
    cells = Cells(runs, study)
    header, rows = cells.table()
    answer_header, answer = cells.chosen()
    cheapest = []
    for _, cell in cells.points.drop_duplicates([*cells.axes, "budget"]).iterrows():
        where = cells.where(cell)
        uniform = cells.run_cost(cells.uniform, where)
        for search in cells.searches:
            good = cells.budgeted[(cells.budgeted["search"] == search) & cells.budgeted["verdict"].isin(
                ["better", "as good"])]
            for key, value in where.items():
                good = good[good[key] == value]
            best = good.sort_values("method_device_s").iloc[0] if len(good) else None
            unit = float(uniform["device_s_per_trial"]) if uniform is not None else math.nan
            cheapest.append([*cells.cell(cell), search,
                             "none" if best is None else best["method"],
                             "" if best is None else f"{best['method_device_s']:.2f}",
                             "" if best is None or not unit else f"{best['method_device_s'] / unit:.1f}x",
                             "" if best is None else _verdict_cell(best)])
    return [f"## {MINIMUM_TITLE}", "",
            cells.command(MINIMUM_OPTIONS), "",
            note, "",
            f"![{study} regime map](results/{study}/regime_map.png)", "",
            "Per cell (training steps x validation labels; 40 training labels, K = 16): each method's test accuracy "
            "(at its best validation step; a search's draw and a population's member chosen on validation per seed), "
            "its CPU-seconds per run (median over seeds; a search: per draw x draws; a population: all its members), "
            "and its paired verdict (method minus reference, points, 95% t interval; margin 1 point) against "
            "Uniform and against the random search given 16 times a single run's CPU-seconds, or, for a "
            "population, the same CPU-seconds as the population (the longest prefix of the search's draws that "
            "fits).", "",
            md_table(header, rows), "",
            "**Is one run enough?** Per cell, the single-run method with the best mean validation accuracy against "
            "the search at 16x its compute:", "",
            md_table(answer_header, answer), "",
            "**The cheapest method as good as the search** (better or as good, paired, at its allowance), per cell, "
            "with its CPU-seconds per run and that as a multiple of one Uniform run:", "",
            md_table([*cells.head(), "search", "cheapest as good", "CPU-s per run", "x Uniform", "verdict"],
                     cheapest), "",
            f"Every number with its interval: [results/{study}/results.md](results/{study}/results.md) (per cell), "
            f"[searches.md](results/{study}/searches.md), and the CSV files next to them.", ""]


def replace_section(title: str, lines: list[str], before: str, level: int = 2, within: str | None = None) -> None:
    """Puts the section `title` (a heading of `level` #s) into the existing results.md: in place of the old one,
    else before the heading `before` (same level); `within` names the '## ' section a '### ' one belongs to
    (inserted at its end when `before` is not there)."""
    path = os.path.join(HERE, "results.md")
    text = open(path).read()
    body = "\n".join(lines).rstrip() + "\n\n"
    hashes = "#" * level
    ends = rf"(?=^#{{2,{level}}} |\Z)"                  # the next heading of this level or above
    match = re.search(rf"^{hashes} {re.escape(title)}\n.*?{ends}", text, flags=re.S | re.M)
    if match:
        text = text[:match.start()] + body + text[match.end():]
    else:
        found = re.search(rf"^{hashes} {re.escape(before)}\n", text, flags=re.M)
        if found:
            at = found.start()
        elif within is not None:
            parent = re.search(rf"^## {re.escape(within)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
            if parent is None:
                raise SystemExit(f"results.md has no '## {within}' section to put '{title}' in")
            at = parent.end()
        else:
            raise SystemExit(f"results.md has no '{hashes} {before}' heading to put '{title}' before")
        text = text[:at] + body + text[at:]
    with open(path, "w") as f:
        f.write(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=DEFAULT_STORAGE, help="the storage folder the studies ran into (default "
                        f"{DEFAULT_STORAGE})")
    parser.add_argument("--only", choices=["regimes", "minimum_data", *GRID_VS_ARML],
                        help="rebuild this section alone in the existing results.md")
    args = parser.parse_args()
    text = notes()
    if args.only == "regimes":
        replace_section(REGIMES_TITLE, regimes(args.runs, REGIMES, text.get("regimes", "")), GRID_TITLE)
    elif args.only == "minimum_data":
        replace_section(MINIMUM_TITLE, minimum_data(args.runs, MINIMUM, text.get("minimum_data", "")), GRID_TITLE)
    elif args.only:
        later = GRID_VS_ARML[GRID_VS_ARML.index(args.only) + 1:]
        replace_section(args.only, grid_vs_arml(args.runs, args.only, text.get(args.only, "")),
                        later[0] if later else "Verdict", level=3, within=GRID_TITLE)
        replace_section("Verdict", [text.get("verdict", "")], "", level=3, within=GRID_TITLE)   # its commentary
    if args.only:
        print(os.path.join(HERE, "results.md"))
        return 0
    out = [text["intro"], "", "## The paper's results, on digits", ""]
    for study in TWINS:
        if os.path.exists(report_file(args.runs, study)):
            out += twin(args.runs, study, text.get(study, ""))
    if os.path.exists(report_file(args.runs, SEARCH)):
        out += search(args.runs, text.get(SEARCH, ""))
    if os.path.exists(report_file(args.runs, KSCALING, F.SEARCHES_MD)):
        out += k_scaling(args.runs, KSCALING, text.get("k_scaling", ""))
    if os.path.exists(report_file(args.runs, REGIMES, F.SEARCHES_BUDGETED_CSV)):
        out += regimes(args.runs, REGIMES, text.get("regimes", ""))
    if os.path.exists(report_file(args.runs, MINIMUM, F.SEARCHES_BUDGETED_CSV)):
        out += minimum_data(args.runs, MINIMUM, text.get("minimum_data", ""))
    out += [f"## {GRID_TITLE}", "", text.get("grid_vs_arml", ""), ""]
    for study in GRID_VS_ARML:
        if os.path.exists(report_file(args.runs, study)):
            out += grid_vs_arml(args.runs, study, text.get(study, ""))
    out += [text.get("verdict", ""), ""]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    print(os.path.join(HERE, "results.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
