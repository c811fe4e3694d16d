"""Why a weighting weights the auxiliary tasks as it does: each task's gradient against the main task's.

`gradient_diagnostics(losses, shared, model)` re-evaluates a step's losses and takes, over the shared parameters,
the gradient of the main loss and of every auxiliary loss (K + 1 backward passes through one re-evaluated graph).
Per auxiliary task k it returns |g_k| / |g_main| (is the task's pull large or small next to the main task's?) and
cos(g_k, g_main) (does it pull the same way?): a weight that follows the cosine tracks alignment with the main
task; one that follows the norm ratio tracks gradient size. `fit` reports them at each evaluation when
`TrainConfig.diagnostics` is on, as `grad_norm_ratio/<task>` and `grad_cos/<task>` next to `weight/<task>`.

The probe changes nothing in training: gradients come from `torch.autograd.grad` (no parameter's `.grad` is
written), the re-evaluation runs on copies of the model's buffers (BatchNorm running statistics and counters are
neither updated nor version-bumped), and the random number generators are restored afterwards. Batching the
K + 1 backward passes with `is_grads_batched` gives the same gradients bit for bit but was slower on a CPU
(digits, K = 16: 0.5-0.8 s against 0.33 s), so the passes run one after the other, holding two flat gradients at
a time rather than K + 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from arml.closure import buffers_copied
from arml.distributed import all_mean
from arml.gradients import grad_of

Losses = Callable[[], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class GradientDiagnostics:
    """Per auxiliary task (weight order), float64 on the CPU: `norm_ratio[k]` = |g_k| / |g_main| and
    `cosine[k]` = cos(g_k, g_main), gradients over the shared parameters (averaged over workers)."""

    norm_ratio: torch.Tensor
    cosine: torch.Tensor

    def metrics(self, names: Sequence[str]) -> dict[str, float]:
        """`grad_norm_ratio/<task>` and `grad_cos/<task>` for the reported metrics (`names` in weight order)."""
        if len(names) != self.cosine.numel():
            raise ValueError(f"{len(names)} task names for {self.cosine.numel()} auxiliary losses")
        out: dict[str, float] = {}
        for name, ratio, cos in zip(names, self.norm_ratio.tolist(), self.cosine.tolist()):
            out[f"grad_norm_ratio/{name}"] = ratio
            out[f"grad_cos/{name}"] = cos
        return out


def gradient_diagnostics(losses: Losses, shared: Sequence[torch.Tensor], model: nn.Module) -> GradientDiagnostics:
    """Norm ratio and cosine of each auxiliary loss's gradient against the main loss's, over `shared`.

    `losses() -> (main_loss, aux_losses[K])` re-evaluates the step's losses at the current parameters with the
    step's inputs (deterministic, as for `arml.stateless`); it is called once, with autograd on, while every
    buffer of `model` is swapped for a copy. Norms and inner products are accumulated in float64. A zero main
    gradient gives NaN cosines (and infinite norm ratios, NaN for a zero task gradient), not an error. Under
    data parallelism every gradient is averaged over the workers first (one all-reduce each), so all workers
    return the same numbers; every worker must call this at the same step.
    """
    params = [p for p in shared if p.requires_grad]
    with buffers_copied(model), _rng_kept(params), torch.enable_grad():
        main, aux = losses()
        aux = aux.reshape(-1)
        count = aux.numel()
        if not params:  # nothing shared to measure on: every gradient is zero
            nan = torch.full((count,), float("nan"), dtype=torch.float64)
            return GradientDiagnostics(nan, nan.clone())
        g_main = all_mean(grad_of(main, params, retain_graph=count > 0)).double()
        norms, dots = [], []
        for k in range(count):  # one task gradient alive at a time: memory 2P, not (K + 1) P
            g_k = all_mean(grad_of(aux[k], params, retain_graph=k < count - 1)).double()
            norms.append(torch.linalg.vector_norm(g_k))
            dots.append(torch.dot(g_k, g_main))
            del g_k
    main_norm = torch.linalg.vector_norm(g_main).cpu()
    norm = torch.stack(norms).cpu() if norms else torch.zeros(0, dtype=torch.float64)
    dot = torch.stack(dots).cpu() if dots else torch.zeros(0, dtype=torch.float64)
    return GradientDiagnostics(norm_ratio=norm / main_norm, cosine=(dot / (norm * main_norm)).clamp(-1.0, 1.0))


def _rng_kept(params: Sequence[torch.Tensor]) -> contextlib.AbstractContextManager:
    """The CPU generator and that of the parameters' accelerator restored on exit, so that the probe draws
    nothing from the streams training uses (a model that draws, e.g. dropout, then reads a draw of its own)."""
    devices = {p.device for p in params if p.device.type != "cpu"}
    if not devices:
        return torch.random.fork_rng(devices=[])
    device_type = next(iter(devices)).type
    return torch.random.fork_rng(devices=sorted(d.index or 0 for d in devices), device_type=device_type)
