"""Credentials in a tracking URI: `take_credentials` moves them from the URI to MLflow's environment variables
and `redact` hides them in anything printed, whatever characters the password holds (`/`, `@`, `:`,
%-escapes, unicode)."""

from __future__ import annotations

import os

import pytest

from orchestrator.store import tracking
from orchestrator.store.tracking import Tracker, redact, resolve_uri, take_credentials

ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking, "SECRETS", set(), raising=False)


@pytest.mark.parametrize("uri, bare, user, password", [
    ("http://user:se/cret@127.0.0.1:1", "http://127.0.0.1:1", "user", "se/cret"),
    ("http://user:p@ss@host", "http://host", "user", "p@ss"),
    ("https://user:a:b:c@host:5000/mlflow/", "https://host:5000/mlflow/", "user", "a:b:c"),
    ("http://user:se%2Fcret@host", "http://host", "user", "se/cret"),
    ("http://us%40er:p%40ss%3A@host/path?x=1", "http://host/path?x=1", "us@er", "p@ss:"),
    ("http://jörg:pässwörd/ü@host:80/a/b", "http://host:80/a/b", "jörg", "pässwörd/ü"),
    ("https://tok3n@host:443/p", "https://host:443/p", "tok3n", None),
    ("http://user:pw@[::1]:5000", "http://[::1]:5000", "user", "pw"),
    ("HTTP://user:x/y@host", "HTTP://host", "user", "x/y"),
    ("http://alice:Tr0ub4dor#3@127.0.0.1:9", "http://127.0.0.1:9", "alice", "Tr0ub4dor#3"),
    ("http://alice:wh?at@host:5000/p?x=1#top", "http://host:5000/p?x=1#top", "alice", "wh?at"),
    ("http://alice:a#b?c/d@e@host", "http://host", "alice", "a#b?c/d@e"),
])
def test_credentials_leave_the_uri_for_the_environment(uri, bare, user, password):
    assert take_credentials(uri) == bare
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == user
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") == password
    assert take_credentials(bare) == bare                       # a second pass changes nothing


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:5000", "https://mlflow.example.com/path/to?q=a@b#frag", "http://host/x#me@there",
    "sqlite:////tmp/runs/a@b/mlflow.db", "sqlite:///runs/mlflow.db", "file:///tmp/user@x/mlruns", "/tmp/mlruns",
    "databricks", "postgresql://user:pw@db:5432/mlflow",
])
def test_uris_without_http_credentials_are_unchanged(uri):
    assert take_credentials(uri) == uri
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ


def test_credentials_already_in_the_environment_win(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "from-env")
    assert take_credentials("http://bob:other/pw@host") == "http://host"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "from-env"
    assert "other/pw" not in redact("failed: other/pw rejected")   # the URI's password stays hidden all the same


@pytest.mark.parametrize("password", ["se/cret", "p@ss", "a:b/c@d", "se%2Fcret", "p%40ss", "pässwörd", "x/y:z@w",
                                      "Tr0ub4dor#3", "wh?at", "a#b?c"])
def test_redact_hides_user_info_inside_a_longer_text(password):
    text = (f"MLflow logging failed (http://user:{password}@127.0.0.1:1/api: ConnectionError: refused); "
            f"try 'https://user:{password}@host:5000/x?y=1' again")
    out = redact(text)
    assert password not in out and "user" not in out
    assert "http://***@127.0.0.1:1/api: ConnectionError: refused" in out
    assert "'https://***@host:5000/x?y=1' again" in out


def test_redact_hides_the_password_wherever_it_appears(monkeypatch):
    assert take_credentials("http://bob:se%2Fcret@host") == "http://host"
    text = redact("HTTP 401 for bob with se/cret (sent as se%2Fcret)")
    assert "se/cret" not in text and "se%2Fcret" not in text and "bob" in text
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123/x")
    assert redact("Authorization: Bearer tok-123/x") == "Authorization: Bearer ***"


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:5000", "sqlite:////tmp/runs/a@b/mlflow.db", "file:///tmp/user@x/mlruns",
    "mail bob@example.com about http://host:1/health", "https://host/p?next=a@b", "no uri here: 3 @ 4",
])
def test_redact_leaves_texts_without_credentials_alone(text):
    assert redact(text) == text


