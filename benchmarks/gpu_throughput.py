"""The paper's three settings on one GPU, measured side by side in one run of `trainables.fit`.

For S4L on CIFAR-10 (WRN-28-2, 32x32, batch 256 + 256), multi-label on CelebA (ResNet-18, 112x112, the
main attribute and 39 auxiliary ones, batch 256 + 256) and domain generalization on PACS (ResNet-18,
224x224, batch 32 + 3 x 32), with the presets' batch sizes, on fake data written in the real on-disk formats
(tests/helpers/fakedata.py: all 50,000 CIFAR-10 training images, a few thousand CelebA and PACS image files at their
real sizes), this measures:

- steps/s and images/s of whole training steps of `trainables.fit` for Uniform, ARML per step (with the
  closure), the cheap ARML (`amortize=8`) and Auto-Lambda, with bf16 autocast and channels_last, and
  Uniform in float32, without channels_last and with torch.compile (its compile time reported apart);
- peak GPU memory (max allocated after the warm-up), and the share of step time the GPU is busy: the union
  of CUDA kernel and copy intervals (torch.profiler) over a steady-state interval's wall time, and the
  kernel time per step over the unprofiled step time; NVML's utilisation as a second reading;
- host waits per step (`torch.cuda.set_sync_debug_mode`), each with the line that asked for it;
- the file loaders alone (CelebA, PACS: JPEG decoding in worker processes) against training;
- the ARML alpha gradient's error with bf16 autocast and TF32 against float32 (TF32 off, exact double
  backward), on a real batch of each setting;
- four `fit` processes sharing the GPU (what `gpus_per_trial = 0.25` asks Ray for) against one;
- from the figures, the wall time of the paper's full runs and of the Table 1 study.

How it times: `fit` runs as users run it; evaluation is replaced by a stand-in that synchronises the GPU
and notes the time (so intervals between evaluations are pure training); the first intervals are warm-up
(cuDNN autotuning, decoding the file sets into the GPU cache, compiling). Results are appended to
OUT/results.jsonl as they come; OUT/summary.json, OUT/table.md and OUT/log.txt at the end. A time budget
keeps the whole run inside --budget seconds: measurements that would not fit are skipped and listed.

    python benchmarks/gpu_throughput.py --out /tmp/gpu                   # on a GPU: all of it needs > 6 min
    python benchmarks/gpu_throughput.py --out /tmp/gpu --tiny            # CPU smoke run, seconds
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import gc
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "helpers")]

import torch  # noqa: E402
from gpu_summary import derived, fmt, goals, paper_estimates, summarize, write_summary  # noqa: E402, F401

import arml  # noqa: E402
import trainables.loop as loop  # noqa: E402
import trainables.settings as settings_module  # noqa: E402
from trainables.config import TrainConfig, resolve_config  # noqa: E402
from trainables.distributed import pick_device  # noqa: E402

METHODS = {  # label: (weighting, options)
    "uniform": ("uniform", {}),
    "arml": ("arml", {}),
    "arml_cheap": ("arml", {"amortize": 8}),
    "autolambda": ("autolambda", {}),
}
MORE_METHODS = {"gradnorm": ("gradnorm", {}), "cosinesim": ("cosinesim", {}), "olaux": ("olaux", {}),
                "adaloss": ("adaloss", {})}
FILL_STEPS = {"mlc": 12, "dg": 22}  # steps for one pass over the fake CelebA (2,560 / 256) and PACS (630 / 32)
ALPHA_COST = {"ssl": 35, "dg": 25, "mlc": 150}   # seconds on the H200 (the CelebA case: ResNet-18, batch 512)


class Out:
    """Results appended to OUT/results.jsonl as they come, and a log; everything also kept in memory."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder, self.rows, self.skipped = folder, [], []
        self._log = open(os.path.join(folder, "log.txt"), "a")
        self.t0 = time.perf_counter()

    def log(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.t0:7.1f}s] {message}"
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        row = {"kind": kind, **fields}
        self.rows.append(row)
        with open(os.path.join(self.folder, "results.jsonl"), "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        return row


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"device": str(device), "torch": torch.__version__, "cpus": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=torch.cuda.get_device_name(device), capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = "CPU"
    return info


# ---- data ---------------------------------------------------------------------------------------------------


def _write(kind: str, root: str, tiny: bool, part: int = 0) -> str:
    from fakedata import PACS_DOMAINS, write_fake_celeba, write_fake_cifar10, write_fake_pacs

    if kind == "cifar10":
        write_fake_cifar10(root, n_train=200 if tiny else 50_000, n_test=40 if tiny else 10_000)
    elif kind == "celeba":
        write_fake_celeba(root, partition=(48, 8, 8) if tiny else (2560, 256, 256),
                          size=(48, 56) if tiny else (178, 218))
    else:
        write_fake_pacs(root, per_class=4 if tiny else 100, size=40 if tiny else 227,
                        domains=(PACS_DOMAINS[part],), seed=part)
    return kind


def write_data(root: str, tiny: bool) -> None:
    """CIFAR-10 (all 50,000 training images), CelebA (3,072 JPEGs at 178x218), PACS (2,800 images at 227x227,
    sketch as PNG) in their real layouts under `root`, written by several processes at once."""
    jobs = [("cifar10", 0), ("celeba", 0)] + [("pacs", d) for d in range(4)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1), mp_context=context) as pool:
        list(pool.map(_write, [k for k, _ in jobs], [root] * len(jobs), [tiny] * len(jobs), [p for _, p in jobs]))


