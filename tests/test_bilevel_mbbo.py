"""Reference tests for gradviz.bilevel.mbbo: the exact hypergradient against autograd through `torch.linalg.solve`
(float64), the noise-free all-block limit of BSVRB v1 and v2, the MSVR/STORM reductions, the drift-cancelling γ, the
same-sample variance against its closed form, the eigenvalue projection, and the chapter's findings at small settings."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.bilevel.mbbo import (BSVRBRun, MultiBlockProblem, ScalingRuns, _spd_factor, bsvrb, compute_scaling,
                                  convergence_figure, explore_mbbo, loglog_slope, mbbo_figure, msvr_update,
                                  plot_convergence, plot_iterations_to_eps, plot_tracking_heatmap, project_spd,
                                  same_sample_variance, storm_update, theory_gamma, tune_step_size)
from gradviz.core import as_generator
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    return MultiBlockProblem(m=30, seed=4, device="cpu")


# ---------------------------------------------------------------- the problem
def test_exact_hypergradient_equals_autograd_through_solve(problem):
    xs = torch.randn(4, problem.d_x, generator=as_generator(1), dtype=F64)

    def F(x):
        y = torch.linalg.solve(problem.H, torch.einsum("mkd,d->mk", problem.M, x) + problem.c)
        return torch.log1p((y - problem.t) ** 2).sum(-1).mean() + 0.01 * (x * x).sum()
    auto = torch.stack([torch.func.grad(F)(x) for x in xs])
    torch.testing.assert_close(problem.exact_hypergradient(xs), auto, rtol=0, atol=1e-10)
    torch.testing.assert_close(problem.objective(xs), torch.stack([F(x) for x in xs]), rtol=0, atol=1e-12)
    h = 1e-6  # and central differences of the objective along a random direction
    d = torch.randn(problem.d_x, generator=as_generator(2), dtype=F64)
    fd = (problem.objective(xs[0] + h * d) - problem.objective(xs[0] - h * d)) / (2 * h)
    assert abs(fd.item() - (problem.exact_hypergradient(xs[0]) @ d).item()) < 1e-7


def test_y_star_zeroes_the_noise_free_lower_gradient_and_hessians_span_the_condition():
    quiet = MultiBlockProblem(m=12, sigma=0.0, condition=7.0, seed=3, device="cpu")
    x = torch.randn(2, quiet.d_x, generator=as_generator(0), dtype=F64)
    xi = quiet.sample(torch.arange(12).expand(2, -1))
    assert quiet.lower_grad(xi, x, quiet.y_star(x)).abs().max() < 1e-12
    eig = torch.linalg.eigvalsh(quiet.H)
    assert abs(eig.min() - 1) < 1e-12 and abs(eig.max() - 7) < 1e-10 and (quiet.H == quiet.H.mT).all()


def test_samples_are_unbiased_with_noise_sigma_over_root_B(problem):
    xi = problem.sample(torch.full((40000, 1), 3, dtype=torch.long), B=4, seed=5)
    assert (xi.H.mean(0)[0] - problem.H[3]).abs().max() < 0.01 and (xi.H == xi.H.mT).all()
    assert (xi.M.mean(0)[0] - problem.M[3]).abs().max() < 0.01
    sd = torch.stack([xi.c[:, 0].std(0).mean(), xi.f_noise[:, 0].std(0).mean(), xi.M[:, 0].std(0).mean()])
    torch.testing.assert_close(sd, torch.full((3,), 0.25, dtype=F64), rtol=0, atol=5e-3)
    diag_sd, off_sd = xi.H[:, 0].std(0).diagonal().mean(), xi.H[:, 0, 0, 1].std()
    assert abs(diag_sd - 0.25) < 5e-3 and abs(off_sd - 0.25 / math.sqrt(2)) < 5e-3


# ---------------------------------------------------------------- estimators
def test_msvr_and_storm_reductions():
    g = as_generator(0)
    u, hn, ho = (torch.randn(3, 7, 4, generator=g, dtype=F64) for _ in range(3))
    mask = torch.rand(3, 7, generator=g) < 0.5
    plain = msvr_update(u, hn, ho, 1.0, 0.0, sampled=mask)
    assert torch.equal(plain[mask], hn[mask]) and torch.equal(plain[~mask], u[~mask])
    assert torch.equal(storm_update(u, hn, ho, 1.0), hn)
    for a in (0.1, 0.5, 0.9):
        torch.testing.assert_close(msvr_update(u, hn, ho, a, 1 - a), storm_update(u, hn, ho, a), rtol=0, atol=1e-14)
    ref = (1 - 0.3) * u + 0.3 * hn + 2.5 * (hn - ho)
    torch.testing.assert_close(msvr_update(u, hn, ho, 0.3, 2.5, sampled=mask)[mask], ref[mask], rtol=0, atol=1e-14)


def test_theory_gamma_forms():
    for a in (0.0, 0.3, 0.9):
        assert theory_gamma(50, 50, a, "msvr") == pytest.approx(1 - a)
        assert theory_gamma(50, 50, a, "drift") == pytest.approx(1 - a)
    assert theory_gamma(100, 10, 0.9, "msvr") == pytest.approx(90 / (10 * 0.1) + 0.1)
    assert theory_gamma(100, 10, 0.9, "drift") == pytest.approx(9.1)


@pytest.mark.parametrize("gamma_form", [None, "drift", "msvr"])
def test_steady_drift_bias_matches_the_first_order_formula(gamma_form):
    m, I, alpha, delta = 20, 5, 0.5, 0.01
    gamma = 0.0 if gamma_form is None else theory_gamma(m, I, alpha, gamma_form)
    g = as_generator(7)
    a = torch.randn(40, m, 1, generator=g, dtype=F64)  # 40 independent trackers
    u, errs = a.clone(), []
    for t in range(1, 601):
        mask = torch.zeros(40, m, dtype=torch.bool).scatter_(1, torch.rand(40, m, generator=g).topk(I, 1).indices, True)
        u = msvr_update(u, a + delta * t, a + delta * (t - 1), alpha, gamma, sampled=mask)
        if t > 300: errs.append((u - a - delta * t).mean())
    p = I / m
    predicted = (p * gamma + p * alpha - 1) * delta / (p * alpha)
    assert abs(torch.stack(errs).mean().item() - predicted) < 0.03 * abs(predicted) + 1e-3


def test_projection_clips_eigenvalues_and_the_frobenius_rescaling_does_not():
    g = as_generator(3)
    Q = torch.linalg.qr(torch.randn(500, 4, 4, generator=g, dtype=F64)).Q
    lam = 6 * torch.rand(500, 4, generator=g, dtype=F64) - 3
    H = Q @ torch.diag_embed(lam) @ Q.mT
    P = project_spd(H, 0.5)
    torch.testing.assert_close(torch.linalg.eigvalsh(P), lam.sort(-1).values.clamp_min(0.5), rtol=0, atol=1e-12)
    torch.testing.assert_close(project_spd(P, 0.5), P, rtol=0, atol=1e-12)
    L = _spd_factor(H, 0.5)
    torch.testing.assert_close(L @ L.mT, P, rtol=0, atol=1e-12)
    frob = project_spd(H, 10.0, "frobenius")
    assert (torch.linalg.eigvalsh(frob).min(-1).values < 0).double().mean() > 0.9
    assert torch.allclose(torch.linalg.matrix_norm(frob), torch.full((500,), 10.0, dtype=F64))


def test_same_sample_variance_matches_its_closed_form(problem):
    chk = same_sample_variance(problem, deltas=(1e-3, 1e-1, 1.0), n=3000, seed=0)
    ratio = torch.cat([chk.shared / chk.predicted_shared, chk.independent / chk.predicted_independent])
    assert (ratio - 1).abs().max() < 0.12
    per_d2 = chk.shared / chk.deltas ** 2
    assert per_d2.max() / per_d2.min() < 1.2 and chk.independent.min() > 1e4 * chk.shared[0]


# ---------------------------------------------------------------- the algorithm
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_noise_free_all_block_limit_is_the_exact_hypergradient(variant):
    quiet = MultiBlockProblem(m=15, sigma=0.0, seed=2, device="cpu")
    run = bsvrb(quiet, variant, I=15, B=1, steps=250, alpha=1.0, gamma=0.0, beta=1.0, eta=1e-12, tau=0.15, tau_v=0.15)
    assert run.estimate_error[0, -1].sqrt() < 1e-8


def test_full_variant_converges_and_runs_are_seeded(problem):
    full = bsvrb(problem, "full", steps=300, eta=0.2, tau=0.15)
    assert full.grad_norm2[0, -1] < 1e-9 and full.settings["sigma"] == 0 and full.I == problem.m
    a = bsvrb(problem, "v1", I=5, steps=20, runs=2, seed=3)
    b = bsvrb(problem, "v1", I=5, steps=20, runs=2, seed=as_generator(3))
    c = bsvrb(problem, "v1", I=5, steps=20, runs=2, seed=4)
    assert torch.equal(a.grad_norm2, b.grad_norm2) and not torch.equal(a.grad_norm2, c.grad_norm2)
    assert not torch.equal(a.grad_norm2[0], a.grad_norm2[1])  # runs in a batch are independent draws


def test_iterations_to_uses_the_window():
    g2 = torch.tensor([[1.0, 0.1, 1.0, 0.1, 0.1, 0.1], [1.0] * 6], dtype=F64)
    run = BSVRBRun("v1", 1, 1, g2, g2[:, 1:], torch.zeros(2, 1, 1), torch.zeros(1), torch.zeros(2, 1), {})
    assert run.iterations_to(0.5).tolist() == [1.0, math.inf]
    assert run.iterations_to(0.15, window=3).tolist() == [5.0, math.inf]


def test_code_step_size_diverges_and_the_scaled_one_does_not(problem):
    broken = bsvrb(problem, "v1", I=6, B=1, steps=40, tau=0.5 * problem.m / 6, seed=0)
    fine = bsvrb(problem, "v1", I=6, B=1, steps=40, seed=0)
    assert not broken.block_error[0, -1].max() < 1e3 and fine.block_error[0, -1].max() < 10


# ---------------------------------------------------------------- findings at small settings
@pytest.fixture(scope="module")
def mid():
    return MultiBlockProblem(m=40, seed=0, device="cpu")


def test_variance_reduction_beats_no_vr_at_equal_I_and_B(mid):
    vr = bsvrb(mid, "v1", I=8, B=1, steps=400, eta=0.05, runs=3, seed=1)
    novr = bsvrb(mid, "no_vr", I=8, B=1, steps=400, eta=0.05, runs=3, seed=1)
    floor = lambda r: r.grad_norm2[:, -150:].mean(1)
    assert (floor(vr) < floor(novr)).all()
    assert vr.estimate_error[:, -150:].mean() < novr.estimate_error[:, -150:].mean() / 5


def test_iterations_to_eps_fall_with_I_and_B_and_the_floor_with_B(mid):
    sc = compute_scaling(mid, Is=(4, 10, 40), Bs=(1, 16), I_ref=10, B_ref=1, steps=400, runs=3,
                         options=dict(eta=0.05), seed=1)
    its, its_B = sc.iterations(0.03, window=20), sc.iterations(0.03, "B", window=20)
    assert math.isinf(its[4]) and its[10] > its[40] and its_B[1] > its_B[16]  # I = 4 plateaus above ε, as in the notebook
    floor = {B: r.grad_norm2[:, -150:].mean().item() for B, r in sc.by_B.items()}
    assert floor[1] > 1.2 * floor[16] and sc.by_I[4].grad_norm2[:, -150:].mean() > 0.03
    assert -1.0 < loglog_slope([10, 40], [its[10], its[40]]) < -0.2


def test_tune_step_size_picks_the_fewest_iterations(mid):
    tuned = tune_step_size(mid, "v1", I=10, B=4, etas=(0.005, 0.05), eps=0.03, window=10, steps=300, runs=2, seed=0)
    med = tuned.iterations.median(1).values
    assert tuned.best == (0.005, 0.05)[int(med.argmin())] and tuned.best == 0.05


def test_loglog_slope_recovers_a_power_law():
    x = np.array([1.0, 3.0, 10.0, 30.0])
    assert loglog_slope(x, 7 * x ** -0.75) == pytest.approx(-0.75, abs=1e-12)


# ---------------------------------------------------------------- figures and explorer
def test_figures_and_explorer(problem):
    runs = [bsvrb(problem, v, I=I, steps=30, runs=2, record_every=3) for v in ("v1", "no_vr") for I in (5, 30)]
    sc = compute_scaling(problem, Is=(5, 30), Bs=(1, 4), I_ref=5, B_ref=1, steps=30, runs=2, seed=0)
    assert isinstance(plot_convergence(runs, eps=0.1), Figure)
    assert isinstance(plot_iterations_to_eps(sc, 0.5, m=problem.m), Figure)
    assert isinstance(plot_tracking_heatmap(runs[:2]), Figure)
    fig = convergence_figure(runs, active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    cache = {}
    f = mbbo_figure(m=20, I=5, cache=cache)
    assert [t.name for t in f.data][:2] == ["v1", "no_vr"] and mbbo_figure(m=20, I=5, panel="blocks", cache=cache)
    ex = explore_mbbo(cache)
    assert ex.update(m=20, I=5).data[0].name == "v1"
    with pytest.raises(ValueError, match="`variant`"):
        ex.update(variant="v3")


# ---------------------------------------------------------------- bad input
_P = MultiBlockProblem(m=6, seed=0, device="cpu")
_U = torch.zeros(2, 6, 3, dtype=F64)
_H = torch.eye(3, dtype=F64).expand(4, 3, 3)
_RUN = bsvrb(_P, "v1", I=2, steps=3, runs=1)
_SC = ScalingRuns({2: _RUN}, {1: _RUN})

PROBES = [
    Probe(MultiBlockProblem, dict(m=4, device="cpu"),
          dict(m=SIZES, d_x=SIZES, d_y=SIZES + [1], sigma=[-1.0, NAN], condition=[0.5, INF], seed=[-1, 0.5],
               device=[UNKNOWN, 3], dtype=[torch.long, "f"])),
    Probe(msvr_update, dict(u=_U, h_new=_U, h_old=_U, alpha=0.5, gamma=1.0),
          dict(u=["u"], h_new=[_U[0], "h"], h_old=[_U[:, :2]], alpha=[-0.1, 1.5, NAN], gamma=[NAN, "g"],
               sampled=[torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 6)])),
    Probe(storm_update, dict(z=_U[0, 0], g_new=_U[0, 0], g_old=_U[0, 0], beta=0.5),
          dict(z=["z"], g_new=[_U[0]], g_old=[_U[0, 0, :2]], beta=[-0.1, 1.5, NAN])),
    Probe(theory_gamma, dict(m=10, I=2, alpha=0.5),
          dict(m=SIZES, I=SIZES + [11], alpha=[-0.1, 1.5, NAN], form=[UNKNOWN])),
    Probe(project_spd, dict(H=_H), dict(H=[_H[0, 0], torch.ones(2, 3, 4, dtype=F64), "H"], mu=[0.0, -1.0, NAN],
                                        method=[UNKNOWN])),
    Probe(bsvrb, dict(problem=_P, I=2, steps=2),
          dict(problem=["p"], variant=[UNKNOWN], I=SIZES + [7], B=SIZES, steps=SIZES, alpha=[-0.1, 1.5, NAN],
               gamma=[UNKNOWN, NAN], beta=[1.5, NAN], eta=[0.0, -1.0, NAN], tau=[0.0, INF], tau_v=[0.0],
               mu=[0.0], v_bound=[0.0], y_update=[UNKNOWN], catch_up_cap=[0.5, NAN, "c"], decay=[-1.0],
               x0=[torch.zeros(5, dtype=F64), torch.full((_P.d_x,), NAN, dtype=F64), "x"], runs=SIZES,
               record_every=SIZES, seed=[-1, 0.5], progress=["bar"])),
    Probe(same_sample_variance, dict(problem=_P, deltas=(0.1,), n=10),
          dict(problem=["p"], deltas=[(), (0.0,), (NAN,), "d"], n=[1, 0], seed=[-1, 0.5])),
    Probe(tune_step_size, dict(problem=_P, I=2, B=1, etas=(0.1,), steps=2, runs=1),
          dict(problem=["p"], variant=[UNKNOWN], I=[0, 7], B=SIZES, etas=[(), (0.0,), "e"], eps=[0.0, NAN],
               window=SIZES, steps=SIZES, runs=SIZES, options=["o", {"lr": 1}], seed=[-1, 0.5])),
    Probe(compute_scaling, dict(problem=_P, Is=(2,), Bs=(1,), I_ref=2, B_ref=1, steps=2, runs=1),
          dict(problem=["p"], Is=[(), (0,), (7,), "I"], Bs=[(), (0,)], I_ref=[0, 7], B_ref=SIZES, steps=SIZES,
               runs=SIZES, variant=[UNKNOWN], options=["o", {"lr": 1}], seed=[-1, 0.5], progress=["bar"])),
    Probe(loglog_slope, dict(x=[1.0, 2.0], y=[1.0, 0.5]),
          dict(x=[[1.0], [0.0, 1.0], [NAN, 1.0]], y=[[1.0], [1.0, -1.0], [INF, 1.0]])),
    Probe(plot_convergence, dict(runs=[_RUN]), dict(runs=["r", [], ["r"]], labels=[["a", "b"], "a"], eps=[0.0, NAN])),
    Probe(plot_iterations_to_eps, dict(scaling=_SC, eps=0.1),
          dict(scaling=["s", _RUN], eps=[0.0, NAN], m=SIZES, window=SIZES)),
    Probe(plot_tracking_heatmap, dict(runs=[_RUN]), dict(runs=["r", []], titles=[["a", "b"], "a"])),
    Probe(convergence_figure, dict(runs=[_RUN]), dict(runs=["r", []], active=[-1, 5, 0.5])),
    Probe(mbbo_figure, dict(m=6, I=2, cache={}),
          dict(m=[1, 0, 0.5], I=SIZES, B=SIZES, alpha=[1.5, NAN], gamma=[NAN], gamma_rule=[UNKNOWN], beta=[NAN],
               eta=[0.0], tau=[0.0], sigma=[-1.0, NAN], condition=[0.5], variant=[UNKNOWN], baseline=["yes"],
               panel=[UNKNOWN], cache=["c", 3])),
    Probe(explore_mbbo, dict(cache=None), dict(cache=["c", 3])),
]
UNPROBED = {}
