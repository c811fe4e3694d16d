"""`arml status RUN_DIR`: what a study has done, is doing and has left, from its run folder alone."""

from __future__ import annotations

import argparse
import os

from orchestrator.errors import UsageError
from orchestrator.records import read_plan, trials_table


def status_text(run_dir: str) -> str:
    """Counts per state and method, the best result so far per method, and every failed trial's error."""
    try:
        plan = read_plan(run_dir)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    table = trials_table(run_dir)
    lines = [f"study {plan['study']} ({plan['setting']}, {plan['dataset']}): {len(table)} trials in "
             f"{os.path.abspath(run_dir)}"]
    counts = table["status"].value_counts()
    lines.append("  " + ", ".join(f"{counts.get(s, 0)} {s}" for s in
                                  ("finished", "stopped", "running", "retrying", "failed", "pending")))
    lines.append(f"  {'method':16s} {'done':>6s} {'total':>6s} {'best test acc (at best val)':>28s}")
    for method, group in table.groupby("method", sort=False):
        done = int(group["status"].isin(["finished", "stopped"]).sum())
        best = group.get("test_acc_at_best_val")
        value = f"{best.max():.4f}" if best is not None and best.notna().any() else "-"
        lines.append(f"  {method:16s} {done:6d} {len(group):6d} {value:>28s}")
    running = table[table["status"].isin(["running", "retrying"])]
    for _, row in running.iterrows():
        step = row.get("final_step")
        lines.append(f"  running: {row['trial_id']} {row['method']} seed {row['seed']} at step "
                     f"{'-' if step != step or step is None else int(step)}")
    for _, row in table[table["status"] == "failed"].iterrows():
        lines.append(f"  FAILED: {row['trial_id']} {row['method']} seed {row['seed']}: {row['error']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    print(status_text(args.run_dir))
    return 0
