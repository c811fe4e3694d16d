"""`arml run`: a plan on Ray Tune (a local Ray, or an existing cluster with --address), records and
MLflow from the driver, the report at the end, and a summary with where everything is."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import time
from typing import Any

from orchestrator import reaper
from orchestrator.errors import RunFault, UsageError
from orchestrator.plan import DEFAULT_STORAGE, Plan, RunOptions, map_configs
from orchestrator.progress import quiet_ray
from orchestrator.records import export_tables
from orchestrator.schema import ACTIVE, DONE, PLAN_FILE, TrialStatus, read_plan, write_plan
from orchestrator.tracking import redact, resolve_uri
from orchestrator.trainable import check_cluster_fits, trial_resources

STUDY_COPY = "study.toml"
WAVES_FILE = "waves.json"          # the Tune experiments of a study: its planned seeds, then added waves
LOCK_FILE = ".arml.lock"           # held while a run is going on (see _lock)
DEFAULT_MAX_SEEDS = 20


def storage_paths(plan: Plan, storage: str | None) -> tuple[str, str]:
    """(Ray's storage path or URI, the local folder that holds records and reports)."""
    base = storage or DEFAULT_STORAGE
    if base.startswith("file://"):          # a local folder written as a URI: records go there too
        base = base.removeprefix("file://")
    if "://" in base:
        return base.rstrip("/"), os.path.abspath(os.path.join(DEFAULT_STORAGE, plan.study.name))
    base = os.path.realpath(base)           # one spelling per folder: symlinks and relative paths resolved
    return base, os.path.join(base, plan.study.name)


def _absolute_data_root(plan: Plan) -> Plan:
    return map_configs(plan, lambda c: c.replace(data_root=os.path.abspath(c.resolved_data_root())))


def _probe_address(address: str, timeout: float = 5.0) -> None:
    """A cluster address that does not answer is a usage error now, not minutes of Ray's retries."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address in ("auto", "local") or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as error:
        raise UsageError(f"no Ray cluster answers at {address} ({error.strerror or error}); start one with "
                         "`ray start --head --port PORT` or check the address `ray status` prints") from None


def _use_cluster_token() -> None:
    """Ray 2.60 clusters require a token by default; a client only sends one in token mode. Turn it on when
    a token is at hand ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). Never turned off."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(path):
        os.environ["RAY_AUTH_MODE"] = "token"


CHECKPOINTS_KEPT = 4            # per trial
_WATCHER: dict[str, Any] = {}   # the reaper watching the local Ray this process started


def _start_ray(address: str | None) -> bool:
    """Joins `address`, or starts a local Ray with this machine's CPUs and no dashboard. True if started."""
    import ray

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")   # trials see the caller's working folder
    # checkpoints every evaluation of many short trials: the snapshot warning is expected, not actionable
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return False
    if address:
        _probe_address(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UsageError(f"cannot join the Ray cluster at {address} ({str(error).splitlines()[0]}); check the "
                             "address (`ray status` on the head node prints it) and that this machine has the "
                             "cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from None
        print(f"Ray: joined the cluster at {address} ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
        return False
    before = set(reaper.children(os.getpid()))
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    # if this process dies, its watcher ends this Ray at once (None without /proc)
    _WATCHER["process"] = reaper.start([p for p in reaper.children(os.getpid()) if p not in before])
    print(f"Ray: started a local Ray with {os.cpu_count() or 1} CPUs (pass --address to use a cluster)")
    return True


def _stop_ray() -> None:
    """Shuts down the local Ray this process started, then lets its watcher go."""
    import ray

    ray.shutdown()
    reaper.release(_WATCHER.pop("process", None))


def _trial_table(plan: Plan, storage: str) -> dict[str, dict[str, Any]]:
    return {t.trial_id: {"trial_id": t.trial_id, "config": t.config.to_dict(),
                         "resources": dataclasses.asdict(t.resources), "storage": storage} for t in plan.trials}


def _resources(plan: Plan) -> dict[str, float]:
    return trial_resources(dataclasses.asdict(plan.study.resources))


def _prepare_folder(run_dir: str) -> None:
    """The run folder exists and is writable, or a one-line usage error says why not."""
    parent = os.path.dirname(run_dir)
    for path in (parent, run_dir):
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"--storage: {path} is a file, not a folder; give a folder for the run")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--storage: cannot create {run_dir} ({error.strerror}); give a folder you can "
                         "write to") from None
    if not os.access(run_dir, os.W_OK):
        raise UsageError(f"--storage: {run_dir} is not writable (read-only or another user's); give a folder "
                         "you can write to")


def _lock(run_dir: str) -> Any:
    """Holds RUN_DIR/.arml.lock for the whole run: a second `arml run` on the same folder is refused instead of
    training every trial again. The lock dies with the process (kill -9 included), so --resume always works."""
    import fcntl

    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(f"{run_dir} is being run right now by {holder}; wait for it to end (or stop it), then "
                         "run again with --resume") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"arml run (pid {os.getpid()}, host {socket.gethostname()})\n")
    handle.flush()
    return handle


