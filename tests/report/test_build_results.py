"""docs/build_results.py: the wall time it quotes for a study counts only the time trials were training."""

import importlib.util
import json
import os

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
