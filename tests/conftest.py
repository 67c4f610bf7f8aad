"""Shared test setup: one torch thread per process, float64 helpers, device parametrisation."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


def _devices():
    names = ["cpu"]
    if torch.cuda.is_available(): names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available(): names.append("mps")
    return names


DEVICES = _devices()


@pytest.fixture(params=DEVICES)
def device(request):
    "Every device present on this machine; tests using it run once per device."
    return torch.device(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each test file (not the notebooks, which share nothing) as one xdist group for `--dist loadgroup`.

    xdist 3.8 under pytest 9.2 did not always honour the groups in a small experiment: tests must not rely on it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and item.path.name != "test_notebooks.py":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