def _check_trusted(path: str) -> None:
    """Resuming unpickles Ray Tune's experiment state (tuner.pkl), which can run code: refuse a run folder that
    another user owns or may write to."""
    for root in (path, os.path.join(path, "tuner.pkl")):
        if not os.path.exists(root):
            continue
        info = os.stat(root)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise UsageError(f"refusing to resume from {root}: it is owned by another user or writable by others, "
                             "and resuming loads Ray Tune's pickled state from it; resume only run folders only "
                             f"you can write (chmod go-w {root}), or start a fresh run with another --storage")


def _forget_tune_state(experiment: str) -> None:
    """Removes Ray Tune's experiment state (tuner.pkl, experiment_state-*.json) so the next Tuner starts afresh;
    the folder itself is the run folder (records, plan, MLflow store) and stays."""
    if "://" in experiment or not os.path.isdir(experiment):
        return
    for name in os.listdir(experiment):
        if name == "tuner.pkl" or (name.startswith("experiment_state") and name.endswith(".json")) \
                or name.startswith("search_gen_state") or name.startswith("basic-variant-state"):
            os.remove(os.path.join(experiment, name))


def _started(run_dir: str) -> bool:
    """Whether any trial of this run folder ever started (a run killed in its first seconds has none)."""
    from orchestrator.records import load_states

    return any(state.get("status") != TrialStatus.PENDING for state in load_states(run_dir).values())


def _check_resume(plan: Plan, run_dir: str, experiment: str, resume: bool) -> None:
    from ray import tune

    exists = tune.Tuner.can_restore(experiment)
    if exists and not resume and not _started(run_dir):   # killed before any trial started: start afresh
        _forget_tune_state(experiment)
        exists = False
    if exists and not resume:
        raise UsageError(f"{run_dir} already holds a run of study {plan.study.name!r}: add --resume to finish "
                         "its unfinished trials, or remove the folder, or pass another --storage")
    if resume and not tune.Tuner.can_restore(experiment) and not os.path.exists(os.path.join(run_dir, PLAN_FILE)):
        raise UsageError(f"nothing to resume at {experiment}: run the study without --resume first")
    if resume and "://" not in experiment:
        _check_trusted(experiment)
    if resume and os.path.exists(os.path.join(run_dir, PLAN_FILE)):
        saved = {t.trial_id for t in read_plan(run_dir).trials}
        if saved != {t.trial_id for t in plan.trials}:
            raise UsageError(f"the study file changed since {run_dir} was started (different trials); "
                             "--resume needs the same study: run it into another --storage instead")