def test_a_password_with_a_hash_is_never_printed_in_full(tmp_path, capsys):
    """As typed on a command line: the user-info is found before any '#' or '?' is read as a fragment or query."""
    uri = resolve_uri("http://alice:Tr0ub4dor#3@127.0.0.1:9", str(tmp_path))
    assert uri == "http://127.0.0.1:9" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "Tr0ub4dor#3"
    said: list[str] = []
    tracker = Tracker("http://alice:Tr0ub4dor#3@127.0.0.1:9", "s", str(tmp_path), [], say=said.append)
    shown = redact("study s (MLflow: http://alice:Tr0ub4dor#3@127.0.0.1:9)") + said[0] + tracker.error
    assert "Tr0ub4dor" not in shown and "#3" not in shown and "alice" not in shown


def test_the_study_header_and_the_failure_line_never_show_the_password(tmp_path):
    uri = resolve_uri("http://user:se/cret@127.0.0.1:1", str(tmp_path))
    assert uri == "http://127.0.0.1:1" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "se/cret"
    said: list[str] = []
    tracker = Tracker("http://user:se/cret@127.0.0.1:1", "s", str(tmp_path), [], say=said.append)
    assert not tracker.enabled and len(said) == 1 and "MLflow logging failed (http://127.0.0.1:1:" in said[0]
    assert "cret" not in redact(f"study s (MLflow: {uri})") + said[0] + tracker.error


def test_a_store_that_fails_mid_run_is_one_line_without_mlflows_tracebacks(tmp_path, capfd):
    """A storage folder gone read-only: MLflow and SQLAlchemy log the error with its traceback before raising;
    none of that reaches the terminal, the one line names the database's own error."""
    import logging
    import sqlite3

    said: list[str] = []
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "s", str(tmp_path), [], say=said.append)
    assert tracker.enabled

    def read_only(*args, **kwargs):
        try:
            try:
                raise sqlite3.OperationalError("attempt to write a readonly database")
            except sqlite3.OperationalError as inner:
                raise RuntimeError("(raised as a result of Query-invoked autoflush; ...)") from inner
        except RuntimeError:
            logging.getLogger("mlflow.store.db.utils").exception("SQLAlchemy database error. The following ...")
            logging.getLogger("sqlalchemy.pool").error("Exception during reset", exc_info=True)
            raise

    tracker.client.log_batch = read_only
    tracker.close("finished", metrics={"a": 1.0})
    captured = capfd.readouterr()
    assert not tracker.enabled and len(said) == 1
    assert "attempt to write a readonly database" in said[0]
    assert "Traceback" not in captured.err + captured.out and "SQLAlchemy" not in captured.err + captured.out


def test_a_writer_left_open_does_not_hang_the_driver_s_exit(tmp_path):
    """A launch that ends without closing MLflow's writer process (an error inside Tune) once left the driver
    waiting forever at exit: multiprocessing's exit handler SIGTERMs its daemonic children, and the writer ignores
    SIGTERM. The process now exits, the writer with it."""
    import subprocess
    import sys

    script = (f"from orchestrator.store.tracking import TrackerProcess\n"
              f"t = TrackerProcess('sqlite:///{tmp_path}/mlflow.db', 'left', {str(tmp_path)!r}, [])\n"
              f"t.starting('x')\n"
              f"import time; time.sleep(15)\n"   # the writer is up, its signal handlers set
              f"print(t._process.pid, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr[-2000:]
    writer = int(out.stdout.split()[0])
    assert not os.path.exists(f"/proc/{writer}") or open(f"/proc/{writer}/stat").read().split()[2] == "Z"

