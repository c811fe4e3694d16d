"""Training throughput of `trainables.fit` against the loader alone, per setting and data path.

Training: `trainables.fit` itself runs; a report callback notes the time at every evaluation (every
`interval` steps; evaluation capped to a few items, no checkpoints) and stops the run after the measured
intervals. The first interval (building, first steps) is warm-up and not counted. So each figure is whole
training steps as the loop does them: batches, augmentation, task inputs, forward/backward, weighting,
optimizer, EMA teacher.
Images per step: images drawn from the streams per step, main batch + auxiliary batch(es) (digits ssl:
32 labeled + 128 unlabeled; rotation and exemplar-MT both use the same 128).
Loader: the same setting's `next_batches()` (`BatchStream.next()` of every stream) in a loop on the same
device; "+aug" also applies the data set's batch augmentation as the loop does. The goal is
loader / training >= 3x: then the input pipeline is not what limits training.

    python benchmarks/throughput.py            # all cases (about 5 minutes on a CPU)
    python benchmarks/throughput.py --quick    # fewer steps, less fake data
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
from fakedata import write_fake_celeba, write_fake_cifar10, write_fake_pacs  # noqa: E402

from trainables import fit  # noqa: E402
from trainables.augment import AUGMENTATIONS  # noqa: E402
from trainables.config import TrainConfig, resolve_config  # noqa: E402
from trainables.data import build_data  # noqa: E402
from trainables.distributed import pick_device  # noqa: E402
from trainables.loop import data_request  # noqa: E402
from trainables.settings import SETTING_CLASSES  # noqa: E402


@dataclass
class Case:
    label: str
    preset: str
    overrides: dict = field(default_factory=dict)
    interval: int = 10          # steps between timestamps
    scaled_batch: bool = False  # --batch replaces the preset's batch sizes


def cases(batch: int) -> list[Case]:
    out = []
    for preset in ("digits_ssl", "digits_mlc", "digits_dg"):
        for weighting in ("uniform", "arml"):
            out.append(Case(preset, preset, dict(weighting=weighting), 10))
    for model in ("wrn28_2", "resnet18"):
        for weighting in ("uniform", "arml"):
            out.append(Case("cifar10 32px ssl", "ssl_cifar10_paper",
                            dict(model=model, weighting=weighting, label_budget=250), 2, True))
    for workers in (0, 2):
        out.append(Case("pacs 64px dg (files)", "dg_pacs_paper",
                        dict(image_size=64, model="small_cnn", per_class=5, num_workers=workers), 2, True))
        out.append(Case("celeba 64px mlc (files)", "mlc_celeba_paper",
                        dict(image_size=64, model="small_cnn", label_fraction=0.25, num_workers=workers), 2, True))
    return out


def write_data(root: str, quick: bool) -> None:
    write_fake_cifar10(root, n_train=1000 if quick else 3000, n_test=100)
    write_fake_pacs(root, per_class=6 if quick else 15)                       # 227x227 files, like PACS
    n = 120 if quick else 400
    write_fake_celeba(root, partition=(n, n // 8, n // 8))                    # 178x218 JPEGs, like CelebA


class _Done(Exception):
    pass


def time_training(config: TrainConfig, interval: int, intervals: int) -> float:
    """Training steps per second over `intervals` x `interval` steps after one warm-up interval."""
    stamps: list[float] = []

    def report(metrics: dict, checkpoint: str | None) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == intervals + 1:
            raise _Done

    config = config.replace(eval_every=interval, steps=interval * (intervals + 5), checkpoint_every=10**9,
                            max_eval_items=16, eval_batch_size=16)
    try:
        fit(config, report)
    except _Done:
        pass
    return interval * intervals / (stamps[-1] - stamps[0])


def count_images(batch) -> int:
    """Images in a (main, aux) pair of batches as `Setting.next_batches()` returns them."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() == 4 else 0
    if isinstance(batch, dict):
        return sum(count_images(v) for v in batch.values())
    if isinstance(batch, (tuple, list)):
        return sum(count_images(v) for v in batch)
    return 0