def run_study(plan: Plan, options: RunOptions) -> int:
    """Runs every trial of `plan`; returns 0 when all finished, 1 when some failed. With `until_decided`, adds
    seeds in waves (each wave a Tune experiment in the same run folder, records and MLflow shared) while a
    paired comparison is not decided and fewer than `max_seeds` seeds have run."""
    if options.address:
        _use_cluster_token()  # before Ray is imported: it reads its authentication mode once
    storage, run_dir = storage_paths(plan, options.storage)
    plan = _absolute_data_root(plan)
    _prepare_folder(run_dir)
    lock = _lock(run_dir)
    try:
        return _run_locked(plan, options, storage, run_dir)
    except OSError as error:   # a full disk, storage gone read-only: say it once, keep what was recorded
        raise RunFault(f"the run stopped on a storage error in {run_dir}: {error.strerror or error} "
                       f"({getattr(error, 'filename', '') or 'writing records'}); records written so far are "
                       "intact: free space or fix the folder, then run again with --resume") from None
    finally:
        lock.close()


def _run_locked(plan: Plan, options: RunOptions, storage: str, run_dir: str) -> int:
    if options.resume:
        plan = _with_saved_seeds(plan, run_dir)
    _check_resume(plan, run_dir, f"{storage}/{plan.study.name}", options.resume)
    uri = resolve_uri(options.mlflow_uri, run_dir)
    quiet_ray(run_dir)   # Ray's and Tune's own messages go to RUN_DIR/ray.log, not the terminal
    started_ray = _start_ray(options.address)
    start = time.time()
    try:
        check_cluster_fits(dataclasses.asdict(plan.study.resources), study=str(plan.study.path))
        write_plan(run_dir, plan)
        _keep_study_file(plan, run_dir)
        print(f"study {plan.study.name}: {len(plan)} trials -> {run_dir}  (MLflow: {redact(uri)})", flush=True)
        from orchestrator.callback import CURRENT, MLFLOW

        MLFLOW["uri"] = uri
        CURRENT["run_dir"] = run_dir     # a restored callback writes here, wherever the folder was before
        waves = _load_waves(run_dir) if options.resume else []
        if not waves:
            waves = [{"name": plan.study.name, "trials": [t.trial_id for t in plan.trials]}]
            _save_waves(run_dir, waves)
        for wave in waves:
            _run_wave(plan, wave, storage, run_dir, options.resume)
        while options.until_decided and not _not_run(run_dir, [t.trial_id for t in plan.trials]):
            extra = next_seeds(run_dir, plan, options.max_seeds or DEFAULT_MAX_SEEDS)
            if not extra:
                break
            before = {t.trial_id for t in plan.trials}
            plan = _with_seeds(plan, [*plan.study.seeds, *extra])
            write_plan(run_dir, plan)
            wave = {"name": f"wave{len(waves)}", "seeds": extra,
                    "trials": [t.trial_id for t in plan.trials if t.trial_id not in before]}
            waves.append(wave)
            _save_waves(run_dir, waves)
            print(f"until decided: wave {len(waves) - 1} adds seeds {', '.join(map(str, extra))} "
                  f"({len(wave['trials'])} trials)", flush=True)
            _run_wave(plan, wave, storage, run_dir, False)
            if _not_run(run_dir, wave["trials"]):   # interrupted: decide nothing on half a wave
                break
    finally:
        if started_ray:
            _stop_ray()
    return _finish(plan, run_dir, uri, time.time() - start)


