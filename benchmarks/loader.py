"""Loader benchmark: curvature over data loaders (`HessianOperator.from_data`) against peers that stream batches.

    python -m benchmarks.loader [--quick] [--threads N] [--repeat R] [--device D]

Two float32 problems, each 2,100 samples in batches of 256 (8 full batches and one of 52):
- `mlp`: a tanh MLP 64→256→128→10 (50,826 parameters) on seeded Gaussian clusters, trained 100 full-batch SGD steps;
- `cnn`: `gradviz.data.tiny_cnn` (1,180 parameters) on `tiny_images`, trained the same way.

Sections, per problem:
1. `eig`: top-10 Hessian eigenvalues at <= `bar` (1e-3) largest relative error against a float64 reference (gradviz
   Lanczos at tol 1e-10 on the float64 copy, in memory, cross-checked with ARPACK at tol 1e-10). Timed end to end,
   operator construction included (each library with its default checks): gradviz `lanczos` on `from_data`
   (streaming, `keep_graphs=True`, and the default `keep_graphs=None`, which keeps graphs that fit in 1 GiB), hessian-eigenthings 1.0 `lanczos` (its `max_iter` raised until it meets the
   bar), curvlinops `HessianLinearOperator` + `scipy.sparse.linalg.eigsh` (tol tightened from 1e-2), PyHessian
   `dataloader=` power iteration (tol tightened from its default 1e-3, maxIter 1000, under a time cap). Each peer's
   error at its default settings is recorded too. Products are counted.
2. `trace`: gradviz `hutchpp_trace` / `hutchinson_trace` against hessian-eigenthings' `hutch_plus_plus` /
   `hutchinson` and PyHessian's `trace(tol=0)` at equal product budgets; absolute error against the exact trace
   (BackPACK's diagonal Hessian on the float64 copy), over `trace_repeat` seeds.
3. `products`: one loader product (streaming and kept graphs, both product methods) against the in-memory product on
   the concatenated data, with the streaming product broken into its parts.
4. `distributed`: the top-10 Lanczos run on two processes (`gradviz.parallel.run_workers`, each rank its contiguous
   `split_evenly` half of the samples (1,050 each) in batches of the same size, `distributed=True`, one torch thread
   each) against one process on all batches, with and without process start-up.

hessian-eigenthings averages batch Hessians with equal weights (`total / num_batches`); with a plain mean loss and a
short last batch that is not the full-data Hessian. Its matched runs use the loss `sum · num_batches / N`, which makes
its operator exactly the full-data mean Hessian; its default-settings run uses the plain mean loss a user would write.
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from . import finish, make_config, median, render_table, start, timed_rounds, timing
from .hessian import Bench, backpack_trace, eigsh_values, fmt_s, rel_err, start_vector

NAME = "loader"


@dataclass(frozen=True)
class Config:
    "Everything that defines one run; `--quick` swaps in tiny sizes."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    problems: tuple[str, ...] = ("mlp", "cnn")
    mlp_sizes: tuple[int, ...] = (64, 256, 128, 10)
    cnn_width: int = 8
    cnn_image_size: int = 8
    num_samples: int = 2100
    batch_size: int = 256
    train_steps: int = 100
    lr: float = 0.2
    k: int = 10
    bar: float = 1e-3  # largest relative error of the top-k eigenvalues every method must reach
    reference_tol: float = 1e-10
    solver_repeat: int = 3  # timed rounds of the eigen-solvers (at most `repeat`)
    gradviz_tols: tuple = (1e-2, 1e-3, None, 1e-5, 1e-6)  # tried in turn; None: lanczos's default √eps
    eigenthings_steps: tuple[int, ...] = (20, 25, 30, 35, 40, 50, 60, 80, 120, 160, 240)  # max_iter tried in turn; 20 = its default 2k
    eigsh_tols: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    pyhessian_tols: tuple[float, ...] = (1e-4, 1e-5, 1e-6)  # after its default 1e-3
    pyhessian_max_iter: int = 1000
    pyhessian_cap_s: float = 45.0  # wall-time cap of one PyHessian eigenvalues() call
    trace_budgets: tuple[int, ...] = (50, 100)
    trace_repeat: int = 2  # seeds per trace method and budget (each also a timed round)
    product_batch: int = 3  # products per timed product sample
    distributed: bool = True
    distributed_modes: tuple[str, ...] = ("streaming", "keep_graphs")
    distributed_problems: tuple[str, ...] = ("mlp", "cnn")  # the smoke run spawns workers for the MLP only
    worker_timeout_s: float = 300.0


QUICK = dict(quick=True, repeat=1, mlp_sizes=(16, 32, 4), cnn_width=4, num_samples=300, batch_size=64, train_steps=20,
             k=3, solver_repeat=1, gradviz_tols=(1e-2, None, 1e-6), eigenthings_steps=(6, 12, 24, 48), eigsh_tols=(1e-3, 1e-6),
             pyhessian_tols=(1e-6,), pyhessian_max_iter=200, pyhessian_cap_s=4.0, trace_budgets=(12,), trace_repeat=1,
             product_batch=2, distributed_modes=("streaming",), distributed_problems=("mlp",), worker_timeout_s=120.0)


# ----------------------------------------------------------------------------- problems
def make_model(spec: dict):
    "The untrained network of a problem spec (same seed, same weights in every process)."
    from gradviz.data import mlp, tiny_cnn
    if spec["kind"] == "mlp": return mlp(list(spec["sizes"]), activation="tanh", seed=spec["seed"], device="cpu")
    return tiny_cnn(in_channels=1, num_classes=4, image_size=spec["image_size"], width=spec["width"], seed=spec["seed"],
                    device="cpu")


def make_data(spec: dict):
    from gradviz.data import gaussian_clusters, tiny_images
    if spec["kind"] == "mlp":
        return gaussian_clusters(n=spec["n"], dim=spec["sizes"][0], num_classes=spec["sizes"][-1], separation=2.0,
                                 seed=spec["seed"], device="cpu")
    return tiny_images(n=spec["n"], num_classes=4, image_size=spec["image_size"], seed=spec["seed"], device="cpu")


def split(X, y, batch_size: int) -> list:
    "The data as a list of (X, y) batches in order: full batches and a short last one."
    return [(X[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def build(cfg: Config, kind: str, device) -> SimpleNamespace:
    "A trained float32 model, its data, its batches and its float64 copy."
    import torch
    from gradviz.data import count_parameters, train
    spec = {"kind": kind, "seed": cfg.seed, "n": cfg.num_samples, "sizes": cfg.mlp_sizes, "width": cfg.cnn_width,
            "image_size": cfg.cnn_image_size}
    X, y = make_data(spec)
    model = make_model(spec)
    losses = train(model, "cross_entropy", X, y, steps=cfg.train_steps, lr=cfg.lr, seed=cfg.seed)
    model.eval()
    model, X, y = model.to(device), X.to(device), y.to(device)
    arch = ("MLP " + "→".join(map(str, cfg.mlp_sizes)) + " (tanh)") if kind == "mlp" else \
        f"tiny_cnn (width {cfg.cnn_width}, {cfg.cnn_image_size}×{cfg.cnn_image_size} images, ReLU)"
    dev64 = torch.device("cpu") if device.type == "mps" else device
    return SimpleNamespace(kind=kind, spec=spec, model=model, X=X, y=y, batches=split(X, y, cfg.batch_size),
                           model64=copy.deepcopy(model).to(device=dev64, dtype=torch.float64),
                           X64=X.to(device=dev64, dtype=torch.float64), y64=y.to(dev64),
                           describe={"architecture": arch, "num_params": count_parameters(model), "num_samples": len(y),
                                     "batch_sizes": [len(b[1]) for b in split(X, y, cfg.batch_size)],
                                     "dtype": "float32", "loss": "cross_entropy (mean)", "final_training_loss": float(losses[-1])})


def share(X, y, batch_size: int, world_size: int, rank: int) -> list:
    "`rank`'s batches: its contiguous `split_evenly` share of the samples (counts differ by one at most), batched."
    from gradviz.parallel import split_evenly
    mine = split_evenly(len(y), world_size, rank)
    return split(X[mine], y[mine], batch_size)


def CE(reduction: str = "mean"):
    import torch
    return torch.nn.CrossEntropyLoss(reduction=reduction)


# ----------------------------------------------------------------------------- runners (each returns values, products)
def gradviz_top(model, batches, k, tol, seed, keep_graphs):
    from gradviz.linalg import HessianOperator, lanczos
    op = HessianOperator.from_data(model, CE(), batches, keep_graphs=keep_graphs)
    vals, _ = lanczos(op, k, which="largest", tol=tol, seed=seed)
    return vals.detach().cpu().numpy(), op.num_matvecs


def eigenthings_loss(num_batches: int, num_data: int):
    "hessian-eigenthings averages batches with equal weights: sum · num_batches / N makes that the full-data mean."
    crit = CE("sum")
    def loss_fn(model, batch):
        inputs, targets = batch
        return crit(model(inputs), targets) * (num_batches / num_data)
    return loss_fn


def eigenthings_top(model, batches, k, max_iter, seed, default: bool = False):
    import hessian_eigenthings as het
    n = sum(len(b[1]) for b in batches)
    loss_fn = het.supervised_loss(CE()) if default else eigenthings_loss(len(batches), n)
    op = het.HessianOperator(model, batches, loss_fn)
    if default: res = het.lanczos(op, k=k, seed=seed)
    else: res = het.lanczos(op, k=k, max_iter=max_iter, which="LA", reorthogonalize=True, seed=seed)
    return res.eigenvalues.detach().cpu().numpy(), res.iterations


def curvlinops_top(model, batches, k, tol, v0):
    import numpy as np
    import scipy.sparse.linalg as spla
    from curvlinops import HessianLinearOperator
    op = HessianLinearOperator(model, CE(), [p for p in model.parameters() if p.requires_grad], batches)
    raw, count = op.to_scipy(dtype=np.float32), {"n": 0}
    def mv(x):
        count["n"] += 1 if x.ndim == 1 or x.shape[-1] == 1 else x.shape[-1]
        return raw.matvec(x)
    A = spla.LinearOperator(raw.shape, matvec=mv, rmatvec=mv, dtype=np.float32)
    return eigsh_values(A, k, tol, v0), count["n"]


class _Cap(Exception):
    "Raised inside PyHessian's product when a run passes its time cap."


def pyhessian_top(model, batches, k, tol, max_iter, seed, cap_s, device):
    "PyHessian power iteration with deflation over the loader; products counted; stopped after `cap_s` seconds."
    import torch
    from pyhessian import hessian
    torch.manual_seed(seed)  # PyHessian draws its start vectors from the global generator
    h = hessian(model, CE(), dataloader=batches, cuda=device.type == "cuda")
    inner, count, t0 = h.dataloader_hv_product, {"n": 0}, time.perf_counter()
    def counted(v):
        if time.perf_counter() - t0 > cap_s: raise _Cap()
        count["n"] += 1
        return inner(v)
    h.dataloader_hv_product = counted
    try: vals, _ = h.eigenvalues(top_n=k, maxIter=max_iter, tol=tol)
    except _Cap: return None, count["n"]
    import numpy as np
    return np.sort(np.asarray(vals))[::-1], count["n"]


# ----------------------------------------------------------------------------- sections
def section_reference(b: Bench, P) -> dict:
    "Top-k of the float64 Hessian on the concatenated data: gradviz Lanczos at tol 1e-10, cross-checked with ARPACK."
    from gradviz.linalg import HessianOperator, lanczos
    cfg = b.cfg
    op = HessianOperator.from_model(P.model64, CE(), P.X64, P.y64)
    t0 = time.perf_counter()
    vals, _ = lanczos(op, cfg.k, tol=cfg.reference_tol, seed=cfg.seed + 1)
    secs, hvps = time.perf_counter() - t0, op.num_hvps
    ref = vals.cpu().numpy().tolist()
    op.reset_count()
    check = eigsh_values(op.to_scipy(), cfg.k, cfg.reference_tol, start_vector(op.size, cfg.seed + 2))
    smallest, _ = lanczos(op, 1, which="smallest", seed=cfg.seed)
    out = {"method": f"gradviz lanczos tol={cfg.reference_tol:g} on the float64 copy of the model, in memory on all "
                     f"{len(P.y)} samples", "top_eigenvalues": ref, "hvps": hvps, "seconds": secs,
           "check_eigsh_float64_rel_diff": rel_err(check, ref), "smallest_eigenvalue": float(smallest[0])}
    b.row(f"reference λ1 … λ{cfg.k} (float64)", f"{ref[0]:.5g}…{ref[-1]:.4g}",
          f"{hvps} HVPs; ARPACK tol {cfg.reference_tol:g} agrees to {out['check_eigsh_float64_rel_diff']:.1e}; λmin {out['smallest_eigenvalue']:.3g}")
    return out


def _calibrate(tries, run, ref, bar) -> dict:
    "Run each setting in turn (loosest first) until the error meets `bar`; each run's wall time, products and error."
    tried = []
    for setting in tries:
        t0 = time.perf_counter()
        vals, products = run(setting)
        secs = time.perf_counter() - t0
        err = None if vals is None else rel_err(vals, ref)
        tried.append({"setting": setting, "products": products, "rel_err": err, "seconds": secs,
                      "top": None if vals is None else [float(v) for v in vals]})
        if err is not None and err <= bar: return {"chosen": setting, "met_bar": True, "tried": tried}
    return {"chosen": None, "met_bar": False, "tried": tried}


def section_eig(b: Bench, P, ref: list, peers: dict) -> dict:
    "Top-k eigenvalues at matched accuracy: every method calibrated, then timed end to end in interleaved rounds."
    import torch
    cfg, k, bar = b.cfg, b.cfg.k, b.cfg.bar
    v0 = start_vector(P.describe["num_params"], cfg.seed)
    out, fns, matched = {"bar": bar, "k": k, "methods": {}}, {}, {}
    for mode, keep in (("gradviz_streaming", False), ("gradviz_keep_graphs", True), ("gradviz_default", None)):
        cal = _calibrate(cfg.gradviz_tols, lambda tol, keep=keep: gradviz_top(P.model, P.batches, k, tol, cfg.seed, keep), ref, bar)
        out["methods"][mode] = cal
        if cal["met_bar"]:
            tol = cal["chosen"]
            fns[mode] = lambda tol=tol, keep=keep: gradviz_top(P.model, P.batches, k, tol, cfg.seed, keep)
    if peers.get("hessian_eigenthings"):
        m = copy.deepcopy(P.model)
        vals, its = eigenthings_top(m, P.batches, k, None, cfg.seed, default=True)
        default = {"settings": "plain mean loss (equal batch weights), lanczos(k) defaults: max_iter=2k, which='LM', tol=1e-4",
                   "products": its, "rel_err": rel_err(vals, ref)}
        cal = _calibrate(cfg.eigenthings_steps, lambda s: eigenthings_top(m, P.batches, k, s, cfg.seed), ref, bar)
        cal["default"] = default
        out["methods"]["hessian_eigenthings"] = cal
        if cal["met_bar"]:
            s = cal["chosen"]
            fns["hessian_eigenthings"] = lambda s=s: eigenthings_top(m, P.batches, k, s, cfg.seed)
    if peers.get("curvlinops"):
        m = copy.deepcopy(P.model)
        t0 = time.perf_counter()
        vals, n = curvlinops_top(m, P.batches, k, 0.0, v0)
        default = {"settings": "eigsh defaults: tol=0 (machine precision), which='LA' asked", "products": n,
                   "rel_err": rel_err(vals, ref), "seconds": time.perf_counter() - t0}
        cal = _calibrate(cfg.eigsh_tols, lambda tol: curvlinops_top(m, P.batches, k, tol, v0), ref, bar)
        cal["default"] = default
        out["methods"]["curvlinops_eigsh"] = cal
        if cal["met_bar"]:
            tol = cal["chosen"]
            fns["curvlinops_eigsh"] = lambda tol=tol: curvlinops_top(m, P.batches, k, tol, v0)
    if peers.get("pyhessian"):
        m = copy.deepcopy(P.model)
        t0 = time.perf_counter()
        vals, n = pyhessian_top(m, P.batches, k, 1e-3, 100, cfg.seed, cfg.pyhessian_cap_s, b.device)
        default = {"settings": "eigenvalues(top_n=k) defaults: maxIter=100, tol=1e-3", "products": n,
                   "rel_err": None if vals is None else rel_err(vals, ref), "seconds": time.perf_counter() - t0}
        if default["rel_err"] is not None and default["rel_err"] <= bar:
            cal = {"chosen": 1e-3, "met_bar": True, "tried": [{"setting": 1e-3, **default}]}
        else:
            cal = _calibrate(cfg.pyhessian_tols, lambda tol: pyhessian_top(m, P.batches, k, tol, cfg.pyhessian_max_iter, cfg.seed,
                                                                           cfg.pyhessian_cap_s, b.device), ref, bar)
        cal["default"] = default
        cal["cap_s"] = cfg.pyhessian_cap_s
        cal["max_iter"] = cfg.pyhessian_max_iter
        out["methods"]["pyhessian"] = cal
    times = b.rounds_n(fns, min(cfg.solver_repeat, cfg.repeat))
    for name, meth in out["methods"].items():
        if name in times: meth["timing"] = timing(times[name])
        elif meth["met_bar"]:  # PyHessian: too slow to repeat; its calibration run is its time
            meth["timing"] = timing([meth["tried"][-1]["seconds"]], note="one untimed-round run (the calibration run)")
        meth["products"] = meth["tried"][-1]["products"] if meth["met_bar"] else None
        meth["rel_err"] = meth["tried"][-1]["rel_err"]
    g = {m: out["methods"][m]["timing"]["median_s"] for m in ("gradviz_streaming", "gradviz_keep_graphs", "gradviz_default")
         if "timing" in out["methods"][m]}
    peer_t = {m: v["timing"]["median_s"] for m, v in out["methods"].items() if not m.startswith("gradviz") and "timing" in v}
    if peer_t:
        fastest = min(peer_t, key=peer_t.get)
        out["fastest_peer"] = fastest
        for mode, t in g.items():
            out[f"ratio_fastest_peer_over_{mode}"] = peer_t[fastest] / t
    b.section(f"{P.kind}: top-{k} eigenvalues at ≤ {bar:g} relative error (end to end, operator construction included)")
    for name, meth in out["methods"].items():
        setting = meth["chosen"] if meth["met_bar"] else "—"
        t = meth.get("timing", {}).get("median_s")
        err = meth["rel_err"]
        detail = f"{meth['products'] if meth['products'] is not None else '—'} products, rel err {err:.1e}" if err is not None else \
            "did not finish within the cap"
        detail += f"; setting {setting}" + ("" if meth["met_bar"] else f" (missed the bar; tried {[e['setting'] for e in meth['tried']]})")
        if "default" in meth:
            d = meth["default"]
            detail += f"; DEFAULTS: {d['products']} products, rel err " + (f"{d['rel_err']:.1e}" if d["rel_err"] is not None else "— (cap)")
        b.row(name.replace("_", " "), fmt_s(t) if t else "—", detail)
    for mode in g:
        if f"ratio_fastest_peer_over_{mode}" in out:
            r = out[f"ratio_fastest_peer_over_{mode}"]
            b.row(f"fastest peer / {mode.replace('_', ' ')}", f"{r:.2f}×", f"fastest peer: {out['fastest_peer']}; target ≥ 1.5")
            b.target(f"{P.kind}_top{k}_speedup_vs_fastest_peer_{mode.split('_', 1)[1]}",
                     f"fastest peer time / gradviz time ({mode}), top-{k} at ≤ {bar:g}", r, ">=", 1.5, f"fastest peer {out['fastest_peer']}")
    if not peer_t:
        b.target(f"{P.kind}_top{k}_speedup_vs_fastest_peer_streaming", "no peer met the bar or none installed", None, ">=", 1.5, "see notes")
    return out


def section_trace(b: Bench, P, peers: dict) -> dict:
    "Trace estimators at equal product budgets: absolute error against the exact trace, and time."
    import numpy as np
    import torch
    from gradviz.linalg import HessianOperator, hutchinson_trace, hutchpp_trace
    cfg = b.cfg
    t0 = time.perf_counter()
    try:
        exact = backpack_trace(SimpleNamespace(model=P.model64, X=P.X64, y=P.y64))
        ref = {"method": "exact: sum of BackPACK's DiagHessian on the float64 copy, all samples", "trace": exact}
    except Exception as e:  # noqa: BLE001
        op = HessianOperator.from_data(P.model64, CE(), split(P.X64, P.y64, cfg.batch_size), keep_graphs=True)
        est = hutchpp_trace(op, 3000, seed=cfg.seed + 999)
        exact = est.estimate
        ref = {"method": f"Hutch++ with 3000 products on the float64 copy (BackPACK failed: {type(e).__name__}: {e})",
               "trace": exact, "stderr": est.stderr}
        b.note(f"{P.kind}: BackPACK exact trace failed ({type(e).__name__}); reference is a 3000-product Hutch++")
    ref["seconds"] = time.perf_counter() - t0
    keep = HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=True)
    stream = HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=False)
    het_op = None
    if peers.get("hessian_eigenthings"):
        import hessian_eigenthings as het
        het_op = het.HessianOperator(copy.deepcopy(P.model), P.batches, eigenthings_loss(len(P.batches), len(P.y)))
    pyh, pyh_count = None, {"n": 0}
    if peers.get("pyhessian"):
        from pyhessian import hessian
        pyh = hessian(copy.deepcopy(P.model), CE(), dataloader=P.batches, cuda=b.device.type == "cuda")
        inner = pyh.dataloader_hv_product
        def counted(v):
            pyh_count["n"] += 1
            return inner(v)
        pyh.dataloader_hv_product = counted
    out = {"reference": ref, "budgets": {}}
    b.section(f"{P.kind}: trace at equal product budgets (reference {exact:.6g}, {ref['method'].split(':')[0]})")
    for budget in cfg.trace_budgets:
        est, fns, used = {}, {}, {}
        def add(name, fn):
            est[name], used[name] = [], []
            def call(fn=fn, name=name):
                seed = cfg.seed + 100 + len(est[name])
                pyh_count["n"] = 0
                est[name].append(float(fn(seed)))
                used[name].append(pyh_count["n"])
            fns[name] = call
        add("gradviz_hutchpp_keep_graphs", lambda s: hutchpp_trace(keep, budget, seed=s).estimate)
        add("gradviz_hutchinson_keep_graphs", lambda s: hutchinson_trace(keep, budget, seed=s).estimate)
        add("gradviz_hutchpp_streaming", lambda s: hutchpp_trace(stream, budget, seed=s).estimate)
        if het_op is not None:
            import hessian_eigenthings as het
            add("eigenthings_hutch_plus_plus", lambda s: het.hutch_plus_plus(het_op, num_matvecs=budget, seed=s).estimate)
            add("eigenthings_hutchinson", lambda s: het.hutchinson(het_op, num_samples=budget, seed=s).estimate)
        if pyh is not None:
            def pyh_trace(s):
                torch.manual_seed(s)
                return float(np.mean(pyh.trace(maxIter=budget, tol=0.0)))
            add("pyhessian_trace", pyh_trace)
        times = b.rounds_n(fns, cfg.trace_repeat)
        rows = {}
        for name in fns:
            errs = [abs(e - exact) for e in est[name]]
            rows[name] = {"estimates": est[name], "abs_err": errs, "median_abs_err": median(errs),
                          "median_rel_err": median(errs) / abs(exact), "timing": timing(times[name]),
                          "products": (3 * (budget // 3) if name == "eigenthings_hutch_plus_plus" else
                                       max(used[name]) if name == "pyhessian_trace" else budget)}
            if name == "pyhessian_trace" and min(used[name]) < budget:
                rows[name]["stopped_early"] = used[name]
                b.note(f"{P.kind}: PyHessian trace(maxIter={budget}, tol=0) stopped after {used[name]} products: its test "
                       "|mean − previous| / (previous + 1e-6) < tol is negative once the running mean is negative")
            b.row(f"{budget} products: {name.replace('_', ' ')}", fmt_s(rows[name]["timing"]["median_s"]),
                  f"{rows[name]['products']} products{' (stopped early: ' + str(used[name]) + ')' if rows[name].get('stopped_early') else ''}; |err| median {rows[name]['median_abs_err']:.3g} "
                  f"({rows[name]['median_rel_err']:.1e} rel) over {len(errs)} seed(s)")
        out["budgets"][str(budget)] = rows
    return out


def section_products(b: Bench, P) -> dict:
    "A loader product against the in-memory product on the concatenated data, and where a streaming product's time goes."
    import torch
    from gradviz.linalg import HessianOperator
    cfg = b.cfg
    ops = {"in_memory": HessianOperator.from_model(P.model, CE(), P.X, P.y),
           "keep_graphs": HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=True),
           "streaming": HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=False),
           "in_memory_forward_over_reverse": HessianOperator.from_model(P.model, CE(), P.X, P.y, method="forward-over-reverse"),
           "streaming_forward_over_reverse": HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=False,
                                                                       method="forward-over-reverse")}
    v = torch.randn(ops["in_memory"].size, generator=torch.Generator().manual_seed(cfg.seed + 7)).to(b.device)
    base = ops["in_memory"]._apply(v)
    diffs = {n: float((op._apply(v) - base).norm() / base.norm()) for n, op in ops.items()}
    def many(fn):
        def call():
            for _ in range(cfg.product_batch): fn()
        return call
    fns = {n: many(lambda op=op: op._apply(v)) for n, op in ops.items()}
    stream, stream_f = ops["streaming"], ops["streaming_forward_over_reverse"]
    fns["stream_part_data_only"] = many(lambda: list(stream.batches("data")))
    fns["stream_part_build_graphs"] = many(lambda: list(stream._operators("build")))  # forward + create_graph backward
    fns["stream_fwd_part_build"] = many(lambda: list(stream_f._operators("build")))  # the per-batch loss check
    # the target's pair alone, in its own interleaved rounds: mixed with the streaming variants (which build and free
    # large graphs between the samples) both slow down unevenly on this CPU
    pair = b.rounds_n({"in_memory": fns["in_memory"], "keep_graphs": fns["keep_graphs"]}, cfg.repeat)
    pair_t = {n: timing(ts, per=cfg.product_batch) for n, ts in pair.items()}
    times = b.rounds_n(fns, cfg.repeat)
    t = {n: timing(ts, per=cfg.product_batch) for n, ts in times.items()}
    med = {n: r["median_s"] for n, r in t.items()}
    out = {"timings": t, "rel_diff_to_in_memory": diffs, "pair_timings": pair_t,
           "ratio_keep_graphs_over_in_memory": pair_t["keep_graphs"]["median_s"] / pair_t["in_memory"]["median_s"],
           "ratio_keep_graphs_over_in_memory_mixed_rounds": med["keep_graphs"] / med["in_memory"],
           "ratio_streaming_over_in_memory": med["streaming"] / med["in_memory"],
           "ratio_streaming_fwd_over_in_memory_fwd": med["streaming_forward_over_reverse"] / med["in_memory_forward_over_reverse"],
           "streaming_breakdown": {
               "data_s": med["stream_part_data_only"],
               "build_graphs_s": med["stream_part_build_graphs"],
               "double_backward_s": med["streaming"] - med["stream_part_build_graphs"],
               "build_fraction": med["stream_part_build_graphs"] / med["streaming"]},
           "streaming_fwd_breakdown": {"per_batch_loss_check_s": med["stream_fwd_part_build"],
                                       "fraction": med["stream_fwd_part_build"] / med["streaming_forward_over_reverse"]}}
    b.section(f"{P.kind}: one Hessian-vector product ({len(P.batches)} batches vs all {len(P.y)} samples at once)")
    for n in ops: b.row(n.replace("_", " "), fmt_s(med[n]), f"{med[n] / med['in_memory']:.2f}× in-memory; differs by {diffs[n]:.1e}")
    bd = out["streaming_breakdown"]
    b.row("streaming = data + graphs + product", fmt_s(med["streaming"]),
          f"data {fmt_s(bd['data_s'])}, build graphs {fmt_s(bd['build_graphs_s'])} ({bd['build_fraction']:.0%}), "
          f"double backward {fmt_s(bd['double_backward_s'])}")
    b.row("streaming fwd-over-rev: loss check", fmt_s(med["stream_fwd_part_build"]),
          f"{out['streaming_fwd_breakdown']['fraction']:.0%} of its product (one forward per batch to validate the loss)")
    b.row("keep graphs / in memory", f"{out['ratio_keep_graphs_over_in_memory']:.2f}×",
          f"target ≤ 1.1 (the pair in its own rounds: {fmt_s(pair_t['keep_graphs']['median_s'])} vs "
          f"{fmt_s(pair_t['in_memory']['median_s'])}); in the mixed rounds above {out['ratio_keep_graphs_over_in_memory_mixed_rounds']:.2f}×")
    b.row("streaming / in memory", f"{out['ratio_streaming_over_in_memory']:.2f}×", "reported (recomputes forward + backward)")
    b.row("streaming / in memory, fwd-over-rev", f"{out['ratio_streaming_fwd_over_in_memory_fwd']:.2f}×", "same work per product")
    b.target(f"{P.kind}_keep_graphs_product_ratio", "loader product (keep_graphs) / in-memory product",
             out["ratio_keep_graphs_over_in_memory"], "<=", 1.1,
             f"in rounds mixed with streaming products {out['ratio_keep_graphs_over_in_memory_mixed_rounds']:.2f}")
    return out


# ----------------------------------------------------------------------------- distributed
def _dist_worker(rank: int, world_size: int, spec: dict, state: dict, X, y, batch_size: int, k: int, seed: int,
                 keep_graphs: bool, repeat: int, t_parent: float):
    "One rank: its half of the batches, `distributed=True`; times construction, the first product and the Lanczos runs."
    t_entry = time.time()
    import torch
    torch.set_num_threads(1)
    from gradviz.linalg import HessianOperator, lanczos
    model = make_model(spec)
    model.load_state_dict(state)
    model.eval()
    mine = share(X, y, batch_size, world_size, rank)
    kw = dict(distributed=True) if world_size > 1 else {}
    runs, first_product, values = [], None, None
    for r in range(repeat):
        t0 = time.perf_counter()
        op = HessianOperator.from_data(model, CE(), mine, keep_graphs=keep_graphs, **kw)
        if r == 0:
            t1 = time.perf_counter()
            op @ torch.ones(op.size)
            first_product = {"construction_s": t1 - t0, "first_product_s": time.perf_counter() - t1}
            t0 = time.perf_counter()
            op = HessianOperator.from_data(model, CE(), mine, keep_graphs=keep_graphs, **kw)
        vals, _ = lanczos(op, k, tol=None, seed=seed)
        runs.append(time.perf_counter() - t0)
        values = vals.tolist()
    return {"rank": rank, "startup_s": t_entry - t_parent, "runs_s": runs, "products": op.num_matvecs,
            "values": values, "num_batches": len(mine), "num_samples": sum(len(b[1]) for b in mine), **first_product}


def section_distributed(b: Bench, P) -> dict:
    "Two ranks, half the batches each, against one process on all batches; start-up reported separately."
    import numpy as np
    import torch
    from gradviz.linalg import HessianOperator, lanczos
    from gradviz.parallel import run_workers
    cfg = b.cfg
    state = {n: t.detach().cpu().clone() for n, t in P.model.state_dict().items()}
    X, y = P.X.cpu(), P.y.cpu()
    out = {"note": "workers: spawned processes (gloo), one torch thread each; start-up = time from the parent's call to the "
                   "worker function's entry (spawn, interpreter, imports, unpickling); in-process single-process runs in this process"}
    b.section(f"{P.kind}: top-{cfg.k} Lanczos, 2 processes × half the batches vs 1 process (default tol)")
    for mode in cfg.distributed_modes:
        keep = mode == "keep_graphs"
        single = []
        for _ in range(cfg.repeat):
            t0 = time.perf_counter()
            op = HessianOperator.from_data(P.model, CE(), P.batches, keep_graphs=keep)
            vals, _ = lanczos(op, cfg.k, tol=None, seed=cfg.seed)
            single.append(time.perf_counter() - t0)
        single_vals = vals.tolist()
        rec = {"single_in_process": timing(single, products=op.num_matvecs),
               "load_average_1min_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
        for world in (1, 2):
            t_parent = time.time()
            t0 = time.perf_counter()
            res = run_workers(_dist_worker, world, P.spec, state, X, y, cfg.batch_size, cfg.k, cfg.seed, keep, cfg.repeat,
                              t_parent, timeout=cfg.worker_timeout_s)
            wall = time.perf_counter() - t0
            per_run = [max(r["runs_s"][i] for r in res) for i in range(cfg.repeat)]  # the slowest rank sets the pace
            rec[f"workers_{world}"] = {"wall_s": wall, "startup_s": max(r["startup_s"] for r in res),
                                       "lanczos": timing(per_run), "products": res[0]["products"],
                                       "construction_s": max(r["construction_s"] for r in res),
                                       "first_product_s": max(r["first_product_s"] for r in res),
                                       "ranks": [{k: r[k] for k in ("rank", "num_batches", "num_samples", "startup_s", "runs_s")} for r in res],
                                       "max_rel_diff_values_vs_single": float(np.max(np.abs(np.subtract(res[0]["values"], single_vals))
                                                                                     / np.abs(single_vals)))}
        w1, w2, s = rec["workers_1"], rec["workers_2"], rec["single_in_process"]["median_s"]
        rec["ratio_2proc_over_1proc_excluding_startup"] = w2["lanczos"]["median_s"] / s
        rec["ratio_2proc_over_1worker_excluding_startup"] = w2["lanczos"]["median_s"] / w1["lanczos"]["median_s"]
        rec["ratio_2proc_over_1proc_including_startup"] = (w2["startup_s"] + w2["lanczos"]["median_s"]) / s
        rec["ratio_2proc_over_1worker_including_startup"] = (w2["startup_s"] + w2["lanczos"]["median_s"]) / (w1["startup_s"] + w1["lanczos"]["median_s"])
        out[mode] = rec
        b.row(f"{mode}: 1 process (in process)", fmt_s(s), f"{rec['single_in_process']['products']} products")
        b.row(f"{mode}: 1 worker (spawned)", fmt_s(w1["lanczos"]["median_s"]),
              f"start-up {fmt_s(w1['startup_s'])}, first product {fmt_s(w1['first_product_s'])}, whole call {fmt_s(w1['wall_s'])}")
        b.row(f"{mode}: 2 workers", fmt_s(w2["lanczos"]["median_s"]),
              f"start-up {fmt_s(w2['startup_s'])}, first product {fmt_s(w2['first_product_s'])}, whole call {fmt_s(w2['wall_s'])}; "
              f"values differ by {w2['max_rel_diff_values_vs_single']:.1e}")
        b.row(f"{mode}: 2 procs / 1 proc", f"{rec['ratio_2proc_over_1proc_excluding_startup']:.2f}×",
              f"excluding start-up (target ≤ 0.7); including start-up {rec['ratio_2proc_over_1proc_including_startup']:.2f}×; "
              f"vs 1 spawned worker {rec['ratio_2proc_over_1worker_excluding_startup']:.2f}× / {rec['ratio_2proc_over_1worker_including_startup']:.2f}×")
        b.target(f"{P.kind}_distributed_{mode}_ratio", f"2-process / 1-process top-{cfg.k} Lanczos wall time ({mode}, start-up excluded)",
                 rec["ratio_2proc_over_1proc_excluding_startup"], "<=", 0.7,
                 f"including start-up {rec['ratio_2proc_over_1proc_including_startup']:.2f}")
    return out


# ----------------------------------------------------------------------------- driver
def available_peers(b: Bench) -> dict:
    "Which peers import; a note for each that does not."
    import importlib
    peers = {}
    for mod in ("hessian_eigenthings", "curvlinops", "pyhessian"):
        try:
            importlib.import_module(mod)
            peers[mod] = True
        except Exception as e:  # noqa: BLE001
            peers[mod] = False
            b.note(f"{mod} skipped: import failed ({type(e).__name__}: {e})")
    if b.device.type not in ("cpu", "cuda") and peers.get("pyhessian"):
        peers["pyhessian"] = False
        b.note(f"pyhessian skipped: it supports only 'cpu' and 'cuda', not {b.device.type!r}")
    return peers


def run(cfg: Config) -> dict:
    import torch
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")  # PyHessian's backward(create_graph=True)
    device = torch.device(cfg.device)
    b = Bench(cfg, device)
    b.rounds_n = lambda fns, n: timed_rounds(fns, n, device)
    t_start = time.perf_counter()
    peers = available_peers(b)
    results = {"config": asdict(cfg), "peers_available": peers, "problems": {}}
    for kind in cfg.problems:
        t_p = time.perf_counter()
        P = build(cfg, kind, device)
        b.section(f"{kind}: {P.describe['architecture']}, {P.describe['num_params']:,} params, batches {P.describe['batch_sizes']}")
        res = {"model": P.describe}
        res["reference"] = section_reference(b, P)
        res["eig"] = section_eig(b, P, res["reference"]["top_eigenvalues"], peers)
        res["trace"] = section_trace(b, P, peers)
        res["products"] = section_products(b, P)
        if device.type != "cpu": res["distributed"] = {"skipped": "distributed section runs on the CPU only (gloo)"}
        elif cfg.distributed and kind in cfg.distributed_problems: res["distributed"] = section_distributed(b, P)
        else: res["distributed"] = {"skipped": "not among `distributed_problems`"}
        ref = res["reference"]
        if abs(ref["smallest_eigenvalue"]) >= abs(ref["top_eigenvalues"][-1]):
            b.note(f"{kind}: |λmin| ≈ {abs(ref['smallest_eigenvalue']):.3g} ≥ λ{cfg.k} ≈ {ref['top_eigenvalues'][-1]:.3g}: PyHessian's "
                   "power iteration and hessian-eigenthings' default which='LM' (largest magnitude) can return a negative eigenvalue "
                   "among the top k; the matched eigenthings runs use which='LA'")
        res["seconds"] = time.perf_counter() - t_p
        results["problems"][kind] = res
    results["targets"] = b.targets
    results["notes"] = b.notes + [
        "Eigen-solver timings are end to end (operator construction with each library's default checks, then the solver); "
        "gradviz and curvlinops check determinism (extra data passes) by default, hessian-eigenthings and PyHessian do not.",
        "Products of PyHessian, hessian-eigenthings and curvlinops are counted by wrapping their product call (curvlinops: the "
        "scipy matvec; eigenthings: Lanczos iterations); behaviour is unchanged. PyHessian's matched run is timed once (its "
        "calibration run) since it is long.",
        "hessian-eigenthings' default-settings run uses the plain mean loss, whose equal batch weights over-weight the short "
        "last batch; its matched runs use sum · num_batches / N, which gives the exact full-data Hessian.",
    ]
    results["wall_seconds"] = time.perf_counter() - t_start
    results["table"] = b.rows
    return results


def render(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    lines = [f"gradviz loader benchmark — torch {m['torch']}, {m['torch_threads']} thread(s), {m['cpu_count']} CPUs, device "
             f"{m['device']}, repeat {cfg['repeat']} (solvers {min(cfg['solver_repeat'], cfg['repeat'])}, trace seeds "
             f"{cfg['trace_repeat']}){' (quick)' if cfg['quick'] else ''}"]
    return render_table(results, lines, name_width=48, value_width=8)


def _peer_versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("hessian-eigenthings", "curvlinops-for-pytorch", "pyhessian", "backpack-for-pytorch"):
        try: out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: out[dist] = None
    return out


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/loader.json`; returns its path."
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    results = {"machine": machine, **run(cfg)}
    results["machine"]["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["machine"]["peers"] = _peer_versions()
    return finish(NAME, results, render(results), args.results_dir, cfg.quick)


if __name__ == "__main__":
    main()
