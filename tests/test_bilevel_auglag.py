"""Reference tests for gradviz.bilevel.auglag: the merit gradient against autograd and central differences, the
official ∇²f variant's gap on the sphere, kkt_terms against the circle's closed forms, the exact-solve limit
against a hand-assembled Newton–KKT step, Kaczmarz against the Strohmer–Vershynin bound (50 seeds), final points
against scipy (trust-constr, SLSQP), the step rules, degenerate constraints, and the findings at small size."""
import math
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from scipy.optimize import NonlinearConstraint, minimize

from gradviz.bilevel.auglag import (DELTA_MIN, AccuracySweep, AdaSketchResult, EqualityProblem, KKTSystem, KKTTerms,
                                    PenaltyResult, accuracy_figure, adasketch_newton, auglag_figure,
                                    check_step_rules, compute_accuracy_sweep, constrained_logistic, explore_auglag,
                                    kkt_ratios, kkt_system, kkt_terms, merit, merit_grad, plot_accuracy_sweep,
                                    plot_kkt_histories, plot_step_records, quadratic_penalty)
from gradviz.core import as_generator
from gradviz.linalg import sketch_solve
from gradviz.viz import Explorer
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64
A = torch.tensor([3.0, 4.0], dtype=F64)
CIRCLE = EqualityProblem(lambda x: 0.5 * (x - A) @ (x - A), lambda x: (x @ x - 1).reshape(1), n=2, m=1)
CIRCLE_X0 = torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2)
SMALL = dict(N=200, n=6, m_lin=2)


def _x0(n):
    return torch.full((n,), n ** -0.5, dtype=F64)


@pytest.fixture(scope="module")
def small():
    return constrained_logistic(**SMALL, seed=0, device="cpu")


@pytest.fixture(scope="module")
def small_runs(small):
    return {s: adasketch_newton(small, _x0(6), sketch=s, seed=0) for s in ("exact", "row", "gaussian")}


# ---------------------------------------------------------------- derivatives
def test_kkt_terms_match_the_circle_closed_forms():
    x, lam = torch.tensor([0.3, -0.9], dtype=F64), torch.tensor([1.5], dtype=F64)
    t = kkt_terms(CIRCLE, x, lam, objective_hessian=True)
    torch.testing.assert_close(t.grad_lagrangian, x - A + 2 * lam * x, rtol=0, atol=1e-14)
    torch.testing.assert_close(t.jacobian, 2 * x[None], rtol=0, atol=1e-14)
    torch.testing.assert_close(t.hessian, (1 + 2 * lam) * torch.eye(2, dtype=F64), rtol=0, atol=1e-13)
    torch.testing.assert_close(t.hessian_f, torch.eye(2, dtype=F64), rtol=0, atol=1e-13)
    star = kkt_terms(CIRCLE, A / A.norm(), ((A.norm() - 1) / 2).reshape(1))
    assert star.kkt < 1e-14


