"""How `arml run` was asked to run a plan (handed from the CLI or the API to `orchestrator.run.runner`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunOptions:
    address: str | None = None               # an existing Ray cluster; None starts a local one
    storage: str | None = None               # path or URI shared by all nodes; None -> ./runs
    mlflow_uri: str | None = None            # None -> $MLFLOW_TRACKING_URI, else a sqlite store in the run folder
    resume: bool = False
    smoke: bool = False
    data_root: str | None = None
    until_decided: bool = False              # add seeds in waves while a paired comparison is not decided
    max_seeds: int | None = None             # the cap on seeds with until_decided (None: DEFAULT_MAX_SEEDS)
    # Reporting's two parts in a run, handed in by the CLI and the API (`orchestrator.report.hooks`) so that
    # running never imports reporting: what --until-decided asks the verdicts (run folder -> the comparisons
    # still open), and the report written at the end ((run folder, MLflow URI, artifacts) -> report folder)
    open_questions: Callable[[str], Any] | None = None
    write_report: Callable[[str, str, tuple[str, ...]], str | None] | None = None
