"""diffGrad step time against `torch.optim.Adam(foreach=True)` and the two peer DiffGrads.

    python -m benchmarks.optimizers [--quick] [--threads N] [--repeat R] [--device D]

One optimizer step only (no forward or backward pass: every parameter's gradient is a fixed seeded random
tensor, set once), float32, on two parameter sets: many small tensors (50 × 64×64) and a few large ones
(4 × 2048×2048). Each optimizer owns its own copy of the same parameters and gradients; all are warmed up
(state allocated) and then timed in interleaved rounds, `steps_per_call` steps per timed call, medians of
`--repeat` rounds (ratios are also given as the median of each round's back-to-back ratio, which a busy
machine disturbs less). Compared: gradviz `DiffGrad` with multi-tensor kernels (`foreach=True`) and one tensor at a
time (`foreach=False`), `torch.optim.Adam(foreach=True)`, torch-optimizer's `DiffGrad` (a per-tensor Python
loop) and pytorch-optimizer's `DiffGrad` (multi-tensor by default). Targets: the chapter asks for ≤ 1.3× Adam
and ≥ 2× faster than torch-optimizer on many small tensors; CONTRIBUTING.md asks for ≤ 1.1× Adam and no slower
than pytorch-optimizer. All are reported with `met: true/false`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from . import finish, make_config, median, start, timed_rounds, timing

NAME = "optimizers"


@dataclass(frozen=True)
class Config:
    "Everything that defines one run; `--quick` swaps in tiny sizes."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    sets: tuple = (("many_small", 50, (64, 64), 20), ("few_large", 4, (2048, 2048), 3))  # name, count, shape, steps per timed call
    lr: float = 1e-3


QUICK = dict(quick=True, repeat=1, sets=(("many_small", 5, (16, 16), 2), ("few_large", 2, (128, 128), 2)))


def _optimizers() -> tuple[dict, list[str]]:
    "name → constructor(params); notes on peers that are missing."
    import torch
    from gradviz.dynamics.diffgrad import DiffGrad
    makers = {"adam_foreach": lambda ps, lr: torch.optim.Adam(ps, lr=lr, foreach=True),
              "diffgrad_foreach": lambda ps, lr: DiffGrad(ps, lr=lr, foreach=True),
              "diffgrad_plain": lambda ps, lr: DiffGrad(ps, lr=lr, foreach=False)}
    notes = []
    try:
        import torch_optimizer
        makers["torch_optimizer"] = lambda ps, lr: torch_optimizer.DiffGrad(ps, lr=lr)
    except ImportError: notes.append("torch-optimizer not installed: its DiffGrad was not timed")
    try:
        import pytorch_optimizer
        makers["pytorch_optimizer"] = lambda ps, lr: pytorch_optimizer.DiffGrad(ps, lr=lr, foreach=True)
    except ImportError: notes.append("pytorch-optimizer not installed: its DiffGrad was not timed")
    return makers, notes


def run_set(count: int, shape, steps_per_call: int, cfg: Config, makers: dict) -> dict:
    "Time one step of every optimizer on `count` tensors of `shape`; ratios and agreement after equal step counts."
    import torch
    g = torch.Generator().manual_seed(cfg.seed)
    init = [torch.randn(*shape, generator=g) for _ in range(count)]
    grads = [torch.randn(*shape, generator=g) for _ in range(count)]
    params, opts = {}, {}
    for name, make in makers.items():
        ps = [torch.nn.Parameter(t.clone().to(cfg.device)) for t in init]
        for p, gr in zip(ps, grads): p.grad = gr.clone().to(cfg.device)
        params[name], opts[name] = ps, make(ps, cfg.lr)
    def stepper(opt):
        def call():
            for _ in range(steps_per_call): opt.step()
        return call
    fns = {name: stepper(opt) for name, opt in opts.items()}
    for fn in fns.values(): fn()  # warm-up: state allocated, first-step paths taken
    t = timed_rounds(fns, cfg.repeat, cfg.device)
    rec = {name: timing(ts, per=steps_per_call) for name, ts in t.items()}
    ours = rec["diffgrad_foreach"]["median_s"]
    ratios = {"diffgrad_foreach_over_adam_foreach": ours / rec["adam_foreach"]["median_s"],
              "diffgrad_plain_over_adam_foreach": rec["diffgrad_plain"]["median_s"] / rec["adam_foreach"]["median_s"]}
    for peer in ("torch_optimizer", "pytorch_optimizer"):
        if peer in rec: ratios[f"speedup_diffgrad_foreach_over_{peer}"] = rec[peer]["median_s"] / ours
    # the same ratios from each round's back-to-back pair: robust to load that changes between rounds
    paired = lambda a, b: median([x / y for x, y in zip(t[a], t[b])])
    ratios_paired = {"diffgrad_foreach_over_adam_foreach": paired("diffgrad_foreach", "adam_foreach"),
                     "diffgrad_plain_over_adam_foreach": paired("diffgrad_plain", "adam_foreach")}
    for peer in ("torch_optimizer", "pytorch_optimizer"):
        if peer in t: ratios_paired[f"speedup_diffgrad_foreach_over_{peer}"] = paired(peer, "diffgrad_foreach")
    flat = lambda ps: torch.cat([p.detach().flatten().cpu() for p in ps])
    others = [name for name in params if name not in ("diffgrad_foreach", "adam_foreach")]
    diffs = {name: (flat(params[name]) - flat(params["diffgrad_foreach"])).abs() for name in others}
    agree = {name: float(d.max()) for name, d in diffs.items()}
    # the peers add ε to the uncorrected √v: only coordinates whose gradient is within a few ε of zero differ
    clear = torch.cat([g.flatten() for g in grads]).abs() > 1e-3
    agree_clear = {name: float(d[clear].max()) for name, d in diffs.items()}
    return {"count": count, "shape": list(shape), "numel": count * int(torch.Size(shape).numel()), "dtype": "float32",
            "steps_per_call": steps_per_call, "timings": rec, "ratios": ratios, "ratios_paired_rounds": ratios_paired,
            "max_abs_param_diff_vs_diffgrad_foreach": agree, "max_abs_param_diff_where_abs_grad_gt_1e-3": agree_clear}


def targets(sets: dict) -> list[dict]:
    "Each target with its value and whether it is met (None when its baseline was not timed)."
    out = []
    def add(name, what, value, op, threshold, note=""):
        met = None if value is None else (value <= threshold if op == "<=" else value >= threshold)
        out.append({"name": name, "what": what, "value": value, "target": f"{op} {threshold:g}", "met": met, "note": note})
    for s, res in sets.items():
        r = res["ratios"]["diffgrad_foreach_over_adam_foreach"]
        add(f"vs_adam_{s}", f"DiffGrad(foreach) step / Adam(foreach) step, {s}", r, "<=", 1.3, "diffGrad chapter target")
        add(f"vs_adam_{s}_design", f"DiffGrad(foreach) step / Adam(foreach) step, {s}", r, "<=", 1.1, "CONTRIBUTING.md target")
        add(f"vs_pytorch_optimizer_{s}", f"pytorch-optimizer DiffGrad step / DiffGrad(foreach) step, {s}",
            res["ratios"].get("speedup_diffgrad_foreach_over_pytorch_optimizer"), ">=", 1.0, "CONTRIBUTING.md: no slower")
    add("vs_torch_optimizer_many_small", "torch-optimizer DiffGrad step / DiffGrad(foreach) step, many small tensors",
        sets["many_small"]["ratios"].get("speedup_diffgrad_foreach_over_torch_optimizer"), ">=", 2.0, "CONTRIBUTING.md")
    return out


def render(results: dict) -> str:
    "A readable table."
    lines = []
    for s, res in results["sets"].items():
        lines += [f"{s}: {res['count']} x {tuple(res['shape'])} float32 ({res['numel']:,} numbers)",
                  f"{'optimizer':>20} {'ms / step':>10} {'x Adam':>8}"]
        adam = res["timings"]["adam_foreach"]["median_s"]
        for name, rec in res["timings"].items():
            lines.append(f"{name:>20} {rec['median_s'] * 1e3:>10.3f} {rec['median_s'] / adam:>7.2f}x")
        lines.append(f"{'paired-round ratios':>20} " + ", ".join(f"{k} {v:.2f}" for k, v in res["ratios_paired_rounds"].items()))
        lines.append("")
    lines.append("Targets")
    for t in results["targets"]:
        v = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"  {t['what']}: {v} (target {t['target']}, {t['note']}) -> {'met' if t['met'] else 'NOT met' if t['met'] is False else 'not measured'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    "Parse options, pin threads, run, print the table and write `results/optimizers.json`; returns its path."
    import time
    from importlib import metadata
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    makers, notes = _optimizers()
    began = time.perf_counter()
    sets = {name: run_set(count, shape, steps, cfg, makers) for name, count, shape, steps in cfg.sets}
    peers = {}
    for dist in ("torch-optimizer", "pytorch_optimizer"):
        try: peers[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: peers[dist] = None
    machine["peers"] = peers
    machine["load_average_1min_at_end"] = __import__("os").getloadavg()[0]
    notes.append("Parameter agreement: the peers add ε to the uncorrected √v_t (ε·√(1−β₂ᵗ) in Adam's placement), so on "
                 "coordinates whose gradient is within a few ε of zero their steps differ from ours; "
                 "`max_abs_param_diff_where_abs_grad_gt_1e-3` excludes those coordinates.")
    results = {"machine": machine, "config": asdict(cfg), "sets": sets, "targets": targets(sets), "notes": notes,
               "wall_seconds": time.perf_counter() - began}
    return finish(NAME, results, render(results), args.results_dir, cfg.quick)


if __name__ == "__main__":
    main()
