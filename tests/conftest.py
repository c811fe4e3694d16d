"""Shared by every test: the helper modules of tests/helpers importable by name (studyfiles, fakedata, tiny_nets),
one local Ray (2 CPUs, no dashboard) started once for the tests that run studies in this process, and
`one_thread` for the modules that train tiny models."""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers"))


@pytest.fixture(scope="session")
def _ray_for_the_session():
    yield
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


@pytest.fixture
def local_ray(_ray_for_the_session):
    """The shared local Ray, started by the first test that asks for it and kept for the next ones (a test that
    shuts it down, or starts another, leaves the next one to start it again); shut down at the session's end."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        from local_ray import start_ray

        start_ray()
    return ray


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster than two fighting over a shared machine's CPUs (a module asks
    for it with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
