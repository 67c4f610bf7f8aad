"""Hessian benchmark: gradviz's Hessian-vector products, Lanczos, SLQ and Hutchinson against
the bare product cost, scipy `eigsh` (ARPACK), PyHessian and curvlinops, on one seeded MLP.

    python -m benchmarks.hessian [--quick] [--threads N] [--repeat R] [--device D]

Every timing is the median of `--repeat` runs; each ratio divides two timings taken in
interleaved rounds of the same run. Accuracy is measured against a float64 reference
(ARPACK at tol 1e-10 on the float64 copy of the model at the same parameters), an exact
trace (BackPACK's diagonal Hessian) and, on a ~2k-parameter model, the dense Hessian.
"""
from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import finish, make_config, median, render_table, start, timed_rounds, timing


def _probe_generator(seed: int):
    "The generator for the benchmark's fixed probe vector (seed + 7, as in earlier runs)."
    from gradviz.core import as_generator
    return as_generator(seed + 7)

NAME = "hessian"


@dataclass(frozen=True)
class Config:
    "Everything that defines one run; `--quick` swaps in tiny sizes."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    sizes: tuple[int, ...] = (100, 200, 128, 10)  # MLP widths; the last is the number of classes
    num_samples: int = 1000
    separation: float = 2.0  # distance between nearest cluster means, in within-class std
    train_steps: int = 100  # full-batch SGD steps: loss ≈ 1, so the Hessian has clear outliers and a bulk
    lr: float = 0.2
    small_sizes: tuple[int, ...] = (16, 48, 24, 6)  # ~2k parameters: dense Hessian and eigvalsh are cheap
    small_samples: int = 600
    ks: tuple[int, ...] = (1, 10)
    hvp_batch: int = 5  # products per timed HVP sample
    slq_probes: int = 10
    slq_steps: int = 80
    slq_ref_probes: int = 16  # converged SLQ used as the 50k model's reference density
    slq_ref_steps: int = 120
    trace_probes: int = 100
    pyhessian_bar: float = 1e-3  # relative error at which gradviz and PyHessian are compared
    pyhessian_tols: tuple[float, ...] = (1e-4, 1e-5, 1e-6)  # tried in turn if its default tol=1e-3 misses the bar
    pyhessian_max_iter: int = 1000  # per eigenvalue, for the tightened runs (its default is 100)
    gradviz_tols: tuple[float, ...] = (1e-2, 1e-3, 1e-4)  # tried in turn, then the default √eps
    eigsh_bar: float = 1e-6  # relative error for the gradviz-vs-ARPACK comparison (float64)
    eigsh_tols: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10)
    reference_tol: float = 1e-10
    reorth_rows: tuple[int, ...] = (10, 40, 80)

    @property
    def num_classes(self) -> int: return self.sizes[-1]


QUICK = dict(quick=True, repeat=1, sizes=(12, 24, 16, 4), num_samples=128, train_steps=20, small_sizes=(6, 12, 3),
             small_samples=60, hvp_batch=2, slq_probes=3, slq_steps=12, slq_ref_probes=4, slq_ref_steps=24,
             trace_probes=20, pyhessian_tols=(1e-5,), pyhessian_max_iter=200, gradviz_tols=(1e-3,),
             eigsh_tols=(1e-4, 1e-8), reorth_rows=(4, 12))


# ----------------------------------------------------------------------------- helpers
@dataclass
class Problem:
    "A trained model, its data and the loss as a function of the flat parameters."
    model: object
    X: object
    y: object
    f: Callable
    theta: object
    sizes: tuple[int, ...]
    final_loss: float

    @property
    def num_params(self) -> int: return int(self.theta.numel())

    def describe(self) -> dict:
        return {"architecture": "MLP " + "→".join(map(str, self.sizes)) + " (tanh)", "num_params": self.num_params,
                "num_samples": int(self.X.shape[0]), "num_classes": self.sizes[-1], "dtype": str(self.theta.dtype),
                "loss": "cross_entropy (mean)", "final_training_loss": self.final_loss}


def build_problem(sizes, num_samples, separation, steps, lr, seed, device) -> Problem:
    "Seeded Gaussian clusters and a tanh MLP trained briefly with full-batch SGD (float32)."
    import torch.nn.functional as F
    from gradviz.autodiff import flat_objective
    from gradviz.data import gaussian_clusters, mlp, train
    X, y = gaussian_clusters(n=num_samples, dim=sizes[0], num_classes=sizes[-1], separation=separation, seed=seed, device=device)
    model = mlp(list(sizes), activation="tanh", seed=seed, device=device)
    losses = train(model, "cross_entropy", X, y, steps=steps, lr=lr, seed=seed)
    f, theta = flat_objective(model, F.cross_entropy, X, y)
    return Problem(model, X, y, f, theta, tuple(sizes), float(losses[-1]))


def float64_copy(p: Problem, device) -> Problem:
    "The same model and data in float64 (on the CPU when the device has no float64, e.g. MPS)."
    import torch
    import torch.nn.functional as F
    from gradviz.autodiff import flat_objective
    dev = torch.device("cpu") if device.type == "mps" else device
    model = copy.deepcopy(p.model).to(device=dev, dtype=torch.float64)
    X, y = p.X.to(device=dev, dtype=torch.float64), p.y.to(dev)
    f, theta = flat_objective(model, F.cross_entropy, X, y)
    return Problem(model, X, y, f, theta, p.sizes, p.final_loss)


def start_vector(size: int, seed: int):
    "The float64 Gaussian direction gradviz's `lanczos(seed=seed)` starts from, for ARPACK's `v0`."
    import torch
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, generator=g, dtype=torch.float64).numpy()


def rel_err(values, reference) -> float:
    "Largest relative error between two lists of eigenvalues, both sorted from largest down."
    import numpy as np
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]
    r = np.asarray(reference, dtype=np.float64).ravel()[: len(v)]
    return float(np.max(np.abs(v - r) / np.maximum(np.abs(r), 1e-300)))


def w1_between(a, b) -> float:
    "Wasserstein-1 distance between two spectral densities given as nodes and weights."
    import scipy.stats
    return float(scipy.stats.wasserstein_distance(a.nodes.ravel(), b.nodes.ravel(), a.weights.ravel(), b.weights.ravel()))


class ProductClock:
    """Instrumentation: seconds an operator spends inside its products during one call.

    Wraps the operator instance's product function; the wrapper costs two clock reads per product."""
    def __init__(self, op, device):
        from gradviz.core import synchronize
        self.seconds, inner = 0.0, op._matvec
        def timed(v):
            synchronize(device)
            t0 = time.perf_counter()
            out = inner(v)
            synchronize(device)
            self.seconds += time.perf_counter() - t0
            return out
        op._matvec = timed

    def profiled(self, fn: Callable, sink: list) -> Callable:
        "`fn` that appends the product seconds of each call to `sink`."
        def call():
            self.seconds = 0.0
            out = fn()
            sink.append(self.seconds)
            return out
        return call


