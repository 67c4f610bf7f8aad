"""How quickly every chapter's live explorer answers a reader, against the book's 150 ms target.

    python -m benchmarks.explorers [--quick] [--repeat R] [--only NAME]

Every exported `explore_*()` in the package is found by itself (a new chapter's explorer is measured
without editing this file). For each one it reports:

- the first update at the default settings (what "Run All" costs the reader before the panel appears);
- for every control: the median time of fresh (uncached) updates with that control moved across its
  range, figure rendering included (`Explorer.latency`), and how it updates: while dragged (a slider),
  on release (a slider marked `costly`), or once per choice (a menu or checkbox);
- a cached update (a setting seen before): what moving back to a visited setting costs.

Target (CONTRIBUTING.md): a median under 150 ms on a CPU for every control. Controls marked `costly`
are reported, not judged: their work (a training run, a Lanczos spectrum) takes seconds by nature,
which is why sliders among them wait for the release, and why the explorer shows a progress bar.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from . import finish, median, start

NAME = "explorers"
TARGET_S = 0.150


def find_explorers(only: str | None = None) -> list[tuple[str, object]]:
    "(qualified name, factory) for every `explore_*` function exported by a gradviz module."
    import gradviz
    found = []
    for info in pkgutil.walk_packages(gradviz.__path__, prefix="gradviz."):
        if info.name.endswith("_modidx"): continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            fn = getattr(mod, name, None)
            if name.startswith("explore_") and inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                qual = f"{mod.__name__}.{name}"
                if only is None or only in qual: found.append((qual, fn))
    return sorted(found)


def _seconds(fn) -> float:
    from gradviz.core import Timer
    with Timer() as t: fn()
    return t.elapsed


def measure(factory, repeat: int) -> dict:
    "First update, per-control uncached medians and one cached update for one explorer."
    from gradviz.viz import Explorer
    ex = None
    def build():
        nonlocal ex
        ex = factory()
    build_s = _seconds(build)
    if not isinstance(ex, Explorer): raise TypeError(f"{factory.__name__}() returned {type(ex).__name__}, not an Explorer")
    first_s = _seconds(lambda: ex._payload(ex._lookup(ex.params)))
    controls = {}
    for name, c in ex.controls.items():
        reps = max(1, repeat // 2) if c.costly else repeat
        t = ex.latency(repeat=reps, name=name)
        mode = "click" if c.kind in ("dropdown", "checkbox") else "release" if c.costly else "drag"
        controls[name] = {"kind": c.kind, "mode": mode, "costly": c.costly, "on_release": mode == "release",
                          "median_s": t.median, "times_s": list(t.times),
                          "meets_target": None if c.costly else t.median <= TARGET_S}
    ex.update(**ex.params)  # make the defaults current again: they are cached from the first update
    cached_s = median(_seconds(lambda: ex._payload(ex._lookup(ex.params))) for _ in range(max(3, repeat)))
    return {"build_s": build_s, "first_update_s": first_s, "cached_update_s": cached_s, "controls": controls}


def run(repeat: int, only: str | None, limit: int | None = None) -> dict:
    "Measure every explorer (the first `limit`); a failing one is recorded with its error rather than stopping the run."
    out = {}
    for qual, factory in find_explorers(only)[:limit]:
        try: out[qual] = measure(factory, repeat)
        except Exception as e: out[qual] = {"error": f"{type(e).__name__}: {e}"}
        print(f"  measured {qual}", flush=True)
    return out


def render(res: dict) -> str:
    "The latency table: one row per control."
    lines = [f"{'explorer':<44} {'control':<14} {'kind':<9} {'updates':<9} {'median':>9} {'target':>7}",
             "-" * 97]
    for qual, r in res["explorers"].items():
        short = qual.replace("gradviz.", "")
        if "error" in r:
            lines.append(f"{short:<44} ERROR {r['error']}")
            continue
        lines.append(f"{short:<44} {'(first)':<14} {'':<9} {'':<9} {r['first_update_s'] * 1e3:>7.0f}ms "
                     f"{'':>7}  cached {r['cached_update_s'] * 1e3:.1f} ms")
        for name, c in r["controls"].items():
            verdict = "-" if c["meets_target"] is None else "met" if c["meets_target"] else "MISSED"
            lines.append(f"{'':<44} {name:<14} {c['kind']:<9} {c['mode'] + ('*' if c['costly'] else ''):<9} "
                         f"{c['median_s'] * 1e3:>7.0f}ms {verdict:>7}")
    s = res["summary"]
    lines.append(f"\n{s['judged']} controls judged against {TARGET_S * 1e3:.0f} ms: {s['met']} meet it. "
                 f"{s['costly']} are marked costly (*: slow by design, a progress bar shows; sliders among them "
                 "update on release) and are reported, not judged.")
    return "\n".join(lines)


def summarise(explorers: dict) -> dict:
    "How many controls are judged against the target (those not marked costly), how many meet it, how many are costly."
    cs = [c for r in explorers.values() if "controls" in r for c in r["controls"].values()]
    judged = [c for c in cs if not c["costly"]]
    return {"explorers": len(explorers), "errors": sum("error" in r for r in explorers.values()),
            "judged": len(judged), "met": sum(bool(c["meets_target"]) for c in judged), "costly": len(cs) - len(judged)}


def main(argv: list[str] | None = None):
    import argparse
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--only", default=None, help="measure only explorers whose name contains this")
    known, rest = extra.parse_known_args(argv)
    args, machine = start(__doc__.splitlines()[0], rest)
    from gradviz import viz
    viz.setup(renderer=None)
    repeat = 1 if args.quick else args.repeat
    explorers = run(repeat, known.only, limit=1 if args.quick else None)  # a smoke run measures one explorer
    res = {"machine": machine, "target_s": TARGET_S, "repeat": repeat, "explorers": explorers,
           "summary": summarise(explorers)}
    return finish(NAME, res, render(res), args.results_dir, args.quick)


if __name__ == "__main__":
    main()
