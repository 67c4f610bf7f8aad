"""Per-sample gradients: `gradviz.autodiff.per_sample_grads` (vmap) against a Python loop of backward passes.

    python -m benchmarks.per_sample [--quick] [--threads N] [--repeat R] [--device D]

Target (CONTRIBUTING.md): at batch 256, at least 10x faster than the loop. Both are timed in interleaved
rounds of the same run; the loop is the obvious baseline a reader would write (one forward and
one backward per sample, gradients concatenated). Two models: a teaching-scale MLP like the ones
the chapters use (where per-call overhead dominates the loop, and the target is checked) and a
wide one (where both methods are bound by the arithmetic of the n×p gradient matrix and vmap's
advantage shrinks).
"""
from __future__ import annotations

from . import finish, start, timed_rounds, timing

NAME = "per_sample"
TARGET_SPEEDUP = 10.0


def _loop_grads(model, loss_fn, X, y):
    "The baseline: one backward pass per sample."
    import torch
    rows = []
    for i in range(len(X)):
        model.zero_grad(set_to_none=True)
        loss_fn(model(X[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


def run_model(batches, sizes, repeat: int, device: str, seed: int) -> dict:
    "Time both methods at each batch size on one MLP; check they agree."
    from torch import nn
    from gradviz.autodiff import per_sample_grads
    from gradviz.data import count_parameters, gaussian_clusters, mlp
    X, y = gaussian_clusters(n=max(batches), dim=sizes[0], num_classes=sizes[-1], seed=seed, device=device)
    model = mlp(list(sizes), seed=seed, device=device)
    loss_fn = nn.functional.cross_entropy
    rows = []
    for n in batches:
        Xn, yn = X[:n], y[:n]
        err = float((per_sample_grads(model, loss_fn, Xn, yn) - _loop_grads(model, loss_fn, Xn, yn)).abs().max())
        t = timed_rounds({"vmap": lambda: per_sample_grads(model, loss_fn, Xn, yn),
                          "loop": lambda: _loop_grads(model, loss_fn, Xn, yn)}, repeat, device)
        tv, tl = timing(t["vmap"]), timing(t["loop"])
        rows.append({"batch": n, "vmap": tv, "loop": tl, "speedup": tl["median_s"] / tv["median_s"], "max_abs_diff": err})
    return {"sizes": list(sizes), "num_params": count_parameters(model), "dtype": "float32", "rows": rows}


def run(batches, models: dict, repeat: int, device: str, seed: int) -> dict:
    "Every model; the target is judged on the teaching-scale one at the largest batch."
    out = {name: run_model(batches, sizes, repeat, device, seed) for name, sizes in models.items()}
    final = out["teaching"]["rows"][-1]
    return {"models": out,
            "target": {"what": f"per_sample_grads >= {TARGET_SPEEDUP:g}x faster than a Python loop at batch {final['batch']} "
                               f"(teaching-scale MLP {out['teaching']['sizes']})",
                       "speedup": final["speedup"], "met": final["speedup"] >= TARGET_SPEEDUP and final["max_abs_diff"] < 1e-5}}


def render(results: dict) -> str:
    "A readable table."
    lines = []
    for name, m in results["models"].items():
        lines += [f"{name}: MLP {m['sizes']} ({m['num_params']:,} parameters)",
                  f"{'batch':>6} {'vmap (ms)':>10} {'loop (ms)':>10} {'speedup':>8} {'max |diff|':>11}"]
        for r in m["rows"]:
            lines.append(f"{r['batch']:>6} {r['vmap']['median_s']*1e3:>10.2f} {r['loop']['median_s']*1e3:>10.2f} "
                         f"{r['speedup']:>7.1f}x {r['max_abs_diff']:>11.1e}")
    t = results["target"]
    lines.append(f"target: {t['what']}: {t['speedup']:.1f}x -> {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    "Parse options, pin threads, run, print the table and write `results/per_sample.json`; returns its path."
    args, machine = start(__doc__.splitlines()[0], argv)
    quick = args.quick
    batches = (8, 32) if quick else (16, 64, 256)
    models = {"teaching": (10, 16, 3), "wide": (16, 32, 3)} if quick else {"teaching": (20, 64, 10), "wide": (64, 256, 256, 10)}
    results = {"machine": machine,
               "config": {"quick": quick, "repeat": 1 if quick else args.repeat, "device": args.device, "seed": args.seed}}
    results.update(run(batches, models, 1 if quick else args.repeat, args.device, args.seed))
    return finish(NAME, results, render(results), args.results_dir, quick)


if __name__ == "__main__":
    main()
