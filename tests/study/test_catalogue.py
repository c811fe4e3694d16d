"""The study files in studies/: every one passes `arml run --dry-run`; every paper study runs end to end with
--smoke through real Ray on fake data sets in the real on-disk formats (tests/helpers/fakedata.py) and gets a report.

The paper studies ask for GPUs (gpus_per_trial 0.5 or 1) and 4-8 CPUs per trial, so the module's Ray declares
logical resources that fit them (8 CPUs, 1 GPU) on whatever machine runs the tests; without CUDA the trials
train on the CPU. The smoke runs are marked slow (`pytest -m slow`, tens of minutes on 2 CPUs), except one
PACS study with 32-px images in the fast suite (see `small`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml"))
PAPER = [p for p in STUDIES if p.name.startswith("paper_")]
DIGITS = [p for p in STUDIES if p.name.startswith(("digits_table", "digits_fig"))]   # the paper's twins
KSCALING = [p for p in STUDIES if p.name.startswith("digits_k_scaling")]   # checked in tests/report/test_searches.py
REGIMES = [p for p in STUDIES if p.name == "digits_regimes.toml"]   # its own test below
MINIMUM = [p for p in STUDIES if p.name == "digits_minimum_data.toml"]   # its own test below
# search and grid against ARML
EVIDENCE = [p for p in STUDIES if p.name.startswith("digits_") and p not in DIGITS + KSCALING + REGIMES + MINIMUM]
FAST = "paper_table4_pacs.toml"   # the paper study whose smoke run (two of its cells) is in the fast suite


def study(path: Path) -> dict:
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_passes_a_dry_run(path, capsys):
    # as a cluster run (data and GPUs are the cluster's): this machine lacks the paper's data sets and GPUs
    assert main(["run", str(path), "--dry-run", "--address", "127.0.0.1:1"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was started" in out


def test_paper_studies_use_three_seeds_gpus_and_have_a_digits_twin():
    assert len(PAPER) == 8 and len(DIGITS) == 6
    for path in PAPER:
        doc = study(path)
        assert doc["study"]["seeds"] == [0, 1, 2], path.name
        assert doc["study"]["preset"].endswith("_paper"), path.name
        assert doc["resources"]["gpus_per_trial"] in (0.5, 1), path.name
    twins = {p.stem for p in DIGITS}
    for kind in ("table1", "fig2", "table2", "table4", "fig3", "fig4"):
        assert any(kind in name for name in twins), kind


@pytest.mark.parametrize("path", DIGITS, ids=lambda p: p.stem)
def test_digits_twins_stay_small_enough_for_a_laptop(path, capsys):
    doc = study(path)
    assert doc["study"]["seeds"] == [0, 1, 2] and doc["study"]["preset"].startswith("digits_")
    assert doc["train"]["steps"] <= 500
    assert main(["run", str(path), "--dry-run"]) == 0
    total = int(capsys.readouterr().out.split("total: ")[1].split()[0])
    assert total <= 100, f"{path.name}: {total} trials"


@pytest.mark.parametrize("path", EVIDENCE, ids=lambda p: p.stem)
def test_evidence_studies_compare_searches_with_arml_on_a_cpu_budget(path, capsys):
    doc = study(path)
    methods = doc["methods"]
    assert "uniform" in methods and "arml" in methods and "grid" in methods
    assert doc["train"]["steps"] <= 500 and doc["study"]["preset"].startswith("digits_")
    assert main(["run", str(path), "--dry-run"]) == 0
    total = int(capsys.readouterr().out.split("total: ")[1].split()[0])
    assert total <= 600, f"{path.name}: {total} trials"


def test_the_search_study_gives_tpe_the_grid_trial_budget():
    doc = study(next(p for p in EVIDENCE if p.stem == "digits_search_vs_arml"))
    k = len(doc["train"]["aux_attributes"])
    assert doc["methods"]["tpe"]["num_samples"] == len(doc["methods"]["grid"]["values"]) ** k
    assert doc["methods"]["grid_asha"]["scheduler"] == "asha"


# ---- smoke runs through real Ray ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Fake CIFAR-10/SVHN/CelebA/PACS large enough for the paper studies' label budgets."""
    from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs, write_fake_svhn

    root = tmp_path_factory.mktemp("data")
    write_fake_cifar10(root, n_train=4600, n_test=40)    # 4140 training images after validation: 4000 labels
    write_fake_svhn(root, n_train=1200, n_test=40)       # 1000 labels
    write_fake_celeba(root, partition=(200, 20, 20))     # 1% of 200 = 2 labels
    # art_painting: 184 images per class (Figure 4's "all" labels); the other domains 10 per class
    write_fake_pacs(root, per_class={"photo": 10, "art_painting": 184, "cartoon": 10, "sketch": 10}, size=40)
    return root


