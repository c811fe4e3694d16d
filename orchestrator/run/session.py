"""Ray for one `arml run`: join a cluster (`--address`, with its token) or start a local Ray with this machine's
CPUs, and end it again; a local Ray gets a watcher (orchestrator/run/reaper.py) that ends it at once if the
driver dies without shutting it down."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from orchestrator.errors import RunFault, UsageError
from orchestrator.run import reaper
from orchestrator.run.signals import Stopped


def use_cluster_token() -> None:
    """Ray 2.60 clusters require a token by default; a client only sends one in token mode. Turn it on when
    a token is at hand ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). Never turned off. Call it
    before Ray is imported: it reads its authentication mode once."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(path):
        os.environ["RAY_AUTH_MODE"] = "token"


def cluster_address(flag: str | None) -> str | None:
    """The cluster a run joins: `--address`, else $RAY_ADDRESS (what Ray sets for a Ray job's driver, and what
    `ray.init()` itself would join), else None (a local Ray). A job server's http(s) URL there is a usage error:
    `arml run` joins a cluster's GCS (HEAD:6379), `arml submit` takes the job server's URL."""
    if flag:
        return flag
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address:
        return None
    if address.startswith(("http://", "https://")):
        raise UsageError(f"RAY_ADDRESS={address} is a Ray job server's URL, not a cluster to join: run the study as "
                         f"a Ray job with `arml submit STUDY --address {address}`, or join the cluster with --address "
                         "HEAD:6379 (or unset RAY_ADDRESS to start a local Ray)")
    return address


