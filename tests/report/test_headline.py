"""What a study found, in numbers for MLflow's parent run (the data-requirement curve with the label budget as
`step`, cost per method, each search's cost relative to ARML, verdicts as tags) and in the words `arml run` ends
with, from a hand-made run folder (no training)."""

from __future__ import annotations

import math

from runfolders import write_run

from orchestrator.analysis.headline import budget_step, cell_numbers, headline, parent_metrics, verdict_tags
from orchestrator.analysis.run_data import load_run
from orchestrator.report.headline import headline_lines, note_markdown, summary_sentence


def numbers(tmp_path):
    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.72, 0.71, 0.69], "arml": [0.75, 0.78, 0.76, 0.74]},
                       budget=40, grid={"[0, 1]": [0.74, 0.77, 0.75, 0.74], "[1, 0]": [0.60, 0.61, 0.62, 0.60]})
    return cell_numbers(load_run(str(folder)), 1.0)


def test_the_parent_run_gets_the_curve_against_the_budget_the_cost_and_the_verdicts(tmp_path):
    found = {(name, step): value for name, value, step in parent_metrics(numbers(tmp_path))}
    assert math.isclose(found[("data_requirement/arml", 40)], 0.7575)        # step = the label budget
    assert math.isclose(found[("data_requirement/grid", 40)], 0.75)         # the grid's validation choice
    assert found[("cost/cpu_s/arml", 0)] == 4.0 and found[("cost/device_s/grid", 0)] == 8.0   # 1 s per trial
    assert found[("cost_ratio/grid", 40)] == 2.0                           # 8 grid trials / 4 ARML trials
    tags = verdict_tags(numbers(tmp_path))
    assert tags["verdict/40/arml vs uniform"] == "better"
    assert tags["verdict/40/arml vs grid"] in ("as good", "not decided")


def test_the_headline_says_per_budget_arml_against_uniform_and_the_search_and_the_cost(tmp_path):
    rows = headline(numbers(tmp_path))
    assert len(rows) == 1 and rows[0].search == "grid" and rows[0].cost_ratio == 2.0
    assert rows[0].vs_uniform.verdict == "better" and math.isclose(rows[0].vs_uniform.mean_diff, 5.25)
    lines = headline_lines(rows, 1.0)
    assert lines[0].startswith("what was found") and "paired over 4 seeds; margin 1 point" in lines[0]
    assert lines[1].startswith("  40 labels: arml vs uniform better (+5.25 [") and lines[1].endswith(
        "grid cost 2.0x arml")
    assert summary_sentence(rows).startswith("ARML (arml) against uniform: better at 40 labels; against grid's")
    note = note_markdown("paired", "a study", rows, 1.0, ["results.md"])
    assert note.startswith("**paired**: a study") and "| 40 labels | better, +5.25 [" in note


def test_budgets_as_mlflow_steps():
    assert budget_step("label_budget", 250.0) == 250 and budget_step("per_class", 5.0) == 5
    assert budget_step("label_fraction", 0.01) == 100                       # basis points: 1% = 100
    assert budget_step("label_budget", math.nan) == 0


def test_a_search_none_of_whose_trials_ran_has_no_cost_ratio(tmp_path):
    """A study stopped before its search ran: the search's cost is not '0.0x ARML', it is not known yet."""
    import json

    folder = write_run(tmp_path / "run", {"uniform": [0.70, 0.72, 0.71, 0.69], "arml": [0.75, 0.78, 0.76, 0.74]},
                       budget=40, grid={"[0, 1]": [0.74, 0.77, 0.75, 0.74]})
    plan = json.loads((folder / "plan.json").read_text())
    grid = {t["trial_id"] for t in plan["trials"] if t["method"] == "grid"}
    states = json.loads((folder / "trials.json").read_text())
    (folder / "trials.json").write_text(json.dumps({t: {"status": "pending"} if t in grid else s
                                                    for t, s in states.items()}))
    rows = [line for line in (folder / "records.jsonl").read_text().splitlines()
            if json.loads(line)["trial_id"] not in grid]
    (folder / "records.jsonl").write_text("\n".join(rows) + "\n")
    found = cell_numbers(load_run(str(folder)), 1.0)
    rows = headline(found)
    assert rows[0].search == "grid" and math.isnan(rows[0].cost_ratio)
    assert "cost" not in headline_lines(rows, 1.0)[1]
    assert not any(name.startswith("cost_ratio/") for name, _, _ in parent_metrics(found))
