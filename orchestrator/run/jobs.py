"""A study as a Ray job: `arml submit` hands `arml run` to a cluster's job server and walks away; `arml status`,
`arml logs` and `arml stop` find the job again by the id recorded in the run folder (RUN_DIR/ray_job.json).

The job's driver is `arml run` on the head node, so the project must be installed there (as on every node) and
`arml` on the PATH of the `ray start` that started the head. The study file travels in the job's working
directory; every path (`--storage`, `--data-root`, `$ARML_DATA`) is made absolute here, where `arml submit` runs,
and must name the same place on the head node (shared storage). Inside the job `RAY_ADDRESS` names the cluster, and
`arml run` joins it (`orchestrator.run.session.cluster_address`). `arml stop` asks Ray to stop the job: Ray sends
the driver SIGTERM and the study ends as under SIGTERM anywhere (trials interrupted, records exported, exit 143);
the job asks Ray for `JOB_STOP_WAIT_S` seconds before Ray's SIGKILL instead of its default 3.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestrator.errors import MissingComponentError, RunFault, UsageError
from orchestrator.run.session import use_cluster_token
from orchestrator.store.folder import DEFAULT_STORAGE, STUDY_COPY, RunFolder, locate

JOB_STOP_WAIT_S = 120      # SIGTERM to SIGKILL on `arml stop`: time to stop the trials and export the records
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
JOB_SERVER_HINT = ("the job server's URL, e.g. --address http://HEAD:8265 (the head's dashboard port: start the "
                   "head with `ray start --head --include-dashboard=true --dashboard-host 0.0.0.0`)")


@dataclass(frozen=True)
class Submission:
    """What `arml submit` was asked: the study file, its `--set`s and the `arml run` options to pass on."""

    study_file: str
    settings: tuple[str, ...] = ()
    storage: str | None = None
    mlflow_uri: str | None = None
    resume: bool = False
    data_root: str | None = None
    until_decided: bool = False
    max_seeds: int | None = None
    smoke: bool = False
    allow_large: bool = False


def job_server(address: str | None) -> str:
    """--address, else $RAY_ADDRESS when it is a job server's URL; http:// is added to a bare HOST:PORT."""
    address = (address or os.environ.get("RAY_ADDRESS", "")).strip()
    if not address or address == "auto" or (":" not in address and "://" not in address):
        raise UsageError(f"arml submit needs {JOB_SERVER_HINT}")
    if "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise UsageError(f"--address {address} is not a job server's URL; give {JOB_SERVER_HINT}")
    return address.rstrip("/")


def _probe(address: str, timeout: float = 5.0) -> None:
    parts = urlsplit(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout).close()
    except OSError as error:
        raise UsageError(f"no Ray job server answers at {address} ({error.strerror or error}); give {JOB_SERVER_HINT}"
                         ) from None


def client(address: str) -> Any:
    """Ray's JobSubmissionClient for `address`, with the cluster's token when one is at hand; one line when the job
    server cannot be reached or refuses us."""
    _probe(address)
    use_cluster_token()   # before Ray is imported: a cluster with token authentication wants it on every request
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as error:
        raise MissingComponentError(f"Ray's job client does not import ({error}); install the cluster extra: "
                                    "pip install -e '.[cluster]' (make does)") from None
    import logging

    for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)   # "Uploading package gcs://...": ours says what matters
    try:
        return JobSubmissionClient(address)
    except RuntimeError as error:   # ray[default] missing, or the server refused us (a token it does not accept)
        raise RunFault(f"the Ray job server at {address} did not accept the connection ({_first(error)}); check the "
                       "address and that this machine has the cluster's token (~/.ray/auth_token, or "
                       "RAY_AUTH_TOKEN)") from None
    except (ConnectionError, OSError, ValueError) as error:
        raise UsageError(f"cannot reach the Ray job server at {address} ({_first(error)}); give {JOB_SERVER_HINT}"
                         ) from None


