"""gradviz.distributed.coding: gradient codes against every small straggler set, the (B, W, λ) check against a
brute-force window scan, loads against the closed forms, exact decoding on random conforming patterns, and real gloo
workers against the in-process simulation (bit for bit), with failing and hung ranks."""
import itertools
import random

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.distributed.coding import (KINDS, PRESETS, SCHEMES, CodingResult, ProcessDemo, Task, _assign, _Book,
                                        _launch, _RunConfig, coding_figure, coding_run, coding_worker, conforms,
                                        cyclic_code, explore_coding, frc_code, gc_decode, gc_plan,
                                        gilbert_elliott_delays, loads, m_sgc_plan, make_plan, piece_bounds,
                                        plot_cumulative_time, plot_loss_vs_time, plot_timeline, preset_pattern,
                                        process_demo, random_conforming, regression_jobs, simulate_coding,
                                        sr_sgc_plan, stragglers, task_gradient, task_pieces, timeline_figure)
from gradviz.parallel import WorkerError
from workers import leftover_workers


F64 = torch.float64
TIMEOUT = 60.0


def _numpy_gradient(jobs, theta):
    "Xᵀ(Xθ − y)/N in NumPy float64: the reference for every decoded gradient."
    X, y, t = jobs.X.cpu().numpy(), jobs.y.cpu().numpy(), theta.cpu().numpy()
    return X.T @ (X @ t - y) / len(y)




# ---------------------------------------------------------------- codes
@pytest.mark.parametrize("n, s, kind", [(6, 2, "frc"), (8, 1, "frc"), (7, 3, "cyclic"), (10, 2, "cyclic")])
def test_gc_decodes_the_full_gradient_under_every_small_straggler_set(n, s, kind):
    plan = gc_plan(n, s, code=kind, seed=1)
    jobs = regression_jobs(230, 4, models=2, seed=3)
    theta = jobs.theta0[1]
    replies = [task_gradient(plan, jobs, Task("coded", 0), i, theta) for i in range(n)]
    ref = _numpy_gradient(jobs, theta)
    for k in range(s + 1):
        for gone in itertools.combinations(range(n), k):
            a = gc_decode(plan.code, [i for i in range(n) if i not in gone])
            assert a is not None and all(a[i] == 0 for i in gone)
            got = sum(float(a[i]) * replies[i] for i in range(n) if i not in gone)
            np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10)
    assert gc_decode(plan.code, list(range(n - s - 1))) is None or kind == "cyclic"


def test_frc_vectors_are_one_survivor_per_group_and_cyclic_residuals_vanish():
    code = frc_code(9, 2)
    for F in itertools.combinations(range(9), 7):
        a = gc_decode(code, F)
        assert set(a.tolist()) <= {0.0, 1.0} and a.view(3, 3).sum(1).tolist() == [1.0] * 3
    assert gc_decode(code, [0, 1, 2, 3, 4, 5]) is None  # group {6, 7, 8} is gone
    cyc = cyclic_code(9, 4, seed=5)
    assert ((cyc.matrix != 0).sum(1) == 5).all()
    for F in itertools.combinations(range(9), 5):
        a = gc_decode(cyc, F)
        assert float((a @ cyc.matrix - 1).norm()) < 1e-9
    with pytest.raises(ValueError, match="`s`"):
        frc_code(9, 3)


# ---------------------------------------------------------------- the model
def _brute_conforms(pattern, B, W, lam) -> bool:
    "Every window of W rounds: ≤ λ distinct stragglers, and each one's slow rounds span ≤ B rounds."
    P = pattern.numpy()
    for lo in range(-W + 1, len(P)):
        win = P[max(lo, 0):lo + W]
        if win.any(0).sum() > lam: return False
        for i in np.flatnonzero(win.any(0)):
            rows = np.flatnonzero(win[:, i])
            if rows.max() - rows.min() + 1 > B: return False
    return True


def test_conforms_agrees_with_a_brute_force_window_scan():
    g = torch.Generator().manual_seed(0)
    agree = disagree = 0
    for k in range(400):
        B, W = [(1, 1), (1, 2), (2, 3), (1, 4), (3, 4), (2, 5)][k % 6]
        lam = 1 + k % 3
        pattern = torch.rand(8, 4, generator=g) < (0.08 if k % 2 else 0.25)
        ok = _brute_conforms(pattern, B, W, lam)
        assert bool(conforms(pattern, B, W, lam)) == ok
        agree += ok
        disagree += not ok
        drawn = random_conforming(4, 10, B, W, lam, p=0.5, seed=k)
        assert _brute_conforms(drawn, B, W, lam)
    assert agree > 40 and disagree > 40  # both verdicts were exercised


