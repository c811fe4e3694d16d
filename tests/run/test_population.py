"""Population-based training of the weights (orchestrator/run/population.py) on Ray Tune's own PBT: each population
is ranked against itself only, a member in the bottom quantile continues from a top member's checkpoint with its
weights mutated (resampled in [0, w_max], or x0.8 / x1.2) while keeping its own id and its own cost, and a member's
first weights are the same on every run. Tune's scheduler is driven here by hand (fake trials and controller, the
attributes Tune's PBT reads), so every exploit is deterministic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from orchestrator.run.population import CLONED_FROM, COST_FROM, Populations, initial_weights, param_space  # noqa: E402

POPULATION = {"size": 2, "interval": 10, "w_max": 2.0, "quantile": 0.5, "resample_probability": 0.0}


class Trial:
    """What Tune's PopulationBasedTraining reads and writes of a trial."""

    RUNNING, PAUSED, PENDING = "RUNNING", "PAUSED", "PENDING"

    def __init__(self, trial_id: str, weights: list[float]) -> None:
        self.trial_id = f"tune_{trial_id}"
        self.config = {"trial_id": trial_id, "w0": weights[0], "w1": weights[1]}
        self.status = self.RUNNING
        self.experiment_tag = trial_id
        self.checkpoint = None
        self.temporary_state = SimpleNamespace(saving_to=None)
        self.run_metadata = SimpleNamespace(checkpoint_manager=SimpleNamespace(
            checkpoint_config=SimpleNamespace(num_to_keep=None), _latest_checkpoint_result=None))

    def set_config(self, config: dict) -> None:
        self.config = config

    def set_experiment_tag(self, tag: str) -> None:
        self.experiment_tag = tag

    def is_finished(self) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


class Controller:
    search_alg = None

    def __init__(self, trials: list[Trial]) -> None:
        self.trials, self.saved, self.paused = trials, [], []

    def get_trials(self) -> list[Trial]:
        return self.trials

    def get_live_trials(self) -> list[Trial]:
        return self.trials

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        trial.status = Trial.PAUSED
        self.paused.append(trial.config["trial_id"])

    def _schedule_trial_save(self, trial: Trial, result: dict | None = None) -> str:
        self.saved.append(trial.config["trial_id"])
        return f"checkpoint of {trial.config['trial_id']} at {result['step']}"


def result(step: int, val: float, cpu: float) -> dict:
    return {"step": step, "val_acc": val, "cpu_s": cpu, "wall_s": cpu, "gpu_s": 0.0}


def test_a_member_in_the_bottom_copies_a_top_member_of_its_own_population_only():
    meta = {tid: {"group": group, "population": POPULATION, "k": 2, "steps": 40, "eval_every": 5}
            for tid, group in (("a1", "pbt|20|0"), ("a2", "pbt|20|0"), ("b1", "pbt|20|1"), ("b2", "pbt|20|1"))}
    trials = {tid: Trial(tid, [0.5, 1.5]) for tid in meta}
    controller = Controller(list(trials.values()))
    populations = Populations(meta)
    for trial in trials.values():
        populations.on_trial_add(controller, trial)
    a1, a2, b1, b2 = (trials[t] for t in ("a1", "a2", "b1", "b2"))
    # synchronous PBT: a population perturbs when all its members reached the interval, each population alone
    # (b's members do far worse than a's: never compared with them)
    assert populations.on_trial_result(controller, a1, result(10, 0.9, 1.0)) == "PAUSE"   # waits for a2
    populations.on_trial_result(controller, b1, result(10, 0.2, 1.0))
    assert populations.exploits == []
    populations.on_trial_result(controller, b2, result(10, 0.3, 1.0))
    assert [e["trial_id"] for e in populations.exploits] == ["b1"]   # b's bottom member, once b's members are in
    assert populations.exploits[0]["from"] == "b2"                   # from its own population's top member
    assert b1.config["trial_id"] == "b1" and b1.config[CLONED_FROM] == "b2"
    populations.on_trial_result(controller, a2, result(10, 0.5, 3.5))   # a2 is a's bottom member at 10
    exploit = populations.exploits[-1]
    assert exploit["trial_id"] == "a2" and exploit["from"] == "a1" and exploit["step"] == 10
    assert a2.config["trial_id"] == "a2" and a2.config[CLONED_FROM] == "a1"    # its own id, not the copied one
    assert a2.config[COST_FROM] == {"wall_s": 3.5, "cpu_s": 3.5, "gpu_s": 0.0}  # its own cost, not a1's
    assert "a2" in controller.paused   # restarted from a1's checkpoint
    assert a2.run_metadata.checkpoint_manager._latest_checkpoint_result.checkpoint == "checkpoint of a1 at 10"
    for key, before in (("w0", 0.5), ("w1", 1.5)):   # no resampling here: each weight x0.8 or x1.2
        assert a2.config[key] == pytest.approx(before * 0.8) or a2.config[key] == pytest.approx(before * 1.2)
    assert exploit["weights"] == [a2.config["w0"], a2.config["w1"]]


