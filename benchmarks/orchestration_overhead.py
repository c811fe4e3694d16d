"""What the orchestrator costs per trial: a study of N trivially short trials through `run_plan` (`arml run`: local
Ray, Tune, records, MLflow, report) against the same trials in a plain Python loop, side by side.

The study (digits_mlc, 2 auxiliary attributes, width-8 CNN, 2 steps, evaluation and checkpoint at step 2,
batches of 8, <= 32 evaluation items) has 4 trials per seed (uniform, arml, fixed [1, 0], fixed [0, 1]);
the seeds give N (N not a multiple of 4: the last seed's trials are cut to N). Each trial computes for a
fraction of a second, so nearly all of the orchestrated time is the orchestrator's.

Per N, in this order, in one process (--repeat R: R times, interleaved, the fastest of each kept):
  loop     `trainables.fit(trial.config)` for every trial, one after another, torch.set_num_threads(1)
           (as a 1-CPU trial); one warm-up fit before the clock starts, so the loop is training only.
  orch c=1 `ray.init(address="local", num_cpus=2)` + `run_plan` + `ray.shutdown()`, with
           `[resources] cpus_per_trial = 1, max_concurrent = 1`; the run folder and its MLflow sqlite
           store in a fresh temporary folder.
  orch c=2 the same with `max_concurrent = 2` (two trials at once on the 2 CPUs).
Columns:
  ray.init           seconds to start the local Ray (part of both orch figures; shown for c=1)
  overhead/trial     (orch c=1 - loop) / N: what running a trial through the orchestrator adds, Ray
                     start-up and shutdown, Tune, checkpoints, records, MLflow and the report included
  ... excl. init     the same without ray.init: the marginal cost of one more trial in a long study
  speed-up c=2       orch c=1 / orch c=2
With two or more N, a line under the table splits the orchestrated time into fixed seconds (Ray
start-up, the first trial's worker, MLflow store, records at the end) + seconds per trial, from the
smallest and the largest N.
Importing ray, tune and mlflow (once per `arml run` process) is printed but in no column. The load
average before and after is printed too: other jobs on the machine inflate every figure.

    python benchmarks/orchestration_overhead.py            # N = 8 and 32 (about 3 minutes on 2 CPUs)
    python benchmarks/orchestration_overhead.py --quick    # N = 8 only
    python benchmarks/orchestration_overhead.py --n 200    # N = 200 only (about 1.5 minutes)
    python benchmarks/orchestration_overhead.py --n 8 32 200 --repeat 3    # on a busy machine
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from orchestrator.run.options import RunOptions
from orchestrator.study.plan import Plan, make_plan
from orchestrator.study.spec import parse_study

CPUS = 2
PER_SEED = 4   # trials per seed: the four methods below

STUDY = """
[study]
name = "{name}"
preset = "digits_mlc"
setting = "mlc"
seeds = {seeds}
max_trials = {max_trials}

[train]
aux_attributes = ["is_0", "is_6"]
model_options = {{ width = 8 }}
steps = 2
eval_every = 2
batch_size = 8
aux_batch_size = 8
eval_batch_size = 32
max_eval_items = 32

[methods.uniform]
[methods.arml]
[methods.only_is_0]
weighting = "fixed"
weights = [1.0, 0.0]
[methods.only_is_6]
weighting = "fixed"
weights = [0.0, 1.0]

