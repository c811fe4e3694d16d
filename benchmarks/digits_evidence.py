"""ARML on real data: scikit-learn's digits (8x8 images, 64 features / 16).

Main task: `has_loop` (digit in {0, 6, 8, 9}) with only 40 labelled training images (stratified).
Auxiliary tasks, labelled on all 1200 training images: the determining attributes is_0, is_6, is_8, is_9
(has_loop is their OR) and random_0..random_3, random permutations of is_0, is_6, is_8, is_9's labels
(same positive rate, no relation to the image). A seed draws the split, the 40 labelled images, the
random labels, the initialisation and the minibatches.
A shared MLP (64-64-32, ReLU) with one linear head per task, Adam (lr 1e-3), 300 steps: every step
the 40 main labels and a minibatch of 128 auxiliary images. Test accuracy of has_loop on the 597
held-out images, for main-only (fixed weights 0), uniform and ARML (closure, default lr 0.05).

Diagnostics printed after the table: ARML's weights with g_main removed from its residual (the main
task still trained), each task's mean gradient norm and cosine with g_main over a uniform run, and a
control in which one auxiliary task is has_loop itself labelled on all 1200 images.

    python benchmarks/digits_evidence.py                    # 3 seeds, about a minute on a CPU
    python benchmarks/digits_evidence.py --seeds 0,1,2,3,4 --steps 500
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

import arml

LOOPED = (0, 6, 8, 9)
NAMES = [f"is_{d}" for d in LOOPED] + [f"random_{j}" for j in range(4)]
N_TRAIN, N_LABELLED, AUX_BATCH = 1200, 40, 128


@dataclass
class Problem:
    x_train: torch.Tensor      # [1200, 64]
    x_test: torch.Tensor       # [597, 64]
    y_test: torch.Tensor       # has_loop of the test images
    labelled: torch.Tensor     # indices of the 40 labelled training images
    y_main: torch.Tensor       # their has_loop
    y_aux: torch.Tensor        # [K, 1200] auxiliary labels of every training image
    names: list[str]           # the K auxiliary tasks


def make_problem(seed: int) -> Problem:
    """The split, the 40 labelled images (stratified) and the random labels, all drawn from `seed`."""
    from sklearn.datasets import load_digits  # only the benchmark and its test need scikit-learn

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    digit = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    loop = torch.isin(digit, torch.tensor(LOOPED)).float()
    pos, neg = train[loop[train] == 1], train[loop[train] == 0]
    n_pos = round(N_LABELLED * len(pos) / N_TRAIN)
    labelled = torch.cat([pos[torch.randperm(len(pos), generator=gen)[:n_pos]],
                          neg[torch.randperm(len(neg), generator=gen)[:N_LABELLED - n_pos]]])
    labelled_pos = torch.tensor([int((train == i).nonzero()) for i in labelled])
    determining = torch.stack([(digit[train] == d).float() for d in LOOPED])
    shuffled = torch.stack([row[torch.randperm(N_TRAIN, generator=gen)] for row in determining])
    return Problem(x[train], x[test], loop[test], labelled_pos, loop[train][labelled_pos],
                   torch.cat([determining, shuffled]), list(NAMES))


def main_task_as_aux(problem: Problem) -> Problem:
    """A control: the determining attributes replaced by one auxiliary task that is has_loop itself,
    labelled on all 1200 training images (own head), next to the four random-label tasks."""
    loop = (problem.y_aux[:4].sum(0) > 0).float()
    return replace(problem, y_aux=torch.cat([loop[None], problem.y_aux[4:]]),
                   names=["has_loop_all"] + NAMES[4:])


class Net(nn.Module):
    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(32, 1) for _ in range(tasks))

    def logits(self, x: torch.Tensor, head: int) -> torch.Tensor:
        return self.heads[head](self.backbone(x)).squeeze(1)


def train(problem: Problem, method: str, seed: int, steps: int = 300, ablate_main: bool = False,
          diagnose: bool = False, **options) -> dict:
    """Trains one model; `method` is a weighting name, or "main-only" (fixed weights 0).

    `ablate_main`: the weighting sees a main loss of 0 (so g_main = 0 in ARML's residual) while the
    main loss is still trained, to measure how much the main task's gradient steers the weights.
    `diagnose`: also the mean over steps of each task's gradient norm and cosine with g_main.
    """
    torch.manual_seed(seed)
    k = len(problem.names)
    net = Net(1 + k)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if method == "main-only":
        weighting = arml.make_weighting("fixed", num_aux=k, weights=[0.0] * k, task_names=problem.names)
    else:
        weighting = arml.make_weighting(method, num_aux=k, task_names=problem.names, **options)
    gen = torch.Generator().manual_seed(seed + 1000)
    bce = nn.functional.binary_cross_entropy_with_logits
    x_main = problem.x_train[problem.labelled]

    def losses(x_aux: torch.Tensor, y_aux: torch.Tensor, main_scale: float = 1.0):
        f_main, f_aux = net.backbone(x_main), net.backbone(x_aux)
        main = bce(net.heads[0](f_main).squeeze(1), problem.y_main)
        aux = torch.stack([bce(net.heads[1 + j](f_aux).squeeze(1), y_aux[j]) for j in range(k)])
        return main_scale * main, aux

    main_losses, stats = [], []
    for _ in range(steps):
        batch = torch.randint(0, N_TRAIN, (AUX_BATCH,), generator=gen)
        step_losses = partial(losses, problem.x_train[batch], problem.y_aux[:, batch], 0.0 if ablate_main else 1.0)
        opt.zero_grad(set_to_none=True)
        main, aux = step_losses()
        if diagnose:
            stats.append(gradient_stats(main, aux, list(net.backbone.parameters())))
        main_losses.append(float(main.detach()))
        weighting.backward(main, aux, net.backbone.parameters(), closure=arml.stateless(step_losses, net))
        if ablate_main:
            bce(net.heads[0](net.backbone(x_main)).squeeze(1), problem.y_main).backward()
        opt.step()
    with torch.no_grad():
        accuracy = float(((net.logits(problem.x_test, 0) > 0).float() == problem.y_test).float().mean())
    out = {"accuracy": accuracy, "weights": weighting.weights, "history": weighting.history(),
           "main_loss": torch.tensor(main_losses)}
    if diagnose:
        out["grad_norm"], out["cos_main"] = (torch.stack(x).mean(0) for x in zip(*stats))
    return out


def gradient_stats(main: torch.Tensor, aux: torch.Tensor, params: list[torch.Tensor]):
    """||g_k|| and cos(g_k, g_main) over the shared parameters, one backward per task (diagnostics)."""
    flat = lambda loss: torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
    g_main, g = flat(main), torch.stack([flat(a) for a in aux])
    norms = g.norm(dim=1)
    return norms, (g @ g_main) / (norms * g_main.norm()).clamp(min=1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--arml-lr", type=float, default=0.05, help="ARML's beta (the library default)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    problems = {seed: make_problem(seed) for seed in seeds}
    row = lambda label, values: print(f"  {label:22s}" + " ".join(f"{float(v):8.3f}" for v in values))
    print(f"digits: has_loop with {N_LABELLED} labels; aux on {N_TRAIN} images: {', '.join(NAMES)}; "
          f"{args.steps} steps, seeds {seeds}, ARML lr {args.arml_lr}")
    runs: dict[str, list[dict]] = {}
    for method in ("main-only", "uniform", "arml"):
        options = {"lr": args.arml_lr} if method == "arml" else {}
        start = time.perf_counter()
        runs[method] = [train(problems[s], method, s, args.steps, diagnose=method == "uniform", **options)
                        for s in seeds]
        acc = [r["accuracy"] for r in runs[method]]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"  {method:10s} test accuracy {100 * statistics.mean(acc):5.1f} +- {100 * std:4.1f} %  "
              f"(per seed: {', '.join(f'{100 * a:.1f}' for a in acc)}; "
              f"{(time.perf_counter() - start) / len(seeds):.1f} s/run)")
    print("\nARML final weights, one row per seed:\n  " + " " * 22 + " ".join(f"{n:>8s}" for n in NAMES))
    for seed, run in zip(seeds, runs["arml"]):
        row(f"seed {seed}", run["weights"])
    print("Same, with g_main removed from ARML's residual (the main task still trained):")
    for seed in seeds:
        blind = train(problems[seed], "arml", seed, args.steps, ablate_main=True, lr=args.arml_lr)
        row(f"seed {seed}", blind["weights"])
    print("Uniform run, mean over steps (seed means):")
    row("||g_k|| (backbone)", torch.stack([r["grad_norm"] for r in runs["uniform"]]).mean(0))
    row("cos(g_k, g_main)", torch.stack([r["cos_main"] for r in runs["uniform"]]).mean(0))
    print("\nControl: has_loop itself labelled on all 1200 images (own head) + the 4 random-label tasks, ARML:")
    for seed in seeds:
        run = train(main_task_as_aux(problems[seed]), "arml", seed, args.steps, lr=args.arml_lr)
        weight, loss = run["history"][1:, 0], run["main_loss"]
        peak = int(weight.argmax())
        print(f"  seed {seed}: has_loop_all weight peaks at {float(weight[peak]):.2f} (step {peak + 1}, main "
              f"loss {float(loss[peak]):.3f}), ends at {float(weight[-1]):.2f} (main loss {float(loss[-1]):.3f}); "
              f"random: {', '.join(f'{float(v):.2f}' for v in run['weights'][1:])}")


if __name__ == "__main__":
    main()
