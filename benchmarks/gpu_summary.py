"""What benchmarks/gpu_throughput.py's measurements add up to: the side-by-side ratios, the wall time of the
paper's full runs, the performance goals with the numbers behind them, and summary.json and table.md (also
rebuilt from a results.jsonl alone: `gpu_throughput.py --summarize`)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

# The paper's runs: Table 1 CIFAR-10 200k iterations; Table 2 CelebA 90 epochs of 162,770 training images at
# batch 256 (the preset's 57,225 steps); Table 4 PACS 100 epochs. A PACS epoch here: one pass over the source
# domains' training images (9/10 of photo 1,670 + cartoon 2,344 + sketch 3,929 for target art_painting) at
# 3 x 32 per step: 74.5 steps, 7,447 steps for 100 epochs (the preset trains 6,000).
PAPER_STEPS = {"ssl": 200_000, "mlc": 57_225, "dg": 7_447}
TABLE1_TRIALS = {"uniform": 3, "adaloss": 3, "gradnorm": 3, "cosinesim": 3, "olaux": 3, "grid": 75, "arml": 3}


def derived(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Side-by-side ratios per setting: step time of each method over Uniform's (bf16 + channels_last), and
    the speed-ups of bf16, channels_last and compile, the compile time, the loader against training."""
    train = {(r["setting"], r["method"], r["variant"]): r for r in rows if r["kind"] == "train"}
    out: dict[str, Any] = {}
    for setting in ("ssl", "mlc", "dg"):
        base = train.get((setting, "uniform", "bf16_cl"))
        if not base:
            continue
        here: dict[str, Any] = {}
        for (s_, method, variant), r in train.items():
            if s_ == setting and method != "uniform" and variant.startswith("bf16_cl"):
                here[f"step_time_x_uniform/{method}/{variant}"] = base["steps_per_s"] / r["steps_per_s"]
        for variant, name in (("fp32", "bf16_cl_over_fp32"), ("bf16", "channels_last_speedup_bf16"),
                              ("bf16_cl_compile", "compile_speedup"), ("bf16_cl_nocache", "cache_speedup"),
                              ("bf16_cl_compile_cudagraphs", "compile_cudagraphs_speedup")):
            other = train.get((setting, "uniform", variant))
            if other:
                compiled = "compile" in variant
                here[name] = (other["steps_per_s"] / base["steps_per_s"] if compiled
                              else base["steps_per_s"] / other["steps_per_s"])
                if compiled:
                    here[name.replace("speedup", "seconds")] = other["warmup_s"] - base["warmup_s"]
        fp32, fp32_cl = train.get((setting, "uniform", "fp32")), train.get((setting, "uniform", "fp32_cl"))
        if fp32 and fp32_cl:
            here["channels_last_speedup_fp32"] = fp32_cl["steps_per_s"] / fp32["steps_per_s"]
        loader = next((r for r in rows if r["kind"] == "loader" and r["setting"] == setting), None)
        if loader:
            here["loader_over_training"] = loader["loader_images_per_s"] / base["images_per_s"]
        out[setting] = here
    return out


def paper_estimates(rows: list[dict[str, Any]], shared: dict[str, Any] | None) -> dict[str, Any]:
    """Hours for the paper's full runs per method (training steps only) and for the Table 1 study."""
    best = {(r["setting"], r["method"]): r["steps_per_s"] for r in rows
            if r.get("kind") == "train" and r.get("variant") == "bf16_cl" and "steps_per_s" in r}
    fp32 = {r["setting"]: r["steps_per_s"] for r in rows
            if r.get("kind") == "train" and r.get("variant") == "fp32" and r.get("method") == "uniform"}
    out: dict[str, Any] = {"runs_hours": {}, "fp32_uniform_hours": {}}
    for (setting, method), rate in best.items():
        out["runs_hours"][f"{setting}/{method}"] = PAPER_STEPS[setting] / rate / 3600
    for setting, rate in fp32.items():
        out["fp32_uniform_hours"][setting] = PAPER_STEPS[setting] / rate / 3600
    uniform = best.get(("ssl", "uniform"))
    if uniform:
        per_method = {m: best.get(("ssl", m), uniform) for m in TABLE1_TRIALS}
        per_method["grid"] = uniform    # fixed weights: a Uniform step
        assumed = [m for m in TABLE1_TRIALS if m != "grid" and ("ssl", m) not in best]
        hours = sum(n * PAPER_STEPS["ssl"] / per_method[m] / 3600 for m, n in TABLE1_TRIALS.items())
        study = {"trials": sum(TABLE1_TRIALS.values()), "gpu_hours_one_at_a_time": hours,
                 "methods_assumed_at_uniform_speed": assumed}
        if shared and shared.get("speedup"):
            study["hours_four_per_gpu"] = hours / shared["speedup"]
        out["table1_study"] = study
    return out