[resources]
cpus_per_trial = 1.0
max_concurrent = {concurrency}
"""


@dataclass
class Row:
    n: int
    loop_s: float
    orch1_s: float
    orch2_s: float
    init1_s: float
    init2_s: float
    loop_cpu: float = math.nan       # CPU seconds of the loop (its training: the driver is the trainer)
    orch2_cpu: float = math.nan      # the driver's CPU seconds while `arml run`'s trials ran (c=2), report excluded
    writer_cpu: float = math.nan     # the MLflow writer process's CPU seconds (c=2), on another core
    fixed_cpu: float = math.nan      # the driver's CPU seconds outside Tune's run (set-up, export, end; not report)
    report_cpu: float = math.nan     # the driver's CPU seconds for the report at the end (c=2)
    bare2_s: float = math.nan        # bare Ray Tune, the same trials (c=2): wall seconds of Tuner.fit
    bare2_cpu: float = math.nan      # ... and the driver's CPU seconds

    @property
    def overhead(self) -> float:
        return (self.orch1_s - self.loop_s) / self.n

    @property
    def overhead_no_init(self) -> float:
        return (self.orch1_s - self.init1_s - self.loop_s) / self.n

    @property
    def speedup(self) -> float:
        return self.orch1_s / self.orch2_s


def build_plan(n: int, concurrency: int) -> Plan:
    """The benchmark study with exactly `n` trials (named by N and concurrency: one run folder each)."""
    name = f"overhead_n{n}_c{concurrency}"
    seeds = math.ceil(n / PER_SEED)
    text = STUDY.format(name=name, seeds=list(range(seeds)), max_trials=seeds * PER_SEED,
                        concurrency=concurrency)
    plan = make_plan(parse_study(text, f"<{name}>"))
    return dataclasses.replace(plan, trials=plan.trials[:n])


def driver_cpu() -> float:
    """CPU seconds of this process alone (every thread of it; not Ray's GCS, raylet or workers, its children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """CPU seconds of this process's children that ended and were waited for: around `run_plan`, the MLflow writer
    (`arml-mlflow`, joined at the end of each launch); Ray's own processes end only at `ray.shutdown()`."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def plain_loop(plan: Plan) -> float:
    import torch

    from trainables import fit

    torch.set_num_threads(1)
    fit(plan.trials[0].config)   # warm-up: imports, the digits data set's cache, first-call costs
    start, cpu = time.perf_counter(), driver_cpu()
    for trial in plan.trials:
        fit(trial.config)
    plain_loop.cpu = driver_cpu() - cpu
    return time.perf_counter() - start


def bare_trial(config: dict, trials: dict) -> None:
    """Bare Ray Tune's trainable: `trainables.fit` of the trial, each evaluation reported with its checkpoint."""
    import torch
    from ray import tune

    from trainables import fit

    torch.set_num_threads(1)

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        if checkpoint_dir is None:
            tune.report(metrics)
        else:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    fit(trials[config["trial_id"]], report)


def bare_tune(plan: Plan, root: str, concurrency: int) -> tuple[float, float]:
    """(wall seconds, driver CPU seconds) of bare Ray Tune running the same trials: the Tuner `arml run` builds
    (a grid over trial ids, the configs handed over by `tune.with_parameters`, reused actors, 1 CPU per trial,
    `concurrency` at once, 4 checkpoints kept) with Tune's defaults otherwise (its CSV, JSON and TensorBoard loggers
    on) and no callbacks: no records, no MLflow, no progress line, no report. Ray is started and stopped around it."""
    import ray
    from ray import tune

    table = {t.trial_id: t.config.to_dict() for t in plan.trials}
    saved = os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)   # `arml run` turned Tune's loggers off
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(bare_trial, trials=table), {"cpu": 1}),
            param_space={"trial_id": tune.grid_search(list(table))},
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name=f"bare_{plan.study.name}", storage_path=os.path.join(root, "bare"),
                                      verbose=0, checkpoint_config=tune.CheckpointConfig(num_to_keep=4)))
        start, cpu = time.perf_counter(), driver_cpu()
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            results = tuner.fit()
        wall, used = time.perf_counter() - start, driver_cpu() - cpu
    finally:
        ray.shutdown()
        if saved is not None:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = saved
    if results.num_errors:
        raise SystemExit(f"bare Tune: {results.num_errors} of {len(plan)} trials failed")
    return wall, used


