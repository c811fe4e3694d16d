"""A trial's resources: what Tune reserves and what each Ray Train worker holds come from one place
(orchestrator.run.trial_worker), requests no node of the cluster can hold are refused up front, and a trial's
process imports neither the runner, pandas nor MLflow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestrator.errors import UsageError
from orchestrator.run.trial_worker import DRIVER_CPU, check_cluster_fits, trial_resources, worker_resources


def resources(cpus: float = 1.0, gpus: float = 0.0, workers: int = 1) -> dict:
    return {"cpus_per_trial": cpus, "gpus_per_trial": gpus, "workers_per_trial": workers,
            "max_concurrent": 0, "max_failures": 0}


def test_one_worker_trials_reserve_everything_in_tune() -> None:
    assert trial_resources(resources(2.0, 0.5)) == {"cpu": 2.0, "gpu": 0.5}


def test_multi_worker_trials_split_between_driver_and_workers() -> None:
    r = resources(4.0, 1.0, workers=4)
    assert trial_resources(r) == {"cpu": DRIVER_CPU}
    share = worker_resources(r)
    assert share["GPU"] == 0.25 and share["CPU"] * 4 + DRIVER_CPU == pytest.approx(4.0)
    assert "GPU" not in worker_resources(resources(2.0, 0.0, workers=2))


LAPTOP = [{"CPU": 2.0}]
CLUSTER = [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0}]


@pytest.mark.parametrize(("request_", "nodes"), [
    (resources(2.0), LAPTOP), (resources(1.0, 0.0, workers=2), LAPTOP), (resources(16.0, 2.0), CLUSTER),
    (resources(20.0, 0.0, workers=4), CLUSTER), (resources(4.0, 0.5), CLUSTER),
])
def test_requests_that_fit(request_: dict, nodes: list) -> None:
    check_cluster_fits(request_, nodes)


@pytest.mark.parametrize(("request_", "nodes", "pieces"), [
    (resources(1000.0), LAPTOP, ["[resources] cpus_per_trial = 1000", "largest with 2 CPUs", "use at most 2"]),
    (resources(1.0, 1.0), LAPTOP, ["[resources] gpus_per_trial = 1", "0 GPUs"]),
    (resources(1.0, 3.0), CLUSTER, ["[resources] gpus_per_trial = 3", "use at most 2"]),
    (resources(17.0), CLUSTER, ["[resources] cpus_per_trial = 17", "largest with 16 CPUs"]),
    (resources(1.0, 0.0, workers=1000), LAPTOP, ["[resources] workers_per_trial = 1000", "use at most 2 workers"]),
    (resources(8.0, 0.0, workers=2), LAPTOP, ["[resources] each of the 2 workers of a trial needs 3.995 CPUs"]),
    (resources(2.0, 4.0, workers=2), CLUSTER, ["[resources] each of the 2 workers of a trial needs 2 GPUs"]),
])
def test_requests_no_node_can_hold_are_usage_errors(request_: dict, nodes: list, pieces: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        check_cluster_fits(request_, nodes)
    for piece in pieces:
        assert piece in str(caught.value), str(caught.value)


def test_a_trial_imports_no_runner_pandas_or_mlflow() -> None:
    code = ("import sys, orchestrator.run.trial_worker as t\n"
            "t.worker_resources({'cpus_per_trial': 2, 'gpus_per_trial': 0, 'workers_per_trial': 2})\n"
            "bad = [m for m in ('orchestrator.run.runner', 'pandas', 'mlflow') if m in sys.modules]\n"
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.integration
def test_arml_run_refuses_what_the_local_ray_cannot_hold(tmp_path, capsys, local_ray) -> None:
    """Through `arml run` on a 2-CPU machine: exit 2 and one line before Ray or any trial starts."""
    from orchestrator.cli import main

    study = tmp_path / "huge.toml"
    study.write_text('[study]\nname = "huge"\npreset = "digits_ssl"\n[methods.uniform]\n'
                     '[resources]\ncpus_per_trial = 1000.0\n')
    assert main(["run", str(study), "--storage", str(tmp_path / "runs")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]   # Ray logs its start on stderr before it
    assert last.startswith(f"arml: error: {study}: [resources] cpus_per_trial = 1000")
    assert f"this machine has {os.cpu_count()} CPUs" in last
    assert not (tmp_path / "runs" / "huge" / "plan.json").exists()
