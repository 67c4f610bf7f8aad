"""Representation benchmark: Part 5's losses and layers against peer implementations timed in the same run.

    python -m benchmarks.representation [--quick] [--threads N] [--repeat R] [--device D]

Sections (each a function `section_<name>(bench)` listed in `SECTIONS`):
1. `ms_loss`: `gradviz.representation.ms_loss.ms_loss` with mining, forward + backward, against
   pytorch-metric-learning's `MultiSimilarityLoss` with `MultiSimilarityMiner` (the paper's loss as that library
   composes it: the miner computes its own similarity matrix and sorts every row, then the loss builds pair masks), at
   batch 64, 256 and 1024 of 128-D float32 embeddings, 4 instances per class. Both get the same leaf tensor each call;
   α = 2, β = 50, λ = 0.5, ε = 0.1; the peer's reducer is matched (`SumReducer`, divided by the batch size). Before
   timing, values and gradients are compared in float64 and float32. Target: >= 2x faster at 256 and 1024.
2. `cdc`: `gradviz.representation.cdc.CDConv2d` (one convolution with the folded kernel) against `nn.Conv2d` of the
   same shape and against the unfolded definition `cdc_reference`, 16-64 channels at 32² and 64² (batch 8, 3x3, padding
   1, θ = 0.7, no bias), forward and forward + backward (input and weight gradients). A timed sample repeats a call
   until the `nn.Conv2d` call would take about 20 ms. The target pair (CDConv2d, nn.Conv2d) is interleaved on its own;
   the reference, whose (N, 9C, HW) temporaries slowed the call after it when all three shared rounds, is timed in
   separate rounds against CDConv2d. The target pair runs `cdc_rounds_factor` times as many rounds as `--repeat` asks
   (30 by default), and its ratio is the median over rounds of CDConv2d's time over nn.Conv2d's in the same round:
   the worst ratio over twelve shapes and modes is a maximum of noisy estimates, and pairing within a round cancels
   the machine's slow drifts that a ratio of two medians keeps (it is reported too). Target: CDConv2d <= 1.1x
   nn.Conv2d on every shape and mode.

Every timing is the median of `--repeat` runs (at least 5 unless `--quick`), taken in interleaved rounds.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import finish, make_config, paired_ratio, render_table, start, timed_rounds, timing
from .hessian import Bench, fmt_s

NAME = "representation"


@dataclass(frozen=True)
class Config:
    "Everything that defines one run; `--quick` swaps in tiny sizes."
    quick: bool = False
    repeat: int = 5
    device: str = "cpu"
    seed: int = 0
    ms_batches: tuple[int, ...] = (64, 256, 1024)
    ms_dim: int = 128
    ms_per_class: int = 4  # instances of each class in a batch
    ms_alpha: float = 2.0
    ms_beta: float = 50.0
    ms_base: float = 0.5
    ms_epsilon: float = 0.1
    ms_target_batches: tuple[int, ...] = (256, 1024)
    ms_target_speedup: float = 2.0
    cdc_channels: tuple[int, ...] = (16, 32, 64)
    cdc_sizes: tuple[int, ...] = (32, 64)
    cdc_batch: int = 8
    cdc_theta: float = 0.7
    cdc_target_ratio: float = 1.1
    cdc_rounds_factor: int = 6  # the CDConv2d / nn.Conv2d pair runs this many times `repeat` rounds


QUICK = dict(quick=True, repeat=1, ms_batches=(16, 32), ms_dim=8, ms_target_batches=(32,), cdc_channels=(8,),
             cdc_sizes=(16,))


# ----------------------------------------------------------------------------- ms_loss
def _ms_batch(m: int, dim: int, per_class: int, seed: int, device):
    "Seeded embeddings (m, dim) and labels with `per_class` instances of m // per_class classes, shuffled."
    import torch
    g = torch.Generator().manual_seed(seed + m)
    y = torch.arange(m) // per_class
    y = y[torch.randperm(m, generator=g)]
    return torch.randn(m, dim, generator=g).to(device), y.to(device)


def _pml_ms(cfg: Config):
    "pytorch-metric-learning's loss + miner as one callable `(x, y) -> loss`, reducer matched; or None."
    try:
        from pytorch_metric_learning import losses, miners, reducers
    except Exception:  # noqa: BLE001 - any import failure is recorded, not fatal
        return None
    loss = losses.MultiSimilarityLoss(alpha=cfg.ms_alpha, beta=cfg.ms_beta, base=cfg.ms_base, reducer=reducers.SumReducer())
    miner = miners.MultiSimilarityMiner(epsilon=cfg.ms_epsilon)
    return lambda x, y: loss(x, y, miner(x, y)) / len(x)


def _value_and_grad(fn, E, y):
    x = E.clone().requires_grad_(True)
    out = fn(x, y)
    out.backward()
    return out.detach(), x.grad


def section_ms_loss(b: Bench) -> dict:
    "MS loss + mining, forward and backward: gradviz against pytorch-metric-learning at each batch size."
    import functools

    import torch
    from gradviz.representation.ms_loss import ms_loss
    cfg = b.cfg
    ours = functools.partial(ms_loss, alpha=cfg.ms_alpha, beta=cfg.ms_beta, base=cfg.ms_base, epsilon=cfg.ms_epsilon)
    peer = _pml_ms(cfg)
    b.section(f"ms_loss + mining, forward + backward ({cfg.ms_dim}-D float32, {cfg.ms_per_class} per class)")
    if peer is None:
        b.note("pytorch-metric-learning is not installed: the ms_loss section times gradviz alone (pip install -e '.[ref]')")
    rows = {}
    for m in cfg.ms_batches:
        E, y = _ms_batch(m, cfg.ms_dim, cfg.ms_per_class, cfg.seed, b.device)
        row = {"batch": m, "num_classes": m // cfg.ms_per_class}
        if peer is not None:
            for dtype in (torch.float64, torch.float32):
                (vo, go), (vp, gp) = _value_and_grad(ours, E.to(dtype), y), _value_and_grad(peer, E.to(dtype), y)
                row[f"{str(dtype).split('.')[-1]}_value_abs_diff"] = float((vo - vp).abs())
                row[f"{str(dtype).split('.')[-1]}_grad_max_abs_diff"] = float((go - gp).abs().max())
            row["loss_value"] = float(vo)
        fns = {"gradviz": lambda: _value_and_grad(ours, E, y)}
        if peer is not None: fns["pytorch_metric_learning"] = lambda: _value_and_grad(peer, E, y)
        for fn in fns.values(): fn()  # warm-up, untimed
        times = b.rounds(fns)
        row["timings"] = {k: timing(v) for k, v in times.items()}
        t_ours = row["timings"]["gradviz"]["median_s"]
        detail = f"gradviz {fmt_s(t_ours)}"
        if peer is not None:
            t_peer = row["timings"]["pytorch_metric_learning"]["median_s"]
            row["speedup_over_pml"] = t_peer / t_ours
            row["speedup_paired_rounds"] = sorted(p / o for p, o in zip(times["pytorch_metric_learning"], times["gradviz"]))[len(times["gradviz"]) // 2]
            detail += (f", pytorch-metric-learning {fmt_s(t_peer)}; value diff {row['float64_value_abs_diff']:.1e} (float64), "
                       f"{row['float32_value_abs_diff']:.1e} (float32); grad diff {row['float64_grad_max_abs_diff']:.1e} / "
                       f"{row['float32_grad_max_abs_diff']:.1e}")
        b.row(f"batch {m}", f"{row.get('speedup_over_pml', float('nan')):.2f}x" if peer is not None else fmt_s(t_ours), detail)
        rows[str(m)] = row
    for m in cfg.ms_target_batches:
        row = rows.get(str(m))
        value = None if row is None or peer is None else row["speedup_over_pml"]
        equal = row is not None and peer is not None and row["float32_value_abs_diff"] < 1e-5 and row["float32_grad_max_abs_diff"] < 1e-5
        t = b.target(f"ms_loss_speedup_batch_{m}", f"ms_loss + mining fwd+bwd vs pytorch-metric-learning loss + miner, batch {m}",
                     value, ">=", cfg.ms_target_speedup, "equal values and gradients (float32, 1e-5)" if equal else
                     ("skipped: pytorch-metric-learning not installed" if peer is None else "VALUES DIFFER"))
        if peer is not None and not equal: t["met"] = False
    return {"rows": rows, "peer_available": peer is not None,
            "settings": {"alpha": cfg.ms_alpha, "beta": cfg.ms_beta, "base": cfg.ms_base, "epsilon": cfg.ms_epsilon,
                         "dim": cfg.ms_dim, "per_class": cfg.ms_per_class, "dtype_timed": "float32",
                         "reducer": "pytorch-metric-learning SumReducer / batch size (the official averaging)"}}


# ----------------------------------------------------------------------------- cdc
def _cdc_methods(cfg: Config, channels: int, size: int, device) -> tuple[dict, dict, float]:
    "Forward and forward+backward closures of CDConv2d, nn.Conv2d and cdc_reference on one shape; their max difference."
    import torch
    from torch import nn
    from gradviz.representation.cdc import CDConv2d, cdc_reference
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.cdc_batch, channels, size, size, generator=g).to(device).requires_grad_()
    cdc = CDConv2d(channels, channels, theta=cfg.cdc_theta, seed=cfg.seed, device=device)
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False, device=device)
    ref_w = nn.Parameter(cdc.weight.detach().clone())
    calls = {"CDConv2d": lambda: cdc(x), "nn.Conv2d": lambda: conv(x),
             "cdc_reference": lambda: cdc_reference(x, ref_w, cfg.cdc_theta)}
    def backward(f):
        def step():
            y = f()
            y.backward(torch.ones_like(y))
        return step
    def forward(f):
        def step():
            with torch.no_grad(): f()
        return step
    with torch.no_grad(): diff = float((cdc(x) - cdc_reference(x, ref_w, cfg.cdc_theta)).abs().max())
    return {k: forward(f) for k, f in calls.items()}, {k: backward(f) for k, f in calls.items()}, diff


def _calls_per_sample(fn, device, target_s: float = 0.02) -> int:
    "How many calls of the baseline make one timed sample last about `target_s` (short calls are timer noise)."
    from gradviz.core import Timer
    with Timer(device) as t: fn()
    return max(1, round(target_s / max(t.elapsed, 1e-6)))


def _looped(fn, calls: int):
    def many():
        for _ in range(calls): fn()
    return many


def section_cdc(b: Bench) -> dict:
    "CDConv2d against nn.Conv2d (target pair, own rounds) and cdc_reference, forward and forward + backward, per shape."
    cfg, rows = b.cfg, []
    b.section(f"CDConv2d vs nn.Conv2d and the unfold reference (batch {cfg.cdc_batch}, 3x3, θ {cfg.cdc_theta:g})")
    for c in cfg.cdc_channels:
        for size in cfg.cdc_sizes:
            fwd, bwd, diff = _cdc_methods(cfg, c, size, b.device)
            row = {"channels": c, "size": size, "batch": cfg.cdc_batch, "max_abs_diff_vs_reference": diff}
            for mode, fns in (("forward", fwd), ("forward_backward", bwd)):
                for f in fns.values(): f()  # warm up
                calls = _calls_per_sample(fns["nn.Conv2d"], b.device)
                looped = {k: _looped(f, calls) for k, f in fns.items()}
                raw = timed_rounds({"CDConv2d": looped["CDConv2d"], "nn.Conv2d": looped["nn.Conv2d"]},
                                   cfg.cdc_rounds_factor * cfg.repeat, b.device)
                t = {k: timing(v, per=calls, calls_per_sample=calls) for k, v in raw.items()}
                r = {k: timing(v, per=calls, calls_per_sample=calls) for k, v in timed_rounds(
                    {"CDConv2d": looped["CDConv2d"], "cdc_reference": looped["cdc_reference"]}, cfg.repeat, b.device).items()}
                row[mode] = {"timings": {**t, "cdc_reference": r["cdc_reference"]},
                             "ratio_cdc_over_conv": paired_ratio(raw["CDConv2d"], raw["nn.Conv2d"]),
                             "ratio_of_medians_cdc_over_conv": t["CDConv2d"]["median_s"] / t["nn.Conv2d"]["median_s"],
                             "ratio_reference_over_cdc": r["cdc_reference"]["median_s"] / r["CDConv2d"]["median_s"]}
                b.row(f"{c} ch, {size}², {mode.replace('_', ' + ')}", fmt_s(t["CDConv2d"]["median_s"]),
                      f"{row[mode]['ratio_cdc_over_conv']:.2f}× nn.Conv2d (ratio of medians "
                      f"{row[mode]['ratio_of_medians_cdc_over_conv']:.2f}); reference "
                      f"{row[mode]['ratio_reference_over_cdc']:.1f}× slower; max |diff| {diff:.1e}")
            rows.append(row)
    worst = max(max(r["forward"]["ratio_cdc_over_conv"], r["forward_backward"]["ratio_cdc_over_conv"]) for r in rows)
    b.target("cdc_over_conv2d", "CDConv2d / nn.Conv2d, worst over shapes and modes", worst, "<=", cfg.cdc_target_ratio,
             f"largest difference from the reference {max(r['max_abs_diff_vs_reference'] for r in rows):.1e}")
    return {"rows": rows, "worst_ratio_cdc_over_conv": worst}


SECTIONS = (("ms_loss", section_ms_loss), ("cdc", section_cdc))


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    import torch
    if not cfg.quick and cfg.repeat < 5: cfg = Config(**{**asdict(cfg), "repeat": 5})
    b = Bench(cfg, torch.device(cfg.device))
    t0 = time.perf_counter()
    results = {"config": asdict(cfg)}
    for name, section in SECTIONS: results[name] = section(b)
    results["targets"], results["notes"] = b.targets, b.notes + [
        "Ratios divide the peer's median time by gradviz's, both timed in the same interleaved rounds (one call each per round).",
        "Each timed call builds a fresh leaf tensor, runs the forward pass and backpropagates to the embeddings.",
    ]
    results["wall_seconds"] = time.perf_counter() - t0
    results["table"] = b.rows
    return results


def render(results: dict) -> str:
    "The table printed to stdout."
    m = results["machine"]
    head = [f"gradviz representation benchmark — torch {m['torch']}, {m['torch_threads']} thread(s), {m['cpu_count']} CPUs, "
            f"device {m['device']}, repeat {results['config']['repeat']}{' (quick)' if results['config']['quick'] else ''}"]
    return render_table(results, head, name_width=34, value_width=9)


def _peer_versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("pytorch-metric-learning",):
        try: out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: out[dist] = None
    return out


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/representation.json`; returns its path."
    args, machine = start(__doc__.splitlines()[0], argv)
    cfg = make_config(Config, QUICK, args)
    results = {"machine": {**machine, "peers": _peer_versions()}, **run(cfg)}
    results["machine"]["load_average_1min_at_end"] = __import__("os").getloadavg()[0]
    return finish(NAME, results, render(results), args.results_dir, cfg.quick)


if __name__ == "__main__":
    main()
