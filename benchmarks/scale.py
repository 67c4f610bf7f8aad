"""Scale benchmark: the curvature engine on networks of 47k to a million parameters, against ARPACK and peers.

    python -m benchmarks.scale [--quick] [--threads N] [--repeat R] [--device D] [--only NAME[,NAME...]]

`--only` runs the named models (results in `results/scale-<names>.json`).

Models (each a Hessian of the mean cross-entropy over one in-memory batch):
- `bench47k`: the Hessian benchmark's MLP 100→200→128→10 (tanh), trained briefly on 1,000 Gaussian-cluster samples;
- `mlp254k`: an untrained tanh MLP 784→256→200→10 on 1,024 random samples;
- `mlp987k`: an untrained tanh MLP 784→1000→200→10 on 1,024 random samples;
- `cnn`: `gradviz.data.tiny_cnn` of width 96 on 16² images (108k parameters), trained briefly on 64 `tiny_images`.

Per model:
1. reference: the top ten by the engine in float64 at tolerance 1e-10, checked against `eigsh` (float64) on the MLPs;
   the CNN's float64 `eigsh` check is skipped (float64 convolutions made it run past 15 minutes), so its reference
   rests on the engine's agreement with `eigsh` on the other three models;
2. top-10 at relative error 1e-6 (float32 operator; each method's tolerance calibrated loosest-first until it meets
   the bar): `lanczos` with a full basis, `lanczos(ncv=21)` and `lanczos(ncv=40)` (thick restart), scipy `eigsh` over
   the same operator, curvlinops' operator with `eigsh`, and hessian-eigenthings 1.0's Lanczos; products, time, the
   overhead over the bare products (time / (products × one bare product)) and the basis memory each method holds;
3. block products: seconds per vector of `op.matmat` on blocks of 1, 2, 4, 8, 16 and 32 columns against products
   one column at a time;
4. SLQ 10 probes × 80 steps, all probes advanced together (`batched=True`) against one probe at a time; Hutchinson
   and Hutch++ with 100 products.

Targets: thick-restart Lanczos overhead <= 1.15x its products at a million parameters; top-10 <= 0.5x eigsh's time
at 1e-6 on the 47k and 254k models; the basis held <= (ncv + 1)·p; batched SLQ >= 1.5x the per-probe throughput.
Every timing is the median of `--repeat` runs in interleaved rounds (one torch thread unless `--threads`).
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import finish, make_config, median, render_table, start, timing
from .hessian import Bench, fmt_g, fmt_s, rel_err

NAME = "scale"


@dataclass(frozen=True)
class Config:
    "Everything that defines one run; `--quick` swaps in tiny sizes."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    models: tuple[str, ...] = ("bench47k", "mlp254k", "cnn", "mlp987k")
    num_samples: int = 1024
    bench_sizes: tuple[int, ...] = (100, 200, 128, 10)
    mlp254k_sizes: tuple[int, ...] = (784, 256, 200, 10)
    mlp987k_sizes: tuple[int, ...] = (784, 1000, 200, 10)
    cnn_width: int = 96
    cnn_image_size: int = 16
    cnn_samples: int = 64
    eigsh_check_models: tuple[str, ...] = ("bench47k", "mlp254k", "mlp987k")  # where the reference meets eigsh
    train_steps: int = 60
    k: int = 10
    bar: float = 1e-6  # relative error every method must reach against the reference
    tols: tuple[float, ...] = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)  # tried loosest-first until the bar is met
    eigenthings_steps: tuple[int, ...] = (40, 80, 160, 320, 640)  # its Lanczos runs a fixed number of steps
    ref_tol: float = 1e-10
    ncvs: tuple[int, ...] = (21, 40)
    blocks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    slq_probes: int = 10
    slq_steps: int = 80
    trace_products: int = 100
    peer_repeat: int = 3  # timed runs of the (slow) peers
    million_model: str = "mlp987k"  # where the overhead target is read
    eigsh_target_models: tuple[str, ...] = ("bench47k", "mlp254k")
    overhead_target: float = 1.15
    eigsh_target: float = 0.5
    slq_target: float = 1.5


QUICK = dict(quick=True, repeat=1, peer_repeat=1, models=("bench47k", "cnn"), num_samples=64,
             bench_sizes=(10, 12, 8, 3), cnn_width=4, cnn_image_size=8, cnn_samples=32, train_steps=5, k=3, tols=(1e-4, 1e-6),
             ref_tol=1e-8, ncvs=(9,), eigenthings_steps=(20, 40, 80), blocks=(1, 4), slq_probes=3, slq_steps=10, trace_products=12,
             million_model="cnn", eigsh_target_models=("bench47k",))


# ----------------------------------------------------------------------------- models
def build(cfg: Config, name: str, device):
    "A model in eval mode with its data: `(model, X, y, description)`, float32."
    import torch
    from gradviz.data import count_parameters, gaussian_clusters, mlp, tiny_cnn, tiny_images, train
    g = torch.Generator().manual_seed(cfg.seed)
    if name == "bench47k":
        X, y = gaussian_clusters(n=cfg.num_samples, dim=cfg.bench_sizes[0], num_classes=cfg.bench_sizes[-1],
                                 separation=2.0, seed=cfg.seed)
        model = mlp(list(cfg.bench_sizes), activation="tanh", seed=cfg.seed)
        train(model, "cross_entropy", X, y, steps=cfg.train_steps, lr=0.2, seed=cfg.seed)
        arch = "MLP " + "→".join(map(str, cfg.bench_sizes)) + " (tanh, trained)"
    elif name == "cnn":
        X, y = tiny_images(n=cfg.cnn_samples, num_classes=4, image_size=cfg.cnn_image_size, seed=cfg.seed)
        model = tiny_cnn(width=cfg.cnn_width, num_classes=4, image_size=cfg.cnn_image_size, seed=cfg.seed)
        train(model, "cross_entropy", X, y, steps=cfg.train_steps, lr=0.05, seed=cfg.seed)
        arch = f"tiny_cnn (width {cfg.cnn_width}, {cfg.cnn_image_size}² images, trained)"
    else:
        sizes = cfg.mlp254k_sizes if name == "mlp254k" else cfg.mlp987k_sizes
        if cfg.quick: sizes = (16, 12, 8, 4)
        X, y = torch.randn(cfg.num_samples, sizes[0], generator=g), torch.randint(0, sizes[-1], (cfg.num_samples,), generator=g)
        model = mlp(list(sizes), activation="tanh", seed=cfg.seed)
        arch = "MLP " + "→".join(map(str, sizes)) + " (tanh, untrained, random data)"
    model.eval()
    return model.to(device), X.to(device), y.to(device), {"architecture": arch, "num_params": count_parameters(model),
                                                          "num_samples": int(len(y))}


def operator(model, X, y):
    import torch.nn.functional as F
    from gradviz.linalg import HessianOperator
    return HessianOperator.from_model(model, F.cross_entropy, X, y)


# ----------------------------------------------------------------------------- methods: each returns (values, products, held)
def top_gradviz(op, k, tol, seed, ncv):
    "The engine's top-k; `held` counts the basis vectors the run kept."
    from gradviz.linalg import lanczos, thick_restart_lanczos
    start_count = op.num_matvecs
    if ncv is None:
        vals, _ = lanczos(op, k, tol=tol, seed=seed)
        used = op.num_matvecs - start_count
        return vals.detach().cpu().numpy(), used, used
    r = thick_restart_lanczos(op, k, ncv=ncv, tol=tol, seed=seed)
    return r.values.detach().cpu().numpy(), r.num_products, r.basis_rows


def top_eigsh(op, k, tol, seed):
    "scipy's ARPACK over the same operator, started from the engine's starting direction."
    import numpy as np
    import scipy.sparse.linalg as spla
    import torch
    start_count = op.num_matvecs
    v0 = torch.randn(op.size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    vals = spla.eigsh(op.to_scipy(), k=k, which="LA", tol=tol, v0=v0.astype(np.float32), return_eigenvectors=False)
    ncv = min(op.size, max(2 * k + 1, 20))
    return np.sort(vals)[::-1], op.num_matvecs - start_count, ncv


def top_curvlinops(model, X, y, k, tol, seed):
    import numpy as np
    import scipy.sparse.linalg as spla
    import torch
    from curvlinops import HessianLinearOperator
    op = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), [p for p in model.parameters() if p.requires_grad],
                               [(X, y)])
    raw, count = op.to_scipy(dtype=np.float32), {"n": 0}
    def mv(x):
        count["n"] += 1 if x.ndim == 1 or x.shape[-1] == 1 else x.shape[-1]
        return raw.matvec(x)
    A = spla.LinearOperator(raw.shape, matvec=mv, rmatvec=mv, dtype=np.float32)
    v0 = torch.randn(A.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    vals = spla.eigsh(A, k=k, which="LA", tol=tol, v0=v0.astype(np.float32), return_eigenvectors=False)
    return np.sort(vals)[::-1], count["n"], min(A.shape[0], max(2 * k + 1, 20))


def top_eigenthings(model, X, y, k, max_iter, seed):
    "hessian-eigenthings' Lanczos runs exactly `max_iter` steps (its `tol` does not stop it early)."
    import hessian_eigenthings as het
    import torch
    op = het.HessianOperator(model, [(X, y)], het.supervised_loss(torch.nn.CrossEntropyLoss()))
    res = het.lanczos(op, k=k, max_iter=min(max_iter, op.size), which="LA", reorthogonalize=True, seed=seed)
    return res.eigenvalues.detach().cpu().numpy(), res.iterations, res.iterations + 1


# ----------------------------------------------------------------------------- sections
def bare_product_seconds(b: Bench, op) -> float:
    import torch
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(b.cfg.seed + 7), dtype=op.dtype, device=op.device)
    times = b.rounds({"bare": lambda: op._apply(v)})["bare"]
    return median(times)


def reference(b: Bench, model, X, y, name: str) -> list:
    "float64 top-k by the engine at a tight tolerance, checked against eigsh on the same float64 operator."
    import numpy as np
    import scipy.sparse.linalg as spla
    import torch
    from gradviz.linalg import lanczos
    m64 = copy.deepcopy(model).to(torch.float64)
    op64 = operator(m64, X.to(torch.float64), y)
    ref = lanczos(op64, b.cfg.k, tol=b.cfg.ref_tol, seed=b.cfg.seed)[0].cpu().numpy()
    if name not in b.cfg.eigsh_check_models:
        b.note(f"{name}: the float64 reference is the engine's alone (no eigsh check on this model)")
        return list(ref)
    check = np.sort(spla.eigsh(op64.to_scipy(), k=b.cfg.k, which="LA", tol=b.cfg.ref_tol, return_eigenvectors=False))[::-1]
    agree = rel_err(check, ref)
    b.row(f"{name}: reference agrees with eigsh (float64)", fmt_g(agree), "largest relative difference, top k")
    if agree > 1e-8: b.note(f"{name}: the float64 reference and eigsh differ by {agree:.2g} relative")
    return list(ref)


def calibrated(run, tols, ref, bar):
    "Loosest tolerance whose result meets `bar`: `(tol, values, products, held, rel_err)`, or the tightest tried."
    for tol in tols:
        vals, products, held = run(tol)
        err = rel_err(vals, ref)
        if err <= bar: return tol, products, held, err, True
    return tol, products, held, err, False


def section_top(b: Bench, name: str, model, X, y, op, ref, bare_s) -> dict:
    "Top-k at the bar: every method calibrated, then timed in interleaved rounds."
    cfg, out = b.cfg, {}
    runners = {"lanczos (full basis)": lambda tol: top_gradviz(op, cfg.k, tol, cfg.seed, None)}
    for ncv in cfg.ncvs: runners[f"lanczos (ncv={ncv})"] = lambda tol, n=ncv: top_gradviz(op, cfg.k, tol, cfg.seed, n)
    runners["eigsh (same operator)"] = lambda tol: top_eigsh(op, cfg.k, tol, cfg.seed)
    peers = {}
    try:
        import curvlinops  # noqa: F401
        peers["curvlinops + eigsh"] = lambda tol: top_curvlinops(model, X, y, cfg.k, tol, cfg.seed)
    except ImportError: b.note("curvlinops is not installed: its row is skipped")
    try:
        import hessian_eigenthings  # noqa: F401
        peers["hessian-eigenthings"] = lambda steps: top_eigenthings(model, X, y, cfg.k, steps, cfg.seed)
    except ImportError: b.note("hessian-eigenthings is not installed: its row is skipped")
    for label, run in {**runners, **peers}.items():
        tries = cfg.eigenthings_steps if label == "hessian-eigenthings" else cfg.tols
        tol, products, held, err, met = calibrated(run, tries, ref, cfg.bar)
        out[label] = {"tol": tol, "products": products, "basis_vectors": held, "basis_bytes": held * op.size * 4,
                      "rel_err": err, "met_bar": met}
    times = b.rounds({label: (lambda r=run, t=out[label]["tol"]: r(t)) for label, run in runners.items()})
    peer_times = {label: [] for label in peers}
    for _ in range(cfg.peer_repeat):
        for label, run in peers.items():
            t0 = time.perf_counter()
            run(out[label]["tol"])
            peer_times[label].append(time.perf_counter() - t0)
    for label, ts in {**times, **peer_times}.items():
        o = out[label]
        o.update(timing(ts), overhead=median(ts) / (o["products"] * bare_s))
        b.row(f"{name}: {label}", fmt_s(o["median_s"]),
              f"{o['products']} products, {'steps' if label == 'hessian-eigenthings' else 'tol'} {o['tol']:g}, err {o['rel_err']:.1e}{'' if o['met_bar'] else ' (bar MISSED)'}, "
              f"overhead {o['overhead']:.2f}x, basis {o['basis_vectors']} vectors = {o['basis_bytes'] / 2**20:.1f} MiB")
    return out


def section_blocks(b: Bench, name: str, op) -> dict:
    "Seconds per vector of one batched block product against the same columns one at a time."
    import torch
    out = {}
    for k in b.cfg.blocks:
        V = torch.randn(op.size, k, generator=torch.Generator().manual_seed(b.cfg.seed + k), dtype=op.dtype, device=op.device)
        t = b.rounds({"columns": lambda: torch.stack([op._matvec(c) for c in V.T], 1), "block": lambda: op._matmat(V)})
        gain = median(t["columns"]) / median(t["block"])
        out[k] = {"per_vector_columns_s": median(t["columns"]) / k, "per_vector_block_s": median(t["block"]) / k, "gain": gain}
        b.row(f"{name}: block of {k}", f"{gain:.2f}x", f"{fmt_s(out[k]['per_vector_block_s'])}/vector batched, "
              f"{fmt_s(out[k]['per_vector_columns_s'])}/vector one at a time")
    return out


def section_estimators(b: Bench, name: str, op) -> dict:
    "SLQ batched against one probe at a time; Hutchinson and Hutch++ at equal products."
    from gradviz.linalg import hutchinson_trace, hutchpp_trace, slq_density
    cfg = b.cfg
    t = b.rounds({"batched": lambda: slq_density(op, cfg.slq_probes, cfg.slq_steps, seed=cfg.seed),
                  "sequential": lambda: slq_density(op, cfg.slq_probes, cfg.slq_steps, seed=cfg.seed, batched=False),
                  "hutchinson": lambda: hutchinson_trace(op, cfg.trace_products, seed=cfg.seed),
                  "hutchpp": lambda: hutchpp_trace(op, cfg.trace_products, seed=cfg.seed)})
    gain = median(t["sequential"]) / median(t["batched"])
    b.row(f"{name}: SLQ {cfg.slq_probes}×{cfg.slq_steps} batched", fmt_s(median(t["batched"])),
          f"{gain:.2f}x the throughput of one probe at a time ({fmt_s(median(t['sequential']))})")
    for est in ("hutchinson", "hutchpp"):
        b.row(f"{name}: {est} ({cfg.trace_products} products)", fmt_s(median(t[est])), "")
    return {"slq_batched": timing(t["batched"]), "slq_sequential": timing(t["sequential"]), "slq_gain": gain,
            "hutchinson": timing(t["hutchinson"]), "hutchpp": timing(t["hutchpp"])}


def run(cfg: Config, only: str | None = None) -> dict:
    "Every section on every model; the targets read from the results."
    import torch
    device = torch.device(cfg.device)
    b, t0, results = Bench(cfg, device), time.perf_counter(), {"config": asdict(cfg), "models": {}}
    for name in cfg.models:
        if only and name not in only.split(","): continue
        model, X, y, describe = build(cfg, name, device)
        b.section(f"{name}: {describe['architecture']}, {describe['num_params']:,} parameters")
        op = operator(model, X, y)
        bare_s = bare_product_seconds(b, op)
        b.row(f"{name}: one bare product", fmt_s(bare_s), "")
        ref = reference(b, model, X, y, name)
        res = {"describe": describe, "bare_product_s": bare_s, "reference": ref,
               "top": section_top(b, name, model, X, y, op, ref, bare_s), "blocks": section_blocks(b, name, op),
               "estimators": section_estimators(b, name, op)}
        results["models"][name] = res
        _targets(b, name, res, op.size)
    results.update(targets=b.targets, notes=b.notes, table=b.rows, wall_seconds=time.perf_counter() - t0)
    return results


def _targets(b: Bench, name: str, res: dict, p: int) -> None:
    cfg, top = b.cfg, res["top"]
    ncv = cfg.ncvs[0]
    restarted = top[f"lanczos (ncv={ncv})"]
    if name == cfg.million_model:
        b.target(f"{name}: thick-restart overhead", f"lanczos(ncv={ncv}) time / (products × bare product)",
                 restarted["overhead"], "<=", cfg.overhead_target)
    if name in cfg.eigsh_target_models:
        best = min(top[f"lanczos (ncv={n})"]["median_s"] for n in cfg.ncvs)
        best = min(best, top["lanczos (full basis)"]["median_s"])
        b.target(f"{name}: top-{cfg.k} vs eigsh", "fastest engine variant / eigsh, both at the bar",
                 best / top["eigsh (same operator)"]["median_s"], "<=", cfg.eigsh_target)
    b.target(f"{name}: basis held", f"lanczos(ncv={ncv}) basis vectors / (ncv + 1)", restarted["basis_vectors"] / (ncv + 1),
             "<=", 1.0)
    b.target(f"{name}: batched SLQ", "one probe at a time / all probes together", res["estimators"]["slq_gain"], ">=",
             cfg.slq_target)


def render(results: dict) -> str:
    m = results["machine"]
    head = [f"gradviz scale benchmark — torch {m['torch']}, {m['torch_threads']} thread(s), {m['cpu_count']} CPUs, "
            f"device {m['device']}, repeat {results['config']['repeat']}{' (quick)' if results['config']['quick'] else ''}"]
    return render_table(results, head, name_width=40, value_width=9)


def _peer_versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("curvlinops-for-pytorch", "hessian-eigenthings", "scipy"):
        try: out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: out[dist] = None
    return out


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/scale.json`; returns its path."
    argv = sys.argv[1:] if argv is None else list(argv)
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    results = {"machine": {**machine, "peers": _peer_versions()}, **run(cfg, only)}
    results["machine"]["load_average_1min_at_end"] = __import__("os").getloadavg()[0]
    name = NAME if only is None else f"{NAME}-{only.replace(',', '+')}"  # a partial run never overwrites the full one
    return finish(name, results, render(results), args.results_dir, cfg.quick)


if __name__ == "__main__":
    main()
