"""The code paths that make training fast on a GPU, checked on the CPU: device selection, the channels_last and
compile switches, the ARML closure's precision under a bfloat16 step, no host-device waits in a training
step, and the decoded-image cache of file-based streams (bit for bit the images the loader gives)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

import arml
import trainables.loop as loop
from trainables.config import TrainConfig, resolve_config
from trainables.data.base import FileImageSet
from trainables.data.registry import ImageFileLoader
from trainables.distributed import pick_device
from trainables.errors import ConfigError
from trainables.streams import BatchStream

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (tests/conftest.py)


# --- device selection and the switches ---------------------------------------------------------------------


def test_auto_device_is_this_workers_gpu_or_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == torch.device("cuda:1")
    assert pick_device("cpu") == CPU and pick_device("cuda:0") == torch.device("cuda:0")


def test_switches_default_off_and_are_type_checked() -> None:
    config = TrainConfig()
    assert config.channels_last is False and config.compile is False
    assert resolve_config("digits_ssl", channels_last=True, compile=True).to_dict()["channels_last"] is True
    for key in ("channels_last", "compile"):
        with pytest.raises(ConfigError, match=f"{key} must be true or false"):
            TrainConfig.from_dict({key: 1})


def test_channels_last_trains_the_same_model_in_nhwc() -> None:
    config = resolve_config("digits_ssl", steps=4, eval_every=4, device="cpu", batch_size=8, aux_batch_size=16)
    built = loop.build(config.replace(channels_last=True), CPU)
    convs = [m.weight for m in built.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    losses, _, _ = loop.step_batches(built, 1)
    assert losses.__closure__ is not None
    batch = next(c.cell_contents for c in losses.__closure__ if isinstance(c.cell_contents, torch.Tensor))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    plain, nhwc = loop.fit(config), loop.fit(config.replace(channels_last=True))
    assert plain["main_loss"] == pytest.approx(nhwc["main_loss"], rel=1e-4)
    for key in plain:
        if key.startswith(("aux_loss/", "weight/")):
            assert plain[key] == pytest.approx(nhwc[key], rel=1e-4, abs=1e-6)


def test_compile_compiles_the_backbone_in_place(monkeypatch) -> None:
    monkeypatch.setattr(loop, "COMPILE_OPTIONS", {"backend": "eager"})   # the path, not a C++ compiler's minutes
    config = resolve_config("digits_mlc", steps=3, eval_every=3, device="cpu", compile=True)
    built = loop.build(config, CPU)
    assert built.model.backbone._compiled_call_impl is not None
    plain = loop.build(config.replace(compile=False), CPU)
    assert plain.model.backbone._compiled_call_impl is None
    assert built.model.state_dict().keys() == plain.model.state_dict().keys()   # checkpoints interchangeable
    metrics = loop.fit(config)
    assert metrics["step"] == 3 and np.isfinite(metrics["main_loss"])


# --- the closure under a bfloat16 step ---------------------------------------------------------------------


def alpha_error(preset: str, closure_autocast: bool, directional: str | None = None) -> float:
    """ARML's alpha gradient with the step in bfloat16 (CPU autocast) and the loop's closure, against the exact
    float32 double backward; relative error."""
    torch.manual_seed(0)
    config = resolve_config(preset, device="cpu", weighting="arml")
    built = loop.build(config, CPU)
    losses, _, _ = loop.step_batches(built, 1)
    k = built.weighting.num_aux

    def alpha(bf16: bool, closure) -> torch.Tensor:
        for p in built.model.parameters():
            p.grad = None
        main, aux = loop._autocast(losses, CPU, bf16)()
        weighting = arml.ARML(num_aux=k, directional=directional if closure is not None else None)
        return weighting.alpha_gradient(main, aux, built.shared, closure, 1.0)

    reference = alpha(False, None)
    chosen = loop._autocast(losses, CPU, True) if closure_autocast else loop.closure_losses(losses, CPU, True)
    got = alpha(True, arml.stateless(chosen, built.model))
    return float((got - reference).norm() / reference.norm())


@pytest.mark.parametrize("preset", ["digits_ssl", "digits_mlc", "digits_dg"])
def test_closure_alpha_gradient_under_a_bf16_step_is_within_the_tested_error(preset: str) -> None:
    # 2e-2: what tests/arml/test_core.py allows a float32 closure against the float64 truth (forward mode here)
    assert alpha_error(preset, closure_autocast=False) < 2e-2


def test_a_bf16_closure_would_not_be_for_the_central_difference() -> None:
    """Why the closure stays in float32 for the central difference: moving the parameters by 3e-5 of their norm
    is below bfloat16's resolution (docs/performance.md has the GPU figures; for forward mode, the default, the
    choice of float32 comes from the paper models' figures there)."""
    assert alpha_error("digits_ssl", closure_autocast=True, directional="central") > 2e-2