@pytest.fixture(scope="module")
def paper_ray():
    """A local Ray claiming the paper studies' resources (8 CPUs, 1 GPU) in place of the shared one."""
    ray = pytest.importorskip("ray")
    from local_ray import start_ray

    ray.shutdown()
    yield start_ray(num_cpus=8, num_gpus=1)
    ray.shutdown()


def small(plan):
    """The smoke plan, smaller still for a CPU: 32-px images through ResNet-18's usual stem (not 224 px), no
    loader processes, 1 CPU and no GPU per trial, 2 at a time. The same trials, files and report otherwise."""
    import dataclasses

    from orchestrator.study.plan import map_configs

    resources = dataclasses.replace(plan.study.resources, cpus_per_trial=1.0, gpus_per_trial=0.0, max_concurrent=2)
    plan = dataclasses.replace(plan, study=dataclasses.replace(plan.study, resources=resources))
    return map_configs(plan, lambda c: c.replace(image_size=32, num_workers=0,
                                                 model_options={**c.model_options, "small_input": False}))


def smoke_run(path: Path, data_root: Path, storage: Path, small_images: bool = False,
              overrides: dict | None = None) -> pd.DataFrame:
    """`arml run PATH --smoke --data-root DATA --storage STORAGE`; with `small_images` the same steps as the
    CLI with `small` applied to the plan before it runs (PACS at 224 px takes ~25 s a step on a CPU); `overrides`
    as --set would give them."""
    args = ["run", str(path), "--smoke", "--data-root", str(data_root), "--storage", str(storage)]
    if small_images:
        from orchestrator.api import run_plan
        from orchestrator.run.options import RunOptions
        from orchestrator.study.plan import make_plan, smoke, with_data_root
        from orchestrator.study.spec import load_study

        plan = small(smoke(with_data_root(make_plan(load_study(path, overrides)), str(data_root))))
        code = run_plan(plan, RunOptions(storage=str(storage), data_root=str(data_root)))
    else:
        code = main(args)
    name = study(path)["study"]["name"]
    run_dir = storage / name
    trials = pd.read_csv(run_dir / "trials.csv")
    assert code == 0, trials[trials["status"] != "finished"][["method", "budget", "error"]].to_string()
    assert set(trials["status"]) == {"finished"} and len(trials) > 0
    report = run_dir / "report"
    assert "# " + name in (report / "results.md").read_text()
    figure = report / "data_requirement.png"      # a sweep's are per cell
    assert figure.exists() or any((report / "cells").glob("*/data_requirement.png"))
    return trials


@pytest.mark.slow
@pytest.mark.integration
def test_a_paper_study_runs_end_to_end_with_smoke(paper_ray, data_root, tmp_path):
    """Table 4 in one file: two of its target domains, every row, one verdict row per cell and method."""
    overrides = {"study": {"seeds": [0]}, "sweep": {"train": {"target_domain": ["photo", "sketch"]}}}
    trials = smoke_run(next(p for p in PAPER if p.name == FAST), data_root, tmp_path / "runs", small_images=True,
                       overrides=overrides)
    methods = {"baseline", "baseline_arml", "uniform", "arml", "fada", "fada_arml"}
    assert len(trials) == 12 and set(trials["method"]) == methods
    assert set(zip(trials["target_domain"], trials["method"])) == {(d, m) for d in ("photo", "sketch") for m in methods}
    report = tmp_path / "runs" / "paper_table4_pacs" / "report"
    paired = pd.read_csv(report / "comparisons.csv")
    against = paired[paired["versus"] == "uniform"]
    assert set(zip(against["target_domain"], against["method"])) == {
        (d, m) for d in ("photo", "sketch") for m in methods - {"uniform"}}
    assert "## target_domain = photo" in (report / "results.md").read_text()
    assert (report / "cells" / "target_domain-sketch" / "data_requirement.png").stat().st_size > 0
    weights = pd.read_csv(report / "weights.csv")      # each cell's own source domains
    assert set(weights.loc[weights["target_domain"] == "sketch", "task"]) <= {"photo", "art_painting", "cartoon"}
    assert "sketch" in set(weights.loc[weights["target_domain"] == "photo", "task"])


