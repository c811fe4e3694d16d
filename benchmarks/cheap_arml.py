"""Cheap ARML (`amortize=N`) against per-step ARML and Uniform on the three digits twins: cost and accuracy.

Runs `trainables.fit(config)` directly (no Ray) for uniform, per-step arml and arml with `amortize=N` on
digits_ssl (20 labels), digits_mlc (20 labels; auxiliary attributes is_0, is_6, random_0 as in the
quickstart) and digits_dg (5 labels per class), with the same seeds, one trial after another in this
process (torch on `--threads` threads). Each trial's cost is the process CPU-seconds of its `fit` call.
Per twin it prints the cost ratios cheap/uniform and arml/uniform (means over seeds) and the paired mean
difference of test accuracy (at the best validation step) cheap - arml with its 95% t-interval.

    python benchmarks/cheap_arml.py                          # 5 seeds, amortize 10 (about 30 min on 1 CPU)
    python benchmarks/cheap_arml.py --seeds 0,1 --twins mlc --steps 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import trainables
from trainables.config import resolve_config

TWINS = {
    "ssl": ("digits_ssl", {"label_budget": 20}),
    "mlc": ("digits_mlc", {"label_budget": 20, "aux_attributes": ["is_0", "is_6", "random_0"]}),
    "dg": ("digits_dg", {"per_class": 5}),
}
# two-sided 95% quantiles of Student's t for df = 1..30 (beyond: 1.96)
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
       2.045, 2.042]


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of paired differences."""
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = (T95[len(diffs) - 2] if len(diffs) - 1 <= len(T95) else 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def methods(amortize: int) -> dict[str, tuple[str, dict]]:
    return {"uniform": ("uniform", {}), "arml": ("arml", {}), "cheap": ("arml", {"amortize": amortize})}


def trial(twin: str, method: tuple[str, dict], seed: int, steps: int) -> dict[str, float]:
    preset, overrides = TWINS[twin]
    extra = {"steps": steps, "eval_every": max(steps // 10, 1)} if steps else {}
    config = resolve_config(preset, seed=seed, weighting=method[0], weighting_options=dict(method[1]),
                            device="cpu", **overrides, **extra)
    cpu, wall = time.process_time(), time.perf_counter()
    metrics = trainables.fit(config)
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "test_acc": float(metrics["test_acc_at_best_val"])}


def summary(twin: str, rows: list[dict]) -> dict[str, float]:
    by = {m: {r["seed"]: r for r in rows if r["method"] == m} for m in ("uniform", "arml", "cheap")}
    seeds = sorted(set(by["uniform"]) & set(by["arml"]) & set(by["cheap"]))
    cost = {m: statistics.fmean(by[m][s]["cpu_s"] for s in seeds) for m in by}
    acc = {m: statistics.fmean(by[m][s]["test_acc"] for s in seeds) for m in by}
    diffs = [100 * (by["cheap"][s]["test_acc"] - by["arml"][s]["test_acc"]) for s in seeds]
    mean, low, high = t_interval(diffs)
    out = {"twin": twin, "n": len(seeds), "cheap_over_uniform": cost["cheap"] / cost["uniform"],
           "arml_over_uniform": cost["arml"] / cost["uniform"], "diff_points": mean, "ci_low": low, "ci_high": high,
           **{f"acc_{m}": 100 * a for m, a in acc.items()}, **{f"cpu_s_{m}": c for m, c in cost.items()}}
    print(f"== {twin}: n={len(seeds)}  cost cheap/uniform {out['cheap_over_uniform']:.2f}  "
          f"arml/uniform {out['arml_over_uniform']:.2f}  (CPU-s uniform {cost['uniform']:.1f}, arml "
          f"{cost['arml']:.1f}, cheap {cost['cheap']:.1f})")
    print(f"   test acc %: uniform {out['acc_uniform']:.2f}  arml {out['acc_arml']:.2f}  cheap {out['acc_cheap']:.2f}"
          f";  cheap - arml = {mean:+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}]"
          f"  -> {'as good' if low > -1 else 'not shown as good'} (lower end > -1 point)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--twins", default="mlc,dg,ssl")
    parser.add_argument("--amortize", type=int, default=10, help="N of the cheap ARML")
    parser.add_argument("--steps", type=int, default=0, help="override the presets' steps (0: keep)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU-seconds are per process)")
    parser.add_argument("--json", default="", help="also write every trial and the summaries here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} seeds={seeds} amortize={args.amortize}",
          flush=True)
    rows, summaries = [], []
    for twin in args.twins.split(","):
        trial(twin, ("uniform", {}), seeds[0], 2)   # warm-up (imports, data, first allocations): not counted
        for seed in seeds:   # methods interleaved per seed: machine load hits them alike
            for label, method in methods(args.amortize).items():
                result = trial(twin, method, seed, args.steps)
                rows.append({"twin": twin, "method": label, "seed": seed, **result})
                print(f"{twin} seed {seed} {label:8s} cpu {result['cpu_s']:7.1f} s  wall {result['wall_s']:7.1f} s"
                      f"  test acc {100 * result['test_acc']:.2f}", flush=True)
        summaries.append(summary(twin, [r for r in rows if r["twin"] == twin]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": rows, "summaries": summaries}, f, indent=1)


if __name__ == "__main__":
    main()