def test_delays_follow_the_gilbert_elliott_chain():
    d = gilbert_elliott_delays(10, 20_000, p_gs=0.1, p_sg=0.4, slowdown=5.0, jitter=0.02, seed=2)
    slow = (d > 4).numpy()
    assert abs(slow.mean() - 0.1 / 0.5) < 0.01
    runs = [len(list(g)) for col in slow.T for v, g in itertools.groupby(col) if v]
    assert abs(np.mean(runs) - 1 / 0.4) < 0.1  # bursts last 1/p_sg rounds on average
    mask = stragglers(d, 0.1).numpy()
    dn = d.numpy()
    np.testing.assert_array_equal(mask, dn > 1.1 * dn.min(1, keepdims=True))


# ---------------------------------------------------------------- plans and loads
NOTE_TABLE = {(1, 2, 4): (0.25, 0.15, 0.083), (1, 5, 4): (0.25, 0.10, 0.060), (2, 3, 4): (0.25, 0.15, 0.083),
              (3, 4, 6): (0.35, 0.20, 0.088)}


@pytest.mark.parametrize("model", list(NOTE_TABLE))
def test_loads_equal_the_notes_table_and_what_runs_assign(model):
    for scheme, want in zip(SCHEMES, NOTE_TABLE[model]):
        assert loads(scheme, 20, *model) == pytest.approx(want, abs=5.01e-4)
        plan = make_plan(scheme, 20, *model)
        run = simulate_coding(plan, regression_jobs(100, 2, 8), gilbert_elliott_delays(20, 30, seed=1), 20,
                              gradients=False)
        assert float((run.assigned[plan.T:20] - loads(scheme, 20, *model)).abs().max()) < 1e-12
    B, W, lam = model
    ell = (lam + 1) / (20 * ((W - 1) * (lam + 1) + B))
    assert float(m_sgc_plan(20, *model).sizes[0]) == pytest.approx(ell, rel=1e-14)


def test_sr_sgc_needs_b_dividing_w_minus_1_and_picks_s():
    with pytest.raises(ValueError, match="`B`"):
        sr_sgc_plan(8, 2, 4, 2)
    assert [sr_sgc_plan(20, B, W, lam).s for B, W, lam in NOTE_TABLE] == [2, 1, 2, 3]
    assert [sr_sgc_plan(20, B, W, lam).T for B, W, lam in NOTE_TABLE] == [1, 1, 2, 3]
    assert [m_sgc_plan(20, B, W, lam).T for B, W, lam in NOTE_TABLE] == [1, 4, 3, 5]


# ---------------------------------------------------------------- decoding in runs
def test_every_scheme_decodes_exactly_on_random_conforming_patterns():
    jobs, rng = regression_jobs(240, 3, models=8, seed=0), random.Random(1)
    stragglers_seen = 0
    for k in range(150):
        n = rng.choice([4, 5, 6, 8])
        W = rng.randint(2, 5)
        B, lam = rng.choice([b for b in range(1, W) if (W - 1) % b == 0]), rng.randint(1, n - 1)
        plan = make_plan(SCHEMES[k % 3], n, B, W, lam, seed=k)
        pattern = random_conforming(n, 6 + plan.T, *plan.model, p=0.4, seed=k)
        run = simulate_coding(plan, jobs, torch.ones(6 + plan.T, n, dtype=F64), 6, pattern=pattern)
        assert run.on_time and all(w == "" for w in run.wait), (plan.scheme, n, B, W, lam)
        for j in range(6):
            theta = jobs.theta0[j % 8] if j < 8 else None
            np.testing.assert_allclose(run.exact[j].numpy(), _numpy_gradient(jobs, theta), rtol=0, atol=1e-12)
        assert run.max_error < 1e-10
        stragglers_seen += int(pattern.sum())
    assert stragglers_seen > 500


