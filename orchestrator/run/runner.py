"""`arml run` from start to summary: checks before anything starts, the run folder locked, Ray started or joined,
each wave of trials launched (and, with --until-decided, waves of new seeds while comparisons are open), then the
records exported, the report written and a summary printed with where everything is. Ctrl-C and SIGTERM end it
the same way at any moment, with what was recorded exported."""

from __future__ import annotations

import dataclasses
import os
import time

from orchestrator.errors import RunFault, UsageError
from orchestrator.run import preflight
from orchestrator.run.launch import launch
from orchestrator.run.options import RunOptions
from orchestrator.run.progress import native_stderr_to, quiet_ray
from orchestrator.run.session import RaySession, use_cluster_token
from orchestrator.run.signals import Interrupts
from orchestrator.run.trainable import check_cluster_fits
from orchestrator.run.waves import DEFAULT_MAX_SEEDS, next_seeds, with_saved_seeds, with_seeds
from orchestrator.store.folder import PLAN_FILE, ROWS_FILE, STUDY_COPY, RunFolder, locate
from orchestrator.store.records import export_tables, load_states, trials_table, write_states
from orchestrator.store.schema import ACTIVE, TrialStatus, read_plan, write_plan
from orchestrator.store.tracking import redact, resolve_uri
from orchestrator.study.plan import Plan, map_configs


def run_study(plan: Plan, options: RunOptions) -> int:
    """Runs every trial of `plan`; returns 0 when all finished, 1 when some failed or did not run, 130 after
    Ctrl-C and 143 after SIGTERM (what was recorded is exported first). With `until_decided`, adds seeds in
    waves (records and MLflow shared) while a paired comparison is not decided and fewer than `max_seeds` seeds
    have run."""
    if options.address:
        use_cluster_token()  # before Ray is imported: it reads its authentication mode once
    where = locate(plan.study.name, options.storage)
    plan = map_configs(plan, lambda c: c.replace(data_root=os.path.abspath(c.resolved_data_root())))
    plan = dataclasses.replace(plan, tune_home=where.tune_home)
    folder = RunFolder(where.run_dir)
    folder.prepare()
    lock = folder.lock()
    interrupts = Interrupts()
    interrupts.install()
    try:
        return _run_locked(plan, options, folder, interrupts)
    except OSError as error:   # a full disk, storage gone read-only: say it once, keep what was recorded
        raise RunFault(f"the run stopped on a storage error in {folder.path}: {error.strerror or error} "
                       f"({getattr(error, 'filename', '') or 'writing records'}); records written so far are "
                       "intact: free space or fix the folder, then run again with --resume") from None
    finally:
        lock.close()
        interrupts.uninstall()


def _check_resume(plan: Plan, folder: RunFolder, resume: bool) -> None:
    """A run into a folder that holds one needs --resume; --resume needs one; either way a folder with records
    in it must be trusted (what the run reports comes from them), and --resume may grow the study, not shrink it."""
    recorded = folder.has_records()
    if recorded or folder.has_plan():
        folder.check_trusted(resume)
    started = os.path.isfile(folder.file(ROWS_FILE)) and os.path.getsize(folder.file(ROWS_FILE)) > 0 or any(
        state.get("status") != TrialStatus.PENDING for state in load_states(folder.path).values())
    if (folder.has_plan() or recorded) and not resume and started:
        raise UsageError(f"{folder.path} already holds a run of study {plan.study.name!r}: add --resume to finish "
                         "its unfinished trials, or remove the folder, or pass another --storage")
    if resume and not (folder.has_plan() or recorded):
        raise UsageError(f"nothing to resume at {folder.path}: run the study without --resume first")
    if resume and folder.has_plan():
        saved = read_plan(folder.path)
        gone = {t.trial_id for t in saved.trials} - {t.trial_id for t in plan.trials}
        if gone:
            raise UsageError(f"the study file changed since {folder.path} was started: {len(gone)} of the trials "
                             "it planned are no longer in it; --resume may add trials (an axis value, a method, a "
                             "seed) but not drop any: run the changed study into another --storage instead")


