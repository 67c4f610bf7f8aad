"""Sven step time against a `torch.optim.Adam` step on the same model and batch.

    python -m benchmarks.sven [--quick] [--threads N] [--repeat R] [--device D]

A Sven step computes per-example losses and the B×P per-example Jacobian (vmap), a truncated SVD of it
and the update; an Adam step is one forward, one backward and the Adam update. Both act on the same
model and batch, timed in interleaved rounds of the same run, and the ratio Sven / Adam is reported for
each SVD method (exact, Gram in float64, randomized). The Jacobian alone is timed too, to show where
the time goes. There is no target: the paper's "about k times an SGD step" is what is being measured.
"""
from __future__ import annotations

from . import finish, start, timed_rounds, timing

NAME = "sven"


def _setup(sizes, batch, device, seed):
    "A GELU MLP, the 1-D regression batch and a fresh copy maker."
    import copy
    from gradviz.curvature.sven import regression_1d
    from gradviz.data import count_parameters, mlp
    base = mlp(list(sizes), activation="gelu", seed=seed, device=device)
    X, y, _ = regression_1d(n=batch, seed=seed, device=device)
    if sizes[0] != 1: X = X.repeat(1, sizes[0])
    return base, X, y, count_parameters(base), (lambda: copy.deepcopy(base))


def run_model(sizes, batch: int, k: int, repeat: int, device: str, seed: int) -> dict:
    "Time Adam, the residual Jacobian and Sven with each SVD method on one model and batch."
    import torch
    from torch import nn
    from gradviz.curvature.sven import Sven, residual_jacobian
    base, X, y, num_params, fresh = _setup(sizes, batch, device, seed)
    mse = nn.functional.mse_loss
    adam_net = fresh()
    adam = torch.optim.Adam(adam_net.parameters(), lr=1e-3)
    def adam_step():
        adam.zero_grad(set_to_none=True); mse(adam_net(X), y).backward(); adam.step()
    fns = {"adam": adam_step, "jacobian": lambda: residual_jacobian(base, mse, X, y)}
    opts = {m: Sven(fresh(), mse, lr=1e-3, k=k, svd=m, seed=seed) for m in ("exact", "gram", "randomized")}
    for m, opt in opts.items(): fns[f"sven_{m}"] = (lambda o=opt: o.step(X, y))
    for fn in fns.values(): fn()  # warm-up
    t = timed_rounds(fns, repeat, device)
    rec = {name: timing(ts) for name, ts in t.items()}
    adam_s = rec["adam"]["median_s"]
    ratios = {m: rec[f"sven_{m}"]["median_s"] / adam_s for m in opts}
    return {"sizes": list(sizes), "num_params": num_params, "batch": batch, "k": k, "dtype": "float32", "timings": rec,
            "ratio_sven_over_adam": ratios, "ratio_jacobian_over_adam": rec["jacobian"]["median_s"] / adam_s}


def render(results: dict) -> str:
    "A readable table."
    lines = []
    for name, m in results["models"].items():
        lines += [f"{name}: MLP {m['sizes']} ({m['num_params']:,} parameters), batch {m['batch']}, k={m['k']}",
                  f"{'step':>18} {'median (ms)':>12} {'x Adam':>8}"]
        adam = m["timings"]["adam"]["median_s"]
        for key, rec in m["timings"].items():
            lines.append(f"{key:>18} {rec['median_s']*1e3:>12.3f} {rec['median_s']/adam:>7.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    "Parse options, pin threads, run, print the table and write `results/sven.json`; returns its path."
    import time
    args, machine = start(__doc__.splitlines()[0], argv)
    quick, repeat = args.quick, 1 if args.quick else args.repeat
    models = ({"teaching": ((1, 8, 8, 1), 32, 8)} if quick else
              {"teaching": ((1, 16, 16, 16, 1), 128, 16), "wider": ((1, 64, 64, 64, 1), 128, 64)})
    began = time.perf_counter()
    results = {"machine": machine,
               "config": {"quick": quick, "repeat": repeat, "device": args.device, "seed": args.seed}}
    results["models"] = {name: run_model(sizes, batch, k, repeat, args.device, args.seed) for name, (sizes, batch, k) in models.items()}
    results["wall_seconds"] = time.perf_counter() - began
    return finish(NAME, results, render(results), args.results_dir, quick)


if __name__ == "__main__":
    main()
