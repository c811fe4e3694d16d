"""MLflow records of a study, written from the driver only (one writer, so a sqlite store is safe): one
parent run per study, one child run per trial with params, metrics per evaluation, auxiliary weights and
compute cost. A tracking server that cannot be reached never stops the study: logging turns itself off,
says so once, and `arml report RUN_DIR --log-mlflow` logs the records later."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import subprocess
import time
from typing import Any

from orchestrator.store.folder import MLFLOW_ARTIFACTS, MLFLOW_DB, PARENT_FILE, RunFolder
from orchestrator.store.schema import STEP, Trial, TrialStatus

FINISHED = {TrialStatus.FINISHED: "FINISHED", TrialStatus.FAILED: "FAILED", TrialStatus.STOPPED: "KILLED",
            "interrupted": "KILLED"}   # our trial or study status -> MLflow's run status
# MLflow's HTTP client retries for minutes by default; a study must not freeze on a dead server
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def default_uri(run_dir: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(run_dir, MLFLOW_DB))


def resolve_uri(flag: str | None, run_dir: str) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else a sqlite store in the run folder; credentials written in
    the URI (http://user:password@host) move to MLflow's environment variables and leave the URI."""
    return take_credentials(flag or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(run_dir))


# a URI inside a longer text (an error message): a scheme, "://", then everything up to a space, a double quote,
# <, > or a backquote (a password may hold an unencoded ', so a single quote does not end it)
URI_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s\"<>`]*)")
SECRETS: set[str] = set()   # passwords taken from URIs in this process, hidden wherever they appear


HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:\d*)?")   # what an authority's host part starts with


def split_user_info(rest: str) -> tuple[str | None, str]:
    """`user:pw@host/path` (a URI after its "://") -> (`user:pw`, `host/path`); (None, rest) without user-info.

    As a user types it, not as a URI parser reads it: the user-info runs to the last `@` that is followed by a
    host (name or [IPv6], optional port), so a password may hold `/`, `:`,
    `@`, `#` or `?` unencoded (a parser would end the authority at the `#`). Text before such an `@` that holds
    `/`, `?` or `#` is user-info only with a `:` in it (user:password); an empty authority (`file:///a@b`,
    `sqlite:///x@y.db`) has none."""
    if rest.startswith("/"):
        return None, rest
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) > 0:
        user_info, host = rest[:at], rest[at + 1:]
        if HOST.match(host) and (
                ":" in user_info or not re.search(r"[/?#]", user_info)):
            return user_info, host
    return None, rest


def take_credentials(uri: str) -> str:
    """`http://user:pw@host` -> `http://host`, with MLFLOW_TRACKING_USERNAME/PASSWORD set from it (unless set;
    %-escapes decoded). Only http(s) URIs: a database URI (postgresql://user:pw@host/db) keeps its credentials,
    which its driver needs, and other URIs are returned unchanged."""
    from urllib.parse import unquote

    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return uri
    user_info, host = split_user_info(rest)
    if user_info is None:
        return uri
    user, _, password = user_info.partition(":")
    if user:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(user))
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(password))
        SECRETS.update({password, unquote(password)})
    return f"{scheme}://{host}"


def redact(text: str) -> str:
    """`text` with the user-info of every URI in it replaced by *** (`http://***@host`), and the tracking
    password (or token, and any password taken from a URI) replaced wherever else it appears."""
    from urllib.parse import quote, unquote

    secrets = set(SECRETS)

    def hide(match: re.Match) -> str:
        user_info, host = split_user_info(match.group(2))
        if user_info is None:
            return match.group(0)
        password = user_info.partition(":")[2]
        secrets.update({password, unquote(password)})
        return f"{match.group(1)}***@{host}"

    text = URI_IN_TEXT.sub(hide, str(text))
    for name in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        if os.environ.get(name):
            secrets.add(os.environ[name])
    for secret in sorted(secrets | {quote(s, safe="") for s in secrets}, key=len, reverse=True):
        if len(secret) >= 3:   # a one- or two-character secret would blank out ordinary words
            text = text.replace(secret, "***")
    return text