def test_a_broken_pattern_fails_unless_the_master_waits():
    plan, jobs = m_sgc_plan(8, 1, 3, 2), regression_jobs(200, 3, models=8, seed=0)
    ones = torch.ones(30, 8, dtype=F64)
    for preset in ("too many stragglers", "burst too long"):
        pattern = preset_pattern(preset, plan, ones, seed=2)
        assert not conforms(pattern, *plan.model)
        assert not simulate_coding(plan, jobs, ones, 26, pattern=pattern, wait=False).on_time
        waited = simulate_coding(plan, jobs, ones, 26, pattern=pattern)
        assert waited.on_time and waited.max_error < 1e-10 and "model" in waited.wait


def test_m_sgc_retries_exactly_the_missing_chunk():
    plan = m_sgc_plan(4, 1, 3, 1)
    pattern = torch.zeros(8, 4, dtype=torch.bool)
    pattern[0, 0] = True
    book = _Book(plan, 6)
    book.deliver(_assign(plan, book, 0, pattern), [None, [0], [0], [0]])
    assert set(book.d1[0]) == {(1, 0), (2, 0), (3, 0)}
    assert _assign(plan, book, 1, pattern)[0] == [Task("d1", 1, 0), Task("d1", 0, 0)]
    run = simulate_coding(plan, regression_jobs(120, 3, models=4, seed=1), torch.ones(8, 4, dtype=F64), 6,
                          pattern=pattern)
    assert [KINDS[k] for k in run.timeline[2, 0]] == ["uncoded", "uncoded", "repeat"]
    assert run.on_time and run.max_error < 1e-12


def test_sr_sgc_reattempts_with_the_rounds_stragglers():
    plan = sr_sgc_plan(4, 1, 3, 2)  # s = 1, T = 1
    pattern = torch.zeros(7, 4, dtype=torch.bool)
    pattern[0, [0, 1]] = True  # FRC group {0, 1} gone: one of the two (the lower index) redoes job 0 in round 1
    run = simulate_coding(plan, regression_jobs(120, 3, models=4, seed=1), torch.ones(7, 4, dtype=F64), 6,
                          pattern=pattern)
    assert run.timeline[1, :, 0].tolist() == [3, 2, 2, 2] and run.decode_round[:2].tolist() == [1, 1]
    assert run.on_time and run.max_error < 1e-12


def test_m_sgc_finishes_first_on_gilbert_elliott_delays():
    tuned = {"gc": (1, 1, 3), "sr-sgc": (1, 2, 2), "m-sgc": (2, 3, 4)}  # the notebook's choice (tuning seeds 0–1)
    jobs = regression_jobs(240, 2, models=8, seed=0)
    for seed in (10, 11, 12):
        d = gilbert_elliott_delays(12, 70, seed=seed)
        total = {s: simulate_coding(make_plan(s, 12, *m), jobs, d, 60, gradients=False).total_time
                 for s, m in tuned.items()}
        assert total["m-sgc"] < 0.85 * min(total["gc"], total["sr-sgc"])


# ---------------------------------------------------------------- real processes (gloo on 127.0.0.1)
def test_gloo_workers_match_the_simulation_bit_for_bit():
    jobs, delays = regression_jobs(400, 5, models=4, seed=0), gilbert_elliott_delays(4, 20, p_gs=0.15, seed=3)
    demo = process_demo([m_sgc_plan(4, 1, 2, 1), sr_sgc_plan(4, 1, 3, 2)], jobs, delays, n_jobs=10,
                        time_scale=0.05, timeout=TIMEOUT)
    assert isinstance(demo, ProcessDemo) and demo.identical
    assert sum(int(r.pattern.sum()) for r in demo.simulated) > 0  # some workers sent the empty marker
    for proc, sim in zip(demo.simulated, demo.reference):
        assert torch.equal(proc.grads, sim.grads) and proc.total_time == sim.total_time and proc.on_time
    assert demo.timed.on_time and demo.timed.max_error < 1e-10 and 0 <= demo.timed_match <= 1
    assert leftover_workers() == []


def _cfg(fault):
    plan, jobs = gc_plan(1, 0), regression_jobs(20, 2, models=2, seed=0)
    delays = torch.ones(6, 1, dtype=F64)
    return _RunConfig(plan, jobs, delays, stragglers(delays), 5, 0.1, True, "simulated", 0.1, "gloo", fault)


