"""`arml run`: a plan on Ray Tune (a local Ray, or an existing cluster with --address), records and
MLflow from the driver, the report at the end, and a summary with where everything is."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.plan import DEFAULT_STORAGE, Plan, RunOptions, map_configs
from orchestrator.progress import quiet_ray
from orchestrator.records import export_tables, read_plan, write_plan
from orchestrator.tracking import redact, resolve_uri

DRIVER_CPU = 0.01   # what the Tune actor of a multi-worker trial holds while its TorchTrainer runs


def storage_paths(plan: Plan, storage: str | None) -> tuple[str, str]:
    """(Ray's storage path or URI, the local folder that holds records and reports)."""
    base = storage or DEFAULT_STORAGE
    if "://" in base:
        return base.rstrip("/"), os.path.abspath(os.path.join(DEFAULT_STORAGE, plan.study.name))
    base = os.path.abspath(base)
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
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    print(f"Ray: started a local Ray with {os.cpu_count() or 1} CPUs (pass --address to use a cluster)")
    return True


def _trial_table(plan: Plan, storage: str) -> dict[str, dict[str, Any]]:
    return {t.trial_id: {"trial_id": t.trial_id, "config": t.config.to_dict(),
                         "resources": dataclasses.asdict(t.resources), "storage": storage} for t in plan.trials}


def _resources(plan: Plan) -> dict[str, float]:
    r = plan.study.resources
    if r.workers_per_trial > 1:  # the trial only drives a TorchTrainer; its workers hold the rest
        return {"cpu": DRIVER_CPU}
    return {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial}


def _check_resume(plan: Plan, run_dir: str, experiment: str, resume: bool) -> None:
    from ray import tune

    exists = tune.Tuner.can_restore(experiment)
    if exists and not resume:
        raise UsageError(f"{run_dir} already holds a run of study {plan.study.name!r}: add --resume to finish "
                         "its unfinished trials, or remove the folder, or pass another --storage")
    if resume and not tune.Tuner.can_restore(experiment):
        raise UsageError(f"nothing to resume at {experiment}: run the study without --resume first")
    if resume:
        saved = {t["trial_id"] for t in read_plan(run_dir)["trials"]}
        if saved != {t.trial_id for t in plan.trials}:
            raise UsageError(f"the study file changed since {run_dir} was started (different trials); "
                             "--resume needs the same study: run it into another --storage instead")


def run_study(plan: Plan, options: RunOptions) -> int:
    """Runs every trial of `plan`; returns 0 when all finished, 1 when some failed."""
    if options.address:
        _use_cluster_token()  # before Ray is imported: it reads its authentication mode once
    from ray import tune

    from orchestrator.callback import MLFLOW, StudyCallback

    storage, run_dir = storage_paths(plan, options.storage)
    experiment = f"{storage}/{plan.study.name}"
    plan = _absolute_data_root(plan)
    _check_resume(plan, run_dir, experiment, options.resume)
    uri = resolve_uri(options.mlflow_uri, run_dir)
    quiet_ray(run_dir)   # Ray's and Tune's own messages go to RUN_DIR/ray.log, not the terminal
    started_ray = _start_ray(options.address)
    write_plan(run_dir, plan)
    print(f"study {plan.study.name}: {len(plan)} trials -> {run_dir}  (MLflow: {redact(uri)})", flush=True)
    start = time.time()
    try:
        MLFLOW["uri"] = uri
        callback = StudyCallback(run_dir, plan.study.name, read_plan(run_dir)["trials"])
        from orchestrator.trainable import run_trial

        trainable = tune.with_resources(tune.with_parameters(run_trial, trials=_trial_table(plan, storage)),
                                        _resources(plan))
        if options.resume:
            tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
        else:
            r = plan.study.resources
            tuner = tune.Tuner(
                trainable,
                **_search_setup(plan),
                tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent or None, reuse_actors=True,
                                            **_tune_search(plan)),
                run_config=tune.RunConfig(
                    name=plan.study.name, storage_path=storage, callbacks=[callback], verbose=0,
                    failure_config=tune.FailureConfig(max_failures=r.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
            )
        tuner.fit()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return _finish(plan, run_dir, uri, time.time() - start)


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
    failed = table[table["status"] == "failed"]
    report_dir = _report(run_dir, uri)
    from orchestrator.tracking import Tracker

    saved = read_plan(run_dir)
    Tracker(uri, plan.study.name, run_dir, saved["trials"], say=lambda _: None).close(
        "failed" if len(failed) else "finished", [p for p in (report_dir, paths["trials.csv"]) if p])
    print(f"\nfinished in {seconds:.0f} s: {int((table['status'] == 'finished').sum())} finished, "
          f"{int((table['status'] == 'stopped').sum())} stopped early, {len(failed)} failed, "
          f"{int(table['status'].isin(['pending', 'running', 'retrying']).sum())} not run")
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
        return 1
    return 0


def _report(run_dir: str, uri: str) -> str | None:
    """Writes the report and logs it on the study's MLflow run, when the report module is there."""
    try:
        from orchestrator import report
    except ImportError:
        return None
    return report.make_report(run_dir, mlflow_uri=uri)
