"""MLflow records of a study, written from the driver only (one writer, so a sqlite store is safe): one
parent run per study, one child run per trial with params, metrics per evaluation, auxiliary weights and
compute cost. A tracking server that cannot be reached never stops the study: logging turns itself off,
says so once, and `arml report RUN_DIR --log-mlflow` logs the records later."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

FINISHED = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}


def default_uri(run_dir: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(run_dir, "mlflow.db"))


def resolve_uri(flag: str | None, run_dir: str) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else a sqlite store in the run folder."""
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(run_dir)


def redact(uri: str) -> str:
    """The URI without user:password@ (credentials never reach logs or reports)."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def git_revision() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fails at once (instead of after MLflow's minutes of retries) when a tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        bare = re.sub(r"//[^/@]*@", "//", uri.rstrip("/"))  # credentials go to MLflow, not to this probe
        urllib.request.urlopen(bare + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered (perhaps 401/404): let MLflow itself handle authentication
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConnectionError(f"cannot reach the tracking server ({reason})") from None


class Tracker:
    """MLflow parent/child runs for one run folder; every call is safe to make when MLflow is down."""

    def __init__(self, uri: str, study: str, run_dir: str, plan_meta: list[dict[str, Any]],
                 say=print) -> None:
        self.uri, self.study, self.run_dir, self.say = uri, study, os.path.abspath(run_dir), say
        self.meta = {m["trial_id"]: m for m in plan_meta}
        self.enabled, self.error = True, ""
        self.children: dict[str, str] = {}
        self.logged_step: dict[str, float] = {}   # a resumed trial re-reports steps MLflow already has
        self.parent = ""
        self._guard(self._start)

    # ---- safety ---------------------------------------------------------------------------------
    def _guard(self, fn, *args: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return fn(*args)
        except Exception as error:  # noqa: BLE001 - any MLflow/network failure must not stop the study
            self.enabled = False
            self.error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            self.say(f"MLflow logging failed ({redact(self.uri)}: {self.error}); the study goes on and its records "
                     f"are complete in {self.run_dir}. Log them later with: arml report {self.run_dir} --log-mlflow")
            return None

    # ---- runs -----------------------------------------------------------------------------------
    def _start(self) -> None:
        _probe(self.uri)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)  # never mlflow.set_tracking_uri: it changes the env
        experiment = self.client.get_experiment_by_name(self.study)
        self.experiment_id = (experiment.experiment_id if experiment is not None
                              else self.client.create_experiment(self.study))
        found = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.arml_role = 'study' and tags.arml_run_dir = '{self.run_dir}'"), max_results=1)
        if found:
            self.parent = found[0].info.run_id
            self.client.update_run(self.parent, status="RUNNING")
            for run in self.client.search_runs([self.experiment_id], filter_string=(
                    f"tags.mlflow.parentRunId = '{self.parent}'"), max_results=50000):
                self.children[run.data.tags.get("trial_id", "")] = run.info.run_id
                self.logged_step[run.data.tags.get("trial_id", "")] = run.data.metrics.get("step", -1.0)
        else:
            self.parent = self.client.create_run(self.experiment_id, run_name=self.study, tags={
                "arml_role": "study", "arml_run_dir": self.run_dir, "study": self.study,
                "git_revision": git_revision()}).info.run_id

    def child(self, trial_id: str) -> str | None:
        return self._guard(self._child, trial_id)

    def _child(self, trial_id: str) -> str:
        if trial_id in self.children:
            self.client.update_run(self.children[trial_id], status="RUNNING")
            return self.children[trial_id]
        from mlflow.entities import Param

        meta = self.meta[trial_id]
        budget = "" if meta["budget"] is None else str(meta["budget"])
        run = self.client.create_run(self.experiment_id, run_name=f"{meta['method']}-{budget or 'all'}-s{meta['seed']}",
                                     tags={"mlflow.parentRunId": self.parent, "arml_role": "trial",
                                           "study": self.study, "trial_id": trial_id, "method": meta["method"],
                                           "weighting": meta["weighting"], "budget": budget,
                                           "seed": str(meta["seed"]), "git_revision": git_revision()})
        params = {f"config.{k}": v for k, v in meta["config"].items()}
        params.update(method=meta["method"], weighting=meta["weighting"], budget=budget, seed=meta["seed"],
                      grid_point=meta["grid_point"] or "")
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run.info.run_id, params=items[start:start + 100])
        self.children[trial_id] = run.info.run_id
        return run.info.run_id

    def log(self, trial_id: str, row: dict[str, Any]) -> None:
        self._guard(self._log, trial_id, row)

    def _log(self, trial_id: str, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run_id = self.children.get(trial_id) or self._child(trial_id)
        step = int(row.get("step", 0) or 0)
        if step <= self.logged_step.get(trial_id, -1.0):
            return
        self.logged_step[trial_id] = step
        stamp = int(row.get("time", time.time()) * 1000)
        metrics = [Metric(k, float(v), stamp, step) for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("time", "seed", "budget")
                   and v == v]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def finish(self, trial_id: str, status: str) -> None:
        self._guard(self._finish, trial_id, status)

    def _finish(self, trial_id: str, status: str) -> None:
        run_id = self.children.get(trial_id) or self._child(trial_id)
        self.client.set_terminated(run_id, status=FINISHED.get(status, "FAILED"))

    def close(self, status: str, artifacts: list[str] = ()) -> None:
        self._guard(self._close, status, list(artifacts))

    def _close(self, status: str, artifacts: list[str]) -> None:
        for path in artifacts:
            if os.path.isdir(path):
                self.client.log_artifacts(self.parent, path, artifact_path=os.path.basename(path))
            elif os.path.exists(path):
                self.client.log_artifact(self.parent, path)
        self.client.set_terminated(self.parent, status=FINISHED.get(status, "FAILED"))
