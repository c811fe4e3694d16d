"""The Tune function trainable: one trial = one `trainables.fit`, reporting through a thin adapter.

A trial asking for one worker trains in the Tune actor itself; one asking for several runs a Ray Train
`TorchTrainer` (DDP-style data parallelism: gloo on CPU, nccl on GPU) whose rank-0 metrics reach Tune
through `TuneReportCallback`. Every report carries the trial's cost so far (wall, CPU and GPU seconds)
and where it ran; checkpoints carry the cost too, so a retried trial keeps counting.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from orchestrator.run import population
from orchestrator.store.folder import CHECKPOINT_COST as COST_FILE
from orchestrator.store.schema import (  # FATAL: a trial that failed in a way a retry would repeat (DETERMINISTIC)
    BEST_VAL_ACC,
    CPU_S,
    FATAL,
    GPU_S,
    NODE_ID,
    STEP,
    VAL_ACC,
    WALL_S,
)


def _deterministic() -> tuple[type[BaseException], ...]:
    """Errors that repeat on every retry: a bad configuration or label budget, missing data, a diverged loss."""
    from trainables.errors import PluginError, TrainablesError

    return (TrainablesError, PluginError)


DRIVER_CPU = 0.01   # what the Tune actor of a multi-worker trial holds while its TorchTrainer runs


def trial_resources(resources: dict[str, Any]) -> dict[str, float]:
    """What Tune reserves for one trial (its actor): all of `[resources]` for a one-worker trial; for a
    multi-worker trial only `DRIVER_CPU`, its TorchTrainer's workers hold the rest (`worker_resources`)."""
    if resources["workers_per_trial"] > 1:
        return {"cpu": DRIVER_CPU}
    return {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]}


def worker_resources(resources: dict[str, Any]) -> dict[str, float]:
    """What each Ray Train worker of a multi-worker trial holds: an equal share of the trial's CPUs (less the
    driver's) and GPUs."""
    workers = resources["workers_per_trial"]
    share = {"CPU": (resources["cpus_per_trial"] - DRIVER_CPU) / workers}
    if resources["gpus_per_trial"] > 0:
        share["GPU"] = resources["gpus_per_trial"] / workers
    return share


def check_cluster_fits(resources: dict[str, Any], nodes: list[dict[str, float]] | None = None,
                       study: str = "") -> None:
    """UsageError naming the `study` file and `[resources]` when the Ray cluster could never run one trial
    (Tune would leave it pending forever); `nodes`: each alive node's resources, default from `ray.nodes()`."""
    if nodes is None:
        import ray

        nodes = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    check_fits(resources, nodes, f"{study}: [resources]" if study else "[resources]")


def check_fits(resources: dict[str, Any], nodes: list[dict[str, float]], where: str, has: str | None = None) -> None:
    """UsageError when no node of `nodes` (each {"CPU": n, "GPU": n}) could ever run one trial (the first
    problem of `fit_problems`)."""
    from orchestrator.errors import UsageError

    found = fit_problems(resources, nodes, where, has)
    if found:
        raise UsageError(found[0])


def fit_problems(resources: dict[str, Any], nodes: list[dict[str, float]], where: str,
                 has: str | None = None) -> list[str]:
    """Every reason why no node of `nodes` could run one trial of `resources` ([resources] as a dict); `has`
    describes the nodes in the messages (default: the cluster's)."""
    cpus = [n.get("CPU", 0.0) for n in nodes] or [0.0]
    gpus = [n.get("GPU", 0.0) for n in nodes] or [0.0]
    has = has or (f"the cluster has {len(nodes)} node{'s' if len(nodes) != 1 else ''}, the largest with "
                  f"{max(cpus):g} CPUs and {max(gpus):g} GPUs ({sum(cpus):g} CPUs, {sum(gpus):g} GPUs in all)")
    workers = resources["workers_per_trial"]
    found = []
    if workers > 1:
        if workers > sum(cpus):
            return [f"{where} workers_per_trial = {workers} but {has}; each worker is a process training on at "
                    f"least one CPU: use at most {sum(cpus):g} workers"]
        need = worker_resources(resources)
        what = f"each of the {workers} workers of a trial needs"
        for key, per_node in (("CPU", cpus), ("GPU", gpus)):
            if need.get(key, 0.0) > max(per_node) or need.get(key, 0.0) * workers > sum(per_node) + 1e-9:
                found.append(f"{where} {what} {need[key]:g} {key}s but {has}; lower cpus_per_trial, "
                             f"gpus_per_trial or workers_per_trial, or add nodes")
        return found
    for key, want, per_node in (("cpus_per_trial", resources["cpus_per_trial"], cpus),
                                ("gpus_per_trial", resources["gpus_per_trial"], gpus)):
        if want > max(per_node) + 1e-9 and max(per_node) == 0 and key == "gpus_per_trial":
            found.append(f"{where} gpus_per_trial = {want:g} but {has}: set gpus_per_trial = 0 to train on CPUs, "
                         "or run where there are GPUs")
        elif want > max(per_node) + 1e-9:
            found.append(f"{where} {key} = {want:g} but {has}: no node can run a trial; use at most "
                         f"{max(per_node):g} or add a larger node")
    return found


