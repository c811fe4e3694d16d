"""The typed contract between the orchestrator's pieces: what `plan.json` holds (`PlanFile`, one
`orchestrator.study.plan.Trial` per trial), the states a trial goes through (`TrialStatus`) and the names of the
metrics a trial reports. Written and read here only; the run, the records, MLflow, status and report use these."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from orchestrator.store.folder import PLAN_FILE, RunFolder
from orchestrator.study.plan import Trial
from orchestrator.study.vocabulary import DEFAULT_MARGIN


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

# What a trial reports at each evaluation (trainables.loop) and what the orchestrator adds: the one place their
# names are written
STEP = "step"
VAL_ACC = "val_acc"
TEST_ACC = "test_acc"
BEST_VAL_ACC = "best_val_acc"
TEST_AT_BEST_VAL = "test_acc_at_best_val"   # test accuracy at the best validation step: the selected result
BEST_STEP = "best_step"
WALL_S, CPU_S, GPU_S = "wall_s", "cpu_s", "gpu_s"
COST_COLUMNS = (WALL_S, CPU_S, GPU_S)       # a trial's cost so far (every report carries it)
WEIGHT_PREFIX = "weight/"                   # weight/<aux task>: the auxiliary weights
CHECKPOINT = "checkpoint"                   # a record's checkpoint, relative to the run's Tune storage (resume)
FATAL = "fatal_error"                       # a report of a trial that failed in a way a retry would repeat
NODE_ID = "node_id"                         # the Ray node a report came from
# plan.json's format: 2 = records have named every checkpoint a trial may continue from since the run began; a run
# folder first written by an older version keeps its lower number (0 when plan.json has none)
PLAN_FORMAT = 2


@dataclass(frozen=True)
class PlanFile:
    """plan.json: the study's description and every planned trial (added seeds of --until-decided included)."""

    study: str
    trials: list[Trial]
    description: str = ""
    setting: str = ""
    dataset: str = ""
    preset: str = ""
    seeds: list[int] = field(default_factory=list)
    aux_names: list[str] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN          # [report] margin of the paired verdicts, accuracy points
    smoke: bool = False
    axes: list[str] = field(default_factory=list)   # the swept keys ([sweep.train]), in file order
    format: int = 0                          # PLAN_FORMAT of the version that first wrote the run folder

    @classmethod
    def from_plan(cls, plan: Any) -> PlanFile:
        """From an `orchestrator.study.plan.Plan`."""
        study = plan.study
        return cls(study=study.name, trials=list(plan.trials), description=study.description,
                   setting=study.setting, dataset=study.dataset, preset=study.preset, seeds=list(study.seeds),
                   aux_names=list(plan.aux_names), targets=list(study.report.targets), margin=study.report.margin,
                   smoke=plan.smoke, axes=[axis.key for axis in study.sweep], format=PLAN_FORMAT)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PlanFile:
        names = cls.__dataclass_fields__
        known = {k: v for k, v in values.items() if k in names and v is not None}
        known["trials"] = [Trial.from_dict(t) for t in values.get("trials", [])]
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["trials"] = [t.to_dict() for t in self.trials]
        return out

    def by_id(self) -> dict[str, Trial]:
        return {t.trial_id: t for t in self.trials}


def write_plan(run_dir: str, plan: Any) -> PlanFile:
    """Writes RUN_DIR/plan.json for an `orchestrator.study.plan.Plan` (atomically) and returns what it wrote; a
    folder an older version began keeps its format number."""
    payload = PlanFile.from_plan(plan)
    folder = RunFolder(run_dir)
    if folder.has_plan():
        payload = replace(payload, format=min(payload.format, int(folder.read_json(PLAN_FILE).get("format", 0))))
    folder.write_json(PLAN_FILE, payload.to_dict())
    return payload


def read_plan(run_dir: str) -> PlanFile:
    """RUN_DIR/plan.json; a UsageError saying what to give when the folder is not a study's run folder."""
    folder = RunFolder(run_dir)
    folder.require_plan()
    return PlanFile.from_dict(folder.read_json(PLAN_FILE))


__all__ = ["ACTIVE", "BEST_STEP", "BEST_VAL_ACC", "CHECKPOINT", "COST_COLUMNS", "CPU_S", "DONE", "ENDED", "FATAL",
           "GPU_S", "NODE_ID", "PlanFile", "STEP", "TEST_ACC", "TEST_AT_BEST_VAL", "Trial", "TrialStatus", "VAL_ACC",
           "WALL_S", "WEIGHT_PREFIX", "read_plan", "write_plan"]
