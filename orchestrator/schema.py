"""The typed contract between the orchestrator's pieces: what `plan.json` holds (`PlanFile`, one `TrialMeta` per
trial), the states a trial goes through (`TrialStatus`) and the names of the metrics a trial reports. Written
and read here only; the runner, callback, records, tracking, status and report all use these types."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

PLAN_FILE = "plan.json"


class TrialStatus(StrEnum):
    """A trial's state in trials.json (a str, so it is written and compared as its plain value)."""

    PENDING = "pending"       # planned, not started
    RUNNING = "running"
    RETRYING = "retrying"     # failed once, Tune restarts it from its last checkpoint
    FINISHED = "finished"
    STOPPED = "stopped"       # ended early by a scheduler (ASHA): its results count
    FAILED = "failed"
    INTERRUPTED = "interrupted"   # was running when the study was stopped (Ctrl-C, SIGTERM): --resume continues it


DONE = frozenset({TrialStatus.FINISHED, TrialStatus.STOPPED})        # results that count
ENDED = DONE | {TrialStatus.FAILED}                                    # will not run again
ACTIVE = frozenset({TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.RETRYING,
                    TrialStatus.INTERRUPTED})                          # not ended yet

# What a trial reports at each evaluation (trainables.loop) and what the orchestrator adds
STEP = "step"
VAL_ACC = "val_acc"
TEST_ACC = "test_acc"
BEST_VAL_ACC = "best_val_acc"
TEST_AT_BEST_VAL = "test_acc_at_best_val"   # test accuracy at the best validation step: the selected result
BEST_STEP = "best_step"
COST_COLUMNS = ("wall_s", "cpu_s", "gpu_s")
WEIGHT_PREFIX = "weight/"                   # weight/<aux task>: the auxiliary weights
CHECKPOINT = "checkpoint"                   # a record's checkpoint, relative to the run's Tune storage (resume)


@dataclass(frozen=True)
class TrialMeta:
    """What one planned trial means (never where it runs): its id, method, budget, seed, grid point, config."""

    trial_id: str
    method: str
    weighting: str
    budget_key: str | None
    budget: int | float | None
    seed: int
    grid_point: list[float] | None
    weighting_options: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    sample: int | None = None
    scheduler: dict | None = None
    search: dict | None = None

    @classmethod
    def from_trial(cls, trial: Any) -> TrialMeta:
        """From an `orchestrator.plan.Trial`."""
        return cls(trial.trial_id, trial.method, trial.weighting, trial.budget_key, trial.budget, trial.seed,
                   list(trial.grid_point) if trial.grid_point else None, dict(trial.weighting_options),
                   trial.config.to_dict(), trial.sample, trial.scheduler, trial.search)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialMeta:
        names = cls.__dataclass_fields__
        known = {k: v for k, v in values.items() if k in names}
        known.setdefault("weighting_options", {})
        known.setdefault("config", {})
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanFile:
    """plan.json: the study's description and every planned trial (added seeds of --until-decided included)."""

    study: str
    trials: list[TrialMeta]
    description: str = ""
    setting: str = ""
    dataset: str = ""
    preset: str = ""
    seeds: list[int] = field(default_factory=list)
    aux_names: list[str] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    margin: float = 1.0                     # [report] margin of the paired verdicts, accuracy points
    smoke: bool = False

    @classmethod
    def from_plan(cls, plan: Any) -> PlanFile:
        """From an `orchestrator.plan.Plan`."""
        study = plan.study
        return cls(study=study.name, trials=[TrialMeta.from_trial(t) for t in plan.trials],
                   description=study.description, setting=study.setting, dataset=study.dataset,
                   preset=study.preset, seeds=list(study.seeds), aux_names=list(plan.aux_names),
                   targets=list(study.report.targets), margin=study.report.margin, smoke=plan.smoke)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PlanFile:
        names = cls.__dataclass_fields__
        known = {k: v for k, v in values.items() if k in names and v is not None}
        known["trials"] = [TrialMeta.from_dict(t) for t in values.get("trials", [])]
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def by_id(self) -> dict[str, TrialMeta]:
        return {t.trial_id: t for t in self.trials}


def as_meta(trials: list[TrialMeta | dict[str, Any]]) -> list[TrialMeta]:
    """TrialMeta objects, from themselves or from plan.json's dicts (as read by hand, e.g. in tests)."""
    return [t if isinstance(t, TrialMeta) else TrialMeta.from_dict(t) for t in trials]


def write_plan(run_dir: str, plan: Any) -> PlanFile:
    """Writes RUN_DIR/plan.json for an `orchestrator.plan.Plan` (atomically) and returns what it wrote."""
    os.makedirs(run_dir, exist_ok=True)
    payload = PlanFile.from_plan(plan)
    path = os.path.join(run_dir, PLAN_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(payload.to_dict(), f, indent=1, default=str)
    os.replace(path + ".tmp", path)
    return payload


def read_plan(run_dir: str) -> PlanFile:
    """RUN_DIR/plan.json; FileNotFoundError with what to do when the folder is not a study's run folder."""
    path = os.path.join(run_dir, PLAN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a study's run folder (no {PLAN_FILE}); "
                                "give the folder `arml run` printed, e.g. runs/quickstart")
    with open(path) as f:
        return PlanFile.from_dict(json.load(f))


__all__ = ["ACTIVE", "BEST_VAL_ACC", "CHECKPOINT", "COST_COLUMNS", "DONE", "ENDED", "PLAN_FILE", "PlanFile",
           "TEST_AT_BEST_VAL", "TrialMeta", "TrialStatus", "as_meta", "read_plan", "write_plan"]