def overhead_stats(run_times, bare_times, batch: int, hvps: int, inside) -> dict:
    """Three views of (run time) / (its products' time): the target's ratio of medians; the median of per-round
    ratios (each run paired with the bare products timed just before it); and total / seconds spent inside
    products during the run itself, which is insensitive to load changes between the two measurements."""
    hvp_s = median(bare_times) / batch
    return {"overhead_ratio": median(run_times) / (hvps * hvp_s),
            "overhead_ratio_paired_rounds": median([t / (hvps * b / batch) for t, b in zip(run_times, bare_times)]),
            "overhead_ratio_in_run": median([t / s for t, s in zip(run_times, inside)]) if inside else None,
            "hvp_fraction_in_run": median([s / t for t, s in zip(run_times, inside)]) if inside else None,
            "in_run_seconds_per_product": median([s / hvps for s in inside]) if inside else None,
            "non_hvp_seconds_per_step": median([(t - s) / hvps for t, s in zip(run_times, inside)]) if inside else None}


def fmt_s(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)): return "—"
    if x < 1e-3: return f"{x * 1e6:.1f} µs"
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"


def fmt_g(x, digits=3) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


class Bench:
    "Run state: configuration, device, collected targets, notes and the printed table."
    def __init__(self, cfg: Config, device):
        self.cfg, self.device = cfg, device
        self.notes: list[str] = []
        self.targets: list[dict] = []
        self.rows: list[tuple[str, str, str]] = []

    def rounds(self, fns: dict) -> dict: return timed_rounds(fns, self.cfg.repeat, self.device)

    def note(self, text: str) -> None: self.notes.append(text)

    def row(self, label: str, value: str, detail: str = "") -> None: self.rows.append((label, value, detail))

    def section(self, title: str) -> None: self.rows.append((f"== {title} ==", "", ""))

    def target(self, name: str, what: str, value, op: str, threshold: float, note: str = "") -> dict:
        met = None if value is None or not math.isfinite(value) else (value <= threshold if op == "<=" else value >= threshold)
        t = {"name": name, "what": what, "value": value, "target": f"{op} {threshold:g}", "met": met, "note": note}
        self.targets.append(t)
        return t


def bare_hvp(op, v, batch: int) -> Callable:
    "`batch` unchecked products with the same vector: the cost unit the iterative methods pay."
    def call():
        for _ in range(batch): op._apply(v)
    return call


def lanczos_values(op, k, tol, seed):
    from gradviz.linalg import lanczos
    vals, _ = lanczos(op, k, which="largest", tol=tol, seed=seed)
    return vals.detach().cpu().numpy()


def eigsh_values(A, k, tol, v0):
    import numpy as np
    import scipy.sparse.linalg as spla
    vals = spla.eigsh(A, k=k, which="LA", tol=tol, v0=v0.astype(A.dtype), return_eigenvectors=False)
    return np.sort(vals)[::-1]


def calibrate(run: Callable, count: Callable, tols, reference, bar) -> dict:
    """Try tolerances from loosest to tightest; keep the first whose result is within `bar` of `reference`.

    `run(tol)` returns eigenvalues; `count()` returns products used by the last call."""
    tried = []
    for tol in tols:
        vals = run(tol)
        entry = {"tol": tol, "hvps": count(), "rel_err": rel_err(vals, reference), "values": vals}
        tried.append(entry)
        if entry["rel_err"] <= bar: return {**entry, "met_bar": True, "tried": [{k: e[k] for k in ("tol", "hvps", "rel_err")} for e in tried]}
    last = tried[-1]
    return {**last, "met_bar": False, "tried": [{k: e[k] for k in ("tol", "hvps", "rel_err")} for e in tried]}


# ----------------------------------------------------------------------------- peers
def import_pyhessian(b: Bench):
    "PyHessian's `hessian` class and module, or None with a note."
    if b.device.type not in ("cpu", "cuda"):
        b.note(f"PyHessian skipped: it supports only 'cpu' and 'cuda', not {b.device.type!r}")
        return None, None
    if b.device.type == "cuda":
        import torch
        if b.device.index not in (None, torch.cuda.current_device()):
            b.note(f"PyHessian skipped: it moves data to the current CUDA device, not {b.device}")
            return None, None
    try:
        import pyhessian
        return pyhessian.hessian, sys.modules["pyhessian.hessian"]
    except Exception as e:  # noqa: BLE001 - any import failure is recorded, not fatal
        b.note(f"PyHessian skipped: import failed ({type(e).__name__}: {e})")
        return None, None


@contextmanager
def pyhessian_counter(module):
    """Count PyHessian's products (and power-iteration steps per eigenvalue) for an untimed run.

    Its module-level helpers are wrapped for the duration only; behaviour is unchanged."""
    counts = {"hvps": 0, "steps_per_eigenvalue": Counter()}
    hvp, orth = module.hessian_vector_product, module.orthnormal
    def counted_hvp(*a, **k):
        counts["hvps"] += 1
        return hvp(*a, **k)
    def counted_orth(w, v_list):
        counts["steps_per_eigenvalue"][len(v_list)] += 1
        return orth(w, v_list)
    module.hessian_vector_product, module.orthnormal = counted_hvp, counted_orth
    try: yield counts
    finally: module.hessian_vector_product, module.orthnormal = hvp, orth


def backpack_trace(p: Problem):
    "Exact tr(H) from BackPACK's diagonal Hessian (no sampling), or raises."
    import torch
    from backpack import backpack, extend
    from backpack.extensions import DiagHessian
    model, loss_fn = extend(copy.deepcopy(p.model)), extend(torch.nn.CrossEntropyLoss())
    loss = loss_fn(model(p.X), p.y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with backpack(DiagHessian()): loss.backward()
    return sum(float(q.diag_h.double().sum()) for q in model.parameters())


def curvlinops_operator(p: Problem):
    "curvlinops' Hessian operator over the same model and data (one batch)."
    import torch
    from curvlinops import HessianLinearOperator
    model = copy.deepcopy(p.model)
    return HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), [q for q in model.parameters() if q.requires_grad], [(p.X, p.y)])


# ----------------------------------------------------------------------------- sections
def section_reference(b: Bench, p64: Problem) -> dict:
    "Top eigenvalues of the float64 Hessian from ARPACK at a tight tolerance, cross-checked with gradviz Lanczos."
    from gradviz.linalg import HessianOperator
    cfg, kmax = b.cfg, max(b.cfg.ks)
    op = HessianOperator(p64.f, p64.theta)
    t0 = time.perf_counter()
    ref = eigsh_values(op.to_scipy(), kmax, cfg.reference_tol, start_vector(op.size, cfg.seed + 1))
    seconds, hvps = time.perf_counter() - t0, op.num_hvps
    op.reset_count()
    check = lanczos_values(op, kmax, cfg.reference_tol, cfg.seed + 1)
    out = {"method": f"scipy eigsh (ARPACK), float64 copy of the model at the same parameters, tol={cfg.reference_tol:g}, k={kmax}",
           "top_eigenvalues": ref, "hvps": hvps, "seconds": seconds,
           "check_gradviz_lanczos_float64_rel_diff": rel_err(check, ref), "check_hvps": op.num_hvps}
    b.section("Reference (float64)")
    b.row(f"λ1 … λ{kmax} (eigsh tol {cfg.reference_tol:g})", f"{ref[0]:.6g} … {ref[-1]:.6g}",
          f"{hvps} HVPs; gradviz Lanczos float64 agrees to {out['check_gradviz_lanczos_float64_rel_diff']:.1e}")
    return out