class CostMeter:
    """Wall seconds, CPU seconds of this process and allocated GPU seconds, continued across restarts."""

    def __init__(self, gpus: float, previous: dict[str, float] | None = None) -> None:
        self.gpus = gpus
        self.base = previous or {WALL_S: 0.0, CPU_S: 0.0}
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def now(self) -> dict[str, float]:
        wall = self.base[WALL_S] + time.perf_counter() - self.wall0
        cpu = self.base[CPU_S] + time.process_time() - self.cpu0
        return {WALL_S: wall, CPU_S: cpu, GPU_S: wall * self.gpus}


def _where() -> dict[str, Any]:
    import ray

    return {NODE_ID: ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()}


def _previous_cost(directory: str | None) -> dict[str, float] | None:
    if directory and os.path.exists(os.path.join(directory, COST_FILE)):
        with open(os.path.join(directory, COST_FILE)) as f:
            return json.load(f)
    return None


def _own_cost(directory: str | None, config: dict[str, Any]) -> dict[str, float] | None:
    """The trial's cost before this start: its checkpoint's, unless the checkpoint is another trial's (a population's
    member that exploited a better one continues from its checkpoint): then what the scheduler passed on."""
    previous = _previous_cost(directory)
    owner = (previous or {}).get("trial_id")
    if owner is not None and owner != config.get("trial_id") and config.get(population.COST_FROM) is not None:
        return {WALL_S: 0.0, CPU_S: 0.0, **config[population.COST_FROM]}
    return previous


def write_cost(directory: str, cost: dict[str, Any]) -> None:
    """DIRECTORY/cost.json, atomically and durably (a full disk never leaves a cut file)."""
    from trainables.checkpoint import write_durably

    write_durably(os.path.join(directory, COST_FILE), lambda f: json.dump(cost, f))


def whole(directory: str) -> bool:
    """A checkpoint folder a trial can continue from: a whole state.pt (`trainables.checkpoint.is_complete`) and,
    when there is one, a cost.json that parses."""
    from trainables.checkpoint import is_complete

    if not is_complete(directory):
        return False
    try:
        _previous_cost(directory)
        return True
    except (OSError, ValueError):
        return False


def _threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def run_trial(config: dict[str, Any], trials: dict[str, dict[str, Any]]) -> None:
    """Tune entry point: `config["trial_id"]` names the trial in `trials` (its TrainConfig, resources and, when an
    earlier launch of the study left one, the checkpoint to continue from: `resume_from`)."""
    from ray import tune

    DETERMINISTIC = _deterministic()  # noqa: N806 - read once per trial
    trial = trials[config["trial_id"]]
    weights = config.get("weights")   # a search's trial: its weights were drawn when it started
    if "k" in trial:                  # a population's member: its weights are w0.., which PBT mutates
        weights = population.weights_in(config, trial["k"])
    if weights is not None:
        trial = {**trial, "config": {**trial["config"], "weighting_options": {"weights": list(weights)}}}
    resources = trial["resources"]
    if resources["workers_per_trial"] > 1:
        return _run_data_parallel(trial)
    _threads(resources["cpus_per_trial"])
    startup = _warm_up()
    from trainables import fit

    checkpoint = tune.get_checkpoint()   # this launch's own, when Tune retries the trial
    fallback = tune.Checkpoint(trial["resume_from"]) if trial.get("resume_from") else None
    if checkpoint is None:   # the last whole one an earlier launch recorded (--resume)
        checkpoint, fallback = fallback, None
    with _restored(checkpoint, fallback) as resume_from:
        meter = CostMeter(resources["gpus_per_trial"], _own_cost(resume_from, config))
        where = {**_where(), **({population.CLONED_FROM: config[population.CLONED_FROM]}
                                if config.get(population.CLONED_FROM) else {})}

        def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            cost = meter.now()
            out = {**metrics, **cost, **where, "retry_from_step": trial_start_step, "startup_cpu_s": startup}
            if checkpoint_dir is None:
                tune.report(out)
                return
            write_cost(checkpoint_dir, {**cost, "trial_id": config["trial_id"]})
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

        trial_start_step = _checkpoint_step(resume_from)
        try:
            fit(trial["config"], report, resume_from=resume_from)
        except DETERMINISTIC as error:   # would fail the same way again: end the trial now, never retried
            tune.report({FATAL: f"{type(error).__name__}: {error}", STEP: trial_start_step, **meter.now(),
                         VAL_ACC: float("nan"), BEST_VAL_ACC: float("nan")})   # the metrics searchers expect