def setting_configs(root: str, device: torch.device, tiny: bool) -> dict[str, TrainConfig]:
    """The presets with their batch sizes, on the fake data (CelebA: label_fraction 0.2 gives 512 labeled
    images, enough for the preset's main batch of 256, as 1% of the real 162,770 is)."""
    common = dict(data_root=root, device=str(device), checkpoint_every=10**9, eval_batch_size=256,
                  max_eval_items=256)
    configs = {
        "ssl": resolve_config("ssl_cifar10_paper", **common),
        "mlc": resolve_config("mlc_celeba_paper", label_fraction=0.2, **common),
        "dg": resolve_config("dg_pacs_paper", **common),
    }
    if tiny:
        small = dict(model="small_cnn", batch_size=4, aux_batch_size=4, num_workers=0)
        configs = {"ssl": configs["ssl"].replace(label_budget=20, **small),
                   "mlc": configs["mlc"].replace(image_size=16, label_fraction=0.5, **small),
                   "dg": configs["dg"].replace(image_size=16, per_class=2, **small)}
    return configs


# ---- timing fit -------------------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _busy_from_trace(path: str) -> dict[str, float]:
    """Union of the device's kernel, copy and set intervals in a Chrome trace, and their plain sum (us)."""
    with open(path) as f:
        events = json.load(f).get("traceEvents", [])
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
                   if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))
    union, end, total = 0.0, -math.inf, 0.0
    for start, stop in spans:
        total += stop - start
        if stop <= end:
            continue
        union += stop - max(start, end)
        end = stop
    return {"union_us": union, "sum_us": total, "count": len(spans),
            "first_us": spans[0][0] if spans else 0.0, "last_us": max((s for _, s in spans), default=0.0)}


