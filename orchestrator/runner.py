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

from orchestrator import preflight, reaper, resume
from orchestrator.errors import RunFault, UsageError
from orchestrator.plan import DEFAULT_STORAGE, Plan, RunOptions, map_configs
from orchestrator.progress import quiet_ray
from orchestrator.records import export_tables, load_states, trials_table, write_states
from orchestrator.schema import ACTIVE, PLAN_FILE, TrialStatus, read_plan, write_plan
from orchestrator.signals import Interrupts
from orchestrator.tracking import redact, resolve_uri
from orchestrator.trainable import check_cluster_fits, run_trial, trial_resources

STUDY_COPY = "study.toml"
WAVES_FILE = "waves.json"          # a study's waves of trials (its planned seeds, then added ones) and launches
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
    print(f"Ray: starting a local Ray with {os.cpu_count() or 1} CPUs ...", flush=True)
    try:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - whatever Ray raises when its processes do not come up
        ray.shutdown()
        reaper.reap(reaper.roots([p for p in reaper.children(os.getpid()) if p not in before]))
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunFault(f"Ray could not start on this machine ({first}); Ray's own logs are under "
                       "/tmp/ray/session_latest/logs. Try again (a busy machine can time out), or join a running "
                       "cluster with --address") from None
    # if this process dies, its watcher ends this Ray at once (None without /proc)
    _WATCHER["process"] = reaper.start([p for p in reaper.children(os.getpid()) if p not in before])
    print("Ray: started (pass --address to use a cluster)", flush=True)
    return True


def _stop_ray() -> None:
    """Shuts down the local Ray this process started, then lets its watcher go."""
    import ray

    ray.shutdown()
    reaper.release(_WATCHER.pop("process", None))


