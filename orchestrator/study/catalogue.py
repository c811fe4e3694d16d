"""Where study files are: the shipped `studies/` next to the package (found from any working folder), and
`./studies` when there is one; a study given by name; `--set SECTION.KEY=VALUE` overrides as a nested dict.
Imports nothing heavy (the CLI's completion uses it)."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.study.overrides import nest

SHIPPED = Path(__file__).resolve().parents[2] / "studies"


def study_folders() -> list[Path]:
    """./studies (when present) then the shipped studies/, each once."""
    folders = [Path("studies"), SHIPPED]
    seen, out = set(), []
    for folder in folders:
        if folder.is_dir() and folder.resolve() not in seen:
            seen.add(folder.resolve())
            out.append(folder)
    return out


def study_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml"))


def find_study(name_or_path: str | Path) -> Path:
    """A path that exists as given; else a study name (`quickstart` or `quickstart.toml`) looked up in
    ./studies and the shipped studies/; else the path as given (load_study then says what is wrong)."""
    path = Path(name_or_path)
    if path.exists() or len(path.parts) > 1:
        return path
    stem = path.name.removesuffix(".toml")
    for folder in study_folders():
        candidate = folder / f"{stem}.toml"
        if candidate.is_file():
            return candidate
    return path


def parse_value(text: str) -> Any:
    """A TOML value (`100`, `[20, 60]`, `0.5`, `true`, `"x"`); a bare word that is not one is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if text and all(c.isalnum() or c in "_-./" for c in text):
            return text
        raise UsageError(f"--set {text!r}: not a TOML value; write strings in quotes, lists as [1, 2]") from None


def overrides_from(settings: Iterable[str]) -> dict[str, Any]:
    """`--set SECTION.KEY=VALUE` options as a nested dict for `load_study(path, overrides)`."""
    flat = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or "." not in key.strip():
            raise UsageError(f"--set {setting!r}: write SECTION.KEY=VALUE, e.g. --set train.steps=100")
        flat[key.strip()] = parse_value(value.strip())
    return nest(flat)


def _shown(path: Path) -> str:
    """A path relative to the working folder when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def list_entries(files: Iterable[Path], cache: Path | None = None) -> list[dict[str, Any]]:
    """What `arml list` shows of each study file; a broken file gets its error instead of failing the list.
    Every file is validated in full; the result is kept in `cache` (default: LIST_CACHE) under the file's
    content and the code's fingerprint, so the next `arml list` answers without importing torch."""
    cache = LIST_CACHE if cache is None else cache
    code = _code_fingerprint()
    known = _read_cache(cache)
    entries, changed = [], False
    for path in files:
        entry: dict[str, Any] = {"file": _shown(path), "name": path.stem}
        try:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            content = ""
        key = str(path.resolve())
        hit = known.get(key)
        if content and hit and hit.get("content") == content and hit.get("code") == code:
            entry.update(hit["entry"])
        else:
            entry.update(_validated(path))
            known[key] = {"content": content, "code": code, "entry": {k: v for k, v in entry.items()
                                                                      if k not in ("file", "name")}}
            changed = True
        entries.append(entry)
    if changed:
        _write_cache(cache, known)
    return entries


def _validated(path: Path) -> dict[str, Any]:
    from orchestrator.study.plan import count_trials
    from orchestrator.study.spec import load_study

    try:
        study = load_study(path)
        return dict(study=study.name, setting=study.setting, dataset=study.dataset, trials=count_trials(study),
                    description=study.description, error=None)
    except Exception as error:  # noqa: BLE001 - a broken file is listed, not fatal
        message = " ".join(str(error).split()) or type(error).__name__
        return dict(study=None, setting=None, dataset=None, trials=None, description=None, error=message)


LIST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arml" / "list-cache.json"
PACKAGES = ("arml", "trainables", "orchestrator")
PLUGIN_GROUPS = ("arml.weightings", "trainables.datasets")


def _code_fingerprint() -> str:
    """What a study's validation depends on besides the file: every source file of the three packages (path,
    size, modification time) and the plug-ins installed in the two entry-point groups."""
    from importlib import metadata

    top = Path(__file__).resolve().parents[2]
    parts = []
    for package in PACKAGES:
        for source in sorted((top / package).rglob("*.py")):
            info = source.stat()
            parts.append(f"{source.relative_to(top)}:{info.st_size}:{info.st_mtime_ns}")
    for group in PLUGIN_GROUPS:
        parts += sorted(f"{group}:{e.name}={e.value}" for e in metadata.entry_points(group=group))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, known: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written only makes the next listing slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, path)
    except OSError:
        pass


def list_text(entries: list[dict[str, Any]]) -> str:
    """The entries as aligned columns: FILE, SETTING, DATA, TRIALS, DESCRIPTION."""
    rows = [("FILE", "SETTING", "DATA", "TRIALS", "DESCRIPTION")]
    for e in entries:
        rows.append((e["file"], "-", "-", "-", f"error: {e['error']}") if e["error"] else
                    (e["file"], e["setting"], e["dataset"], str(e["trials"]), e["description"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows)