def goals(rows: list[dict[str, Any]], shared: dict[str, Any] | None) -> dict[str, Any]:
    """The performance goals, each with the measured numbers behind it."""
    train = {(r["setting"], r["method"], r["variant"]): r for r in rows if r["kind"] == "train"}
    result: dict[str, Any] = {}
    for setting in ("ssl", "mlc", "dg"):
        uniform = train.get((setting, "uniform", "bf16_cl"))
        if uniform and "gpu_busy_pct" in uniform:
            busy = uniform["gpu_busy_pct"]
            result[f"busy_ge_85/{setting}"] = {"busy_pct": busy, "met": busy >= 85}
        for method, limit in (("arml", 2.5), ("arml_cheap", 1.2)):
            other = train.get((setting, method, "bf16_cl"))
            if uniform and other:
                ratio = uniform["steps_per_s"] / other["steps_per_s"]
                result[f"{method}_le_{limit}x/{setting}"] = {"ratio": ratio, "met": ratio <= limit}
    bf16, fp32 = train.get(("dg", "uniform", "bf16_cl")), train.get(("dg", "uniform", "fp32"))
    if bf16 and fp32:
        speedup = bf16["steps_per_s"] / fp32["steps_per_s"]
        result["bf16_ge_1.5x/resnet18_224"] = {"speedup": speedup, "met": speedup >= 1.5}
    if shared and shared.get("speedup"):
        result["shared_ge_2x/wrn28_2"] = {"speedup": shared["speedup"], "met": shared["speedup"] >= 2}
    return result


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_table(folder: str, rows: list[dict[str, Any]], info: dict[str, Any], summary: dict[str, Any]) -> None:
    lines = [f"device: {info.get('name')} ({info.get('device')}), torch {info.get('torch')}, "
             f"CUDA {info.get('cuda', '-')}, {info.get('cpus')} CPUs", "",
             "| setting | method | variant | steps/s | images/s | GPU busy % | busy % (profiled) | NVML % |"
             " peak GiB | syncs/step | warm-up s |", "|" + "---|" * 11]
    for r in rows:
        if r["kind"] != "train" or "steps_per_s" not in r:
            continue
        lines.append(f"| {r['setting']} | {r['method']} | {r['variant']} | {fmt(r['steps_per_s'], 2)} |"
                     f" {fmt(r['images_per_s'], 0)} | {fmt(r.get('gpu_busy_pct'))} |"
                     f" {fmt(r.get('gpu_busy_pct_profiled'))} | {fmt(r.get('utilisation_pct'))} |"
                     f" {fmt(r.get('peak_allocated_gib'), 2)} | {fmt(r.get('syncs_per_step'), 2)} |"
                     f" {fmt(r.get('warmup_s'))} |")
    lines += ["", "```", json.dumps(summary, indent=1, default=str), "```"]
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_summary(folder: str, rows: list[dict[str, Any]], info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """summary.json and table.md in `folder` from a run's rows: the device, `extra` (what was skipped, the
    seconds), the side-by-side ratios, the paper-run estimates and the goals. Returns the summary."""
    shared = next((r for r in rows if r["kind"] == "shared_gpu"), None)
    summary = {"device": info, **extra, "ratios": derived(rows), "estimates": paper_estimates(rows, shared),
               "goals": goals(rows, shared)}
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    write_table(folder, rows, info, summary)
    return summary


def summarize(results: str, folder: str) -> dict[str, Any]:
    """summary.json and table.md in `folder` from the rows of a results.jsonl (a run cut short by its limit)."""
    with open(results) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    os.makedirs(folder, exist_ok=True)
    return write_summary(folder, rows, next((r for r in rows if r["kind"] == "device"), {}))
