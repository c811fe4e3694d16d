"""What a run reports comes from its records, with the same trust check whether or not --resume is given: a
plain run into a folder others can write is refused before Ray starts, a trials.json edited to 'finished' makes
no trial finished, a folder whose plan.json was deleted still holds a run (and --resume continues it), and a
damaged plan.json or trials.json is one line, never a traceback."""

from __future__ import annotations

import json

from studyfiles import tiny_study

from orchestrator.cli import main


def _recorded(run_dir, trial_ids):
    """A run folder as a stopped run leaves it: three trials with records, the rest planned."""
    run_dir.mkdir(parents=True)
    rows = [{"trial_id": tid, "method": "uniform", "seed": 0, "step": 2, "val_acc": 0.5} for tid in trial_ids]
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "trials.json").write_text(json.dumps({tid: {"status": "finished"} for tid in trial_ids}))


def _ids(study, storage, capsys):
    assert main(["run", study, "--storage", str(storage), "--dry-run", "--json"]) == 0
    return capsys.readouterr().out


def test_a_plain_run_into_a_folder_others_can_write_is_refused(tmp_path, capsys):
    study = tiny_study(tmp_path, "trust")
    run_dir = tmp_path / "runs" / "trust"
    _recorded(run_dir, ["a", "b", "c"])   # plan.json deleted, trials.json claims what it likes
    run_dir.chmod(0o777)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to run in" in err and "Traceback" not in err
    run_dir.chmod(0o755)
    assert main(["run", study, "--storage", str(tmp_path / "runs")]) == 2   # records there: it holds a run
    assert "already holds a run" in capsys.readouterr().err


def test_resume_of_a_folder_whose_plan_was_deleted_is_not_nothing_to_resume(tmp_path, capsys):
    from orchestrator.run.runner import _check_resume
    from orchestrator.store.folder import RunFolder
    from orchestrator.study.plan import build_plan
    from orchestrator.study.spec import load_study

    study = tiny_study(tmp_path, "trust")
    run_dir = tmp_path / "runs" / "trust"
    _recorded(run_dir, ["a"])
    plan = build_plan(load_study(study))
    _check_resume(plan, RunFolder(run_dir), resume=True)   # no UsageError: the records hold a run to resume


def test_a_damaged_plan_or_trials_file_is_one_line(tmp_path, capsys):
    study = tiny_study(tmp_path, "trust")
    run_dir = tmp_path / "runs" / "trust"
    _recorded(run_dir, ["a"])
    (run_dir / "plan.json").write_text('{"study": "trust", "trials": [{"trial')
    for command in (["status", str(run_dir)], ["report", str(run_dir)]):
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "plan.json is damaged" in err and "--resume" in err, err
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--dry-run", "--resume"]) == 0
    assert "plan.json is damaged" in capsys.readouterr().out
    (run_dir / "plan.json").unlink()
    (run_dir / "trials.json").write_text("")
    assert main(["run", study, "--storage", str(tmp_path / "runs"), "--dry-run", "--resume"]) == 0
    assert "trials.json is damaged" in capsys.readouterr().out
