"""benchmarks/gpu_throughput.py in its CPU mode (--tiny): the measurements run through `trainables.fit` and write
their results; the trace arithmetic, the shared-GPU worker and the estimates on known inputs."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_throughput as bench  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


def test_tiny_run_measures_every_kind_and_writes_its_files(tmp_path) -> None:
    out = tmp_path / "out"
    only = "ssl/uniform/bf16_cl,dg/arml_cheap/bf16_cl,mlc/uniform/bf16_cl_compile,alpha/dg,loader/mlc"
    summary = bench.main(["--tiny", "--out", str(out), "--budget", "300", "--data-root", str(tmp_path / "data"),
                          "--only", only])
    assert {p.name for p in out.iterdir()} == {"results.jsonl", "summary.json", "table.md", "log.txt"}
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in rows]
    assert "error" not in kinds, [r for r in rows if r["kind"] == "error"]
    train = {(r["setting"], r["method"], r["variant"]): r for r in rows if r["kind"] == "train"}
    assert set(train) == {("ssl", "uniform", "bf16_cl"), ("dg", "arml_cheap", "bf16_cl"),
                          ("mlc", "uniform", "bf16_cl_compile")}
    for r in train.values():
        assert r["steps_per_s"] > 0 and r["images_per_s"] == pytest.approx(r["steps_per_s"] * r["images_per_step"])
    assert train[("ssl", "uniform", "bf16_cl")]["images_per_step"] == 8          # 4 labeled + 4 unlabeled
    assert train[("dg", "arml_cheap", "bf16_cl")]["images_per_step"] == 16       # target + 3 source domains
    assert train[("mlc", "uniform", "bf16_cl_compile")]["compile"] is True
    alpha = next(r for r in rows if r["kind"] == "alpha_error")
    assert alpha["K"] == 3 and alpha["worst_relative_error"]["fp32_exact_tf32"] == 0.0   # no TF32 on a CPU
    assert alpha["worst_relative_error"]["fp32_closure_tf32"] < 2e-2              # the central difference
    assert alpha["worst_relative_error"]["fp32_jvp_strict"] < 1e-4                # forward mode: exact
    loader = next(r for r in rows if r["kind"] == "loader")
    assert loader["loader_images_per_s"] > 0
    assert summary["device"]["name"] == "CPU" and summary["skipped"] == []
    assert summary["estimates"]["runs_hours"]["ssl/uniform"] > 0
    assert "| ssl | uniform | bf16_cl |" in (out / "table.md").read_text()


def test_busy_time_is_the_union_of_device_intervals(tmp_path) -> None:
    trace = {"traceEvents": [
        {"ph": "X", "cat": "kernel", "ts": 0, "dur": 10},
        {"ph": "X", "cat": "kernel", "ts": 5, "dur": 10},         # overlaps the first: counted once
        {"ph": "X", "cat": "gpu_memcpy", "ts": 30, "dur": 5},
        {"ph": "X", "cat": "cpu_op", "ts": 0, "dur": 100},        # host time: not the device's
        {"ph": "X", "cat": "kernel", "ts": 31, "dur": 2},         # inside the copy
    ]}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    busy = bench._busy_from_trace(str(path))
    assert busy["union_us"] == 20 and busy["sum_us"] == 27 and busy["count"] == 4


def test_worker_counts_steps_after_its_start_time(tmp_path) -> None:
    bench.write_data(str(tmp_path), tiny=True)
    config = bench.setting_configs(str(tmp_path), torch.device("cpu"), tiny=True)["ssl"]
    result = bench.worker({"config": config.replace(eval_every=2, steps=50).to_dict(), "start_at": time.time(),
                           "duration": 0.2})
    assert result["steps"] >= 2 and result["steps"] % 2 == 0 and result["steps_per_s"] > 0 and not result["late"]


def test_estimates_and_goals_from_known_rates() -> None:
    rows = [
        {"kind": "train", "setting": "ssl", "method": "uniform", "variant": "bf16_cl", "steps_per_s": 20.0,
         "images_per_s": 10240.0, "gpu_busy_pct": 90.0, "warmup_s": 5.0},
        {"kind": "train", "setting": "ssl", "method": "arml", "variant": "bf16_cl", "steps_per_s": 10.0},
        {"kind": "train", "setting": "ssl", "method": "arml_cheap", "variant": "bf16_cl", "steps_per_s": 16.0},
        {"kind": "train", "setting": "ssl", "method": "uniform", "variant": "bf16_cl_compile", "steps_per_s": 25.0,
         "warmup_s": 45.0},
        {"kind": "train", "setting": "dg", "method": "uniform", "variant": "bf16_cl", "steps_per_s": 30.0},
        {"kind": "train", "setting": "dg", "method": "uniform", "variant": "fp32", "steps_per_s": 15.0},
    ]
    shared = {"speedup": 1.5}
    estimates = bench.paper_estimates(rows, shared)
    assert estimates["runs_hours"]["ssl/uniform"] == pytest.approx(200_000 / 20 / 3600)
    assert estimates["runs_hours"]["ssl/arml"] == pytest.approx(200_000 / 10 / 3600)
    study = estimates["table1_study"]
    # 3 ARML trials at 10 steps/s, the other 90 at Uniform's 20 (those not measured are listed)
    assert study["trials"] == 93
    assert study["gpu_hours_one_at_a_time"] == pytest.approx((90 / 20 + 3 / 10) * 200_000 / 3600)
    assert study["hours_four_per_gpu"] == pytest.approx(study["gpu_hours_one_at_a_time"] / 1.5)
    assert set(study["methods_assumed_at_uniform_speed"]) == {"adaloss", "gradnorm", "cosinesim", "olaux"}
    goals = bench.goals(rows, shared)
    assert goals["busy_ge_85/ssl"]["met"] and goals["arml_le_2.5x/ssl"] == {"ratio": 2.0, "met": True}
    cheap = goals["arml_cheap_le_1.2x/ssl"]
    assert cheap["ratio"] == pytest.approx(1.25) and not cheap["met"]
    assert goals["bf16_ge_1.5x/resnet18_224"] == {"speedup": 2.0, "met": True}
    assert goals["shared_ge_2x/wrn28_2"] == {"speedup": 1.5, "met": False}
    ratios = bench.derived(rows)
    assert ratios["ssl"]["compile_speedup"] == pytest.approx(1.25) and ratios["ssl"]["compile_seconds"] == 40.0
    assert ratios["dg"]["bf16_cl_over_fp32"] == 2.0