def time_loader(config: TrainConfig, seconds: float) -> tuple[int, float, float, bool]:
    """(images per step, loader-only images/s, loader + augmentation images/s, whether files are read) of
    the setting's streams."""
    device = pick_device(config.device)
    data = build_data(config.dataset, data_request(config))
    setting = SETTING_CLASSES.get(config.setting)(data, config, device, {}, 0, 1)
    augment = AUGMENTATIONS.get(data.info.augment)
    per_step = count_images(setting.next_batches())

    def rate(with_augment: bool) -> float:
        for _ in range(3):                                                    # warm-up (loader workers)
            setting.next_batches()
        steps, start = 0, time.perf_counter()
        gen = torch.Generator().manual_seed(0)
        while time.perf_counter() - start < seconds or steps < 5:
            (x, _), aux = setting.next_batches()
            if with_augment:
                augment(x, gen)
                setting.augment_aux(aux, augment, gen)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            steps += 1
        return steps * per_step / (time.perf_counter() - start)

    files = not all(stream.images.in_memory for stream in setting.streams.values())
    result = per_step, rate(False), rate(True), files
    setting.streams.clear()
    gc.collect()                                                              # stops loader workers
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n    python")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps, smaller batches, less fake data (about 2 minutes on a CPU)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda:0' ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: steadier on a shared machine)")
    parser.add_argument("--batch", type=int, default=0,
                        help="batch size (main and each auxiliary) of the cifar10/pacs/celeba cases;"
                             " 0: 32 on a CPU (16 with --quick), the preset's on CUDA")
    parser.add_argument("--intervals", type=int, default=0,
                        help="timed intervals per training case (default 3, quick 2)")
    parser.add_argument("--only", default="", help="run only cases whose label contains this text")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    batch = args.batch or ((16 if args.quick else 32) if device.type == "cpu" else 0)
    intervals = args.intervals or (2 if args.quick else 3)
    loader_seconds = 1.0 if args.quick else 3.0
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"throughput: device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s),"
          f" {os.cpu_count()} CPUs, load average {load}{', --quick' if args.quick else ''}")
    print("train: fit() timed between evaluations (first interval = warm-up); img = main + aux images per step")
    header = (f"{'case':<24} {'model':<9} {'weighting':<9} {'wk':>2} {'img/step':>8} {'steps/s':>8}"
              f" {'train img/s':>11} {'loader img/s':>12} {'+aug img/s':>10} {'loader/train':>12}")
    print(header)
    print("-" * len(header))
    ratios = []
    with tempfile.TemporaryDirectory(prefix="arml-throughput-") as root:
        write_data(root, args.quick)
        for case in cases(batch):
            if args.only and args.only not in case.label:
                continue
            overrides = dict(case.overrides, device=str(device), data_root=root)
            if case.scaled_batch and batch:
                overrides.update(batch_size=batch, aux_batch_size=batch)
            config = resolve_config(case.preset, **overrides)
            per_step, loader, loader_aug, files = time_loader(config, loader_seconds)
            interval = case.interval if not (args.quick and case.scaled_batch) else 1
            steps_per_s = time_training(config, interval, intervals)
            workers = config.num_workers if files else "-"                   # loader processes: files only
            train = steps_per_s * per_step
            ratios.append((loader / train, case.label, config.weighting))
            print(f"{case.label:<24} {config.model:<9} {config.weighting:<9} {workers:>2} {per_step:>8}"
                  f" {steps_per_s:>8.2f} {train:>11.0f} {loader:>12.0f} {loader_aug:>10.0f}"
                  f" {loader / train:>11.1f}x", flush=True)
    if ratios:
        worst = min(ratios)
        met = sum(r >= 3 for r, _, _ in ratios)
        print(f"goal loader/train >= 3x: met by {met} of {len(ratios)} cases;"
              f" lowest {worst[0]:.1f}x ({worst[1]}, {worst[2]})")


if __name__ == "__main__":
    main()
