"""Reference tests for gradviz.dynamics.schedules: closed forms, a brute-force bound, scipy minimisers, training runs, bad input."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import scipy.ndimage
import scipy.optimize
import torch
from matplotlib.figure import Figure

from gradviz.data import mlp, teacher_student
from gradviz.dynamics.schedules import (NORMS, PADS, PROFILES, REFINED, PeakSweep, RefinedSweep, RefinementTraces,
                                        ScheduledRun, constant, cosine, explore_schedules, filter_width,
                                        grad_norm_profile, last_iterate_bound, linear_decay, optimal_schedule,
                                        plot_peak_sweep, plot_refined_sweep, plot_refinement, refine_and_sweep,
                                        refine_schedule, refinement_slider_figure, refinement_traces, schedule_figure,
                                        smooth_grad_norms, step, sweep_peak_lr, train_scheduled)
from gradviz.viz import Explorer

F64 = torch.float64
PROFILE_KNOTS = {"constant": ((0.0, 1.0), (1.0, 1.0)),
                  "early fall": ((0.0, 15.0), (0.1, 1.0), (1.0, 1.0)),
                  "early fall, late rise": ((0.0, 15.0), (0.1, 1.0), (1.0, 2.0)),
                  "early fall, late fall": ((0.0, 15.0), (0.1, 1.0), (1.0, 0.7))}


def _bound_loop(eta, G, D):
    "The bound written as plain Python loops over the definition (independent of the vectorised tail sums)."
    T = len(eta)
    S = [sum(eta[k:]) for k in range(T)]
    A = [sum(eta[t] ** 2 * G[t] ** 2 for t in range(k, T)) for k in range(T)]
    return D ** 2 / (2 * S[0]) + A[0] / (2 * S[0]) + 0.5 * sum(eta[k] / S[k + 1] * A[k] / S[k] for k in range(T - 1))


PAPER_ENDS = {"constant": None, "early fall": 1.0, "early fall, late rise": 2.0, "early fall, late fall": 0.7}


def _paper_profile(name, T=200):
    "The authors' synthetic gradient-norm profiles (piecewise linear, Gaussian-smoothed with σ = 0.02T)."
    x, end = np.linspace(0, 1, T), PAPER_ENDS[name]
    G = np.ones(T) if end is None else np.interp(x, [0, 0.003, 0.02, 0.03, 0.1, 1], [15, 6, 4, 2, 1, end])
    return torch.from_numpy(scipy.ndimage.gaussian_filter1d(G, sigma=0.02 * T, mode="nearest"))


# ---------------------------------------------------------------- baseline schedules

@pytest.mark.parametrize("T", [2, 3, 10, 301])
def test_schedules_match_their_formulas(T):
    t = np.arange(T, dtype=np.float64)
    np.testing.assert_allclose(linear_decay(T, 0.7, device="cpu").numpy(), 0.7 * (T - 1 - t) / (T - 1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(cosine(T, 0.7, device="cpu").numpy(), 0.7 * (1 + np.cos(np.pi * t / (T - 1))) / 2, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(constant(T, 0.7, device="cpu").numpy(), np.full(T, 0.7))
    expected_step = 0.7 * 0.1 ** ((t / (T - 1) >= 0.5).astype(float) + (t / (T - 1) >= 0.75))
    np.testing.assert_allclose(step(T, 0.7, device="cpu").numpy(), expected_step, rtol=1e-15, atol=0)
    for f in (linear_decay, cosine, constant, step):
        out = f(T, device="cpu")
        assert out.dtype == F64 and out.shape == (T,) and out.max() == 1.0


def test_warmup_ramps_then_runs_the_shape_over_the_remaining_steps():
    sched = linear_decay(10, 2.0, warmup=4, device="cpu")
    np.testing.assert_allclose(sched[:4].numpy(), 2.0 * np.arange(1, 5) / 4, atol=1e-15)
    np.testing.assert_allclose(sched[4:].numpy(), linear_decay(6, 2.0, device="cpu").numpy(), atol=1e-15)
    assert step(8, milestones=(), device="cpu").eq(1).all()
    np.testing.assert_allclose(step(5, milestones=(0.5,), factor=0.5, device="cpu").numpy(), [1, 1, 0.5, 0.5, 0.5])


# ---------------------------------------------------------------- the bound

@pytest.mark.parametrize("seed", range(4))
def test_bound_equals_the_definition_written_as_loops(seed):
    g = torch.Generator().manual_seed(seed)
    eta, G = torch.rand(12, generator=g, dtype=F64) + 0.05, torch.rand(12, generator=g, dtype=F64) * 3 + 0.1
    D = 0.5 + seed
    ref = _bound_loop(eta.tolist(), G.tolist(), D)
    assert abs(last_iterate_bound(eta, G, D, free_last=False) - ref) < 1e-12 * ref
    # the bound at the best common scale equals a brute-force scan over the scale
    scan = min(_bound_loop((c * eta).tolist(), G.tolist(), D) for c in np.geomspace(1e-2, 1e2, 4001))
    best = last_iterate_bound(eta, G, D, free_last=False, best_scale=True)
    assert best <= scan + 1e-12 and scan < best * (1 + 1e-4)


def test_free_last_weight_is_the_best_last_weight():
    G = _paper_profile("early fall", 20)
    eta = refine_schedule(G, smoothing=0.0)
    free = last_iterate_bound(eta, G)
    scan = min(_bound_loop(eta[:-1].tolist() + [w], G.tolist(), 1.0) for w in np.geomspace(1e-6, 10, 3000))
    assert free <= scan + 1e-12 and scan < free * (1 + 1e-4)
    assert last_iterate_bound(eta, G, free_last=False) == math.inf


def test_bound_scales_with_D_times_G_at_the_best_scale():
    G, eta = _paper_profile("early fall, late fall", 100), cosine(100, device="cpu")
    base = last_iterate_bound(eta, G, best_scale=True)
    assert abs(last_iterate_bound(5 * eta, 3 * G, D=2.0, best_scale=True) - 6 * base) < 1e-9 * base


def test_linear_decay_has_the_smallest_worst_case_bound_among_the_baselines():
    ones = torch.ones(200, dtype=F64)
    b = {f.__name__: last_iterate_bound(f(200, device="cpu"), ones, best_scale=True) for f in (linear_decay, cosine, step, constant)}
    assert b["linear_decay"] < b["cosine"] < b["step"] < b["constant"]


# ---------------------------------------------------------------- smoothing and refinement

def test_smoothing_matches_the_authors_recipe_with_end_padding():
    G = grad_norm_profile(500, PROFILE_KNOTS["early fall, late fall"], noise=0.5, seed=3, device="cpu").numpy()
    width = 2 * (int(0.1 * len(G)) // 2) + 1
    pad = 2 * width
    recipe = scipy.ndimage.median_filter(np.pad(G, (0, pad), mode="reflect"), size=width, mode="nearest")[:-pad]
    np.testing.assert_array_equal(smooth_grad_norms(G, 0.1, pad="end").numpy(), recipe)
    both = smooth_grad_norms(G, 0.1).numpy()
    np.testing.assert_array_equal(both[width:], recipe[width:])  # only the first window differs
    assert filter_width(500, 0.1) == width and all(filter_width(T, s) % 2 == 1 for T in (7, 100, 999) for s in (0, 0.05, 0.33, 1))


def test_smoothing_keeps_the_length_and_the_last_value_of_a_flat_end():
    G = torch.cat([torch.linspace(5, 1, 50, dtype=F64), torch.ones(150, dtype=F64)])
    out = smooth_grad_norms(G, 0.2)
    assert out.shape == G.shape and out[-1] == 1.0 and out[-30:].eq(1).all()


@pytest.mark.parametrize("T", [2, 3, 17, 200, 4000])
def test_constant_norms_refine_to_linear_decay(T):
    for c in (1e-3, 1.0, 1e6):
        for norm in NORMS:
            ref = refine_schedule(torch.full((T,), c, dtype=F64), norm=norm)
            assert (ref - (T - 1 - torch.arange(T, dtype=F64)) / (T - 1)).abs().max() < 1e-12


def test_refinement_is_scale_invariant_and_ends_at_zero():
    G = grad_norm_profile(300, PROFILE_KNOTS["early fall"], noise=0.4, seed=1, device="cpu")
    for norm in NORMS:
        ref = refine_schedule(G, norm=norm, peak=0.3)
        assert ref[-1] == 0 and (ref >= 0).all() and abs(ref.max().item() - 0.3) < 1e-15
        for c in (1e-5, 7.0, 1e4):
            assert (refine_schedule(c * G, norm=norm, peak=0.3) - ref).abs().max() < 1e-12


def test_refinement_is_the_closed_form_written_as_a_loop():
    G = grad_norm_profile(60, PROFILE_KNOTS["early fall, late rise"], noise=0.3, seed=2, device="cpu")
    for norm, power in NORMS.items():
        w = smooth_grad_norms(G, 0.1).numpy() ** -power
        eta = np.array([w[t] * w[t + 1:].sum() for t in range(len(w))])
        np.testing.assert_allclose(refine_schedule(G, norm=norm).numpy(), eta / eta.max(), rtol=1e-13, atol=1e-15)


def test_a_spike_makes_a_dip_and_early_large_norms_make_a_warmup():
    G = torch.ones(100, dtype=F64); G[40] = 10.0
    ref = refine_schedule(G, smoothing=0.0)
    assert int(ref[30:50].argmin()) + 30 == 40 and ref[40] < 0.02 * ref[39]
    early = refine_schedule(grad_norm_profile(1000, PROFILE_KNOTS["early fall"], device="cpu"))
    assert 0.08 < int(early.argmax()) / 1000 < 0.3 and early[0] < 0.05


def test_late_falling_norms_give_a_fast_final_anneal():
    late = refine_schedule(grad_norm_profile(1000, ((0.0, 1.0), (0.8, 1.0), (1.0, 0.4)), device="cpu"))
    lin = linear_decay(1000, device="cpu")
    assert late[900] > 3 * lin[900] and late[-1] == 0


@pytest.mark.parametrize("name", list(PAPER_ENDS))
def test_closed_form_is_within_005_of_a_scipy_minimiser_of_the_bound(name):
    G = _paper_profile(name, 200)
    ref = refine_schedule(G, smoothing=0.0)
    # an independent minimiser: the bound re-written here with explicit suffix sums, autograd gradients, scipy L-BFGS-B
    G2 = G ** 2

    def f(x):
        e = torch.tensor(x, dtype=F64, requires_grad=True)
        S = torch.stack([e[k:].sum() for k in range(len(e))])
        A = torch.cumsum((e ** 2 * G2).flip(0), 0).flip(0)
        val = 0.5 / S[0] + A[0] / (2 * S[0]) + 0.5 * (e[:-1] * A[:-1] / (S[:-1] * S[1:])).sum()
        val.backward()
        return val.item(), e.grad.numpy().copy()
    res = scipy.optimize.minimize(f, np.full(200, 1 / np.sqrt(200)), method="L-BFGS-B", jac=True, bounds=[(1e-10, None)] * 200,
                                  options=dict(maxiter=20000, maxfun=10 ** 6, ftol=1e-15, gtol=1e-12, maxcor=20))
    num = res.x / res.x.max()
    assert np.abs(num[:-1] - ref.numpy()[:-1]).max() < 0.05
    ours = optimal_schedule(G).numpy()
    assert np.abs(ours[:-1] / ours.max() - ref.numpy()[:-1]).max() < 0.05
    assert last_iterate_bound(ref, G, best_scale=True) < 1.004 * min(res.fun, last_iterate_bound(ours, G))


def test_noisy_profiles_give_the_chapters_warmups_and_anneals():
    "The chapter's claim on its five noisy profiles (T = 1000, σ = 0.3, seeds 0–4), against linear decay."
    T, lin = 1000, linear_decay(1000, device="cpu")
    ref = {k: refine_schedule(grad_norm_profile(T, v, noise=0.3, seed=i, device="cpu")) for i, (k, v) in enumerate(PROFILES.items())}
    peak = {k: int(r.argmax()) / T for k, r in ref.items()}
    assert all(0.1 < peak[k] < 0.25 for k in PROFILES if k.startswith("early")) and peak["constant"] < 0.01
    assert (ref["constant"] - lin).abs().max() < 0.2
    for k in ("late fall", "early fall, late fall"): assert ref[k][900] > 2 * lin[900] and ref[k][-1] == 0
    assert ref["early fall, late rise"][2 * T // 3:].max() < 0.15


def test_refined_schedule_beats_every_baseline_on_the_mlp():
    "The chapter's MLP claim at two of its peaks: refined from linear decay's norms wins on every seed, by > 10 %."
    X, y, _ = teacher_student(n=512, dim=10, hidden=(16,), noise=0.1, seed=0, device="cpu")
    make = lambda seed: mlp([10, 32, 1], seed=seed, device="cpu")
    T = 300
    shapes = {"constant": constant(T, device="cpu"), "step": step(T, device="cpu"), "cosine": cosine(T, device="cpu"),
              "linear decay": linear_decay(T, device="cpu")}
    res = refine_and_sweep(make, "mse", X, y, shapes, np.geomspace(0.25, 1.0, 6)[2:4].tolist(), seeds=(0, 1, 2))
    at_best = {k: res.sweep.final_losses[i, int(res.sweep.mean()[i].nan_to_num(float("inf")).argmin())]
               for i, k in enumerate(res.sweep.names)}
    base = torch.stack([at_best[k] for k in shapes]).min(0).values
    assert (at_best[REFINED] < base).all()
    best = res.sweep.best()
    assert best[REFINED]["mean"] < 0.9 * min(best[k]["mean"] for k in shapes)


# ---------------------------------------------------------------- profiles

def test_grad_norm_profile_hits_its_knots_and_is_seeded():
    G = grad_norm_profile(11, ((0.0, 8.0), (0.5, 2.0), (1.0, 2.0)), device="cpu")
    np.testing.assert_allclose(G[[0, 5, 10]].numpy(), [8, 2, 2], rtol=1e-14)
    assert abs(G[1].item() - 8 * (2 / 8) ** 0.2) < 1e-12  # log-linear between knots
    a, b = (grad_norm_profile(50, noise=0.3, seed=s, device="cpu") for s in (1, 2))
    assert torch.equal(a, grad_norm_profile(50, noise=0.3, seed=1, device="cpu")) and not torch.equal(a, b)
    state = torch.random.get_rng_state()
    grad_norm_profile(50, noise=0.3, seed=9, device="cpu")
    assert torch.equal(state, torch.random.get_rng_state())
    g = torch.Generator().manual_seed(1)
    assert torch.equal(grad_norm_profile(50, noise=0.3, seed=g, device="cpu"), a)  # a generator draws what its seed would
    assert not torch.equal(grad_norm_profile(50, noise=0.3, seed=g, device="cpu"), a)  # and moves on


# ---------------------------------------------------------------- training

def _problem():
    X, y, _ = teacher_student(n=64, dim=4, hidden=(6,), noise=0.1, seed=0, device="cpu", dtype=F64)
    return X, y, (lambda seed: mlp([4, 8, 1], seed=seed, device="cpu", dtype=F64))


def test_train_scheduled_takes_the_sgd_steps_it_says_and_records_their_norms():
    X, y, make = _problem()
    lrs = refine_schedule(grad_norm_profile(12, device="cpu"), smoothing=0.0, peak=0.2)
    net, ref = make(0), make(0)
    run = train_scheduled(net, "mse", X, y, lrs, batch_size=None)
    norms = []
    for eta in lrs.tolist():
        ref.zero_grad(); torch.nn.functional.mse_loss(ref(X), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in ref.parameters()])
        norms.append(g.norm().item())
        with torch.no_grad():
            for p in ref.parameters(): p -= eta * p.grad
    for p, q in zip(net.parameters(), ref.parameters()): torch.testing.assert_close(p, q, rtol=0, atol=1e-13)
    np.testing.assert_allclose(run.grad_norms.numpy(), norms, rtol=1e-12)
    assert isinstance(run, ScheduledRun) and abs(run.final_loss - torch.nn.functional.mse_loss(ref(X), y).item()) < 1e-12
    assert abs(run.initial_loss - torch.nn.functional.mse_loss(make(0)(X), y).item()) < 1e-12 and not run.diverged
    l1 = train_scheduled(make(0), "mse", X, y, lrs, batch_size=None, norm="l1")
    assert l1.grad_norms[0] > run.grad_norms[0]  # ‖g‖₁ ≥ ‖g‖₂


def test_sweep_marks_divergence_and_picks_the_best_peak():
    X, y, make = _problem()
    sweep = sweep_peak_lr(make, "mse", X, y, {"linear": linear_decay(20, device="cpu"), "constant": constant(20, device="cpu")},
                          [0.05, 0.2, 1e4], seeds=(0, 1), batch_size=16)
    assert sweep.final_losses.shape == (2, 3, 2) and torch.isnan(sweep.final_losses[:, 2]).all()
    best = sweep.best()
    assert set(best) == {"linear", "constant"} and all(b["peak"] in (0.05, 0.2) for b in best.values())
    again = sweep_peak_lr(make, "mse", X, y, {"linear": linear_decay(20, device="cpu")}, [0.05], seeds=(0, 1), batch_size=16)
    assert torch.equal(again.final_losses[0, 0], sweep.final_losses[0, 0])
    assert isinstance(plot_peak_sweep(sweep, title="t"), Figure)
    np.testing.assert_allclose(sweep.std()[:, :2].numpy(), sweep.final_losses[:, :2].numpy().std(-1, ddof=1), rtol=1e-12)
    assert again.std()[0, 0] >= 0 and sweep_peak_lr(make, "mse", X, y, {"l": linear_decay(5, device="cpu")}, [0.1], seeds=(0,)).std()[0, 0] == 0


def test_train_scheduled_seed_takes_a_generator():
    X, y, make = _problem()
    lrs = linear_decay(10, 0.1, device="cpu")
    a = train_scheduled(make(0), "mse", X, y, lrs, batch_size=16, seed=3)
    b = train_scheduled(make(0), "mse", X, y, lrs, batch_size=16, seed=torch.Generator().manual_seed(3))
    assert a.grad_norms.shape == b.grad_norms.shape == (10,) and torch.isfinite(b.grad_norms).all()
    with pytest.raises(TypeError, match="`seed`"): train_scheduled(make(0), "mse", X, y, lrs, seed=0.5)


def test_refine_and_sweep_runs_the_recipe():
    X, y, make = _problem()
    shapes = {"constant": constant(20, device="cpu"), "linear decay": linear_decay(20, device="cpu")}
    res = refine_and_sweep(make, "mse", X, y, shapes, [0.05, 0.2], seeds=(0, 1), batch_size=16)
    assert isinstance(res, RefinedSweep) and res.sweep.names == ("constant", "linear decay", REFINED)
    assert res.sweep.final_losses.shape == (3, 2, 2) and res.grad_norms.shape == (20,)
    lin_peak = res.sweep.best()["linear decay"]["peak"]
    norms = torch.stack([train_scheduled(make(s), "mse", X, y, linear_decay(20, lin_peak, device="cpu"), 16, seed=s).grad_norms
                         for s in (0, 1)]).mean(0)
    torch.testing.assert_close(res.grad_norms, norms, rtol=0, atol=0)
    torch.testing.assert_close(res.shapes[REFINED], refine_schedule(norms), rtol=0, atol=0)
    fig = plot_refined_sweep(res, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and len(fig.axes[1].lines) == 3
    with pytest.raises(ValueError, match="`shapes`"): refine_and_sweep(make, "mse", X, y, {"constant": shapes["constant"]}, [0.1])
    with pytest.raises(TypeError, match="`result`"): plot_refined_sweep(res.sweep)


def test_figures_and_explorer():
    fig = plot_refinement({"flat": torch.ones(50), "falling": grad_norm_profile(50, device="cpu")})
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    traces, summary = refinement_traces(grad_norm_profile(100, device="cpu"))
    assert len(traces) == 4 and "bound" in summary
    rt = refinement_traces(grad_norm_profile(1000, device="cpu"), max_points=100)
    assert isinstance(rt, RefinementTraces) and len(rt.traces[0].x) == 101 and rt.traces[0].x[-1] == 100.0
    with pytest.raises(ValueError, match="`max_points`"): refinement_traces(torch.ones(10), max_points=1)
    ex = explore_schedules()
    assert isinstance(ex, Explorer)
    f = ex.update(start=0.5, norm="l1")
    assert isinstance(f, go.Figure) and len(f.data) == 4
    g = ex.update(end=0.3)
    assert g is not f and g.data[3].y.tolist() != f.data[3].y.tolist()
    assert isinstance(schedule_figure(end=0.2, smoothing=0.0), go.Figure)
    sl = refinement_slider_figure({k: PROFILES[k] for k in ("constant", "late fall")}, steps=200)
    assert isinstance(sl, go.Figure) and len(sl.layout.sliders[0].steps) == 2 and len(sl.data) == 8
    with pytest.raises(ValueError, match="`profiles`"): refinement_slider_figure({})
    with pytest.raises(TypeError, match="`seed`"): schedule_figure(seed="zero")


# ---------------------------------------------------------------- bad input

BAD = [
    (lambda: linear_decay(0), ValueError, "`steps`"),
    (lambda: linear_decay(10, peak=0.0), ValueError, "`peak`"),
    (lambda: cosine(10, warmup=10), ValueError, "`warmup`"),
    (lambda: constant(10.5), TypeError, "`steps`"),
    (lambda: step(10, milestones=(0.6, 0.3)), ValueError, "`milestones`"),
    (lambda: step(10, milestones=0.5), TypeError, "`milestones`"),
    (lambda: step(10, milestones=(1.5,)), ValueError, r"`milestones` must be < 1, got 1.5 \(entry 0\)"),
    (lambda: step(10, factor=2.0), ValueError, "`factor`"),
    (lambda: last_iterate_bound([1.0, 1.0], [1.0]), ValueError, "`grad_norms` needs at least 2"),
    (lambda: last_iterate_bound([1.0, 1.0, 1.0], [1.0, 1.0]), ValueError, "`lrs` has 3 values"),
    (lambda: last_iterate_bound([1.0, -1.0], [1.0, 1.0]), ValueError, "`lrs` must be non-negative"),
    (lambda: last_iterate_bound([0.0, 1.0], [1.0, 1.0]), ValueError, "`lrs` must have a positive step"),
    (lambda: last_iterate_bound([1.0, 1.0], [1.0, float("nan")]), ValueError, "`grad_norms`"),
    (lambda: last_iterate_bound([1.0, 1.0], [1.0, 1.0], D=0.0), ValueError, "`D`"),
    (lambda: last_iterate_bound([1.0, 1.0], [1.0, 1.0], free_last=1), TypeError, "`free_last`"),
    (lambda: last_iterate_bound("fast", [1.0, 1.0]), TypeError, "`lrs`"),
    (lambda: last_iterate_bound(torch.ones(2, 2), [1.0, 1.0]), ValueError, "`lrs`"),
    (lambda: smooth_grad_norms([1.0, 2.0], smoothing=1.5), ValueError, "`smoothing`"),
    (lambda: smooth_grad_norms([1.0, 2.0], pad="start"), ValueError, "`pad`"),
    (lambda: smooth_grad_norms([1.0, 0.0]), ValueError, "`grad_norms` must be positive"),
    (lambda: refine_schedule([1.0, 2.0], norm="linf"), ValueError, "`norm`"),
    (lambda: refine_schedule([1.0, 2.0], norm=2), TypeError, "`norm`"),
    (lambda: refine_schedule([1.0, 2.0], peak=-1.0), ValueError, "`peak`"),
    (lambda: filter_width(0), ValueError, "`steps`"),
    (lambda: grad_norm_profile(1), ValueError, "`steps`"),
    (lambda: grad_norm_profile(10, knots=((0.0, -1.0),)), ValueError, r"`knots` must be > 0, got -1.0 \(entry 0\)"),
    (lambda: grad_norm_profile(10, knots=((0.5, 1.0), (0.5, 2.0))), ValueError, "`knots` fractions"),
    (lambda: grad_norm_profile(10, knots="flat"), TypeError, "`knots`"),
    (lambda: grad_norm_profile(10, noise=-0.1), ValueError, "`noise`"),
    (lambda: grad_norm_profile(10, seed=-1), ValueError, "`seed`"),
    (lambda: optimal_schedule([1.0, 1.0], D=-1.0), ValueError, "`D`"),
    (lambda: schedule_figure(knee=0.0), ValueError, "`knee`"),
    (lambda: plot_refinement([torch.ones(5)]), TypeError, "`profiles`"),
]


@pytest.mark.parametrize("call,error,match", BAD, ids=[m for _, _, m in BAD])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match): call()


def test_training_helpers_reject_bad_input():
    X, y, make = _problem()
    with pytest.raises(ValueError, match="`norm`"): train_scheduled(make(0), "mse", X, y, [0.1, 0.1], norm="l3")
    with pytest.raises(ValueError, match="`loss_fn`"): train_scheduled(make(0), "hinge", X, y, [0.1, 0.1])
    with pytest.raises(TypeError, match="`model`"): train_scheduled("net", "mse", X, y, [0.1, 0.1])
    with pytest.raises(ValueError, match="`lrs`"): train_scheduled(make(0), "mse", X, y, [0.1, -0.1])
    with pytest.raises(TypeError, match="`shapes`"): sweep_peak_lr(make, "mse", X, y, [torch.ones(3)], [0.1])
    with pytest.raises(ValueError, match=r"`peaks` must be > 0, got 0.0 \(entry 0\)"): sweep_peak_lr(make, "mse", X, y, {"c": torch.ones(3)}, [0.0])
    with pytest.raises(ValueError, match=r"`seeds` must be >= 0, got -1 \(entry 0\)"): sweep_peak_lr(make, "mse", X, y, {"c": torch.ones(3)}, [0.1], seeds=(-1,))
    with pytest.raises(ValueError, match="`shapes` is empty"): sweep_peak_lr(make, "mse", X, y, {}, [0.1])


def test_pads_and_norms_are_the_documented_choices():
    assert PADS == ("both", "end") and NORMS == {"l2": 2.0, "l1": 1.0}
    assert isinstance(PeakSweep, type)


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_X, _Y, _MAKE = _problem()
_G = grad_norm_profile(20, device="cpu")
_SHAPES = {"constant": constant(4, device="cpu"), "linear decay": linear_decay(4, device="cpu")}
_SWEEP = dict(make_model=_MAKE, loss_fn="mse", X=_X, y=_Y, shapes=_SHAPES, peaks=[0.1], seeds=(0,), batch_size=16)
_PEAK_SWEEP = PeakSweep(("a",), torch.tensor([0.1]), (0,), torch.ones(1, 1, 1))
_BAD_NORMS = [torch.zeros(20), torch.full((20,), NAN), torch.ones(1), torch.ones(4, 5), "norms", [1.0, -1.0]]
_BAD_SWEEP = dict(make_model=["net", 3], loss_fn=[UNKNOWN, 3], X=[torch.full((64, 4), NAN), torch.ones(63, 4), "X"],
                  y=[torch.full((64, 1), NAN), torch.ones(10, 1)], shapes=[{}, [torch.ones(4)], {"c": torch.ones(3, 3)}],
                  peaks=[[], [NAN], [-0.1], [0.0], 0.1, "fast"], seeds=[[], [-1], [1.5], 0],
                  batch_size=[*SIZES, 65, 1.5], progress=["yes"])


def _schedule_probe(fn):
    return Probe(fn, dict(steps=5, peak=1.0, warmup=1, device="cpu"),
                 dict(steps=[*SIZES, 2.5, "5"], peak=[NAN, INF, -1.0, 0.0, "1"], warmup=[-1, 5, 1.5],
                      device=[UNKNOWN, 3]))


PROBES = [
    *(_schedule_probe(f) for f in (constant, linear_decay, cosine)),
    Probe(step, dict(steps=8, peak=1.0, milestones=(0.5, 0.75), factor=0.1, warmup=0, device="cpu"),
          dict(steps=[*SIZES, 2.5], peak=[NAN, -1.0], milestones=[(0.75, 0.5), (1.5,), (NAN,), 0.5, "0.5"],
               factor=[NAN, 0.0, 1.5, -0.1], warmup=[-1, 8], device=[UNKNOWN])),
    Probe(last_iterate_bound, dict(lrs=[1.0, 1.0], grad_norms=[1.0, 2.0], D=1.0, free_last=True, best_scale=False),
          dict(lrs=[[1.0, NAN], [1.0, INF], [1.0, -1.0], [0.0, 1.0], [1.0], [1.0, 1.0, 1.0], torch.ones(2, 2), "fast"],
               grad_norms=[[1.0, 0.0], [1.0, NAN], [1.0], torch.ones(2, 2), "norms"],
               D=[NAN, INF, 0.0, -1.0, "1"], free_last=[1, "yes"], best_scale=[0, "no"])),
    Probe(filter_width, dict(steps=200, smoothing=0.1),
          dict(steps=[*SIZES, 2.5], smoothing=[NAN, -0.1, 1.5, "0.1"])),
    Probe(smooth_grad_norms, dict(grad_norms=_G, smoothing=0.1, pad="both"),
          dict(grad_norms=_BAD_NORMS, smoothing=[NAN, -0.1, 1.5], pad=[UNKNOWN, 3])),
    Probe(refine_schedule, dict(grad_norms=_G, smoothing=0.1, norm="l2", peak=1.0, pad="both"),
          dict(grad_norms=_BAD_NORMS, smoothing=[NAN, -0.1, 1.5], norm=[UNKNOWN, 2], peak=[NAN, 0.0, -1.0],
               pad=[UNKNOWN, None])),
    Probe(grad_norm_profile, dict(steps=20, knots=((0.0, 2.0), (1.0, 1.0)), noise=0.1, seed=0, device="cpu"),
          dict(steps=[*SIZES, 1, 2.5], knots=["flat", (), ((0.5, 1.0), (0.2, 2.0)), ((0.0, -1.0),), ((0.0, NAN),),
                                               ((1.5, 1.0),), ((0.0, 1.0, 2.0),), (0.5,)],
               noise=[NAN, -0.1, INF], seed=[-1, 1.5, "zero"], device=[UNKNOWN])),
    Probe(train_scheduled, dict(model=_MAKE(0), loss_fn="mse", X=_X, y=_Y, lrs=[0.1, 0.1], batch_size=16, norm="l2",
                                optimizer="sgd", seed=0),
          dict(model=["net", None], loss_fn=[UNKNOWN, 3], X=[torch.full((64, 4), NAN), torch.ones(63, 4), "X"],
               y=[torch.full((64, 1), NAN), torch.ones(10, 1)], lrs=[[0.1, NAN], [0.1, -0.1], [0.1], "fast"],
               batch_size=[*SIZES, 65, 1.5], norm=[UNKNOWN, 2], optimizer=[UNKNOWN, 3], seed=[-1, 0.5])),
    Probe(optimal_schedule, dict(grad_norms=[1.0, 2.0, 1.0], D=1.0, max_iter=10),
          dict(grad_norms=_BAD_NORMS, D=[NAN, 0.0, -1.0], max_iter=[*SIZES, 2.5])),
    Probe(plot_refinement, dict(profiles={"flat": torch.ones(10)}, smoothing=0.1, norm="l2", title="t"),
          dict(profiles=[[torch.ones(5)], {}, {"flat": torch.zeros(10)}, {"flat": "norms"}], smoothing=[NAN, -0.1],
               norm=[UNKNOWN], title=[3])),
    Probe(sweep_peak_lr, _SWEEP, _BAD_SWEEP),
    Probe(plot_peak_sweep, dict(sweep=_PEAK_SWEEP, title="t"), dict(sweep=["sweep", {}], title=[3], ax=["axes"])),
    Probe(refine_and_sweep, _SWEEP, {**_BAD_SWEEP, "shapes": [*_BAD_SWEEP["shapes"], {"constant": torch.ones(4)}]}),
    Probe(plot_refined_sweep, dict(result=RefinedSweep(_PEAK_SWEEP, {"a": torch.ones(4)}, torch.ones(4)), title="t"), dict(result=["result", 3], title=[3])),
    Probe(refinement_traces, dict(grad_norms=_G, smoothing=0.1, norm="l2", max_points=10),
          dict(grad_norms=_BAD_NORMS, smoothing=[NAN, 2.0], norm=[UNKNOWN], max_points=[*SIZES, 1, 2.5])),
    Probe(refinement_slider_figure, dict(profiles={"flat": PROFILES["constant"]}, steps=50, noise=0.1, seed=0, title="t"),
          dict(profiles=[{}, [PROFILES["constant"]], {"bad": "flat"}, {"bad": ((0.0, -1.0),)}], steps=[*SIZES, 1],
               noise=[NAN, -1.0], seed=[-1, 0.5], title=[3])),
    Probe(schedule_figure, dict(start=15.0, knee=0.1, end=1.0, noise=0.3, smoothing=0.1, norm="l2", steps=50, seed=0),
          dict(start=[NAN, 0.0, -1.0], knee=[NAN, 0.0, 1.5], end=[NAN, 0.0, INF], noise=[NAN, -0.1], smoothing=[NAN, 2.0],
               norm=[UNKNOWN], steps=[*SIZES, 1], seed=[-1, "zero"])),
]
