"""How exact each way of getting [<grad L_k, v>]_k is on the paper's three models, measured side by side on a CPU.

WRN-28-2 at 32 px (S4L, K = 2), ResNet-18 at 112 px (CelebA, K = 39) and ResNet-18 at 224 px (PACS, K = 3), as
`trainables.fit` builds them, on one small batch of fake files in the real formats (tests/helpers/paper_models.py),
float32. For ARML's alpha gradient (v = its residual direction) and Auto-Lambda's meta-gradient (v = its d):
`directional` = "jvp" (forward mode) and "central" at its default step and at the best of a sweep, each against
"double_backward" (exact) in float32, and the float32 double backward against the same on a float64 copy of the
model (same batch: how exact float32 is at all). Then the alpha gradient with the step under bf16 autocast
(CPU), the forward-mode pass under the same autocast or in float32, against the float32 exact value.

    python benchmarks/directional_accuracy.py                    # all three models, about 10 min on 2 CPUs
    python benchmarks/directional_accuracy.py --models PACS --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))

import torch  # noqa: E402
from paper_models import PAPER_MODELS, PaperBatch, paper_batch, write_paper_data  # noqa: E402

import arml  # noqa: E402

ARML_STEPS = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)   # fd_eps: a fraction of ||theta||; default 3e-5
AUTOLAMBDA_STEPS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)    # fd_step: an absolute length; default 1e-2


def shared_of(model: torch.nn.Module, batch: PaperBatch) -> list[torch.Tensor]:
    """The shared parameters as `trainables.loop.build` takes them (backbone and the setting's shared heads)."""
    heads = [p for h in batch.built.setting.shared_heads for p in model.heads[h].parameters()]
    return [p for p in [*model.backbone.parameters(), *heads] if p.requires_grad]


def arml_alpha(batch: PaperBatch, model: torch.nn.Module, losses, closure_losses, **options: Any) -> torch.Tensor:
    """ARML's alpha gradient at weights 1 (`losses` for the step, `closure_losses` re-evaluated, or None)."""
    for p in model.parameters():
        p.grad = None
    main, aux = losses()
    weighting = arml.ARML(aux.numel(), **options)
    closure = arml.stateless(closure_losses, model) if closure_losses is not None else None
    return weighting.alpha_gradient(main, aux, shared_of(model, batch), closure, batch.built.setting.main_weight)


def autolambda_meta(batch: PaperBatch, model: torch.nn.Module, losses, **options: Any) -> torch.Tensor:
    """Auto-Lambda's meta-gradient h = -a [<grad L_k, d>]_k, bound to `model` and an optimizer like the run's."""
    for p in model.parameters():
        p.grad = None
    built = batch.built
    optimizer = built.optimizer if model is built.model else type(built.optimizer)(
        model.parameters(), **built.optimizer.defaults)
    main, aux = losses()
    weighting = arml.AutoLambda(aux.numel(), **options)          # the authors' defaults (init 0.1)
    weighting.bind(model=model, optimizer=optimizer)
    return weighting.meta_gradient(main, aux, shared_of(model, batch), arml.stateless(losses, model),
                                   built.setting.main_weight)


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-300))


def errors(compute, reference32: torch.Tensor, reference64: torch.Tensor, steps: tuple[float, ...], default: float,
           step_option: str) -> dict[str, Any]:
    """jvp and central (each step of `steps`) against the float32 and the float64 double backward."""
    row: dict[str, Any] = {"double_backward_vs_fp64": rel(reference32, reference64)}
    jvp = compute(directional="jvp")
    row["jvp"], row["jvp_vs_fp64"] = rel(jvp, reference32), rel(jvp, reference64)
    sweep, sweep64 = {}, {}
    for step in steps:
        central = compute(directional="central", **{step_option: step})
        sweep[step], sweep64[step] = rel(central, reference32), rel(central, reference64)
    row["central_default"], row["central_default_vs_fp64"] = sweep[default], sweep64[default]
    row["central_best"], row["central_best_step"] = min((e, s) for s, e in sweep.items())
    row["central_sweep"], row["central_sweep_vs_fp64"] = sweep, sweep64
    return row