def orchestrated(plan: Plan, root: str, log) -> tuple[float, float]:
    """(wall seconds of ray.init + run_plan + ray.shutdown, seconds of ray.init); checks every trial
    finished and has its records."""
    import ray

    from orchestrator.api import run_plan
    from orchestrator.store.folder import locate
    from orchestrator.store.tables import trials_table
    from orchestrator.store.tracking import default_uri

    storage = os.path.join(root, plan.study.name)
    run_dir = locate(plan.study.name, storage).run_dir
    # what orchestrator.run.session.RaySession.start sets and does (with num_cpus fixed), timed on its own
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    start = time.perf_counter()
    # address="local": always a new local Ray, even where /tmp/ray/ray_current_cluster names another one
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    init_s = time.perf_counter() - start
    cpu, writer = driver_cpu(), children_cpu()
    try:
        with contextlib.redirect_stdout(log), timed_report() as report, timed_fit() as fit:
            code = run_plan(plan, RunOptions(storage=storage, mlflow_uri=default_uri(run_dir)))
    finally:
        orchestrated.all_cpu = driver_cpu() - cpu - report.cpu   # all but the report: set-up, trials, export, end
        orchestrated.cpu = fit.cpu                               # while Tune ran the trials (Tuner.fit)
        orchestrated.report_cpu = report.cpu
        orchestrated.writer_cpu = children_cpu() - writer
        ray.shutdown()
    wall = time.perf_counter() - start
    table = trials_table(run_dir)
    finished = int((table["status"] == "finished").sum())
    if code != 0 or finished != len(plan):
        raise SystemExit(f"{plan.study.name}: run_plan returned {code}, {finished}/{len(plan)} trials "
                         f"finished; see {log.name} and {run_dir}")
    return wall, init_s


@contextlib.contextmanager
def timed_report():
    """The driver's CPU seconds spent in the report at the end of `run_plan` (`.cpu`), told apart from the trials'."""
    from orchestrator.report import build

    original = build.report_with_headline
    spent = argparse.Namespace(cpu=0.0)

    def timed(*args, **kwargs):
        cpu = driver_cpu()
        try:
            return original(*args, **kwargs)
        finally:
            spent.cpu += driver_cpu() - cpu

    build.report_with_headline = timed
    try:
        yield spent
    finally:
        build.report_with_headline = original


@contextlib.contextmanager
def timed_fit():
    """The driver's CPU seconds inside `tune.Tuner.fit` (`.cpu`): Tune's loop and the callbacks, trial by trial."""
    from ray import tune

    original = tune.Tuner.fit
    spent = argparse.Namespace(cpu=0.0)

    def timed(self, *args, **kwargs):
        cpu = driver_cpu()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.cpu += driver_cpu() - cpu

    tune.Tuner.fit = timed
    try:
        yield spent
    finally:
        tune.Tuner.fit = original


def measure(n: int, root: str, log, repeats: int) -> Row:
    """Loop, orch c=1, orch c=2, `repeats` times interleaved; each figure is its fastest repeat (the one
    least disturbed by other jobs), ray.init the one of that repeat."""
    plan1, plan2 = build_plan(n, 1), build_plan(n, 2)
    assert len(plan1) == n and [t.trial_id for t in plan1.trials] == [t.trial_id for t in plan2.trials]
    loops, orch1, orch2, bare2 = [], [], [], []
    for rep in range(repeats):
        folder = os.path.join(root, f"repeat{rep}")
        loops.append((plain_loop(plan1), plain_loop.cpu))
        orch1.append(orchestrated(plan1, folder, log))
        orch2.append((*orchestrated(plan2, folder, log), orchestrated.cpu, orchestrated.report_cpu,
                      orchestrated.writer_cpu, orchestrated.all_cpu))
        bare2.append(bare_tune(plan2, folder, 2))
        print(f"  N={n}: loop {loops[-1][0]:.2f} s, orchestrator 1 at a time {orch1[-1][0]:.1f} s, 2 at a time "
              f"{orch2[-1][0]:.1f} s (ray.init {orch1[-1][1]:.1f} s, {orch2[-1][1]:.1f} s), bare Tune 2 at a time "
              f"{bare2[-1][0]:.1f} s; driver CPU per trial in Tuner.fit: orchestrator {1000 * orch2[-1][2] / n:.0f} "
              f"ms, bare Tune {1000 * bare2[-1][1] / n:.0f} ms", flush=True)
    (orch1_s, init1_s), (orch2_s, init2_s, *_) = min(orch1), min(orch2)
    return Row(n, min(loops)[0], orch1_s, orch2_s, init1_s, init2_s, loop_cpu=min(c for _, c in loops),
               orch2_cpu=min(r[2] for r in orch2), report_cpu=min(r[3] for r in orch2),
               writer_cpu=min(r[4] for r in orch2), fixed_cpu=min(r[5] - r[2] for r in orch2), bare2_s=min(bare2)[0],
               bare2_cpu=min(c for _, c in bare2))


