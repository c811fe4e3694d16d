"""Everything checkable is checked before Ray starts, all at once: missing data, a data root that does not exist,
resources larger than this machine, device = "cuda" without CUDA; on a cluster (--address) only what does not
depend on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main

TOO_BIG = ["--set", "resources.cpus_per_trial=64", "--set", "resources.gpus_per_trial=0.5",
           "--set", 'train.device="cuda"', "--data-root", "/nonexistent/arml-data"]


@pytest.fixture
def no_ray(monkeypatch):
    ray = pytest.importorskip("ray")

    def never(*args, **kwargs):
        raise AssertionError("Ray was started although the plan cannot run")

    monkeypatch.setattr(ray, "init", never)


def test_every_problem_at_once_in_the_dry_run_and_before_ray(tmp_path, capsys, no_ray):
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path), *TOO_BIG]) == 2
    out, err = capsys.readouterr()
    assert "total: 40 trials" in out                      # the plan is still shown
    lines = err.splitlines()
    assert lines[0].startswith("arml: error: ") and "4 problems before anything starts" in lines[0]
    assert any("cpus_per_trial = 64" in line and "this machine has" in line for line in lines)
    assert any("gpus_per_trial = 0.5" in line and "gpus_per_trial = 0" in line for line in lines)
    assert any('device = "cuda"' in line for line in lines)
    assert any("--data-root /nonexistent/arml-data does not exist" in line for line in lines)
    assert "Traceback" not in err
    assert main(["run", "quickstart", "--storage", str(tmp_path), *TOO_BIG]) == 2
    assert "4 problems before anything starts" in capsys.readouterr().err
    assert not (tmp_path / "quickstart" / "ray.log").exists()


def test_missing_data_is_named_with_where_to_get_it(tmp_path, capsys, no_ray):
    assert main(["run", "paper_table1_cifar10", "--dry-run", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cifar10: no data at" in err and "cifar-10-python.tar.gz" in err


def test_a_cluster_run_leaves_data_and_resources_to_the_cluster(tmp_path, capsys):
    assert main(["run", "quickstart", "--dry-run", "--address", "10.0.0.1:6379", "--storage", str(tmp_path),
                 *TOO_BIG]) == 0
    assert "problems" not in capsys.readouterr().err


def test_the_dry_run_of_a_folder_in_use_names_who_runs_it(tmp_path, capsys):
    import subprocess
    import sys
    import time

    folder = tmp_path / "quickstart"
    folder.mkdir()
    (folder / "plan.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; h = open(sys.argv[1], 'a+'); fcntl.flock(h, fcntl.LOCK_EX); "
        "h.write('arml run (pid 4242, host elsewhere)\\n'); h.flush(); print('held', flush=True); time.sleep(60)"),
        str(folder / ".arml.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "in use right now: arml run (pid 4242, host elsewhere) is running it" in out
        assert "--resume" not in out
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path)]) == 0
    assert "add --resume" in capsys.readouterr().out


def test_the_dry_run_says_how_long(tmp_path, capsys):
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "time on this machine: about" in out and "preset digits_mlc" in out
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path), "--set", "train.steps=10000000",
                 "--set", "train.lr_milestones=[]", "--allow-large"]) == 0
    assert "check the plan (trials, steps) before you start" in capsys.readouterr().out


def _quickstart_plan(model_options: dict | None = None):
    from orchestrator.study.plan import make_plan
    from orchestrator.study.spec import parse_study

    text = (Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml").read_text()
    overrides = {"train": {"model_options": model_options}} if model_options else None
    return make_plan(parse_study(text, overrides=overrides))


def test_a_measured_model_variant_is_estimated_from_its_own_costs(tmp_path, monkeypatch):
    from orchestrator.run import dryrun

    costs = json.loads(dryrun.STEP_COSTS.read_text())
    measured = {"step_s": costs["presets"]["digits_mlc"]["step_s"] / 4, "eval_s": 0.0, "eval_images": 809,
                "setup_s": 0.0}
    costs["variants"] = {"digits_mlc": {"width=16": measured}}
    path = tmp_path / "step_costs.json"
    path.write_text(json.dumps(costs))
    monkeypatch.setattr(dryrun, "STEP_COSTS", path)
    preset = dryrun.estimate(_quickstart_plan({"width": 32}))["trial_s"]   # the CNN's default: not a variant
    narrow = dryrun.estimate(_quickstart_plan({"width": 16}))["trial_s"]   # what the quickstart file asks for
    other = dryrun.estimate(_quickstart_plan({"width": 24}))["trial_s"]
    assert narrow < preset / 2            # the variant's measured steps (a quarter), no evaluation cost
    assert other == preset                # an unmeasured variant: the preset's own costs
    assert dryrun.model_key({"width": 16, "depth": 2}) == "depth=2,width=16" and dryrun.model_key(None) == ""


def test_a_resumed_dry_run_estimates_only_the_trials_left(tmp_path, capsys):
    from orchestrator.store.schema import write_plan

    plan = _quickstart_plan()
    run_dir = tmp_path / "quickstart"
    write_plan(str(run_dir), plan)
    done = [t.trial_id for t in plan.trials[:30]]
    (run_dir / "trials.json").write_text(json.dumps({tid: {"status": "finished"} for tid in done}))
    # a trial is finished only where its evaluations are recorded
    rows = [json.dumps({"trial_id": t.trial_id, "step": t.config.steps}) + "\n" for t in plan.trials]
    (run_dir / "records.jsonl").write_text("".join(rows[:30]))
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "for the 10 trials left (30 finished are kept)" in out
    (run_dir / "trials.json").write_text(json.dumps({t.trial_id: {"status": "finished"} for t in plan.trials}))
    (run_dir / "records.jsonl").write_text("".join(rows))
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path), "--resume"]) == 0
    assert "time: none; all 40 planned trials have finished" in capsys.readouterr().out
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path)]) == 0   # without --resume: all 40
    out = capsys.readouterr().out
    assert "time on this machine: about" in out and "trials left" not in out


def test_a_resumed_dry_run_is_calibrated_on_what_the_finished_trials_took(tmp_path, capsys):
    from orchestrator.run import dryrun
    from orchestrator.store.schema import write_plan

    plan = _quickstart_plan()
    plain = dryrun.estimate(plan, {t.trial_id for t in plan.trials[:30]})
    alone = {t.trial_id: dryrun.estimate(plan, {u.trial_id for u in plan.trials} - {t.trial_id})["trial_s"]
             for t in plan.trials}
    run_dir = tmp_path / "quickstart"
    write_plan(str(run_dir), plan)
    done = plan.trials[:30]
    (run_dir / "trials.json").write_text(json.dumps({t.trial_id: {"status": "finished"} for t in done}))
    # the finished trials took 3 times what the per-step costs said (the wall seconds their records show)
    rows = [json.dumps({"trial_id": t.trial_id, "step": t.config.steps, "wall_s": 3 * alone[t.trial_id]}) + "\n"
            for t in done]
    (run_dir / "records.jsonl").write_text("".join(rows))
    calibrated = dryrun._estimate(plan, dryrun.RunFolder(str(run_dir)), resume=True)
    assert calibrated["calibration"]["trials"] == 30
    assert calibrated["calibration"]["ratio"] == pytest.approx(3.0)
    assert calibrated["trial_s"] == pytest.approx(3 * plain["trial_s"])
    assert main(["run", "quickstart", "--dry-run", "--storage", str(tmp_path), "--resume"]) == 0
    assert "times 3.0: what the 30 finished trials of this folder took" in capsys.readouterr().out
    # fewer than a handful measured: the per-step costs alone
    assert dryrun.estimate(plan, {done[0].trial_id}, {done[0].trial_id: 100.0})["calibration"] is None