def _run_locked(plan: Plan, options: RunOptions, folder: RunFolder, interrupts: Interrupts) -> int:
    start = time.time()
    run_dir = folder.path
    if options.resume and folder.set_aside_if_damaged(PLAN_FILE):
        print(f"resume: {folder.file(PLAN_FILE)} was damaged (kept as {PLAN_FILE}.damaged); it is written anew "
              "from the study file, with the seeds the records show", flush=True)
    if options.resume:
        plan = with_saved_seeds(plan, run_dir)
    _check_resume(plan, folder, options.resume)
    preflight.check(plan, options.address, options.data_root or plan.study.config.data_root or None)
    if options.until_decided and options.open_questions is None:
        raise UsageError("--until-decided needs the verdicts' open questions (RunOptions.open_questions)")
    uri = resolve_uri(options.mlflow_uri, run_dir)
    log = quiet_ray(run_dir)   # Ray's and Tune's own messages go to RUN_DIR/ray.log, not the terminal
    session = RaySession(options.address)
    end = Ending(plan, run_dir, uri, start, interrupts, options)
    with native_stderr_to(log):
        _run_trials(plan, options, folder, interrupts, session, end)
    return end.finish()


def _run_trials(plan: Plan, options: RunOptions, folder: RunFolder, interrupts: Interrupts, session: RaySession,
                end: Ending) -> None:
    """Ray up, the waves of trials, Ray down: a signal anywhere here ends the trials and lands in `end.finish()`."""
    run_dir, uri = folder.path, end.uri
    try:
        interrupts.pause_point("before_ray")
        session.start()
        interrupts.reclaim()
        session.watch(end.ray_lost)
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
                break
        while options.until_decided and not interrupts.received \
                and not _not_run(run_dir, [t.trial_id for t in plan.trials]):
            extra, open_cells = next_seeds(run_dir, plan, options.max_seeds or DEFAULT_MAX_SEEDS,
                                           options.open_questions)
            if not extra:
                break
            before = {t.trial_id for t in plan.trials}
            plan = with_seeds(plan, [*plan.study.seeds, *extra], open_cells)
            end.plan = plan
            write_plan(run_dir, plan)
            wave = {"name": f"wave{len(waves)}", "seeds": extra,
                    "trials": [t.trial_id for t in plan.trials if t.trial_id not in before]}
            waves.append(wave)
            folder.save_waves(waves)
            where = f" in {len(open_cells)} open cell(s)" if open_cells is not None else ""
            print(f"until decided: wave {len(waves) - 1} adds seeds {', '.join(map(str, extra))}{where} "
                  f"({len(wave['trials'])} trials)", flush=True)
            launch(plan, wave, waves, run_dir, uri, interrupts)
    except KeyboardInterrupt as error:   # a second Ctrl-C, or one outside Tune: stop now, keep what was recorded
        interrupts.received = interrupts.received or getattr(error, "signal_name", "SIGINT")
    finally:
        with interrupts.deferred():   # shutting Ray down is not stopped half-way
            session.stop()
        interrupts.reclaim()          # ray.shutdown() reset SIGTERM below Python


def _not_run(run_dir: str, ids: list[str]) -> list[str]:
    """The trials among `ids` that have not ended (pending, running, interrupted): an interrupted run has some."""
    states = load_states(run_dir)
    return [tid for tid in ids if states.get(tid, {}).get("status", TrialStatus.PENDING) in ACTIVE]


