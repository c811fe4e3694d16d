"""How a run ends, whichever way it ends: the records exported (a signal waits until they are), an interruptible
step after the trials (the report, given by the caller), every MLflow run's status as the records say, and the
summary with the exit code; or, when Ray goes away under the run, the same without Ray at once (`ray_lost`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from orchestrator.run.signals import Interrupts
from orchestrator.store.folder import RECORDS_PARQUET, STUDY_COPY, TRIALS_CSV, RunFolder
from orchestrator.store.records import RunRecords, write_states
from orchestrator.store.schema import ACTIVE, TrialStatus
from orchestrator.store.tables import export_tables, trials_table
from orchestrator.store.tracking import redact, run_link

T = TypeVar("T")


class Ending:
    """The end of one run in `run_dir` (MLflow at `uri`, started at `start`, its signals in `interrupts`)."""

    def __init__(self, study: str, run_dir: str, uri: str, start: float, interrupts: Interrupts) -> None:
        self.study, self.run_dir, self.uri, self.start, self.interrupts = study, run_dir, uri, start, interrupts
        self.paths: dict[str, str] = {}

    @property
    def planned(self) -> bool:
        """Whether the run got as far as planning its trials (a stop before Ray came up records nothing)."""
        return RunFolder(self.run_dir).has_plan()

    def artifacts(self) -> tuple[str, ...]:
        """What the study's MLflow parent run keeps besides the report: trials.csv and the study file."""
        return (self.paths[TRIALS_CSV], RunFolder(self.run_dir).file(STUDY_COPY))

    def export(self) -> None:
        """Trials still marked running become interrupted, and the records are exported; a signal waits."""
        with self.interrupts.deferred():
            self.interrupts.pause_point("export")
            self._export()

    def stage(self, phase: str, work: Callable[[], T], stopped: str) -> T | None:
        """Runs `work` (the report) so that a signal stops it alone: the run ends as usual, `stopped` is said."""
        try:
            self.interrupts.pause_point(phase)
            return work()
        except KeyboardInterrupt as error:
            self.interrupts.received = self.interrupts.received or getattr(error, "signal_name", "SIGINT")
            print(stopped, flush=True)
            return None

    def finish(self, report_dir: str | None = None, found: list[str] = ()) -> int:
        """The MLflow runs closed as the records say (the parent by the report when `report_dir`), the summary
        printed, then `found` (the headline's lines: what the study found) and the link to its MLflow run; the exit
        code says how the study ended."""
        interrupts = self.interrupts
        if not self.planned:
            print(f"\nstopped by {interrupts.received or 'SIGINT'} after {time.time() - self.start:.0f} s, before any "
                  "trial started: nothing was recorded", flush=True)
            return interrupts.exit_code
        if not self.paths:
            self.export()
        with interrupts.deferred():
            self._close_runs(report_written=report_dir is not None)
            interrupts.pause_point("summary")
            return self._summary(report_dir, found)

    def ray_lost(self, reason: str) -> None:
        """Called from the session's watch thread: Ray is gone; save what was recorded and end the process (Ray's
        driver would otherwise wait 60 s for its head and end with its own line)."""
        with self.interrupts.recording(timeout=15):   # the driver's thread never writes a record after this
            try:
                self._export()
                self._close_runs(report_written=False)
                code = self._summary(None)
                how = "stopped" if self.interrupts.received else "ended"
                print(f"arml: error: the run {how} because {reason}; the records above are exported. Start Ray "
                      f"again if needed and {_again()} with --resume (finished trials are kept); the "
                      f"report: arml report {self.run_dir}", file=sys.stderr, flush=True)
                if not self.interrupts.received:
                    code = 1
            except BaseException as error:  # noqa: BLE001 - the process ends here whatever happened
                print(f"arml: error: Ray went away ({reason}) and saving the records failed: {error}",
                      file=sys.stderr, flush=True)
                code = 1
            sys.stdout.flush()
            os._exit(code)

    def _export(self) -> None:
        records = RunRecords.read(self.run_dir)
        states = records.states()
        running = [tid for tid, s in states.items() if s.get("status") in (TrialStatus.RUNNING, TrialStatus.RETRYING)]
        if running:   # recorded as running when the study ended (the callback does this when Tune stops gracefully)
            for tid in running:
                records.raw_states[tid] = {**records.raw_states.get(tid, {}), "status": TrialStatus.INTERRUPTED}
            write_states(self.run_dir, records.raw_states)
        self.paths = export_tables(self.run_dir, records)

    def _close_runs(self, report_written: bool) -> None:
        """Every MLflow run's status as the records say (a finished trial FINISHED, whatever an earlier driver
        killed with -9 left); the parent run closed here unless the report closed it."""
        from orchestrator.store.tracking import Tracker

        records = RunRecords.read(self.run_dir)
        states = records.states()
        tracker = Tracker(self.uri, self.study, self.run_dir, records.plan.trials)
        tracker.reconcile({tid: s.get("status", TrialStatus.PENDING) for tid, s in states.items()})
        if not report_written:   # as the records say: a signal that stopped only the report stopped no trial
            statuses = {states.get(t.trial_id, {}).get("status", TrialStatus.PENDING) for t in records.plan.trials}
            tracker.close("interrupted" if statuses & ACTIVE else
                          TrialStatus.FAILED if TrialStatus.FAILED in statuses else TrialStatus.FINISHED)

    def _summary(self, report_dir: str | None, found: list[str] = ()) -> int:
        interrupts = self.interrupts
        table = trials_table(self.run_dir)
        failed = table[table["status"] == TrialStatus.FAILED]
        not_run = int(table["status"].isin(ACTIVE).sum())
        how = f"stopped by {interrupts.received}" if interrupts.received else "interrupted" if not_run else "finished"
        print(f"\n{how} after {time.time() - self.start:.0f} s: "
              f"{int((table['status'] == TrialStatus.FINISHED).sum())} finished, "
              f"{int((table['status'] == TrialStatus.STOPPED).sum())} stopped early, {len(failed)} failed, "
              f"{not_run} not run")
        print(f"records: {self.paths[RECORDS_PARQUET]} (and .csv), trials: {self.paths[TRIALS_CSV]}")
        if report_dir:
            print(f"report:  {report_dir}")
        if len(failed):
            first = failed.iloc[0]
            print(f"{len(failed)} trial(s) failed, e.g. {first['trial_id']} ({first['method']}): {first['error']}")
        if not_run:
            print(f"{not_run} trial(s) did not run to the end; {_again()} with --resume to finish them "
                  "(finished trials are kept, interrupted ones continue from their last checkpoint)")
        if found:   # what the study found, then where to see it
            print("\n" + "\n".join(found))
        print(f"MLflow:  mlflow ui --backend-store-uri {self.uri}" if self.uri.startswith("sqlite:///") else
              f"MLflow:  {redact(self.uri)}")
        parent = RunFolder(self.run_dir).mlflow_parent()
        link = run_link(self.uri, parent.get("experiment_id", ""), parent.get("parent_run_id", ""))
        if link:
            print(f"         the study's run: {link}")
        sys.stdout.flush()
        if interrupts.received:
            return interrupts.exit_code
        return 1 if len(failed) or not_run else 0


def _again() -> str:
    """How to continue: the same command, or inside a Ray job (`arml submit`) the same submission."""
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):   # set by Ray for a job's driver
        return "submit the study again (arml submit STUDY ... --address JOB_SERVER)"
    return "run the same command"
