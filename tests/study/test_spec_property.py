"""Property: whatever a study file holds, the parser returns a valid Study or raises StudyError,
never another exception; a Study always plans (or fails with StudyError) into trials whose
configurations pass trainables' own value checks."""

from __future__ import annotations

import copy
import datetime
import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from studyfiles import BASE, to_toml

from orchestrator.errors import StudyError
from orchestrator.study.plan import count_trials, make_plan, smoke
from orchestrator.study.spec import BUDGET_KEYS, SECTIONS, STUDY_KEYS, Study, parse_study
from trainables.config import PRESETS, TrainConfig
from trainables.data.digits import ATTRIBUTES as DIGITS_ATTRIBUTES

WEIGHTINGS = ["uniform", "fixed", "adaloss", "gradnorm", "cosinesim", "olaux", "arml", "grid", "search"]
KNOWN_KEYS = sorted({*STUDY_KEYS, *TrainConfig.__dataclass_fields__, *BUDGET_KEYS, "cpus_per_trial",
                     "gpus_per_trial", "workers_per_trial", "max_concurrent", "max_failures", "targets",
                     "weighting", "values", "weights", "lr", "update_every", "langevin", "init", "fd_eps",
                     "num_aux", "task_names"})
NAMES = [*PRESETS, *WEIGHTINGS, *DIGITS_ATTRIBUTES, "digits", "celeba", "mlc", "ssl", "dg", "rotation", "x"]
SETTINGS = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), text)
scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.integers(-3, 300), st.floats(), st.floats(0, 1),
    text, st.sampled_from(NAMES), st.dates(), st.times(), st.datetimes(),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8)
tables = st.dictionaries(keys, values, max_size=6)
methods = st.dictionaries(st.one_of(st.sampled_from(WEIGHTINGS), text),
                          st.one_of(st.dictionaries(keys, values, max_size=3), values), max_size=4)
documents = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(SECTIONS), text), st.one_of(tables, values), max_size=5),
    st.fixed_dictionaries({"study": tables, "methods": methods},
                          optional={s: tables for s in ("train", "budget", "resources", "report")}),
)


@st.composite
def mutated_base(draw: st.DrawFn) -> dict:
    """The valid BASE study with a few keys set to arbitrary values or removed."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(doc)))
        table = doc[section]
        if section == "methods" and draw(st.booleans()):
            label = draw(st.sampled_from(sorted(table) + WEIGHTINGS))
            table = table.setdefault(label, {})
            if not isinstance(table, dict):
                continue
        key = draw(st.one_of(st.sampled_from(sorted(table) or KNOWN_KEYS), keys))
        if draw(st.integers(0, 4)) == 0:
            table.pop(key, None)
        else:
            table[key] = draw(values)
    return doc


def check(text_of_study: str) -> None:
    try:
        study = parse_study(text_of_study, "prop.toml")
    except StudyError as error:
        assert str(error).startswith("prop.toml:") and "\n" not in str(error)
        return
    assert isinstance(study, Study) and study.methods and study.aux_names
    if count_trials(study) > 300:
        return
    try:
        plan = make_plan(study, allow_large=True)
    except StudyError:
        return
    assert len(plan) == count_trials(study) == len({t.trial_id for t in plan.trials})
    for trial in plan.trials:  # what passes the study's checks is a configuration a trial can use
        assert TrainConfig.from_dict(trial.config.to_dict()) == trial.config
    assert len(smoke(plan)) == len(plan)


@SETTINGS
@given(documents)
def test_arbitrary_documents(doc: dict[str, Any]) -> None:
    text_of_study = to_toml(doc)
    tomllib.loads(text_of_study)  # the generator writes valid TOML: the parser's checks are what is tested
    check(text_of_study)


@SETTINGS
@given(mutated_base())
def test_mutated_valid_study(doc: dict[str, Any]) -> None:
    check(to_toml(doc))


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(), st.builds(lambda a, b: to_toml(BASE)[:a] + b, st.integers(0, 900), st.text())))
def test_arbitrary_text(text_of_study: str) -> None:
    check(text_of_study)


def test_generated_base_is_valid() -> None:
    assert isinstance(parse_study(to_toml(BASE), "prop.toml"), Study)
    assert datetime.date(2020, 1, 1).isoformat() in to_toml({"a": {"d": datetime.date(2020, 1, 1)}})
