"""Real Ray clusters for the cluster tests, on this one machine and never anyone else's: a head started with `ray
start` (its own ports and temp folder, the job server on 127.0.0.1 when asked) and ended by its process group, or
Ray's own `ray.cluster_utils.Cluster` (a head and worker nodes as processes of the test, ended by `shutdown()`).
Never `ray stop`: it stops every Ray on the machine."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def arml_env(**extra: str) -> dict[str, str]:
    """The environment a driver (or a job's driver, through the head's `ray start`) needs: this venv's `arml` on the
    PATH, token authentication on (Ray 2.60's default for clusters), no RAY_ADDRESS of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="token", **extra)
    return env


@dataclass
class Head:
    address: str          # the GCS, HOST:PORT
    job_server: str       # http://127.0.0.1:PORT, "" without the dashboard
    process: subprocess.Popen
    temp_dir: str

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3).close()
        return True
    except OSError as error:
        return getattr(error, "code", None) is not None   # an HTTP error is an answer (401 without the token)


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, dashboard: bool = False, timeout: float = 180) -> Iterator[Head]:
    """`ray start --head --block` with free ports, its own temp folder and (with `dashboard`) the job server on
    127.0.0.1; yields once a driver can join (and the job server answers), ends the head's process group after."""
    port, dash = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="arml-head-", dir="/tmp")
    args = [os.path.join(BIN, "ray"), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(num_cpus), "--temp-dir", temp_dir, "--disable-usage-stats", "--block",
            "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
    args += (["--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)]
             if dashboard else ["--include-dashboard=false"])
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=arml_env())
    head = Head(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}" if dashboard else "", process, temp_dir)
    try:
        deadline = time.time() + timeout
        probe = f"import ray; ray.init(address={head.address!r}, logging_level='ERROR'); print('up')"
        while time.time() < deadline:
            assert process.poll() is None, "ray start --head ended"
            ready = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=arml_env(),
                                   timeout=120).returncode == 0
            if ready and (not dashboard or _answers(f"{head.job_server}/api/version")):
                break
            time.sleep(1)
        else:
            raise AssertionError("the head node did not come up")
        yield head
    finally:
        head.stop()