def _run_wave(plan: Plan, wave: dict[str, Any], storage: str, run_dir: str, resume: bool) -> None:
    """One Tune experiment over the wave's trials (restored when resuming and Tune saved its state)."""
    from ray import tune

    from orchestrator.callback import StudyCallback
    from orchestrator.records import load_states
    from orchestrator.trainable import run_trial

    ids = set(wave["trials"])
    states = load_states(run_dir)
    if resume and all(states.get(tid, {}).get("status") in DONE for tid in ids):
        return
    # the planned seeds' experiment is the run folder itself; an added wave's lives inside it (RUN_DIR/waveN)
    home = storage if wave["name"] == plan.study.name else f"{storage}/{plan.study.name}"
    experiment = f"{home}/{wave['name']}"
    restorable = resume and tune.Tuner.can_restore(experiment) and _started(run_dir)
    if resume and not restorable:   # Tune's state is gone (or never held a trial): run what has not finished
        ids = {tid for tid in ids if states.get(tid, {}).get("status") not in DONE}
    sub = dataclasses.replace(plan, trials=tuple(t for t in plan.trials if t.trial_id in ids))
    callback = StudyCallback(run_dir, plan.study.name, read_plan(run_dir).trials)
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials=_trial_table(sub, storage)),
                                    _resources(sub))
    setup = _search_setup(sub)
    if restorable:
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True,
                                   param_space=setup.get("param_space"))
    else:
        if tune.Tuner.can_restore(experiment):     # Tune's state of a wave that never started a trial
            _forget_tune_state(experiment)
        r = plan.study.resources
        tuner = tune.Tuner(
            trainable,
            **setup,
            tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent or None, reuse_actors=True,
                                        **_tune_search(sub)),
            run_config=tune.RunConfig(
                name=wave["name"], storage_path=home, callbacks=[callback], verbose=0,
                failure_config=tune.FailureConfig(max_failures=r.max_failures),
                # Tune deletes older checkpoints as new ones arrive but snapshots its state less often under load:
                # a driver killed then can resume a trial from a deleted checkpoint; keeping 4 leaves more slack
                checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)),
        )
    from orchestrator.callback import FAULTS

    FAULTS.clear()
    try:
        tuner.fit()
    except Exception:
        if FAULTS:   # recording failed (disk full, read-only storage): one line from run_study, not Tune's traceback
            raise FAULTS[-1] from None
        raise


def _not_run(run_dir: str, ids: list[str]) -> list[str]:
    """The trials among `ids` that have not ended (pending, running, retrying): an interrupted run has some."""
    from orchestrator.records import load_states

    states = load_states(run_dir)
    return [tid for tid in ids if states.get(tid, {}).get("status", TrialStatus.PENDING) in ACTIVE]