class _Utilisation:
    """NVML's GPU utilisation (share of time a kernel ran, per sample period) polled in a thread."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.device.type != "cuda":
            return
        try:
            torch.cuda.utilization(self.device)
        except Exception:
            return
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(Exception):
                self.samples.append(torch.cuda.utilization(self.device))

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return statistics.mean(self.samples) if self.samples else None


def time_fit(config: TrainConfig, *, interval: int, warmup: int = 1, timed: int = 3, profile: bool = False,
             sync_debug: bool = False, closure: str = "", tmp: str = "") -> dict[str, Any]:
    """Runs `fit(config)` for warm-up + timed (+ profiled, + sync-debug) intervals of `interval` steps and
    returns the figures. `closure` replaces what the weighting's closure evaluates: "" (the loop's own),
    "fp32_strict" (float32 with TF32 off), "step" (the step's autocast)."""
    device = pick_device(config.device)
    plan = ["warmup"] * warmup + ["timed"] * timed + (["profile"] if profile and device.type == "cuda" else []) \
        + (["sync"] if sync_debug and device.type == "cuda" else [])
    config = config.replace(eval_every=interval, steps=interval * (len(plan) + 2))
    marks: dict[str, list[float]] = {"start": [], "end": []}
    found: dict[str, Any] = {}
    holder: dict[str, Any] = {}
    utilisation = _Utilisation(device)

    def stand_in(model, setting, weighting, names, mean_losses, best, step, config_):
        k = len(marks["start"])                    # interval k just ended
        kind = plan[k]
        if kind == "sync":
            torch.cuda.set_sync_debug_mode(0)      # this function's own wait is not the step's
        sync(device)
        now = time.perf_counter()
        marks["start"].append(now)
        if kind == "profile":
            profiler = holder.pop("profiler")
            try:
                profiler.__exit__(None, None, None)
                trace = os.path.join(tmp or tempfile.gettempdir(), f"trace-{os.getpid()}.json")
                profiler.export_chrome_trace(trace)
                found["busy"] = _busy_from_trace(trace)
                found["profiled_wall_us"] = (now - marks["end"][-1]) * 1e6
                os.remove(trace)
            except Exception as error:
                found["profile_error"] = f"{type(error).__name__}: {error}"
        if kind == "sync":
            holder.pop("warnings").__exit__(None, None, None)
            sites = Counter(f"{os.path.relpath(w.filename, ROOT)}:{w.lineno}" for w in holder["records"]
                            if "synchroniz" in str(w.message))
            found["syncs_per_step"] = sum(sites.values()) / interval
            found["sync_sites"] = {site: n / interval for site, n in sites.most_common(8)}
        if kind == "timed" and (k + 1 == len(plan) or plan[k + 1] != "timed"):
            found["utilisation_pct"] = utilisation.stop()
        if k + 1 == len(plan):
            found["streams"] = {name: {"batch": s.batch_size, "cached": s.cached, "images": len(s.images)}
                                for name, s in setting.streams.items()}
            if device.type == "cuda":
                found["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                found["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
            raise _Stop
        nxt = plan[k + 1]
        if kind == "warmup" and nxt != "warmup" and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if nxt == "timed" and kind != "timed":
            utilisation.start()
        if nxt == "profile":
            activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            holder["profiler"] = torch.profiler.profile(activities=activities)
            holder["profiler"].__enter__()
        if nxt == "sync":
            holder["warnings"] = warnings.catch_warnings(record=True)
            holder["records"] = holder["warnings"].__enter__()
            warnings.simplefilter("always")
        sync(device)
        marks["end"].append(time.perf_counter())
        if nxt == "sync":
            torch.cuda.set_sync_debug_mode(1)
        return {"step": step, "val_acc": 0.0, "test_acc": 0.0}

    original, original_closure = loop._evaluate, loop.closure_losses
    loop._evaluate = stand_in
    if closure:
        loop.closure_losses = CLOSURES[closure]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    try:
        loop.fit(config)
    except _Stop:
        pass
    finally:
        loop._evaluate, loop.closure_losses = original, original_closure
        utilisation.stop()
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
        for name in ("profiler", "warnings"):   # left open by a failure inside an interval
            if name in holder:
                with contextlib.suppress(Exception):
                    holder.pop(name).__exit__(None, None, None)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    starts, ends = marks["start"], marks["end"]
    spans = [starts[k] - (ends[k - 1] if k else began) for k in range(len(starts))]
    timed_spans = [s for s, kind in zip(spans, plan) if kind == "timed"]
    step_s = sum(timed_spans) / (interval * len(timed_spans))
    per_step = sum(s["batch"] for s in found["streams"].values())
    result = {
        "steps_per_s": 1.0 / step_s, "images_per_step": per_step, "images_per_s": per_step / step_s,
        "interval_steps": interval, "interval_s": [round(s, 4) for s in spans],
        "first_interval_s": spans[0], "warmup_s": sum(s for s, kind in zip(spans, plan) if kind == "warmup"),
        **{k: v for k, v in found.items() if k != "busy"},
    }
    if "busy" in found:
        busy, wall = found["busy"], found["profiled_wall_us"]
        result["gpu_busy_pct_profiled"] = 100.0 * busy["union_us"] / wall
        result["gpu_ms_per_step"] = busy["union_us"] / 1e3 / interval
        result["gpu_busy_pct"] = min(100.0, 100.0 * busy["union_us"] / interval / (step_s * 1e6))
        result["profiled_step_ms"] = wall / 1e3 / interval
        result["kernels_per_step"] = busy["count"] / interval
    return result


# ---- what the closure evaluates: the loop's choice and the alternatives measured ----------------------------


@contextlib.contextmanager
def no_tf32():
    """float32 convolutions and matrix products without TF32 (exact float32 arithmetic on a GPU)."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=torch.backends.cudnn.benchmark,
                                        deterministic=torch.backends.cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _closure_fp32_strict(losses, device, amp):
    def strict():
        with no_tf32():
            return losses()
    return strict


def _closure_step(losses, device, amp):
    return loop._autocast(losses, device, amp)


CLOSURES = {"fp32_strict": _closure_fp32_strict, "step": _closure_step}


def alpha_gradient_errors(config: TrainConfig, batches: int = 2) -> dict[str, Any]:
    """ARML's alpha gradient on real batches of the setting, in each precision, against float32 with TF32 off
    and the exact double backward (no closure). Relative error |g - g_ref| / |g_ref|, worst over batches."""
    device = pick_device(config.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    built = loop.build(config.replace(weighting="uniform"), device)
    model, shared = built.model, built.shared
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False      # no autotuning for the many shapes and precisions below

    def autocast(on: bool) -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    variants = {  # name: (step in bf16, TF32 in the step, closure kind or None for the exact double backward,
        #               fd_eps, directional: "central" for the closure rows of the first H200 run, or "jvp")
        "fp32_exact_tf32": (False, True, None, None, None),
        "fp32_closure_tf32": (False, True, "fp32", None, "central"),
        "fp32_closure_strict": (False, False, "fp32", None, "central"),
        "bf16_step_fp32_closure_tf32": (True, True, "fp32", None, "central"),
        "bf16_step_fp32_closure_strict": (True, True, "fp32_strict", None, "central"),
        "bf16_step_bf16_closure": (True, True, "bf16", None, "central"),
        "bf16_step_bf16_closure_eps1e-3": (True, True, "bf16", 1e-3, "central"),
        "bf16_step_bf16_closure_eps1e-2": (True, True, "bf16", 1e-2, "central"),
        "bf16_exact": (True, True, None, None, None),
        # forward mode (the default since the H200 runs): fp32, and a bf16 step with the pass in fp32 or under
        # the step's autocast (what `fit` does with `amp`: trainables.loop.closure_losses)
        "fp32_jvp_tf32": (False, True, "fp32", None, "jvp"),
        "fp32_jvp_strict": (False, False, "fp32", None, "jvp"),
        "bf16_step_fp32_jvp": (True, True, "fp32", None, "jvp"),
        "bf16_step_bf16_jvp": (True, True, "bf16", None, "jvp"),
    }
    errors: dict[str, list[float]] = {name: [] for name in variants}
    references = []
    k, main_weight = built.weighting.num_aux, built.setting.main_weight

    def alpha(losses, bf16: bool, tf32: bool, kind: str | None, eps: float | None,
              directional: str | None = None) -> torch.Tensor:
        weighting = arml.ARML(num_aux=k, fd_eps=eps, directional=directional)
        for p in model.parameters():
            p.grad = None
        with contextlib.ExitStack() as stack:
            if not tf32:
                stack.enter_context(no_tf32())
            with autocast(bf16):
                main, aux = losses()

        def strict():
            with no_tf32():
                return losses()

        def bf16_closure():
            with autocast(True):
                return losses()

        chosen = {"fp32": losses, "fp32_strict": strict, "bf16": bf16_closure}.get(kind)
        closure = arml.stateless(chosen, model) if chosen else None
        with contextlib.ExitStack() as stack:
            if not tf32:
                stack.enter_context(no_tf32())
            return weighting.alpha_gradient(main, aux, shared, closure, main_weight)

    for b in range(batches):
        losses, _, _ = loop.step_batches(built, b + 1)
        reference = alpha(losses, False, False, None, None)
        references.append(reference.tolist())
        for name, spec in variants.items():
            try:
                g = alpha(losses, *spec)
                errors[name].append(float((g - reference).norm() / reference.norm().clamp_min(1e-30)))
            except Exception as error:  # e.g. a double backward the backend lacks
                errors[name].append(float("nan"))
                errors.setdefault("_errors", []).append(f"{name}: {type(error).__name__}: {error}")
    torch.backends.cudnn.benchmark = benchmark
    del built
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    worst = {name: max(v) if v and not any(math.isnan(x) for x in v) else float("nan")
             for name, v in errors.items() if not name.startswith("_")}
    return {"K": len(references[0]), "worst_relative_error": worst, "reference": references,
            "errors": errors.get("_errors", []), "tested_tolerance": 2e-2}


# ---- the loader alone -----------------------------------------------------------------------------------------


def time_loader(config: TrainConfig, seconds: float) -> dict[str, Any]:
    """Images/s of the setting's streams alone (`next_batches`, decoding files, no cache), and with the
    data set's augmentation on the device."""
    from trainables.augment import AUGMENTATIONS
    from trainables.config import data_request
    from trainables.data import build_data

    device = pick_device(config.device)
    before = settings_module.CACHE_FRACTION
    settings_module.CACHE_FRACTION = 0.0
    try:
        data = build_data(config.dataset, data_request(config))
        setting = settings_module.SETTING_CLASSES.get(config.setting)(data, config, device, {}, 0, 1)
        augment = AUGMENTATIONS.get(data.info.augment)
        per_step = sum(s.batch_size for s in setting.streams.values())
        gen = torch.Generator().manual_seed(0)

        def rate(with_augment: bool) -> float:
            for _ in range(2):
                setting.next_batches()
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds or steps < 3:
                (x, _), aux = setting.next_batches()
                if with_augment:
                    augment(x, gen)
                    setting.augment_aux(aux, augment, gen)
                sync(device)
                steps += 1
            return steps * per_step / (time.perf_counter() - start)

        result = {"images_per_step": per_step, "loader_images_per_s": rate(False),
                  "loader_augment_images_per_s": rate(True), "num_workers": config.num_workers}
        setting.streams.clear()
        return result
    finally:
        settings_module.CACHE_FRACTION = before
        gc.collect()


# ---- four trials sharing the GPU ------------------------------------------------------------------------------


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One trial of the shared-GPU measurement: fit(config) whose report waits after its warm-up until
    `start_at` (wall clock), then counts steps until `start_at + duration`."""
    config = TrainConfig.from_dict(spec["config"])
    stamps: list[tuple[float, int]] = []

    def report(metrics: dict[str, Any], checkpoint: str | None) -> None:
        now = time.time()
        if not stamps and now < spec["start_at"]:
            time.sleep(spec["start_at"] - now)
            now = time.time()
        stamps.append((now, metrics["step"]))
        if len(stamps) > 1 and now >= spec["start_at"] + spec["duration"]:
            raise _Stop

    original = loop._evaluate
    loop._evaluate = lambda *args: (sync(pick_device(config.device)),
                                    {"step": args[6], "val_acc": 0.0, "test_acc": 0.0})[1]
    try:
        loop.fit(config, report)
    except _Stop:
        pass
    finally:
        loop._evaluate = original
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    return {"steps": s1 - s0, "seconds": t1 - t0, "steps_per_s": (s1 - s0) / (t1 - t0), "window": [t0, t1],
            "late": t0 > spec["start_at"] + 1.0}


def shared_gpu(config: TrainConfig, trials: int, duration: float, lead: float, tmp: str) -> dict[str, Any]:
    """`trials` processes, each `fit` on the same GPU at once; their steady-state steps/s and the sum."""
    start_at = time.time() + lead
    procs, outs = [], []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    for i in range(trials):
        out = os.path.join(tmp, f"worker-{trials}-{i}.json")
        spec = {"config": config.replace(seed=i).to_dict(), "start_at": start_at, "duration": duration, "out": out}
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outs.append(out)
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=lead + duration + 25)[0][-2000:])
        except subprocess.TimeoutExpired:
            proc.kill()
            logs.append(proc.communicate()[0][-2000:])
    results = []
    for out, text in zip(outs, logs):
        if os.path.exists(out):
            with open(out) as f:
                results.append(json.load(f))
        else:
            results.append({"error": text})
    good = [r for r in results if "steps_per_s" in r]
    overlap = (min(r["window"][1] for r in good) - max(r["window"][0] for r in good)) if good else 0.0
    return {"trials": trials, "per_trial": results, "aggregate_steps_per_s": sum(r["steps_per_s"] for r in good),
            "finished": len(good), "overlap_s": overlap}


# ---- the run -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n    python")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu-throughput", help="folder for results.jsonl, summary.json, ...")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds for the whole run (default 360)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default="", help="where to write the fake data (default: a temp folder)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny data, small_cnn, few steps")
    parser.add_argument("--no-shared", action="store_true", help="skip the four-trials-on-one-GPU measurement")
    parser.add_argument("--only", default="", help="comma-separated measurements to run, by label or its first"
                        " parts: 'ssl/uniform/bf16_cl', 'ssl/arml', 'alpha/dg', 'loader', 'shared' (default: all)")
    parser.add_argument("--summarize", default="", metavar="RESULTS_JSONL",
                        help="measure nothing: summary.json and table.md in --out from an earlier results.jsonl")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.summarize:
        return summarize(args.summarize, args.out)
    if args.worker:
        spec = json.loads(args.worker)
        result = worker(spec)
        with open(spec["out"], "w") as f:
            json.dump(result, f)
        return result

    budget = Budget(args.budget)
    only = [x for x in args.only.split(",") if x]

    def wanted(label: str) -> bool:
        return not only or any(label == x or label.startswith(x + "/") for x in only)

    out = Out(args.out)
    device = pick_device(args.device)
    tiny = args.tiny
    info = device_info(device)
    out.add("device", **info)
    out.log(f"device {info}")
    tmp = tempfile.mkdtemp(prefix="arml-gpu-")
    root = args.data_root or os.path.join(tmp, "data")
    os.makedirs(root, exist_ok=True)
    tick = time.perf_counter()
    write_data(root, tiny)
    out.add("data", seconds=time.perf_counter() - tick, root=root)
    out.log(f"fake data written in {time.perf_counter() - tick:.1f}s")
    configs = setting_configs(root, device, tiny)
    cuda = device.type == "cuda"
    uniform_rate: dict[str, float] = {}
    measured: dict[tuple[str, str, str], dict[str, Any]] = {}

    def train(setting: str, method: str, variant: str, *, cost: float = 0.0, closure: str = "",
              profile: bool = False, sync_debug: bool = False, timed: int = 2, ratio: float = 1.0,
              compile_options: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any] | None:
        """One timed fit run (skipped when the budget cannot hold its estimated cost)."""
        label = f"{setting}/{method}/{variant}"
        if not wanted(label):
            return None
        rate = uniform_rate.get(setting)
        step_s = ratio / rate if rate else (0.05 if cuda else 0.05)
        interval = 2 if tiny else max(5, min(40, round(0.4 / step_s)))
        file_based = setting in ("mlc", "dg")
        # file-based sets: warm up until the GPU cache holds every image (a pass over the largest stream)
        fill = FILL_STEPS[setting] if file_based and not tiny and variant != "bf16_cl_nocache" else 0
        warmup = 1 + math.ceil(fill / interval)
        estimate = cost or (6 + (warmup + timed + profile + sync_debug + 1) * interval * step_s * 1.3
                            + (4 if file_based else 0))
        if budget.left() < estimate:
            out.skipped.append(label)
            out.log(f"skip {label}: {budget.left():.0f}s left, needs about {estimate:.0f}s")
            return None
        weighting, options = (METHODS | MORE_METHODS)[method]
        config = configs[setting].replace(weighting=weighting, weighting_options=options, **overrides)
        tick = time.perf_counter()
        options_before = loop.COMPILE_OPTIONS
        if compile_options is not None:
            loop.COMPILE_OPTIONS = compile_options
        try:
            result = time_fit(config, interval=interval, warmup=warmup, timed=1 if tiny else timed,
                              profile=profile, sync_debug=sync_debug, closure=closure, tmp=tmp)
        except Exception as error:
            out.add("error", what=label, error=f"{type(error).__name__}: {error}", trace=traceback.format_exc()[-3000:])
            out.log(f"FAILED {label}: {type(error).__name__}: {error}")
            gc.collect()
            return None
        finally:
            loop.COMPILE_OPTIONS = options_before
        row = out.add("train", setting=setting, method=method, variant=variant, seconds=time.perf_counter() - tick,
                      amp=config.amp, channels_last=config.channels_last, compile=config.compile,
                      closure=closure or "loop", **result)
        measured[(setting, method, variant)] = row
        if method == "uniform" and variant == "bf16_cl":
            uniform_rate[setting] = row["steps_per_s"]
        out.log(f"{label}: {row['steps_per_s']:.2f} steps/s, {row['images_per_s']:.0f} img/s, busy "
                f"{fmt(row.get('gpu_busy_pct'))}% (profiled {fmt(row.get('gpu_busy_pct_profiled'))}%), NVML "
                f"{fmt(row.get('utilisation_pct'))}%, peak {fmt(row.get('peak_allocated_gib'), 2)} GiB, syncs/step "
                f"{fmt(row.get('syncs_per_step'), 2)} {row.get('sync_sites', '')}, warm-up {row['warmup_s']:.1f}s, "
                f"run {row['seconds']:.1f}s")
        return row

    def finish() -> dict[str, Any]:
        """summary.json and table.md from the rows so far (rewritten after each part: a run cut short keeps them)."""
        return write_summary(out.folder, out.rows, info, skipped=out.skipped, seconds=time.perf_counter() - out.t0)

    best = dict(amp=True, channels_last=True)
    order = ["ssl", "dg", "mlc"]
    if tiny:
        loop.COMPILE_OPTIONS = {"backend": "eager"}   # the code path, without a C++ compiler's minutes
    # 1. each setting: Uniform at bf16 + channels_last (profiled, host waits counted), the methods, fp32
    for setting in order:
        train(setting, "uniform", "bf16_cl", profile=True, sync_debug=True, **best)
        train(setting, "arml", "bf16_cl", ratio=2.5, profile=True, sync_debug=True, **best)
        train(setting, "arml_cheap", "bf16_cl", ratio=1.3, **best)
        train(setting, "autolambda", "bf16_cl", ratio=4.0, **best)
        train(setting, "uniform", "fp32", ratio=2.0, profile=setting == "dg", amp=False, channels_last=False)
    finish()
    # 2. four trials sharing the GPU, against one alone (the same harness)
    if not args.no_shared and wanted("shared") and not tiny and budget.left() > 70:
        try:
            config = configs["ssl"].replace(weighting="uniform", eval_every=20, steps=10**6, **best)
            one = shared_gpu(config, 1, 6.0, 14.0, tmp)
            out.log(f"shared: one trial {json.dumps(one)[:600]}")
            four = shared_gpu(config, 4, 10.0, 20.0, tmp) if budget.left() > 40 else None
            if four:
                out.log(f"shared: four trials {json.dumps(four)[:1500]}")
            speedup = four["aggregate_steps_per_s"] / one["aggregate_steps_per_s"] if four and one["finished"] else None
            out.add("shared_gpu", one=one, four=four, speedup=speedup)
        except Exception as error:
            out.add("error", what="shared_gpu", error=f"{type(error).__name__}: {error}",
                    trace=traceback.format_exc()[-3000:])
            out.log(f"FAILED shared_gpu: {error}")
    finish()
    # 3. channels_last off, compile, the closure's precision
    train("ssl", "uniform", "bf16", ratio=1.2, amp=True, channels_last=False)
    train("dg", "uniform", "bf16", ratio=1.2, amp=True, channels_last=False)
    train("ssl", "uniform", "bf16_cl_compile", cost=0 if tiny else 75, compile=True, **best)
    train("ssl", "arml", "bf16_cl_closure_strict", ratio=3.0, closure="fp32_strict", **best)
    train("ssl", "arml", "bf16_cl_closure_bf16", ratio=2.0, closure="step", **best)
    train("mlc", "uniform", "bf16", ratio=1.2, amp=True, channels_last=False)
    train("dg", "uniform", "fp32_cl", ratio=2.0, amp=False, channels_last=True)
    train("ssl", "uniform", "bf16_cl_compile_cudagraphs", cost=0 if tiny else 75, compile=True,
          compile_options=None if tiny else {"mode": "reduce-overhead"}, **best)
    finish()
    # 4. the file loaders alone against training (CelebA, PACS), and training while they decode
    for setting in ("dg", "mlc"):
        if not wanted(f"loader/{setting}"):
            continue
        if budget.left() < (25 if cuda else 3):
            out.skipped.append(f"loader/{setting}")
            continue
        try:
            result = time_loader(configs[setting], 0.5 if tiny else 2.5)
            rate = uniform_rate.get(setting)
            row = out.add("loader", setting=setting, **result,
                          train_images_per_s=rate * result["images_per_step"] if rate else None)
            out.log(f"loader {setting}: {row}")
        except Exception as error:
            out.add("error", what=f"loader/{setting}", error=f"{type(error).__name__}: {error}",
                    trace=traceback.format_exc()[-3000:])
            out.log(f"FAILED loader/{setting}: {error}")
        before = settings_module.CACHE_FRACTION
        settings_module.CACHE_FRACTION = 0.0       # a real run's first epoch: nothing cached yet
        try:
            train(setting, "uniform", "bf16_cl_nocache", cost=0 if tiny else 45, ratio=3.0, timed=2, **best)
        finally:
            settings_module.CACHE_FRACTION = before
    finish()
    # 5. ARML's alpha gradient in each precision (the CelebA case last: 136 s on the H200)
    for setting in ("ssl", "dg", "mlc"):
        if not wanted(f"alpha/{setting}"):
            continue
        if budget.left() < (ALPHA_COST[setting] if cuda else 5):
            out.skipped.append(f"alpha/{setting}")
            continue
        tick = time.perf_counter()
        try:
            result = alpha_gradient_errors(configs[setting].replace(weighting="arml"), batches=1 if tiny else 2)
            out.add("alpha_error", setting=setting, seconds=time.perf_counter() - tick, **result)
            out.log(f"alpha gradient errors {setting}: {json.dumps(result['worst_relative_error'])} {result['errors']}")
        except Exception as error:
            out.add("error", what=f"alpha/{setting}", error=f"{type(error).__name__}: {error}",
                    trace=traceback.format_exc()[-3000:])
            out.log(f"FAILED alpha/{setting}: {error}")
    finish()
    # 6. what time is left
    train("dg", "uniform", "bf16_cl_compile", cost=0 if tiny else 75, compile=True, **best)
    for method in ("gradnorm", "cosinesim", "olaux", "adaloss"):
        train("ssl", method, "bf16_cl", ratio=2.5, **best)
    train("mlc", "uniform", "bf16_cl_compile", cost=0 if tiny else 75, compile=True, **best)

    summary = finish()
    out.log(f"done in {summary['seconds']:.0f}s; skipped: {out.skipped}")
    return summary


if __name__ == "__main__":
    main()