def section_hvp(b: Bench, p: Problem, op, op_fwd, pyh, curv_op) -> dict:
    "Per-product time of each way to multiply the Hessian with a vector."
    import torch
    cfg = b.cfg
    g = torch.Generator().manual_seed(cfg.seed + 7)
    v = torch.randn(op.size, generator=g).to(device=b.device, dtype=op.dtype)
    fns = {"gradviz_reverse_over_reverse": bare_hvp(op, v, cfg.hvp_batch),
           "gradviz_forward_over_reverse": bare_hvp(op_fwd, v, cfg.hvp_batch)}
    products = {"gradviz_reverse_over_reverse": op._apply(v), "gradviz_forward_over_reverse": op_fwd._apply(v)}
    if pyh is not None:
        from pyhessian.utils import hessian_vector_product
        v_list = [t.view_as(q) for t, q in zip(torch.split(v, [q.numel() for q in pyh.params]), pyh.params)]
        def pyh_batch():
            for _ in range(cfg.hvp_batch): hessian_vector_product(pyh.gradsH, pyh.params, v_list)
        fns["pyhessian_retained_graph"] = pyh_batch
        products["pyhessian_retained_graph"] = torch.cat([h.reshape(-1) for h in hessian_vector_product(pyh.gradsH, pyh.params, v_list)])
    if curv_op is not None:
        def curv_batch():
            for _ in range(cfg.hvp_batch): curv_op @ v
        fns["curvlinops_forward_over_reverse"] = curv_batch
        products["curvlinops_forward_over_reverse"] = curv_op @ v
    times = b.rounds(fns)
    base = products["gradviz_reverse_over_reverse"]
    out = {"dtype": str(op.dtype), "products_per_sample": cfg.hvp_batch, "timings": {}, "rel_diff_to_default": {}}
    ref_med = median(times["gradviz_reverse_over_reverse"]) / cfg.hvp_batch
    b.section(f"Hessian-vector product ({p.num_params:,} params, {p.X.shape[0]:,} samples, {op.dtype})")
    for name, ts in times.items():
        rec = timing(ts, per=cfg.hvp_batch)
        rec["ratio_to_default"] = rec["median_s"] / ref_med
        out["timings"][name] = rec
        diff = float((products[name].reshape(-1) - base).norm() / base.norm())
        out["rel_diff_to_default"][name] = diff
        b.row(name.replace("_", " "), fmt_s(rec["median_s"]), f"{rec['ratio_to_default']:.2f}× default; product differs by {diff:.1e}")
    out["bare_hvp_median_s"] = ref_med
    return out


def section_lanczos(b: Bench, op, clock: ProductClock, ref) -> dict:
    "gradviz Lanczos top-k at its default tolerance: products, time, overhead over bare products, accuracy."
    import torch
    cfg = b.cfg
    v = torch.randn(op.size, generator=_probe_generator(cfg.seed)).to(device=b.device, dtype=op.dtype)
    runs = {}
    for k in cfg.ks:
        op.reset_count()
        vals = lanczos_values(op, k, None, cfg.seed)
        runs[k] = {"hvps": op.num_hvps, "values": vals, "rel_err_vs_reference": rel_err(vals, ref[:k])}
    inside = {k: [] for k in cfg.ks}
    fns = {"bare_hvp": bare_hvp(op, v, cfg.hvp_batch)}
    for k in cfg.ks: fns[f"top{k}"] = clock.profiled(lambda k=k: lanczos_values(op, k, None, cfg.seed), inside[k])
    times = b.rounds(fns)
    hvp_s = median(times["bare_hvp"]) / cfg.hvp_batch
    out = {"dtype": str(op.dtype), "tol": "default: sqrt(eps) of the dtype", "bare_hvp": timing(times["bare_hvp"], per=cfg.hvp_batch)}
    b.section("Lanczos top-k (float32, default tol)")
    b.row("bare HVP (same rounds)", fmt_s(hvp_s))
    for k in cfg.ks:
        r = runs[k]
        t = timing(times[f"top{k}"])
        o = overhead_stats(times[f"top{k}"], times["bare_hvp"], cfg.hvp_batch, r["hvps"], inside[k])
        out[f"top{k}"] = {**r, "timing": t, **o, "in_run_hvp_seconds": inside[k]}
        b.target(f"lanczos_top{k}_overhead", f"lanczos top-{k} time / (HVPs × bare HVP)", o["overhead_ratio"], "<=", 1.15,
                 f"{r['hvps']} HVPs; paired rounds {o['overhead_ratio_paired_rounds']:.3f}; total / in-run product time {o['overhead_ratio_in_run']:.3f}")
        b.row(f"top-{k}: {r['hvps']} HVPs", fmt_s(t["median_s"]),
              f"overhead {o['overhead_ratio']:.3f} (≤1.15; paired {o['overhead_ratio_paired_rounds']:.3f}, in-run {o['overhead_ratio_in_run']:.3f}); "
              f"rel err {r['rel_err_vs_reference']:.1e}; product in run {fmt_s(o['in_run_seconds_per_product'])}, non-HVP {fmt_s(o['non_hvp_seconds_per_step'])}/step")
    return out


