"""Runs the README's "Running studies" commands in order, as written, and says which failed.

    make demo && .venv/bin/python docs/check_readme.py        # exit 0 when every command succeeded

`commands()` is also used by tests/docs/test_readme.py (slow; `make ci` runs it), which runs them after a smoke run
of the quickstart.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commands(readme: str | None = None) -> list[str]:
    """The `arml ...` lines of the first code block under "## Running studies", comments removed."""
    text = open(readme or os.path.join(ROOT, "README.md")).read()
    section = text.split("## Running studies", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    out = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line.startswith("arml "):
            out.append(line)
    return out


def run(line: str, arml: list[str], extra: list[str] = (), cwd: str = ROOT) -> subprocess.CompletedProcess:
    """One README line with `arml` replaced by the given command (and `extra` arguments appended)."""
    args = shlex.split(line)[1:]
    return subprocess.run([*arml, *args, *extra], cwd=cwd, capture_output=True, text=True, timeout=1800)


def main() -> int:
    arml = [os.path.join(ROOT, ".venv", "bin", "arml")]
    failed = 0
    for line in commands():
        result = run(line, arml)
        ok = result.returncode == 0
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {line}" + ("" if ok else f"\n     {result.stderr.strip()[-500:]}"))
    print(f"{len(commands()) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
