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
    """Under `pytest -n N --dist loadgroup`, keep each test file on one worker (its module fixtures run once) and let
    the notebooks, which share nothing, spread over every worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and item.path.name != "test_notebooks.py":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
