"""Study files: a valid one parses into the documented dataclasses; each kind of mistake is one
StudyError whose message names the file, the section/key and the fix."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from studyfiles import BASE, changed, write

from orchestrator.errors import StudyError, UsageError
from orchestrator.study.spec import BudgetSpec, MethodSpec, Resources, load_study, parse_study


def test_valid_study_parses(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, BASE))
    assert (study.name, study.description, study.preset, study.setting, study.dataset) == (
        "t", "a test study", "digits_mlc", "mlc", "digits")
    assert study.seeds == (0, 1) and study.max_trials == 256 and study.path == tmp_path / "x.toml"
    assert study.train == {"aux_attributes": ("is_0", "is_6", "random_0"), "steps": 30, "lr_milestones": (20,)}
    assert study.config.steps == 30 and study.config.main_attribute == "has_loop"
    assert study.aux_names == ("is_0", "is_6", "random_0")
    assert study.methods == (
        MethodSpec("uniform", "uniform", {}),
        MethodSpec("arml", "arml", {"lr": 0.05, "directional": "jvp"}),   # the default that changed, written in
        MethodSpec("arml_slow", "arml", {"lr": 0.005, "update_every": 2, "directional": "jvp"}),
        MethodSpec("fixed_rot", "fixed", {"weights": [1.0, 0.0, 0.5]}),
        MethodSpec("grid", "fixed", {}, (0.0, 1.0)),
    )
    assert isinstance(study.methods[3].options["weights"][0], float)  # 1 -> 1.0: stable trial ids
    assert study.budget == BudgetSpec("labels", "label_budget", (20, 50))
    assert study.resources == Resources(0.5, 0.25, 2, 4, 1)
    assert study.report.targets == (0.8, 0.85)


def test_defaults_and_dataset_override() -> None:
    study = parse_study('[study]\nname = "d"\npreset = "digits_ssl"\ndataset = "digits"\n[methods.uniform]\n')
    assert study.seeds == (0,) and study.budget is None and study.resources == Resources()
    assert study.report.targets == () and study.aux_names == ("rotation", "exemplar_mt")
    assert study.config.label_budget == 50 and study.dataset == "digits"


BAD = [
    # (change to BASE, pieces the message must contain)
    (("resource", {"cpus_per_trial": 1}), ["unknown section [resource]", "did you mean [resources]?"]),
    (("study.seed", [1]), ["[study] unknown key seed", "did you mean seeds?", "valid keys:"]),
    (("train.stpes", 10), ["[train] unknown key stpes", "did you mean steps?"]),
    (("train.seed", 3), ["[train] seed cannot be set in [train]", "[study] seeds"]),
    (("train.label_budget", 3), ["[train] label_budget cannot be set", "[budget] labels"]),
    (("train.steps", "many"), ["[train] steps must be an integer", "'many'"]),
    (("train.aux_attributes", [1, 2]), ["[train] aux_attributes must be a list of names"]),
    (("train.aux_attributes", ["is_11"]), ["[train] cannot tell the auxiliary tasks", "is_11"]),
    (("train.lr_milestones", [1.5]), ["[train] lr_milestones must be a list of step numbers"]),
    (("study.max_trials", "x"), ['[study] max_trials must be an integer, got "x"']),
    (("study.max_trials", 0), ["[study] max_trials must be at least 1"]),
    (("study.description", "two\nlines"), ["[study] description must be one line"]),
    (("study.name", None), ["[study] missing key name"]),
    (("study.preset", None), ["[study] missing key preset"]),
    (("study.name", "a b"), ["[study] name must be", 'got "a b"']),
    (("study", None), ["missing section [study]"]),
    (("study", 3), ["study must be a section"]),
    (("methods", None), ["missing section [methods]"]),
    (("methods", {}), ["[methods] needs at least one method"]),
    (("methods.uniform", 1), ["[methods] uniform = 1 is not a method", "[methods.uniform]"]),
    (("study.preset", "digits_mcl"), ['preset "digits_mcl" is unknown', "did you mean digits_mlc or",
                                      "valid names: dg_pacs_paper, digits_dg, digits_mlc"]),
    (("study.setting", "ssl"), ['[study] setting = "ssl" but preset digits_mlc is "mlc"']),
    (("study.seeds", []), ["[study] seeds must be a non-empty list"]),
    (("study.seeds", [1, 1]), ["[study] seeds must be a non-empty list of distinct"]),
    (("study.seeds", [-1]), ["[study] seeds must be"]),
    (("study.seeds", 3), ["[study] seeds must be a list, got 3"]),
    (("methods.armll", {}), ['[methods.armll] "armll" is not a weighting name', "did you mean arml?",
                             "valid names: adaloss, arml, autolambda, cosinesim, fixed, gradnorm, olaux, uniform, "
                             "grid"]),
    (("methods.x.weighting", "gradnrom"), ['[methods.x] weighting "gradnrom" is unknown',
                                           "did you mean gradnorm?", "valid names:"]),
    (("methods.x.weighting", 5), ["[methods.x] weighting must be a string, got 5"]),
    (("methods.arml.lrr", 0.1), ["[methods.arml] lrr is not an option of weighting arml",
                                 "did you mean lr?", "its options: lr, update_every"]),
    (("methods.arml.lr", "fast"), ['[methods.arml] lr must be a number, got "fast"']),
    (("methods.arml.update_every", 1.5), ["[methods.arml] update_every must be an integer, got 1.5"]),
    (("methods.arml.langevin", 1), ["[methods.arml] langevin must be true or false, got 1"]),
    # fd_eps: float | None = None: the type comes from the annotation
    (("methods.arml.fd_eps", "x"), ['[methods.arml] fd_eps must be a number, got "x"']),
    (("methods.arml.num_aux", 3), ["[methods.arml] num_aux is filled in for each trial", "remove it"]),
    (("methods.uniform.lr", 0.1), ["[methods.uniform] lr is not an option of weighting uniform",
                                   "its options: none"]),
    (("methods.fixed_rot.weights", [1.0, 0.0]), [
        "[methods.fixed_rot] weights has 2 numbers but there are 3 auxiliary tasks (is_0, is_6, random_0)",
        "one weight per task"]),
    (("methods.fixed_rot.weights", [1.0, -1.0, 0.0]), ["[methods.fixed_rot] weights must be a list of"]),
    (("methods.fixed_rot.weights", None), ["[methods.fixed_rot] weighting fixed needs weights"]),
    (("methods.grid.values", []), ["[methods.grid] values must be a non-empty list of distinct numbers"]),
    (("methods.grid.values", [1.0, -0.5]), ["[methods.grid] values must be", "got [1.0, -0.5]"]),
    (("methods.grid.values", [1, 1.0]), ["[methods.grid] values must be a non-empty list of distinct"]),
    (("methods.grid.values", None), ["[methods.grid] missing key values"]),
    (("methods.grid.lr", 0.1), ["[methods.grid] unknown key lr"]),
    (("methods.arml.values", [1.0]), ["[methods.arml] values is only for a grid search"]),
    (("methods.a b", {}), ['[methods."a b"] a method label must be']),
    (("budget", {"per_class": [1, 2]}), ["[budget] per_class is for the dg setting but this study is mlc",
                                         "use labels or fraction"]),
    (("budget", {"labels": [20], "fraction": [0.1]}), ["[budget] needs exactly one of labels, per_class"]),
    (("budget", {}), ["[budget] needs exactly one of"]),
    (("budget", {"label": [20]}), ["[budget] unknown key label", "did you mean labels?"]),
    (("budget.labels", [0]), ["[budget] labels must be a non-empty list of distinct integers >= 1"]),
    (("budget.labels", [20, 20]), ["[budget] labels must be a non-empty list of distinct"]),
    (("budget", {"fraction": [1.5]}), ["[budget] fraction must be", "0 < f <= 1"]),
    (("resources.cpus_per_trial", 0), ["[resources] cpus_per_trial must be greater than 0"]),
    (("resources.cpus_per_trial", "1"), ['[resources] cpus_per_trial must be a number, got "1"']),
    (("resources.gpus_per_trial", 1.5), ["[resources] gpus_per_trial must be a fraction in [0, 1]"]),
    (("resources.workers_per_trial", 0), ["[resources] workers_per_trial must be greater than or equal to 1"]),
    (("resources.max_failures", -1), ["[resources] max_failures must be greater than or equal to 0"]),
    (("resources.gpus", 1), ["[resources] unknown key gpus", "did you mean gpus_per_trial?"]),
    (("report.targets", [1.2]), ["[report] targets must be accuracies 0 < t <= 1"]),
    (("report.target", [0.8]), ["[report] unknown key target", "did you mean targets?"]),
    (("study.description", datetime.date(2020, 1, 2)), ["[study] description must not be a date or time"]),
    (("methods.arml.lr", float("nan")), ["[methods.arml] lr must be a finite number, got nan"]),
    (("study.dataset", "digitz"), ['"digitz"']),
]


@pytest.mark.parametrize(("change", "pieces"), BAD, ids=[f"{c[0]}={c[1]!r}"[:40] for c, _ in BAD])
def test_bad_study_is_one_study_error(tmp_path: Path, change: tuple, pieces: list[str]) -> None:
    path = write(tmp_path, changed(*change))
    with pytest.raises(StudyError) as caught:
        load_study(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    for piece in pieces:
        assert piece in message


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[study]\nname = "x\npreset = "digits_ssl"\n')
    with pytest.raises(StudyError, match=re.escape(f"{path}: TOML syntax error") + r".*line 2"):
        load_study(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    write(tmp_path, BASE, "quickstart.toml")
    with pytest.raises(StudyError, match=r"no such study file; study files there: .*quickstart.toml"):
        load_study(tmp_path / "quikstart.toml")
    with pytest.raises(StudyError, match="that is a folder"):
        load_study(tmp_path)
    with pytest.raises(UsageError, match="no such study file"):
        load_study(tmp_path / "nowhere" / "x.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[study]\nname = "é"\n'.encode("latin-1"))
    with pytest.raises(StudyError, match="save it as UTF-8"):
        load_study(path)


def test_trainables_errors_are_reraised_as_study_errors() -> None:
    text = '[study]\nname = "x"\npreset = "digits_ssl"\n[train]\nsetting_x = 1\n[methods.uniform]\n'
    with pytest.raises(StudyError, match=r"^s\.toml: \[train\] unknown key setting_x"):
        parse_study(text, "s.toml")
    with pytest.raises(StudyError, match=r"^s\.toml: \[train\] aux_tasks must be a list"):
        parse_study(text.replace("setting_x = 1", 'aux_tasks = "rotation"'), "s.toml")


def test_dataset_checked_against_trainables_data() -> None:
    text = '[study]\nname = "x"\npreset = "digits_ssl"\ndataset = "{}"\n[methods.uniform]\n'
    with pytest.raises(StudyError, match=r'\[study\] dataset: "digitz" is not a name .*did you mean digits'):
        parse_study(text.format("digitz"))
    with pytest.raises(StudyError, match=r"\[study\] data set celeba has no ssl setting \(it has: mlc\)"):
        parse_study(text.format("celeba"))


def test_option_values_the_weighting_refuses_are_study_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"\[methods.arml\] weighting arml refuses these options: lr"):
        load_study(write(tmp_path, changed("methods.arml.lr", -1.0)))


def test_a_bad_set_is_blamed_on_the_set_not_the_study_file():
    from orchestrator.study.spec import load_study

    with pytest.raises(StudyError) as caught:
        load_study("studies/quickstart.toml", {"train": {"step": 100, "lr": 0.01}})
    message = str(caught.value)
    assert message.startswith("--set train.step=100: [train] unknown key step (did you mean steps?)")
    with pytest.raises(StudyError) as caught:
        load_study("studies/quickstart.toml", {"methods": {"arml": {"lr": -1.0}}})
    assert str(caught.value).startswith("--set methods.arml.lr=-1.0:")


def test_a_huge_description_is_refused_not_echoed():
    from orchestrator.study.spec import load_study

    with pytest.raises(StudyError) as caught:
        load_study("studies/quickstart.toml", {"study": {"description": "x" * 100_000}})
    message = str(caught.value)
    assert "description has 100,000 characters; keep it under 300" in message and len(message) < 400
