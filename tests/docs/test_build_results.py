"""docs/build_results.py: the wall time it quotes for a study counts only the time trials were training, and
one section rebuilt alone (`--only`) replaces its old text or goes where the full build would put it."""

import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location(
    "build_results", os.path.join(HERE, "..", "..", "docs", "build_results.py"))
build_results = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(build_results)


def _records(tmp_path, spans):
    folder = tmp_path / "study"
    folder.mkdir()
    with open(folder / "records.jsonl", "w") as f:
        for start, end in spans:
            f.write(json.dumps({"recorded_at": end, "time_total_s": end - start}) + "\n")
    return str(tmp_path)


def test_span_is_the_union_of_trial_spans(tmp_path):
    # two overlapping trials (100-160), then a pause of 900 s (interrupted, resumed), then one trial of 30 s
    runs = _records(tmp_path, [(100, 150), (120, 160), (130, 140), (1060, 1090)])
    assert build_results.span_s(runs, "study") == 90


def test_span_of_back_to_back_trials(tmp_path):
    runs = _records(tmp_path, [(0, 10), (10, 25), (5, 12)])
    assert build_results.span_s(runs, "study") == 25


RESULTS = """# Results

## Where auxiliary weighting pays

regimes text

## When one ARML run matches grid search

intro

### digits_mlc_grid_vs_arml

mlc old

### Verdict

old verdict
"""


def _results(tmp_path, monkeypatch, text=RESULTS):
    monkeypatch.setattr(build_results, "HERE", str(tmp_path))
    (tmp_path / "results.md").write_text(text)
    return lambda: (tmp_path / "results.md").read_text()


def test_a_study_section_goes_in_before_the_next_study_of_its_section(tmp_path, monkeypatch):
    read = _results(tmp_path, monkeypatch)
    build_results.replace_section("digits_ssl_grid_vs_arml", ["### digits_ssl_grid_vs_arml", "", "ssl new"],
                                  "digits_mlc_grid_vs_arml", level=3, within=build_results.GRID_TITLE)
    text = read()
    assert text.index("ssl new") < text.index("### digits_mlc_grid_vs_arml") < text.index("old verdict")
    assert text.count("### digits_ssl_grid_vs_arml") == 1 and "mlc old" in text


def test_a_study_section_is_replaced_up_to_the_next_heading_of_its_level(tmp_path, monkeypatch):
    read = _results(tmp_path, monkeypatch)
    build_results.replace_section("digits_mlc_grid_vs_arml", ["### digits_mlc_grid_vs_arml", "", "mlc new"],
                                  "Verdict", level=3, within=build_results.GRID_TITLE)
    text = read()
    assert "mlc old" not in text and "mlc new" in text
    assert text.index("mlc new") < text.index("### Verdict\n\nold verdict")     # the next ### heading kept
    assert text.index("## Where auxiliary weighting pays\n\nregimes text") < text.index("mlc new")


def test_the_last_section_of_a_section_is_replaced_up_to_the_next_section(tmp_path, monkeypatch):
    read = _results(tmp_path, monkeypatch, RESULTS + "\n## Later\n\nkept\n")
    build_results.replace_section("Verdict", ["### Verdict", "", "new verdict"], "", level=3,
                                  within=build_results.GRID_TITLE)
    text = read()
    assert "old verdict" not in text and text.index("new verdict") < text.index("## Later\n\nkept")


def test_a_missing_section_without_a_place_for_it_is_one_message(tmp_path, monkeypatch):
    _results(tmp_path, monkeypatch, "# Results\n")
    with pytest.raises(SystemExit, match="no '## When one ARML run matches grid search' section"):
        build_results.replace_section("x", ["### x"], "y", level=3, within=build_results.GRID_TITLE)


def _waves_run(tmp_path, pending: dict[int, int]):
    """A run folder of two methods over seeds 0-5 (0-2 planned, 3-5 added by one wave); `pending[seed]` of a
    seed's two trials not run."""
    import sys

    sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
    from runfolders import write_run

    folder = write_run(tmp_path / "study", {"uniform": [0.7] * 6, "arml": [0.8] * 6})
    states = json.loads((folder / "trials.json").read_text())
    for seed, n in pending.items():
        for tid in [t for t in sorted(states) if t.endswith(f"s{seed:02d}")][:n]:
            states[tid] = {"status": "pending", "failures": 0}
    (folder / "trials.json").write_text(json.dumps(states))
    (folder / "waves.json").write_text(json.dumps([{"name": "seeds", "trials": []},
                                                   {"name": "wave1", "seeds": [3, 4, 5], "trials": []}]))
    return str(tmp_path)


def test_the_seeds_line_says_what_a_stopped_wave_ran(tmp_path):
    whole = _waves_run(tmp_path / "a", {})
    assert build_results.waves_of(whole, "study") == "; seeds 0-2 planned, 3-5 added while a comparison was not decided"
    stopped = _waves_run(tmp_path / "b", {4: 1, 5: 2})     # seed 4 begun, seed 5 not
    assert build_results.waves_of(stopped, "study") == (
        "; seeds 0-2 planned, 3 added while a comparison was not decided; the run was stopped with seeds 4-5 of that "
        "wave not finished (4 begun: the searches' and populations' trials of a seed not finished are left out)")
