"""Distributed benchmark: DIFF2's round in one process against the same round on gloo processes, and the clipped
per-sample gradient sum against Opacus.

    python -m benchmarks.distributed [--quick] [--threads N] [--repeat R] [--device D]

Sections (each a function `section_<name>(bench)` listed in `SECTIONS`):
1. `round_time`: `gradviz.distributed.diff2.diff2` on robust regression (d = 20, n = 8,000, ε = 3, T = 10), run in this
   process (`mode="simulate"`) and on P + 1 gloo processes on 127.0.0.1 (`mode="processes"`, one torch thread per rank),
   P = 2 and 4. A process run's time per round is the server's loop time over its rounds, start-up excluded (reported
   apart); the simulation's is its wall time over the same rounds. Both give identical iterates (checked). The ratio
   gloo / in-process is the communication overhead of a round (broadcast, gather, one message per worker).
2. `clipped_sum`: the sum of clipped per-sample gradients of the paper's MLP (20 → 10 softplus → 1, squared loss,
   float64, n = 2,000, C = 1): `worker_round` (closed-form per-sample gradients, clipped in float64) against Opacus'
   `GradSampleModule` (forward, backward, `grad_sample`, clip, sum). Values are compared first. Target: <= 1.0x Opacus.

Every timing is the median of `--repeat` runs (at least 5 unless `--quick`), taken in interleaved rounds.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import BenchConfig, run_sections, section_main, timing
from .hessian import Bench, fmt_s

NAME = "distributed"


@dataclass(frozen=True)
class Config(BenchConfig):
    "Everything that defines one run (quick, repeat, device, seed, then these); `--quick` swaps in tiny sizes."
    n: int = 8000
    rounds: int = 50
    T: int = 10
    worker_counts: tuple[int, ...] = (2, 4)
    timeout: float = 120.0
    mlp_n: int = 2000
    mlp_d: int = 20
    mlp_hidden: int = 10
    clip: float = 1.0
    clip_target: float = 1.0


QUICK = dict(quick=True, repeat=1, n=400, rounds=5, worker_counts=(2,), mlp_n=200)


# ----------------------------------------------------------------------------- round time
def section_round_time(b: Bench) -> dict:
    "DIFF2 rounds in one process against the same rounds on P + 1 gloo processes."
    import torch
    from gradviz.distributed.diff2 import diff2, robust_regression
    cfg = b.cfg
    b.section(f"DIFF2 round, in-process vs gloo (n = {cfg.n:,}, d = 20, {cfg.rounds} rounds, T = {cfg.T})")
    rows = {}
    for P in cfg.worker_counts:
        problem = robust_regression(cfg.n, workers=P, seed=cfg.seed, device="cpu")
        kw = dict(rounds=cfg.rounds, T=cfg.T, C1=problem.G, epsilon=3.0, seed=cfg.seed)
        sim_t, proc_t, startup, same = [], [], [], True
        for _ in range(cfg.repeat):  # interleaved: one of each per round
            t0 = time.perf_counter()
            sim = diff2(problem, **kw)
            sim_t.append(time.perf_counter() - t0)
            proc = diff2(problem, **kw, mode="processes", timeout=cfg.timeout)
            proc_t.append(proc.loop_seconds)
            startup.append(proc.startup_seconds)
            same = same and torch.equal(sim.iterates, proc.iterates)
        row = {"workers": P, "in_process": timing(sim_t, per=cfg.rounds), "gloo": timing(proc_t, per=cfg.rounds),
               "startup": timing(startup), "identical_iterates": same}
        row["ratio_gloo_over_in_process"] = row["gloo"]["median_s"] / row["in_process"]["median_s"]
        b.row(f"P = {P} ({P + 1} ranks)", f"{row['ratio_gloo_over_in_process']:.2f}x",
              f"per round: in-process {fmt_s(row['in_process']['median_s'])}, gloo {fmt_s(row['gloo']['median_s'])}; "
              f"start-up {row['startup']['median_s']:.1f} s; identical iterates: {same}")
        if not same: b.note(f"P = {P}: the gloo iterates DIFFER from the simulation's")
        rows[str(P)] = row
    return {"rows": rows}


# ----------------------------------------------------------------------------- clipped per-sample sum
def _opacus():
    try:
        from opacus import GradSampleModule
    except Exception:  # noqa: BLE001 - any import failure is recorded, not fatal
        return None
    return GradSampleModule


def section_clipped_sum(b: Bench) -> dict:
    "Clipped per-sample gradient sum on the MLP: gradviz's worker round against Opacus' GradSampleModule."
    import torch
    from gradviz.data import mlp
    from gradviz.distributed.diff2 import mlp_regression, worker_round
    cfg = b.cfg
    b.section(f"clipped per-sample gradient sum, MLP {cfg.mlp_d} → {cfg.mlp_hidden} softplus → 1, n = {cfg.mlp_n:,}, "
              f"float64, C = {cfg.clip:g}")
    problem = mlp_regression(cfg.mlp_n, cfg.mlp_d, cfg.mlp_hidden, workers=1, seed=cfg.seed, device=cfg.device)
    shard, x = problem.shards(1)[0], problem.x0
    ours = lambda: worker_round(shard, x, x, True, cfg.clip).total
    GSM = _opacus()
    if GSM is None:
        b.note("opacus is not installed: the clipped_sum section times gradviz alone (pip install -e '.[ref]')")
        times = b.rounds({"gradviz": ours})
        b.row("gradviz", fmt_s(timing(times["gradviz"])["median_s"]), "")
        b.target("clipped_sum_over_opacus", "clipped per-sample sum / Opacus GradSampleModule", None, "<=",
                 cfg.clip_target, "skipped: opacus not installed")
        return {"peer_available": False}
    net = mlp([cfg.mlp_d, cfg.mlp_hidden, 1], "softplus", dtype=torch.float64, device=problem.A.device)
    torch.nn.utils.vector_to_parameters(x, net.parameters())
    gsm = GSM(net, loss_reduction="sum")  # the loss below is a sum over samples

    def peer():
        warnings.filterwarnings("ignore", message="Full backward hook")  # Opacus' hooks on an input without grad
        gsm.zero_grad(set_to_none=True)
        loss = 0.5 * ((gsm(problem.A)[:, 0] - problem.b) ** 2).sum()
        loss.backward()
        G = torch.cat([p.grad_sample.reshape(len(problem.b), -1) for p in net.parameters()], 1)
        return (G * (cfg.clip / G.norm(dim=1)).clamp(max=1)[:, None]).sum(0)
    diff = float((ours() - peer()).abs().max())
    for fn in (ours, peer): fn()  # warm-up, untimed
    times = b.rounds({"gradviz": ours, "opacus": peer})
    t = {k: timing(v) for k, v in times.items()}
    ratio = t["gradviz"]["median_s"] / t["opacus"]["median_s"]
    b.row("gradviz / Opacus", f"{ratio:.2f}x", f"gradviz {fmt_s(t['gradviz']['median_s'])}, Opacus "
          f"{fmt_s(t['opacus']['median_s'])}; max |difference| {diff:.1e}")
    tgt = b.target("clipped_sum_over_opacus", "clipped per-sample sum / Opacus GradSampleModule", ratio, "<=",
                   cfg.clip_target, f"equal sums (float64, {diff:.0e})" if diff < 1e-10 else "VALUES DIFFER")
    if diff >= 1e-10: tgt["met"] = False
    return {"peer_available": True, "timings": t, "ratio_over_opacus": ratio, "max_abs_diff": diff}


SECTIONS = (("round_time", section_round_time), ("clipped_sum", section_clipped_sum))


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    return run_sections(cfg, SECTIONS, [
        "Round-time ratios divide the gloo server's time per round (start-up excluded) by the in-process time per "
        "round.",
        "Each rank runs one torch thread; the processes are started afresh for every timed run (spawn).",
    ])


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/distributed.json`; returns its path."
    return section_main(sys.modules[__name__], argv, "distributed", ("opacus",), name_width=34)


if __name__ == "__main__":
    main()
