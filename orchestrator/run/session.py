"""Ray for one `arml run`: join a cluster (`--address`, with its token) or start a local Ray with this machine's
CPUs, and end it again; a local Ray gets a watcher (orchestrator/run/reaper.py) that ends it at once if the
driver dies without shutting it down."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from orchestrator.errors import RunFault, UsageError
from orchestrator.run import reaper


def use_cluster_token() -> None:
    """Ray 2.60 clusters require a token by default; a client only sends one in token mode. Turn it on when
    a token is at hand ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). Never turned off. Call it
    before Ray is imported: it reads its authentication mode once."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(path):
        os.environ["RAY_AUTH_MODE"] = "token"


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
    A Ray the caller already started (a notebook, the tests) is used and left running."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = False
        self._watcher: Any = None

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
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise UsageError(f"cannot join the Ray cluster at {self.address} ({str(error).splitlines()[0]}); "
                                 "check the address (`ray status` on the head node prints it) and that this "
                                 "machine has the cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from None
            print(f"Ray: joined the cluster at {self.address} ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
            return False
        before = set(reaper.children(os.getpid()))
        print(f"Ray: starting a local Ray with {os.cpu_count() or 1} CPUs ...", flush=True)
        try:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - whatever Ray raises when its processes do not come up
            ray.shutdown()
            reaper.reap(reaper.roots([p for p in reaper.children(os.getpid()) if p not in before]))
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RunFault(f"Ray could not start on this machine ({first}); Ray's own logs are under "
                           "/tmp/ray/session_latest/logs. Try again (a busy machine can time out), or join a "
                           "running cluster with --address") from None
        # if this process dies, its watcher ends this Ray at once (None without /proc)
        self._watcher = reaper.start([p for p in reaper.children(os.getpid()) if p not in before])
        self.started = True
        print("Ray: started (pass --address to use a cluster)", flush=True)
        return True

    def stop(self) -> None:
        """Shuts down the local Ray this session started, then lets its watcher go."""
        if not self.started:
            return
        import ray

        ray.shutdown()
        reaper.release(self._watcher)
        self._watcher, self.started = None, False
