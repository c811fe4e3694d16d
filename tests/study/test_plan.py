"""Plans: methods x budgets x seeds (x grid points), complete configs, stable ids, the size guard."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import pytest
from studyfiles import BASE, changed, write

import orchestrator.study.plan as plan_module
from orchestrator.errors import StudyError
from orchestrator.store.folder import locate
from orchestrator.study.plan import count_trials, make_plan, smoke, with_data_root
from orchestrator.study.spec import load_study, parse_study
from trainables.config import aux_names, resolve_config

QUICKSTART = Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml"


def test_counts_and_complete_configs(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, BASE))
    plan = make_plan(study)
    # (uniform, arml, arml_slow, fixed_rot: 1 each; grid: 2^3 points) x 2 budgets x 2 seeds
    assert plan.counts_by_method() == {"uniform": 4, "arml": 4, "arml_slow": 4, "fixed_rot": 4, "grid": 32}
    assert len(plan) == count_trials(study) == 48 and plan.aux_names == ("is_0", "is_6", "random_0")
    slow = [t for t in plan.trials if t.method == "arml_slow"]
    assert [(t.budget, t.seed) for t in slow] == [(20, 0), (20, 1), (50, 0), (50, 1)]
    t = slow[3]
    assert (t.weighting, t.weighting_options, t.budget_key, t.grid_point) == (
        "arml", {"lr": 0.005, "update_every": 2, "directional": "jvp"}, "label_budget", None)
    c = t.config
    assert (c.seed, c.weighting, c.label_budget, c.label_fraction) == (1, "arml", 50, 0)
    assert t.config.weighting_options == {"lr": 0.005, "update_every": 2, "directional": "jvp"}
    assert t.config.steps == 30
    assert plan.study.resources == study.resources           # one [resources] for every trial
    grid = [t for t in plan.trials if t.method == "grid"]
    assert {t.grid_point for t in grid} == set(itertools.product((0.0, 1.0), repeat=3))
    assert all(t.weighting == "fixed" and t.config.weighting_options == {"weights": list(t.grid_point)}
               for t in grid)
    ids = [t.trial_id for t in plan.trials]
    assert len(set(ids)) == 48 and all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids)


def test_other_budgets_and_no_budget() -> None:
    dg = parse_study('[study]\nname = "d"\npreset = "digits_dg"\n[methods.uniform]\n'
                     '[budget]\nper_class = [1, 3]\n')
    assert [(t.budget_key, t.config.per_class) for t in make_plan(dg).trials] == [
        ("per_class", 1), ("per_class", 3)]
    assert dg.aux_names == ("original", "rotated", "noisy")  # the target domain "inverted" is not a source
    text = '[study]\nname = "m"\npreset = "digits_mlc"\n[methods.uniform]\n[budget]\nfraction = [0.1]\n'
    (trial,) = make_plan(parse_study(text)).trials
    assert (trial.budget_key, trial.config.label_fraction, trial.config.label_budget) == (
        "label_fraction", 0.1, 0)
    (plain,) = make_plan(parse_study(text.replace("[budget]\nfraction = [0.1]\n", ""))).trials
    assert (plain.budget, plain.budget_key, plain.config.label_budget) == (None, None, 40)  # the preset's


def test_ids_are_stable_and_mean_something(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = [t.trial_id for t in make_plan(load_study(write(tmp_path / "a", BASE))).trials]
    again = [t.trial_id for t in make_plan(load_study(write(tmp_path / "b", BASE, "other.toml"))).trials]
    assert first == again
    renamed = [t.trial_id for t in make_plan(load_study(write(tmp_path, changed("study.name", "u")))).trials]
    assert renamed == first  # the study's name and file are not part of what a trial means
    plan = make_plan(load_study(write(tmp_path, BASE)))
    assert [t.trial_id for t in with_data_root(plan, "/elsewhere").trials] == first
    assert with_data_root(plan, "/elsewhere").trials[0].config.data_root == "/elsewhere"
    steps = [t.trial_id for t in make_plan(load_study(write(tmp_path, changed("train.steps", 31)))).trials]
    assert not set(steps) & set(first)
    doc = copy.deepcopy(BASE)
    doc["methods"]["arml_fast"] = doc["methods"].pop("arml_slow")
    relabeled = [t.trial_id for t in make_plan(load_study(write(tmp_path, doc))).trials]
    assert len(set(relabeled) - set(first)) == 4  # only the relabeled method's trials
    lr = [t.trial_id for t in make_plan(load_study(write(tmp_path, changed("methods.arml.lr", 0.06)))).trials]
    assert len(set(lr) - set(first)) == 4


def test_a_changed_default_gives_new_ids_to_the_methods_it_changes_and_only_to_them(tmp_path: Path) -> None:
    """ARML's alpha gradient became exact (directional = "jvp" instead of a central difference): the ARML-family
    trials of a study get new ids, so --resume runs them again, while Uniform's and a grid's keep theirs; writing
    the default out changes nothing, another value is another trial."""
    plan = make_plan(load_study(QUICKSTART))
    arml_trials = [t for t in plan.trials if t.method == "arml"]
    assert all(t.weighting_options == {"directional": "jvp"} for t in arml_trials)
    assert all(t.weighting_options == {} for t in plan.trials if t.method == "uniform")
    assert all(set(t.weighting_options) == {"weights"} for t in plan.trials if t.method == "grid")
    first = arml_trials[0]
    before = first.config.replace(weighting_options={})          # the trial as planned before the change
    assert first.trial_id != plan_module.trial_id(before, "arml")
    assert first.trial_id == plan_module.trial_id(first.config, "arml")
    ids = {t.trial_id for t in plan.trials}
    text = QUICKSTART.read_text()
    for value, same in (("jvp", True), ("central", False)):
        path = tmp_path / f"{value}.toml"
        path.write_text(text.replace("[methods.arml]\n", f'[methods.arml]\ndirectional = "{value}"\n'))
        written = make_plan(load_study(path))
        assert ({t.trial_id for t in written.trials} == ids) is same
        assert {t.trial_id for t in written.trials if t.method != "arml"} <= ids
        if value == "central":   # what every ARML trial computed before: the ids it had then (old folders resume)
            assert [t for t in written.trials if t.method == "arml"][0].trial_id == plan_module.trial_id(before, "arml")


def test_trial_id_fixed_by_content() -> None:
    config = resolve_config("digits_ssl")
    elsewhere = config.replace(device="cuda:1", data_root="/data", num_workers=8)
    assert plan_module.trial_id(config, "uniform") == plan_module.trial_id(elsewhere, "uniform")
    assert plan_module.trial_id(config, "uniform") != plan_module.trial_id(config, "uniform2")


def test_grid_guard(tmp_path: Path) -> None:
    path = write(tmp_path, changed("study.max_trials", 40))
    study = load_study(path)
    expected = (rf"^{re.escape(str(path))}: \[study\] max_trials = 40 but the plan has 48 trials "
                r"\(\[methods.grid\] 2\^3 = 8 points\); run with --allow-large")
    with pytest.raises(StudyError, match=expected):
        make_plan(study)
    assert len(make_plan(study, allow_large=True)) == 48
    huge = changed("methods.grid.values", [float(v) for v in range(10)])
    huge["train"]["aux_attributes"] = [f"is_{d}" for d in range(10)]
    del huge["methods"]["fixed_rot"]
    study = load_study(write(tmp_path, huge))
    assert count_trials(study) == (3 + 10**10) * 4
    with pytest.raises(StudyError, match="over the hard limit"):
        make_plan(study, allow_large=True)


def test_duplicate_trials_are_an_error(tmp_path: Path) -> None:
    doc = changed("methods.uniform_again", {"weighting": "uniform"})
    plan = make_plan(load_study(write(tmp_path, doc)))  # different labels: different trials
    assert plan.counts_by_method()["uniform_again"] == 4
    with pytest.raises(StudyError, match="are identical"):
        plan_module._check_unique(plan.study, [plan.trials[0], plan.trials[0]])


def test_smoke_shrinks_configs(tmp_path: Path) -> None:
    plan = make_plan(load_study(write(tmp_path, BASE)))
    small = smoke(plan)
    assert small.smoke and len(small) == len(plan)
    for trial in small.trials:
        c = trial.config
        assert c.steps <= 4 and c.eval_every == 2 and c.max_eval_items == 64
        assert max(c.batch_size, c.aux_batch_size, c.eval_batch_size) <= 16
    assert not {t.trial_id for t in small.trials} & {t.trial_id for t in plan.trials}
    assert [t.config.label_budget for t in small.trials] == [t.config.label_budget for t in plan.trials]


def test_aux_names() -> None:
    """The auxiliary names (K and the weights' order) come from trainables, without reading images."""
    assert aux_names(resolve_config("digits_ssl")) == ["rotation", "exemplar_mt"]
    assert aux_names(resolve_config("digits_mlc", aux_attributes=("is_0", "odd"))) == ["is_0", "odd"]
    assert aux_names(resolve_config("digits_dg", target_domain="rotated")) == ["original", "inverted", "noisy"]
    assert len(aux_names(resolve_config("digits_mlc"))) == 17   # every attribute but the main one


def test_run_dir(tmp_path: Path, monkeypatch) -> None:
    """One function says where a run goes; a file:// URI and ../ are the same folder as the plain path."""
    monkeypatch.chdir(tmp_path)
    plan = make_plan(load_study(write(tmp_path, BASE)))
    assert locate(plan.study.name, None).run_dir == str(tmp_path / "runs" / "t")
    assert locate(plan.study.name, None).shown() == "runs/t"
    remote = locate(plan.study.name, "s3://bucket/studies/")
    assert remote.tune_home == "s3://bucket/studies/t" and remote.run_dir == str(tmp_path / "runs" / "t")
    for spelling in (f"file://{tmp_path}/x", f"{tmp_path}/x", f"{tmp_path}/x/../x", "x", "./x/"):
        assert locate("t", spelling) == locate("t", str(tmp_path / "x")), spelling
    assert locate("t", f"file://{tmp_path}/x").tune_home == str(tmp_path / "x" / "t")


def test_quickstart() -> None:
    """The shipped study plans into its documented 40 trials."""
    plan = make_plan(load_study(QUICKSTART))
    assert plan.counts_by_method() == {"uniform": 4, "arml": 4, "grid": 32} and len(plan) == 40
    assert plan.aux_names == ("is_0", "is_6", "random_0") and plan.study.setting == "mlc"


def test_ids_of_shipped_studies_never_change():
    """Finished trials are found again by id (--resume, published tables): a new TrainConfig field must not
    change the ids of trials planned before it existed (plan.ADDED_LATER)."""
    from orchestrator.study.spec import load_study

    quick = plan_module.make_plan(load_study("studies/quickstart.toml"))
    assert [t.trial_id for t in quick.trials[:3]] == ["e08ececc7a3a", "0395e2182e49", "ae15968c0c12"]