def _trial_table(plan: Plan, resume_from: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What each trial's Tune actor is handed: its config, resources, where a data-parallel trial's workers
    keep their checkpoints, and the checkpoint an earlier launch left (`resume_from`)."""
    return {t.trial_id: {"trial_id": t.trial_id, "config": t.config.to_dict(),
                         "resources": dataclasses.asdict(t.resources), "storage": plan.tune_home,
                         "resume_from": resume_from.get(t.trial_id)} for t in plan.trials}


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


def _started(run_dir: str) -> bool:
    """Whether any trial of this run folder ever started (a run killed in its first seconds has none)."""
    return any(state.get("status") != TrialStatus.PENDING for state in load_states(run_dir).values())


def _check_trusted(path: str) -> None:
    """A resumed study continues from the checkpoints and records in its run folder and reports them as its
    results: refuse a folder that another user owns or may write to (they could have changed them)."""
    if not os.path.exists(path):
        return
    info = os.stat(path)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UsageError(f"refusing to resume from {path}: it is owned by another user or writable by others, and "
                         "a resumed study continues from the checkpoints and records in it; resume only run "
                         f"folders only you can write (chmod go-w {path}), or start a fresh run with another "
                         "--storage")


def _check_resume(plan: Plan, run_dir: str, resume: bool) -> None:
    saved = os.path.exists(os.path.join(run_dir, PLAN_FILE))
    if saved and not resume and _started(run_dir):
        raise UsageError(f"{run_dir} already holds a run of study {plan.study.name!r}: add --resume to finish "
                         "its unfinished trials, or remove the folder, or pass another --storage")
    if resume and not saved:
        raise UsageError(f"nothing to resume at {run_dir}: run the study without --resume first")
    if resume:
        _check_trusted(run_dir)
        if {t.trial_id for t in read_plan(run_dir).trials} != {t.trial_id for t in plan.trials}:
            raise UsageError(f"the study file changed since {run_dir} was started (different trials); "
                             "--resume needs the same study: run it into another --storage instead")


def run_study(plan: Plan, options: RunOptions) -> int:
    """Runs every trial of `plan`; returns 0 when all finished, 1 when some failed or did not run, 130 after
    Ctrl-C and 143 after SIGTERM (what was recorded is exported first). With `until_decided`, adds seeds in
    waves (records and MLflow shared) while a paired comparison is not decided and fewer than `max_seeds` seeds
    have run."""
    if options.address:
        _use_cluster_token()  # before Ray is imported: it reads its authentication mode once
    storage, run_dir = storage_paths(plan, options.storage)
    plan = dataclasses.replace(_absolute_data_root(plan), tune_home=f"{storage}/{plan.study.name}")
    _prepare_folder(run_dir)
    lock = _lock(run_dir)
    interrupts = Interrupts()
    interrupts.install()
    try:
        return _run_locked(plan, options, run_dir, interrupts)
    except OSError as error:   # a full disk, storage gone read-only: say it once, keep what was recorded
        raise RunFault(f"the run stopped on a storage error in {run_dir}: {error.strerror or error} "
                       f"({getattr(error, 'filename', '') or 'writing records'}); records written so far are "
                       "intact: free space or fix the folder, then run again with --resume") from None
    finally:
        lock.close()
        interrupts.uninstall()


def _run_locked(plan: Plan, options: RunOptions, run_dir: str, interrupts: Interrupts) -> int:
    start = time.time()
    if options.resume:
        plan = _with_saved_seeds(plan, run_dir)
    _check_resume(plan, run_dir, options.resume)
    preflight.check(plan, options.address, options.data_root or plan.study.config.data_root or None)
    uri = resolve_uri(options.mlflow_uri, run_dir)
    quiet_ray(run_dir)   # Ray's and Tune's own messages go to RUN_DIR/ray.log, not the terminal
    started_ray = False
    try:
        started_ray = _start_ray(options.address)
        interrupts.reclaim()
        check_cluster_fits(dataclasses.asdict(plan.study.resources), study=str(plan.study.path))
        write_plan(run_dir, plan)
        _keep_study_file(plan, run_dir)
        print(f"study {plan.study.name}: {len(plan)} trials -> {run_dir}  (MLflow: {redact(uri)})", flush=True)
        waves = _load_waves(run_dir) if options.resume else []
        if not waves:
            waves = [{"name": "seeds", "trials": [t.trial_id for t in plan.trials]}]
            _save_waves(run_dir, waves)
        for wave in waves:
            _run_wave(plan, wave, waves, run_dir, uri, interrupts)
            if interrupts.received:
                break
        while options.until_decided and not interrupts.received \
                and not _not_run(run_dir, [t.trial_id for t in plan.trials]):
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
            _run_wave(plan, wave, waves, run_dir, uri, interrupts)
    except KeyboardInterrupt:   # a second Ctrl-C, or one outside Tune: stop now, keep what was recorded
        interrupts.received = interrupts.received or "SIGINT"
    finally:
        if started_ray:
            _stop_ray()
    return _finish(plan, run_dir, uri, start, interrupts)


def _run_wave(plan: Plan, wave: dict[str, Any], waves: list[dict[str, Any]], run_dir: str, uri: str,
              interrupts: Interrupts) -> None:
    """One launch of the wave's trials that have not finished: a new Tune experiment (RUN_DIR/<wave>-<launch>)
    built from the records, each interrupted trial continuing from the last checkpoint they name."""
    from ray import tune

    from orchestrator.callback import StudyCallback

    states = load_states(run_dir)
    ids = resume.to_run(wave["trials"], states)
    if not ids:
        return
    wave["launches"] = wave.get("launches", 0) + 1
    _save_waves(run_dir, waves)
    rows = resume.read_rows(run_dir) if any(states.get(t, {}).get("status", "pending") != "pending" for t in ids) \
        else []
    chosen = set(ids)
    sub = dataclasses.replace(plan, trials=tuple(t for t in plan.trials if t.trial_id in chosen))
    saved = read_plan(run_dir)
    callback = StudyCallback(run_dir, plan.study.name, saved.trials, uri, interrupts)
    table = _trial_table(sub, resume.checkpoints(rows, ids, plan.tune_home, run_dir))
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials=table), _resources(sub))
    r = plan.study.resources
    tuner = tune.Tuner(
        trainable,
        **_search_setup(sub),
        tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent or None, reuse_actors=True,
                                    **_tune_search(sub, plan, saved, states, rows)),
        run_config=tune.RunConfig(
            name=f"{wave['name']}-{wave['launches']}", storage_path=plan.tune_home, callbacks=[callback],
            verbose=0, failure_config=tune.FailureConfig(max_failures=r.max_failures),
            # Tune deletes older checkpoints as new ones arrive; the records name the last one reported
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)),
    )
    try:
        tuner.fit()
    except Exception:
        if callback.faults:   # recording failed (disk full, read-only storage): one line, not Tune's traceback
            raise callback.faults[-1] from None
        raise
    finally:
        interrupts.after_tune()


def _not_run(run_dir: str, ids: list[str]) -> list[str]:
    """The trials among `ids` that have not ended (pending, running, interrupted): an interrupted run has some."""
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
    bigger = map_configs(bigger, lambda c: c.replace(data_root=root)) if root else bigger
    return dataclasses.replace(bigger, tune_home=plan.tune_home)


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
    """Tuner arguments: every trial of the launch by id (a grid over ids), unless a search draws some weights."""
    from ray import tune

    if any(t.search for t in plan.trials):
        return {}
    return {"param_space": {"trial_id": tune.grid_search([t.trial_id for t in plan.trials])}}


def _tune_search(sub: Plan, plan: Plan, saved: Any, states: dict[str, dict[str, Any]],
                 rows: list[dict[str, Any]]) -> dict[str, Any]:
    """TuneConfig arguments for a launch of `sub` (trials of `plan`): the study's scheduler (FIFO, with
    successive halving for the groups that ask for it, fed the results already recorded) and, when the launch
    has a search, the searcher that hands out its trials and draws their weights, told what the records hold."""
    from orchestrator.search import StudyScheduler, StudySearcher

    meta = _search_meta(plan)
    out: dict[str, Any] = {}
    if any(t.scheduler for t in sub.trials):
        scheduler = StudyScheduler(meta)
        scheduler.replay(rows)
        out["scheduler"] = scheduler
    if any(t.search for t in sub.trials):
        last = resume.last_of(rows)
        history, preset = resume.search_state(saved.trials, states, last, {t.trial_id: t.group for t in plan.trials})
        out["search_alg"] = StudySearcher([t.trial_id for t in sub.trials], meta, len(plan.aux_names), history,
                                          preset)
        out["num_samples"] = len(sub.trials)
    return out


def _finish(plan: Plan, run_dir: str, uri: str, start: float, interrupts: Interrupts) -> int:
    """Exports what was recorded, writes the report (skipped by a Ctrl-C), closes the MLflow runs and prints the
    summary; the exit code says how the study ended."""
    if interrupts.received:
        _mark_interrupted(run_dir, uri, plan.study.name)
    paths = export_tables(run_dir)
    report_dir = None
    try:
        report_dir = _report(run_dir, uri, (paths["trials.csv"], os.path.join(run_dir, STUDY_COPY)))
    except KeyboardInterrupt:
        interrupts.received = interrupts.received or "SIGINT"
        print("report: interrupted; write it later with: arml report " + run_dir, flush=True)
        _close_parent(run_dir, uri, plan.study.name)
    table = trials_table(run_dir)
    failed = table[table["status"] == TrialStatus.FAILED]
    not_run = int(table["status"].isin(ACTIVE).sum())
    how = f"stopped by {interrupts.received}" if interrupts.received else "interrupted" if not_run else "finished"
    print(f"\n{how} after {time.time() - start:.0f} s: "
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
        print(f"{not_run} trial(s) did not run to the end; run the same command with --resume to finish them "
              "(finished trials are kept, interrupted ones continue from their last checkpoint)")
    if interrupts.received:
        return interrupts.exit_code
    return 1 if len(failed) or not_run else 0


def _mark_interrupted(run_dir: str, uri: str, study: str) -> None:
    """Trials recorded as running when the study was stopped become interrupted, in trials.json and in MLflow
    (their child runs KILLED); the callback does this itself when Tune stops gracefully."""
    states = load_states(run_dir)
    running = [tid for tid, s in states.items() if s.get("status") in (TrialStatus.RUNNING, TrialStatus.RETRYING)]
    if not running:
        return
    for tid in running:
        states[tid]["status"] = TrialStatus.INTERRUPTED
    write_states(run_dir, states)
    from orchestrator.tracking import Tracker

    tracker = Tracker(uri, study, run_dir, read_plan(run_dir).trials)
    for tid in running:
        tracker.finish(tid, TrialStatus.INTERRUPTED)


def _close_parent(run_dir: str, uri: str, study: str) -> None:
    """The study's MLflow run marked KILLED (the report that would have closed it was interrupted)."""
    from orchestrator.tracking import Tracker

    tracker = Tracker(uri, study, run_dir, read_plan(run_dir).trials)
    tracker.close("interrupted")


def _report(run_dir: str, uri: str, artifacts: tuple[str, ...]) -> str | None:
    """Writes the report and logs it, with `artifacts`, on the study's MLflow run, which it closes (once)."""
    from orchestrator import report

    return report.make_report(run_dir, mlflow_uri=uri, extra_artifacts=artifacts, final=True)
