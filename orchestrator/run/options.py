"""How `arml run` was asked to run a plan (handed from the CLI or the API to `orchestrator.run.runner`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    address: str | None = None               # an existing Ray cluster; None starts a local one
    storage: str | None = None               # path or URI shared by all nodes; None -> ./runs
    mlflow_uri: str | None = None            # None -> $MLFLOW_TRACKING_URI, else a sqlite store in the run folder
    resume: bool = False
    data_root: str | None = None
    until_decided: bool = False              # add seeds in waves while a paired comparison is not decided
    max_seeds: int | None = None             # the cap on seeds with until_decided (None: DEFAULT_MAX_SEEDS)