def trial_run_name(meta: Trial) -> str:
    """'arml 20 s1', 'grid 20 s0 w=[0,1,0]', 'tpe 20 s2 #5', 'arml 40 s0 steps=100': unique within a study
    (method, budget, seed, sweep cell and grid point or search sample), readable in the MLflow UI."""
    budget = "" if meta.budget is None else f" {meta.budget:g}" if isinstance(meta.budget, float) \
        else f" {meta.budget}"
    name = f"{meta.method}{budget} s{meta.seed}"
    if meta.cell:   # a sweep's trials: the cell's values too (unique within the study)
        name += " " + " ".join(f"{key}={value}" for key, value in meta.cell.items())
    if meta.grid_point:
        name += " w=[" + ",".join(f"{float(w):g}" for w in meta.grid_point) + "]"
    elif meta.sample is not None:
        name += f" #{meta.sample}"
    return name


MLFLOW_LOGGERS = ("mlflow", "alembic", "sqlalchemy")


def _cause(error: BaseException) -> str:
    """'MlflowException: unable to open database file': the error's name with the first line of its deepest cause
    (MLflow wraps SQLAlchemy's error, which wraps the database driver's, the one that says what went wrong)."""
    root, seen = error, {id(error)}
    while (inner := root.__cause__ or root.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        root = inner
    lines = [line for line in str(root).splitlines() if line.strip()] or [str(error) or type(root).__name__]
    return f"{type(error).__name__}: {lines[0].strip()[:200]}"


def quiet_mlflow() -> None:
    """MLflow, SQLAlchemy and Alembic log their own tracebacks when a store fails (a folder gone read-only) and
    INFO lines when a store is created: kept out of the terminal, where the run says in one line what went wrong
    (`Tracker._guard`). After MLflow's import, which sets its loggers up from $MLFLOW_LOGGING_LEVEL."""
    import logging

    import mlflow  # noqa: F401 - configures its loggers on import: quieted after that

    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.propagate = False
        logger.setLevel(logging.CRITICAL)


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """The project's commit, asked of git once per process (a subprocess per trial costs the driver a fork)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fails at once (instead of after MLflow's retries) when a tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered (perhaps 401/404): let MLflow itself handle authentication
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConnectionError(f"cannot reach the tracking server ({reason})") from None


def _local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


class Tracker:
    """MLflow parent/child runs for one run folder; every call is safe to make when MLflow is down."""

    def __init__(self, uri: str, study: str, run_dir: str, plan_meta: list[Trial],
                 say=print, reopen: bool = False) -> None:
        """`reopen`: the study runs again (the driver of a resumed run): its parent run is RUNNING again. Anyone
        else (the report, the end of a run) logs without changing a status it does not mean to."""
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        quiet_mlflow()
        uri = take_credentials(uri)
        self.uri, self.study, self.run_dir, self.say = uri, study, os.path.abspath(run_dir), say
        self.meta = {m.trial_id: m for m in plan_meta}
        self.enabled, self.error = True, ""
        self.children: dict[str, str] = {}
        self.statuses: dict[str, str] = {}        # each child run's MLflow status, as this tracker knows it
        self.logged_step: dict[str, float] = {}   # a resumed trial re-reports steps MLflow already has
        self.parent = ""
        self.reopen = reopen
        self._guard(self._start)

    # ---- safety ---------------------------------------------------------------------------------
    def _guard(self, fn, *args: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return fn(*args)
        except Exception as error:  # noqa: BLE001 - any MLflow/network failure must not stop the study
            self.enabled = False
            self.error = redact(_cause(error))
            self.say(f"MLflow logging failed ({redact(self.uri)}: {self.error}); the study goes on and its records "
                     f"are complete in {self.run_dir}. Log them later with: arml report {self.run_dir} --log-mlflow")
            return None

    # ---- runs -----------------------------------------------------------------------------------
    def _start(self) -> None:
        _probe(self.uri)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)  # never mlflow.set_tracking_uri: it changes the env
        self.experiment_id = self._experiment()
        parent = self._saved_parent() or self._parent_by_tag()
        if parent:
            self.parent = parent
            if self.reopen:
                self.client.update_run(self.parent, status="RUNNING")
            for run in self.client.search_runs([self.experiment_id], filter_string=(
                    f"tags.mlflow.parentRunId = '{self.parent}'"), max_results=50000):
                trial_id = run.data.tags.get("trial_id", "")
                self.children[trial_id] = run.info.run_id
                self.statuses[trial_id] = run.info.status
                self.logged_step[trial_id] = run.data.metrics.get(STEP, -1.0)
        else:
            self.parent = self.client.create_run(self.experiment_id, run_name=self.study, tags={
                "arml_role": "study", "arml_run_dir": self.run_dir, "study": self.study,
                "git_revision": git_revision()}).info.run_id
        self._save_parent()

    def _experiment(self) -> str:
        """The study's experiment, opened in MLflow 3's model-training view; with a local store its artifacts
        go under the run folder (mlartifacts/), never to ./mlruns of the working folder."""
        experiment = self.client.get_experiment_by_name(self.study)
        if experiment is None:
            location = None
            if _local_store(self.uri):
                location = "file://" + os.path.join(self.run_dir, MLFLOW_ARTIFACTS)
            experiment_id = self.client.create_experiment(self.study, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        if experiment is None or experiment.tags.get("mlflow.experimentKind") != "custom_model_development":
            self.client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
        return experiment_id

    def _saved_parent(self) -> str:
        """The parent run id this run folder recorded, if that run exists in this store."""
        path = os.path.join(self.run_dir, PARENT_FILE)
        if not os.path.exists(path):
            return ""
        try:
            with open(path) as f:
                run_id = json.load(f).get("parent_run_id", "")
            return run_id if run_id and self.client.get_run(run_id).info.experiment_id == self.experiment_id else ""
        except Exception:  # noqa: BLE001 - an unknown id (another store): look it up by tag, or start a new one
            return ""

    def _parent_by_tag(self) -> str:
        found = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.arml_role = 'study' and tags.arml_run_dir = '{self.run_dir}'"), max_results=1)
        return found[0].info.run_id if found else ""

    def _save_parent(self) -> None:
        RunFolder(self.run_dir).write_json(PARENT_FILE, {"parent_run_id": self.parent,
                                                         "experiment_id": self.experiment_id})

    def child(self, trial_id: str, running: bool = False) -> str | None:
        """The trial's child run (created when missing); `running`: the trial starts (again) now."""
        return self._guard(self._child, trial_id, running)

    def starting(self, trial_id: str) -> None:
        """The trial starts (again): a child run it has is RUNNING again; one it lacks is made with its first result
        (`log`), params and metrics in one write, or when it ends without one (`finish`)."""
        if trial_id in self.children:
            self.child(trial_id, running=True)

    def _child(self, trial_id: str, running: bool = False, metrics: list[Any] = ()) -> str:
        """The trial's child run; a new one gets its params and `metrics` (mlflow Metric) in one log_batch."""
        if trial_id in self.children:
            if running and self.statuses.get(trial_id) != "RUNNING":
                self.client.update_run(self.children[trial_id], status="RUNNING")
                self.statuses[trial_id] = "RUNNING"
            if metrics:
                self._batch(self.children[trial_id], metrics=list(metrics))
            return self.children[trial_id]
        from mlflow.entities import Param

        meta = self.meta[trial_id]
        budget = "" if meta.budget is None else str(meta.budget)
        run = self.client.create_run(self.experiment_id, run_name=trial_run_name(meta),
                                     tags={"mlflow.parentRunId": self.parent, "arml_role": "trial",
                                           "study": self.study, "trial_id": trial_id, "method": meta.method,
                                           "weighting": meta.weighting, "budget": budget,
                                           "seed": str(meta.seed), "git_revision": git_revision()})
        params = {f"config.{k}": v for k, v in meta.config.to_dict().items()}
        params.update(method=meta.method, weighting=meta.weighting, budget=budget, seed=meta.seed,
                      grid_point=list(meta.grid_point) if meta.grid_point else "")
        params.update({f"sweep.{key}": value for key, value in meta.cell.items()})   # the trial's sweep cell
        self._batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()], metrics=list(metrics))
        self.children[trial_id] = run.info.run_id
        self.statuses[trial_id] = "RUNNING"
        return run.info.run_id

    def _batch(self, run_id: str, params: list[Any] = (), metrics: list[Any] = ()) -> None:
        """log_batch within MLflow's limits per call (100 params, 1000 entries)."""
        params, metrics = list(params), list(metrics)
        while params or metrics:
            take_params = params[:100]
            take_metrics = metrics[:1000 - len(take_params)]
            self.client.log_batch(run_id, params=take_params, metrics=take_metrics)
            params, metrics = params[len(take_params):], metrics[len(take_metrics):]

    def log(self, trial_id: str, row: dict[str, Any]) -> None:
        self._guard(self._log, trial_id, row)

    def _log(self, trial_id: str, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(row.get(STEP, 0) or 0)
        if step <= self.logged_step.get(trial_id, -1.0):
            return
        self.logged_step[trial_id] = step
        from orchestrator.store.records import metric_values

        stamp = int(float(row.get("recorded_at") or time.time()) * 1000)
        self._child(trial_id, metrics=[Metric(k, v, stamp, step) for k, v in metric_values(row).items()])

    def finish(self, trial_id: str, status: str) -> None:
        self._guard(self._finish, trial_id, status)

    def _finish(self, trial_id: str, status: str) -> None:
        run_id = self.children.get(trial_id) or self._child(trial_id)
        self.client.set_terminated(run_id, status=FINISHED.get(status, "FAILED"))
        self.statuses[trial_id] = FINISHED.get(status, "FAILED")

    def reconcile(self, states: dict[str, str]) -> None:
        """Every child run's status as the records say (`states`: trial id -> our status): a trial that ended
        gets its final status, one that did not run to the end is KILLED; a trial without a child run, or one
        still pending, is left alone. What an earlier driver killed with -9 left RUNNING is closed here."""
        self._guard(self._reconcile, states)

    def _reconcile(self, states: dict[str, str]) -> None:
        for trial_id, run_id in self.children.items():
            status = states.get(trial_id)
            if status is None or status == TrialStatus.PENDING:
                continue
            wanted = FINISHED.get(status, "KILLED")   # running/retrying/interrupted at the end: did not finish
            if self.statuses.get(trial_id) != wanted:
                self.client.set_terminated(run_id, status=wanted)
                self.statuses[trial_id] = wanted

    def close(self, status: str, artifacts: list[str] = (), params: dict[str, Any] | None = None,
              metrics: dict[str, float] | list[tuple[str, float, int]] | None = None,
              tags: dict[str, str] | None = None, note: str | None = None) -> None:
        """The study's one end: params, metrics (a dict at step 0, or (name, value, step) triples: a curve MLflow's
        charts draw against `step`), tags, its description (MLflow's note) and artifacts on the parent run, then its
        status. A metric point the run already holds (same step and value) is not logged again."""
        if isinstance(metrics, dict):
            metrics = [(k, v, 0) for k, v in metrics.items()]
        self._guard(self._close, status, list(artifacts), params or {}, list(metrics or []), tags or {}, note)

    def _close(self, status: str, artifacts: list[str], params: dict[str, Any], metrics: list[tuple[str, float, int]],
               tags: dict[str, str], note: str | None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.get_run(self.parent)
        have = set(run.data.params)
        items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in have]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.parent, params=items[start:start + 100])
        stamp = int(time.time() * 1000)
        logged: dict[str, set[tuple[int, float]]] = {}
        for name in {k for k, _, _ in metrics} & set(run.data.metrics):   # a report logged before (a resumed study)
            logged[name] = {(m.step, m.value) for m in self.client.get_metric_history(self.parent, name)}
        values = [Metric(k, float(v), stamp, int(step)) for k, v, step in metrics
                  if v == v and (int(step), float(v)) not in logged.get(k, ())]
        for start in range(0, len(values), 1000):
            self.client.log_batch(self.parent, metrics=values[start:start + 1000])
        if note is not None:
            tags = {**tags, "mlflow.note.content": note}
        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.parent, tags=items[start:start + 100])
        for path in artifacts:
            if os.path.isdir(path):
                self.client.log_artifacts(self.parent, path, artifact_path=os.path.basename(path))
            elif os.path.exists(path):
                self.client.log_artifact(self.parent, path)
        self.client.set_terminated(self.parent, status=FINISHED.get(status, "FAILED"))


