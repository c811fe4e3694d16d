"""How fast the commands that only read answer: `arml --help`, `arml list`, `arml status`, `arml run --dry-run` of
every shipped study, and `arml report` of a finished quickstart run. Each command runs as a fresh process (what a
user waits for, imports included), `--repeat` times; the median is printed with the goal beside it.

    python benchmarks/cli_speed.py                     # makes a small quickstart run first if none is given
    python benchmarks/cli_speed.py --run-dir runs/quickstart --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARML = [sys.executable, "-m", "orchestrator.cli"]
GOALS = {"--help": 1.0, "list": 1.0, "status": 1.0, "dry-run": 3.0, "report": 5.0}


def timed(args: list[str], repeat: int, ok: tuple[int, ...] = (0, 1)) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([*ARML, *args], cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok:
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", help="a finished quickstart run folder (default: make a small one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median shown)")
    args = parser.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        storage = tempfile.mkdtemp(prefix="cli-speed-")
        subprocess.run([*ARML, "run", "quickstart", "--set", "train.steps=20", "--set", "budget.labels=[20]",
                        "--storage", storage], cwd=ROOT, capture_output=True, check=True)
        run_dir = os.path.join(storage, "quickstart")
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; median of {args.repeat} runs, seconds")
    rows = [("--help", ["--help"]), ("list", ["list"]), ("status", ["status", run_dir]),
            ("report", ["report", run_dir])]
    studies = sorted(p.stem for p in (ROOT / "studies").glob("*.toml"))
    for kind, command in rows:
        seconds = timed(command, args.repeat)
        print(f"  {kind:8s} {seconds:6.2f}   (goal < {GOALS[kind]:g})")
    # exit 2 is expected for the paper's studies on a machine without their data sets or GPUs (listed problems)
    dry = {name: timed(["run", name, "--dry-run"], 1, ok=(0, 2)) for name in studies}
    slowest = max(dry, key=dry.get)
    print(f"  dry-run  {statistics.median(dry.values()):6.2f}   median over {len(dry)} shipped studies; slowest "
          f"{slowest} {dry[slowest]:.2f} (goal < {GOALS['dry-run']:g} each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
