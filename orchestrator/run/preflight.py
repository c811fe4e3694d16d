"""Everything about a plan that can be checked before Ray starts, checked at once and reported together: data
sets missing under their data root, a data root that does not exist, trials asking for more CPUs or GPUs than
this machine has, `device = "cuda"` without CUDA. On a cluster (`--address`) the data root may exist only on the
cluster's nodes and resources are checked against the cluster once joined, so only machine-independent checks
run here. `arml run --dry-run` reports the same problems.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from orchestrator.errors import UsageError


class PreflightError(UsageError):
    """Several problems found before anything started; the CLI prints one per line (exit code 2)."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where, self.problems = where, list(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{where}: {count} before anything starts: " + "; ".join(problems))

    def lines(self) -> list[str]:
        """One line for one problem; else a header and a line per problem."""
        if len(self.problems) == 1:
            return [f"{self.where}: {self.problems[0]}"]
        return [f"{self.where}: {len(self.problems)} problems before anything starts (nothing was started):",
                *(f"  - {p}" for p in self.problems)]


def _local_gpus() -> tuple[int, str]:
    """(CUDA GPUs on this machine, why none when 0)."""
    try:
        import torch
    except ImportError:
        return 0, "torch is not installed"
    if not torch.cuda.is_available():
        return 0, "torch sees no CUDA device"
    return torch.cuda.device_count(), ""


def problems(plan: Any, address: str | None = None, explicit_root: str | None = None) -> list[str]:
    """Every problem found, each one line saying what to change; [] when the plan can start. `explicit_root`:
    the data root the user gave (--data-root), refused when it does not exist on a local run."""
    study = plan.study
    found: list[str] = []
    local = not address
    configs = {}
    for trial in plan.trials:
        configs.setdefault((trial.config.dataset, trial.config.resolved_data_root(), trial.config.setting),
                           trial.config)
    devices = sorted({trial.config.device for trial in plan.trials})
    resources = study.resources
    wants_gpu = resources.gpus_per_trial > 0 or any(d.startswith("cuda") for d in devices)
    gpus, why = _local_gpus() if local and wants_gpu else (0, "")
    if local:
        from orchestrator.run.trial_worker import fit_problems

        cpus = os.cpu_count() or 1
        found += fit_problems(dataclasses.asdict(resources), [{"CPU": float(cpus), "GPU": float(gpus)}],
                              "[resources]", has=f"this machine has {cpus} CPUs and {gpus} GPUs (a cluster: "
                              "--address)")
        for device in devices:
            if device.startswith("cuda") and not gpus:
                found.append(f'[train] device = "{device}" but {why}; use device = "auto" (the GPU when there is '
                             'one) or "cpu", or run on a cluster with GPUs with --address')
        if explicit_root and not os.path.isdir(explicit_root):
            found.append(f"--data-root {explicit_root} does not exist; give the folder that holds the data sets "
                         "(`arml data check --data-root DIR` shows what it finds)")
        else:
            found += _missing_data(configs)
    return found


def _missing_data(configs: dict[tuple[str, str, str], Any]) -> list[str]:
    """A line per data set that its data root does not hold (`trainables.data`'s own check of each)."""
    from trainables.data import DATASETS

    out = []
    for (name, root, _setting), _config in sorted(configs.items()):
        try:
            status = DATASETS.get(name).check(root)
        except Exception as error:  # noqa: BLE001 - a damaged file: say it here, not in every trial
            out.append(f"data set {name} under {root} cannot be read ({type(error).__name__}: {error})")
            continue
        if not status.found:
            out.append(status.advice or f"data set {name} is not under {root}")
    return out


def check(plan: Any, address: str | None = None, explicit_root: str | None = None) -> None:
    """PreflightError listing every problem, if there is one."""
    found = problems(plan, address, explicit_root)
    if found:
        raise PreflightError(str(plan.study.path), found)