def _probe_address(address: str, timeout: float = 5.0) -> None:
    """A cluster address that does not answer is a usage error now, not minutes of Ray's retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address in ("auto", "local") or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as error:
        raise UsageError(f"no Ray cluster answers at {address} ({error.strerror or error}); start one with "
                         "`ray start --head --port PORT` or check the address `ray status` prints") from None


class RaySession:
    """`start()` joins `address` or starts a local Ray (True when it started one); `stop()` ends what it started.
    A Ray the caller already started (a notebook, the tests) is used and left running. `watch(on_lost)` calls
    `on_lost(reason)` from a thread if the Ray it started, or the cluster's head it joined, goes away mid-run."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = False
        self._watcher: Any = None
        self._lifeline: Lifeline | None = None

    def start(self) -> bool:
        import ray

        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")   # trials see the caller's working folder
        # checkpoints every evaluation of many short trials: the snapshot warning is expected, not actionable
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        # a trial that fails deterministically reports no validation accuracy: a search must record it, not stop
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
        if ray.is_initialized():
            return False
        if self.address:
            _probe_address(self.address)
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            except SystemExit:   # Ray's own SIGTERM handler while joining: a stop like any other
                raise Stopped("SIGTERM") from None
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise UsageError(f"cannot join the Ray cluster at {self.address} ({str(error).splitlines()[0]}); "
                                 "check the address (`ray status` on the head node prints it) and that this "
                                 "machine has the cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from None
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            print(f"Ray: joined the cluster at {self.address} ({nodes} node{'s' if nodes != 1 else ''}, "
                  f"{ray.cluster_resources().get('CPU', 0):g} CPUs)", flush=True)
            _cluster_errors_to_log()
            return False
        # the watcher first: everything Ray starts below this process is noted from its first moment, so that a
        # start stopped half-way, or a driver that dies, leaves nothing behind (None without /proc)
        self._watcher = reaper.start([os.getpid()])
        print(f"Ray: starting a local Ray with {os.cpu_count() or 1} CPUs ...", flush=True)
        try:
            with lean_agent(), ray_in_its_own_session(), no_native_sigterm_handler():
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        except BaseException as error:   # a signal (Ray's SIGTERM handler raises SystemExit), or Ray failing
            self._abandon()
            if isinstance(error, SystemExit):
                raise Stopped("SIGTERM") from None
            if isinstance(error, KeyboardInterrupt):
                raise
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RunFault(f"Ray could not start on this machine ({first}); Ray's own logs are under "
                           "/tmp/ray/session_latest/logs. Try again (a busy machine can time out), or join a "
                           "running cluster with --address") from None
        self.started = True
        _cluster_errors_to_log()
        print("Ray: started (pass --address to use a cluster)", flush=True)
        return True

    def _abandon(self) -> None:
        """A `ray.init` that did not complete: whatever it started ends now."""
        import ray

        try:
            ray.shutdown()
        except BaseException:  # noqa: BLE001 - half-started: the watcher ends what shutdown cannot
            pass
        reaper.reap_now(self._watcher)
        self._watcher = None

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """From now until `stop()`, `on_lost(reason)` is called (once, from a thread) when the Ray this run uses
        goes away: the local Ray's GCS server or raylet ended (a signal to the process group, the OOM killer), or
        the cluster's head stopped answering. A Ray the caller started is not watched."""
        import ray

        if not self.started and not self.address:
            return
        if self.started:
            pids = [p for p in reaper.children(os.getpid()) if _name(p) in ("gcs_server", "raylet")]
            self._lifeline = Lifeline(on_lost, pids=pids)
        else:
            self._lifeline = Lifeline(on_lost, address=ray.get_runtime_context().gcs_address)
        self._lifeline.start()

    def stop(self) -> None:
        """Shuts down the local Ray this session started, then lets its watcher go."""
        if self._lifeline is not None:
            self._lifeline.stop()
            self._lifeline = None
        if not self.started:
            return
        import ray

        ray.shutdown()
        reaper.release(self._watcher)
        self._watcher, self.started = None, False


def _cluster_errors_to_log() -> None:
    """Ray's driver prints the cluster's error messages ("The node with node id ... has been marked dead") to stdout
    from a thread of its own, colour codes and all: they go to Ray's logger instead, which `quiet_ray` sends to
    RUN_DIR/ray.log with Ray's other messages (the run says in its own words what a lost node means)."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "arml_to_log", False):
        return

    def to_log(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            return original(data, ignore_prefix)
        for line in data.get("lines", []):
            logging.getLogger("ray").warning("(raylet) %s", line)
        return None

    to_log.arml_to_log = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class Lifeline(threading.Thread):
    """Calls `on_lost(reason)` once when Ray is gone: any of `pids` (a local Ray's GCS server and raylet) ended,
    or nothing answered at `address` (a cluster's GCS, host:port) for `grace_s` seconds. Ray's own driver gives
    up 60 s after losing the GCS and ends the process with its own line (exit 1): the grace leaves time to
    export what was recorded before that."""

    def __init__(self, on_lost: Callable[[str], None], pids: list[int] = (), address: str | None = None,
                 every_s: float = 0.5, grace_s: float = 20.0) -> None:
        super().__init__(name="arml-ray-lifeline", daemon=True)
        self.on_lost, self.address, self.every_s, self.grace_s = on_lost, address, every_s, grace_s
        self.pids = {pid: stat[1] for pid in pids if (stat := reaper._stat(pid)) is not None}
        self.names = {pid: _name(pid) or "process" for pid in self.pids}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        silent_since: float | None = None
        while not self._stop.wait(self.every_s):
            gone = [pid for pid, started in self.pids.items()
                    if (stat := reaper._stat(pid)) is None or stat[1] != started or _zombie(pid)]
            if gone:
                return self._lost(f"the local Ray's {' and '.join(sorted({self.names[p] for p in gone}))} ended")
            if self.address is None:
                continue
            if _answers(self.address):
                silent_since = None
            elif silent_since is None:
                silent_since = time.monotonic()
            elif time.monotonic() - silent_since >= self.grace_s:
                return self._lost(f"the Ray cluster's head at {self.address} has not answered for "
                                  f"{self.grace_s:.0f} s")

    def _lost(self, reason: str) -> None:
        if not self._stop.is_set():
            self.on_lost(reason)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _answers(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _patched(module: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    """`module.name` is `make(original)` inside, the original again after; where the name is gone (a private name
    of the pinned Ray, renamed in another version) nothing changes."""
    original = getattr(module, name, None)
    if original is None:
        yield
        return
    setattr(module, name, make(original))
    try:
        yield
    finally:
        setattr(module, name, original)


def lean_agent() -> contextlib.AbstractContextManager[None]:
    """A local Ray started inside it runs Ray's per-node agent in its minimal mode, as a `ray[tune,train]` install
    would, even where the cluster extra (`ray[default]`: dashboard, job server) is installed: a local study
    uses neither, and the full agent (metrics exporter, HTTP server) made `ray.init` take 13 s instead of 7.5 s
    on 2 CPUs. Ray decides by whether the dashboard's packages import (a private function)."""
    from ray._private import utils

    return _patched(utils, "get_dashboard_dependency_error",
                    lambda _: lambda: ImportError("a local study's Ray: the agent's minimal mode"))


def no_native_sigterm_handler() -> contextlib.AbstractContextManager[None]:
    """The driver's core worker, built inside `ray.init`, installs Abseil's failure-signal handler for SIGTERM
    too (until Ray's own Python handler replaces it): a SIGTERM in that moment dumped a stack to Ray's log and
    aborted the process (exit -6, no line of ours). Inside, this driver's core worker installs none; Ray's
    workers keep theirs (a module constant)."""
    from ray._private import ray_constants

    return _patched(ray_constants, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", lambda _: True)


def ray_in_its_own_session() -> contextlib.AbstractContextManager[None]:
    """The processes a local Ray starts inside it (its GCS server, raylet and their workers) run in a session of
    their own: a signal to the driver's process group (what `timeout`, batch schedulers and a terminal's Ctrl-C
    send) reaches the driver alone, which then stops the trials and shuts Ray down in order. Sharing the group, a
    SIGTERM while `ray.init` ran ended the raylet under a driver waiting on it inside Ray's native code, which
    holds the interpreter: no Python handler could run, and Ray's own timeout ended the process 10 to 60 s later
    with exit 1 and no line. A driver that dies at once (kill -9) still takes its Ray along: Ray ties its server
    and raylet to the driver's life, and the watcher (orchestrator/run/reaper.py) ends the rest (Ray's process
    class, private)."""
    from ray._private import services

    def own_session(original: type) -> type:
        class OwnSession(original):   # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("start_new_session", True)
                super().__init__(*args, **kwargs)

        return OwnSession

    return _patched(services, "ConsolePopen", own_session)