@contextlib.contextmanager
def _restored(checkpoint: Any, fallback: Any = None) -> Iterator[str | None]:
    """The folder a Tune or Train checkpoint was unpacked into (None without one), removed afterwards. A checkpoint
    that is not whole (cut by a full disk) gives way to `fallback`, and that to a start from scratch."""
    for candidate in (checkpoint, fallback):
        if candidate is None:
            continue
        with tempfile.TemporaryDirectory() as folder:
            candidate.to_directory(folder)
            if whole(folder):
                yield folder
                return
        print(f"checkpoint {candidate.path} is not whole (a cut or empty file); not continuing from it", flush=True)
    yield None


def _warm_up() -> float:
    """Imports the training code (torch, torchvision, the data sets) before a trial's cost meter starts, so the
    first trial on a Ray worker costs what the others do; returns the CPU-seconds this took (0 once warm).
    torch._dynamo too: torch's first optimizer imports it (1.7 CPU-seconds on 2 CPUs), which made the first
    trial on each worker look 2x as costly as the rest. And the forward-mode decompositions the first jvp of an
    ARML-family trial imports."""
    start = time.process_time()
    import torch._decomp.decompositions_for_jvp  # noqa: F401
    import torch._dynamo  # noqa: F401

    import trainables.loop  # noqa: F401

    return time.process_time() - start


def _checkpoint_step(directory: str | None) -> int:
    if not directory:
        return 0
    from trainables import checkpoint

    return int(checkpoint.load(directory)[STEP])


def _run_data_parallel(trial: dict[str, Any]) -> None:
    """Several workers: a TorchTrainer inside the trial; its rank-0 reports reach Tune."""
    from ray import train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    resources = trial["resources"]
    workers = resources["workers_per_trial"]
    use_gpu = resources["gpus_per_trial"] > 0
    per_worker = worker_resources(resources)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"trial": trial},
        scaling_config=train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        torch_config=train.torch.TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=train.RunConfig(
            name=f"{trial['trial_id']}-workers", storage_path=trial["storage"], callbacks=[TuneReportCallback()],
            failure_config=train.FailureConfig(max_failures=0)),
    )
    trainer.fit()


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the same `fit`, torch.distributed already initialised by Ray Train. A retried trial
    starts a TorchTrainer of the same name in the same storage, which hands every worker the last checkpoint
    rank 0 reported: training continues from it, and so does the cost (cost.json in the checkpoint holds the
    wall seconds and the CPU seconds summed over all workers so far)."""
    from ray import train

    trial = loop_config["trial"]
    resources = trial["resources"]
    _threads(resources["cpus_per_trial"] / resources["workers_per_trial"])
    startup = _warm_up()
    from trainables import fit

    rank = train.get_context().get_world_rank()
    with _restored(train.get_checkpoint()) as resume_from:
        previous = _previous_cost(resume_from) or {WALL_S: 0.0, CPU_S: 0.0}
        start_step = _checkpoint_step(resume_from)
        meter = CostMeter(resources["gpus_per_trial"])   # this worker since this attempt started
        where = _where()

        def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            now = meter.now()
            cost = {WALL_S: previous[WALL_S] + now[WALL_S],
                    CPU_S: previous[CPU_S] + _sum_over_workers(now[CPU_S])}
            out = {**metrics, **where, **cost, GPU_S: cost[WALL_S] * resources["gpus_per_trial"],
                   "workers": resources["workers_per_trial"], "rank": rank, "worker_pid": os.getpid(),
                   "retry_from_step": start_step,
                   "startup_cpu_s": startup}
            if checkpoint_dir and rank == 0:
                write_cost(checkpoint_dir, cost)
                train.report(out, checkpoint=train.Checkpoint.from_directory(checkpoint_dir))
            else:
                train.report(out)

        fit(trial["config"], report, resume_from=resume_from)


def _sum_over_workers(value: float) -> float:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return float(tensor.item())