def section_slq(b: Bench, op, clock: ProductClock) -> dict:
    "SLQ density: time and overhead, and its distance to a converged SLQ density (no dense spectrum at this size)."
    import torch
    from gradviz.linalg import slq_density
    cfg = b.cfg
    v = torch.randn(op.size, generator=_probe_generator(cfg.seed)).to(device=b.device, dtype=op.dtype)
    inside, inside_plain, holder = [], [], {}
    def run():
        holder["d"] = slq_density(op, cfg.slq_probes, cfg.slq_steps, seed=cfg.seed)
    def run_plain():
        holder["plain"] = slq_density(op, cfg.slq_probes, cfg.slq_steps, seed=cfg.seed, reorthogonalize=False)
    times = b.rounds({"bare_hvp": bare_hvp(op, v, cfg.hvp_batch), "slq": clock.profiled(run, inside),
                      "slq_no_reorth": clock.profiled(run_plain, inside_plain)})
    hvps = cfg.slq_probes * cfg.slq_steps
    hvp_s = median(times["bare_hvp"]) / cfg.hvp_batch
    t = timing(times["slq"])
    o = overhead_stats(times["slq"], times["bare_hvp"], cfg.hvp_batch, hvps, inside)
    ratio, non_hvp = o["overhead_ratio"], o["non_hvp_seconds_per_step"]
    op.reset_count()
    t0 = time.perf_counter()
    ref = slq_density(op, cfg.slq_ref_probes, cfg.slq_ref_steps, seed=cfg.seed + 1000)
    ref_s, ref_hvps = time.perf_counter() - t0, op.num_hvps
    lo, hi = ref.support
    w1 = w1_between(holder["d"], ref)
    out = {"dtype": str(op.dtype), "num_probes": cfg.slq_probes, "num_steps": cfg.slq_steps, "hvps": hvps,
           "bare_hvp": timing(times["bare_hvp"], per=cfg.hvp_batch), "timing": t, **o, "in_run_hvp_seconds": inside,
           "support": holder["d"].support, "trace_estimate_from_density": holder["d"].moment(1) * op.size,
           "reference": {"method": f"SLQ with {cfg.slq_ref_probes} probes × {cfg.slq_ref_steps} steps, independent seed",
                         "hvps": ref_hvps, "seconds": ref_s, "support": (lo, hi)},
           "w1_vs_reference": w1, "spectral_range": hi - lo, "w1_over_range": w1 / (hi - lo)}
    tp = timing(times["slq_no_reorth"])
    w1p = w1_between(holder["plain"], ref)
    out["without_reorthogonalization"] = {
        "what": "slq_density(..., reorthogonalize=False): same probes and steps, three-term recurrence only (for comparison, no target)",
        "timing": tp, **overhead_stats(times["slq_no_reorth"], times["bare_hvp"], cfg.hvp_batch, hvps, inside_plain),
        "w1_vs_reference": w1p, "w1_over_range": w1p / (hi - lo)}
    b.target("slq_overhead", f"SLQ {cfg.slq_probes}×{cfg.slq_steps} time / (HVPs × bare HVP)", ratio, "<=", 1.15,
             f"paired rounds {o['overhead_ratio_paired_rounds']:.3f}; total / in-run product time {o['overhead_ratio_in_run']:.3f}; "
             f"non-HVP {non_hvp * 1e3:.2f} ms per step")
    b.target("slq_w1_large_vs_converged_slq", "W1 / spectral range, 50k model, vs converged SLQ (no exact spectrum)",
             w1 / (hi - lo), "<=", 0.05, f"{cfg.slq_steps} HVPs per probe; reference {cfg.slq_ref_probes}×{cfg.slq_ref_steps}")
    b.section(f"SLQ density ({cfg.slq_probes} probes × {cfg.slq_steps} steps, float32)")
    b.row(f"SLQ: {hvps} HVPs", fmt_s(t["median_s"]),
          f"overhead {ratio:.3f} (≤1.15; paired {o['overhead_ratio_paired_rounds']:.3f}, in-run {o['overhead_ratio_in_run']:.3f}); "
          f"product in run {fmt_s(o['in_run_seconds_per_product'])} vs bare {fmt_s(hvp_s)}; non-HVP {fmt_s(non_hvp)}/step")
    b.row("W1 / range vs converged SLQ", fmt_g(w1 / (hi - lo)), f"W1 {w1:.3g}, range [{lo:.3g}, {hi:.3g}]; reference {ref_hvps} HVPs in {ref_s:.1f} s")
    nr = out["without_reorthogonalization"]
    b.row("SLQ, reorthogonalize=False", fmt_s(tp["median_s"]),
          f"overhead {nr['overhead_ratio']:.3f} (in-run {nr['overhead_ratio_in_run']:.3f}); non-HVP {fmt_s(nr['non_hvp_seconds_per_step'])}/step; "
          f"W1 / range {nr['w1_over_range']:.3g}")
    return out


