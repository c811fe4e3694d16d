"""The `arml` command (Click): run, list and inspect studies. Heavy imports (torch, ray, mlflow) happen inside
the commands, so `arml --help` and shell completion answer at once; user mistakes are one line on stderr,
exit code 2. Shell completion: `eval "$(_ARML_COMPLETE=bash_source arml)"` (zsh: zsh_source)."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import MissingComponentError, RunFault, UsageError
from orchestrator.run.signals import early, exit_code_of
from orchestrator.study.catalogue import find_study, list_entries, list_text, overrides_from, study_files, study_folders

DESCRIPTION = """\
arml runs studies of auxiliary-task weighting (ARML, NeurIPS 2020): a study file (TOML) names a data set,
the weighting methods to compare (uniform, ARML, grid search over fixed weights, ...), label budgets and
seeds; arml turns it into trials, runs them with Ray, logs them to MLflow and writes data-requirement
curves and tables.

\b
commands:
  run STUDY.toml      plan the study's trials and run them (--dry-run: only show the plan);
                      STUDY may also be a shipped study's name, e.g. quickstart
  list                the shipped study files (and ./studies) with descriptions and trial counts
  data check          which data sets are present under the data root
  submit STUDY.toml   run the study as a Ray job on a cluster (--address http://HEAD:8265) and return
  status RUN_DIR      progress of a study's trials (and of its Ray job, when submitted as one)
  logs RUN_DIR        a submitted study's output (--follow: as it comes)
  stop RUN_DIR        stop a submitted study (records exported; --resume continues it)
  report RUN_DIR      curves and tables from a study's results"""

EPILOG = """\b
examples:
  arml run studies/quickstart.toml --dry-run
  arml run studies/quickstart.toml
  arml report runs/quickstart

\b
`arml COMMAND --help` explains each command's options.
Shell completion (bash): eval "$(_ARML_COMPLETE=bash_source arml)\""""

SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("arml-studies")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"arml {_version()}")
        ctx.exit(0)


def _examples(*lines: str) -> str:
    return "\b\n" + ("examples:" if len(lines) > 1 else "example:") + "\n" + "\n".join(f"  {x}" for x in lines)


class _Group(click.Group):
    """Lists commands in DESCRIPTION (with their arguments), not in Click's own table."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.name == "arml":
            return
        super().format_commands(ctx, formatter)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except UnicodeEncodeError:
        print(text.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)


def one_line(error: BaseException) -> str:
    return re.sub(r"\s*\n\s*", " ", str(error)).strip() or type(error).__name__


def _is_usage_error(error: BaseException) -> bool:
    """UsageError, TrainablesError or UnknownNameError (looked up only if their modules are loaded)."""
    kinds: list[type] = [UsageError]
    if "trainables.errors" in sys.modules:
        kinds.append(sys.modules["trainables.errors"].TrainablesError)
    if "arml.registry" in sys.modules:   # a name not in a registry, a plug-in that does not load
        kinds += [sys.modules["arml.registry"].UnknownNameError, sys.modules["arml.registry"].PluginError]
    return isinstance(error, tuple(kinds))


def _exit_code(result: Any) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _handled(fn: Callable[..., Any]) -> Callable[..., int]:
    """Runs a command and turns what the user can act on into one line and an exit code: 2 for a mistake
    (study file, option value, unknown name), 1 for a missing component or a fault mid-run (a full disk), 130
    for Ctrl-C."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return _exit_code(fn(*args, **kwargs))
        except KeyboardInterrupt as error:   # Ctrl-C, or a SIGTERM before a run took the signals over
            code = exit_code_of(error)
            _say("arml: stopped by SIGTERM" if code == 143 else "arml: interrupted")
            return code
        except (MissingComponentError, RunFault) as error:
            _say(f"arml: error: {one_line(error)}")
            return 1
        except Exception as error:
            if not _is_usage_error(error):
                raise
            lines = getattr(error, "lines", None)   # several problems found at once (orchestrator.run.preflight)
            _say("\n".join(f"arml: error: {line}" if i == 0 else line for i, line in enumerate(lines()))
                 if callable(lines) else f"arml: error: {one_line(error)}")
            return 2

    return wrapper


@click.group("arml", cls=_Group, help=DESCRIPTION, epilog=EPILOG, context_settings=SETTINGS)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version and exit.")
def cli() -> None:
    pass


