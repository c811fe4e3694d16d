"""Sweeps: the product of the axes, ids that survive a grown axis, per-method train values and cells, and bad
axis values refused like [train] values."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.cli import main
from orchestrator.errors import StudyError
from orchestrator.study.plan import count_trials, make_plan
from orchestrator.study.spec import parse_study

HEAD = """
[study]
name = "s"
preset = "digits_mlc"
seeds = [0, 1]
[train]
aux_attributes = ["is_0", "is_6", "random_0", "random_1"]
lr_milestones = []
"""


def study(body: str):
    return parse_study(textwrap.dedent(HEAD) + textwrap.dedent(body))


def test_trials_are_the_product_of_axes_methods_budgets_and_seeds():
    s = study("""
        [sweep.train]
        steps = [10, 30]
        aux_count = [2, 4]
        [methods.uniform]
        [methods.arml]
        [budget]
        labels = [20, 40]
        """)
    plan = make_plan(s)
    assert len(plan) == count_trials(s) == 2 * 2 * 2 * 2 * 2
    cells = {tuple(t.cell.items()) for t in plan.trials}
    assert cells == {(("steps", a), ("aux_count", k)) for a in (10, 30) for k in (2, 4)}
    for t in plan.trials:
        assert t.config.steps == t.cell["steps"]
        assert t.config.aux_attributes == ("is_0", "is_6", "random_0", "random_1")[:t.cell["aux_count"]]
    assert len({t.trial_id for t in plan.trials}) == len(plan)
    assert plan.aux_names == ("is_0", "is_6", "random_0", "random_1")


def test_adding_an_axis_value_keeps_every_old_id():
    one = make_plan(study("[sweep.train]\nsteps = [10]\n[methods.uniform]\n[methods.arml]\n"))
    two = make_plan(study("[sweep.train]\nsteps = [10, 30]\n[methods.uniform]\n[methods.arml]\n"))
    plain = make_plan(parse_study(textwrap.dedent(HEAD) + "steps = 10\n[methods.uniform]\n[methods.arml]\n"))
    assert {t.trial_id for t in one.trials} < {t.trial_id for t in two.trials}
    assert {t.trial_id for t in one.trials} == {t.trial_id for t in plain.trials}   # an axis of one = [train]


def test_per_method_train_values_and_cells():
    s = study("""
        [sweep.train]
        aux_count = [2, 4]
        [methods.fast]
        weighting = "uniform"
        train = { lr = 0.01 }
        [methods.grid]
        values = [0.0, 1.0]
        cells = { aux_count = [2] }
        """)
    plan = make_plan(s)
    fast = [t for t in plan.trials if t.method == "fast"]
    grid = [t for t in plan.trials if t.method == "grid"]
    assert {t.config.lr for t in fast} == {0.01} and len(fast) == 2 * 2
    assert {t.cell["aux_count"] for t in grid} == {2} and len(grid) == 2 ** 2 * 2
    assert all(t.config.lr == 0.003 for t in grid)       # the preset's: only `fast` changes it


@pytest.mark.parametrize(("body", "pieces"), [
    ("[sweep.train]\nsteps = [10, 0]\n", ["[sweep.train] steps = 0: steps must be greater than or equal to 1"]),
    ("[sweep.train]\nsteps = []\n", ["[sweep.train] steps must be a non-empty list"]),
    ("[sweep.train]\nsteps = [10, 10]\n", ["[sweep.train] steps lists a value twice"]),
    ("[sweep.train]\nstepz = [10]\n", ["[sweep.train] unknown key stepz", "did you mean steps?"]),
    ("[sweep.train]\nseed = [1, 2]\n", ["[sweep.train] unknown key seed"]),
    ("[sweep.train]\naux_count = [2, 9]\n", ["[sweep.train] aux_count = 9 but this study has 4 auxiliary tasks"]),
    ("[sweep.train]\noptimizer = [\"adam\", \"adamw\"]\n", ["optimizer = adamw: optimizer must be one of adam, sgd"]),
    ("[sweep.train]\nlr_milestones = [[5]]\n", ["[sweep.train] lr_milestones is set in [train] and swept"]),
    ("[sweep]\nsteps = [1]\n", ["[sweep] unknown key steps", "valid keys: train"]),
])
def test_bad_axis_values_are_refused_in_one_line(body, pieces):
    with pytest.raises(StudyError) as caught:
        study(body + "[methods.uniform]\n")
    message = str(caught.value)
    assert "\n" not in message and all(piece in message for piece in pieces), message


def test_a_method_cannot_set_a_swept_key_or_name_a_cell_that_is_not_there():
    with pytest.raises(StudyError, match=r"\[methods.u.train\] steps is swept in \[sweep.train\]"):
        study("[sweep.train]\nsteps = [10]\n[methods.u]\nweighting = \"uniform\"\ntrain = { steps = 5 }\n")
    with pytest.raises(StudyError, match=r"cells: steps = \[7\] is not a value of the axis"):
        study("[sweep.train]\nsteps = [10]\n[methods.u]\nweighting = \"uniform\"\ncells = { steps = [7] }\n")


def test_set_sweeps_from_the_command_line_and_the_dry_run_lists_the_cells(capsys):
    assert main(["run", "quickstart", "--dry-run", "--set", "sweep.train.steps=[100,400]"]) == 0
    out = capsys.readouterr().out
    assert "sweep: steps in 100, 400 (2 cells" in out and "total: 80 trials" in out
    assert main(["run", "quickstart", "--dry-run", "--set", "sweep.train.steps=[100,0]"]) == 2
    assert capsys.readouterr().err.startswith("arml: error: --set sweep.train.steps=[100, 0]: [sweep.train] steps = 0")
