"""Run notebooks top to bottom in a Jupyter kernel and save them with their outputs, as the website shows them.

    python tools/run_notebooks.py nbs/20_dynamics/20_drift.ipynb [more.ipynb ...]   # or no argument: every notebook

What is saved is what a reader of the static site sees, so it is kept lean:
- cells flagged `#| notest` are not run (a `torchrun` command, say); `#| gpu` cells run, at the small
  size they choose on a machine without an accelerator;
- saved widget state is dropped, and so are outputs that are nothing but a widget (a finished progress
  bar). An `Explorer` output keeps its static snapshot (a figure and a caption), which the site and a
  freshly opened notebook show; running the notebook brings the live controls back;
- the notebook is then cleaned as `nbdev-clean` would.

One torch thread per kernel, so two notebooks can run side by side on a small machine.
Prints each notebook's run time and its weight before and after.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbdev.clean import clean_nb

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SKIP_TAG = "skip-execution"


def _flags(cell) -> set[str]:
    "The nbdev flags on a cell's `#|` lines (`#| gpu`, `#| notest`, ...)."
    lines = (l.strip() for l in cell.source.splitlines())
    return {w for l in lines if l.startswith("#|") for w in l[2:].split()}


def _lean_outputs(outputs: list) -> list:
    "Outputs without widget views: a widget with a static fallback keeps the fallback; a bare widget goes."
    kept = []
    for out in outputs:
        data = out.get("data", {})
        if WIDGET_VIEW in data:
            data.pop(WIDGET_VIEW)
            if not set(data) - {"text/plain"}: continue
        kept.append(out)
    return kept


def run(path: Path, timeout: int = 900) -> tuple[float, int, int]:
    "Execute `path` in place; returns (seconds, bytes before, bytes after)."
    before = path.stat().st_size
    nb = nbformat.read(path, as_version=4)
    skipped = [c for c in nb.cells if c.cell_type == "code" and "notest" in _flags(c)]
    for c in skipped: c.metadata.setdefault("tags", []).append(SKIP_TAG)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", skip_cells_with_tag=SKIP_TAG,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    for c in skipped:
        c.metadata["tags"].remove(SKIP_TAG)
        if not c.metadata["tags"]: del c.metadata["tags"]
    for c in nb.cells:
        if c.cell_type == "code": c.outputs = _lean_outputs(c.outputs)
    nb.metadata.pop("widgets", None)
    clean_nb(nb)
    nbformat.write(nb, path)
    return seconds, before, path.stat().st_size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every one under nbs/)")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = p.parse_args(argv)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    os.environ.pop("IN_TEST", None)
    paths = args.notebooks or sorted(p for p in (ROOT / "nbs").rglob("*.ipynb")
                                     if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))
    for path in paths:
        seconds, before, after = run(path.resolve(), args.timeout)
        print(f"{path}: {seconds:.1f} s, {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
