"""TangleNAS section of the learned-solvers benchmark (imported by `benchmarks/learned.py`).

A training step (forward, loss, backward) of a one-stage supernet, TangleNAS (`kind="tangle"`, one convolution with
the superposed weight) against WS-DARTS (`kind="darts"`, one convolution per choice, outputs mixed), with n = 3 … 11
kernel choices. The kernel sets are the n largest odd sizes up to 21, so the largest operation is the same for every n
and only the number of choices changes. Reported per n: median step time (interleaved rounds, one torch thread) and
the bytes autograd saves (`gradviz.autodiff.saved_tensor_bytes`: all of them at batch B, and the activation part,
saved(2B) − saved(B)); at least 11 interleaved rounds (7 with --quick). Target: TangleNAS's step within ±15 % of its own 3-choice time at every n; WS-DARTS's growth is
reported, not judged.
"""
from __future__ import annotations

import time

from . import timed_rounds
from .hessian import Bench, fmt_s

CHOICES = (3, 5, 7, 9, 11)
LARGEST = 21
TOLERANCE = 0.15


def _step_fn(net, X, y):
    "One forward + cross-entropy + backward of `net` on (X, y), gradients dropped."
    import torch.nn.functional as F

    def step():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(X), y).backward()
    return step


def section_tanglenas(b: Bench) -> dict:
    "TangleNAS vs WS-DARTS step time and saved bytes against the number of kernel choices."
    import torch
    from gradviz.autodiff import saved_tensor_bytes
    from gradviz.core import as_generator
    from gradviz.learned.tanglenas import Supernet, activation_bytes, kernel_set
    cfg = b.cfg
    choices = CHOICES[::2] if cfg.quick else CHOICES
    repeat, batch, size, width = max(cfg.repeat, 7 if cfg.quick else 11), 8 if cfg.quick else 16, 16, 16
    dev = torch.device(cfg.device)
    g = as_generator(cfg.seed)
    X = torch.randn(batch, 4, size, size, generator=g).to(dev)
    y = (torch.arange(batch) % 4).to(dev)
    b.section(f"TangleNAS vs WS-DARTS step, kernels = n largest odd ≤ {LARGEST}, width {width}, batch {batch}, "
              f"{size}×{size}, 4 input channels")
    nets = {(kind, n): Supernet(kind, in_channels=4, widths=(width,), kernels=kernel_set(n, LARGEST), stages=1,
                                seed=cfg.seed, device=dev) for n in choices for kind in ("tangle", "darts")}
    fns = {key: _step_fn(net, X, y) for key, net in nets.items()}
    for fn in fns.values(): fn()  # warm-up, untimed
    t0 = time.perf_counter()
    times = timed_rounds(fns, repeat, dev)  # interleaved: every (method, n) once per round, median of >= 5
    med = {key: sorted(ts)[len(ts) // 2] for key, ts in times.items()}
    rows, worst = {}, 0.0
    for n in choices:
        row = {"kernels": list(kernel_set(n, LARGEST))}
        for kind in ("tangle", "darts"):
            net = nets[kind, n]
            row[kind] = {"median_s": med[kind, n], "times_s": times[kind, n],
                         "ratio_to_3_choices": med[kind, n] / med[kind, choices[0]],
                         "saved_bytes": saved_tensor_bytes(lambda: torch.nn.functional.cross_entropy(net(X), y)),
                         "activation_bytes": activation_bytes(net, X)}
        worst = max(worst, abs(row["tangle"]["ratio_to_3_choices"] - 1))
        b.row(f"n = {n:2d} choices", f"{row['tangle']['ratio_to_3_choices']:.2f}x",
              f"TangleNAS {fmt_s(med['tangle', n])} ({row['tangle']['activation_bytes'] / 1e6:.2f} MB act.), "
              f"WS-DARTS {fmt_s(med['darts', n])} = {row['darts']['ratio_to_3_choices']:.2f}x its 3-choice time "
              f"({row['darts']['activation_bytes'] / 1e6:.2f} MB act.)")
        rows[str(n)] = row
    flat_bytes = len({r["tangle"]["activation_bytes"] for r in rows.values()}) == 1
    b.note(f"TangleNAS step: worst deviation from its 3-choice time {100 * worst:.0f} % (target ±{100 * TOLERANCE:.0f} %);"
           f" activation bytes {'identical' if flat_bytes else 'NOT identical'} for every n. WS-DARTS at n = "
           f"{choices[-1]}: {rows[str(choices[-1])]['darts']['ratio_to_3_choices']:.2f}x its 3-choice time.")
    b.target("tanglenas_step_flatness", "TangleNAS step time / its 3-choice time, worst |ratio − 1| over n",
             worst, "<=", TOLERANCE, "activation bytes identical" if flat_bytes else "activation bytes DIFFER")
    return {"rows": rows, "worst_tangle_deviation": worst, "tangle_activation_flat": flat_bytes,
            "repeat": repeat, "seconds": time.perf_counter() - t0}
