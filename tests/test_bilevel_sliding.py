"""Reference tests for gradviz.bilevel.sliding: the prox-sliding step against scipy, exact oracle counters
(#∇f = outer steps, #h′ = Σ T_k), the h ≡ 0 prox point, averaged outputs, the dual solution against proximal gradient
and against SLSQP on a TV problem, and the chapter's findings at small settings (float64, fixed seeds)."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from scipy.optimize import minimize

from gradviz.bilevel.sliding import (AXES, METHODS, SCHEDULES, CompositeData, CompositeProblem, MethodComparison,
                                     ProxSlide, SlidingRun, compare_methods, composite_data, compute_kappa_sweep,
                                     explore_sliding, gradient_sliding, l1_composite, plot_inner_steps,
                                     plot_sliding_gaps, prox_sliding, prox_sliding_step, proximal_gradient,
                                     restart_free_sliding, restarted_sliding, sliding_figure, sliding_kappa_figure,
                                     solve_composite, subgradient_method, tv_composite)
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64


def _l1(seed=1, **kw):
    A, b, _ = composite_data(seed=seed, device="cpu", **kw)
    return l1_composite(A, b)


@pytest.fixture(scope="module")
def claim():
    "The chapter's comparison on data seed 2 (a report seed of the notebook is 1–3)."
    return compare_methods(_l1(2), outer=36, subgradient_steps=1000, prox_steps=60)


def _zero_h(mu=0.5):
    zero = lambda x: x.sum() * 0
    return CompositeProblem(zero, lambda x: x * 0, zero, lambda x: x * 0, mu=mu, L=1.0, M=0.0,
                            prox=lambda v, t: v / (1 + mu * t))


# ---------------------------------------------------------------- the prox-sliding step
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ps_step_equals_scipy_argmin(seed):
    rng = np.random.default_rng(seed)
    g, s, x, up = (rng.standard_normal(25) for _ in range(4))
    beta, p, mu = rng.uniform(0.1, 5), rng.uniform(0, 10), rng.uniform(0, 2)
    obj = lambda u: (g + s) @ u + beta / 2 * (u - x) @ (u - x) + beta * p / 2 * (u - up) @ (u - up) + mu / 2 * u @ u
    jac = lambda u: g + s + beta * (u - x) + beta * p * (u - up) + mu * u
    ref = minimize(obj, np.zeros(25), jac=jac, method="BFGS", options=dict(gtol=1e-12)).x
    got = prox_sliding_step(*(torch.from_numpy(v) for v in (g, s, x, up)), beta, p, mu)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-8)


def test_ps_with_zero_h_reaches_the_prox_point_and_counts_T_calls():
    prob = _zero_h()
    g = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=F64)
    u, ut = prox_sliding(prob, g, x, 0.5, 1000)
    target = (0.5 * x - g) / (0.5 + 0.5)
    torch.testing.assert_close(u, target, rtol=0, atol=1e-8)
    torch.testing.assert_close(ut, target, rtol=0, atol=1e-5)
    assert (prob.grad_calls, prob.subgrad_calls) == (0, 1000)


def test_ps_weights_make_a_t_weighted_average():
    "θ_t = 2(t+1)/(t(t+3)) gives ũ_T = Σ_t (t+1) u_t / Σ_t (t+1): recompute the u_t by hand."
    prob = _l1(0, m=30, n=10)
    g, x = torch.linspace(-1, 1, 10, dtype=F64), torch.linspace(1, 2, 10, dtype=F64)
    beta, T, us, u = 1.3, 7, [], x.clone()
    for t in range(1, T + 1):
        u = prox_sliding_step(g, prob._subgrad_h(u), x, u, beta, t / 2, prob.mu)
        us.append(u)
    w = torch.arange(2, T + 2, dtype=F64)
    out = prox_sliding(prob, g, x, beta, T)
    torch.testing.assert_close(out.u, us[-1], rtol=0, atol=1e-14)
    torch.testing.assert_close(out.u_tilde, (w[:, None] * torch.stack(us)).sum(0) / w.sum(), rtol=0, atol=1e-13)


# ---------------------------------------------------------------- counters and schedules
@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_counters_are_exact_for_every_method(noise):
    A, b, _ = composite_data(m=60, n=30, seed=3, device="cpu")
    prob, x0 = l1_composite(A, b, noise=noise), torch.zeros(30, dtype=F64)
    runs = {"gs": lambda: gradient_sliding(prob, x0, 9, 2.0),
            "tb": lambda: gradient_sliding(prob, x0, 9, 2.0, "textbook"),
            "rs": lambda: restarted_sliding(prob, x0, 3, 4, 2.0), "rf": lambda: restart_free_sliding(prob, x0, 9),
            "rf0": lambda: restart_free_sliding(prob, x0, 9, momentum=False),
            "sg": lambda: subgradient_method(prob, x0, 40)}
    for name, fn in runs.items():
        prob.reset_counts()
        run = fn()
        assert prob.grad_calls == len(run.inner_steps) == run.grad_calls[-1], name
        assert prob.subgrad_calls == int(run.inner_steps.sum()) == run.subgrad_calls[-1], name
        assert (np.diff(run.subgrad_calls) == run.inner_steps).all() and (np.diff(run.grad_calls) == 1).all(), name
    prob.reset_counts()
    proximal_gradient(prob, x0, 7)
    assert (prob.grad_calls, prob.subgrad_calls) == (7, 0)


def test_corollary_and_textbook_inner_lengths():
    prob, x0, D, N = _l1(0, m=60, n=30), torch.zeros(30, dtype=F64), 3.0, 8
    C, L = prob.M ** 2, prob.L
    run = gradient_sliding(prob, x0, N, D, T_cap=10_000)
    assert run.inner_steps.tolist() == [max(1, math.ceil(C * N * k * k / (D * L * L))) for k in range(1, N + 1)]
    tb = gradient_sliding(prob, x0, N, D, "textbook", T_cap=10_000)
    assert tb.inner_steps.tolist() == [max(1, math.ceil(C * (k + 1) ** 3 / (D * L * L))) for k in range(1, N + 1)]
    capped = gradient_sliding(prob, x0, N, D, T_cap=5)
    assert capped.inner_steps.max() == 5 and capped.inner_steps.tolist() == np.minimum(run.inner_steps, 5).tolist()
    rf = restart_free_sliding(prob, x0, 6, growth=1.5, T0=2.0)
    assert rf.inner_steps.tolist() == [math.ceil(2 * 1.5 ** k) for k in range(6)]
    assert SCHEDULES == ("corollary", "textbook")


def test_gs_returns_the_average_not_the_last_iterate():
    prob, x0 = _l1(0, m=60, n=30), torch.zeros(30, dtype=F64)
    one = gradient_sliding(prob, x0, 1, 0.01)  # γ₁ = 1: x̄₁ = ũ_T
    ps = prox_sliding(prob, prob._grad_f(x0), x0, 2 * prob.L, int(one.inner_steps[0]))
    torch.testing.assert_close(one.x, ps.u_tilde, rtol=0, atol=1e-14)
    torch.testing.assert_close(one.x_last, ps.u, rtol=0, atol=1e-14)
    assert (one.x - one.x_last).norm() > 1e-3
    two = gradient_sliding(prob, x0, 2, 0.5)
    assert (two.x - two.x_last).norm() > 1e-6 and abs(two.values[-1] - prob.value(two.x)) < 1e-12


def test_surrogate_without_momentum_is_proximal_gradient_when_h_is_zero():
    H, c = torch.linspace(0.1, 1.0, 40, dtype=F64), torch.linspace(-1, 1, 40, dtype=F64)
    zero = _zero_h(0.05)
    quad = CompositeProblem(lambda x: 0.5 * (H * x * x).sum() - c.dot(x), lambda x: H * x - c, zero._h,
                            zero._subgrad_h, mu=0.05, L=1.0, M=0.0, prox=lambda v, t: v / (1 + 0.05 * t))
    x0 = torch.ones(40, dtype=F64)
    rf = restart_free_sliding(quad, x0, 5, growth=1.0, T0=3000, momentum=False, T_cap=3000)
    pg = proximal_gradient(quad, x0, 5)
    assert (rf.x - pg.x).norm() / pg.x.norm() < 1e-5  # the inner average is off by O(log T / T²)


def test_noise_is_seeded_and_counted():
    prob = l1_composite(*composite_data(m=60, n=30, seed=0, device="cpu")[:2], noise=0.5)
    x0 = torch.zeros(30, dtype=F64)
    a, b_, c = (restart_free_sliding(prob, x0, 8, seed=s) for s in (4, 4, 5))
    torch.testing.assert_close(a.x, b_.x, rtol=0, atol=0)
    assert (a.x - c.x).norm() > 1e-8
    g = torch.Generator().manual_seed(9)
    d = restart_free_sliding(prob, x0, 8, seed=g)
    torch.testing.assert_close(d.x, restart_free_sliding(prob, x0, 8, seed=torch.Generator().manual_seed(9)).x)


# ---------------------------------------------------------------- the exact solution
def test_dual_solution_equals_proximal_gradient():
    prob = _l1(1)
    pg = proximal_gradient(prob, torch.zeros(100, dtype=F64), 2000)
    torch.testing.assert_close(solve_composite(prob), pg.x, rtol=0, atol=1e-10)


def test_tv_dual_solution_equals_slsqp_on_the_split_qp():
    "min ½‖Ax − b‖² + μ/2‖x‖² + ρ Σ t  s.t. −t ≤ Dx ≤ t, by scipy's SLSQP: an independent route to the TV minimiser."
    A, b, _ = composite_data(m=30, n=12, kind="piecewise", seed=5, device="cpu")
    prob, n = tv_composite(A, b, rho=0.3), 12
    An, bn, D = A.numpy(), b.numpy(), np.diff(np.eye(n), axis=0)
    obj = lambda z: 0.5 * np.sum((An @ z[:n] - bn) ** 2) + 0.05 * z[:n] @ z[:n] + 0.3 * z[n:].sum()
    jac = lambda z: np.concatenate([An.T @ (An @ z[:n] - bn) + 0.1 * z[:n], 0.3 * np.ones(n - 1)])
    cons = [dict(type="ineq", fun=lambda z: z[n:] - D @ z[:n], jac=lambda z: np.hstack([-D, np.eye(n - 1)])),
            dict(type="ineq", fun=lambda z: z[n:] + D @ z[:n], jac=lambda z: np.hstack([D, np.eye(n - 1)]))]
    ref = minimize(obj, np.zeros(2 * n - 1), jac=jac, constraints=cons, method="SLSQP",
                   options=dict(ftol=1e-15, maxiter=1000)).x[:n]
    np.testing.assert_allclose(solve_composite(prob).numpy(), ref, rtol=0, atol=1e-6)


def test_tv_subgradient_matches_autograd_off_the_kinks():
    prob = tv_composite(*composite_data(m=30, n=12, seed=0, device="cpu")[:2])
    x = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=F64).requires_grad_()
    prob._h(x).backward()
    torch.testing.assert_close(prob._subgrad_h(x.detach()), x.grad, rtol=0, atol=1e-14)


# ---------------------------------------------------------------- the findings (seed 2, small budgets)
def test_sliding_needs_far_fewer_gradients_than_the_subgradient_method(claim):
    sub = claim.runs["subgradient"].calls_to(1e-2, claim.optimum, gap0=claim.gap0)
    rf = claim.runs["restart-free (surrogate)"].calls_to(1e-2, claim.optimum, gap0=claim.gap0)
    gs = claim.runs["GS"].calls_to(1e-2, claim.optimum, gap0=claim.gap0)
    rs = claim.runs["restarted GS"].calls_to(1e-2, claim.optimum, gap0=claim.gap0)
    assert sub >= 8 * rf and sub >= 4 * gs and sub >= 4 * rs


def test_restart_free_is_linear_in_gradients_and_one_over_eps_in_subgradients(claim):
    run, gap = claim.runs["restart-free (surrogate)"], claim.gaps("restart-free (surrogate)")
    cap = np.flatnonzero(run.inner_steps >= claim.T_cap)[0]
    k = np.arange(np.argmax(gap <= 1e-2), cap + 1)
    r2 = np.corrcoef(run.grad_calls[k], np.log10(gap[k]))[0, 1] ** 2
    slope = np.polyfit(np.log10(1 / gap[k]), np.log10(run.subgrad_calls[k]), 1)[0]
    assert r2 > 0.99 and np.polyfit(run.grad_calls[k], np.log10(gap[k]), 1)[0] < -0.05 and 0.7 < slope < 1.5


def test_the_notes_surrogate_without_momentum_is_slower_at_the_proximal_gradient_rate(claim):
    prob = _l1(2)
    plain = restart_free_sliding(prob, torch.zeros(100, dtype=F64), 120, momentum=False)
    gap = plain.relative_gap(claim.optimum, claim.gap0)
    slope = np.polyfit(np.arange(60, 121), np.log10(gap[60:]), 1)[0]
    assert abs(slope / math.log10(1 - prob.mu / (prob.L + prob.mu)) - 1) < 0.5
    acc = claim.runs["restart-free (surrogate)"].calls_to(1e-3, claim.optimum, gap0=claim.gap0)
    assert plain.calls_to(1e-3, claim.optimum, gap0=claim.gap0) > 2 * acc


def test_restarts_make_a_saw_tooth_and_the_single_loop_does_not(claim):
    gap = claim.gaps("restarted GS")
    ends = gap[claim.period::claim.period]
    rises = lambda g: int((np.diff(g) > 0.05 * g[1:]).sum())
    assert (np.diff(ends) < 0).all() and rises(gap) >= len(ends) - 1
    assert all(1.5 < r < 3 for r in ends[:-1] / ends[1:])  # about the halving of D̃ per phase
    assert rises(claim.gaps("restart-free (surrogate)")) == 0


def test_every_method_ends_near_the_solution(claim):
    assert all(claim.gaps(m)[-1] < 1e-2 for m in METHODS)
    assert all((r.x - claim.x_star).norm() / claim.x_star.norm() < 3e-2 for r in claim.runs.values())
    assert abs(claim.gaps("proximal gradient")[-1]) < 1e-8


def test_a_large_D_tilde_needs_more_gradients_a_small_one_more_subgradients_per_gradient():
    prob = _l1(1)
    cost = {}
    for d in (0.1, 1.0, 10.0):
        c = compare_methods(prob, outer=60, D_multiplier=d, methods=("GS",), T_cap=600)
        run = c.runs["GS"]
        cost[d] = (run.calls_to(1e-2, c.optimum, gap0=c.gap0), run.calls_to(1e-2, c.optimum, "subgrad", gap0=c.gap0))
    assert cost[10.0][0] >= 2 * cost[1.0][0] and cost[0.1][0] <= cost[1.0][0]
    assert cost[0.1][1] / cost[0.1][0] > 4 * cost[1.0][1] / cost[1.0][0]


# ---------------------------------------------------------------- figures and explorer
def test_figures_and_explorer():
    small = compare_methods(_l1(0, m=60, n=30), outer=8, subgradient_steps=100, prox_steps=20, T_cap=100)
    assert isinstance(small, MethodComparison) and sorted(small.runs) == sorted(METHODS)
    assert isinstance(small.runs["GS"], SlidingRun)
    for fig in (plot_sliding_gaps(small, title="t"), plot_inner_steps(small)):
        assert isinstance(fig, Figure)
    sweep = compute_kappa_sweep((10.0, 30.0), T_cap=50)
    fig = sliding_kappa_figure(sweep, axis="h′ calls", active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    cache = {}
    f1 = sliding_figure(kappa=20.0, period=8, cache=cache)
    f2 = sliding_figure(kappa=20.0, period=8, axis="weighted cost", cost_ratio=100.0, cache=cache)
    f3 = sliding_figure(kappa=20.0, period=8, axis="h′ calls", cache=cache)
    assert "proximal gradient" not in {t.name for t in f3.data} and len(f3.data) == 4
    assert len(cache) == 1 and len(f1.data) == 5 and len(f2.data) == 5
    assert f2.data[0].x[-1] > f1.data[0].x[-1]
    ex = explore_sliding(cache)
    assert set(ex.controls) == {"kappa", "rho", "D_multiplier", "growth", "period", "noise", "axis", "cost_ratio"}
    assert ex.update(kappa=20.0, period=8) is not None and len(cache) == 1
    assert AXES == ("∇f calls", "h′ calls", "weighted cost")


def test_data_shapes_and_types():
    A, b, x = composite_data(m=20, n=10, kind="piecewise", seed=0, device="cpu")
    assert isinstance(composite_data(m=20, n=10, device="cpu"), CompositeData)
    assert A.shape == (20, 10) and b.shape == (20,) and A.dtype == F64 and (x.diff() != 0).sum() <= 4
    assert isinstance(prox_sliding(l1_composite(A, b), A[0], x, 1.0, 3), ProxSlide)


# ---------------------------------------------------------------- bad input
_A, _b, _ = composite_data(m=20, n=10, seed=0, device="cpu")
_P = l1_composite(_A, _b)
_TV = tv_composite(_A, _b)
_X0 = torch.zeros(10, dtype=F64)
_X = torch.ones(10, dtype=F64)
_BAD_X0 = [torch.zeros(10, 1, dtype=F64), torch.zeros(10, dtype=torch.long), torch.full((10,), NAN), "x0"]
_CMP = compare_methods(_P, outer=3, subgradient_steps=5, prox_steps=3, T_cap=5)
_CACHE = {}
sliding_figure(cache=_CACHE)
_NOPROB = ["problem", 3]
_f = lambda x: x.sum()

PROBES = [
    Probe(CompositeProblem, dict(f=_f, grad_f=_f, h=_f, subgrad_h=_f, mu=0.1, L=1.0, M=1.0),
          dict(f=[3], grad_f=["g"], h=[None], subgrad_h=[1.0], mu=[0.0, -1.0, NAN, "1"], L=[0.0, INF],
               noise=[-0.1, NAN],
               M=[-1.0, NAN], prox=[3], data=["data", 3])),
    Probe(composite_data, dict(m=10, n=5, device="cpu"),
          dict(m=SIZES, n=SIZES + [1], kind=[UNKNOWN], noise=[-0.1, NAN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(l1_composite, dict(A=_A, b=_b),
          dict(A=[_A[0], _A.long(), torch.full_like(_A, NAN), "A"], b=[_b[:-1], _b.long(), "b"], rho=[-0.1, NAN],
               mu=[0.0, -1.0], noise=[-1.0])),
    Probe(tv_composite, dict(A=_A, b=_b),
          dict(A=[_A[0], "A"], b=[_b[:-1], torch.full_like(_b, INF)], rho=[-0.1, INF], mu=[0.0], noise=[-1.0, NAN])),
    Probe(solve_composite, dict(problem=_P),
          dict(problem=_NOPROB + [CompositeProblem(_f, _f, _f, _f, 0.1, 1.0, M=1.0)], tol=[0.0, -1.0, NAN])),
    Probe(prox_sliding_step, dict(g=_X, s=_X, x=_X0, u_prev=_X, beta=1.0, p=0.5, mu=0.1),
          dict(g=[_X[:-1], "g"], s=[_X[:3], torch.full_like(_X, NAN)], x=[_X0[None], "x"], u_prev=[_X[:2]],
               beta=[0.0, -1.0, NAN], p=[-0.5, INF], mu=[-0.1, NAN])),
    Probe(prox_sliding, dict(problem=_P, g=_X, x=_X0, beta=1.0, T=3),
          dict(problem=_NOPROB, g=[_X[:-1], "g"], x=[_X0[None], "x"], beta=[0.0, NAN], T=SIZES + [1.5],
               seed=[-1, 0.5])),
    Probe(gradient_sliding, dict(problem=_P, x0=_X0, N=2, D_tilde=1.0),
          dict(problem=_NOPROB, x0=_BAD_X0, N=SIZES, D_tilde=[0.0, NAN], schedule=[UNKNOWN], T_cap=SIZES,
               seed=[-1, 0.5], device=[UNKNOWN, 3], progress=["bar"])),
    Probe(restarted_sliding, dict(problem=_P, x0=_X0, phases=2, period=2),
          dict(problem=_NOPROB, x0=_BAD_X0, phases=SIZES, period=SIZES, D_tilde=[0.0, -1.0], T_cap=SIZES,
               seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(restart_free_sliding, dict(problem=_P, x0=_X0, N=2),
          dict(problem=_NOPROB, x0=_BAD_X0, N=SIZES, growth=[0.5, NAN], T0=[0.0, -1.0], momentum=["yes"], T_cap=SIZES,
               seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(subgradient_method, dict(problem=_P, x0=_X0, steps=2),
          dict(problem=_NOPROB, x0=_BAD_X0, steps=SIZES, seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(proximal_gradient, dict(problem=_P, x0=_X0, steps=2),
          dict(problem=_NOPROB + [_TV], x0=_BAD_X0, steps=SIZES, device=[UNKNOWN], progress=["bar"])),
    Probe(compare_methods, dict(problem=_P, outer=2, subgradient_steps=3, prox_steps=2, T_cap=3),
          dict(problem=_NOPROB, x0=[_X0[:-1], "x0"], outer=SIZES, phases=SIZES, period=SIZES, subgradient_steps=SIZES,
               prox_steps=SIZES, D_multiplier=[0.0, NAN], growth=[0.5], T_cap=SIZES, methods=[(UNKNOWN,), "GS"],
               seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(compute_kappa_sweep, dict(kappas=(10.0,), T_cap=3),
          dict(kappas=[(), (0.5,), (NAN,), 3.0], rho=[-1.0, NAN], T_cap=SIZES, seed=[-1, 0.5], device=[UNKNOWN],
               progress=["bar"])),
    Probe(plot_sliding_gaps, dict(comparison=_CMP), dict(comparison=["c", {}])),
    Probe(plot_inner_steps, dict(comparison=_CMP), dict(comparison=["c", 3])),
    Probe(sliding_kappa_figure, dict(sweep={10.0: _CMP}),
          dict(sweep=["s", {}, {10.0: "c"}], axis=[UNKNOWN], active=[-1, 1, 0.5])),
    Probe(sliding_figure, dict(cache=_CACHE),
          dict(kappa=[1.0, 0.5, NAN], rho=[0.0, -1.0], D_multiplier=[0.0, INF], growth=[0.5], period=SIZES,
               noise=[-1.0, NAN], axis=[UNKNOWN], cost_ratio=[0.0, NAN], cache=["cache", 3])),
    Probe(explore_sliding, dict(cache=None), dict(cache=["cache", 3])),
]

UNPROBED = {}
