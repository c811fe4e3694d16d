"""A trial's cost meter starts after the worker is warm: nothing torch imports lazily is left for the first
trial to pay (it once paid torch._dynamo, imported by the first optimizer: 1.7 CPU-seconds, 2x a short trial)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
from orchestrator.run.trial_worker import _warm_up
_warm_up()
from trainables.config import resolve_config
from trainables.loop import fit
before = set(sys.modules)
for preset, weighting in (("digits_mlc", "uniform"), ("digits_mlc", "arml"), ("digits_ssl", "uniform")):
    fit(resolve_config(preset, weighting=weighting, steps=4, eval_every=2, lr_milestones=(),
                       model_options={"width": 8}))
print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("torch", "torchvision", "numpy")))
"""


def test_a_warm_worker_imports_nothing_more_from_torch_in_its_first_trials():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
