"""Cost of each weighting method per training step, relative to Uniform, measured side by side.

A backbone with BatchNorm and K + 1 linear heads (`--backbone`: a small conv net at batch 64 and 32x32 inputs,
the digits CNN of trainables at batch 288 and 8x8, as digits_ssl's steps, or ResNet-18 at batch 16 and
224x224, as the PACS check's 4 + 3 x 4); every method runs a full step (forward, its backward, optimizer step)
in interleaved rounds so that machine noise hits all of them alike; the table shows median step time /
Uniform's median, for the ARML-family methods also over the same method with `directional = "central"`
(the central difference the forward-mode default replaced), and peak memory per method (CUDA: max allocated;
on the CPU the column is empty: the peak RSS of a fresh process measured 1018 MB for every method, torch's
import, so it told nothing about the methods). A method that updates every N steps (`amortize`,
`update_every`) is timed over N steps per round. `--phases` also times the pieces of an ARML update one by
one (where its time goes).

    python benchmarks/weighting_overhead.py                 # K in {2, 11, 39}, every method
    python benchmarks/weighting_overhead.py --ks 2 --rounds 5 --device cuda
    python benchmarks/weighting_overhead.py --backbone resnet18_224 --ks 3 --rounds 3 --steps 1 --phases \
        --methods uniform,arml,"arml(central)","arml(double backward)","arml(amortize=10): cheap ARML"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

import arml
from arml.gradients import _central_difference, _double_backward, forward_mode, grad_of

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
    ("arml(central)", "arml", {"directional": "central"}, True),
    ("arml(double backward)", "arml", {"directional": "double_backward"}, True),
    ("arml(no closure)", "arml", {}, False),
    ("arml(update_every=10)", "arml", {"update_every": 10}, True),
    ("arml(amortize=10): cheap ARML", "arml", {"amortize": 10}, True),
    ("arml(amortize=10) central", "arml", {"amortize": 10, "directional": "central"}, True),
    ("autolambda", "autolambda", {}, True),
    ("autolambda(central)", "autolambda", {"directional": "central"}, True),
    ("K backward passes (LibMTL-style)", "per_task_loop", {}, False),
]


# the same method with the central difference, for the "x central" column
CENTRAL_TWIN = {"arml": "arml(central)", "arml(amortize=10): cheap ARML": "arml(amortize=10) central",
                "autolambda": "autolambda(central)"}


def small_net() -> tuple[nn.Module, int]:
    def block(i: int, o: int, s: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(3, 32, 1), *block(32, 64, 2), *block(64, 64, 2), *block(64, 128, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten()), 128


def digits_cnn() -> tuple[nn.Module, int]:
    from trainables.models.small_cnn import SmallCNN

    net = SmallCNN(1, 32)
    return net, net.feature_dim


def resnet18() -> tuple[nn.Module, int]:
    from trainables.models.resnet import ResNet18

    net = ResNet18(3)
    return net, net.feature_dim


BACKBONES = {  # name: (builder, input shape, batch)
    "small": (small_net, (3, 32, 32), 64),
    "digits_cnn": (digits_cnn, (1, 8, 8), 288),
    "resnet18_224": (resnet18, (3, 224, 224), 16),
}


class Net(nn.Module):
    def __init__(self, num_aux: int, backbone: str = "small") -> None:
        super().__init__()
        self.backbone, features = BACKBONES[backbone][0]()
        self.heads = nn.ModuleList(nn.Linear(features, 10) for _ in range(num_aux + 1))

    def losses(self, x: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        out = [nn.functional.cross_entropy(h(f), ys[i]) for i, h in enumerate(self.heads)]
        return out[0], torch.stack(out[1:])


def make_step(label: str, name: str, options: dict | None, closure: bool, k: int, device: str,
              backbone: str = "small"):
    torch.manual_seed(0)
    net = Net(k, backbone).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    _, shape, batch = BACKBONES[backbone]
    x = torch.randn(batch, *shape, device=device)
    ys = torch.randint(0, 10, (k + 1, batch), device=device)
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


def steps_per_round(options: dict | None, steps: int) -> int:
    """A method that updates every N steps is timed over at least N steps per round (one update each)."""
    every = max(int((options or {}).get("amortize", 1)), int((options or {}).get("update_every", 1)))
    return max(steps, every)


def time_all(k: int, device: str, steps: int, rounds: int, labels: list[str], backbone: str = "small",
             warmup: int = 3) -> dict[str, float]:
    chosen = [m for m in METHODS if m[0] in labels]
    steppers = {m[0]: make_step(*m, k, device, backbone) for m in chosen}
    counts = {m[0]: steps_per_round(m[2], steps) for m in chosen}
    for s in steppers.values():  # warm-up
        for _ in range(warmup):
            s()
    times: dict[str, list[float]] = {label: [] for label in steppers}
    for _ in range(rounds):
        for label, s in steppers.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(counts[label]):
                s()
            sync(device)
            times[label].append((time.perf_counter() - start) / counts[label])
    return {label: statistics.median(t) for label, t in times.items()}


def time_phases(k: int, device: str, rounds: int, backbone: str) -> dict[str, float]:
    """The pieces of an ARML update (per-step ARML, weights 1), each timed alone, medians over `rounds`: the
    step's forward, the backward that fills .grad, ARML's extra backward (g_main), the optimizer step, and
    each way of getting the K inner products."""
    torch.manual_seed(0)
    net = Net(k, backbone).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    _, shape, batch = BACKBONES[backbone]
    x = torch.randn(batch, *shape, device=device)
    ys = torch.randint(0, 10, (k + 1, batch), device=device)
    shared = list(net.backbone.parameters())
    closure = arml.stateless(lambda: net.losses(x, ys), net)
    main, aux = net.losses(x, ys)
    v = grad_of(main - aux.sum(), shared, retain_graph=True)

    def graph():
        return net.losses(x, ys)

    pieces = {
        "forward (with graph)": graph,
        "forward + backward (a Uniform step)": lambda: (lambda m, a: (m + a.sum()).backward())(*graph()),
        "forward + ARML's two backward passes": lambda: (lambda m, a: (
            grad_of(m, shared, retain_graph=True), (m + a.sum()).backward()))(*graph()),
        "optimizer step": opt.step,
        "jvp: one forward with dual numbers": lambda: forward_mode(shared, v, closure),
        "central: two forwards": lambda: _central_difference(shared, v, closure, None),
        "double backward (with its forward)": lambda: (lambda m, a: _double_backward(a, shared, v))(*graph()),
        "closure forward (no graph)": closure,
    }
    times: dict[str, list[float]] = {name: [] for name in pieces}
    for fn in pieces.values():
        fn()
    for _ in range(rounds):
        for name, fn in pieces.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory(label: str, k: int, device: str, backbone: str = "small") -> float:
    """Peak CUDA memory (MB) of a few steps of one method; NaN on the CPU, where no measure separates the
    methods: a fresh process's peak RSS is torch's import (about 1 GB with the CUDA build) for every one."""
    if not device.startswith("cuda"):
        return float("nan")
    step = make_step(*next(m for m in METHODS if m[0] == label), k, device, backbone)
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
    parser.add_argument("--backbone", default="small", choices=sorted(BACKBONES),
                        help="small (conv net, batch 64, 32x32; default), digits_cnn (trainables' small_cnn, "
                        "batch 288, 8x8) or resnet18_224 (batch 16, 224x224)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per method first")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--phases", action="store_true", help="also time the pieces of an ARML update alone")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    labels = [m[0] for m in METHODS] if not args.methods else args.methods.split(",")
    if "uniform" not in labels:
        labels.insert(0, "uniform")
    if args.threads:
        torch.set_num_threads(args.threads)
    _, shape, batch = BACKBONES[args.backbone]
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"backbone={args.backbone} batch={batch} input={'x'.join(map(str, shape))} steps/round={args.steps} "
          f"rounds={args.rounds} load average={' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results = []
    for k in [int(x) for x in args.ks.split(",")]:
        medians = time_all(k, args.device, args.steps, args.rounds, labels, args.backbone, args.warmup)
        print(f"\nK={k}: uniform step {medians['uniform'] * 1000:.1f} ms")
        print(f"  {'method':34s} {'ms/step':>8s} {'x uniform':>9s} {'x central':>9s} {'peak MB':>8s}")
        for label in labels:
            mem = float("nan") if args.no_memory else peak_memory(label, k, args.device, args.backbone)
            ratio = medians[label] / medians["uniform"]
            twin = CENTRAL_TWIN.get(label)
            versus = medians[label] / medians[twin] if twin in medians else float("nan")
            results.append({"k": k, "backbone": args.backbone, "method": label, "ms": medians[label] * 1000,
                            "ratio": ratio, "ratio_central": versus, "peak_mb": mem})
            print(f"  {label:34s} {medians[label] * 1000:8.1f} {ratio:9.2f} {versus:9.2f} {mem:8.1f}")
        if args.phases:
            phases = time_phases(k, args.device, args.rounds, args.backbone)
            print(f"  pieces of an ARML update (alone, median of {args.rounds}):")
            for name, seconds in phases.items():
                print(f"    {name:44s} {seconds * 1000:8.1f} ms {seconds / medians['uniform']:6.2f} x uniform step")
            results.append({"k": k, "backbone": args.backbone, "phases_ms": {n: t * 1000 for n, t in phases.items()}})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
