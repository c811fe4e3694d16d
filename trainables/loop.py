"""`fit(config, report)`: the one training loop for the three settings, top to bottom.

Builds data, backbone, heads, auxiliary tasks and the weighting from the config by registry names;
trains; every `eval_every` steps evaluates the main task on validation and test, reports metrics and
the auxiliary weights (with `diagnostics`, also each auxiliary gradient's size and alignment relative to
the main task's), and hands a checkpoint to `report`. Test accuracy is selected on validation: on the
`val_labels` images the data build drew for the seed when that is set (`val_images` says how many).

Nothing in this loop makes the host wait for a GPU during a training step (running losses stay on the
device until an evaluation reads them); docs/performance.md has the measured figures and lists the waits
left in the weighting methods and one auxiliary task.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

import arml
from trainables import checkpoint
from trainables.augment import AUGMENTATIONS
from trainables.config import TrainConfig, aux_names, data_request  # noqa: F401  (aux_names re-exported)
from trainables.data import build_data
from trainables.dg_variants import DG_VARIANTS
from trainables.diagnostics import GradientDiagnostics, gradient_diagnostics
from trainables.distributed import (
    average_gradients,
    broadcast_parameters,
    pick_device,
    rank_and_world,
    sum_over_workers,
)
from trainables.errors import ConfigError, DivergenceError
from trainables.model import EMA, MultiTaskModel
from trainables.models import build_backbone
from trainables.settings import SETTING_CLASSES
from trainables.streams import step_generator
from trainables.tasks import AUX_TASKS, Context

Report = Callable[[dict[str, Any], str | None], None]
log = logging.getLogger("trainables")
Losses = Callable[[], tuple[torch.Tensor, torch.Tensor]]

CUDNN_BENCHMARK = True        # on CUDA: cuDNN picks the fastest convolution algorithms for the run's shapes
COMPILE_OPTIONS: dict[str, Any] = {}   # extra arguments of torch.compile for `compile` (tests: backend="eager")


def _weighting(config: TrainConfig, names: list[str]) -> arml.Weighting:
    try:
        return arml.make_weighting(config.weighting, num_aux=len(names), task_names=names,
                                   **config.weighting_options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"weighting {config.weighting!r} with options {config.weighting_options}: {error}") from None


def _lr(config: TrainConfig, step: int) -> float:
    return config.lr * config.lr_gamma ** sum(step > m for m in config.lr_milestones)


@dataclass
class Built:
    """What `fit` trains, built from a config: also the building blocks benchmarks/gpu_throughput.py times."""

    config: TrainConfig
    device: torch.device
    setting: Any
    model: MultiTaskModel
    tasks: list
    names: list[str]
    weighting: arml.Weighting
    shared: list[torch.Tensor]
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    teacher: EMA | None
    augment: Callable
    amp: bool


def build(config: TrainConfig, device: torch.device, state: dict[str, Any] | None = None, rank: int = 0,
          world: int = 1) -> Built:
    """Data, model, heads, tasks, weighting and optimiser as `config` says (restored from `state` if given)."""
    data = build_data(config.dataset, data_request(config))
    if config.dg_variant not in DG_VARIANTS:
        raise ConfigError(f"dg_variant must be one of {', '.join(DG_VARIANTS.names())}, got {config.dg_variant!r}")
    setting = SETTING_CLASSES.get(config.setting)(data, config, device, state["streams"] if state else {}, rank, world)
    backbone = build_backbone(config.model, data.info, **config.model_options)
    tasks = [AUX_TASKS.get(name)(data, backbone.feature_dim, config) for name in config.aux_tasks]
    for name, task in zip(config.aux_tasks, tasks):
        if config.setting not in task.settings:
            raise ConfigError(f"auxiliary task {name!r} works in settings {task.settings}, not {config.setting!r}")
    heads = setting.heads(backbone.feature_dim)
    for task in tasks:
        heads.update(task.heads())
    model = MultiTaskModel(backbone, heads, data.info.mean, data.info.std).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    broadcast_parameters(model)
    names = [n for task in tasks for n in task.names]
    if not names:
        raise ConfigError("no auxiliary losses: list at least one name in aux_tasks")
    weighting = _weighting(config, names)
    shared = [*model.backbone.parameters(), *[p for h in setting.shared_heads for p in model.heads[h].parameters()]]
    params = list(model.parameters())
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                                    weight_decay=config.weight_decay)
    else:
        raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {config.optimizer!r}")
    weighting.bind(model=model, optimizer=optimizer, num_train=setting.num_train_images(), total_steps=config.steps)
    teacher = EMA(model, config.ema_decay) if any(t.needs_teacher for t in tasks) else None
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        configured = weighting.state_dict()["weights"] if type(weighting).fixed_weights else None
        weighting.load_state_dict(state["weighting"])
        if configured is not None:   # fixed weights are the run's configuration: a run continued from another
            # run's checkpoint (a population's member that copied a better one) trains with its own
            weighting.load_state_dict({**weighting.state_dict(), "weights": configured})
        if teacher is not None:
            teacher.model.load_state_dict(state["teacher"])
    if config.compile:  # in place (state_dict keys unchanged), after the EMA teacher's copy, which stays eager
        model.backbone.compile(**COMPILE_OPTIONS)
    if device.type == "cuda" and CUDNN_BENCHMARK:
        torch.backends.cudnn.benchmark = True
    return Built(config, device, setting, model, tasks, names, weighting, shared, params, optimizer, teacher,
                 AUGMENTATIONS.get(data.info.augment), config.amp and device.type == "cuda")


def step_batches(built: Built, step: int, rank: int = 0
                 ) -> tuple[Losses, tuple[torch.Tensor, torch.Tensor], Any]:
    """The step's losses as a function of the parameters (batches drawn, augmented and prepared once), and
    the main and auxiliary batches (for a setting's own extra losses)."""
    (x_main, y_main), aux_batch = built.setting.next_batches()
    teacher = built.teacher.model if built.teacher else None
    context = Context(step_generator(built.config.seed, step, f"augment/{rank}"), teacher)
    x_main = built.augment(x_main, context.generator)
    aux_batch = built.setting.augment_aux(aux_batch, built.augment, context.generator)
    with torch.autocast(built.device.type, dtype=torch.bfloat16, enabled=built.amp):  # e.g. the EMA teacher's pass
        prepared = [task.prepare(aux_batch, context) for task in built.tasks]
    groups = [x_main] + [x for inputs, _ in prepared for x in inputs]
    losses = _step_losses(built.model, built.setting, built.tasks, groups, y_main, prepared, built.config.aux_scale,
                          built.config.channels_last)
    return losses, (x_main, y_main), aux_batch


def fit(config: TrainConfig | dict[str, Any], report: Report | None = None, *, resume_from: str | None = None
        ) -> dict[str, Any]:
    """Trains one model as `config` says and returns the final metrics (also passed to `report`)."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    rank, world = rank_and_world()
    device = pick_device(config.device)
    state = checkpoint.load(resume_from) if resume_from else None
    torch.manual_seed(config.seed)

    # ---- build: data, model, tasks, weighting, optimiser ----------------------------------------
    built = build(config, device, state, rank, world)
    setting, model, weighting, optimizer = built.setting, built.model, built.weighting, built.optimizer
    names, shared, params, teacher, amp = built.names, built.shared, built.params, built.teacher, built.amp
    main_weight = setting.main_weight
    best = {"val_acc": -1.0, "test_acc": 0.0, "step": 0}
    start = 0
    if state:
        best, start = state["best"], state["step"]

    # ---- train ------------------------------------------------------------------------------------
    # running loss sums stay on the device: reading them each step would make the host wait for the GPU
    running = torch.zeros(1 + len(names), dtype=torch.float32 if device.type == "mps" else torch.float64,
                          device=device)
    count, train_seconds, steps_done, metrics = 0, 0.0, 0, {}
    model.train()
    if start >= config.steps:  # resumed from the final checkpoint: nothing to train, report where it ended
        metrics = _evaluate(model, setting, weighting, names, running, best, start, config)
        if report is not None:
            report(metrics, None)
        return metrics
    for step in range(start + 1, config.steps + 1):
        tick = time.perf_counter()
        evaluating = step % config.eval_every == 0 or step == config.steps
        diagnostics: GradientDiagnostics | None = None
        probe_seconds = 0.0
        for group in optimizer.param_groups:
            group["lr"] = _lr(config, step)
        losses, (x_main, y_main), aux_batch = step_batches(built, step, rank)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            main_loss, aux_losses = losses()
        optimizer.zero_grad(set_to_none=True)
        try:
            closure = arml.stateless(closure_losses(losses, device, amp), model)
            weighting.backward(main_loss, aux_losses, shared, closure=closure, main_weight=main_weight)
        except arml.NonFiniteLossError as error:
            raise DivergenceError(f"training diverged at step {step}: {error}") from None
        except arml.NoForwardRuleError as error:   # the model cannot take the default directional = "jvp"
            raise ConfigError(f"weighting {config.weighting!r} (weighting_options {config.weighting_options}): "
                              f"{error}") from None
        if config.diagnostics and evaluating:
            # Here, right after the weighting's backward and before anything else touches the model: the
            # parameters are those the weighting saw. The probe re-evaluates the step's losses (same autocast)
            # on copies of the buffers and takes gradients with autograd.grad: `.grad`, which the optimizer
            # uses below, the BatchNorm statistics and the random streams are left as they are.
            probe_tick = time.perf_counter()
            diagnostics = gradient_diagnostics(_autocast(losses, device, amp), shared, model)
            probe_seconds = time.perf_counter() - probe_tick
        setting.after_backward(model, step, (x_main, y_main), aux_batch)  # e.g. FADA's adversarial term
        average_gradients(params)
        if weighting.step_model:  # False on the weight-update steps of the ARML authors' protocol
            optimizer.step()
        if teacher is not None:
            teacher.update(model)
        running += torch.cat([main_loss.detach().reshape(1), aux_losses.detach()]).to(running.dtype)
        count += 1
        steps_done += 1
        train_seconds += time.perf_counter() - tick - probe_seconds

        if evaluating:
            metrics = _evaluate(model, setting, weighting, names, running / count, best, step, config)
            metrics["steps_per_s"] = steps_done / max(train_seconds, 1e-9)  # training only, since the start
            metrics.update(setting.extra_metrics())
            if diagnostics is not None:
                metrics.update(diagnostics.metrics(names))
            running.zero_()
            count = 0
            _report(report, metrics, rank, config, step, {
                "step": step, "model": model, "optimizer": optimizer, "weighting": weighting,
                "teacher": teacher.model if teacher else None, "streams": setting, "best": dict(best),
                "config": config.to_dict(),
            })
            log.info("step %d/%d  val %.4f  test %.4f  (best val %.4f -> test %.4f)  weights %s", step,
                     config.steps, metrics["val_acc"], metrics["test_acc"], best["val_acc"], best["test_acc"],
                     " ".join(f"{n}={w:.3f}" for n, w in zip(names, weighting.weights.tolist())))
    return metrics


def _step_losses(model, setting, tasks, groups, y_main, prepared, aux_scale, channels_last: bool = False
                 ) -> Losses:
    """The step's losses as a function of the model's current parameters (inputs fixed): one backbone pass
    over all groups of inputs, the main loss, then each task's losses in weight order."""
    sizes = [g.shape[0] for g in groups]
    batch = torch.cat(groups)  # once per step, not once per evaluation of the losses
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        features = model.features(batch).split(sizes)
        main = setting.main_loss(model.heads, features[0], y_main)
        aux, at = [], 1
        for task, (inputs, task_state) in zip(tasks, prepared):
            aux.append(task.losses(model.heads, list(features[at:at + len(inputs)]), task_state))
            at += len(inputs)
        return main, torch.cat(aux) * aux_scale

    return losses


def closure_losses(losses: Losses, device: torch.device, amp: bool) -> Losses:
    """What the weighting's closure re-evaluates (its extra forward passes): the step's losses in float32
    even when the step runs in bfloat16. A central difference that moves the parameters by 3e-5 of their
    norm drowns in bfloat16 rounding (on an H200, ARML's alpha gradient with it under the step's autocast
    was 10-22% off the float32 one in the three paper settings). The forward-mode pass (the default) does
    not, but under the step's autocast it was no closer to the float32 value on the CPU's bf16 autocast
    either: 3.0/5.3/40.7% off on the S4L/CelebA/PACS models against 3.4/9.5/28.0% in float32, the error of
    the bf16 step's own gradients either way; float32 has the smaller worst case (docs/performance.md)."""
    return losses


def _autocast(losses: Losses, device: torch.device, amp: bool) -> Losses:
    """`losses` evaluated under the step's autocast (bfloat16 on CUDA with `amp`), itself when off."""
    if not amp:
        return losses

    def cast() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return losses()

    return cast


def _evaluate(model, setting, weighting, names, mean_losses, best, step, config) -> dict[str, Any]:
    model.eval()
    val = sum_over_workers(*setting.evaluate(model, "val"))
    test = sum_over_workers(*setting.evaluate(model, "test"))
    model.train()
    val_acc, test_acc = val[0] / max(val[1], 1), test[0] / max(test[1], 1)
    if val_acc > best["val_acc"]:
        best.update(val_acc=val_acc, test_acc=test_acc, step=step)
    metrics: dict[str, Any] = {
        "step": step, "val_acc": val_acc, "test_acc": test_acc, "test_error": 1.0 - test_acc,
        "best_val_acc": best["val_acc"], "test_acc_at_best_val": best["test_acc"], "best_step": best["step"],
        "main_loss": float(mean_losses[0]), "lr": _lr(config, step), "weight_updates": weighting.updates,
        "val_images": val[1],   # what val_acc was computed on: val_labels' draw (or the whole split), all workers
    }
    for name, loss, weight in zip(names, mean_losses[1:].tolist(), weighting.weights.tolist()):
        metrics[f"aux_loss/{name}"] = loss
        metrics[f"weight/{name}"] = weight
    return metrics


def _report(report: Report | None, metrics: dict[str, Any], rank: int, config: TrainConfig, step: int,
            parts: dict[str, Any]) -> None:
    """Calls `report` with the metrics and, on rank 0 at checkpoint steps, a fresh checkpoint folder."""
    if report is None:
        return
    every = config.checkpoint_every
    if not (rank == 0 and (every == 0 or step % every == 0 or step == config.steps)):
        report(metrics, None)
        return
    state = {k: (v.stream_state() if k == "streams" else v.state_dict() if hasattr(v, "state_dict") else v)
             for k, v in parts.items()}
    directory = tempfile.mkdtemp(prefix="arml-ckpt-")
    try:
        checkpoint.save(directory, state)
        report(metrics, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