def _load_waves(run_dir: str) -> list[dict[str, Any]]:
    path = os.path.join(run_dir, WAVES_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _save_waves(run_dir: str, waves: list[dict[str, Any]]) -> None:
    path = os.path.join(run_dir, WAVES_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(waves, f, indent=1)
    os.replace(path + ".tmp", path)


def _with_seeds(plan: Plan, seeds: list[int]) -> Plan:
    """The same study with these seeds: new trials for new seeds, the old ones with their ids unchanged."""
    from orchestrator.plan import make_plan, smoke

    study = dataclasses.replace(plan.study, seeds=tuple(seeds))
    bigger = make_plan(study, allow_large=True)
    if plan.smoke:
        bigger = smoke(bigger)
    root = plan.trials[0].config.data_root if plan.trials else ""
    return map_configs(bigger, lambda c: c.replace(data_root=root)) if root else bigger


def _with_saved_seeds(plan: Plan, run_dir: str) -> Plan:
    """On --resume: the seeds an earlier --until-decided added (kept in plan.json) join the study's own."""
    try:
        saved = read_plan(run_dir)
    except FileNotFoundError:
        return plan
    extra = [s for s in saved.seeds if s not in plan.study.seeds]
    return _with_seeds(plan, [*plan.study.seeds, *extra]) if extra else plan


def next_seeds(run_dir: str, plan: Plan, max_seeds: int) -> list[int]:
    """The seeds of the next wave: none when every paired comparison is decided or the cap is reached; else
    enough to reach the largest likely-deciding count (at most double the seeds so far, within the cap)."""
    from orchestrator.report import margin_of
    from orchestrator.report_compare import MIN_PAIRS, comparisons, undecided
    from orchestrator.report_stats import load_run

    data = load_run(run_dir)
    frame = comparisons(data, margin_of(data))
    open_ = undecided(frame)
    have = len(plan.study.seeds)
    if frame.empty:
        print("until decided: nothing to compare (no reference method with finished trials); no seeds added")
        return []
    if open_.empty:
        print(f"until decided: every paired comparison is decided with {have} seeds")
        return []
    if have >= max_seeds:
        print(f"until decided: {len(open_)} comparison(s) still not decided at the cap of {max_seeds} seeds "
              "(raise --max-seeds, or accept 'not decided')")
        return []
    needs = [n for n in open_["seeds_to_decide"] if n == n and not math.isinf(n)]
    target = max([MIN_PAIRS, have + 1, *(int(n) for n in needs)])
    target = min(target, 2 * have, max_seeds)
    first = max(plan.study.seeds) + 1
    return list(range(first, first + target - have))


def _keep_study_file(plan: Plan, run_dir: str) -> None:
    """A copy of the study file in the run folder (logged on the MLflow parent run): what was asked for."""
    source = str(plan.study.path)
    if os.path.isfile(source):
        shutil.copyfile(source, os.path.join(run_dir, STUDY_COPY))


def _search_meta(plan: Plan) -> dict[str, dict[str, Any]]:
    return {t.trial_id: {"group": t.group, "scheduler": t.scheduler, "search": t.search,
                         "steps": t.config.steps, "eval_every": t.config.eval_every} for t in plan.trials}


def _search_setup(plan: Plan) -> dict[str, Any]:
    """Tuner arguments: every planned trial by id (a grid over ids), unless a search draws some weights."""
    from ray import tune

    if any(t.search for t in plan.trials):
        return {}
    return {"param_space": {"trial_id": tune.grid_search([t.trial_id for t in plan.trials])}}


def _tune_search(plan: Plan) -> dict[str, Any]:
    """TuneConfig arguments: the study's scheduler (FIFO, with ASHA for the groups that ask for it) and,
    when the study has a search, the searcher that hands out planned trials and draws their weights."""
    from orchestrator.search import StudyScheduler, StudySearcher

    meta = _search_meta(plan)
    out: dict[str, Any] = {}
    if any(t.scheduler for t in plan.trials):
        out["scheduler"] = StudyScheduler(meta)
    if any(t.search for t in plan.trials):
        out["search_alg"] = StudySearcher([t.trial_id for t in plan.trials], meta, len(plan.aux_names))
        out["num_samples"] = len(plan.trials)
    return out


def _finish(plan: Plan, run_dir: str, uri: str, seconds: float) -> int:
    from orchestrator.records import trials_table

    paths = export_tables(run_dir)
    table = trials_table(run_dir)
    failed = table[table["status"] == TrialStatus.FAILED]
    not_run = int(table["status"].isin(ACTIVE).sum())
    report_dir = _report(run_dir, uri, (paths["trials.csv"], os.path.join(run_dir, STUDY_COPY)))
    print(f"\n{'interrupted' if not_run else 'finished'} after {seconds:.0f} s: "
          f"{int((table['status'] == 'finished').sum())} finished, "
          f"{int((table['status'] == 'stopped').sum())} stopped early, {len(failed)} failed, {not_run} not run")
    print(f"records: {paths['records.parquet']} (and .csv), trials: {paths['trials.csv']}")
    if report_dir:
        print(f"report:  {report_dir}")
    if uri.startswith("sqlite:///"):
        print(f"MLflow:  mlflow ui --backend-store-uri {uri}")
    else:
        print(f"MLflow:  {redact(uri)}")
    if len(failed):
        first = failed.iloc[0]
        print(f"{len(failed)} trial(s) failed, e.g. {first['trial_id']} ({first['method']}): {first['error']}")
    if not_run:
        print(f"{not_run} trial(s) did not run: the study was interrupted; run the same command with --resume "
              "to finish them (nothing is recorded twice)")
    return 1 if len(failed) or not_run else 0


def _report(run_dir: str, uri: str, artifacts: tuple[str, ...]) -> str | None:
    """Writes the report and logs it, with `artifacts`, on the study's MLflow run, which it closes (once)."""
    from orchestrator import report

    return report.make_report(run_dir, mlflow_uri=uri, extra_artifacts=artifacts, final=True)