UI = "http://127.0.0.1:5000"   # where `mlflow ui` serves a local store


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The address of a run in MLflow's UI, opened in its model-training view (MLflow 3.17 opens an experiment in the
    GenAI view unless the address says otherwise): on a tracking server its own address, for a local store (sqlite,
    a folder) the one `mlflow ui` serves by default; '' for other stores (Databricks, ...)."""
    base = UI if _local_store(uri) else redact(uri).rstrip("/") if uri.startswith(("http://", "https://")) else ""
    if not base or not experiment_id or not run_id:
        return ""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


class TrackerProcess:
    """A study launch's MLflow tracker in a process of its own (`arml-mlflow`): the driver hands it what to log
    through a queue (microseconds a trial) and its own loop never waits on MLflow, whose writes cost tens of
    milliseconds of CPU each (a run, its params and metrics, its status); the writer stays the one process that
    writes the store while trials run, so a sqlite store is still safe. `close()` waits until everything handed
    over is logged. The writer ignores Ctrl-C and SIGTERM (its process group gets them: the driver decides when
    the study ends) and ends by itself if the driver dies. Same calls as `Tracker` for a launch: starting, log,
    finish."""

    def __init__(self, uri: str, study: str, run_dir: str, plan_meta: list[Trial]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")   # never fork a driver that runs Ray's threads
        self._queue = context.Queue()
        self._process = context.Process(target=_serve, name="arml-mlflow", daemon=True,
                                        args=(self._queue, uri, study, run_dir, list(plan_meta), os.getpid()))
        self._process.start()
        # a launch that ends without closing it (an error inside Tune) must not hang the driver's exit:
        # multiprocessing's own exit handler would SIGTERM the writer, which ignores SIGTERM, and wait forever
        atexit.register(self.close, 10)

    def starting(self, trial_id: str) -> None:
        self._queue.put(("starting", trial_id))

    def log(self, trial_id: str, row: dict[str, Any]) -> None:
        self._queue.put(("log", trial_id, row))

    def finish(self, trial_id: str, status: str) -> None:
        self._queue.put(("finish", trial_id, str(status)))

    def close(self, timeout: float | None = None) -> None:
        """Everything handed over logged (at most `timeout` seconds), the writer ended."""
        atexit.unregister(self.close)
        if self._process.is_alive():
            self._queue.put(None)
            self._process.join(timeout)
        if self._process.is_alive():   # it ignores SIGTERM (see _serve)
            self._process.kill()
            self._process.join(5)
        self._queue.close()


def _serve(queue: Any, uri: str, study: str, run_dir: str, plan_meta: list[Trial], driver: int) -> None:
    """The `arml-mlflow` process: logs what the driver hands over, in order, until told to end or the driver is
    gone."""
    import queue as queues
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tracker = Tracker(uri, study, run_dir, plan_meta, say=lambda text: print(text, flush=True), reopen=True)
    calls = {"starting": tracker.starting, "log": tracker.log, "finish": tracker.finish}
    while True:
        try:
            message = queue.get(timeout=1.0)
        except queues.Empty:
            if os.getppid() != driver:   # the driver died (kill -9): its next run reconciles the statuses
                return
            continue
        if message is None:
            return
        calls[message[0]](*message[1:])
