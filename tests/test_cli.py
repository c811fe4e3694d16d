"""The `arml` command, in-process (`main([...])`) and as the installed console script."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from studyfiles import BASE, changed, write

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "studies" / "quickstart.toml"
ARML = Path(sys.executable).parent / "arml"




def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for piece in ("auxiliary-task weighting", "run STUDY.toml", "list", "data check", "status RUN_DIR",
                  "report RUN_DIR", "arml run studies/quickstart.toml --dry-run"):
        assert piece in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("arml 0.1")


@pytest.mark.parametrize("command", [["run"], ["list"], ["data"], ["data", "check"], ["status"], ["report"],
                                     ["submit"], ["logs"], ["stop"]])
def test_every_command_has_help_with_an_example(command: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example" in out and "arml " + command[0] in out


def test_run_dry_run_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(QUICKSTART), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "total: 40 trials" in out and "3 auxiliary tasks: is_0, is_6, random_0" in out
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith("  ")}
    assert (lines["uniform"], lines["arml"], lines["grid"]) == ("4", "4", "32")
    assert "grid (2^3 = 8 points)" in out and "1 CPU, 0 GPUs, 1 worker" in out
    assert "output folder: runs/quickstart" in out and "nothing was started" in out
    assert main(["run", str(QUICKSTART), "--dry-run", "--smoke", "--storage", "/shared/runs"]) == 0
    out = capsys.readouterr().out
    assert "output folder: /shared/runs/quickstart" in out and "smoke:" in out and "total: 40 trials" in out


def test_run_hands_plan_and_options_to_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake_module(monkeypatch, "orchestrator.api",
                run_plan=lambda plan, options: calls.append((plan, options)))
    argv = ["run", str(QUICKSTART), "--smoke", "--resume", "--address", "auto", "--storage", "s3://b/runs",
            "--mlflow-uri", "http://mlflow:5000", "--data-root", "/data"]
    assert main(argv) == 0
    (plan, options), = calls
    assert len(plan) == 40 and plan.smoke and plan.trials[0].config.steps == 4
    assert plan.trials[0].config.data_root == "/data"
    assert (options.address, options.storage, options.mlflow_uri, options.resume,
            options.data_root) == ("auto", "s3://b/runs", "http://mlflow:5000", True, "/data")
    fake_module(monkeypatch, "orchestrator.api", run_plan=lambda plan, options: 3)
    assert main(["run", str(QUICKSTART)]) == 3


def test_run_interrupted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(plan: object, options: object) -> None:
        raise KeyboardInterrupt

    fake_module(monkeypatch, "orchestrator.api", run_plan=interrupted)
    assert main(["run", str(QUICKSTART)]) == 130
    assert capsys.readouterr().err == "arml: interrupted\n"


@pytest.mark.parametrize(("doc_or_text", "piece"), [
    (changed("methods.arml.lr", "fast"), '[methods.arml] lr must be a number, got "fast"'),
    ('[study]\nname = "x\n', "TOML syntax error"),
    (changed("study.max_trials", 10), "run with --allow-large"),
])
def test_bad_study_is_one_line_exit_2(tmp_path: Path, doc_or_text: dict | str, piece: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    if isinstance(doc_or_text, str):
        path = tmp_path / "x.toml"
        path.write_text(doc_or_text)
    else:
        path = write(tmp_path, doc_or_text)
    assert main(["run", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"arml: error: {path}:")
    assert captured.err.count("\n") == 1 and piece in captured.err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "no such study file" in capsys.readouterr().err


def test_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, BASE, "a.toml")
    (tmp_path / "b.toml").write_text("[study\n")
    write(tmp_path, changed("methods.bogus", {}), "c.toml")
    assert main(["list", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FILE", "SETTING", "DATA", "TRIALS", "DESCRIPTION"]
    assert lines[1].split()[1:] == ["mlc", "digits", "48", "a", "test", "study"]
    assert "error:" in lines[2] and "TOML syntax error" in lines[2]
    assert "error:" in lines[3] and '"bogus" is not a weighting name' in lines[3]
    assert main(["list", "--dir", str(ROOT / "studies")]) == 0
    assert "quickstart.toml" in capsys.readouterr().out
    assert main(["list", "--dir", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_data_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import trainables.data

    monkeypatch.setattr(trainables.data, "status_table", lambda root: f"table of {root}", raising=False)
    assert main(["data", "check", "--data-root", "/d"]) == 0
    assert capsys.readouterr().out == "table of /d\n"
    monkeypatch.setenv("ARML_DATA", "/env")
    assert main(["data", "check"]) == 0 and capsys.readouterr().out == "table of /env\n"
    assert main(["data"]) == 2  # no data command: its help on stderr


def test_status_and_report_of_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["status", str(tmp_path)], ["report", str(tmp_path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a study's run folder (no plan.json)" in err, command


def test_report_help_covers_the_k_scaling_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "what each search needs to match ARML (per K when the study sweeps aux_count)" in out
    assert "--log-mlflow" in out and "regime map" in out


def test_user_errors_from_trainables_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from trainables.errors import DataNotFoundError

    def missing(plan: object, options: object) -> None:
        raise DataNotFoundError("digits: no data at /x")

    fake_module(monkeypatch, "orchestrator.api", run_plan=missing)
    assert main(["run", str(QUICKSTART)]) == 2
    assert capsys.readouterr().err == "arml: error: digits: no data at /x\n"
    assert main(["run", "--bogus-option", str(QUICKSTART)]) == 2  # argparse's own message


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(ARML), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.mark.skipif(not ARML.exists(), reason="console script not installed (pip install -e .)")
def test_console_script(tmp_path: Path) -> None:
    """The installed `arml`; the quickstart's dry run uses the real arml.WEIGHTINGS and trainables.data
    (no stand-ins in a subprocess), so it is checked only once they exist."""
    arml = pytest.importorskip("arml")
    real = hasattr(arml, "WEIGHTINGS") and hasattr(pytest.importorskip("trainables.data"), "aux_names")
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\npreset = "nope"\n[methods.uniform]\n')
    slow = [cli("run", str(bad), "--dry-run")]  # started together: each spends seconds importing torch
    if real:
        slow.append(cli("run", "studies/quickstart.toml", "--dry-run"))
    code, out, _ = finish(cli("--help"))
    assert code == 0 and "commands:" in out
    code, out, _ = finish(cli("--version"))
    assert code == 0 and out.startswith("arml ")
    code, _, err = finish(slow[0])
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f'arml: error: {bad}: [study] preset "nope" is unknown')
    if real:
        code, out, err = finish(slow[1])
        assert code == 0, err
        assert "total: 40 trials" in out and "output folder: runs/quickstart" in out


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys; from orchestrator.cli import main; main(['--help']); "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'trainables', 'arml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.stdout.splitlines()[-1] == "[]"


def test_run_passes_until_decided_and_max_seeds(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    calls = []
    fake_module(monkeypatch, "orchestrator.api", run_plan=lambda plan, options: calls.append(options))
    assert main(["run", str(QUICKSTART), "--until-decided", "--max-seeds", "6"]) == 0
    assert (calls[0].until_decided, calls[0].max_seeds) == (True, 6)
    assert main(["run", str(QUICKSTART)]) == 0 and (calls[1].until_decided, calls[1].max_seeds) == (False, None)
    assert main(["run", str(QUICKSTART), "--max-seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-seeds" in err and "arml run --help" in err


def test_set_overrides_values_of_the_study_file(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    calls = []
    fake_module(monkeypatch, "orchestrator.api", run_plan=lambda plan, options: calls.append(plan))
    argv = ["run", str(QUICKSTART), "--set", "train.steps=100", "--set", "budget.labels=[20]",
            "--set", "study.seeds=[3]"]
    assert main(argv) == 0
    plan = calls[0]
    assert len(plan) == 10 and {t.config.steps for t in plan.trials} == {100}
    assert {t.budget for t in plan.trials} == {20} and {t.seed for t in plan.trials} == {3}
    for bad, piece in ((["--set", "train.steps"], "SECTION.KEY=VALUE"), (["--set", "steps=3"], "SECTION.KEY"),
                       (["--set", "train.stepz=3"], "unknown key stepz"),
                       (["--set", "train.steps=fast"], "steps must be"), (["--set", "train.lr=[1,"], "TOML value")):
        assert main(["run", str(QUICKSTART), "--dry-run", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("arml: error:") and err.count("\n") == 1 and piece in err, err


def test_shipped_studies_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert str(QUICKSTART) in out and "paper_table1_cifar10.toml" in out
    assert main(["run", "quickstart", "--dry-run"]) == 0 and "total: 40 trials" in capsys.readouterr().out
    assert main(["run", "quickstart.toml", "--dry-run"]) == 0 and "total: 40 trials" in capsys.readouterr().out
    (tmp_path / "studies").mkdir()
    write(tmp_path / "studies", BASE, "mine.toml")   # ./studies is listed first, then the shipped ones
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("studies/mine.toml") and any("quickstart.toml" in line for line in lines)
    assert main(["run", "nope", "--dry-run"]) == 2 and "no such study file" in capsys.readouterr().err


def test_json_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write(tmp_path, BASE, "a.toml")
    (tmp_path / "b.toml").write_text("[study\n")
    assert main(["list", "--dir", str(tmp_path), "--json"]) == 0
    a, b = json.loads(capsys.readouterr().out)
    assert (a["name"], a["setting"], a["trials"], a["error"]) == ("a", "mlc", 48, None)
    assert b["trials"] is None and "TOML syntax error" in b["error"]
    assert main(["run", str(QUICKSTART), "--dry-run", "--json", "--storage", str(tmp_path / "runs")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["total_trials"] == 40 and [m["trials"] for m in plan["methods"]] == [4, 4, 32]
    assert plan["aux_tasks"] == ["is_0", "is_6", "random_0"] and plan["holds_run"] is False
    assert main(["run", str(QUICKSTART), "--json"]) == 2 and "--dry-run" in capsys.readouterr().err


def test_dry_run_says_when_the_folder_holds_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "quickstart" / "plan.json").write_text("{}")
    assert main(["run", str(QUICKSTART), "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "already holds a run" in out and "--resume" in out
    assert main(["run", str(QUICKSTART), "--dry-run", "--storage", str(tmp_path), "--resume"]) == 0
    assert "--resume runs its unfinished trials" in capsys.readouterr().out


def test_shell_completion(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("_ARML_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "arml run quick")
    monkeypatch.setenv("COMP_CWORD", "2")
    with pytest.raises(SystemExit):
        main([])
    assert "quickstart" in capsys.readouterr().out
    monkeypatch.setenv("COMP_WORDS", "arml sta")
    monkeypatch.setenv("COMP_CWORD", "1")
    with pytest.raises(SystemExit):
        main([])
    assert "status" in capsys.readouterr().out


def test_list_is_answered_from_its_cache_without_torch(tmp_path: Path) -> None:
    """The second `arml list` of unchanged files validates nothing again (no torch import: under a second)."""
    write(tmp_path, BASE, "a.toml")
    code = ("import sys; from orchestrator.cli import main; main(['list', '--dir', sys.argv[1]]); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                           cwd=ROOT) for _ in range(2)]
    assert [r.stdout.splitlines()[-1] for r in runs] == ["torch imported", "no torch"]
    assert runs[0].stdout.splitlines()[:-1] == runs[1].stdout.splitlines()[:-1]
    (tmp_path / "a.toml").write_text((tmp_path / "a.toml").read_text() + "\n# changed\n")
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                           cwd=ROOT)
    assert again.stdout.splitlines()[-1] == "torch imported"      # a changed file is validated again