def test_merit_grad_equals_autograd_and_central_differences(small):
    g = as_generator(3)
    x, lam = _x0(6) + 0.3 * torch.randn(6, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    z = torch.cat([x, lam])
    fn = lambda v: merit(small, v[:6], v[6:], 2.0, 0.3)
    got = merit_grad(small, x, lam, 2.0, 0.3)
    auto = torch.func.grad(fn)(z)
    h = 1e-5
    central = torch.stack([(fn(z + h * e) - fn(z - h * e)) / (2 * h) for e in torch.eye(9, dtype=F64)])
    assert float((got - auto).norm() / auto.norm()) < 1e-12
    assert float((got - central).norm() / central.norm()) < 1e-6


def test_official_merit_gradient_differs_by_2_eta2_lambda_grad_on_the_sphere(small):
    g = as_generator(4)
    x, lam = _x0(6) + 0.2 * torch.randn(6, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    lagr = merit_grad(small, x, lam, 1.0, 0.1)
    obj = merit_grad(small, x, lam, 1.0, 0.1, hessian="objective")
    gx = kkt_terms(small, x, lam).grad_lagrangian
    torch.testing.assert_close(lagr[:6] - obj[:6], 2 * 0.1 * lam[-1] * gx, rtol=0, atol=1e-13)
    assert torch.equal(lagr[6:], obj[6:])
    # linear constraints only: the two agree
    lin = EqualityProblem(small.f, lambda w: small.c(w)[:2], n=6, m=2)
    torch.testing.assert_close(merit_grad(lin, x, lam[:2], hessian="objective"), merit_grad(lin, x, lam[:2]),
                               rtol=0, atol=1e-13)


# ---------------------------------------------------------------- the Newton–KKT step and the sketch
def test_exact_limit_is_the_hand_assembled_newton_kkt_step():
    x, lam = CIRCLE_X0, torch.tensor([0.25], dtype=F64)
    K = torch.tensor([[1 + 2 * 0.25, 0, 2 * x[0]], [0, 1 + 2 * 0.25, 2 * x[1]], [2 * x[0], 2 * x[1], 0]], dtype=F64)
    b = -torch.cat([x - A + 2 * lam * x, (x @ x - 1).reshape(1)])
    d = np.linalg.solve(K.numpy(), b.numpy())
    S = kkt_system(kkt_terms(CIRCLE, x, lam))
    torch.testing.assert_close(S.K, K, rtol=0, atol=1e-14)
    r = adasketch_newton(CIRCLE, x, lam, sketch="exact", max_iters=1)
    step = np.concatenate([(r.x - x).numpy(), (r.lam - lam).numpy()]) / r.alpha[0]
    np.testing.assert_allclose(step, d, rtol=0, atol=1e-12)


def test_sketched_direction_is_within_the_test_bound_of_the_exact_one(small):
    S = kkt_system(kkt_terms(small, _x0(6), torch.zeros(3, dtype=F64)))
    rel = 1e-6 / (S.psi * S.K_norm)
    for sketch in ("row", "gaussian", "block"):
        res = sketch_solve(S.K, S.b, sketch, stop=rel, max_iters=2_000_000, seed=1)
        resid = float((S.K @ res.x - S.b).norm())
        assert res.converged and resid <= rel * float(S.b.norm())
        gap = float((res.x - torch.linalg.solve(S.K, S.b)).norm())
        assert gap <= float(torch.linalg.matrix_norm(torch.linalg.inv(S.K), 2)) * resid


def test_row_sketch_meets_the_strohmer_vershynin_bound_in_mean():
    P = constrained_logistic(100, 4, 1, seed=0, device="cpu")
    S = kkt_system(kkt_terms(P, _x0(4), torch.zeros(2, dtype=F64)))
    star = torch.linalg.solve(S.K, S.b)
    rate = 1 - float(torch.linalg.svdvals(S.K).min()) ** 2 / float(S.K.norm()) ** 2
    T, every = 3000, 100
    def errors(seed):
        out, count = [], [0]
        def stop(d, r):
            if count[0] % every == 0: out.append(float((d - star).norm() ** 2))
            count[0] += 1
            return False
        sketch_solve(S.K, S.b, "row", stop=stop, max_iters=T, seed=seed)
        return np.array(out[: T // every])
    mean = np.mean([errors(s) for s in range(50)], axis=0)
    bound = rate ** (every * np.arange(T // every)) * float(star.norm()) ** 2
    assert (mean <= bound * (1 + 1e-9)).all()
    assert mean[-1] < 0.05 * mean[0]


# ---------------------------------------------------------------- whole runs
def _scipy(problem, x0, method):
    as_np = lambda fn: (lambda w: fn(torch.as_tensor(w)).detach().numpy())
    fun, jac = (lambda w: float(problem.f(torch.as_tensor(w)))), as_np(torch.func.grad(problem.f))
    con, cjac = as_np(problem.c), as_np(torch.func.jacrev(problem.c))
    if method == "SLSQP":
        return minimize(fun, x0.numpy(), jac=jac, method="SLSQP", options=dict(ftol=1e-12, maxiter=500),
                        constraints=[dict(type="eq", fun=con, jac=cjac)]).x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minimize(fun, x0.numpy(), jac=jac, method="trust-constr", options=dict(gtol=1e-10, xtol=1e-12,
                        maxiter=2000), constraints=[NonlinearConstraint(con, 0, 0, jac=cjac)]).x


@pytest.mark.parametrize("method", ["trust-constr", "SLSQP"])
def test_final_points_match_scipy(small, small_runs, method):
    big = constrained_logistic(seed=0, device="cpu")
    runs = [(small, _x0(6), small_runs["row"]), (small, _x0(6), small_runs["gaussian"]),
            (big, _x0(20), adasketch_newton(big, _x0(20), sketch="exact"))]
    for problem, x0, r in runs:
        t = kkt_terms(problem, r.x, r.lam)
        assert r.status == "converged" and float(t.c.norm()) < 1e-4 and float(t.grad_lagrangian.norm()) < 1e-4
        assert np.abs(_scipy(problem, x0, method) - r.x.numpy()).max() < 1e-3


def test_psi_exceeds_the_inverse_kkt_norm_but_psi_over_20_need_not():
    big = constrained_logistic(seed=0, device="cpu")
    r = adasketch_newton(big, _x0(20), sketch="exact")
    for t in (r.x, _x0(20)):
        S = kkt_system(kkt_terms(big, t, r.lam))
        assert S.psi > float(torch.linalg.matrix_norm(torch.linalg.inv(S.K), 2))
    ratio = r.psi / r.K_inv_norm
    assert ratio.min() > 1 and ratio.min() < 20


def test_both_sketches_converge_with_unit_steps_like_exact_newton(small_runs):
    exact = small_runs["exact"]
    for s in ("row", "gaussian"):
        r = small_runs[s]
        assert r.status == "converged" and r.kkt[-1] < 1e-4 and (r.alpha[-2:] == 1).all()
        assert r.adaptations.sum() == 0 and r.total_inner > 10_000
        assert r.num_iters == exact.num_iters
        np.testing.assert_allclose(r.kkt, exact.kkt, rtol=1e-4)
        assert (r.delta == DELTA_MIN).all()


def test_step_rules_hold_and_eta2_shrinks_only_with_eta1(small, small_runs):
    tiny = adasketch_newton(small, _x0(6), sketch="exact", eta1=1e-3)
    assert tiny.status == "converged" and tiny.adaptations.sum() > 0
    for r in (tiny, small_runs["row"]):
        audit = check_step_rules(r)
        assert all(v.all() for v in audit.values())
        shrink = np.diff(np.concatenate([[r.eta0[1]], r.eta2])) < 0
        grow = np.concatenate([[r.eta0[0]], r.eta1])
        np.testing.assert_allclose(grow[1:][shrink] / grow[:-1][shrink], 1.5 ** (2 * r.adaptations[shrink]), rtol=1e-12)
    # the recorded merit is the merit at the start, with the η of the first accepted step
    start = merit(small, _x0(6), torch.zeros(3, dtype=F64), float(tiny.eta1[0]), float(tiny.eta2[0]))
    assert abs(tiny.merit_before[0] - float(start)) < 1e-12
    # a broken record fails the audit
    bad = check_step_rules(AdaSketchResult(**{**tiny.__dict__, "merit_after": tiny.merit_after + 1.0}))
    assert not bad["armijo"].any()


def test_degenerate_constraints_stop_with_a_clear_message(small):
    with pytest.raises(ValueError, match="`x0`.*rank-deficient.*λ_min"):
        adasketch_newton(small, torch.zeros(6, dtype=F64), sketch="exact")
    twice = EqualityProblem(small.f, lambda w: torch.cat([small.c(w), small.c(w)[:1]]), n=6, m=4)
    with pytest.raises(ValueError, match="rank-deficient"):
        adasketch_newton(twice, _x0(6), sketch="exact")


def test_accuracy_sweep_cost_linear_and_superlinear_rates(small):
    sweep = compute_accuracy_sweep(small, _x0(6), (1.0, 1e6, 1e8, 1e9), seed=0)
    sharp = compute_accuracy_sweep(small, _x0(6), (1e8,), sharpen=True, seed=0)
    cost = [r.total_inner for r in sweep.results]
    assert cost[0] > cost[1] > cost[2] and cost[0] / cost[2] < 100  # loosening by 1e8 saves < 100×
    assert [int(r.adaptations.sum()) for r in sweep.results][:3] == [0, 0, 0] and sweep.results[3].adaptations.sum() > 0
    fixed = kkt_ratios(sweep.results[2])[-4:]
    assert 0.05 < fixed.min() and fixed.max() < 0.3
    tail = kkt_ratios(sharp.results[0])[-3:]
    assert (np.diff(tail) < 0).all() and tail[-1] < 1e-3
    ex = sweep.exact.kkt
    assert (ex[1:][ex[:-1] < 0.1] / ex[:-1][ex[:-1] < 0.1] ** 2).max() < 5


def test_quadratic_penalty_is_slower_than_adasketch(small, small_runs):
    r = quadratic_penalty(small, _x0(6), growth=10.0)
    assert r.converged and len(r.mu) > 2 * small_runs["exact"].num_iters
    np.testing.assert_allclose(r.x.numpy(), small_runs["exact"].x.numpy(), atol=1e-3)


def test_runs_follow_seeds_and_devices():
    a = adasketch_newton(CIRCLE, CIRCLE_X0, sketch="row", seed=5, tol=1e-8)
    b = adasketch_newton(CIRCLE, CIRCLE_X0, sketch="row", seed=as_generator(5), tol=1e-8)
    assert np.array_equal(a.inner, b.inner) and a.x.device == CIRCLE_X0.device and a.x.dtype == F64


# ---------------------------------------------------------------- figures and the explorer
def test_figures_and_explorer():
    runs = {s: adasketch_newton(CIRCLE, CIRCLE_X0, sketch=s, tol=1e-8) for s in ("exact", "row")}
    pen = quadratic_penalty(CIRCLE, CIRCLE_X0)
    assert isinstance(plot_kkt_histories({**runs, "penalty": pen}), Figure)
    assert isinstance(plot_step_records(runs["row"]), Figure)
    sweep = compute_accuracy_sweep(CIRCLE, CIRCLE_X0, (1.0, 1e6))
    assert isinstance(plot_accuracy_sweep(sweep, sweep), Figure)
    fig = accuracy_figure(sweep, active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    cache = {}
    f1 = auglag_figure(sketch="exact", n=4, m_lin=1, cache=cache)
    f2 = auglag_figure(sketch="exact", n=4, m_lin=1, cache=cache, x_axis="sketch steps")
    assert len(cache) == 1 and [t.name for t in f1.data] == ["KKT", "sketch steps", "α", "η₁", "η₂"]
    assert f2.data[0].x[-1] == 0  # exact solves take no sketch steps
    ex = explore_auglag(cache)
    assert isinstance(ex, Explorer) and ex.controls["accuracy"].costly and not ex.controls["x_axis"].costly


# ---------------------------------------------------------------- bad input
_X, _L = _x0(6), torch.zeros(3, dtype=F64)
_P = constrained_logistic(50, 6, 2, seed=0, device="cpu")
_T = kkt_terms(CIRCLE, CIRCLE_X0, torch.zeros(1, dtype=F64))
_R = adasketch_newton(CIRCLE, CIRCLE_X0, sketch="exact")
_S = AccuracySweep((1.0,), (_R,), _R, "row", False)
_BAD_X = [_X[:3], _X.long(), torch.full_like(_X, NAN), "x"]
_BAD_L = [_L[:2], torch.full_like(_L, INF), "lam"]

PROBES = [
    Probe(kkt_terms, dict(problem=_P, x=_X, lam=_L),
          dict(problem=["p", _R], x=_BAD_X, lam=_BAD_L, objective_hessian=["yes"])),
    Probe(constrained_logistic, dict(N=20, n=4, m_lin=1, device="cpu"),
          dict(N=SIZES, n=[1, 0], m_lin=[-1, 3], noise=[-1.0, NAN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(merit, dict(problem=_P, x=_X, lam=_L),
          dict(problem=["p"], x=_BAD_X, lam=_BAD_L, eta1=[0.0, -1.0, NAN], eta2=[0.0, INF])),
    Probe(merit_grad, dict(problem=_P, x=_X, lam=_L),
          dict(problem=["p"], x=_BAD_X, lam=_BAD_L, eta1=[0.0], eta2=[-1.0], hessian=[UNKNOWN])),
    Probe(kkt_system, dict(terms=_T), dict(terms=["t", _R], xi_B=[0.0, NAN], psi_factor=[0.0, -1.0])),
    Probe(adasketch_newton, dict(problem=CIRCLE, x0=CIRCLE_X0, sketch="exact"),
          dict(problem=["p"], x0=[CIRCLE_X0[:1], CIRCLE_X0.long(), torch.full_like(CIRCLE_X0, NAN), "x"],
               lam0=[torch.zeros(2, dtype=F64), torch.full((1,), NAN, dtype=F64), "l"], sketch=[UNKNOWN],
               accuracy=[0.0, -1.0, NAN], sharpen=["yes"], eta1=[0.0], eta2=[-1.0], delta=[0.0], xi_B=[0.0],
               beta=[0.0, 0.5, NAN], nu=[1.0, 0.5], tol=[0.0], max_iters=SIZES, max_inner=SIZES, block_size=SIZES,
               hessian=[UNKNOWN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(quadratic_penalty, dict(problem=CIRCLE, x0=CIRCLE_X0),
          dict(problem=["p"], x0=[CIRCLE_X0[:1], "x"], mu0=[0.0, NAN], growth=[1.0, 0.5], newton_steps=SIZES,
               tol=[0.0], max_iters=SIZES, device=[UNKNOWN])),
    Probe(compute_accuracy_sweep, dict(problem=CIRCLE, x0=CIRCLE_X0, multipliers=(1.0,)),
          dict(multipliers=[(), (0.0,), (NAN,), "1", 3], sketch=["exact", UNKNOWN], seed=[-1, 0.5])),
    Probe(check_step_rules, dict(result=_R), dict(result=["r", _S])),
    Probe(kkt_ratios, dict(result=_R), dict(result=["r", _S])),
    Probe(plot_kkt_histories, dict(runs={"a": _R}), dict(runs=[{}, {"a": 3}, "r", [_R]], tol=[0.0, NAN])),
    Probe(plot_step_records, dict(result=_R), dict(result=["r", _S])),
    Probe(plot_accuracy_sweep, dict(sweep=_S), dict(sweep=["s", _R], sharpened=["s"])),
    Probe(accuracy_figure, dict(sweep=_S), dict(sweep=["s"], active=[-1, 1, 0.5])),
    Probe(auglag_figure, dict(sketch="exact", n=4, m_lin=1),
          dict(sketch=[UNKNOWN], accuracy=[0.0, NAN], eta1=[0.0], eta2=[-1.0], beta=[0.0, 0.5], nu=[1.0],
               n=[2, 41, 0.5], m_lin=[-1, 0.5], xi_B=[0.0], x_axis=[UNKNOWN], cache=["c", 3])),
    Probe(explore_auglag, dict(cache=None), dict(cache=["c", 3])),
]
UNPROBED = {}