def test_a_failing_rank_reaches_the_parent():
    with pytest.raises(WorkerError, match="rank 1 of 2 failed") as info:
        _launch((_cfg(("raise", 1, 2)),), TIMEOUT)
    assert "injected failure on rank 1 in round 2" in info.value.traceback
    assert leftover_workers() == []


def test_a_hung_rank_is_killed_at_the_timeout():
    with pytest.raises(TimeoutError, match="`timeout`=15"):
        _launch((_cfg(("hang", 1, 1)),), 15.0)
    assert leftover_workers() == []


# ---------------------------------------------------------------- figures, explorer, device
def test_figures_and_explorer():
    plan = m_sgc_plan(6, 1, 3, 2)
    runs = {s: simulate_coding(make_plan(s, 6, 1, 3, 2), regression_jobs(100, 2, 8), gilbert_elliott_delays(6, 30),
                               20) for s in SCHEMES}
    assert isinstance(plot_timeline(runs["m-sgc"], rounds=10), Figure)
    assert isinstance(plot_cumulative_time(runs), Figure) and isinstance(plot_loss_vs_time(runs), Figure)
    fig = timeline_figure(runs["m-sgc"], frames=5)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 5
    assert fig.data[-1].z.shape == (6 * plan.slots, 22)
    for preset in PRESETS:
        title = coding_figure(n=6, preset=preset).layout.title.text
        assert ("conforms" in title) == (preset == "conforming") or preset == PRESETS[0]
    ex = explore_coding()
    assert "cannot run" in ex.update(scheme="sr-sgc", B=2, W=4).layout.title.text
    assert isinstance(ex.update(scheme="gc"), go.Figure)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_the_jobs(device):
    jobs = regression_jobs(100, 3, models=4, device=device)
    run = simulate_coding(m_sgc_plan(4, 1, 2, 1), jobs, gilbert_elliott_delays(4, 12), 10)
    assert run.grads.device.type == device and run.max_error < 1e-10
    assert coding_run(m_sgc_plan(4, 1, 2, 1), jobs, gilbert_elliott_delays(4, 12), 10).on_time


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_PLAN, _JOBS = m_sgc_plan(4, 1, 2, 1), regression_jobs(40, 2, models=4, seed=0)
_D = gilbert_elliott_delays(4, 12, seed=0)
_RES = simulate_coding(_PLAN, _JOBS, _D, 6)
_P = stragglers(_D)

