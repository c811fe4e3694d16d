"""`val_labels` in studies: left out of trial ids at its default (every trial planned before it existed keeps its
id), sweepable like any [train] value (the cell of 0 is the study without the sweep), and more than the data set's
validation split holds refused in one line naming it, at reading time and by `arml run --dry-run`."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from fakedata import write_fake_pacs

from orchestrator.cli import main
from orchestrator.errors import StudyError
from orchestrator.study.plan import count_trials, make_plan
from orchestrator.study.spec import load_study, parse_study

QUICKSTART = Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml"
# the quickstart's trial ids as planned before val_labels existed (the first one, and a digest of all in order but
# ARML's, whose ids changed when the default of its alpha gradient did, on purpose)
FIRST_ID, ALL_IDS = "e08ececc7a3a", "c22e59890d011af8"


def digest(plan) -> str:
    return hashlib.sha256("".join(t.trial_id for t in plan.trials if t.weighting != "arml").encode()).hexdigest()[:16]


def quickstart_with(extra: str) -> str:
    """The quickstart's text with `extra` lines added at the end of its [train] table."""
    text = QUICKSTART.read_text()
    return text.replace("aux_batch_size = 64\n", f"aux_batch_size = 64\n{extra}\n", 1)


def test_ids_of_trials_planned_before_val_labels_are_kept() -> None:
    plan = make_plan(load_study(QUICKSTART))
    assert plan.trials[0].trial_id == FIRST_ID and digest(plan) == ALL_IDS
    assert all(t.config.val_labels == 0 for t in plan.trials)
    explicit = make_plan(parse_study(quickstart_with("val_labels = 0")))      # the default, written out
    assert digest(explicit) == ALL_IDS
    fewer = make_plan(parse_study(quickstart_with("val_labels = 20")))        # computes something else
    assert not {t.trial_id for t in fewer.trials} & {t.trial_id for t in plan.trials} and len(fewer) == 40
    assert all(t.config.val_labels == 20 for t in fewer.trials)


def test_a_val_labels_sweep_plans_a_cell_per_value_and_keeps_the_whole_split_cell() -> None:
    text = QUICKSTART.read_text() + "\n[sweep.train]\nval_labels = [20, 40, 0]\n"
    study = parse_study(text)
    plan = make_plan(study)
    assert len(plan) == count_trials(study) == 3 * 40
    by_cell: dict[int, list] = {}
    for trial in plan.trials:
        assert trial.config.val_labels == trial.cell["val_labels"]
        by_cell.setdefault(trial.cell["val_labels"], []).append(trial)
    assert {k: len(v) for k, v in by_cell.items()} == {20: 40, 40: 40, 0: 40}
    for trials in by_cell.values():   # each cell: every method x budget x seed (x grid point) once
        assert sorted((t.method, t.budget, t.seed, t.grid_point or ()) for t in trials) == sorted(
            (t.method, t.budget, t.seed, t.grid_point or ()) for t in make_plan(load_study(QUICKSTART)).trials)
    whole = [t.trial_id for t in by_cell[0]]
    assert whole == [t.trial_id for t in make_plan(load_study(QUICKSTART)).trials]   # finished trials kept
    assert len({t.trial_id for t in plan.trials}) == 120


HEAD = """
[study]
name = "v"
preset = "{preset}"
[methods.uniform]
"""


@pytest.mark.parametrize(("preset", "body", "pieces"), [
    ("digits_mlc", "[train]\nval_labels = 271\n",
     ["[train] val_labels = 271 is more than digits (mlc) holds in its validation split: 270 labeled images",
      "use values up to 270, or 0 for all of them"]),
    ("digits_ssl", "[sweep.train]\nval_labels = [20, 300]\n",
     ["[sweep.train] val_labels = 300: val_labels = 300 is more than digits (ssl)", "270 labeled images"]),
    ("digits_dg", "[train]\nval_labels = 200\n",
     ["val_labels = 200 is more than digits (dg) holds in its validation split (the source domains' held-out "
      "parts): 135 labeled images"]),
    ("digits_ssl", "[methods.few]\nweighting = \"uniform\"\ntrain = { val_labels = 1000 }\n",
     ["[methods.few.train] val_labels = 1000 is more than digits (ssl)"]),
    ("digits_ssl", "[train]\nval_labels = -3\n", ["[train] val_labels must be greater than or equal to 0, got -3"]),
])
def test_more_than_the_split_holds_is_refused_in_one_line(preset: str, body: str, pieces: list[str]) -> None:
    with pytest.raises(StudyError) as caught:
        parse_study(textwrap.dedent(HEAD.format(preset=preset)) + body)
    message = str(caught.value)
    assert "\n" not in message and all(piece in message for piece in pieces), message


def test_what_the_split_holds_is_accepted() -> None:
    study = parse_study(textwrap.dedent(HEAD.format(preset="digits_dg")) + "[train]\nval_labels = 135\n")
    assert study.config.val_labels == 135


def test_pacs_is_checked_against_the_source_domains_under_the_data_root(tmp_path: Path) -> None:
    write_fake_pacs(tmp_path, per_class=10, size=8)   # 70 images per domain: 7 held out in each source domain
    head = textwrap.dedent(HEAD.format(preset="dg_pacs_paper")) + f'[train]\ndata_root = "{tmp_path}"\n'
    assert parse_study(head + "val_labels = 21\n").config.val_labels == 21
    with pytest.raises(StudyError, match=r"val_labels = 22 is more than pacs \(dg\) holds in its validation split "
                                         r"\(the source domains' held-out parts\): 21 labeled images"):
        parse_study(head + "val_labels = 22\n")
    elsewhere = textwrap.dedent(HEAD.format(preset="dg_pacs_paper")) + \
        f'[train]\ndata_root = "{tmp_path / "none"}"\nval_labels = 22\n'
    assert parse_study(elsewhere).config.val_labels == 22   # not here: the trial itself refuses it


def test_dry_run_names_val_labels_and_what_the_split_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "quickstart", "--dry-run", "--set", "train.val_labels=500"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("arml: error: --set train.val_labels=500: [train] val_labels = "
                                                   "500 is more than digits (mlc) holds in its validation split: "
                                                   "270 labeled images"), err
    assert main(["run", "quickstart", "--dry-run", "--set", "sweep.train.val_labels=[20, 40, 0]"]) == 0
    out = capsys.readouterr().out
    assert "sweep: val_labels in 20, 40, 0 (3 cells" in out and "total: 120 trials" in out