# ---- run ---------------------------------------------------------------------------------------
def _complete_study(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    names = [p.stem for folder in study_folders() for p in study_files(folder)]
    return sorted({n for n in names if n.startswith(incomplete)})


@cli.command("run", context_settings=SETTINGS, epilog=_examples(
    "arml run studies/quickstart.toml --dry-run",
    "arml run quickstart --set train.steps=100 --set 'budget.labels=[20]' --storage runs/short",
    "arml run studies/big.toml --address auto --storage /shared/runs --mlflow-uri http://mlflow:5000"))
@click.argument("study", metavar="STUDY.toml", type=click.Path(), shell_complete=_complete_study)
@click.option("--dry-run", is_flag=True, help="print the plan (trials per method, resources per trial, output "
                                              "folder, whether it already holds a run) and stop")
@click.option("--json", "as_json", is_flag=True, help="with --dry-run: the plan as JSON")
@click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="change one value of the study file, e.g. train.steps=100 or budget.labels=[20] (a TOML "
                   "value; validated like the file); repeatable")
@click.option("--allow-large", is_flag=True,
              help="run even if the plan has more trials than the study's [study] max_trials")
@click.option("--address", metavar="ADDR", help="join an existing Ray cluster (e.g. auto, HEAD:6379 or "
                                                "ray://head:10001); default: $RAY_ADDRESS when set (as inside a Ray "
                                                "job), else start Ray on this machine")
@click.option("--storage", metavar="PATH_OR_URI", help="where trials, checkpoints and records go; on a cluster a "
                                                       "path or URI all nodes share (default: ./runs)")
@click.option("--mlflow-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI if set, "
                                                  "else a sqlite store in the run folder, RUN_DIR/mlflow.db)")
@click.option("--resume", is_flag=True, help="continue an interrupted run of this study: finished trials are kept")
@click.option("--until-decided", is_flag=True,
              help="after the planned seeds, add seeds in waves while a paired comparison (the report's "
                   "comparisons.md) is 'not decided', up to --max-seeds; resumable like any run")
@click.option("--max-seeds", type=click.IntRange(min=1), metavar="N",
              help="the most seeds --until-decided uses (default 20)")
@click.option("--smoke", is_flag=True, help="shrink every trial to seconds (<= 4 steps, small batches and "
                                            "evaluations): checks the whole pipeline, not the science")
@click.option("--data-root", metavar="DIR", type=click.Path(file_okay=False),
              help="folder with the data sets (default: $ARML_DATA or ./data)")
@_handled
def run_command(study: str, dry_run: bool, as_json: bool, settings: tuple[str, ...], allow_large: bool,
                address: str | None, storage: str | None, mlflow_uri: str | None, resume: bool,
                until_decided: bool, max_seeds: int | None, smoke: bool, data_root: str | None) -> int:
    """Plan a study's trials and run them on Ray (local or a cluster). STUDY.toml is a study file or the
    name of a shipped one (`arml list`)."""
    from orchestrator.run.options import RunOptions
    from orchestrator.run.session import cluster_address
    from orchestrator.study.plan import build_plan
    from orchestrator.study.spec import load_study

    address = cluster_address(address)   # inside a Ray job (or wherever RAY_ADDRESS is set): that cluster
    if as_json and not dry_run:
        raise UsageError("--json goes with --dry-run (a run prints its progress as text)")
    plan = build_plan(load_study(find_study(study), overrides_from(settings) or None), allow_large=allow_large,
                      data_root=data_root, smoke_run=smoke)
    options = RunOptions(address=address, storage=storage, mlflow_uri=mlflow_uri, resume=resume,
                         data_root=data_root, until_decided=until_decided, max_seeds=max_seeds)
    if dry_run:
        from orchestrator.run.dryrun import plan_data, plan_text
        from orchestrator.run.preflight import check

        print(json.dumps(plan_data(plan, options), indent=1) if as_json else plan_text(plan, options))
        check(plan, address, data_root or plan.study.config.data_root or None)   # what would stop the run
        return 0
    from orchestrator.api import run_plan

    return run_plan(plan, options)


# ---- submit, logs, stop: a study as a Ray job ----------------------------------------------------
@cli.command("submit", context_settings=SETTINGS, epilog=_examples(
    "arml submit quickstart --address http://127.0.0.1:8265",
    "arml submit studies/big.toml --address http://head:8265 --storage /shared/runs --data-root /shared/data",
    "arml submit studies/big.toml --address http://head:8265 --storage /shared/runs --resume"))
@click.argument("study", metavar="STUDY.toml", type=click.Path(), shell_complete=_complete_study)
@click.option("--address", metavar="URL", help="the cluster's job server, e.g. http://HEAD:8265 (the head's "
                                               "dashboard port; default: $RAY_ADDRESS when it is one)")
@click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="change one value of the study file (as for arml run); repeatable")
@click.option("--storage", metavar="PATH", help="where the run folder goes, a path the head node sees (default: "
                                                "./runs, made absolute here)")