PROBES = [
    Probe(gilbert_elliott_delays, dict(n=3, rounds=5),
          dict(n=SIZES + ["3"], rounds=SIZES, p_gs=[-0.1, 1.5, NAN], p_sg=[2.0, NAN], slowdown=[0.5, INF],
               jitter=[-1.0, NAN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(stragglers, dict(delays=_D), dict(delays=[_D[0], _D.long(), torch.full_like(_D, NAN), "d"], mu=[-0.1, NAN])),
    Probe(conforms, dict(pattern=_P, B=1, W=2, lam=1),
          dict(pattern=[_P[0], _P.double(), "p"], B=SIZES + [3], W=SIZES, lam=[-1, 0.5])),
    Probe(random_conforming, dict(n=4, rounds=5, B=1, W=2, lam=1),
          dict(n=SIZES, rounds=SIZES, B=SIZES + [3], W=SIZES, lam=[-1, 5], p=[-0.1, 1.5, NAN], seed=[-1, 0.5])),
    Probe(frc_code, dict(n=6, s=2), dict(n=SIZES, s=[-1, 6, 3, 0.5])),
    Probe(cyclic_code, dict(n=6, s=2), dict(n=SIZES, s=[-1, 6], seed=[-1, 0.5])),
    Probe(gc_decode, dict(code=frc_code(6, 2), survivors=[0, 1]),
          dict(code=["code", _PLAN], survivors=[[7], [-1], torch.ones(5, dtype=torch.bool)])),
    Probe(gc_plan, dict(n=4, s=1), dict(n=SIZES, s=[-1, 4], code=[UNKNOWN], seed=[-1, 0.5])),
    Probe(sr_sgc_plan, dict(n=4, B=1, W=3, lam=2),
          dict(n=SIZES, B=SIZES + [3, 4], W=SIZES, lam=[-1, 5], code=[UNKNOWN], seed=[-1, 0.5])),
    Probe(m_sgc_plan, dict(n=4, B=1, W=3, lam=2),
          dict(n=SIZES + [1], B=SIZES + [4], W=SIZES, lam=[-1, 4], code=[UNKNOWN], seed=[-1, 0.5])),
    Probe(loads, dict(scheme="gc", n=4, B=1, W=2, lam=1),
          dict(scheme=[UNKNOWN], n=SIZES, B=SIZES, W=SIZES, lam=[-1, 5, 0.5])),
    Probe(make_plan, dict(scheme="gc", n=4, B=1, W=2, lam=1),
          dict(scheme=[UNKNOWN], n=SIZES, lam=[-1, 4], seed=[-1, 0.5])),
    Probe(task_pieces, dict(plan=_PLAN, task=Task("d1", 0, 0), worker=1),
          dict(plan=["plan"], task=[("d1", 0, 0), Task(UNKNOWN, 0)], worker=[-1, 4, 0.5])),
    Probe(regression_jobs, dict(samples=20, d=2, models=2),
          dict(samples=SIZES, d=SIZES, models=SIZES, noise=[-1.0, NAN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(piece_bounds, dict(plan=_PLAN, samples=40), dict(plan=["plan"], samples=SIZES)),
    Probe(task_gradient, dict(plan=_PLAN, jobs=_JOBS, task=Task("d1", 0, 0), worker=1, theta=_JOBS.theta0[0]),
          dict(plan=["plan"], jobs=["jobs"], task=["task"], worker=[-1, 4],
               theta=[_JOBS.theta0, _JOBS.theta0[0, :1], torch.full((2,), NAN, dtype=F64), "t"])),
    Probe(simulate_coding, dict(plan=_PLAN, jobs=_JOBS, delays=_D, n_jobs=6),
          dict(plan=["plan"], jobs=["jobs", regression_jobs(40, 2, models=1)], delays=[_D[:5], _D[:, :3], -_D, "d"],
               n_jobs=SIZES + [20], mu=[-0.1, NAN], pattern=[_P.double(), _P[:, :2]], wait=["yes"],
               gradients=["yes"], device=[UNKNOWN], progress=["bar"])),
    Probe(coding_run, dict(plan=_PLAN, jobs=_JOBS, delays=_D, n_jobs=6),
          dict(plan=["plan"], delays=[_D[:5]], n_jobs=SIZES, mode=[UNKNOWN], straggling=[UNKNOWN, "timed"],
               backend=[UNKNOWN], time_scale=[0.0, NAN], timeout=[0.0, NAN], wait=["yes"])),
    Probe(coding_worker, dict(rank=0, world_size=5, plan=_PLAN, jobs=_JOBS, delays=_D, n_jobs=6),
          dict(rank=[-1, 5, 0.5], world_size=[3, 0, "5"], plan=["plan"], jobs=["jobs"], delays=[_D[:5]],
               n_jobs=SIZES, mu=[-1.0])),
    Probe(process_demo, dict(plans=[_PLAN], jobs=_JOBS, delays=_D, n_jobs=6),
          dict(plans=[[], _PLAN, ["plan"], [_PLAN, m_sgc_plan(5, 1, 2, 1)]], jobs=["jobs"], delays=[_D[:5]],
               n_jobs=SIZES, mu=[-1.0], time_scale=[0.0], backend=[UNKNOWN], timeout=[0.0])),
    Probe(plot_timeline, dict(result=_RES), dict(result=["r"], rounds=SIZES)),
    Probe(plot_cumulative_time, dict(results={"a": _RES}), dict(results=[{}, {"a": "r"}, [_RES]])),
    Probe(plot_loss_vs_time, dict(results={"a": _RES}), dict(results=[{}, {"a": "r"}, [_RES]])),
    Probe(timeline_figure, dict(result=_RES), dict(result=["r"], frames=SIZES)),
    Probe(preset_pattern, dict(preset=PRESETS[1], plan=_PLAN, delays=_D),
          dict(preset=[UNKNOWN], plan=["plan"], delays=[_D[:, :2], "d"], mu=[-1.0], seed=[-1, 0.5])),
    Probe(coding_figure, dict(n=4), dict(n=SIZES + ["4"], mu=[-0.1, NAN], p_gs=[1.5], slowdown=[0.5], scheme=[UNKNOWN],
                                         preset=[UNKNOWN], jobs=SIZES, seed=[-1, 0.5])),
]
UNPROBED = {}
