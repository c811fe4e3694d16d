"""What a user reads while a study runs: counts from Tune's trial list, trials per minute and time left,
the best validation accuracy per method (never a test number), in place on a terminal and as timestamped
lines in a log; `arml status` from the run folder alone; Ray's own messages in RUN_DIR/ray.log."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.cli import main
from orchestrator.run.progress import COUNT_EVERY_S, RAY_LOGGERS, Progress, quiet_ray
from orchestrator.store.records import RecordBook
from orchestrator.store.schema import Trial


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trials(*states: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(status=s) for s in states]


def test_counts_come_from_tunes_trial_list_and_time_left_from_the_rate() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(10, stream=out, tty=False, clock=clock)
    progress.update(trials("RUNNING", "RUNNING"), force=True)
    assert "0/10 done, 2 running, 8 pending, 0 failed" in out.getvalue()
    clock.now += 60
    live = trials("TERMINATED", "TERMINATED", "RUNNING", "RUNNING", "ERROR")
    progress.update(live, force=True, ending=(live[2], "finished"))   # Tune calls back before TERMINATED
    assert len(out.getvalue().splitlines()) == 1      # its slot is free for a moment: no "1 running" line
    clock.now += COUNT_EVERY_S                        # Tune's list is counted at most this often between events
    progress.update(trials("TERMINATED", "TERMINATED", "TERMINATED", "RUNNING", "ERROR", "RUNNING"))
    line = out.getvalue().splitlines()[-1]
    assert "3/10 done, 2 running, 4 pending, 1 failed" in line       # the next trial runs in its place
    assert "4.0 trials/min, ~1m30s left" in line     # 4 ended in 60 s, 6 to go
    assert line.startswith("[") and line[9] == "]"   # a timestamp in a log


def test_a_completion_whose_slot_stays_empty_is_shown_two_seconds_later() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(4, stream=out, tty=False, every_s=30, clock=clock)
    progress.update(trials("RUNNING", "RUNNING"), force=True)
    clock.now += 40
    live = trials("RUNNING", "RUNNING")
    progress.update(live, force=True, ending=(live[0], "finished"))
    clock.now += COUNT_EVERY_S
    progress.update(trials("TERMINATED", "RUNNING"))     # every_s has passed, but the slot may fill at once
    assert len(out.getvalue().splitlines()) == 1
    clock.now += 2
    progress.update(trials("TERMINATED", "RUNNING"))     # nothing took it: the line says so
    assert out.getvalue().splitlines()[-1].split("] ")[1].startswith("1/4 done, 1 running, 2 pending")
    clock.now += 5
    last = trials("TERMINATED", "TERMINATED", "RUNNING", "RUNNING")
    progress.update(last, force=True, ending=(last[2], "finished"))   # one trial left, and it runs: at once
    assert out.getvalue().splitlines()[-1].split("] ")[1].startswith("3/4 done, 1 running, 0 pending")


def test_a_resumed_run_measures_its_rate_from_its_own_completions() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(10, stream=out, tty=False, clock=clock)
    progress.count(trials(*["TERMINATED"] * 8, "RUNNING", "RUNNING"))
    clock.now += 30
    progress.count(trials(*["TERMINATED"] * 9, "RUNNING"))
    assert "2.0 trials/min, ~30s left" in progress.line()


def test_best_per_method_is_validation_only() -> None:
    progress = Progress(4, stream=io.StringIO(), tty=False)
    progress.note_val("grid", 0.71)
    progress.note_val("grid", 0.93)
    progress.note_val("arml", None)
    progress.note_val("arml", 0.90)
    assert progress.line().endswith("best val acc: arml 0.900  grid 0.930")
    assert "test" not in progress.line()


def test_log_lines_are_throttled_and_the_last_one_always_printed() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(2, stream=out, tty=False, every_s=30, clock=clock)
    progress.update(trials("RUNNING", "RUNNING"), force=True)
    clock.now += 5
    progress.update(trials("RUNNING", "PENDING"))           # a step, not 30 s later: nothing
    assert len(out.getvalue().splitlines()) == 1
    progress.close(trials("TERMINATED", "TERMINATED"))
    assert out.getvalue().splitlines()[-1].endswith("2/2 done, 0 running, 0 pending, 0 failed")


def test_on_a_terminal_the_line_updates_in_place() -> None:
    out = io.StringIO()
    progress = Progress(3, stream=out, tty=True)
    progress.update(trials("RUNNING"), force=True)
    progress.say("  trial x FAILED: boom")
    progress.close(trials("TERMINATED", "ERROR", "TERMINATED"))
    text = out.getvalue()
    assert text.startswith("\r\033[K0/3 done, 1 running") and "\n  trial x FAILED: boom\n" in text
    assert text.endswith("\r\033[K2/3 done, 0 running, 0 pending, 1 failed\n")


def _quickstart_midway(clock: Clock, out: io.StringIO, **options) -> Progress:
    """12 of 30 trials done after 90 s, three methods with a best validation accuracy."""
    progress = Progress(30, stream=out, clock=clock, **options)
    progress.count(trials("RUNNING"))
    clock.now += 90
    progress.count(trials(*["TERMINATED"] * 12, "RUNNING"))
    for method, value in (("uniform", 0.889), ("arml", 0.9), ("grid", 0.915)):
        progress.note_val(method, value)
    return progress


def test_80_columns_keep_the_counts_the_time_left_and_every_methods_accuracy() -> None:
    clock, out = Clock(), io.StringIO()
    progress = _quickstart_midway(clock, out, tty=True, width=79)
    progress.update(force=True)
    line = out.getvalue().split("\r\033[K")[-1]
    assert len(line) <= 79 and not line.endswith("…")
    assert line.startswith("12/30 done 1 run 17 pend 0 fail")
    assert "~2m15s" in line and "arml .900 grid .915 uniform .889" in line
    progress.close()
    assert out.getvalue().endswith("\n") and len(out.getvalue().split("\r\033[K")[-1]) <= 80


def test_narrower_lines_drop_the_rate_and_time_before_the_accuracies() -> None:
    progress = _quickstart_midway(Clock(), io.StringIO(), tty=True, width=70)
    line = progress.line(70)
    assert line == "12/30 done 1 run 17 pend 0 fail | val arml .900 grid .915 uniform .889"
    assert progress.line(40).endswith("…") and len(progress.line(40)) <= 40   # the last resort: cut
    # wide enough: every word, the rate and the time left
    assert progress.line(200) == ("12/30 done, 1 running, 17 pending, 0 failed | 8.0 trials/min, ~2m15s left | "
                                  "best val acc: arml 0.900  grid 0.915  uniform 0.889")


def test_a_log_gets_a_line_every_every_s_even_when_nothing_changed() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(2, stream=out, tty=False, every_s=30, clock=clock)
    progress.update(trials("RUNNING", "RUNNING"), force=True)
    clock.now += 3601
    progress.update(trials("RUNNING", "RUNNING"))
    clock.now += 30                     # the same words ("1h00m elapsed"): a log still shows the study is alive
    progress.update(trials("RUNNING", "RUNNING"))
    clock.now += 10
    progress.update(trials("RUNNING", "RUNNING"))   # not yet every_s later: nothing
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1][11:] == lines[2][11:] == "0/2 done, 2 running, 0 pending, 0 failed | 1h00m elapsed"


def test_before_any_trial_starts_the_line_says_it_waits_for_ray() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(4, stream=out, tty=False, every_s=30, clock=clock)
    progress.update(trials("PENDING", "PENDING"), force=True)
    clock.now += 45
    progress.update(trials("PENDING", "PENDING"))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("0/4 done, 0 running, 4 pending, 0 failed | waiting for Ray to schedule trials (0s)")
    assert lines[1].endswith("| waiting for Ray to schedule trials (45s)")
    narrow = Progress(4, stream=io.StringIO(), tty=True, clock=clock)
    assert narrow.line(51) == "0/4 done 0 run 4 pend 0 fail | waiting for Ray (0s)"
    assert narrow.line(40) == "0/4 done 0 run 4 pend 0 fail | waiting…"
    clock.now += 5
    progress.update(trials("RUNNING", "PENDING"), force=True)
    assert out.getvalue().splitlines()[-1].endswith("0/4 done, 1 running, 3 pending, 0 failed | 50s elapsed")


def test_quiet_ray_sends_rays_loggers_to_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"):
        monkeypatch.delenv(key, raising=False)
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    try:
        path = quiet_ray(str(tmp_path / "a"))
        logging.getLogger("ray.tune.x").warning("To visualize your results with TensorBoard")
        quiet_ray(str(tmp_path / "b"))    # a second study in the same process logs to its own folder
        logging.getLogger("ray").warning("Token authentication is enabled")
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved):
            logger.handlers[:], logger.propagate = handlers, propagate
    assert "TensorBoard" in Path(path).read_text() and "Token" not in Path(path).read_text()
    assert "Token authentication" in (tmp_path / "b" / "ray.log").read_text()
    assert capsys.readouterr().err == ""
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0" and os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"


def test_status_is_validation_only_and_names_the_step_of_running_trials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = [{"trial_id": tid, "method": m, "weighting": m, "budget_key": "label_budget", "budget": 20, "seed": 0,
             "grid_point": None, "weighting_options": {}, "sample": None, "scheduler": None, "search": None,
             "config": {"setting": "mlc", "main_attribute": "has_loop", "steps": 8}}
            for tid, m in (("a", "arml"), ("b", "arml"), ("c", "uniform"), ("d", "uniform"))]
    (tmp_path / "plan.json").write_text(json.dumps({"study": "s", "setting": "mlc", "dataset": "digits",
                                                    "trials": meta}))
    book = RecordBook(str(tmp_path), [Trial.from_dict(m) for m in meta])
    # a: the better validation, the worse test; a max over test would pick b's 0.99
    book.row("a", {"step": 8, "best_val_acc": 0.9, "test_acc_at_best_val": 0.5})
    book.set_state("a", "finished")
    book.row("b", {"step": 8, "best_val_acc": 0.8, "test_acc_at_best_val": 0.99})
    book.set_state("b", "finished")
    book.row("c", {"step": 4, "best_val_acc": 0.7, "test_acc_at_best_val": 0.7})
    book.set_state("c", "running")
    book.set_state("d", "running")   # started, nothing reported yet
    book.close()
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0.9000" in out and "0.99" not in out and "best val acc" in out
    assert "c uniform seed 0 at step 4" in out and "d uniform seed 0 starting" in out and "step -" not in out
    assert main(["status", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["finished"] == 2 and data["counts"]["running"] == 2
    assert {m["method"]: m["best_val_acc"] for m in data["methods"]} == {"arml": 0.9, "uniform": 0.7}
    assert {r["trial_id"]: r["step"] for r in data["running"]} == {"c": 4, "d": None}
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "not a study's run folder" in capsys.readouterr().err