def section_trace(b: Bench, p: Problem, op, pyh_mod, pyh) -> dict:
    "Hutchinson's trace against the exact trace, with PyHessian's trace timed in the same rounds."
    import numpy as np
    import torch
    from gradviz.linalg import hutchinson_trace
    cfg = b.cfg
    out = {"dtype": str(op.dtype), "num_probes": cfg.trace_probes}
    try:
        t0 = time.perf_counter()
        exact = backpack_trace(p)
        out["reference"] = {"method": "exact: sum of BackPACK DiagHessian (float32 model; checked against the dense trace on the small model)",
                            "trace": exact, "seconds": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001
        b.note(f"BackPACK exact trace failed ({type(e).__name__}: {e}); using a long Hutchinson run as the reference")
        n = 20 * cfg.trace_probes
        est = hutchinson_trace(op, n, seed=cfg.seed + 2000)
        exact = est.estimate
        out["reference"] = {"method": f"Hutchinson with {n} probes (independent seed)", "trace": exact, "stderr": est.stderr}
    v = torch.randn(op.size, generator=_probe_generator(cfg.seed)).to(device=b.device, dtype=op.dtype)
    holder = {}
    def gv(): holder["gv"] = hutchinson_trace(op, cfg.trace_probes, seed=cfg.seed)
    fns = {"bare_hvp": bare_hvp(op, v, cfg.hvp_batch), "gradviz_hutchinson": gv}
    pyh_runs = {}
    if pyh is not None:
        settings = {"pyhessian_trace_default": dict(maxIter=100, tol=1e-3), "pyhessian_trace_fixed": dict(maxIter=cfg.trace_probes, tol=0.0)}
        for name, kw in settings.items():
            torch.manual_seed(cfg.seed)
            with pyhessian_counter(pyh_mod) as c: samples = pyh.trace(**kw)
            est = float(np.mean(samples))
            pyh_runs[name] = {"kwargs": kw, "probes": c["hvps"], "estimate": est, "rel_err_vs_reference": abs(est - exact) / abs(exact)}
            def call(kw=kw):
                torch.manual_seed(cfg.seed)
                pyh.trace(**kw)
            fns[name] = call
    times = b.rounds(fns)
    est = holder["gv"]
    t = timing(times["gradviz_hutchinson"])
    o = overhead_stats(times["gradviz_hutchinson"], times["bare_hvp"], cfg.hvp_batch, cfg.trace_probes, [])
    out.update({"bare_hvp": timing(times["bare_hvp"], per=cfg.hvp_batch), "timing": t, "hvps": cfg.trace_probes,
                "overhead_ratio": o["overhead_ratio"], "overhead_ratio_paired_rounds": o["overhead_ratio_paired_rounds"],
                "estimate": est.estimate, "stderr": est.stderr,
                "rel_err_vs_reference": abs(est.estimate - exact) / abs(exact),
                "error_in_stderr": abs(est.estimate - exact) / est.stderr if est.stderr > 0 else None})
    b.section(f"Hutchinson trace ({cfg.trace_probes} probes, float32)")
    b.row("reference trace", f"{exact:.6g}", out["reference"]["method"].split(" (")[0])
    b.row("gradviz hutchinson_trace", fmt_s(t["median_s"]),
          f"{est.estimate:.6g} ± {est.stderr:.2g}: rel err {out['rel_err_vs_reference']:.1e} ({out['error_in_stderr']:.1f} stderr); overhead {out['overhead_ratio']:.3f}")
    if pyh_runs:
        out["pyhessian"] = {}
        for name, r in pyh_runs.items():
            tt = timing(times[name])
            r = {**r, "timing": tt, "ratio_gradviz_over_pyhessian": t["median_s"] / tt["median_s"]}
            out["pyhessian"][name] = r
            b.row(f"PyHessian trace({', '.join(f'{k}={v}' for k, v in r['kwargs'].items())})", fmt_s(tt["median_s"]),
                  f"{r['probes']} probes; {r['estimate']:.6g}: rel err {r['rel_err_vs_reference']:.1e}")
        fixed = out["pyhessian"]["pyhessian_trace_fixed"]
        b.row("gradviz / PyHessian at equal probes", f"{fixed['ratio_gradviz_over_pyhessian']:.2f}×",
              "neither reaches 1e-3 relative error with ~100 probes (Monte Carlo error ~ stderr)")
        b.note(f"PyHessian's trace() stops when the running mean changes by < tol relative; with its default tol=1e-3 it stopped after "
               f"{out['pyhessian']['pyhessian_trace_default']['probes']} probes (relative error "
               f"{out['pyhessian']['pyhessian_trace_default']['rel_err_vs_reference']:.1e}); the equal-probe run uses tol=0")
    return out


def section_pyhessian(b: Bench, op, ref, pyh, pyh_mod) -> dict:
    "Top-k eigenvalues: PyHessian's power iteration vs gradviz Lanczos, both at their cheapest setting within the bar."
    import numpy as np
    import torch
    cfg, bar = b.cfg, b.cfg.pyhessian_bar
    out = {"dtype": str(op.dtype), "accuracy_bar": bar,
           "protocol": ("each method's tolerance is tightened (loosest first) until every requested eigenvalue is within "
                        f"{bar:g} relative error of the float64 reference; the times at those settings are compared. "
                        "PyHessian's default (tol=1e-3, maxIter=100) is also timed and its accuracy reported.")}
    b.section(f"PyHessian power iteration vs gradviz Lanczos (float32, bar {bar:g})")
    def pyh_run(k, tol, max_iter):
        torch.manual_seed(cfg.seed)
        vals, _ = pyh.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        return np.sort(np.asarray(vals, dtype=np.float64))[::-1]
    def pyh_calibrate(k, tol, max_iter):
        with pyhessian_counter(pyh_mod) as c: vals = pyh_run(k, tol, max_iter)
        steps = [c["steps_per_eigenvalue"][i] for i in range(k)]
        return {"tol": tol, "maxIter": max_iter, "hvps": c["hvps"], "steps_per_eigenvalue": steps,
                "values": vals, "rel_err": rel_err(vals, ref[:k]), "per_eigenvalue_rel_err": np.abs(vals - ref[:k]) / np.abs(ref[:k])}
    for k in cfg.ks:
        default = pyh_calibrate(k, 1e-3, 100)
        matched, tried = (default if default["rel_err"] <= bar else None), []
        if matched is None:
            for tol in cfg.pyhessian_tols:
                r = pyh_calibrate(k, tol, cfg.pyhessian_max_iter)
                tried.append({x: r[x] for x in ("tol", "maxIter", "hvps", "rel_err")})
                if r["rel_err"] <= bar: matched = r; break
            if matched is None:
                matched = r
                b.note(f"PyHessian top-{k} did not reach {bar:g} relative error with tol down to {cfg.pyhessian_tols[-1]:g} "
                       f"and maxIter={cfg.pyhessian_max_iter}; the speedup is measured against its most accurate run and is a lower bound")
        def gv_run(tol, k=k):
            op.reset_count()
            return lanczos_values(op, k, tol, cfg.seed)
        gv = calibrate(gv_run, lambda: op.num_hvps, list(cfg.gradviz_tols) + [None], ref[:k], bar)
        op.reset_count()
        fns = {"gradviz": lambda k=k, tol=gv["tol"]: lanczos_values(op, k, tol, cfg.seed),
               "pyhessian_default": lambda k=k: pyh_run(k, 1e-3, 100)}
        if matched is not default:
            fns["pyhessian_matched"] = lambda k=k, m=matched: pyh_run(k, m["tol"], m["maxIter"])
        times = b.rounds(fns)
        tg, td = timing(times["gradviz"]), timing(times["pyhessian_default"])
        tm = timing(times["pyhessian_matched"]) if "pyhessian_matched" in times else td
        speedup = tm["median_s"] / tg["median_s"]
        out[f"top{k}"] = {
            "gradviz": {"tol": gv["tol"] if gv["tol"] is not None else "default sqrt(eps)", "hvps": gv["hvps"], "rel_err": gv["rel_err"],
                        "tolerances_tried": gv["tried"], "timing": tg},
            "pyhessian_default": {**{x: default[x] for x in ("tol", "maxIter", "hvps", "steps_per_eigenvalue", "rel_err", "per_eigenvalue_rel_err", "values")}, "timing": td},
            "pyhessian_matched": {**{x: matched[x] for x in ("tol", "maxIter", "hvps", "steps_per_eigenvalue", "rel_err", "values")},
                                  "met_bar": matched["rel_err"] <= bar, "tolerances_tried": tried, "timing": tm},
            "ratio_gradviz_over_pyhessian_matched": tg["median_s"] / tm["median_s"], "speedup_matched": speedup,
            "ratio_gradviz_over_pyhessian_default": tg["median_s"] / td["median_s"], "speedup_vs_default": td["median_s"] / tg["median_s"],
        }
        b.target(f"pyhessian_top{k}_speedup", f"PyHessian time / gradviz time, top-{k}, both ≤ {bar:g} rel. error", speedup, ">=", 2.0,
                 f"gradviz {gv['hvps']} HVPs (rel err {gv['rel_err']:.1e}); PyHessian {matched['hvps']} HVPs at tol={matched['tol']:g} "
                 f"(rel err {matched['rel_err']:.1e}); PyHessian default: {default['hvps']} HVPs, rel err {default['rel_err']:.1e}")
        b.row(f"top-{k} gradviz (tol {gv['tol'] if gv['tol'] is not None else '√eps'})", fmt_s(tg["median_s"]), f"{gv['hvps']} HVPs, rel err {gv['rel_err']:.1e}")
        steps = lambda r: "" if k == 1 else f"; steps per eigenvalue {r['steps_per_eigenvalue']}"
        b.row(f"top-{k} PyHessian default tol 1e-3", fmt_s(td["median_s"]),
              f"{default['hvps']} HVPs, rel err {default['rel_err']:.1e} ({'meets' if default['rel_err'] <= bar else 'misses'} {bar:g}){steps(default)}")
        if matched is not default:
            b.row(f"top-{k} PyHessian tol {matched['tol']:g}, maxIter {matched['maxIter']}", fmt_s(tm["median_s"]),
                  f"{matched['hvps']} HVPs, rel err {matched['rel_err']:.1e}{steps(matched)}")
        b.row(f"top-{k} speedup at ≤{bar:g}", f"{speedup:.1f}×", "target ≥ 2×")
    # density: its release calls torch.eig, removed from torch; record what happens
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    with pyhessian_counter(pyh_mod) as c:
        try:
            eigs, weights = pyh.density()
            out["density"] = {"ok": True, "hvps": c["hvps"], "seconds": time.perf_counter() - t0}
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            out["density"] = {"ok": False, "error": f"{type(e).__name__}: {msg}", "hvps_before_failure": c["hvps"],
                              "seconds_before_failure": time.perf_counter() - t0}
            b.note(f"PyHessian density() failed on torch {torch.__version__} after {c['hvps']} HVPs: {type(e).__name__}: {msg} "
                   "(its release calls the removed torch.eig); PyHessian was not patched, so there is no PyHessian density to compare")
    b.row("PyHessian density()", "ok" if out["density"]["ok"] else "fails", out["density"].get("error", ""))
    return out


def section_eigsh64(b: Bench, p64: Problem, ref) -> dict:
    "gradviz Lanczos vs ARPACK over the same float64 HVP, each at its cheapest tolerance within the bar."
    import torch
    from gradviz.linalg import HessianOperator
    cfg, bar = b.cfg, b.cfg.eigsh_bar
    op = HessianOperator(p64.f, p64.theta)
    A = op.to_scipy()
    v0 = start_vector(op.size, cfg.seed)
    v = torch.randn(op.size, generator=_probe_generator(cfg.seed), dtype=torch.float64).to(op.device)
    out = {"dtype": "float64", "accuracy_bar": bar, "starting_vector": "identical for both (gradviz's seeded start passed as ARPACK v0)",
           "protocol": f"tolerances tried loosest first from {list(cfg.eigsh_tols)}; each method keeps the first within {bar:g} of the reference"}
    fns, chosen = {"bare_hvp": bare_hvp(op, v, cfg.hvp_batch)}, {}
    def counted(run):
        def go(tol):
            op.reset_count()
            return run(tol)
        return go
    for k in cfg.ks:
        gv = calibrate(counted(lambda tol, k=k: lanczos_values(op, k, tol, cfg.seed)), lambda: op.num_hvps, cfg.eigsh_tols, ref[:k], bar)
        ar = calibrate(counted(lambda tol, k=k: eigsh_values(A, k, tol, v0)), lambda: op.num_hvps, cfg.eigsh_tols, ref[:k], bar)
        chosen[k] = (gv, ar)
        fns[f"lanczos_top{k}"] = lambda k=k, tol=gv["tol"]: lanczos_values(op, k, tol, cfg.seed)
        fns[f"eigsh_top{k}"] = lambda k=k, tol=ar["tol"]: eigsh_values(A, k, tol, v0)
    times = b.rounds(fns)
    hvp_s = median(times["bare_hvp"]) / cfg.hvp_batch
    out["bare_hvp"] = timing(times["bare_hvp"], per=cfg.hvp_batch)
    b.section(f"gradviz Lanczos vs scipy eigsh (ARPACK), float64, bar {bar:g}")
    b.row("bare HVP float64", fmt_s(hvp_s))
    for k in cfg.ks:
        gv, ar = chosen[k]
        tl, te = timing(times[f"lanczos_top{k}"]), timing(times[f"eigsh_top{k}"])
        ratio = tl["median_s"] / te["median_s"]
        strip = lambda r: {x: r[x] for x in ("tol", "hvps", "rel_err", "met_bar", "tried")}
        out[f"top{k}"] = {"gradviz_lanczos": {**strip(gv), "timing": tl, "overhead_ratio": tl["median_s"] / (gv["hvps"] * hvp_s)},
                          "scipy_eigsh": {**strip(ar), "timing": te, "overhead_ratio": te["median_s"] / (ar["hvps"] * hvp_s)},
                          "ratio_gradviz_over_eigsh": ratio}
        both = gv["met_bar"] and ar["met_bar"]
        b.target(f"eigsh_top{k}_ratio", f"gradviz lanczos time / eigsh time, top-{k}, float64, both ≤ {bar:g}", ratio if both else None, "<=", 1.0,
                 f"lanczos {gv['hvps']} HVPs at tol={gv['tol']:g} (err {gv['rel_err']:.1e}); eigsh {ar['hvps']} HVPs at tol={ar['tol']:g} (err {ar['rel_err']:.1e})")
        b.row(f"top-{k} gradviz lanczos tol {gv['tol']:g}", fmt_s(tl["median_s"]), f"{gv['hvps']} HVPs, rel err {gv['rel_err']:.1e}")
        b.row(f"top-{k} eigsh tol {ar['tol']:g}", fmt_s(te["median_s"]), f"{ar['hvps']} HVPs, rel err {ar['rel_err']:.1e}")
        b.row(f"top-{k} gradviz / eigsh", f"{ratio:.2f}×", "target ≤ 1.0×")
    return out


def section_eigsh32(b: Bench, p: Problem, op, curv_op, ref) -> dict:
    "float32: gradviz Lanczos (default tol) vs ARPACK over gradviz's operator and over curvlinops' operator, same tol."
    import numpy as np
    cfg = b.cfg
    tol = math.sqrt(float(np.finfo(np.float32).eps))
    v0 = start_vector(op.size, cfg.seed)
    A = op.to_scipy()
    out = {"dtype": "float32", "tol": tol, "note": "ARPACK in single precision with tol = √eps(float32), gradviz's default Lanczos tol; "
           "accuracy vs the float64 reference is reported, not matched"}
    cal, fns = {}, {}
    curv_A, curv_count = None, {"n": 0}
    if curv_op is not None:
        raw = curv_op.to_scipy(dtype=np.float32)
        import scipy.sparse.linalg as spla
        def mv(x):
            curv_count["n"] += 1
            return raw.matvec(x)
        counted_A = spla.LinearOperator(raw.shape, matvec=mv, rmatvec=mv, dtype=np.float32)
        curv_A = raw
    for k in cfg.ks:
        op.reset_count(); g = lanczos_values(op, k, None, cfg.seed); gh = op.num_hvps
        op.reset_count(); e = eigsh_values(A, k, tol, v0); eh = op.num_hvps
        cal[k] = {"gradviz_lanczos": {"hvps": gh, "rel_err": rel_err(g, ref[:k])}, "scipy_eigsh_gradviz_operator": {"hvps": eh, "rel_err": rel_err(e, ref[:k])}}
        fns[f"lanczos_top{k}"] = lambda k=k: lanczos_values(op, k, None, cfg.seed)
        fns[f"eigsh_top{k}"] = lambda k=k: eigsh_values(A, k, tol, v0)
        if curv_A is not None:
            curv_count["n"] = 0
            c = eigsh_values(counted_A, k, tol, v0)
            cal[k]["curvlinops_eigsh"] = {"hvps": curv_count["n"], "rel_err": rel_err(c, ref[:k])}
            fns[f"curvlinops_top{k}"] = lambda k=k: eigsh_values(curv_A, k, tol, v0)
    times = b.rounds(fns)
    b.section("float32: gradviz Lanczos vs eigsh over gradviz's and curvlinops' operators")
    for k in cfg.ks:
        r = cal[k]
        tl = timing(times[f"lanczos_top{k}"])
        r["gradviz_lanczos"]["timing"] = tl
        r["scipy_eigsh_gradviz_operator"]["timing"] = te = timing(times[f"eigsh_top{k}"])
        r["ratio_gradviz_over_eigsh"] = tl["median_s"] / te["median_s"]
        b.row(f"top-{k} gradviz lanczos", fmt_s(tl["median_s"]), f"{r['gradviz_lanczos']['hvps']} HVPs, rel err {r['gradviz_lanczos']['rel_err']:.1e}")
        b.row(f"top-{k} eigsh (gradviz op)", fmt_s(te["median_s"]),
              f"{r['scipy_eigsh_gradviz_operator']['hvps']} HVPs, rel err {r['scipy_eigsh_gradviz_operator']['rel_err']:.1e}; gradviz/eigsh {r['ratio_gradviz_over_eigsh']:.2f}×")
        if curv_A is not None:
            r["curvlinops_eigsh"]["timing"] = tc = timing(times[f"curvlinops_top{k}"])
            r["ratio_gradviz_over_curvlinops"] = ratio = tl["median_s"] / tc["median_s"]
            b.target(f"curvlinops_top{k}_ratio", f"gradviz lanczos time / curvlinops+eigsh time, top-{k}, float32", ratio, "<=", 1.0,
                     f"curvlinops {r['curvlinops_eigsh']['hvps']} HVPs (rel err {r['curvlinops_eigsh']['rel_err']:.1e})")
            b.row(f"top-{k} curvlinops + eigsh", fmt_s(tc["median_s"]),
                  f"{r['curvlinops_eigsh']['hvps']} HVPs, rel err {r['curvlinops_eigsh']['rel_err']:.1e}; gradviz/curvlinops {ratio:.2f}×")
        out[f"top{k}"] = r
    return out


def section_small(b: Bench, ps: Problem, ps64: Problem) -> dict:
    "~2k-parameter model: SLQ and Hutchinson against the exact spectrum and trace of the dense float64 Hessian."
    import torch
    from gradviz.autodiff import hessian
    from gradviz.linalg import HessianOperator, hutchinson_trace, slq_density
    cfg = b.cfg
    t0 = time.perf_counter()
    H = hessian(ps64.f, ps64.theta)
    eigs = torch.linalg.eigvalsh(H).cpu().numpy()[::-1].copy()
    dense_s = time.perf_counter() - t0
    lo, hi, tr = float(eigs[-1]), float(eigs[0]), float(eigs.sum())
    op = HessianOperator(ps.f, ps.theta)
    steps = min(cfg.slq_steps, op.size)
    holder = {}
    def run(): holder["d"] = slq_density(op, cfg.slq_probes, steps, seed=cfg.seed)
    times = b.rounds({"slq": run})
    d = holder["d"]
    w1 = d.wasserstein(eigs)
    w1_plain = slq_density(op, cfg.slq_probes, steps, seed=cfg.seed, reorthogonalize=False).wasserstein(eigs)
    est = hutchinson_trace(op, cfg.trace_probes, seed=cfg.seed)
    lz = {}
    for k in cfg.ks:
        if k < op.size:
            lz[f"top{k}_rel_err"] = rel_err(lanczos_values(op, k, None, cfg.seed), eigs[:k])
    out = {"model": ps.describe(), "exact": {"method": "torch.linalg.eigvalsh of the dense float64 Hessian (gradviz.autodiff.hessian)",
                                             "seconds": dense_s, "lambda_min": lo, "lambda_max": hi, "trace": tr},
           "slq": {"dtype": str(op.dtype), "num_probes": cfg.slq_probes, "num_steps": steps, "hvps_per_probe": steps,
                   "timing": timing(times["slq"]), "w1": w1, "spectral_range": hi - lo, "w1_over_range": w1 / (hi - lo),
                   "w1_over_range_without_reorthogonalization": w1_plain / (hi - lo)},
           "hutchinson": {"num_probes": cfg.trace_probes, "estimate": est.estimate, "stderr": est.stderr,
                          "rel_err": abs(est.estimate - tr) / abs(tr), "error_in_stderr": abs(est.estimate - tr) / est.stderr if est.stderr > 0 else None},
           "lanczos_float32_vs_exact": lz}
    try:
        bt64, bt32 = backpack_trace(ps64), backpack_trace(ps)
        out["backpack_trace_check"] = {"float64_rel_diff": abs(bt64 - tr) / abs(tr), "float32_rel_diff": abs(bt32 - tr) / abs(tr)}
    except Exception as e:  # noqa: BLE001
        b.note(f"BackPACK trace check on the small model failed: {type(e).__name__}: {e}")
    b.target("slq_w1_small_vs_exact", f"W1 / spectral range, {ps.num_params:,}-param model, vs exact eigvalsh", w1 / (hi - lo), "<=", 0.05,
             f"{cfg.slq_probes} probes × {steps} HVPs per probe (≤ 100)")
    b.section(f"Small model vs exact dense Hessian ({ps.num_params:,} params)")
    b.row("SLQ W1 / range", fmt_g(w1 / (hi - lo)), f"W1 {w1:.3g}, range [{lo:.3g}, {hi:.3g}]; {fmt_s(out['slq']['timing']['median_s'])}; "
          f"without re-orthogonalisation {w1_plain / (hi - lo):.3g}")
    b.row("Hutchinson rel err", fmt_g(out["hutchinson"]["rel_err"]), f"{est.estimate:.5g} ± {est.stderr:.2g} vs exact {tr:.5g}")
    if lz: b.row("Lanczos float32 rel err", f"{max(lz.values()):.1e}", ", ".join(f"{k.split('_')[0]}: {v:.1e}" for k, v in lz.items()))
    if "backpack_trace_check" in out:
        b.row("BackPACK trace vs dense", f"{out['backpack_trace_check']['float64_rel_diff']:.1e}", f"float32: {out['backpack_trace_check']['float32_rel_diff']:.1e}")
    return out


def section_overhead(b: Bench, op, hvp_s: float, lanczos_steps: int) -> dict:
    """What a Lanczos step costs besides its product, measured piece by piece on the 50k problem's sizes:
    full re-orthogonalisation (classical Gram–Schmidt twice, as gradviz does, and once), writing a basis row
    into a freshly allocated buffer vs a reused one, and forming k Ritz vectors from the basis."""
    import torch
    from gradviz.core import time_call
    cfg = b.cfg
    g = torch.Generator().manual_seed(cfg.seed + 11)
    rows = [m for m in cfg.reorth_rows if m <= op.size]
    kw = dict(repeat=max(cfg.repeat, 5) * 4, warmup=2, device=b.device)
    Q = torch.randn(max(rows + [lanczos_steps]) + 1, op.size, generator=g).to(device=b.device, dtype=op.dtype)
    w = torch.randn(op.size, generator=g).to(device=b.device, dtype=op.dtype)
    def gram_schmidt(m, passes):
        def go():
            x = w
            for _ in range(passes): x = x - Q[:m].T @ (Q[:m] @ x)
        return go
    out = {"bare_hvp_median_s": hvp_s, "gram_schmidt": {}}
    b.section("Per-step costs besides the product (microbenchmarks)")
    for m in rows:
        t2, t1 = time_call(gram_schmidt(m, 2), **kw), time_call(gram_schmidt(m, 1), **kw)
        out["gram_schmidt"][str(m)] = {"twice": {"median_s": t2.median, "times_s": list(t2.times), "fraction_of_hvp": t2.median / hvp_s},
                                       "once": {"median_s": t1.median, "times_s": list(t1.times), "fraction_of_hvp": t1.median / hvp_s}}
        b.row(f"Gram–Schmidt vs m = {m} rows", fmt_s(t2.median), f"{t2.median / hvp_s:.1%} of a bare HVP; one pass {fmt_s(t1.median)} ({t1.median / hvp_s:.1%})")
    m = lanczos_steps
    def fresh():
        B = torch.empty((20 * max(cfg.ks) + 101, op.size), dtype=op.dtype, device=b.device)
        for j in range(m): B[j] = w
    reused = torch.empty((m, op.size), dtype=op.dtype, device=b.device)
    def reuse():
        for j in range(m): reused[j] = w
    tf, tr = time_call(fresh, **kw), time_call(reuse, **kw)
    out["basis_rows"] = {"rows": m, "fresh_buffer_s_per_row": tf.median / m, "reused_buffer_s_per_row": tr.median / m,
                         "fresh_times_s": list(tf.times), "reused_times_s": list(tr.times)}
    b.row("write a basis row, fresh buffer", fmt_s(tf.median / m), f"reused buffer {fmt_s(tr.median / m)} (first-touch page faults)")
    k = max(cfg.ks)
    S = torch.randn(m, k, generator=g).to(device=b.device, dtype=op.dtype)
    ta, tb = time_call(lambda: Q[:m].T @ S, **kw), time_call(lambda: (S.T @ Q[:m]).T, **kw)
    out["ritz_vectors"] = {"rows": m, "k": k, "QT_at_S_s": ta.median, "ST_at_Q_transposed_s": tb.median,
                           "QT_at_S_times_s": list(ta.times), "ST_at_Q_times_s": list(tb.times)}
    b.row(f"Ritz vectors Qᵀ S (m={m}, k={k})", fmt_s(ta.median), f"(Sᵀ Q)ᵀ {fmt_s(tb.median)}; a bare HVP is {fmt_s(hvp_s)}")
    return out


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    import torch
    from gradviz.linalg import HessianOperator
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")  # PyHessian's backward(create_graph=True)
    device = torch.device(cfg.device)
    b = Bench(cfg, device)
    t_start = time.perf_counter()
    p = build_problem(cfg.sizes, cfg.num_samples, cfg.separation, cfg.train_steps, cfg.lr, cfg.seed, device)
    p64 = float64_copy(p, device)
    ps = build_problem(cfg.small_sizes, cfg.small_samples, cfg.separation, cfg.train_steps, cfg.lr, cfg.seed, device)
    ps64 = float64_copy(ps, device)
    op = HessianOperator(p.f, p.theta)
    op_fwd = HessianOperator(p.f, p.theta, method="forward-over-reverse")
    clock = ProductClock(op, device)
    pyh_cls, pyh_mod = import_pyhessian(b)
    pyh = None
    if pyh_cls is not None:
        try: pyh = pyh_cls(copy.deepcopy(p.model), torch.nn.functional.cross_entropy, data=(p.X, p.y), cuda=device.type == "cuda")
        except Exception as e:  # noqa: BLE001
            b.note(f"PyHessian skipped: building its hessian object failed ({type(e).__name__}: {e})")
    curv_op, curv_info = None, {}
    try:
        t0 = time.perf_counter()
        curv_op = curvlinops_operator(p)
        import curvlinops
        curv_info = {"version": getattr(curvlinops, "__version__", None), "construction_seconds": time.perf_counter() - t0,
                     "note": "HessianLinearOperator (vmap over jvp of jacrev: forward-over-reverse), construction includes its determinism check"}
    except Exception as e:  # noqa: BLE001
        b.note(f"curvlinops skipped: {type(e).__name__}: {e}")
        curv_info = {"skipped": f"{type(e).__name__}: {e}"}

    results = {"config": asdict(cfg), "model": p.describe()}
    results["reference"] = ref_info = section_reference(b, p64)
    ref = ref_info["top_eigenvalues"]
    results["hvp"] = section_hvp(b, p, op, op_fwd, pyh, curv_op)
    results["lanczos"] = section_lanczos(b, op, clock, ref)
    results["slq"] = section_slq(b, op, clock)
    results["trace"] = section_trace(b, p, op, pyh_mod, pyh)
    results["pyhessian"] = section_pyhessian(b, op, ref, pyh, pyh_mod) if pyh is not None else {"skipped": True}
    results["eigsh_float64"] = section_eigsh64(b, p64, ref)
    results["eigsh_float32"] = section_eigsh32(b, p, op, curv_op, ref)
    results["curvlinops"] = curv_info
    results["small_model"] = section_small(b, ps, ps64)
    results["overhead_components"] = section_overhead(b, op, results["hvp"]["bare_hvp_median_s"], results["lanczos"][f"top{max(cfg.ks)}"]["hvps"])
    if pyh is None: b.target("pyhessian_top1_speedup", "PyHessian comparison", None, ">=", 2.0, "skipped (see notes)")
    if curv_op is None: b.target("curvlinops_top1_ratio", "curvlinops comparison", None, "<=", 1.0, "skipped (see notes)")
    results["targets"] = b.targets
    results["notes"] = b.notes + [
        "All float32 timings use the same model, data, dtype and thread count for every library; ratios come from interleaved rounds.",
        "HVP counts for PyHessian and curvlinops come from an untimed run with the same seed, instrumented to count products.",
    ]
    lo = results["slq"]["reference"]["support"][0]
    if abs(lo) < ref[-1]:
        results["notes"].append(f"PyHessian's power iteration finds the largest-magnitude eigenvalues; here they are also the largest "
                                f"algebraic ones (λ_min ≈ {lo:.3g}, λ_{len(ref)} ≈ {ref[-1]:.3g}).")
    else:
        results["notes"].append(f"Caution: |λ_min| ≈ {abs(lo):.3g} ≥ λ_{len(ref)} ≈ {ref[-1]:.3g}, so PyHessian's power iteration "
                                "(largest magnitude) may target other eigenvalues than Lanczos and eigsh (largest algebraic).")
    results["wall_seconds"] = time.perf_counter() - t_start
    results["table"] = b.rows
    return results


def render(results: dict) -> str:
    "The table printed to stdout."
    lines = []
    m = results["machine"]
    lines.append(f"gradviz Hessian benchmark — torch {m['torch']}, {m['torch_threads']} thread(s), {m['cpu_count']} CPUs, device {m['device']}, "
                 f"repeat {results['config']['repeat']}{' (quick)' if results['config']['quick'] else ''}")
    lines.append(f"model: {results['model']['architecture']}, {results['model']['num_params']:,} params, {results['model']['num_samples']:,} samples, "
                 f"final loss {results['model']['final_training_loss']:.3f}")
    return render_table(results, lines, name_width=34, value_width=9)


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/hessian.json`; returns its path."
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    results = {"machine": machine, **run(cfg)}
    results["machine"]["load_average_1min_at_end"] = __import__("os").getloadavg()[0]
    results["machine"]["peers"] = _peer_versions()
    return finish(NAME, results, render(results), args.results_dir, cfg.quick)


def _peer_versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("pyhessian", "curvlinops-for-pytorch", "backpack-for-pytorch", "torch-optimizer"):
        try: out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: out[dist] = None
    return out


if __name__ == "__main__":
    main()
