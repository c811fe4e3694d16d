"""A study's run folder, the one owner of where it is and of every file in it.

`locate(study, storage)` is the only place that turns `--storage` into folders: a local path or a `file://` URI
holds everything (STORAGE/STUDY, symlinks and `..` resolved); any other URI (`s3://`, `gs://`) is where Ray keeps
the trials' checkpoints, while records and reports stay in the local ./runs/STUDY.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import RunFault, UsageError

DEFAULT_STORAGE = "runs"
PLAN_FILE = "plan.json"            # the plan: every trial and what it means (store/schema.py)
STATES_FILE = "trials.json"        # each trial's state
ROWS_FILE = "records.jsonl"        # every evaluation of every trial, appended
WAVES_FILE = "waves.json"          # the waves of trials (planned seeds, then added ones) and their launches
LOCK_FILE = ".arml.lock"           # held while `arml run` works in the folder
STUDY_COPY = "study.toml"          # the study file as it was run
PARENT_FILE = "mlflow_run.json"    # the study's MLflow parent run id
MLFLOW_DB = "mlflow.db"            # the default MLflow store
REPORT_DIR = "report"              # the report's files (orchestrator/report/files.py names them)
RAY_LOG = "ray.log"                # Ray's and Tune's own messages
RECORDS_PARQUET = "records.parquet"   # the exports of records.jsonl and trials.json (store/tables.py)
RECORDS_CSV = "records.csv"
TRIALS_PARQUET = "trials.parquet"
TRIALS_CSV = "trials.csv"
EXPORTS = (RECORDS_PARQUET, RECORDS_CSV, TRIALS_PARQUET, TRIALS_CSV)
MLFLOW_ARTIFACTS = "mlartifacts"   # the default MLflow store's artifacts
JOB_FILE = "ray_job.json"          # the Ray job that runs the study, when it was submitted as one
# inside a trial's checkpoint folder (Ray Tune's): the training state (trainables.checkpoint.FILE) and its cost
CHECKPOINT_STATE = "state.pt"
CHECKPOINT_COST = "cost.json"


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary name beside `path` (same suffix, so writers that go by it still do) that replaces `path` when
    the block ends without an error: a Ctrl-C or a full disk half-way never leaves a cut file under the real name
    (a PNG no image reader opens); the temporary file is removed either way."""
    folder, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    temporary = os.path.join(folder, f".{stem}.{os.getpid()}.tmp{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(temporary)


class ReportFiles:
    """The report's files in RUN_DIR/report/ (written by orchestrator/report; a sweep's per-cell ones in
    report/cells/<cell>/)."""

    RESULTS_MD = "results.md"
    COMPARISONS_CSV, COMPARISONS_MD = "comparisons.csv", "comparisons.md"
    DATA_REQUIREMENT_CSV, DATA_REQUIREMENT_PNG = "data_requirement.csv", "data_requirement.png"
    LABELS_TO_REACH_CSV = "labels_to_reach.csv"
    COMPUTE_COST_CSV, COMPUTE_COST_MD = "compute_cost.csv", "compute_cost.md"
    COST_VS_ACCURACY_CSV, COST_VS_ACCURACY_PNG = "cost_vs_accuracy.csv", "cost_vs_accuracy.png"
    WEIGHTS_CSV, WEIGHTS_PNG = "weights.csv", "weights.png"
    RELATIONSHIPS_MD = "relationships.md"
    DIAGNOSTICS_CSV, DIAGNOSTICS_PNG = "diagnostics.csv", "diagnostics.png"
    DIAGNOSTICS_SUMMARY_CSV, DIAGNOSTICS_SUMMARY_PNG = "diagnostics_summary.csv", "diagnostics_summary.png"
    SWEEP_PNG, REGIME_MAP_PNG = "sweep.png", "regime_map.png"
    SEARCHES_CSV, SEARCHES_MD, SEARCHES_PNG = "searches.csv", "searches.md", "searches.png"
    SEARCHES_VERDICTS_CSV, SEARCHES_BUDGETED_CSV = "searches_verdicts.csv", "searches_budgeted.csv"
    CELLS_DIR = "cells"


class DamagedFile(RunFault):
    """A run folder's JSON file that does not parse (cut by a crash or a full disk, or edited): one line naming it
    and what to do (exit 1)."""


WHAT_TO_DO = {
    PLAN_FILE: "run the study again with --resume (e.g. `arml run {dir}/study.toml --storage {parent} --resume`): "
               "the study file writes it anew",
    STATES_FILE: "the trial states are rebuilt from records.jsonl",
}


@dataclass(frozen=True)
class Location:
    """Where a run goes: `run_dir`, the local run folder; `tune_home`, where Ray keeps its trials (the same
    folder for local storage, STORAGE/STUDY under a remote URI)."""

    run_dir: str
    tune_home: str

    @property
    def remote(self) -> bool:
        return "://" in self.tune_home

    def shown(self) -> str:
        """The run folder as a user reads it: relative to the working folder when inside it."""
        here = os.getcwd()
        inside = os.path.commonpath([here, self.run_dir]) == here
        return os.path.relpath(self.run_dir, here) if inside else self.run_dir


def locate(study: str, storage: str | None) -> Location:
    """The run folder of `study` under `storage` (a path or URI; None: ./runs), and where Ray keeps its trials."""
    base = storage or DEFAULT_STORAGE
    if base.startswith("file://"):          # a local folder written as a URI: everything goes there
        base = base.removeprefix("file://")
    if "://" in base:
        return Location(os.path.realpath(os.path.join(DEFAULT_STORAGE, study)), f"{base.rstrip('/')}/{study}")
    folder = os.path.join(os.path.realpath(base), study)
    return Location(folder, folder)


class RunFolder:
    """The files of one run folder (`path`); reading and writing them goes through here or through the modules
    of this package, which take their names from here."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # ---- the plan ---------------------------------------------------------------------------------
    def has_plan(self) -> bool:
        return os.path.isfile(self.file(PLAN_FILE))

    def require_plan(self) -> None:
        """UsageError naming what to give when this is not a study's run folder."""
        if not self.has_plan():
            raise UsageError(f"{self.path} is not a study's run folder (no {PLAN_FILE}); give the folder `arml "
                             "run` printed, e.g. runs/quickstart")

    def write_json(self, name: str, payload: Any, compact: bool = False) -> None:
        """RUN_DIR/name, replaced atomically (a crash never leaves half a file). `compact`: one line, written by
        json's C encoder (an indented file is encoded in pure Python, 10-30x slower: for trials.json, rewritten
        while a study runs)."""
        os.makedirs(self.path, exist_ok=True)
        path = self.file(name)
        text = json.dumps(payload, default=str, separators=(",", ":")) if compact else \
            json.dumps(payload, indent=1, default=str)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def read_json(self, name: str, default: Any = None) -> Any:
        """RUN_DIR/name parsed, `default` when it does not exist; `DamagedFile` when it does not parse."""
        try:
            with open(self.file(name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return default
        except (ValueError, UnicodeDecodeError) as error:   # JSONDecodeError is a ValueError
            todo = WHAT_TO_DO.get(name, "remove it to start that part afresh").format(
                dir=self.path, parent=os.path.dirname(self.path))
            raise DamagedFile(f"{self.file(name)} is damaged ({type(error).__name__}: {str(error)[:80]}); "
                              f"{todo}") from None

    def damaged(self) -> list[str]:
        """The run folder's JSON files that exist but do not parse (plan.json, trials.json, waves.json)."""
        found = []
        for name in (PLAN_FILE, STATES_FILE, WAVES_FILE):
            try:
                self.read_json(name)
            except DamagedFile:
                found.append(name)
        return found

    def set_aside_if_damaged(self, name: str) -> bool:
        """RUN_DIR/name moved to name.damaged when it does not parse (True then): a resumed run writes it anew."""
        try:
            self.read_json(name)
            return False
        except DamagedFile:
            os.replace(self.file(name), self.file(name + ".damaged"))
            return True

    # ---- waves, the study file --------------------------------------------------------------------
    def waves(self) -> list[dict[str, Any]]:
        """The waves so far; none when waves.json is missing or damaged (its trials then run as one wave)."""
        try:
            return self.read_json(WAVES_FILE, [])
        except DamagedFile:
            return []

    def save_waves(self, waves: list[dict[str, Any]]) -> None:
        self.write_json(WAVES_FILE, waves)

    # ---- the Ray job ------------------------------------------------------------------------------
    def save_job(self, job: dict[str, Any]) -> None:
        """RUN_DIR/ray_job.json: the Ray job that runs this study now (`arml submit`), the earlier ones listed under
        "previous" (a resumed study is a new job)."""
        before = self.job()
        previous = [*before.pop("previous", []), before] if before else []
        self.write_json(JOB_FILE, {**job, "previous": previous})

    def job(self) -> dict[str, Any]:
        """The Ray job recorded by `arml submit` ({} when the study was not submitted as one)."""
        return self.read_json(JOB_FILE, {}) or {}

    def mlflow_parent(self) -> dict[str, Any]:
        """{"parent_run_id", "experiment_id"} of the study's MLflow parent run ({} before one was made, or damaged)."""
        try:
            return self.read_json(PARENT_FILE, {}) or {}
        except DamagedFile:
            return {}

    def keep_study_file(self, source: str) -> None:
        """A copy of the study file (logged on the MLflow parent run): what was asked for."""
        if os.path.isfile(source):
            shutil.copyfile(source, self.file(STUDY_COPY))

    def holds_run(self) -> bool:
        """True when the folder already holds a run of a study (its plan, its records, or Ray Tune's state of an
        old one)."""
        if not os.path.isdir(self.path):
            return False
        names = os.listdir(self.path)
        return PLAN_FILE in names or self.has_records() or "tuner.pkl" in names or any(
            n.startswith("experiment_state") for n in names)

    def has_records(self) -> bool:
        """True when a trial's evaluation or state was ever recorded here (records.jsonl or trials.json)."""
        return any(os.path.isfile(self.file(name)) and os.path.getsize(self.file(name)) > 0
                   for name in (ROWS_FILE, STATES_FILE))

    # ---- the lock ---------------------------------------------------------------------------------
    def lock(self) -> Any:
        """Holds RUN_DIR/.arml.lock for the whole run: a second `arml run` on the folder is refused instead of
        training every trial again. The lock dies with the process (kill -9 included), so --resume always works."""
        import fcntl

        handle = open(self.file(LOCK_FILE), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(f"{self.path} is being run right now by {holder}; wait for it to end (or stop it), "
                             "then run again with --resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"arml run (pid {os.getpid()}, host {socket.gethostname()})\n")
        handle.flush()
        return handle

    def in_use(self) -> str | None:
        """Who runs this folder right now ('arml run (pid N, host H)'), or None when its lock is free."""
        import fcntl

        if not os.path.exists(self.file(LOCK_FILE)):
            return None
        with open(self.file(LOCK_FILE)) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return handle.read().strip() or "another process"
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def prepare(self) -> None:
        """The folder exists and is writable, or a one-line usage error says why not."""
        parent = os.path.dirname(self.path)
        for path in (parent, self.path):
            if os.path.exists(path) and not os.path.isdir(path):
                raise UsageError(f"--storage: {path} is a file, not a folder; give a folder for the run")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--storage: cannot create {self.path} ({error.strerror}); give a folder you can "
                             "write to") from None
        if not os.access(self.path, os.W_OK):
            raise UsageError(f"--storage: {self.path} is not writable (read-only or another user's); give a "
                             "folder you can write to")

    def check_trusted(self, resume: bool = True) -> None:
        """A run into a folder that holds records continues from its checkpoints and records and reports them as
        its results (a resumed one, and a plain one that finds trial states there): refuse a folder another user
        owns or may write to (they could have changed them)."""
        if not os.path.exists(self.path):
            return
        info = os.stat(self.path)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise UsageError(f"refusing to {'resume from' if resume else 'run in'} {self.path}: it is owned by "
                             "another user or writable by others, and a run there continues from the checkpoints "
                             "and records in it and reports them; use only run folders only you can write (chmod "
                             f"go-w {self.path}), or start a fresh run with another --storage")
