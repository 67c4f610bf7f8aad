"""Implicit-differentiation benchmark: the ridge hyper-gradient by `gradviz.bilevel.implicit.custom_root` against the
closed form and TorchOpt's `custom_root`, and unrolled against implicit differentiation of gradient descent.

    python -m benchmarks.implicit [--quick] [--threads N] [--repeat R] [--device D]

Sections (each a function `section_<name>(bench)` listed in `SECTIONS`):
1. `hypergradient`: d L_val(w*(λ)) / dλ for ridge regression, w*(λ) = argmin ½‖Xw − y‖² + ½λ‖w‖², X of n = 500 rows and
   d = 100 columns, L_val = ½‖X_val w − y_val‖² / n_val, float64. Every method solves the inner problem the same way
   (a Cholesky solve) and differs in the backward pass: the closed form (−(H⁻¹∇L)ᵀw* with the same factor), gradviz
   `custom_root(∇g)` with `solve="cg"` and with `solve="dense"` (A = ∂ₓF materialised by one vmap of backward
   passes through F's graph, then LU), TorchOpt 0.7.3 `custom_root` with `solve_cg`, `solve_normal_cg` (its default)
   and `solve_inv` (it materialises A too). One timed call is forward + backward. Accuracy: relative error against
   the closed form, ≤ 1e-6 required.
   Target: gradviz's faster solver ≥ 2× faster than TorchOpt's `solve_cg` and `solve_normal_cg`; like against like
   (cg against `solve_cg`) is reported beside it, and `solve_inv` (dense against dense) is reported, not a target.
2. `unrolled`: gradient descent with η = 1/(L + λ) for k = 10, 100, 1000 steps from 0, differentiated by unrolling
   (autograd through the k steps) and implicitly (`custom_root` around the same loop run without a graph). Reports the
   time of forward + backward, the bytes saved for backward (`saved_tensor_bytes`) and each hyper-gradient's error
   against the closed form. No target: the numbers are what the chapter's claim is about.

Every timing is the median of `--repeat` runs (at least 5 unless `--quick`), taken in interleaved rounds; the
hyper-gradient section, whose calls last milliseconds, runs `rounds_factor` (10) times as many rounds, and its ratios
are medians over rounds of the two methods' times in the same round (the ratio of medians is reported too).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import BenchConfig, paired_ratio, run_sections, section_main, timed_rounds, timing
from .hessian import Bench, fmt_s

NAME = "implicit"


@dataclass(frozen=True)
class Config(BenchConfig):
    "Everything that defines one run (quick, repeat, device, seed, then these); `--quick` swaps in tiny sizes."
    n: int = 500
    d: int = 100
    lam: float = 1.0
    tol: float = 1e-10  # relative residual of every linear solve (gradviz and TorchOpt alike)
    max_rel_error: float = 1e-6
    target_speedup: float = 2.0
    rounds_factor: int = 10  # the hyper-gradient section runs this many times `repeat` rounds (each call is ms)
    ks: tuple[int, ...] = (10, 100, 1000)


QUICK = dict(quick=True, repeat=1, n=50, d=10, ks=(10,))


def _problem(cfg: Config, device):
    "Seeded ridge data (train and validation) in float64."
    import torch
    g = torch.Generator().manual_seed(cfg.seed)
    X, Xv = (torch.randn(cfg.n, cfg.d, generator=g, dtype=torch.float64) for _ in range(2))
    w = torch.randn(cfg.d, generator=g, dtype=torch.float64)
    y, yv = X @ w + torch.randn(cfg.n, generator=g, dtype=torch.float64), Xv @ w
    return tuple(t.to(device) for t in (X, y, Xv, yv))


def _methods(cfg: Config, X, y, Xv, yv) -> tuple[dict, dict]:
    "Callables returning dL/dλ: every available method; and a note per skipped one."
    import torch
    from gradviz.bilevel.implicit import custom_root
    eye = torch.eye(cfg.d, dtype=X.dtype, device=X.device)
    F = lambda w, lam: X.T @ (X @ w - y) + lam * w
    outer = lambda w: 0.5 * (Xv @ w - yv).pow(2).sum() / len(yv)
    inner = lambda init, lam: torch.cholesky_solve((X.T @ y)[:, None], torch.linalg.cholesky(X.T @ X + lam * eye))[:, 0]

    def closed_form():
        lam = torch.tensor(cfg.lam, dtype=X.dtype, device=X.device)
        L = torch.linalg.cholesky(X.T @ X + lam * eye)
        w = torch.cholesky_solve((X.T @ y)[:, None], L)[:, 0]
        gw = Xv.T @ (Xv @ w - yv) / len(yv)
        return -(torch.cholesky_solve(gw[:, None], L)[:, 0] @ w)

    def through(decorated):
        def call():
            lam = torch.tensor(cfg.lam, dtype=X.dtype, device=X.device, requires_grad=True)
            return torch.autograd.grad(outer(decorated(torch.zeros(cfg.d, dtype=X.dtype, device=X.device), lam)), lam)[0]
        return call

    fns = {"closed form": closed_form, "gradviz custom_root (cg)": through(custom_root(F, "cg", cfg.tol)(inner)),
           "gradviz custom_root (dense)": through(custom_root(F, "dense")(inner))}
    skipped = {}
    try:
        from torchopt.diff.implicit import custom_root as torchopt_root
        from torchopt.linear_solve import solve_cg, solve_inv, solve_normal_cg
        maxiter = 10 * cfg.d
        fns["torchopt solve_cg"] = through(torchopt_root(F, argnums=1, solve=solve_cg(rtol=cfg.tol, maxiter=maxiter))(inner))
        fns["torchopt solve_normal_cg"] = through(
            torchopt_root(F, argnums=1, solve=solve_normal_cg(rtol=cfg.tol, maxiter=maxiter))(inner))
        fns["torchopt solve_inv"] = through(torchopt_root(F, argnums=1, solve=solve_inv())(inner))
    except Exception as e:  # noqa: BLE001 - any import or API failure is recorded, not fatal
        skipped["torchopt"] = f"{type(e).__name__}: {e}"
    return fns, skipped


def section_hypergradient(b: Bench) -> dict:
    "The ridge hyper-gradient: gradviz custom_root against the closed form and TorchOpt's custom_root."
    cfg = b.cfg
    X, y, Xv, yv = _problem(cfg, b.device)
    fns, skipped = _methods(cfg, X, y, Xv, yv)
    b.section(f"ridge hyper-gradient dL_val/dλ (n {cfg.n}, d {cfg.d}, λ {cfg.lam:g}, float64, tol {cfg.tol:g})")
    for name, why in skipped.items(): b.note(f"{name} skipped: {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torchopt calls the deprecated functorch.vjp
        ref = float(fns["closed form"]())
        errors = {k: abs(float(f()) - ref) / abs(ref) for k, f in fns.items()}
        times = timed_rounds(fns, cfg.rounds_factor * cfg.repeat, b.device)
    rows = {k: {"timing": timing(v), "rel_error": errors[k]} for k, v in times.items()}
    accurate = [k for k in ("gradviz custom_root (cg)", "gradviz custom_root (dense)")
                if rows[k]["rel_error"] <= cfg.max_rel_error]
    best = min(accurate or ["gradviz custom_root (cg)"], key=lambda k: rows[k]["timing"]["median_s"])
    ours = rows[best]["timing"]["median_s"]
    for k, r in rows.items():
        r["ratio_to_gradviz"] = paired_ratio(times[k], times[best])
        r["ratio_of_medians_to_gradviz"] = r["timing"]["median_s"] / ours
        b.row(k, fmt_s(r["timing"]["median_s"]), f"{r['ratio_to_gradviz']:.2f}× the time of {best} (ratio of medians "
              f"{r['ratio_of_medians_to_gradviz']:.2f}); relative error {r['rel_error']:.1e}")
    like = {"torchopt solve_cg": "gradviz custom_root (cg)", "torchopt solve_normal_cg": "gradviz custom_root (cg)",
            "torchopt solve_inv": "gradviz custom_root (dense)"}
    same_ratio = lambda peer: (f"; like against like ({like[peer]}) "
                               f"{paired_ratio(times[peer], times[like[peer]]):.2f}×")
    for peer in ("torchopt solve_cg", "torchopt solve_normal_cg", "torchopt solve_inv"):
        ok = peer in rows and rows[peer]["rel_error"] <= cfg.max_rel_error and bool(accurate)
        if peer == "torchopt solve_inv":  # not a target (CONTRIBUTING names TorchOpt's CG solvers): dense against dense
            if peer in rows: b.note(f"{best} vs torchopt solve_inv (reported, not a target): "
                                    f"{rows[peer]['ratio_to_gradviz']:.2f}×" + same_ratio(peer))
            continue
        value = rows[peer]["ratio_to_gradviz"] if peer in rows else None
        same = same_ratio(peer) if peer in rows else ""
        t = b.target(f"speedup_over_{peer.replace(' ', '_')}", f"{best} vs {peer}, forward + backward",
                     value, ">=", cfg.target_speedup, "skipped: torchopt not installed" if peer not in rows else
                     (f"both within {cfg.max_rel_error:g} of the closed form" if ok else "ERRORS ABOVE 1e-6") + same)
        if peer in rows and not ok: t["met"] = False
    return {"rows": rows, "reference_hypergradient": ref, "peer_available": not skipped, "fastest_gradviz": best}


def section_unrolled(b: Bench) -> dict:
    "Gradient descent for k steps: unrolled against implicit, time, saved bytes and error."
    import torch
    from gradviz.autodiff import saved_tensor_bytes
    from gradviz.bilevel.implicit import custom_root, unrolled_solver
    cfg = b.cfg
    X, y, Xv, yv = _problem(cfg, b.device)
    L0 = float(torch.linalg.matrix_norm(X, 2)) ** 2
    grad_g = lambda w, lam: X.T @ (X @ w - y) + lam * w
    step = lambda w, lam: w - grad_g(w, lam) / (L0 + lam)
    outer = lambda w: 0.5 * (Xv @ w - yv).pow(2).sum() / len(yv)
    ref = float(_methods(cfg, X, y, Xv, yv)[0]["closed form"]())
    b.section(f"gradient descent, k steps: unrolled vs implicit (n {cfg.n}, d {cfg.d})")
    rows = {}
    for k in cfg.ks:
        solvers = {"unrolled": unrolled_solver(step, k), "implicit": custom_root(grad_g, "cg", cfg.tol)(unrolled_solver(step, k))}
        def call(s):
            def run():
                lam = torch.tensor(cfg.lam, dtype=X.dtype, device=X.device, requires_grad=True)
                return torch.autograd.grad(outer(s(torch.zeros(cfg.d, dtype=X.dtype, device=X.device), lam)), lam)[0]
            return run
        fns = {name: call(s) for name, s in solvers.items()}
        leaf = torch.tensor(cfg.lam, dtype=X.dtype, device=X.device, requires_grad=True)
        x0 = torch.zeros(cfg.d, dtype=X.dtype, device=X.device)
        row = {"k": k}
        for name, s in solvers.items():
            row[f"{name}_rel_error"] = abs(float(fns[name]()) - ref) / abs(ref)
            row[f"{name}_saved_bytes"] = saved_tensor_bytes(lambda l: s(x0, l), leaf)
        times = b.rounds(fns)
        row["timings"] = {n: timing(v) for n, v in times.items()}
        row["ratio_unrolled_over_implicit"] = row["timings"]["unrolled"]["median_s"] / row["timings"]["implicit"]["median_s"]
        b.row(f"k = {k}", f"{row['ratio_unrolled_over_implicit']:.2f}x",
              f"unrolled {fmt_s(row['timings']['unrolled']['median_s'])} ({row['unrolled_saved_bytes'] / 1024:.0f} KiB saved, "
              f"error {row['unrolled_rel_error']:.1e}); implicit {fmt_s(row['timings']['implicit']['median_s'])} "
              f"({row['implicit_saved_bytes']} B saved, error {row['implicit_rel_error']:.1e})")
        rows[str(k)] = row
    return {"rows": rows, "reference_hypergradient": ref}


SECTIONS = (("hypergradient", section_hypergradient), ("unrolled", section_unrolled))


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    return run_sections(cfg, SECTIONS, [
        "Ratios divide a method's median time by gradviz custom_root's (section 1) or unrolled's by implicit's "
        "(section 2), all timed in the same interleaved rounds.",
        "Each timed call builds a fresh λ leaf, solves the inner problem and backpropagates the validation loss to λ.",
    ])


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/implicit.json`; returns its path."
    return section_main(sys.modules[__name__], argv, "implicit-differentiation", ("torchopt",), name_width=44)


if __name__ == "__main__":
    main()
