"""Why ARML weights the digits auxiliary attributes as it does: per task, the cosine between its loss gradient and
the main task's, and its gradient norm relative to the main task's, along a real ARML run of the K-scaling setting.

Runs `trainables.fit` directly (no Ray) with the K-scaling studies' configuration (digits multi-label, main
attribute has_loop, the first K attributes of `digits_aux_set`, 40 labels, width-16 CNN, 100 steps) and the
paper's ARML rule, with `diagnostics = true` and an evaluation every `--every` steps: at each evaluation the loop's
probe (trainables/diagnostics.py) takes each task's gradient over the shared parameters on that step's batch (K + 1
extra backward passes on those steps only; the weights ARML learns are unchanged). Prints, per task, the mean over
seeds and probed steps of cos(g_k, g_main) and |g_k| / |g_main|, and ARML's final weight; `--out` writes every
probe (seed, step, task, cos, norm_ratio, and the task's weight reported at that evaluation). It also runs the
first seed again without the probe and prints the probe's cost per evaluation and whether training was identical.

    python benchmarks/aux_gradients.py                 # K = 8, seeds 0-4 (about a minute on 1 CPU)
    python benchmarks/aux_gradients.py --k 32 --seeds 0,1,2 --out grads.csv
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import trainables
from trainables.config import resolve_config
from trainables.data.digits_attributes import digits_aux_set
from trainables.loop import Report

PROBES: list[dict] = []    # one row per (seed, step, task), from the metrics reported at each evaluation


def recorder(seed: int, names: list[str]) -> Report:
    """A `report` for `fit` that appends each evaluation's diagnostics and weights to PROBES."""

    def report(metrics: dict, checkpoint: str | None) -> None:
        for name in names:
            PROBES.append({"seed": seed, "step": metrics["step"], "task": name,
                           "cos": metrics[f"grad_cos/{name}"], "norm_ratio": metrics[f"grad_norm_ratio/{name}"],
                           "weight": metrics[f"weight/{name}"]})

    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="number of auxiliary attributes (default 8)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0-4)")
    parser.add_argument("--steps", type=int, default=100, help="training steps (default 100, as the studies)")
    parser.add_argument("--every", type=int, default=10, help="probe every N steps (default 10)")
    parser.add_argument("--out", default="", help="also write every probe to this CSV file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = list(digits_aux_set(args.k))
    finals: dict[str, list[float]] = {n: [] for n in names}
    seeds = [int(s) for s in args.seeds.split(",")]

    def config_for(seed: int, diagnostics: bool):
        return resolve_config("digits_mlc", seed=seed, label_budget=40, main_attribute="has_loop",
                              aux_attributes=names, model_options={"width": 16}, steps=args.steps,
                              lr_milestones=[int(0.8 * args.steps)], aux_batch_size=64, weighting="arml",
                              diagnostics=diagnostics, eval_every=args.every, checkpoint_every=args.steps)

    plain = None
    for seed in seeds:
        tick = time.perf_counter()
        metrics = trainables.fit(config_for(seed, True), recorder(seed, names))
        if plain is None:   # the probe's cost: the first seed again without it, side by side
            probed_s = time.perf_counter() - tick
            tick = time.perf_counter()
            plain = trainables.fit(config_for(seed, False), lambda metrics, checkpoint: None)
            plain_s = time.perf_counter() - tick
            evaluations = len({p["step"] for p in PROBES if p["seed"] == seed})
            same = all(plain[f"weight/{n}"] == metrics[f"weight/{n}"] for n in names) \
                and plain["test_acc_at_best_val"] == metrics["test_acc_at_best_val"]
            print(f"probe cost (seed {seed}): {probed_s:.2f} s with diagnostics, {plain_s:.2f} s without, "
                  f"{(probed_s - plain_s) / max(evaluations, 1):.3f} s per evaluation ({evaluations} evaluations); "
                  f"weights and accuracy identical with and without: {same}")
        for n in names:
            finals[n].append(float(metrics[f"weight/{n}"]))
    print(f"K = {args.k}, {len(finals[names[0]])} seeds, {args.steps} steps, probes every {args.every} steps")
    print(f"{'task':<18} {'cos(g_k, g_main)':>17} {'|g_k|/|g_main|':>15} {'final weight':>13}")
    rows = []
    for n in names:
        mine = [p for p in PROBES if p["task"] == n]
        cos = statistics.fmean(p["cos"] for p in mine)
        ratio = statistics.fmean(p["norm_ratio"] for p in mine)
        rows.append((n, cos, ratio, statistics.fmean(finals[n])))
    for n, cos, ratio, weight in sorted(rows, key=lambda r: -r[3]):
        print(f"{n:<18} {cos:>17.3f} {ratio:>15.2f} {weight:>13.2f}")
    if args.out:
        import csv

        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(PROBES[0]))
            writer.writeheader()
            writer.writerows(PROBES)


if __name__ == "__main__":
    main()