def _first(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


def _absolute(path: str) -> str:
    return path if "://" in path and not path.startswith("file://") else os.path.abspath(path.removeprefix("file://"))


def entrypoint(submission: Submission, storage: str, data_root: str | None) -> str:
    """The job's shell command: `arml run` of the study file (in the job's working directory) with every option."""
    args = ["arml", "run", os.path.basename(submission.study_file), "--storage", storage]
    for setting in submission.settings:
        args += ["--set", setting]
    if data_root:
        args += ["--data-root", data_root]
    if submission.mlflow_uri:
        args += ["--mlflow-uri", submission.mlflow_uri]
    if submission.max_seeds is not None:
        args += ["--max-seeds", str(submission.max_seeds)]
    for flag, on in (("--resume", submission.resume), ("--until-decided", submission.until_decided),
                     ("--smoke", submission.smoke), ("--allow-large", submission.allow_large)):
        if on:
            args.append(flag)
    return " ".join(shlex.quote(a) for a in args)


def submit(submission: Submission, address: str, plan: Any) -> dict[str, Any]:
    """Submits `arml run` of the study as a Ray job; records it in the run folder (when this machine can write
    there) and returns what was recorded: job_id, address, run_dir, entrypoint, submitted_at."""
    from orchestrator.run.runner import _check_resume
    from orchestrator.store.tracking import take_credentials

    storage = _absolute(submission.storage or DEFAULT_STORAGE)
    where = locate(plan.study.name, storage)
    folder = RunFolder(where.run_dir)
    visible = _creatable(where.run_dir)   # else the storage is the head's alone: nothing is checked or recorded here
    if visible:
        _check_resume(plan, folder, submission.resume)   # a folder that holds a run needs --resume, and so on
        holder = folder.in_use()
        if holder:
            raise UsageError(f"{where.run_dir} is being run right now by {holder}; wait for it to end (or "
                             f"`arml stop {where.shown()}`), then submit again with --resume")
    api = client(address)
    if visible:
        _refuse_if_running(api, folder.job(), where.shown())
    env = {"RAY_JOB_STOP_WAIT_TIME_S": str(JOB_STOP_WAIT_S)}
    data_root = _absolute(submission.data_root) if submission.data_root else None
    if not data_root:   # the study's own data_root wins over $ARML_DATA; a relative default means this folder
        env["ARML_DATA"] = os.path.abspath(os.environ.get("ARML_DATA") or "./data")
    uri = submission.mlflow_uri
    if uri:   # credentials written in the URI travel in MLflow's variables, never in the job's command line
        before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        uri = take_credentials(uri)
        env.update({k: v for k, v in ((k, os.environ.get(k)) for k in before) if v and v != before[k]})
    command = entrypoint(Submission(**{**submission.__dict__, "mlflow_uri": uri}), storage, data_root)
    job_id = f"arml-{_slug(plan.study.name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    workdir = tempfile.mkdtemp(prefix="arml-job-")
    try:
        shutil.copyfile(submission.study_file, os.path.join(workdir, os.path.basename(submission.study_file)))
        api.submit_job(entrypoint=command, submission_id=job_id,
                       runtime_env={"working_dir": workdir, "env_vars": env},
                       metadata={"arml_study": plan.study.name, "arml_run_dir": where.run_dir})
    except (RuntimeError, OSError, ValueError) as error:
        raise RunFault(f"the Ray job server at {address} did not take the job ({_first(error)})") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    job = {"job_id": job_id, "address": address, "run_dir": where.run_dir, "entrypoint": command,
           "study_file": os.path.abspath(submission.study_file), "storage": storage,
           "settings": list(submission.settings),
           "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if visible:
        try:
            folder.prepare()
            folder.save_job(job)
        except (OSError, UsageError) as error:
            job["not_recorded"] = str(error)
    else:
        job["not_recorded"] = f"{where.run_dir} cannot be written from this machine"
    return job


def _creatable(path: str) -> bool:
    """Whether this machine can write the folder `path` (it exists writable, or its nearest existing parent is)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def _refuse_if_running(api: Any, job: dict[str, Any], shown: str) -> None:
    if not job.get("job_id"):
        return
    try:
        status = str(api.get_job_status(job["job_id"]).value)
    except Exception:  # noqa: BLE001 - a job this server does not know (another cluster, a restarted head)
        return
    if status not in TERMINAL:
        raise UsageError(f"Ray job {job['job_id']} is still {status} on this run folder; stop it first (`arml stop "
                         f"{shown}`) or wait for it to end, then submit again with --resume")


# ---- status, logs, stop of a submitted study --------------------------------------------------------------
def recorded_job(run_dir: str) -> dict[str, Any]:
    """The job `arml submit` recorded in RUN_DIR; a usage error naming what to do when there is none."""
    job = RunFolder(run_dir).job() if os.path.isdir(run_dir) else {}
    if not job.get("job_id"):
        if not os.path.isdir(run_dir):
            raise UsageError(f"{run_dir} is not a study's run folder; give the folder `arml submit` printed")
        raise UsageError(f"{run_dir} was not submitted as a Ray job (it has no record of one): `arml submit` runs "
                         "a study as a job; a study run with `arml run` stops with Ctrl-C or SIGTERM to its process")
    return job


def job_state(job: dict[str, Any]) -> dict[str, Any]:
    """The job's state as its job server tells it now: {job_id, address, status, message, start/end time, summary
    (one line)}; status "UNKNOWN" with the reason when the server cannot be asked (never an error: `arml status`
    still shows the trials)."""
    out = {"job_id": job["job_id"], "address": job.get("address", ""), "submitted_at": job.get("submitted_at")}
    try:
        info = client(job["address"]).get_job_info(job["job_id"])
    except Exception as error:  # noqa: BLE001 - a head gone, a job server restarted, a network down
        out.update(status="UNKNOWN", message=_first(error))
    else:
        out.update(status=str(info.status.value), message=info.message or "",
                   start_time=(info.start_time or 0) / 1000 or None, end_time=(info.end_time or 0) / 1000 or None)
    return {**out, "summary": job_line(out)}


def job_line(state: dict[str, Any]) -> str:
    """'Ray job arml-... at http://...: RUNNING for 12m' (and the job server's message when it has one)."""
    line = f"Ray job {state['job_id']} at {state['address']}: {state['status']}"
    start, end = state.get("start_time"), state.get("end_time")
    if start and not end:
        line += f" for {_duration(time.time() - start)}"
    elif start:
        line += f" (ran {_duration(end - start)}, ended {time.strftime('%Y-%m-%d %H:%M', time.localtime(end))})"
    if state.get("message") and state["status"] in ("FAILED", "UNKNOWN", "STOPPED"):
        line += f": {state['message'][:300]}"
    return line


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 3600 else \
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def print_logs(run_dir: str, follow: bool) -> int:
    """The job's output so far; with `follow`, as it comes until the job ends (Ctrl-C stops following only)."""
    job = recorded_job(run_dir)
    api = client(job["address"])
    if not follow:
        try:
            print(api.get_job_logs(job["job_id"]), end="", flush=True)
        except RuntimeError as error:
            raise RunFault(f"the job server at {job['address']} has no logs of job {job['job_id']} "
                           f"({_first(error)})") from None
        return 0

    async def tail() -> None:
        async for lines in api.tail_job_logs(job["job_id"]):
            print(lines, end="", flush=True)

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        return 0   # stops following; the job goes on
    except RuntimeError as error:
        raise RunFault(f"following job {job['job_id']} stopped: {_first(error)}") from None
    state = job_state(job)
    print(f"\n{job_line(state)}", flush=True)
    return 0


def stop(run_dir: str, wait_s: float = JOB_STOP_WAIT_S + 30) -> int:
    """Asks Ray to stop the study's job and waits until it ended (the driver stops its trials and exports the
    records first); 0 when it stopped (or had already ended), 1 when it did not end in time."""
    job = recorded_job(run_dir)
    api = client(job["address"])
    before = job_state(job)
    folder = RunFolder(run_dir)
    resume = " ".join(shlex.quote(a) for a in (
        "arml", "submit", folder.file(STUDY_COPY), *[x for s in job.get("settings", []) for x in ("--set", s)],
        "--storage", job.get("storage") or ".", "--resume", "--address", job["address"]))
    if before["status"] in TERMINAL:
        print(f"{job_line(before)}; nothing to stop")
        return 0
    try:
        api.stop_job(job["job_id"])
    except RuntimeError as error:
        raise RunFault(f"the job server at {job['address']} could not stop job {job['job_id']} ({_first(error)})"
                       ) from None
    print(f"stopping Ray job {job['job_id']}: its study stops its trials and exports the records ...", flush=True)
    deadline = time.monotonic() + wait_s
    state = before
    while time.monotonic() < deadline:
        state = job_state(job)
        if state["status"] in TERMINAL:
            break
        time.sleep(1.0)
    print(job_line(state))
    if state["status"] not in TERMINAL:
        print(f"job {job['job_id']} has not ended after {wait_s:.0f} s; see `arml logs {run_dir}`")
        return 1
    print(f"records: {run_dir} (arml status {run_dir}); continue it with:\n  {resume}")
    return 0
