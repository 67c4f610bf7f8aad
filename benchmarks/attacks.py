"""Attack benchmark: gradviz's I-FGSM and MI-FGSM against torchattacks' BIM and MIFGSM on one frame-model batch, and the
cost of a BMTC iteration (double backprop through the temporal-consistency term) against an I-FGSM one.

    python -m benchmarks.attacks [--quick] [--threads N] [--repeat R] [--device D]

Sections (each a function `section_<name>(bench)` listed in `SECTIONS`):
1. `peers`: a 10-step attack on one batch of images (`gradviz.data.tiny_cnn`, 3 × 32 × 32, width 16, batch 64):
   `gradviz.generation.bmtc.ifgsm` against `torchattacks.BIM` and `mifgsm` against `torchattacks.MIFGSM`, same ε, step
   and steps. Outputs are compared first (BIM bit for bit; MI-FGSM to float32 rounding: the two projections round
   differently). Target: <= 1.1x the peer's time per iteration. Skipped when torchattacks is absent.
2. `bmtc_iteration`: one iteration of `bmtc_attack` with the TC term (γ_tc = 0.1, no mixup) against one of `ifgsm` on
   the chapter's surrogate shape (`video_cnn("3d")`, batch 64 of 1 × 6 × 16 × 16 clips); the ratio is reported, with
   no target: the second backward pass is the method's price.

Every timing is the median of `--repeat` runs (at least 5 unless `--quick`), taken in interleaved rounds.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import BenchConfig, run_sections, section_main, timing
from .hessian import Bench, fmt_s

NAME = "attacks"


@dataclass(frozen=True)
class Config(BenchConfig):
    "Everything that defines one run (quick, repeat, device, seed, then these); `--quick` swaps in tiny sizes."
    batch: int = 64
    image_size: int = 32
    channels: int = 3
    width: int = 16
    steps: int = 10
    eps: float = 8 / 255
    clip_batch: int = 64
    frames: int = 6
    clip_size: int = 16
    tc_weight: float = 0.1
    peer_target: float = 1.1


QUICK = dict(quick=True, repeat=1, batch=8, image_size=8, width=4, steps=2, clip_batch=4, clip_size=8)


def _torchattacks():
    try:
        import torchattacks
    except Exception:  # noqa: BLE001 - any import failure is recorded, not fatal
        return None
    return torchattacks


# ----------------------------------------------------------------------------- peers
def section_peers(b: Bench) -> dict:
    "ifgsm / mifgsm against torchattacks BIM / MIFGSM on one image batch."
    import torch
    from gradviz.core import as_generator
    from gradviz.data import tiny_cnn
    from gradviz.generation.bmtc import ifgsm, mifgsm
    cfg = b.cfg
    b.section(f"I-FGSM / MI-FGSM vs torchattacks, tiny_cnn {cfg.channels}×{cfg.image_size}², width {cfg.width}, "
              f"batch {cfg.batch}, {cfg.steps} steps")
    net = tiny_cnn(cfg.channels, 10, cfg.image_size, cfg.width, seed=cfg.seed, device=b.device).eval()
    x = torch.rand(cfg.batch, cfg.channels, cfg.image_size, cfg.image_size, generator=as_generator(cfg.seed)).to(b.device)
    y = (torch.arange(cfg.batch) % 10).to(b.device)
    alpha = cfg.eps / 4
    ta = _torchattacks()
    ours = {"ifgsm": lambda: ifgsm(net, x, y, cfg.eps, cfg.steps, alpha).x_adv,
            "mifgsm": lambda: mifgsm(net, x, y, cfg.eps, cfg.steps, alpha, 1.0).x_adv}
    if ta is None:
        b.note("torchattacks is not installed: the peers section times gradviz alone (pip install -e '.[ref]')")
        t = {k: timing(v, per=cfg.steps) for k, v in b.rounds(ours).items()}
        for k in ours:
            b.row(k, fmt_s(t[k]["median_s"]), "per iteration")
            b.target(f"{k}_over_torchattacks", f"{k} / torchattacks, per iteration", None, "<=", cfg.peer_target,
                     "skipped: torchattacks not installed")
        return {"peer_available": False, "timings": t}
    peers = {"ifgsm": ta.BIM(net, eps=cfg.eps, alpha=alpha, steps=cfg.steps),
             "mifgsm": ta.MIFGSM(net, eps=cfg.eps, alpha=alpha, steps=cfg.steps, decay=1.0)}
    out = {"peer_available": True}
    for k in ours:
        peer = lambda k=k: peers[k](x, y)
        diff = float((ours[k]() - peer()).abs().max())
        t = {n: timing(v, per=cfg.steps) for n, v in b.rounds({"gradviz": ours[k], "torchattacks": peer}).items()}
        ratio = t["gradviz"]["median_s"] / t["torchattacks"]["median_s"]
        b.row(f"{k} / torchattacks", f"{ratio:.2f}x", f"per iteration: gradviz {fmt_s(t['gradviz']['median_s'])}, "
              f"torchattacks {fmt_s(t['torchattacks']['median_s'])}; max |difference| {diff:.1e}")
        tol = 0.0 if k == "ifgsm" else 1e-6
        tgt = b.target(f"{k}_over_torchattacks", f"{k} / torchattacks, per iteration", ratio, "<=", cfg.peer_target,
                       ("identical outputs" if diff == 0 else f"outputs agree to {diff:.0e}") if diff <= tol
                       else "OUTPUTS DIFFER")
        if diff > tol: tgt["met"] = False
        out[k] = {"timings": t, "ratio": ratio, "max_abs_diff": diff}
    return out


# ----------------------------------------------------------------------------- BMTC iteration
def section_bmtc_iteration(b: Bench) -> dict:
    "One BMTC iteration with the TC term against one I-FGSM iteration on the chapter's surrogate shape."
    from gradviz.data import tiny_clips, video_cnn
    from gradviz.generation.bmtc import bmtc_attack, ifgsm
    cfg = b.cfg
    b.section(f"BMTC iteration (γ_tc = {cfg.tc_weight:g}, double backprop) vs I-FGSM, video_cnn 3d, batch "
              f"{cfg.clip_batch} of 1×{cfg.frames}×{cfg.clip_size}²")
    net = video_cnn("3d", seed=cfg.seed, device=b.device).eval().requires_grad_(False)
    clips = tiny_clips(cfg.clip_batch, frames=cfg.frames, size=cfg.clip_size, seed=cfg.seed, device=b.device)
    fns = {"ifgsm": lambda: ifgsm(net, clips.x, clips.y, 16 / 255, cfg.steps),
           "bmtc": lambda: bmtc_attack(net, clips.x, clips.y, 16 / 255, cfg.steps, tc_weight=cfg.tc_weight)}
    for fn in fns.values(): fn()  # warm-up, untimed
    t = {k: timing(v, per=cfg.steps) for k, v in b.rounds(fns).items()}
    ratio = t["bmtc"]["median_s"] / t["ifgsm"]["median_s"]
    b.row("BMTC (TC) / I-FGSM iteration", f"{ratio:.2f}x",
          f"BMTC {fmt_s(t['bmtc']['median_s'])}, I-FGSM {fmt_s(t['ifgsm']['median_s'])} per iteration")
    return {"timings": t, "ratio_bmtc_over_ifgsm": ratio}


SECTIONS = (("peers", section_peers), ("bmtc_iteration", section_bmtc_iteration))


# ----------------------------------------------------------------------------- driver
def run(cfg: Config) -> dict:
    "Run every section; return the results dictionary (also holds the printable table)."
    return run_sections(cfg, SECTIONS, [
        "Times are per attack iteration: a whole attack of `steps` iterations divided by `steps`.",
        "torchattacks checks the input range and wraps the model on every call; that is part of its time.",
    ])


def main(argv: list[str] | None = None) -> Path:
    "Parse options, pin threads, run, print the table and write `results/attacks.json`; returns its path."
    return section_main(sys.modules[__name__], argv, "attacks", ("torchattacks",), name_width=34)


if __name__ == "__main__":
    main()
