"""Spectrum benchmark: `gradviz.curvature.spectrum.hessian_spectrum` end to end (top-k by Lanczos,
SLQ density, trace) against PyHessian's `eigenvalues(top_n=k)` + `trace()` on the same model.

    python -m benchmarks.spectrum [--quick] [--threads N] [--repeat R] [--device D]

Same ~50k-parameter MLP as `benchmarks/hessian.py`. Accuracy is matched before timing:
- top-k eigenvalues: both must reach a largest relative error <= `bar` (default 1e-3) against a float64
  reference (gradviz Lanczos at tol 1e-10 on the float64 copy); PyHessian's power-iteration `tol` is
  tightened from its default 1e-3 until it does, gradviz keeps its default;
- trace: both use the same number of Rademacher probes (Hutchinson), so both estimates have the same
  variance; gradviz reads its trace off the SLQ probes, PyHessian runs `trace(maxIter=probes, tol=0)`.
gradviz's time includes the SLQ density (probes × steps extra products), which PyHessian's two calls do
not compute: the ratio is end to end, as a user would call them. Rounds are interleaved.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from . import finish, make_config, start, timed_rounds, timing
from .hessian import build_problem, float64_copy, rel_err

NAME = "spectrum"


@dataclass(frozen=True)
class Config:
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    sizes: tuple[int, ...] = (100, 200, 128, 10)  # as benchmarks/hessian.py: 47,218 parameters
    num_samples: int = 1000
    separation: float = 2.0
    train_steps: int = 100
    lr: float = 0.2
    k: int = 10
    num_probes: int = 10  # SLQ probes = Hutchinson probes for both libraries
    num_iters: int = 80  # Lanczos steps per SLQ probe
    bar: float = 1e-3  # largest relative error of the top-k eigenvalues both must reach
    pyhessian_tols: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6)
    pyhessian_max_iter: int = 1000
    reference_tol: float = 1e-10


QUICK = dict(quick=True, repeat=1, sizes=(12, 24, 16, 4), num_samples=128, train_steps=20, k=3, num_probes=3,
             num_iters=12, pyhessian_tols=(1e-3, 1e-5), pyhessian_max_iter=300)


def reference_top(p64, k: int, tol: float, seed: int):
    "Top-k eigenvalues of the float64 Hessian by Lanczos at a tight tolerance."
    from gradviz.linalg import HessianOperator, lanczos
    return lanczos(HessianOperator(p64.f, p64.theta), k=k, tol=tol, seed=seed)[0].tolist()


def gradviz_call(p, cfg):
    import torch.nn.functional as F
    from gradviz.curvature.spectrum import hessian_spectrum
    return lambda: hessian_spectrum(p.model, F.cross_entropy, p.X, p.y, k=cfg.k, num_probes=cfg.num_probes,
                                    num_iters=cfg.num_iters, exact=False, seed=cfg.seed)


def pyhessian_call(p, cfg, tol: float, device):
    "Build PyHessian's object, then eigenvalues(top_n=k) and trace(): what a user times end to end."
    import torch
    import torch.nn.functional as F
    from pyhessian import hessian
    def go():
        torch.manual_seed(cfg.seed)  # PyHessian draws from the global generator
        h = hessian(p.model, F.cross_entropy, data=(p.X, p.y), cuda=device.type == "cuda")
        vals, _ = h.eigenvalues(top_n=cfg.k, maxIter=cfg.pyhessian_max_iter, tol=tol)
        samples = h.trace(maxIter=cfg.num_probes, tol=0.0)  # tol 0: exactly `num_probes` probes
        return sorted(vals, reverse=True), samples
    return go


def run(cfg: Config) -> dict:
    import numpy as np
    import torch
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")
    device = torch.device(cfg.device)
    t_start = time.perf_counter()
    p = build_problem(cfg.sizes, cfg.num_samples, cfg.separation, cfg.train_steps, cfg.lr, cfg.seed, device)
    ref = reference_top(float64_copy(p, device), cfg.k, cfg.reference_tol, cfg.seed)
    out = {"config": asdict(cfg), "model": p.describe(), "reference_top": ref, "notes": []}
    ours_fn = gradviz_call(p, cfg)
    ours = ours_fn()
    out["gradviz"] = {"rel_err": rel_err(ours.top_eigenvalues, ref), "trace": ours.trace, "trace_stderr": ours.trace_stderr,
                      "products": ours.num_products, "top": ours.top_eigenvalues.tolist()}
    try:
        import pyhessian  # noqa: F401
    except ImportError as e:
        out["pyhessian"] = {"skipped": f"{type(e).__name__}: {e}"}
        out["notes"].append("PyHessian not installed: only gradviz was timed")
        out["timing"] = {"gradviz": timing(timed_rounds({"gradviz": ours_fn}, cfg.repeat, device)["gradviz"])}
        out["wall_seconds"] = time.perf_counter() - t_start
        return out
    tried, chosen = [], None
    for tol in cfg.pyhessian_tols:
        vals, samples = pyhessian_call(p, cfg, tol, device)()
        err = rel_err(vals, ref)
        tried.append({"tol": tol, "rel_err": err, "top": vals})
        if err <= cfg.bar: chosen = tol; break
    if chosen is None:
        chosen = cfg.pyhessian_tols[-1]
        out["notes"].append(f"PyHessian missed the accuracy bar {cfg.bar:g} at every tol tried; timed at tol={chosen:g}")
    pyh_fn = pyhessian_call(p, cfg, chosen, device)
    _, samples = pyh_fn()
    samples = np.asarray(samples)
    out["pyhessian"] = {"tol": chosen, "tolerances_tried": tried, "trace": float(samples.mean()),
                        "trace_stderr": float(samples.std(ddof=1) / np.sqrt(len(samples))) if len(samples) > 1 else None,
                        "trace_probes": len(samples)}
    if out["gradviz"]["rel_err"] > cfg.bar:
        out["notes"].append(f"gradviz missed the accuracy bar {cfg.bar:g} (rel_err {out['gradviz']['rel_err']:.2g})")
    t = timed_rounds({"gradviz": ours_fn, "pyhessian": pyh_fn}, cfg.repeat, device)
    tg, tp = timing(t["gradviz"]), timing(t["pyhessian"])
    out["timing"] = {"gradviz": tg, "pyhessian": tp, "speedup_gradviz_over_pyhessian": tp["median_s"] / tg["median_s"]}
    out["notes"].append("gradviz's time includes the SLQ density (num_probes × num_iters products) that PyHessian's "
                        "eigenvalues()+trace() do not compute.")
    out["wall_seconds"] = time.perf_counter() - t_start
    return out


def render(res: dict) -> str:
    m, g = res["model"], res["gradviz"]
    lines = [f"spectrum benchmark — {m['architecture']}, {m['num_params']:,} params, {m['num_samples']} samples, "
             f"k = {res['config']['k']}, {res['config']['num_probes']} probes",
             f"  gradviz hessian_spectrum: top-k rel err {g['rel_err']:.1e}, trace {g['trace']:.4g} ± {g['trace_stderr']:.2g}, "
             f"{g['products']} products"]
    if "skipped" in res["pyhessian"]: lines.append(f"  PyHessian skipped: {res['pyhessian']['skipped']}")
    else:
        ph = res["pyhessian"]
        err = next(t["rel_err"] for t in ph["tolerances_tried"] if t["tol"] == ph["tol"]) if any(t["tol"] == ph["tol"] for t in ph["tolerances_tried"]) else float("nan")
        lines.append(f"  PyHessian eigenvalues+trace: tol {ph['tol']:g} (top-k rel err {err:.1e}), trace {ph['trace']:.4g}")
        t = res["timing"]
        lines.append(f"  median time: gradviz {t['gradviz']['median_s']:.3f} s, PyHessian {t['pyhessian']['median_s']:.3f} s "
                     f"-> gradviz {t['speedup_gradviz_over_pyhessian']:.2f}x faster")
    lines += [f"  note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print and write `results/spectrum.json`; returns its path."
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    results = {"machine": machine, **run(cfg)}
    return finish(NAME, results, render(results), args.results_dir, cfg.quick)


if __name__ == "__main__":
    main()
