"""Learned-solvers benchmark: DCDM against CG, Jacobi-PCG and scipy's cg on Poisson systems, and a TangleNAS step
against a WS-DARTS step.

    python -m benchmarks.learned [--quick] [--threads N] [--repeat R] [--device D]

Sections (each a function `section_<name>(bench)` listed in `SECTIONS`):
1. `dcdm`: `gradviz.learned.deep_cg.dcdm` with a `PoissonNet` trained at each grid size (empty Dirichlet N × N grid,
   boosted Ritz data, Adam, `train_steps` steps; training time reported apart) against the engine's
   `conjugate_gradient`, its Jacobi-preconditioned form and `scipy.sparse.linalg.cg` on the CSR matrix, N = 32 and 64,
   on a smooth right-hand side. Reported: iterations to a relative residual of 1e-6 (the chapter's claim) and the wall
   time of each solve with the network included (DCDM also does two stencil products per iteration). Iterations are
   the claim; times are reported as they are, with no target.
2. `tanglenas`: see `benchmarks/_learned_tanglenas.py`.

Every timing is the median of `--repeat` runs (at least 5 unless `--quick`), taken in interleaved rounds.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import BenchConfig, run_sections, section_main, timing
from ._learned_tanglenas import section_tanglenas
from .hessian import Bench, fmt_s

NAME = "learned"


@dataclass(frozen=True)
class Config(BenchConfig):
    "Everything that defines one run (quick, repeat, device, seed, then these); `--quick` swaps in tiny sizes."
    sizes: tuple[int, ...] = (32, 64)
    train_steps: int = 150
    ritz_steps: int = 300
    train_count: int = 2000
    tol: float = 1e-6


QUICK = dict(quick=True, repeat=1, sizes=(16,), train_steps=80, ritz_steps=100, train_count=400)


# ----------------------------------------------------------------------------- DCDM
def _scipy_cg(A, b_np, tol: float):
    "scipy's cg on the CSR matrix, with an iteration counter; returns (solution, iterations)."
    import scipy.sparse.linalg as spla
    count = [0]
    def tick(_): count[0] += 1
    x, info = spla.cg(A, b_np, rtol=tol, atol=0.0, maxiter=10 * len(b_np), callback=tick)
    return x, count[0] if info == 0 else None


def _solvers(system, b, net, cfg):
    "name → zero-argument solve returning (solution, iterations or None)."
    from gradviz.learned.deep_cg import dcdm, network_direction
    from gradviz.linalg import conjugate_gradient
    direction, A, b_np, d = network_direction(net, system), system.to_scipy(), b.cpu().numpy(), 1 / system.diagonal()
    def as_pair(r): return r.x, (r.num_iters if r.converged else None)
    return {"DCDM": lambda: as_pair(dcdm(system, b, direction, tol=cfg.tol, max_iters=500)),
            "CG": lambda: as_pair(conjugate_gradient(system.matvec, b, cfg.tol)),
            "Jacobi-PCG": lambda: as_pair(conjugate_gradient(system.matvec, b, cfg.tol, preconditioner=d)),
            "scipy cg": lambda: _scipy_cg(A, b_np, cfg.tol)}


def _train(system, cfg):
    "A PoissonNet trained on boosted Ritz data of `system`, and the seconds it took (data included)."
    from gradviz.learned.deep_cg import ritz_training_set, train_dcdm
    t0 = time.perf_counter()
    data = ritz_training_set(system, m=min(cfg.ritz_steps, system.size), count=cfg.train_count, seed=cfg.seed)
    fit = train_dcdm(system, data, steps=cfg.train_steps, seed=cfg.seed)
    return fit, time.perf_counter() - t0


def section_dcdm(b: Bench) -> dict:
    "DCDM (network trained at each size) against CG, Jacobi-PCG and scipy cg: iterations to tol and wall time."
    import numpy as np
    from gradviz.data import poisson_system
    from gradviz.learned.deep_cg import right_hand_side
    cfg = b.cfg
    b.section(f"DCDM vs CG, Jacobi-PCG, scipy cg (Poisson N², smooth b, tol {cfg.tol:g}, "
              f"{cfg.train_steps} training steps)")
    rows = {}
    for N in cfg.sizes:
        system = poisson_system(N, device=cfg.device)
        fit, train_s = _train(system, cfg)
        rhs = right_hand_side(system, seed=cfg.seed + 3)
        fns = _solvers(system, rhs, fit.net, cfg)
        results = {name: fn() for name, fn in fns.items()}  # also the warm-up, untimed
        x_ref = results["scipy cg"][0]
        errs = {k: float(np.abs(np.asarray(v[0].cpu() if hasattr(v[0], "cpu") else v[0]) - x_ref).max())
                for k, v in results.items()}
        times = {k: timing(v) for k, v in b.rounds({k: fn for k, fn in fns.items()}).items()}
        row = {"N": N, "unknowns": system.size, "training_s": train_s, "final_val_loss": float(fit.val_losses[-1]),
               "iterations": {k: v[1] for k, v in results.items()}, "timings": times, "max_abs_diff_to_scipy": errs}
        it = row["iterations"]
        for name in fns:
            b.row(f"N = {N}: {name}", str(it[name]) if it[name] is not None else "n/c",
                  f"{fmt_s(times[name]['median_s'])} per solve")
        if it["DCDM"]:
            row["iteration_ratio_cg_over_dcdm"] = it["CG"] / it["DCDM"]
            row["time_ratio_dcdm_over_cg"] = times["DCDM"]["median_s"] / times["CG"]["median_s"]
            b.row(f"N = {N}: CG / DCDM iterations", f"{row['iteration_ratio_cg_over_dcdm']:.1f}x",
                  f"DCDM / CG wall time {row['time_ratio_dcdm_over_cg']:.1f}x (network included); "
                  f"training {train_s:.1f} s, not included")
        else:
            b.note(f"N = {N}: DCDM did not reach tol within 500 iterations")
        rows[str(N)] = row
    return {"rows": rows}


SECTIONS = (("dcdm", section_dcdm), ("tanglenas", section_tanglenas))


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    return run_sections(cfg, SECTIONS, [
        "DCDM's network is trained at each size before timing; the training time is reported, not timed per solve.",
        "Solve times include the network's forward passes; iterations to tol are the chapter's claim.",
    ])


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/learned.json`; returns its path."
    return section_main(sys.modules[__name__], argv, "learned-solvers", (), name_width=34)


if __name__ == "__main__":
    main()
