"""Run every notebook's `#| gpu` cells at full size on an accelerator and write a report of times and results.

    python tools/run_gpu_cells.py                       # every notebook with a gpu cell, GRADVIZ_GPU_SIZE=full
    python tools/run_gpu_cells.py nbs/10_curvature/10_hessian_spectrum.ipynb --size tiny   # a dry run on a CPU

A gpu cell depends on what the cells above it defined, so each notebook runs top to bottom in a kernel
(`#| notest` cells skipped); only the gpu cells are timed and reported. Notebooks are not modified. The
report goes to `benchmarks/results/gpu_cells.md` (and `.json`): the device, and for each gpu cell its
notebook, its first line, its wall time, what it printed or displayed as text, and its error if any.
On a machine without CUDA, `--size full` refuses to start unless `--allow-cpu` is given.
"""
import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SKIP_TAG = "skip-execution"


def _flags(cell) -> set[str]:
    "The nbdev flags on a cell's `#|` lines."
    return {w for l in cell.source.splitlines() if l.strip().startswith("#|") for w in l.strip()[2:].split()}


def gpu_notebooks() -> list[Path]:
    "Every notebook under nbs/ with at least one `#| gpu` cell."
    out = []
    for p in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts: continue
        nb = nbformat.read(p, as_version=4)
        if any(c.cell_type == "code" and "gpu" in _flags(c) for c in nb.cells): out.append(p)
    return out


def _text(outputs) -> str:
    "What a cell printed or displayed as text (plain text of rich outputs), shortened."
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream": parts.append(o.get("text", ""))
        elif o.get("output_type") == "error": parts.append(f"{o.get('ename')}: {o.get('evalue')}")
        elif "text/plain" in o.get("data", {}): parts.append(o["data"]["text/plain"])
    s = "\n".join(p.strip() for p in parts if p.strip())
    return s if len(s) < 1500 else s[:1500] + " ..."


def run_notebook(path: Path, timeout: int) -> list[dict]:
    "Execute one notebook (gpu cells included) and return a record per gpu cell."
    nb = nbformat.read(path, as_version=4)
    gpu = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "gpu" in _flags(c)}
    for c in nb.cells:
        if c.cell_type == "code" and "notest" in _flags(c): c.metadata.setdefault("tags", []).append(SKIP_TAG)
    started, seconds = {}, {}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", skip_cells_with_tag=SKIP_TAG,
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=lambda cell, cell_index: started.__setitem__(cell_index, time.perf_counter()),
                            on_cell_executed=lambda cell, cell_index, execute_reply:
                                seconds.__setitem__(cell_index, time.perf_counter() - started[cell_index]))
    error = None
    try: client.execute()
    except CellExecutionError as e: error = str(e).splitlines()[-1] if str(e) else type(e).__name__
    records = []
    for i in sorted(gpu):
        cell = nb.cells[i]
        body = [l for l in cell.source.splitlines() if l.strip() and not l.strip().startswith("#|")]
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        records.append({"notebook": name, "cell": i, "first_line": body[0] if body else "",
                        "seconds": seconds.get(i), "ran": i in seconds, "output": _text(cell.get("outputs", [])),
                        "error": error if i not in seconds or any(o.get("output_type") == "error"
                                                                 for o in cell.get("outputs", [])) else None})
    return records


def render(report: dict) -> str:
    "The markdown report."
    lines = [f"# `#| gpu` cells at size `{report['size']}`", "",
             f"{report['created']} · device: {report['device']} · torch {report['torch']}", "",
             "| notebook | cell | first line | seconds | result |", "|---|---|---|---|---|"]
    for r in report["cells"]:
        secs = "—" if r["seconds"] is None else f"{r['seconds']:.1f}"
        result = ("**error**: " + r["error"]) if r["error"] else r["output"].replace("\n", "<br>").replace("|", "\\|")
        lines.append(f"| {r['notebook']} | {r['cell']} | `{r['first_line'][:60]}` | {secs} | {result[:600]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every one with a gpu cell)")
    p.add_argument("--size", choices=("tiny", "full"), default="full", help="GRADVIZ_GPU_SIZE for the run")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    p.add_argument("--allow-cpu", action="store_true", help="run at full size even without CUDA")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_cells", help="report path without suffix")
    args = p.parse_args(argv)
    import torch
    if args.size == "full" and not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA device: full-size gpu cells would run on the CPU for a long time (use --allow-cpu or --size tiny)")
        return 2
    os.environ.update(GRADVIZ_GPU_SIZE=args.size, PYTHONPATH=str(ROOT))
    os.environ.pop("IN_TEST", None)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    cells = []
    for nb in (args.notebooks or gpu_notebooks()):
        recs = run_notebook(nb.resolve(), args.timeout)
        for r in recs:
            print(f"{r['notebook']} cell {r['cell']}: {r['seconds'] or 0:.1f} s", r["error"] or "", flush=True)
        cells += recs
    report = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "size": args.size,
              "device": device, "torch": torch.__version__, "cells": cells}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(report))
    print(f"wrote {args.out.with_suffix('.md')}")
    return 1 if any(r["error"] for r in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