def test_first_weights_come_from_the_member_s_id_and_a_resumed_member_keeps_its_own():
    first = initial_weights("abc", 3, 2.0)
    assert first == initial_weights("abc", 3, 2.0) != initial_weights("abd", 3, 2.0)
    assert all(0.0 <= w <= 2.0 for w in first)
    meta = {"abc": {"k": 3, "population": POPULATION}, "xyz": {"k": 2, "population": POPULATION}}
    space = param_space(["abc", "xyz"], meta, {"xyz": [0.25, 1.75]})
    spec = SimpleNamespace(config=SimpleNamespace(trial_id="xyz"))
    assert [space[f"w{i}"].func(spec) for i in range(3)] == [0.25, 1.75, 0.0]   # its recorded weights; w2 unused
    spec.config.trial_id = "abc"
    assert [space[f"w{i}"].func(spec) for i in range(3)] == first


def _population_study(tmp_path, name: str, steps: int = 40) -> str:
    from studyfiles import tiny_study

    return tiny_study(tmp_path, name, seeds=(0,), steps=steps, eval_every=5, methods="""
        [methods.uniform]
        [methods.pbt]
        population = 3
        interval = 10
        quantile = 0.34
        """, extra="[budget]\nlabels = [20]\n")


@pytest.mark.slow
@pytest.mark.integration
def test_a_population_trains_reports_as_one_method_and_costs_its_members_sum(local_ray, tmp_path):
    import pandas as pd

    from orchestrator.analysis.run_data import load_run
    from orchestrator.analysis.tables import compute_cost, data_requirement
    from orchestrator.cli import main

    assert main(["run", _population_study(tmp_path, "pbt3"), "--storage", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "pbt3"
    trials = pd.read_csv(run_dir / "trials.csv")
    members = trials[trials["method"] == "pbt"]
    assert len(members) == 3 and set(trials["status"]) == {"finished"}
    records = pd.read_parquet(run_dir / "records.parquet")
    for trial_id, rows in records.groupby("trial_id"):   # every evaluation once, exploits and pauses included
        assert sorted(rows["step"]) == list(range(5, 45, 5)), trial_id
    assert (run_dir / "seeds-1-pbt").is_dir()   # the members ran in a Tune experiment of their own
    data = load_run(str(run_dir))
    points = data_requirement(data).set_index("method")
    assert points.loc["pbt", "seeds"] == 1                 # one population per seed: one value, its best member
    chosen = members.loc[members["best_val_acc"].idxmax()]
    assert points.loc["pbt", "test_acc_mean"] == pytest.approx(chosen["test_acc_at_best_val"])
    cost = compute_cost(data, data_requirement(data)).set_index("method")
    assert cost.loc["pbt", "kind"] == "pbt" and cost.loc["pbt", "trials"] == 3
    assert cost.loc["pbt", "cpu_s"] == pytest.approx(members["cpu_s"].sum())   # the population's, all members


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_driver_resumes_a_population_without_losing_or_repeating_a_record(tmp_path):
    """kill -9 of the driver's process group while the population trains, then --resume: every member finishes,
    continuing from the last checkpoint its records name with the weights its last record shows; the exported
    records hold each member's every evaluation once."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    study = _population_study(tmp_path, "pbtkill", steps=60)
    run_dir = tmp_path / "runs" / "pbtkill"
    args = [sys.executable, "-m", "orchestrator.cli", "run", study, "--storage", str(tmp_path / "runs")]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def member_rows() -> int:
        try:
            rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line]
        except (OSError, ValueError):
            return 0
        return sum(r.get("method") == "pbt" for r in rows)

    deadline = time.time() + 400
    while member_rows() < 4 and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert member_rows() >= 4, "the population never reported"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    time.sleep(2)
    second = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout + second.stderr
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"finished"}
    records = pd.read_parquet(run_dir / "records.parquet")
    for trial_id, rows in records.groupby("trial_id"):
        assert sorted(rows["step"]) == list(range(5, 65, 5)), trial_id
