"""Ratio benchmarks for gradviz.

Each module times gradviz against baselines measured in the same run and writes
`results/<name>.json`. Torch runs on one thread unless `--threads` says otherwise:
on a small shared machine a second busy process makes multi-threaded timings
meaningless.
"""
from __future__ import annotations

import os

# Thread pools read these when they start, so set them before torch or numpy load.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _var in THREAD_VARS: os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import datetime as _dt
import json
import math
import platform
import statistics
import sys
from pathlib import Path
from typing import Callable, Iterable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODULES = ("hessian", "per_sample", "spectrum", "sven", "optimizers", "explorers", "loader", "representation", "scale", "implicit", "distributed", "learned", "attacks")  # every benchmark module `python -m benchmarks` runs, in order


def common_parser(description: str) -> argparse.ArgumentParser:
    "The options every benchmark module accepts."
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions per measurement; medians are reported (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models, repeat 1, a few seconds")
    p.add_argument("--device", default="cpu", help="torch device to benchmark on (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, models and probes (default 0)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=f"where the JSON goes (default {RESULTS_DIR})")
    return p


def pin_threads(n: int) -> dict:
    "Limit torch (and NumPy's BLAS, when threadpoolctl is present) to `n` threads; returns what was set."
    import torch
    if n < 1: raise ValueError(f"`--threads` must be >= 1, got {n}")
    for var in THREAD_VARS: os.environ[var] = str(n)  # for any child process
    torch.set_num_threads(n)
    try: torch.set_num_interop_threads(n)
    except RuntimeError: pass  # only settable before the first parallel region; harmless to skip
    blas = None
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n)
        blas = n
    except ImportError: pass
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "numpy_blas_threads": blas, **{v: os.environ[v] for v in THREAD_VARS}}


def machine_info(device) -> dict:
    "Versions, core count, device and load: what a reader needs to interpret the timings."
    import numpy as np
    import scipy
    import torch
    info = {
        "python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if str(device).startswith("cuda"): info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def median(xs: Iterable[float]) -> float: return float(statistics.median(list(xs)))


def timing(times: list[float], per: int = 1, **extra) -> dict:
    "A timing record: the median and every repeat, in seconds (divided by `per`, e.g. products per call)."
    ts = [t / per for t in times]
    return {"median_s": median(ts), "times_s": ts, "repeat": len(ts), **extra}


def timed_rounds(fns: dict[str, Callable[[], object]], repeat: int, device=None) -> dict[str, list[float]]:
    """Call every function once per round, `repeat` rounds, and return each one's wall times.

    Interleaving shares any slowdown from other processes fairly between a method and its baseline; every other round
    runs in reverse order, so no function always follows the same neighbour (whose freed memory or cache it inherits)."""
    from gradviz.core import Timer
    times = {name: [] for name in fns}
    for r in range(repeat):
        for name, fn in (fns.items() if r % 2 == 0 else reversed(fns.items())):
            with Timer(device) as t: fn()
            times[name].append(t.elapsed)
    return times


def paired_ratio(times: list[float], baseline: list[float]) -> float:
    "Median over rounds of a method's time over its baseline's in the same round (`timed_rounds`): drift cancels."
    return median([t / b for t, b in zip(times, baseline)])


def jsonable(x):
    "`x` with NumPy/torch scalars and arrays turned into Python values and non-finite floats into None."
    import numpy as np
    if isinstance(x, dict): return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return [jsonable(v) for v in x]
    if hasattr(x, "detach"): x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray): return jsonable(x.tolist())
    if isinstance(x, np.generic): x = x.item()
    if isinstance(x, float) and not math.isfinite(x): return None
    if isinstance(x, Path): return str(x)
    return x


def write_results(name: str, results: dict, directory: Path, quick: bool) -> Path:
    "Write `results` as `<directory>/<name>.json` (`<name>_quick.json` for smoke runs)."
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{'_quick' if quick else ''}.json"
    results = {"benchmark": name, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **results}
    path.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n")
    return path