@pytest.mark.slow
@pytest.mark.integration
def test_the_digits_table4_twin_runs_every_row_with_smoke(paper_ray, data_root, tmp_path):
    trials = smoke_run(next(p for p in DIGITS if p.stem == "digits_table4_dg"), data_root, tmp_path / "runs")
    assert set(trials["method"]) == {"baseline", "baseline_arml", "uniform", "arml", "fada", "fada_arml"}
    report = tmp_path / "runs" / "digits_table4_dg" / "report"
    rows = [line for line in (report / "results.md").read_text().splitlines() if line.startswith("| fada")]
    assert {row.split("|")[1].strip() for row in rows} == {"fada", "fada_arml"}
    assert "fada_arml,5,original," in (report / "weights.csv").read_text()   # ARML reweights the sources


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
@pytest.mark.integration
def test_every_paper_study_runs_end_to_end_with_smoke(paper_ray, data_root, tmp_path, path):
    """The CLI's --smoke at the studies' real image sizes; PACS studies other than FAST with small images
    (117 trials of ResNet-18 at 224 px would take hours on a CPU)."""
    pacs = study(path)["study"]["preset"] == "dg_pacs_paper"
    smoke_run(path, data_root, tmp_path / "runs", small_images=pacs and path.name != FAST)


def test_the_dry_run_of_a_target_domain_sweep_names_each_cells_source_domains(capsys):
    assert main(["run", str(next(p for p in PAPER if p.name == FAST)), "--dry-run", "--address", "127.0.0.1:1"]) == 0
    out = capsys.readouterr().out
    assert "auxiliary tasks per cell: target_domain = art_painting: photo, cartoon, sketch; " in out
    assert "target_domain = sketch: photo, art_painting, cartoon" in out


def test_the_regime_study_plans_every_cell_with_each_methods_defaults():
    from orchestrator.study.plan import make_plan
    from orchestrator.study.spec import load_study

    path = REGIMES[0]
    plan = make_plan(load_study(path))
    assert len(plan.trials) == 840
    cells = {(t.cell["aux_count"], t.cell["steps"]) for t in plan.trials}
    assert cells == {(4, 100), (4, 400), (16, 100), (16, 400)}
    names = study(path)["train"]["aux_attributes"]
    for trial in plan.trials:
        k, steps = trial.cell["aux_count"], trial.cell["steps"]
        assert list(trial.config.aux_attributes) == names[:k] and trial.config.steps == steps
        assert trial.config.diagnostics and trial.budget in (40, 200)
    by_method = {m: [t for t in plan.trials if t.method == m] for m in
                 ("uniform", "arml", "arml_authors", "arml_cheap", "autolambda", "random")}
    assert {m: len(ts) for m, ts in by_method.items()} == {**{m: 40 for m in by_method}, "random": 640}
    jvp = {"directional": "jvp"}   # the default that changed what they compute is written in (their ids changed)
    assert by_method["arml"][0].weighting_options == jvp and by_method["autolambda"][0].weighting_options == jvp
    assert by_method["arml_authors"][0].weighting_options == {"protocol": "authors", **jvp}
    assert by_method["arml_cheap"][0].weighting_options == {"amortize": 10, **jvp}
    assert by_method["uniform"][0].weighting_options == {} and by_method["random"][0].weighting_options == {}


def test_the_minimum_data_study_sweeps_the_validation_labels_with_populations_beside_the_search():
    from orchestrator.study.plan import POPULATION, make_plan
    from orchestrator.study.spec import load_study

    plan = make_plan(load_study(MINIMUM[0]))
    assert len(plan.trials) == 960
    assert {(t.cell["steps"], t.cell["val_labels"]) for t in plan.trials} == {
        (s, v) for s in (100, 400) for v in (20, 40, 270)}
    for trial in plan.trials:
        assert trial.config.val_labels == trial.cell["val_labels"] and trial.budget == 40
        assert len(trial.config.aux_attributes) == 16
    members = [t for t in plan.trials if t.kind == POPULATION]
    assert {t.method: t.population["size"] for t in members} == {"pbt4": 4, "pbt8": 8}
    assert len(members) == 6 * 5 * (4 + 8)
    for trial in members:   # a member checkpoints when its population perturbs: about 5 times a run
        assert trial.config.checkpoint_every == (25 if trial.config.steps == 100 else 75)