@click.option("--mlflow-uri", metavar="URI", help="MLflow tracking URI for the job (default: the head's "
                                                  "$MLFLOW_TRACKING_URI, else RUN_DIR/mlflow.db)")
@click.option("--resume", is_flag=True, help="continue an interrupted or stopped run of this study")
@click.option("--until-decided", is_flag=True, help="as for arml run")
@click.option("--max-seeds", type=click.IntRange(min=1), metavar="N", help="as for arml run")
@click.option("--smoke", is_flag=True, help="as for arml run: every trial shrunk to seconds")
@click.option("--allow-large", is_flag=True, help="as for arml run")
@click.option("--data-root", metavar="DIR", help="folder with the data sets on the head node (default: "
                                                 "$ARML_DATA or ./data, made absolute here)")
@_handled
def submit_command(study: str, address: str | None, settings: tuple[str, ...], storage: str | None,
                   mlflow_uri: str | None, resume: bool, until_decided: bool, max_seeds: int | None, smoke: bool,
                   allow_large: bool, data_root: str | None) -> int:
    """Run a study as a Ray job: `arml run STUDY` on the cluster's head node, submitted to its job server. Prints
    the job's id, records it in the run folder and returns at once: `arml status`, `arml logs` and `arml stop`
    take the run folder. The project must be installed on every node (`arml` on the PATH of the head's
    `ray start`), and every path must name the same place on the head node."""
    from orchestrator.run import jobs
    from orchestrator.study.plan import build_plan
    from orchestrator.study.spec import load_study

    url = jobs.job_server(address)
    path = find_study(study)
    plan = build_plan(load_study(path, overrides_from(settings) or None), allow_large=allow_large,
                      data_root=data_root, smoke_run=smoke)   # a mistake in the study is found here, not in the job
    job = jobs.submit(jobs.Submission(str(path), settings, storage, mlflow_uri, resume, data_root, until_decided,
                                      max_seeds, smoke, allow_large), url, plan)
    shown = _shown(job["run_dir"])
    print(f"submitted Ray job {job['job_id']} to {url}")
    print(f"  runs:      {job['entrypoint']}")
    print(f"  run folder {job['run_dir']}")
    if job.get("not_recorded"):
        print(f"  (the job id is not recorded in the run folder: {job['not_recorded']}; follow it with "
              f"`ray job logs {job['job_id']} --address {url}`)")
    else:
        print(f"  arml status {shown}           the trials and the job")
        print(f"  arml logs {shown} --follow    the study's output as it runs")
        print(f"  arml stop {shown}             stop it (records exported; submit again with --resume to continue)")
    return 0


def _shown(path: str) -> str:
    import os

    here = os.getcwd()
    inside = os.path.commonpath([here, path]) == here
    return os.path.relpath(path, here) if inside else path


@cli.command("logs", context_settings=SETTINGS, epilog=_examples("arml logs runs/quickstart --follow"))
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("--follow", "-f", is_flag=True, help="keep printing the output as it comes, until the job ends")
@_handled
def logs_command(run_dir: str, follow: bool) -> int:
    """Print the output of a study submitted as a Ray job (`arml submit`), from its job server."""
    from orchestrator.run.jobs import print_logs

    return print_logs(run_dir, follow)


@cli.command("stop", context_settings=SETTINGS, epilog=_examples("arml stop runs/quickstart"))
@click.argument("run_dir", metavar="RUN_DIR")
@_handled
def stop_command(run_dir: str) -> int:
    """Stop a study submitted as a Ray job: Ray sends its driver SIGTERM, the running trials stop, the records
    are exported (as after `kill`), and `arml submit STUDY --resume` continues it later."""
    from orchestrator.run.jobs import stop

    return stop(run_dir)


# ---- list --------------------------------------------------------------------------------------
@cli.command("list", context_settings=SETTINGS, epilog=_examples("arml list", "arml list --dir my_studies --json"))
@click.option("--dir", "folder", metavar="DIR", type=click.Path(),
              help="folder of *.toml study files (default: the shipped studies/, and ./studies if there is one)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per study file, in a list")
@_handled
def list_command(folder: str | None, as_json: bool) -> int:
    """List study files: description, setting, data set, trial count (a broken file is shown with its
    error). Any of them runs by name: `arml run NAME`."""
    if folder is not None and not Path(folder).is_dir():
        raise UsageError(f"{folder}: no such folder; give the folder of study files with --dir DIR")
    folders = [Path(folder)] if folder is not None else study_folders()
    files = [p for f in folders for p in study_files(f)]
    if not files:
        print("[]" if as_json else f"no study files (*.toml) in {', '.join(map(str, folders))}")
        return 0
    entries = list_entries(files)
    print(json.dumps(entries, indent=1) if as_json else list_text(entries))
    return 0


