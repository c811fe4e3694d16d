"""`arml run` from start to summary: checks before anything starts, the run folder locked, Ray started or joined,
each wave of trials launched (and, with --until-decided, waves of new seeds while comparisons are open), then the
records exported and the run ended (orchestrator/run/ending.py). Ctrl-C and SIGTERM end it the same way at any
moment, with what was recorded exported.

`StudyRun` is one run as a context (the folder locked, the signals taken over); `run_study` runs a plan with it from
start to summary. What comes between the trials and the summary (the report) is the caller's: `arml run` and
`orchestrator.run` (orchestrator/api.py) put it there with `StudyRun.stage`, so running never imports reporting.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import arml
from orchestrator.errors import RunFault, UsageError
from orchestrator.run import preflight
from orchestrator.run.ending import Ending
from orchestrator.run.launch import launch
from orchestrator.run.options import RunOptions
from orchestrator.run.progress import native_stderr_to, quiet_ray
from orchestrator.run.session import RaySession, use_cluster_token
from orchestrator.run.signals import Interrupts
from orchestrator.run.trial_worker import check_cluster_fits
from orchestrator.run.waves import DEFAULT_MAX_SEEDS, next_seeds, with_saved_seeds, with_seeds
from orchestrator.store.folder import PLAN_FILE, RunFolder, locate
from orchestrator.store.records import RunRecords
from orchestrator.store.schema import ACTIVE, TrialStatus, read_plan, write_plan
from orchestrator.store.tracking import redact, resolve_uri
from orchestrator.study.plan import Plan, map_configs


def run_study(plan: Plan, options: RunOptions) -> int:
    """Runs every trial of `plan` (no report); returns 0 when all finished, 1 when some failed or did not run, 130
    after Ctrl-C and 143 after SIGTERM (what was recorded is exported first). With `until_decided`, adds seeds in
    waves (records and MLflow shared) while a paired comparison is not decided and fewer than `max_seeds` seeds
    have run."""
    with StudyRun(plan, options) as run:
        run.trials()
        return run.ending.finish()


class StudyRun:
    """One `arml run` of `plan` in its run folder: entered, the folder is locked and Ctrl-C/SIGTERM are the run's;
    `trials()` runs them, `ending` ends the run (`stage` for a step before the summary, `finish`). A storage fault
    (a full disk, a folder gone read-only) anywhere inside is one line (RunFault), what was recorded intact."""

    def __init__(self, plan: Plan, options: RunOptions) -> None:
        if options.address:
            use_cluster_token()  # before Ray is imported: it reads its authentication mode once
        where = locate(plan.study.name, options.storage)
        plan = map_configs(plan, lambda c: c.replace(data_root=os.path.abspath(c.resolved_data_root())))
        self.plan = dataclasses.replace(plan, tune_home=where.tune_home)
        self.options = options
        self.folder = RunFolder(where.run_dir)
        self.interrupts = Interrupts()
        self.start = time.time()
        self._lock: Any = None
        self.ending = Ending(plan.study.name, self.folder.path, "", self.start, self.interrupts)

    @property
    def run_dir(self) -> str:
        return self.folder.path

    def __enter__(self) -> StudyRun:
        self.folder.prepare()
        self._lock = self.folder.lock()
        self.interrupts.install()
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self._lock.close()
        self.interrupts.uninstall()
        if isinstance(error, OSError):   # a full disk, storage gone read-only: say it once, keep what was recorded
            raise RunFault(f"the run stopped on a storage error in {self.run_dir}: {error.strerror or error} "
                           f"({getattr(error, 'filename', '') or 'writing records'}); records written so far are "
                           "intact: free space or fix the folder, then run again with --resume") from None

    def trials(self) -> None:
        """The checks, then Ray up, every wave of trials (and --until-decided's), Ray down: a signal anywhere here
        ends the trials, and the run goes on to its end."""
        plan, options, folder, interrupts = self.plan, self.options, self.folder, self.interrupts
        if options.resume and folder.set_aside_if_damaged(PLAN_FILE):
            print(f"resume: {folder.file(PLAN_FILE)} was damaged (kept as {PLAN_FILE}.damaged); it is written anew "
                  "from the study file, with the seeds the records show", flush=True)
        if options.resume:
            plan = with_saved_seeds(plan, self.run_dir)
        _check_resume(plan, folder, options.resume)
        preflight.check(plan, options.address, options.data_root or plan.study.config.data_root or None)
        self.ending.uri = uri = resolve_uri(options.mlflow_uri, self.run_dir)
        log = quiet_ray(self.run_dir)   # Ray's and Tune's own messages go to RUN_DIR/ray.log, not the terminal
        session = RaySession(options.address)
        with native_stderr_to(log):
            try:
                interrupts.pause_point("before_ray")
                session.start()
                interrupts.reclaim()
                session.watch(self.ending.ray_lost)
                self.plan = self._waves(plan, session, uri)
            except KeyboardInterrupt as error:   # a second Ctrl-C, or one outside Tune: stop now, keep the records
                interrupts.received = interrupts.received or getattr(error, "signal_name", "SIGINT")
            finally:
                with interrupts.deferred():   # shutting Ray down is not stopped half-way
                    session.stop()
                interrupts.reclaim()          # ray.shutdown() reset SIGTERM below Python

    def _waves(self, plan: Plan, session: RaySession, uri: str) -> Plan:
        options, folder, interrupts, run_dir = self.options, self.folder, self.interrupts, self.run_dir
        check_cluster_fits(dataclasses.asdict(plan.study.resources), study=str(plan.study.path))
        write_plan(run_dir, plan)
        folder.keep_study_file(str(plan.study.path))
        print(f"study {plan.study.name}: {len(plan)} trials -> {run_dir}  (MLflow: {redact(uri)})", flush=True)
        waves = folder.waves() if options.resume else []
        if not waves:
            waves = [{"name": "seeds", "trials": [t.trial_id for t in plan.trials]}]
            folder.save_waves(waves)
        known = {tid for wave in waves for tid in wave["trials"]}
        grown = [t.trial_id for t in plan.trials if t.trial_id not in known]
        if grown:   # the study grew since (an axis value, a method, a seed): its new trials join the first wave
            waves[0]["trials"] = [*waves[0]["trials"], *grown]
            folder.save_waves(waves)
            print(f"resume: {len(grown)} trials added to the study since it ran are planned too", flush=True)
        for wave in waves:
            launch(plan, wave, waves, run_dir, uri, interrupts)
            if interrupts.received:
                return plan
        while options.until_decided and not interrupts.received \
                and not _not_run(run_dir, [t.trial_id for t in plan.trials]):
            following = next_seeds(run_dir, plan, options.max_seeds or DEFAULT_MAX_SEEDS)
            if following is None:
                break
            extra, open_cells = following
            before = {t.trial_id for t in plan.trials}
            plan = with_seeds(plan, [*plan.study.seeds, *extra], open_cells)
            added = [t for t in plan.trials if t.trial_id not in before]
            if not added:
                break
            write_plan(run_dir, plan)
            extra = sorted({t.seed for t in added})    # with a cell catching up, more than the study's new seeds
            wave = {"name": f"wave{len(waves)}", "seeds": extra, "trials": [t.trial_id for t in added]}
            waves.append(wave)
            folder.save_waves(waves)
            where = f" in {len(open_cells)} open cell(s)" if open_cells is not None else ""
            print(f"until decided: wave {len(waves) - 1} adds seeds {', '.join(map(str, extra))}{where} "
                  f"({len(wave['trials'])} trials)", flush=True)
            launch(plan, wave, waves, run_dir, uri, interrupts)
        return plan


def _check_resume(plan: Plan, folder: RunFolder, resume: bool) -> None:
    """A run into a folder that holds one needs --resume; --resume needs one; either way a folder with records
    in it must be trusted (what the run reports comes from them), and --resume may grow the study, not shrink it."""
    recorded = folder.has_records()
    if recorded or folder.has_plan():
        folder.check_trusted(resume)
    records = RunRecords.read(folder.path)
    started = bool(records.rows) or any(state.get("status") != TrialStatus.PENDING
                                        for state in records.states().values())
    if (folder.has_plan() or recorded) and not resume and started:
        raise UsageError(f"{folder.path} already holds a run of study {plan.study.name!r}: add --resume to finish "
                         "its unfinished trials, or remove the folder, or pass another --storage")
    if resume and not (folder.has_plan() or recorded):
        raise UsageError(f"nothing to resume at {folder.path}: run the study without --resume first")
    if resume and folder.has_plan():
        saved = read_plan(folder.path)
        gone = {t.trial_id for t in saved.trials} - {t.trial_id for t in plan.trials}
        if gone:
            former = sorted({t.method for t in saved.trials if t.trial_id in gone
                             and "directional" not in t.weighting_options
                             and "directional" in _recorded_defaults(t.weighting)})
            hint = (f"; {len(gone)} of them were planned before the auxiliary-task gradient became exact: to finish "
                    f"them as they were started, add directional = \"central\" to [methods.{former[0]}]"
                    + (" (and " + ", ".join(f"[methods.{m}]" for m in former[1:]) + ")" if len(former) > 1 else "")
                    + " in the study file") if former else ""
            raise UsageError(f"the study file changed since {folder.path} was started: {len(gone)} of the trials "
                             "it planned are no longer in it; --resume may add trials (an axis value, a method, a "
                             "seed) but not drop any: run the changed study into another --storage instead" + hint)


def _recorded_defaults(weighting: str) -> dict:
    """The options whose default changed what a weighting computes (written into every new trial's options)."""
    try:
        return getattr(arml.WEIGHTINGS.get(weighting), "recorded_defaults", {})
    except Exception:   # a weighting no longer registered: nothing to suggest
        return {}


def _not_run(run_dir: str, ids: list[str]) -> list[str]:
    """The trials among `ids` that have not ended (pending, running, interrupted): an interrupted run has some."""
    states = RunRecords.read(run_dir).states()
    return [tid for tid in ids if states.get(tid, {}).get("status", TrialStatus.PENDING) in ACTIVE]