def start(description: str, argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    "Parse the common options and pin threads; returns the options and the machine record."
    args = common_parser(description).parse_args(argv)
    threads = pin_threads(args.threads)
    import torch
    return args, {**machine_info(torch.device(args.device)), "threads": threads}


def make_config(config_cls, quick_overrides: dict, args):
    "A benchmark's frozen config from the common options; `--quick` applies `quick_overrides`."
    from dataclasses import replace
    if args.repeat < 1: raise SystemExit("--repeat must be >= 1")
    cfg = config_cls(repeat=args.repeat, device=args.device, seed=args.seed)
    return replace(cfg, **{**quick_overrides, "device": args.device, "seed": args.seed}) if args.quick else cfg


def render_table(results: dict, lines: list[str], name_width: int = 34, value_width: int = 9) -> str:
    "`lines` (a header) then the rows of `results[\"table\"]`, the targets, the notes and the wall time, as text."
    w = max(len(r[0]) for r in results["table"] if not r[0].startswith("==")) + 2
    for label, value, detail in results["table"]:
        if label.startswith("=="): lines.append(f"\n{label}")
        else: lines.append(f"  {label:<{w}}{value:>12}   {detail}")
    lines.append("\n== Targets ==")
    for t in results["targets"]:
        status = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
        val = "—" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"  {status:<7}{t['name']:<{name_width}}{val:>{value_width}} (target {t['target']})  {t['note']}")
    if results["notes"]:
        lines.append("\n== Notes ==")
        lines += [f"  - {n}" for n in results["notes"]]
    lines.append(f"\nwall time {results['wall_seconds']:.0f} s")
    return "\n".join(lines)


def finish(name: str, results: dict, text: str, directory: Path, quick: bool) -> Path:
    "Print the readable table, write `results/<name>.json` and say where; returns its path."
    print(text)
    path = write_results(name, results, directory, quick)
    print(f"\nwrote {path}")
    return path


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    "The fields every sectioned benchmark's frozen `Config` starts with (subclass it and add the sizes)."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0


def run_sections(cfg, sections, notes: Iterable[str] = ()) -> dict:
    "Run each `(name, section(bench))` in order on one `Bench` (at least 5 repeats unless quick): the results."
    import time
    import torch
    from .hessian import Bench
    if not cfg.quick and cfg.repeat < 5: cfg = dataclasses.replace(cfg, repeat=5)
    b = Bench(cfg, torch.device(cfg.device))
    t0 = time.perf_counter()
    results = {"config": dataclasses.asdict(cfg)}
    for name, section in sections: results[name] = section(b)
    results["targets"], results["notes"] = b.targets, b.notes + list(notes)
    results["wall_seconds"] = time.perf_counter() - t0
    results["table"] = b.rows
    return results


def render_results(title: str, results: dict, name_width: int = 34) -> str:
    "The printed table of a `run_sections` result, under a header naming `title`, the machine and the repeats."
    m, quick = results["machine"], " (quick)" if results["config"]["quick"] else ""
    head = [f"gradviz {title} benchmark — torch {m['torch']}, {m['torch_threads']} thread(s), {m['cpu_count']} CPUs, "
            f"device {m['device']}, repeat {results['config']['repeat']}{quick}"]
    return render_table(results, head, name_width=name_width, value_width=9)


def peer_versions(*dists: str) -> dict:
    "Installed version of each peer distribution, None where absent."
    from importlib import metadata
    out = {}
    for dist in dists:
        try: out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: out[dist] = None
    return out


def section_main(module, argv: list[str] | None, title: str, peers: tuple[str, ...] = (), name_width: int = 34) -> Path:
    "`main` of a sectioned benchmark module (`NAME`, `Config`, `QUICK`, `run(cfg)`): run, print, write its JSON."
    args, machine = start(module.__doc__.splitlines()[0], argv)
    cfg = make_config(module.Config, module.QUICK, args)
    results = {"machine": {**machine, "peers": peer_versions(*peers)} if peers else machine, **module.run(cfg)}
    results["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    return finish(module.NAME, results, render_results(title, results, name_width), args.results_dir, cfg.quick)


def run_all(argv: list[str] | None = None) -> dict[str, Path]:
    "Run every module in `MODULES` with the same options; returns the JSON paths written."
    import importlib
    argv = sys.argv[1:] if argv is None else argv
    written = {}
    for name in MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        written[name] = module.main(argv)
    return written
