"""Population-based training of the auxiliary weights, on Ray Tune's `PopulationBasedTraining`, one population per
group (a method's members at one label budget, seed and cell).

The members run in a launch of their own (Tune's PBT refuses a search algorithm beside it), their weights in the
trial's config as `w0`..`w{K-1}` so that PBT can mutate them: first drawn in [0, w_max] from the member's id; every
`interval` steps a member in the bottom quantile of its population by validation accuracy continues from a top
member's checkpoint of its last perturbation (members checkpoint exactly then, and keep them all) with that member's
weights, each resampled with probability `resample_probability`, else
multiplied by 0.8 or 1.2, as Tune does. `Populations` gives each group its own PBT (so members are ranked against
their own population only) and keeps what PBT cannot know: a member's own id and its cost so far, which PBT's copy
of the better member's config would otherwise replace (`CLONED_FROM`, `COST_FROM` tell the trial worker). A
resumed study continues each unfinished member from its last recorded checkpoint with the weights its records
last show; PBT's own state (when each member last perturbed) starts afresh.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from orchestrator.store.schema import COST_COLUMNS, STEP, VAL_ACC
from orchestrator.study.plan import perturbation_interval

WEIGHT_KEY = "w{}"                 # the config key of the i-th auxiliary weight of a member
CLONED_FROM = "pbt_cloned_from"    # config: the member whose checkpoint this one continues from since its last exploit
COST_FROM = "pbt_cost_from"        # config: this member's own cost when it exploited (the checkpoint holds the other's)


def weight_keys(k: int) -> list[str]:
    return [WEIGHT_KEY.format(i) for i in range(k)]


def initial_weights(trial_id: str, k: int, w_max: float) -> list[float]:
    """A member's first weights: uniform in [0, w_max], drawn from its id (the same on every run of the study)."""
    rng = random.Random(int(hashlib.sha256(trial_id.encode()).hexdigest()[:16], 16))
    return [rng.uniform(0.0, w_max) for _ in range(k)]


def weights_in(config: dict[str, Any], k: int) -> list[float] | None:
    """A member's weights from its config (None when the config holds none)."""
    keys = weight_keys(k)
    return [float(config[key]) for key in keys] if keys and all(key in config for key in keys) else None