class Ending:
    """How a run ends, whichever way: `finish()` after the trials (the records exported, the report, the MLflow
    runs closed, the summary; a signal defers until the records and runs are safe), or `ray_lost(reason)` from the
    session's watch thread when Ray went away under the run (its local processes killed with the driver's process
    group, the cluster's head lost): the same without Ray and without the report, then the process ends at once
    (Ray's driver would otherwise wait 60 s for its GCS and end with its own line)."""

    def __init__(self, plan: Plan, run_dir: str, uri: str, start: float, interrupts: Interrupts,
                 options: RunOptions) -> None:
        self.plan, self.run_dir, self.uri, self.start = plan, run_dir, uri, start
        self.interrupts, self.options = interrupts, options

    def finish(self) -> int:
        """Exports what was recorded, writes the report (`options.write_report`; a signal there stops only the
        report), closes the MLflow runs and prints the summary; the exit code says how the study ended."""
        interrupts, run_dir = self.interrupts, self.run_dir
        if not RunFolder(run_dir).has_plan():   # stopped before Ray came up: nothing was planned or recorded
            print(f"\nstopped by {interrupts.received or 'SIGINT'} after {time.time() - self.start:.0f} s, before any "
                  "trial started: nothing was recorded", flush=True)
            return interrupts.exit_code
        with interrupts.deferred():
            interrupts.pause_point("export")
            paths = self._export()
        report_dir = None
        try:
            interrupts.pause_point("report")
            if self.options.write_report is not None:
                report_dir = self.options.write_report(run_dir, self.uri,
                                                       (paths["trials.csv"], os.path.join(run_dir, STUDY_COPY)))
        except KeyboardInterrupt as error:
            interrupts.received = interrupts.received or getattr(error, "signal_name", "SIGINT")
            print("report: interrupted; write it later with: arml report " + run_dir, flush=True)
        with interrupts.deferred():
            self._close_runs(report_written=report_dir is not None)
            interrupts.pause_point("summary")
            return self._summary(paths, report_dir)

    def ray_lost(self, reason: str) -> None:
        """Called from the session's watch thread: Ray is gone; save what was recorded and end the process."""
        import sys

        with self.interrupts.recording(timeout=15):   # the driver's thread never writes a record after this
            try:
                paths = self._export()
                self._close_runs(report_written=False)
                code = self._summary(paths, None)
                how = "stopped" if self.interrupts.received else "ended"
                print(f"arml: error: the run {how} because {reason}; the records above are exported. Start Ray "
                      f"again if needed and run the same command with --resume (finished trials are kept); the "
                      f"report: arml report {self.run_dir}", file=sys.stderr, flush=True)
                if not self.interrupts.received:
                    code = 1
            except BaseException as error:  # noqa: BLE001 - the process ends here whatever happened
                print(f"arml: error: Ray went away ({reason}) and saving the records failed: {error}",
                      file=sys.stderr, flush=True)
                code = 1
            sys.stdout.flush()
            os._exit(code)

    def _export(self) -> dict[str, str]:
        _mark_interrupted(self.run_dir)
        return export_tables(self.run_dir)

    def _close_runs(self, report_written: bool) -> None:
        """Every MLflow run's status as the records say (a finished trial FINISHED, whatever an earlier driver
        killed with -9 left); the parent run closed here unless the report closed it."""
        tracker = _tracker(self.run_dir, self.uri, self.plan.study.name)
        states = load_states(self.run_dir)
        tracker.reconcile({tid: s.get("status", TrialStatus.PENDING) for tid, s in states.items()})
        if not report_written:   # as the records say: a signal that stopped only the report stopped no trial
            statuses = {states.get(t.trial_id, {}).get("status", TrialStatus.PENDING)
                        for t in read_plan(self.run_dir).trials}
            tracker.close("interrupted" if statuses & ACTIVE else
                          TrialStatus.FAILED if TrialStatus.FAILED in statuses else TrialStatus.FINISHED)

    def _summary(self, paths: dict[str, str], report_dir: str | None) -> int:
        interrupts, run_dir = self.interrupts, self.run_dir
        table = trials_table(run_dir)
        failed = table[table["status"] == TrialStatus.FAILED]
        not_run = int(table["status"].isin(ACTIVE).sum())
        how = f"stopped by {interrupts.received}" if interrupts.received else "interrupted" if not_run else "finished"
        print(f"\n{how} after {time.time() - self.start:.0f} s: "
              f"{int((table['status'] == 'finished').sum())} finished, "
              f"{int((table['status'] == 'stopped').sum())} stopped early, {len(failed)} failed, {not_run} not run")
        print(f"records: {paths['records.parquet']} (and .csv), trials: {paths['trials.csv']}")
        if report_dir:
            print(f"report:  {report_dir}")
        print(f"MLflow:  mlflow ui --backend-store-uri {self.uri}" if self.uri.startswith("sqlite:///") else
              f"MLflow:  {redact(self.uri)}")
        if len(failed):
            first = failed.iloc[0]
            print(f"{len(failed)} trial(s) failed, e.g. {first['trial_id']} ({first['method']}): {first['error']}")
        if not_run:
            print(f"{not_run} trial(s) did not run to the end; run the same command with --resume to finish them "
                  "(finished trials are kept, interrupted ones continue from their last checkpoint)", flush=True)
        if interrupts.received:
            return interrupts.exit_code
        return 1 if len(failed) or not_run else 0


def _tracker(run_dir: str, uri: str, study: str):  # noqa: ANN202 - orchestrator.store.tracking.Tracker
    from orchestrator.store.tracking import Tracker

    return Tracker(uri, study, run_dir, read_plan(run_dir).trials)


def _mark_interrupted(run_dir: str) -> None:
    """Trials recorded as running when the study ended become interrupted in trials.json (their MLflow runs are
    closed by `Ending._close_runs`); the callback does this itself when Tune stops gracefully."""
    states = load_states(run_dir)
    running = [tid for tid, s in states.items() if s.get("status") in (TrialStatus.RUNNING, TrialStatus.RETRYING)]
    if not running:
        return
    for tid in running:
        states[tid]["status"] = TrialStatus.INTERRUPTED
    write_states(run_dir, states)
