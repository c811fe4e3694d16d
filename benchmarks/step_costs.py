"""The per-step costs behind `arml run --dry-run`'s time estimate: for every preset, seconds per training step
(Uniform weighting), seconds per evaluation and a trial's set-up seconds, measured with `trainables.fit` on
this machine; written to orchestrator/run/step_costs.json with the machine's description.

Digits presets run on the embedded data set at their real sizes; the paper presets on fake data in the real
on-disk formats (tests/helpers/fakedata.py) at their real image sizes and batch sizes, for a few steps (their set-up
on real data is not measured: the estimate leaves it out). Digits presets are measured again with the width-16
CNN the shipped digits studies use (`model_options = { width = 16 }`): a study with measured model options is
estimated from those (per-step time does not follow FLOPs on models this small). How other weightings scale a
step comes from benchmarks/weighting_overhead.py (WEIGHTING_FACTORS below).

    python benchmarks/step_costs.py               # about 5 minutes on 2 CPUs
    python benchmarks/step_costs.py --only digits_ssl       # one preset (and its variants), merged into the file
    python benchmarks/step_costs.py --only digits_mlc --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.run.dryrun import model_key  # the estimate's name for a model variant

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
OUT = ROOT / "orchestrator" / "run" / "step_costs.json"
# a weighting's step over a Uniform step (benchmarks/weighting_overhead.py and cheap_arml.py on this machine:
# ARML 2.2-2.7x with its closure, amortize=8 1.1-1.2x, Auto-Lambda 3.1-3.4x, GradNorm 1.1-3.3x with K)
# images one evaluation reads at the real data sets' sizes (validation + test): CIFAR-10 5,000 + 10,000; SVHN
# 7,325 + 26,032; CelebA 19,867 + 19,962; PACS (target art_painting) a tenth of the 7,943 source images + 2,048
REAL_EVAL_IMAGES = {"cifar10": 15_000, "svhn": 33_357, "celeba": 39_829, "pacs": 2_842}
# model variants measured besides each preset's own model (what the shipped studies use)
VARIANTS = {"digits_ssl": [{"width": 16}], "digits_mlc": [{"width": 16}], "digits_dg": [{"width": 16}]}
WEIGHTING_FACTORS = {"uniform": 1.0, "fixed": 1.0, "adaloss": 1.05, "cosinesim": 1.5, "olaux": 1.5,
                     "gradnorm": 2.0, "arml": 2.4, "arml_amortized": 1.15, "autolambda": 3.3}


def _fit_seconds(config) -> tuple[float, float]:
    """(wall seconds of a whole `fit`, its training steps per second)."""
    from trainables import fit

    reports: list[dict] = []
    start = time.perf_counter()
    fit(config, lambda metrics, checkpoint: reports.append(metrics))
    return time.perf_counter() - start, reports[-1]["steps_per_s"]


def measure(preset: str, root: str, overrides: dict) -> dict[str, float | None]:
    """{"step_s", "eval_s", "setup_s"} of one preset (Uniform): two runs of the same steps, one evaluating once
    and one `evals` times; their difference is what the extra evaluations cost (per image, times the real data
    set's evaluation images for a paper preset)."""
    from trainables.config import resolve_config

    paper = not preset.startswith("digits")
    steps, evals = (2, 2) if paper else (60, 4)
    base = resolve_config(preset, data_root=root, device="cpu", num_workers=0, steps=steps, lr_milestones=(),
                          checkpoint_every=10**9, max_eval_items=64 if paper else 0, **overrides)
    once, rate = _fit_seconds(base.replace(eval_every=steps))
    often, _ = _fit_seconds(base.replace(eval_every=steps // evals))
    step_s = 1.0 / rate
    eval_s = max(0.0, (often - once) / (evals - 1))
    setup_s = max(0.0, once - steps * step_s - eval_s)
    items = _eval_items(base)
    if paper:
        eval_s *= REAL_EVAL_IMAGES[base.dataset] / max(items, 1)
        items = REAL_EVAL_IMAGES[base.dataset]
    return {"step_s": round(step_s, 5), "eval_s": round(eval_s, 3), "eval_images": items,
            "setup_s": None if paper else round(setup_s, 2)}


def _eval_items(config) -> int:
    """Images evaluated per evaluation (val + test) in the measured run."""
    from trainables.config import data_request
    from trainables.data import build_data

    data = build_data(config.dataset, data_request(config))
    if config.setting == "dg":
        sizes = [len(s) for s in data.source_val.values()] + [len(data.target_test)]
    else:
        sizes = [len(data.val), len(data.test)]
    return sum(min(s, config.max_eval_items) if config.max_eval_items else s for s in sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="one preset")
    parser.add_argument("--no-write", action="store_true", help="print, do not write step_costs.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)   # what one trial with cpus_per_trial = 1 uses
    from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs, write_fake_svhn

    from trainables.config import PRESETS

    root = tempfile.mkdtemp(prefix="step-costs-")
    write_fake_cifar10(root, n_train=1200, n_test=200)
    write_fake_svhn(root, n_train=1200, n_test=200)
    write_fake_celeba(root, partition=(400, 60, 60))
    write_fake_pacs(root, per_class=8)
    small = {"ssl_cifar10_paper": {"label_budget": 400}, "ssl_svhn_paper": {"label_budget": 400},
             "mlc_celeba_paper": {"label_fraction": 0.5}, "dg_pacs_paper": {"per_class": 4}}
    presets = [args.only] if args.only else sorted(PRESETS)
    costs, variants = {}, {}
    for preset in presets:
        started = time.perf_counter()
        costs[preset] = measure(preset, root, small.get(preset, {}))
        print(f"{preset:20s} {costs[preset]}  ({time.perf_counter() - started:.0f} s)", flush=True)
        for options in VARIANTS.get(preset, []):
            key = model_key(options)
            variants.setdefault(preset, {})[key] = measure(preset, root, {**small.get(preset, {}),
                                                                          "model_options": options})
            print(f"{preset + ' ' + key:20s} {variants[preset][key]}", flush=True)
    if args.no_write:
        return 0
    payload = {"machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, 1 thread per trial "
                          f"({platform.processor() or platform.platform()})",
               "measured_with": "benchmarks/step_costs.py", "weighting_factors": WEIGHTING_FACTORS,
               "presets": costs, "variants": variants}
    if args.only and OUT.exists():    # one preset measured again: the others' costs stay
        old = json.loads(OUT.read_text())
        payload["presets"] = {**old.get("presets", {}), **costs}
        payload["variants"] = {**old.get("variants", {}), **variants}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
