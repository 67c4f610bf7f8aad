"""Every notebook in `nbs/` executes top to bottom: one pytest item each."""
import os
import time
from pathlib import Path

import nbdev.test as nbt  # not `from nbdev.test import test_nb`: pytest would collect it
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb")
             if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))
SKIP_FLAGS = ["notest", "slow", "gpu"]
MAX_SECONDS = 90  # DESIGN.md: no notebook over 90 s on a 2-core CPU


@pytest.mark.parametrize("fn", NBS, ids=[str(f.relative_to(ROOT / "nbs")) for f in NBS])
def test_notebook(fn, monkeypatch):
    monkeypatch.chdir(fn.parent)
    monkeypatch.setenv("IN_TEST", "1")
    start = time.perf_counter()
    ok, _ = nbt.test_nb(fn, skip_flags=SKIP_FLAGS, basepath=ROOT)
    secs = time.perf_counter() - start
    assert ok, f"{fn.name} failed (see the traceback above)"
    if os.environ.get("GRADVIZ_CHECK_NB_TIME", "0") == "1":
        assert secs < MAX_SECONDS, f"{fn.name} took {secs:.0f} s (limit {MAX_SECONDS} s)"
