"""The `arml` command: run, list and inspect studies. Heavy imports (torch, ray, mlflow) happen inside
the commands, so `arml --help` answers at once; user mistakes are one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import MissingComponentError, RunFault, UsageError

DESCRIPTION = """\
arml runs studies of auxiliary-task weighting (ARML, NeurIPS 2020): a study file (TOML) names a
data set, the weighting methods to compare (uniform, ARML, grid search over fixed weights, ...),
label budgets and seeds; arml turns it into trials, runs them with Ray, logs them to MLflow and
writes data-requirement curves and tables.

commands:
  run STUDY.toml      plan the study's trials and run them (--dry-run: only show the plan)
  list                the study files in studies/ with their descriptions and trial counts
  data check          which data sets are present under the data root
  status RUN_DIR      progress of a study's trials
  report RUN_DIR      curves and tables from a study's results"""

EPILOG = """\
examples:
  arml run studies/quickstart.toml --dry-run
  arml run studies/quickstart.toml
  arml report runs/quickstart

`arml COMMAND --help` explains each command's options."""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("arml-studies")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _sub(subparsers: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    heading = "examples" if "\n" in example else "example"
    return subparsers.add_parser(name, help=summary, description=summary, epilog=f"{heading}:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; `argv` only decides whether status/report may add their own options."""
    parser = argparse.ArgumentParser(prog="arml", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"arml {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = _sub(commands, "run", "Plan a study's trials and run them on Ray (local or a cluster).",
               "arml run studies/quickstart.toml --dry-run\n  arml run studies/big.toml --address auto "
               "--storage /shared/runs --mlflow-uri http://mlflow:5000")
    run.add_argument("study", metavar="STUDY.toml", help="the study file, e.g. studies/quickstart.toml")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (trials per method, resources per trial, output folder) and stop")
    run.add_argument("--allow-large", action="store_true",
                     help="run even if the plan has more trials than the study's [study] max_trials")
    run.add_argument("--address", metavar="ADDR",
                     help="join an existing Ray cluster (e.g. auto or ray://head:10001); "
                          "default: start Ray on this machine")
    run.add_argument("--storage", metavar="PATH_OR_URI",
                     help="where trials, checkpoints and records go; on a cluster a path or URI all nodes "
                          "share (default: ./runs)")
    run.add_argument("--mlflow-uri", metavar="URI",
                     help="MLflow tracking URI (default: sqlite store in the working folder)")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted run of this study: finished trials are kept")
    run.add_argument("--smoke", action="store_true",
                     help="shrink every trial to seconds (<= 4 steps, small batches and evaluations): "
                          "checks the whole pipeline, not the science")
    run.add_argument("--data-root", metavar="DIR",
                     help="folder with the data sets (default: $ARML_DATA or ./data)")
    run.add_argument("--until-decided", action="store_true",
                     help="after the planned seeds, add seeds in waves while a paired comparison (see the "
                          "report's comparisons.md) is 'not decided', up to --max-seeds")
    run.add_argument("--max-seeds", type=int, default=0, metavar="N",
                     help="the cap on seeds with --until-decided (default 20)")
    run.set_defaults(handler=_cmd_run)

    listing = _sub(commands, "list", "List the study files in a folder: description, setting, data set, "
                                     "trial count (a broken file is shown with its error).",
                   "arml list --dir studies")
    listing.add_argument("--dir", default="studies", metavar="DIR", help="folder of *.toml study files "
                                                                         "(default: studies)")
    listing.set_defaults(handler=_cmd_list)

    data = _sub(commands, "data", "Data set commands.", "arml data check --data-root /data")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    check = _sub(data_commands, "check", "Show which data sets are present under the data root, their "
                                         "splits, and what to do about missing ones.",
                 "arml data check --data-root /data")
    check.add_argument("--data-root", metavar="DIR", help="the data root (default: $ARML_DATA or ./data)")
    check.set_defaults(handler=_cmd_data_check)
    data.set_defaults(handler=lambda args: _usage(data))

    for name, summary, example in (
        ("status", "Show the progress of a study's trials: done, running, failed, pending.",
         "arml status runs/quickstart"),
        ("report", "Write data-requirement curves, labels-needed and cost tables, and weight "
                   "trajectories from a study's results.", "arml report runs/quickstart"),
    ):
        sub = _sub(commands, name, summary, example)
        sub.add_argument("run_dir", metavar="RUN_DIR",
                         help="the study's run folder (STORAGE/STUDY_NAME, e.g. runs/quickstart)")
        sub.set_defaults(handler=lambda args, module=f"orchestrator.{name}": _delegate(module, args))
        if _command_of(argv) == name:
            _extend(sub, f"orchestrator.{name}")
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _extend(parser: argparse.ArgumentParser, module_name: str) -> None:
    """Lets orchestrator.status / orchestrator.report add options with `add_arguments(parser)`."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _exit_code(result: Any) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.plan import RunOptions, make_plan, smoke, with_data_root
    from orchestrator.spec import load_study

    plan = make_plan(load_study(args.study), allow_large=args.allow_large)
    if args.data_root:
        plan = with_data_root(plan, args.data_root)
    if args.smoke:
        plan = smoke(plan)
    options = RunOptions(address=args.address, storage=args.storage, mlflow_uri=args.mlflow_uri,
                         resume=args.resume, smoke=args.smoke, data_root=args.data_root,
                         until_decided=args.until_decided, max_seeds=args.max_seeds)
    if args.dry_run:
        print(plan_text(plan, options))
        return 0
    try:
        from orchestrator.runner import run_study
    except ImportError as error:
        if error.name != "orchestrator.runner":  # a missing dependency inside runner.py: show it
            raise
        raise MissingComponentError("orchestrator/runner.py (run_study) is not available yet, so studies "
                                    "cannot run; `arml run STUDY --dry-run` shows the plan") from None
    return _exit_code(run_study(plan, options))


def plan_text(plan: Any, options: Any) -> str:
    """What `arml run --dry-run` prints."""
    from orchestrator.plan import describe_resources, run_dir

    study = plan.study
    budget = f"{study.budget.field}: {', '.join(f'{v:g}' for v in study.budget.values)}" if study.budget \
        else "label budget: the preset's"
    lines = [
        f"study {study.name}: {study.description or '(no description)'}",
        f"  file {study.path}; preset {study.preset}; setting {study.setting}; data set {study.dataset}",
        f"  {len(plan.aux_names)} auxiliary tasks: {', '.join(plan.aux_names)}",
        f"  {budget}; seeds: {', '.join(map(str, study.seeds))}",
        "trials per method:",
    ]
    counts = plan.counts_by_method()
    width = max(len(label) for label in counts)
    k = len(plan.aux_names)
    for method in study.methods:
        kind = method.weighting
        if method.is_grid:
            kind = f"grid ({len(method.grid_values)}^{k} = {len(method.grid_values) ** k} points)"
        elif method.is_search:
            s = method.search
            space = f"[0, {s['w_max']:g}]^{k}" if s["space"] == "box" else f"simplex sum {k}"
            kind = f"{s['sampler'].upper()} search ({s['num_samples']} samples in {space})"
        if method.scheduler:
            kind += f" + {method.scheduler['name'].upper()}"
        lines.append(f"  {method.label:<{width}}  {kind:<40} {counts[method.label]:>6}")
    resources = study.resources
    concurrent = resources.max_concurrent or "as many as the resources allow"
    lines += [
        f"total: {len(plan.trials)} trials",
        f"each trial asks for: {describe_resources(resources)}; max concurrent: {concurrent}; "
        f"retries: {resources.max_failures}",
        f"output folder: {run_dir(plan, options.storage)}",
    ]
    if plan.smoke:
        lines.append("smoke: every trial shrunk to <= 4 steps, evaluation every 2 steps, batches <= 16")
    lines.append("dry run: nothing was started (drop --dry-run to run)")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; give the folder of study files with --dir DIR")
    files = sorted(folder.glob("*.toml"))
    if not files:
        print(f"no study files (*.toml) in {folder}")
        return 0
    from orchestrator.plan import count_trials
    from orchestrator.spec import load_study

    rows = [("FILE", "SETTING", "DATA", "TRIALS", "DESCRIPTION")]
    for path in files:
        try:
            study = load_study(path)
            row = (str(path), study.setting, study.dataset, str(count_trials(study)), study.description)
        except Exception as error:  # a broken file is listed, not fatal
            row = (str(path), "-", "-", "-", f"error: {one_line(error)}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    import os

    root = args.data_root or os.environ.get("ARML_DATA", "") or "./data"
    try:
        from trainables.data import status_table
    except ImportError:
        raise MissingComponentError("trainables.data.status_table is not available yet") from None
    print(status_table(root))
    return 0


def _delegate(module_name: str, args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise MissingComponentError(f"{module_name.replace('.', '/')}.py is not written yet") from None
    return _exit_code(module.main(args))


def one_line(error: BaseException) -> str:
    return re.sub(r"\s*\n\s*", " ", str(error)).strip() or type(error).__name__


def _is_usage_error(error: BaseException) -> bool:
    """UsageError, TrainablesError or UnknownNameError (looked up only if their modules are loaded)."""
    kinds: list[type] = [UsageError]
    if "trainables.errors" in sys.modules:
        kinds.append(sys.modules["trainables.errors"].TrainablesError)
    if "arml.registry" in sys.modules:
        kinds.append(sys.modules["arml.registry"].UnknownNameError)
    return isinstance(error, tuple(kinds))


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except UnicodeEncodeError:
        print(text.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arml` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a bad option (argparse printed why)
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "handler", None):
        return _usage(parser)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        _say("arml: interrupted")
        return 130
    except (MissingComponentError, RunFault) as error:
        _say(f"arml: error: {one_line(error)}")
        return 1
    except Exception as error:
        if not _is_usage_error(error):
            raise
        _say(f"arml: error: {one_line(error)}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