def print_table(rows: list[Row]) -> None:
    head = ["N", "loop s", "loop s/trial", "ray.init s", "orch c=1 s", "orch c=2 s", "overhead/trial s",
            "... excl. init s", "speed-up c=2"]
    lines = [[str(r.n), f"{r.loop_s:.2f}", f"{r.loop_s / r.n:.3f}", f"{r.init1_s:.1f}", f"{r.orch1_s:.1f}",
              f"{r.orch2_s:.1f}", f"{r.overhead:.2f}", f"{r.overhead_no_init:.2f}", f"{r.speedup:.2f}x"]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for line in lines:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))
    print("\ndriver CPU per trial while Tune runs the trials (Tuner.fit), 2 at a time (resource.getrusage of the "
          "driver process alone); the orchestrator's fixed costs (set-up, export and end; the report) and the CPU of "
          "its MLflow writer process (arml-mlflow, on another core) apart:")
    head = ["N", "orchestrator ms", "bare Tune ms", "ratio", "+ set-up/end s", "+ report s", "MLflow writer ms",
            "loop ms (training)", "bare Tune wall s", "orch c=2 wall s"]
    lines = [[str(r.n), f"{1000 * r.orch2_cpu / r.n:.0f}", f"{1000 * r.bare2_cpu / r.n:.0f}",
              f"{r.orch2_cpu / r.bare2_cpu:.2f}x", f"{r.fixed_cpu:.1f}", f"{r.report_cpu:.1f}",
              f"{1000 * r.writer_cpu / r.n:.0f}", f"{1000 * r.loop_cpu / r.n:.0f}", f"{r.bare2_s:.1f}",
              f"{r.orch2_s:.1f}"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for line in lines:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def print_split(rows: list[Row]) -> None:
    """Fixed + per-trial seconds from the smallest and the largest N (a straight line through both)."""
    rows = sorted(rows, key=lambda r: r.n)
    if len(rows) < 2 or rows[0].n == rows[-1].n:
        return
    a, b = rows[0], rows[-1]
    parts = []
    for label, x, y in (("loop", a.loop_s, b.loop_s), ("orch c=1", a.orch1_s, b.orch1_s),
                        ("orch c=2", a.orch2_s, b.orch2_s)):
        per_trial = (y - x) / (b.n - a.n)
        fixed = f"{x - per_trial * a.n:.1f}".replace("-0.0", "0.0")
        parts.append(f"{label} {fixed} s + {per_trial:.3f} s/trial")
    print(f"fixed + per trial, from N={a.n} and N={b.n}: " + "; ".join(parts))


def profile(n: int, root: str, log, out: str) -> None:
    """cProfile of the driver's main thread (Tune's loop and the callback run there) through `arml run`, 2 at a time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.thread_time)   # the main thread's CPU, not wall time on a busy machine
    plan = build_plan(n, 2)
    import orchestrator.api as api

    inner = api.run_plan

    def profiled(*args, **kwargs):
        profiler.enable()
        try:
            return inner(*args, **kwargs)
        finally:
            profiler.disable()

    api.run_plan = profiled
    try:
        orchestrated(plan, os.path.join(root, "profile"), log)
    finally:
        api.run_plan = inner
    profiler.dump_stats(out)
    print(f"driver CPU (trials) {orchestrated.cpu:.1f} s = {1000 * orchestrated.cpu / n:.0f} ms per trial; report "
          f"{orchestrated.report_cpu:.1f} s; profile in {out}")
    pstats.Stats(out).sort_stats("tottime").print_stats(30)


# ---- a simulated wide cluster ----------------------------------------------------------------------------------
def noop_trial(config: dict, trials: dict) -> None:
    """A trial that does almost nothing (in place of `orchestrator.run.trial_worker.run_trial`): one report at its
    last step with what a real trial reports (accuracies, cost, node) and a one-byte checkpoint."""
    import os
    import socket
    import tempfile

    import ray
    from ray import tune

    steps = trials[config["trial_id"]]["config"]["steps"]
    metrics = {"step": steps, "val_acc": 0.5, "best_val_acc": 0.5, "test_acc": 0.5, "test_acc_at_best_val": 0.5,
               "best_step": steps, "wall_s": 0.001, "cpu_s": 0.001, "gpu_s": 0.0, "retry_from_step": 0,
               "node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()}
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "state.pt"), "wb") as f:
            f.write(b"0")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


class RssSampler(threading.Thread):
    """The driver's resident memory every `every_s` seconds (MB): `.first`, `.peak`, `.last`."""

    def __init__(self, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every_s, self.first, self.peak, self.last = every_s, rss_mb(), 0.0, 0.0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.last = rss_mb()
            self.peak = max(self.peak, self.last)

    def stop(self) -> float:
        self._stop.set()
        self.join()
        self.last = rss_mb()
        return self.last


def wide(n: int, cpus: int, root: str, log) -> None:
    """`arml run`'s machinery on a local Ray declaring `cpus` CPUs (a cluster that wide, simulated on this machine)
    running `n` trials that do almost nothing, `cpus` at once: trials per second sustained (from 10% to 90% of
    the trials recorded), the driver's CPU per trial and its resident memory when the trials start and end."""
    import ray

    from orchestrator.api import run_plan
    from orchestrator.run import launch as launching
    from orchestrator.store.folder import locate
    from orchestrator.store.records import RunRecords
    from orchestrator.store.tracking import default_uri

    plan = build_plan(n, cpus)
    storage = os.path.join(root, "wide")
    run_dir = locate(plan.study.name, storage).run_dir
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    original, launching.run_trial = launching.run_trial, noop_trial
    from orchestrator.store import tracking

    closing, writer = tracking.TrackerProcess.close, {}

    def close(self, timeout=None):   # when the launch handed its last record to MLflow's writer, and when it was done
        writer["asked"] = time.perf_counter()
        closing(self, timeout)
        writer["done"] = time.perf_counter()

    tracking.TrackerProcess.close = close
    writer_cpu = children_cpu()
    sampler = RssSampler()
    sampler.start()
    at_report: dict[str, float] = {}
    start, cpu = time.perf_counter(), driver_cpu()
    try:
        with contextlib.redirect_stdout(log), timed_report() as report:
            from orchestrator.report import build

            timed = build.report_with_headline

            def noted(*args, **kwargs):
                at_report.update(wall=time.perf_counter(), rss=rss_mb(), cpu=driver_cpu())
                return timed(*args, **kwargs)

            build.report_with_headline = noted
            code = run_plan(plan, RunOptions(storage=storage, mlflow_uri=default_uri(run_dir)))
    finally:
        launching.run_trial = original
        tracking.TrackerProcess.close = closing
        writer_cpu = children_cpu() - writer_cpu
        end_rss = sampler.stop()
        ray.shutdown()
    wall = time.perf_counter() - start
    stamps = sorted(r["recorded_at"] for r in RunRecords.read(run_dir).rows)
    if code != 0 or len(stamps) != n:
        raise SystemExit(f"wide: run_plan returned {code}, {len(stamps)}/{n} trials recorded; see {log.name}")
    lo, hi = stamps[int(0.1 * n)], stamps[int(0.9 * n) - 1]
    trials_cpu = at_report["cpu"] - cpu
    print(f"\nsimulated wide cluster: a local Ray declaring {cpus} CPUs, {n} trials that do almost nothing, {cpus} at "
          f"a time, through `arml run`'s machinery (records, MLflow sqlite, progress; report at the end)")
    print(f"  trials per second, sustained (10% to 90% of the trials recorded): {0.8 * n / (hi - lo):.1f}")
    print(f"  trials phase: {at_report['wall'] - start:.0f} s wall, driver CPU {trials_cpu:.0f} s = "
          f"{1000 * trials_cpu / n:.0f} ms per trial; the report after it: {report.cpu:.0f} s CPU; all: {wall:.0f} s")
    print(f"  driver RSS: {sampler.first:.0f} MB at the start, {at_report['rss']:.0f} MB when the last trial ended, "
          f"{sampler.peak:.0f} MB at most, {end_rss:.0f} MB after the report")
    print(f"  MLflow writer (arml-mlflow, its own process): {writer_cpu:.0f} s CPU = {1000 * writer_cpu / n:.0f} ms "
          f"per trial; done logging {writer['done'] - writer['asked']:.0f} s after Tune's run ended "
          f"({writer['asked'] - start:.0f} s after the start)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Orchestrator (Ray Tune + records + MLflow) wall time against a plain loop of the same "
                    "trivially short trials; overhead per trial = (orch c=1 - loop) / N, speed-up = orch c=1 / "
                    "orch c=2 (max_concurrent 2 on 2 CPUs). See the module docstring for the details.")
    parser.add_argument("--n", type=int, nargs="+", default=[8, 32], metavar="N",
                        help="study sizes (trials) to measure (default: 8 32; e.g. --n 200 or --n 8 32 200)")
    parser.add_argument("--quick", action="store_true", help="N = 8 only")
    parser.add_argument("--repeat", type=int, default=1, metavar="R",
                        help="measure each N R times, interleaved, and keep the fastest of each (default 1; "
                             "use 3 on a busy machine)")
    parser.add_argument("--wide", type=int, metavar="N",
                        help="instead: a simulated wide cluster, N trials that do almost nothing on a local Ray "
                             "declaring --wide-cpus CPUs (e.g. --wide 2000)")
    parser.add_argument("--wide-cpus", type=int, default=64, metavar="C", help="CPUs the wide cluster declares "
                                                                              "(default 64)")
    parser.add_argument("--profile", metavar="FILE",
                        help="with --n N (one N): cProfile the driver's main thread through `arml run` (2 at a "
                             "time) into FILE and print its top functions")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the run folders (records, MLflow stores, log) here and keep them "
                             "(default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    sizes = [8] if args.quick else args.n
    if any(n < 1 for n in sizes) or args.repeat < 1:
        parser.error("every N and R must be >= 1")

    root = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="arml-overhead-")
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        parser.error(f"--keep {root} is not empty; give a new or empty folder")
    start = time.perf_counter()
    import mlflow  # noqa: F401
    import ray  # noqa: F401
    from ray import tune  # noqa: F401
    imports_s = time.perf_counter() - start
    load0 = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, Ray with num_cpus={CPUS}; load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f}; import ray, ray.tune, mlflow: {imports_s:.1f} s (not in the table)", flush=True)
    rows = []
    try:
        with open(os.path.join(root, "run_study.log"), "w") as log:
            if args.wide:
                wide(args.wide, args.wide_cpus, root, log)
                return 0
            if args.profile:
                profile(sizes[0], root, log, args.profile)
                return 0
            for n in sizes:
                rows.append(measure(n, root, log, args.repeat))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()
    print(f"\nload average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print_table(rows)
    print("overhead/trial = (orch c=1 - loop) / N; ... excl. init leaves ray.init out; "
          "speed-up c=2 = orch c=1 / orch c=2")
    print_split(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
