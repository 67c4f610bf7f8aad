"""Shared test setup: one torch thread per process, float64 helpers, device parametrisation, scheduling."""
import json
import os
from pathlib import Path

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


DURATIONS = Path(__file__).with_name("durations.json")  # seconds per unit of work in a recorded run (ordering only)
UNKNOWN_SECONDS = 60.0  # a unit missing from it (a new file or notebook) is assumed slow, so it starts early


def _unit(nodeid: str) -> str:
    "A unit of work for the workers: each notebook on its own, otherwise a whole test file (module fixtures run once)."
    path = nodeid.split("::", 1)[0]
    return nodeid if path.endswith("test_notebooks.py") else path


def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true",
                     help=f"write each unit's seconds to {DURATIONS.name} (the workers take the longest units first)")


def pytest_xdist_make_scheduler(config, log):
    """Schedule whole test files (and single notebooks) in the collected order.

    xdist 3.8's `--dist loadgroup` never groups under pytest 9.2: it tags `item._nodeid`, which pytest 9 no longer
    reads, so a file's module fixture ran once per worker. This scheduler groups by the node id itself."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str: return _unit(nodeid)

    config.option.loadscopereorder = False  # keep the longest-first order set below
    return FileScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    "Run the units longest first (by the recorded seconds), each unit's tests together and in their own order."
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    first = {}
    for i, item in enumerate(items): first.setdefault(_unit(item.nodeid), i)
    items.sort(key=lambda it: (-known.get(_unit(it.nodeid), UNKNOWN_SECONDS), first[_unit(it.nodeid)]))


_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _SECONDS[_unit(report.nodeid)] = _SECONDS.get(_unit(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    "With `--record-durations` (or `GRADVIZ_RECORD_DURATIONS=1`) the controller writes the seconds per unit."
    record = session.config.getoption("record_durations") or os.environ.get("GRADVIZ_RECORD_DURATIONS") == "1"
    if record and not hasattr(session.config, "workerinput") and _SECONDS:
        DURATIONS.write_text(json.dumps({k: round(v, 1) for k, v in sorted(_SECONDS.items())}, indent=1) + "\n")