def test_autocast_wraps_only_when_asked() -> None:
    def losses():
        x = torch.ones(4, 4)
        return (x @ x).sum(), (x @ x).sum(0)

    assert loop._autocast(losses, CPU, False) is losses
    main, aux = loop._autocast(losses, CPU, True)()
    assert main.dtype == torch.bfloat16 and aux.dtype == torch.bfloat16
    assert loop.closure_losses(losses, CPU, True)()[0].dtype == torch.float32


# --- no host-device waits in a training step ---------------------------------------------------------------

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "nonzero")


@pytest.mark.parametrize("preset,weighting", [("digits_ssl", "uniform"), ("digits_mlc", "arml"),
                                              ("digits_dg", "uniform")])
def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch, preset: str, weighting: str) -> None:
    """Every call that would make the host wait for a GPU (a tensor's value read into Python, a copy to the
    CPU, boolean indexing) made from trainables/ during training steps is counted: none until the first
    evaluation (where reading the running losses is the point). The weighting methods (arml/) are not
    counted here: benchmarks/gpu_throughput.py lists every wait on a real GPU."""
    calls: list[str] = []
    state = {"training": False}       # from the first step's batches to the first evaluation
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __original=original, __name=name, **kwargs):
            caller = sys._getframe(1)
            if state["training"] and "/trainables/" in caller.f_code.co_filename:
                calls.append(f"{caller.f_code.co_filename.split('/trainables/')[1]}:{caller.f_lineno} {__name}")
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    evaluate, step_batches = loop._evaluate, loop.step_batches

    def evaluating(*args):
        state["training"] = False
        return evaluate(*args)

    def stepping(*args):
        if "started" not in state:
            state["training"] = state["started"] = True
        return step_batches(*args)

    monkeypatch.setattr(loop, "_evaluate", evaluating)
    monkeypatch.setattr(loop, "step_batches", stepping)
    config = resolve_config(preset, steps=6, eval_every=6, device="cpu", weighting=weighting, batch_size=8,
                            aux_batch_size=16)
    loop.fit(config)
    assert calls == []
    state["training"] = True   # the counter sees what it should: reading a loss in trainables/ is counted
    exec(compile("torch.ones(1).item()", "/x/trainables/probe.py", "exec"), {"torch": torch})
    assert calls == ["probe.py:1 item"]


# --- the decoded-image cache of file-based streams -----------------------------------------------------------


def write_jpegs(folder, n: int = 13, size: int = 10) -> tuple[list[str], torch.Tensor]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size + 3, size + 5, 3), dtype=np.uint8)).save(path, quality=80)
        paths.append(str(path))
    return paths, torch.arange(n)


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("start,rank,world", [(0, 0, 1), (5, 0, 1), (2, 1, 2)])
def test_cached_stream_gives_the_loaders_images_bit_for_bit(tmp_path, num_workers, start, rank, world) -> None:
    paths, targets = write_jpegs(tmp_path)
    files = FileImageSet(paths, targets, ImageFileLoader(8, crop=9))
    plain = BatchStream(files, 4, seed=3, device=CPU, start=start, rank=rank, world=world)
    cached = BatchStream(files, 4, seed=3, device=CPU, num_workers=num_workers, start=start, rank=rank,
                         world=world, cache=True)
    switched = None
    for i in range(30):                                 # several passes over the 13 files
        (xa, ya), (xb, yb) = plain.next(), cached.next()
        assert torch.equal(ya, yb) and torch.equal(xa, xb) and xb.dtype == torch.float32
        if cached.cached and switched is None:
            switched = i
    assert switched is not None and not plain.cached    # the cache took over once every image was seen
    assert cached.given == plain.given == start + 30


def test_only_exact_loaders_are_cached(tmp_path) -> None:
    paths, targets = write_jpegs(tmp_path, n=5)
    odd = FileImageSet(paths, targets, lambda path: torch.rand(3, 4, 4))   # pixels need not be k / 255
    stream = BatchStream(odd, 5, seed=0, device=CPU, cache=True)
    for _ in range(3):
        stream.next()
    assert not stream.cached


def test_settings_cache_only_on_a_gpu() -> None:
    import trainables.settings as settings

    config = resolve_config("digits_dg", device="cpu")
    built = loop.build(config, CPU)
    assert all(not s.cached for s in built.setting.streams.values())
    assert 0 < settings.CACHE_FRACTION < 1