# ---- data check --------------------------------------------------------------------------------
@cli.group("data", cls=_Group, context_settings=SETTINGS, invoke_without_command=True,
           epilog=_examples("arml data check --data-root /data"))
@click.pass_context
def data_group(ctx: click.Context) -> int | None:
    """Data set commands."""
    if ctx.invoked_subcommand is None:
        _say(ctx.get_help())
        ctx.exit(2)
    return None


@data_group.command("check", context_settings=SETTINGS, epilog=_examples("arml data check --data-root /data"))
@click.option("--data-root", metavar="DIR", help="the data root (default: $ARML_DATA or ./data)")
@_handled
def data_check(data_root: str | None) -> int:
    """Show which data sets are present under the data root, their splits, and what to do about missing ones."""
    import os

    root = data_root or os.environ.get("ARML_DATA", "") or "./data"
    from trainables.data import status_table

    print(status_table(root))
    return 0


# ---- status, report ----------------------------------------------------------------------------
def _complete_run_dir(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    from orchestrator.store.folder import DEFAULT_STORAGE, PLAN_FILE

    runs = Path(DEFAULT_STORAGE)
    found = [str(p.parent) for p in runs.glob(f"*/{PLAN_FILE}")] if runs.is_dir() else []
    return sorted(p for p in found if p.startswith(incomplete))


@cli.command("status", context_settings=SETTINGS, epilog=_examples("arml status runs/quickstart",
                                                                   "arml status runs/quickstart --json"))
@click.argument("run_dir", metavar="RUN_DIR", shell_complete=_complete_run_dir)
@click.option("--json", "as_json", is_flag=True, help="the status as JSON")
@_handled
def status_command(run_dir: str, as_json: bool) -> int:
    """Show the progress of a study's trials: done, running, failed, pending, and each method's best
    validation accuracy so far. RUN_DIR is STORAGE/STUDY_NAME, e.g. runs/quickstart."""
    from orchestrator.report.status import status_data, status_text
    from orchestrator.store.folder import RunFolder

    job = None
    if RunFolder(run_dir).job().get("job_id"):   # submitted as a Ray job: its state beside the trials'
        from orchestrator.run.jobs import job_state

        job = job_state(RunFolder(run_dir).job())
    print(json.dumps(status_data(run_dir, job), indent=1) if as_json else status_text(run_dir, job))
    return 0


@cli.command("report", context_settings=SETTINGS, epilog=_examples(
    "arml report runs/quickstart",
    "arml report runs/big --log-mlflow --mlflow-uri http://mlflow:5000"))
@click.argument("run_dir", metavar="RUN_DIR", shell_complete=_complete_run_dir)
@click.option("--log-mlflow", is_flag=True,
              help="also log the report on the study's MLflow parent run, and every trial's records to MLflow "
                   "child runs where they are missing (a study whose tracking server was unreachable)")
@click.option("--mlflow-uri", metavar="URI",
              help="MLflow tracking URI to log the report to (default with --log-mlflow: the run folder's "
                   "mlflow.db if there is one, else $MLFLOW_TRACKING_URI)")
@_handled
def report_command(run_dir: str, log_mlflow: bool, mlflow_uri: str | None) -> int:
    """Write a study's report into RUN_DIR/report: the paper-style results table, paired comparisons with
    verdicts, data-requirement curves, labels needed to reach each target, compute cost, cost against accuracy
    for searches and what each search needs to match ARML (per K when the study sweeps aux_count), weight
    trajectories, task relationships (multi-label) and, for a sweep, every table per cell with the regime map."""
    from orchestrator.report.build import report_folder

    return report_folder(run_dir, log_mlflow, mlflow_uri)


# ---- entry point -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arml` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    early()   # a SIGTERM from here on is a one-line stop (exit 143), like a Ctrl-C
    try:
        result = cli.main(args=args, prog_name="arml", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        _say(error.ctx.get_help() if error.ctx else "usage: arml COMMAND ...")
        return 2
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "arml"
        message = re.sub(r"\s*\n\s*", " ", error.format_message()).strip()
        _say(f"{command}: error: {message} (see `{command} --help`)")
        return 2
    except click.ClickException as error:
        _say(f"arml: error: {one_line(error)}")
        return error.exit_code
    except click.exceptions.Abort:
        _say("arml: interrupted")
        return 130
    except KeyboardInterrupt as error:   # a signal while Click parses the command line
        code = exit_code_of(error)
        _say("arml: stopped by SIGTERM" if code == 143 else "arml: interrupted")
        return code
    return _exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
