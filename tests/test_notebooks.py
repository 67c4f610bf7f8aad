"""Every notebook in `nbs/` executes top to bottom: one pytest item each.

`#| gpu` cells run too, at the tiny size `gradviz.core.gpu_cell_size` picks on a CPU (forced here with
`GRADVIZ_GPU_SIZE=tiny`), so none of them rots; `#| notest` and `#| slow` cells are skipped.
Run times are reported by `tools/run_notebooks.py`, never asserted here.
"""
from pathlib import Path

import nbdev.test as nbt  # not `from nbdev.test import test_nb`: pytest would collect it
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb")
             if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))
SKIP_FLAGS = ["notest", "slow"]


@pytest.mark.parametrize("fn", NBS, ids=[str(f.relative_to(ROOT / "nbs")) for f in NBS])
def test_notebook(fn, monkeypatch):
    monkeypatch.chdir(fn.parent)
    monkeypatch.setenv("IN_TEST", "1")
    monkeypatch.setenv("GRADVIZ_GPU_SIZE", "tiny")
    ok, _ = nbt.test_nb(fn, skip_flags=SKIP_FLAGS, basepath=ROOT)
    assert ok, f"{fn.name} failed (see the traceback above)"