def measure(name: str, root: str, parts: list[str]) -> dict[str, Any]:
    batch = paper_batch(name, root)
    model, losses = batch.built.model, batch.losses()
    model64 = batch.float64_model()
    losses64 = batch.losses(model64, torch.float64)
    out: dict[str, Any] = {"model": name, "K": len(batch.built.names)}

    if "arml" in parts:  # v = the residual g_main - sum_k a_k g_k
        out["arml"] = errors(lambda **o: arml_alpha(batch, model, losses, losses, **o),
                             arml_alpha(batch, model, losses, None), arml_alpha(batch, model64, losses64, None),
                             ARML_STEPS, 3e-5, "fd_eps")
    if "autolambda" in parts:  # v = d = A grad L_0(theta')
        out["autolambda"] = errors(lambda **o: autolambda_meta(batch, model, losses, **o),
                                   autolambda_meta(batch, model, losses, directional="double_backward"),
                                   autolambda_meta(batch, model64, losses64, directional="double_backward"),
                                   AUTOLAMBDA_STEPS, 1e-2, "fd_step")
    if "bf16" in parts:  # the step under bf16 autocast; the forward-mode pass in float32 or under the same autocast
        def autocast(fn):
            def cast():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return fn()
            return cast

        reference = arml_alpha(batch, model, losses, None)              # float32, exact
        step = autocast(losses)
        out["bf16_step"] = {
            "jvp_fp32": rel(arml_alpha(batch, model, step, losses, directional="jvp"), reference),
            "jvp_bf16": rel(arml_alpha(batch, model, step, step, directional="jvp"), reference),
            "central_fp32": rel(arml_alpha(batch, model, step, losses, directional="central"), reference),
            "double_backward": rel(arml_alpha(batch, model, step, None), reference),
        }
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| model (K) | method | jvp | central, default step | central, best step | fp32 double backward vs "
             "fp64 |", "|---|---|---|---|---|---|"]
    for r in results:
        for method, default in (("arml", "fd_eps 3e-5"), ("autolambda", "fd_step 1e-2")):
            if method not in r:
                continue
            m = r[method]
            lines.append(f"| {r['model']} ({r['K']}) | {method} | {m['jvp']:.1e} | {m['central_default']:.1%} "
                         f"({default}) | {m['central_best']:.2%} (at {m['central_best_step']:g}) | "
                         f"{m['double_backward_vs_fp64']:.1e} |")
    if any("bf16_step" in r for r in results):
        lines += ["", "bf16 step (CPU autocast), ARML's alpha gradient against the float32 exact value:", "",
                  "| model | jvp in float32 | jvp under the step's autocast | central in float32 | "
                  "double backward of the bf16 step |", "|---|---|---|---|---|"]
        for r in results:
            if "bf16_step" in r:
                b = r["bf16_step"]
                lines.append(f"| {r['model']} | {b['jvp_fp32']:.2%} | {b['jvp_bf16']:.2%} | {b['central_fp32']:.2%} "
                             f"| {b['double_backward']:.2%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated parts of the model names (default: all)")
    parser.add_argument("--parts", default="arml,autolambda,bf16",
                        help="which measurements: arml, autolambda, bf16 (comma-separated; default all)")
    parser.add_argument("--data-root", default="", help="where to write the fake files (default: a temp folder)")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    root = args.data_root or tempfile.mkdtemp(prefix="arml-directional-")
    write_paper_data(root)
    names = [n for n in PAPER_MODELS if not args.models or any(part in n for part in args.models.split(","))]
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} device=cpu float32, one batch per model; "
          "relative error |g - g_ref| / |g_ref| against the float32 double backward (and float64's)")
    results = []
    for name in names:
        results.append(measure(name, root, args.parts.split(",")))
        print(json.dumps(results[-1], default=str), flush=True)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