class Populations:
    """One Ray Tune `PopulationBasedTraining` per population (group), fed only its own members' events by the
    study's scheduler. `meta`: planned trial id -> {"group", "population" (dict or None), "k", "steps",
    "eval_every"}."""

    def __init__(self, meta: dict[str, dict[str, Any]]) -> None:
        self.meta = meta
        self.groups: dict[str, Any] = {}
        self.planned: dict[Any, str] = {}          # Tune's trial -> the member's planned id
        self.cost: dict[str, dict[str, float]] = {}   # member -> its cost at its last result
        self.step: dict[str, Any] = {}                 # member -> the step of its last result
        self.exploits: list[dict[str, Any]] = []   # (member, step, cloned from, new weights), in order
        self.members: dict[str, set] = {}          # group -> its members' Tune trials

    def pbt(self, trial: Any) -> Any:
        """The trial's population's PBT, or None for a trial that is not a member."""
        planned = self.planned.get(trial) or trial.config.get("trial_id")
        meta = self.meta.get(planned or "")
        if not meta or not meta.get("population"):
            return None
        group = meta["group"]
        if group not in self.groups:
            from ray import tune
            from ray.tune.schedulers import PopulationBasedTraining

            population = meta["population"]
            self.groups[group] = PopulationBasedTraining(
                time_attr=STEP, metric=VAL_ACC, mode="max",
                perturbation_interval=perturbation_interval(population, meta["steps"], meta["eval_every"]),
                hyperparam_mutations={key: tune.uniform(0.0, population["w_max"]) for key in weight_keys(meta["k"])},
                quantile_fraction=population["quantile"], resample_probability=population["resample_probability"],
                synch=True, log_config=False)
            self.members[group] = set()
        return self.groups[group]

    def view(self, controller: Any, trial: Any) -> Any:
        """Tune's controller as the trial's population's PBT must see it: its own members only (PBT looks over
        every trial of the experiment, and a launch holds several populations: seeds, budgets, cells)."""
        return _Population(controller, self.members[self.meta[self.planned[trial]]["group"]])

    def choose_trial_to_run(self, controller: Any) -> Any:
        """The paused member to resume next, as its population's PBT chooses (members that wait at a perturbation
        are not run on: in synchronous PBT every member of a population reaches it first), the least trained first.
        A PENDING member is the controller's own queue to start (never started, or chosen already and waiting for
        its worker): chosen again, it held back every other paused member until its worker started, and with
        perturbations every 20-25 steps a launch ran one member at a time whatever the CPUs."""
        chosen = [pbt.choose_trial_to_run(_Population(controller, self.members[group], paused_only=True))
                  for group, pbt in self.groups.items()]
        chosen = [t for t in chosen if t is not None]
        return min(chosen, key=lambda t: t.last_result.get(STEP, 0) if t.last_result else 0) if chosen else None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        pbt = self.pbt(trial)
        if pbt is not None:
            self.planned[trial] = trial.config["trial_id"]
            self.members[self.meta[self.planned[trial]]["group"]].add(trial)
            pbt.on_trial_add(self.view(tune_controller, trial), trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str | None:
        """PBT's decision for a member (None for another trial): continue, or pause at a perturbation so that waiting
        members catch up (more members than free CPUs: a member finished first could not be compared any more). A
        member PBT copied a better one into gets its own id back and its cost so far."""
        pbt = self.pbt(trial)
        if pbt is None:
            return None
        planned = self.planned[trial]
        self.cost[planned] = {k: float(result[k]) for k in COST_COLUMNS if isinstance(result.get(k), (int, float))}
        self.step[planned] = result.get(STEP)
        view = self.view(tune_controller, trial)
        decision = pbt.on_trial_result(view, trial, result)
        for member in view.get_trials():   # synchronous PBT exploits every bottom member when the last one reports
            own, cloned = self.planned[member], member.config.get("trial_id")
            if cloned != own:   # exploited: PBT set the config of the member it copied, mutated
                member.set_config({**member.config, "trial_id": own, CLONED_FROM: cloned,
                                   COST_FROM: self.cost.get(own, {})})
                self.exploits.append({"trial_id": own, STEP: self.step.get(own), "from": cloned,
                                      "weights": weights_in(member.config, self.meta[own]["k"])})
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        pbt = self.pbt(trial)
        if pbt is not None:
            pbt.on_trial_complete(self.view(tune_controller, trial), trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        pbt = self.pbt(trial)
        if pbt is not None:
            pbt.on_trial_error(self.view(tune_controller, trial), trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        pbt = self.pbt(trial)
        if pbt is not None:
            pbt.on_trial_remove(self.view(tune_controller, trial), trial)


class _Population:
    """A Tune controller seen by one population's PBT: its trial lists hold that population's members only;
    everything else (saving, pausing, resources) is the controller's."""

    def __init__(self, controller: Any, members: set, paused_only: bool = False) -> None:
        self._controller, self._members, self._paused_only = controller, members, paused_only

    def get_trials(self) -> list:
        return [t for t in self._controller.get_trials()
                if t in self._members and (not self._paused_only or t.status == "PAUSED")]

    def get_live_trials(self) -> list:
        return [t for t in self._controller.get_live_trials() if t in self._members]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


def param_space(trial_ids: list[str], meta: dict[str, dict[str, Any]], current: dict[str, list[float]]
                ) -> dict[str, Any]:
    """The Tuner's parameters for a launch of population members: every member by id, each with its weights as
    `w0`..: the weights its records last show (`current`, a resumed member), else its first draw. A population
    with fewer auxiliary tasks than another in the launch holds 0 in the keys it does not use."""
    from ray import tune

    k = max(meta[tid]["k"] for tid in trial_ids)
    start = {tid: (current.get(tid) or initial_weights(tid, meta[tid]["k"], meta[tid]["population"]["w_max"]))
             for tid in trial_ids}

    def draw(i: int) -> Any:
        return tune.sample_from(lambda spec: float(start[spec.config.trial_id][i])
                                if i < len(start[spec.config.trial_id]) else 0.0)

    return {"trial_id": tune.grid_search(list(trial_ids)), **{key: draw(i) for i, key in enumerate(weight_keys(k))}}
