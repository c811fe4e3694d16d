"""What a resumed study continues from, read from its records alone (never from Tune's pickled state): which
trials still have to run, the checkpoint each one continues from, the weights a search already drew, what the
searchers and schedulers had seen. Every launch of a study's trials is a new Tune experiment built from these,
so a trial whose rows are recorded as finished never trains again, whatever Tune's last snapshot said.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from orchestrator.run.trial_worker import whole
from orchestrator.store.schema import BEST_VAL_ACC, CHECKPOINT, DONE, STEP, WEIGHT_PREFIX, Trial


def to_run(trial_ids: list[str], states: dict[str, dict[str, Any]]) -> list[str]:
    """The trials among `trial_ids` whose results do not count yet (pending, interrupted, failed), in order."""
    return [tid for tid in trial_ids if states.get(tid, {}).get("status") not in DONE]


def checkpoints(rows: list[dict[str, Any]], trial_ids: list[str], tune_home: str, run_dir: str,
                legacy: bool = False) -> dict[str, str]:
    """Per trial, the latest checkpoint an earlier launch recorded (`tune_home`/its recorded relative path) that is
    whole: a checkpoint cut by a full disk or a crash (a missing or empty state.pt, a cost.json that does not
    parse) is passed over for the one recorded before it. Only what the records name is used: a checkpoint Ray
    wrote whose evaluation never reached the records would resume a trial past rows it does not have. For a
    `legacy` run folder (begun before records named checkpoints), a trial the records name none for continues
    from the newest whole `checkpoint_*` folder of the trial in the run folder (local storage only)."""
    wanted = set(trial_ids)
    recorded: dict[str, list[tuple[float, str]]] = {}
    for row in rows:
        tid, where = row.get("trial_id"), row.get(CHECKPOINT)
        if tid in wanted and where and isinstance(row.get(STEP), (int, float)):
            recorded.setdefault(tid, []).append((row[STEP], f"{tune_home.rstrip('/')}/{where}"))
    out = {}
    for tid, found in recorded.items():
        for _, path in sorted(found, key=lambda item: item[0], reverse=True):
            if "://" in path or whole(path):
                out[tid] = path
                break
    if legacy and not any(row.get(CHECKPOINT) for row in rows):
        for tid in wanted - set(out):
            if found_legacy := _legacy_checkpoint(run_dir, tid):
                out[tid] = found_legacy
    return out


def _legacy_checkpoint(run_dir: str, trial_id: str) -> str | None:
    """The newest whole checkpoint of a trial in Tune's trial folders named `..._trial_id=<id>_...`."""
    found = []
    for pattern in (f"*trial_id={trial_id}*/checkpoint_*", f"*/*trial_id={trial_id}*/checkpoint_*"):
        for path in glob.glob(os.path.join(glob.escape(run_dir), pattern)):
            number = re.search(r"checkpoint_(\d+)$", path)
            if number and whole(path):
                found.append((os.path.getmtime(path), int(number.group(1)), path))
    return max(found)[2] if found else None


def search_state(plan_trials: list[Trial], states: dict[str, dict[str, Any]], last: dict[str, dict[str, Any]]
                 ) -> tuple[dict[str, list[tuple[list[float], float]]], dict[str, list[float]]]:
    """(history, preset) for the searchers: per group, the weights and best validation accuracy of its finished
    search trials; per started but unfinished search trial, the weights it was given (it runs again with them)."""
    history: dict[str, list[tuple[list[float], float]]] = {}
    preset: dict[str, list[float]] = {}
    for meta in plan_trials:
        weights = states.get(meta.trial_id, {}).get("weights")
        if not meta.search or not weights:
            continue
        if states[meta.trial_id].get("status") in DONE:
            value = last.get(meta.trial_id, {}).get(BEST_VAL_ACC)
            if isinstance(value, (int, float)) and value == value:
                history.setdefault(meta.group, []).append((list(weights), float(value)))
        else:
            preset[meta.trial_id] = list(weights)
    return history, preset


def member_weights(plan_trials: Any, last: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Per member of a population that has records, the weights its last record shows (exploits included): a
    resumed member continues with them from its last checkpoint."""
    out = {}
    for meta in plan_trials:
        row = last.get(meta.trial_id)
        if not meta.population or row is None:
            continue
        weights = [float(value) for key, value in row.items() if key.startswith(WEIGHT_PREFIX)]   # in task order
        if weights:
            out[meta.trial_id] = weights
    return out
