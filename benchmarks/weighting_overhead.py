"""Cost of each weighting method per training step, relative to Uniform, measured side by side.

A small conv net with BatchNorm (batch 64, 32x32 inputs) and K linear heads; every method runs a full
step (forward, its backward, optimizer step) in interleaved rounds so that machine noise hits all of
them alike; the table shows median step time / Uniform's median, and peak memory per method (CUDA:
max allocated; on the CPU the column is empty: the peak RSS of a fresh process measured 1018 MB for every
method, torch's import, so it told nothing about the methods).

    python benchmarks/weighting_overhead.py                 # K in {2, 11, 39}, every method
    python benchmarks/weighting_overhead.py --ks 2 --rounds 5 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import arml

# (label, weighting name, options, use the closure)
METHODS = [
    ("uniform", "uniform", {}, False),
    ("fixed", "fixed", None, False),
    ("adaloss", "adaloss", {}, False),
    ("gradnorm", "gradnorm", {}, False),
    ("cosinesim", "cosinesim", {}, True),
    ("cosinesim(no closure)", "cosinesim", {}, False),
    ("olaux", "olaux", {}, True),
    ("arml", "arml", {}, True),
    ("arml(no closure)", "arml", {}, False),
    ("arml(update_every=10)", "arml", {"update_every": 10}, True),
    ("arml(amortize=10): cheap ARML", "arml", {"amortize": 10}, True),
    ("autolambda", "autolambda", {}, True),
    ("K backward passes (LibMTL-style)", "per_task_loop", {}, False),
]


class Net(nn.Module):
    def __init__(self, num_aux: int) -> None:
        super().__init__()
        def block(i: int, o: int, s: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        self.backbone = nn.Sequential(*block(3, 32, 1), *block(32, 64, 2), *block(64, 64, 2), *block(64, 128, 2),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList(nn.Linear(128, 10) for _ in range(num_aux + 1))

    def losses(self, x: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        out = [nn.functional.cross_entropy(h(f), ys[i]) for i, h in enumerate(self.heads)]
        return out[0], torch.stack(out[1:])


def make_step(label: str, name: str, options: dict | None, closure: bool, k: int, device: str):
    torch.manual_seed(0)
    net = Net(k).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(64, 3, 32, 32, device=device)
    ys = torch.randint(0, 10, (k + 1, 64), device=device)
    shared = list(net.backbone.parameters())
    if name == "per_task_loop":
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            main, aux = net.losses(x, ys)
            for loss in [main, *aux]:  # per-task gradients over the shared parameters, one backward each
                torch.autograd.grad(loss, shared, retain_graph=True)
            (main + aux.sum()).backward()
            opt.step()
        return step
    if options is None:
        options = {"weights": [1.0] * k}
    weighting = arml.make_weighting(name, num_aux=k, **options)
    weighting.bind(model=net, optimizer=opt)  # as trainables.fit does (autolambda's virtual step: every parameter)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        main, aux = net.losses(x, ys)
        cl = arml.stateless(lambda: net.losses(x, ys), net) if closure else None
        weighting.backward(main, aux, shared, closure=cl)
        opt.step()
    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_all(k: int, device: str, steps: int, rounds: int, labels: list[str]) -> dict[str, float]:
    chosen = [m for m in METHODS if m[0] in labels]
    steppers = {m[0]: make_step(*m, k, device) for m in chosen}
    for s in steppers.values():  # warm-up
        for _ in range(3):
            s()
    times: dict[str, list[float]] = {label: [] for label in steppers}
    for _ in range(rounds):
        for label, s in steppers.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                s()
            sync(device)
            times[label].append((time.perf_counter() - start) / steps)
    return {label: statistics.median(t) for label, t in times.items()}


def peak_memory(label: str, k: int, device: str) -> float:
    """Peak CUDA memory (MB) of a few steps of one method; NaN on the CPU, where no measure separates the
    methods: a fresh process's peak RSS is torch's import (about 1 GB with the CUDA build) for every one."""
    if not device.startswith("cuda"):
        return float("nan")
    step = make_step(*next(m for m in METHODS if m[0] == label), k, device)
    step()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        step()
    return torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="2,11,39", help="numbers of auxiliary tasks (comma separated)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timing round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (the median is reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default="", help="comma separated labels (default: all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    labels = [m[0] for m in METHODS] if not args.methods else args.methods.split(",")
    if "uniform" not in labels:
        labels.insert(0, "uniform")
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"batch=64 input=3x32x32 steps/round={args.steps} rounds={args.rounds}")
    results = []
    for k in [int(x) for x in args.ks.split(",")]:
        medians = time_all(k, args.device, args.steps, args.rounds, labels)
        print(f"\nK={k}: uniform step {medians['uniform'] * 1000:.1f} ms")
        print(f"  {'method':34s} {'ms/step':>8s} {'x uniform':>9s} {'peak MB':>8s}")
        for label in labels:
            mem = float("nan") if args.no_memory else peak_memory(label, k, args.device)
            ratio = medians[label] / medians["uniform"]
            results.append({"k": k, "method": label, "ms": medians[label] * 1000, "ratio": ratio, "peak_mb": mem})
            print(f"  {label:34s} {medians[label] * 1000:8.1f} {ratio:9.2f} {mem:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
