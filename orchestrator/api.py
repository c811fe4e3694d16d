"""Studies from Python (a notebook): `run` a study and get its tables back as DataFrames, `load` a finished
run folder. The same engine as `arml run`; a Ray the caller already started is used and left running.

    import orchestrator
    result = orchestrator.run("quickstart", steps=100, storage="runs/nb")
    result.trials.groupby("method")["test_acc_at_best_val"].mean()
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.store.folder import REPORT_DIR, ReportFiles
from orchestrator.study.catalogue import find_study
from orchestrator.study.overrides import merge, nest

STUDY_KEYS = ("name", "description", "preset", "setting", "dataset", "seeds", "max_trials")


@dataclass
class StudyResult:
    """A study's run folder and its tables: `trials` (one row per trial), `records` (one row per trial per
    evaluation), `comparisons` (the report's paired comparisons, empty when the report has none)."""

    run_dir: Path
    exit_code: int | None = None                  # 0 all finished, 1 some failed; None for `load`
    trials: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    records: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def report_dir(self) -> Path:
        return self.run_dir / REPORT_DIR

    def __repr__(self) -> str:
        counts = self.trials["status"].value_counts().to_dict() if "status" in self.trials else {}
        return (f"StudyResult({str(self.run_dir)!r}: {len(self.trials)} trials {counts}, {len(self.records)} "
                f"records, {len(self.comparisons)} comparisons)")


def load(run_dir: str | os.PathLike, exit_code: int | None = None) -> StudyResult:
    """The tables of a run folder (finished, or still running: then from its live records)."""
    from orchestrator.store.folder import RECORDS_PARQUET, TRIALS_PARQUET, RunFolder
    from orchestrator.store.records import RunRecords
    from orchestrator.store.tables import as_lists, trials_table

    folder = Path(run_dir).resolve()
    RunFolder(folder).require_plan()
    comparisons = folder / REPORT_DIR / ReportFiles.COMPARISONS_CSV
    exported = (folder / TRIALS_PARQUET).exists() and (folder / RECORDS_PARQUET).exists()
    if exported:
        trials, records = pd.read_parquet(folder / TRIALS_PARQUET), pd.read_parquet(folder / RECORDS_PARQUET)
    else:   # a run still going: the live records, with the exported tables' column types
        reading = RunRecords.read(folder)
        trials, records = as_lists(trials_table(reading)), as_lists(reading.frame())
    return StudyResult(run_dir=folder, exit_code=exit_code, trials=trials, records=records,
                       comparisons=pd.read_csv(comparisons) if comparisons.exists() else pd.DataFrame())


def study_overrides(overrides: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as given ("train.steps"); a bare key goes to [study] when it is one of its keys
    (seeds, name, ...), else to [train] (steps, lr, batch_size, ...). Returns a nested dict."""
    flat: dict[str, Any] = {}
    for key, value in {**(overrides or {}), **settings}.items():
        if "." not in key:
            key = f"{'study' if key in STUDY_KEYS else 'train'}.{key}"
        flat[key] = value
    return nest(flat)


def _load(study: str | os.PathLike | dict, overrides: dict[str, Any]) -> Any:
    from orchestrator.study.spec import load_study

    if not isinstance(study, dict):
        return load_study(find_study(study), overrides or None)
    document = merge(study, overrides)
    name = str(document.get("study", {}).get("name", "study"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.toml"
        path.write_text("")   # the study is all in the overrides: validated exactly like a file
        return load_study(path, document)


def run(study: str | os.PathLike | dict, overrides: dict[str, Any] | None = None, *, storage: str | None = None,
        resume: bool = False, smoke: bool = False, address: str | None = None, mlflow_uri: str | None = None,
        data_root: str | None = None, allow_large: bool = False, until_decided: bool = False,
        max_seeds: int | None = None, **settings: Any) -> StudyResult:
    """Runs a study and returns its tables. `study`: a study file, a shipped study's name ("quickstart") or
    a dict shaped like a study file. `overrides` ({"train.steps": 100}) and keyword settings (steps=100,
    seeds=[0]) change it before validation. The other arguments are `arml run`'s options."""
    from orchestrator.run.options import RunOptions
    from orchestrator.run.session import cluster_address
    from orchestrator.store.folder import locate
    from orchestrator.study.plan import build_plan

    plan = build_plan(_load(study, study_overrides(overrides, settings)), allow_large=allow_large,
                      data_root=data_root, smoke_run=smoke)
    options = RunOptions(address=cluster_address(address), storage=storage, mlflow_uri=mlflow_uri, resume=resume,
                         data_root=data_root, until_decided=until_decided, max_seeds=max_seeds)
    code = run_plan(plan, options)
    return load(locate(plan.study.name, storage).run_dir, exit_code=code if isinstance(code, int) else None)


def run_plan(plan: Any, options: Any) -> int:
    """`arml run`: the plan's trials (orchestrator/run), then the report (orchestrator/report; a signal there
    stops the report alone), then the summary; returns the exit code. The one place running and reporting meet."""
    from orchestrator.report.build import report_with_headline
    from orchestrator.run.runner import StudyRun

    with StudyRun(plan, options) as run:
        run.trials()
        ending = run.ending
        report, found = None, []
        if ending.planned:
            ending.export()
            made = ending.stage("report", lambda: report_with_headline(run.run_dir, ending.uri, ending.artifacts()),
                                stopped=f"report: interrupted; write it later with: arml report {run.run_dir}")
            report, found = made if made is not None else (None, [])
        return ending.finish(report, found)
