"""Reference tests for gradviz.curvature.smoothness: linear-algebra identities, autodiff Hessians, scipy optima."""
import functools

import numpy as np
import plotly.graph_objects as go
import pytest
import reference as ref
import scipy.optimize
import torch
from matplotlib.figure import Figure

from gradviz.autodiff import gradient
from gradviz.core import as_generator
from gradviz.curvature.smoothness import (CURVATURES, LogisticProblem, SmoothnessRun, SoftmaxProblem, compare_methods,
                                          conditioning_figure, explore_smoothness, grad_norm_smooth, gradient_descent,
                                          logistic_problem, plot_gaps, plot_runs, plot_step_limits,
                                          regularized_newton_step, scale_features, smoothness_figure, softmax_problem,
                                          step_limits, value_and_gradient)
from gradviz.viz import Explorer


def hessian(f, w):
    "The reference Hessian (reverse-over-reverse, float64), independent of gradviz's derivative code."
    return ref.dense_hessian(f, w)

F64 = torch.float64


def _spd(p, seed=0, shift=0.1):
    g = as_generator(seed)
    A = torch.randn(p, p, generator=g, dtype=F64)
    return A @ A.T / p + shift * torch.eye(p, dtype=F64), torch.randn(p, generator=g, dtype=F64)


@pytest.fixture(scope="module")
def logistic():
    return logistic_problem()


@pytest.fixture(scope="module")
def exact_run(logistic):
    return grad_norm_smooth(logistic, logistic.X.new_zeros(logistic.dim), "exact")


@pytest.fixture(scope="module")
def bohning_run(logistic):
    return grad_norm_smooth(logistic, logistic.X.new_zeros(logistic.dim), "bohning", max_iters=300)


@pytest.fixture(scope="module")
def f_star(logistic):
    def np_fn(fn): return lambda w: fn(torch.as_tensor(w, dtype=F64)).detach().numpy()
    ref = scipy.optimize.minimize(np_fn(logistic), np.zeros(logistic.dim), jac=np_fn(lambda w: gradient(logistic, w)),
                                  hess=np_fn(lambda w: hessian(logistic, w)), method="trust-exact",
                                  options=dict(gtol=1e-10))
    assert ref.success
    return ref


# ---- one step -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [0.0, 1e-6, 0.3, 1e4])
def test_step_solves_shifted_system(lam):
    H, g = _spd(30, seed=1)
    d = regularized_newton_step(H, g, lam)
    residual = (H @ d + lam * d + g).norm() / g.norm()
    assert residual < 1e-10
    assert float(g @ d) < 0  # descent direction when H + λI ≻ 0


def test_step_is_none_when_not_positive_definite():
    H = torch.diag(torch.tensor([2.0, -1.0], dtype=F64))
    g = torch.tensor([1.0, 1.0], dtype=F64)
    assert regularized_newton_step(H, g, 0.5) is None
    torch.testing.assert_close(regularized_newton_step(H, g, 2.0), torch.tensor([-0.25, -1.0], dtype=F64))


def test_step_limits_newton_and_normalised_gradient():
    H, g = _spd(12, seed=2)
    newton = torch.linalg.solve(H, -g)
    far = regularized_newton_step(H, g, float(g.norm()) / 1e12)
    torch.testing.assert_close(far, newton, rtol=1e-8, atol=1e-10)
    gamma = 1e-6
    near = regularized_newton_step(H, g, float(g.norm()) / gamma)
    assert torch.nn.functional.cosine_similarity(near, -g, dim=0) > 0.999
    assert abs(float(near.norm()) / gamma - 1) < 1e-3
    lim = step_limits(H, g, torch.logspace(-6, 12, 19, dtype=F64))
    assert lim["cos(Δ, −∇f)"][0] > 0.999 and lim["‖Δ − Δ_Newton‖ / ‖Δ_Newton‖"][-1] < 1e-8


def test_step_bad_input():
    H, g = _spd(3)
    with pytest.raises(ValueError, match="`H` must be square"):
        regularized_newton_step(torch.ones(2, 3, dtype=F64), g, 1.0)
    with pytest.raises(ValueError, match="`g` must have shape"):
        regularized_newton_step(H, torch.ones(4, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="`lam` must be >= 0"): regularized_newton_step(H, g, -1.0)
    with pytest.raises(TypeError, match="`H` must have a floating-point dtype"):
        regularized_newton_step(torch.eye(3, dtype=torch.long), g, 1.0)
    with pytest.raises(ValueError, match="`gammas` must be non-empty and positive"):
        step_limits(H, g, torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="`H` must be positive definite"):
        step_limits(-H, g, torch.tensor([1.0], dtype=F64))


def test_value_and_gradient_matches_engine(logistic):
    w = torch.linspace(-1, 1, logistic.dim, dtype=F64)
    v, g = value_and_gradient(logistic, w)
    torch.testing.assert_close(v, logistic(w))
    torch.testing.assert_close(g, gradient(logistic, w), rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="`theta` must have 1 dimension"): value_and_gradient(logistic, w[None])


# ---- problems and curvature models ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_curvatures(seed):
    prob = logistic_problem(n=80, dim=7, conditioning=30.0, seed=seed)
    w = torch.randn(prob.dim, generator=as_generator(seed), dtype=F64)
    H = hessian(prob, w)
    torch.testing.assert_close(prob.curvature("exact", w), H, rtol=1e-12, atol=1e-14)
    for kind in ("gauss_newton", "bohning"):
        assert torch.linalg.eigvalsh(prob.curvature(kind, w) - H)[0] > -1e-12, kind


@pytest.mark.parametrize("reference_class", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_curvatures(reference_class, seed):
    prob = softmax_problem(n=60, dim=4, num_classes=4, conditioning=10.0, seed=seed, reference_class=reference_class)
    assert prob.dim == 4 * (3 if reference_class else 4)
    w = 0.5 * torch.randn(prob.dim, generator=as_generator(seed), dtype=F64)
    H = hessian(prob, w)
    torch.testing.assert_close(prob.curvature("exact", w), H, rtol=1e-12, atol=1e-14)
    dropped = prob.curvature("gauss_newton", w) - H
    assert torch.linalg.eigvalsh(dropped)[0] > -1e-10  # weighted GN − true Hessian is PSD
    # and it is exactly the dropped rank-one terms (x ⊗ p)(x ⊗ p)ᵀ / n
    K = prob.dim // prob.X.shape[1]
    logits = prob.X @ w.view(prob.X.shape[1], K)
    if reference_class: logits = torch.nn.functional.pad(logits, (0, 1))
    P = torch.softmax(logits, 1)[:, :K]
    Z = torch.stack([torch.kron(x, p) for x, p in zip(prob.X, P)])
    torch.testing.assert_close(dropped, Z.T @ Z / len(Z), rtol=1e-12, atol=1e-14)
    assert torch.linalg.eigvalsh(prob.curvature("bohning", w) - H)[0] > -1e-12


def test_problem_values_match_torch_losses():
    lp = logistic_problem(n=50, dim=5, seed=3)
    w = torch.randn(5, generator=as_generator(0), dtype=F64)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(lp.X @ w, lp.y) + 0.5 * lp.reg * w @ w
    torch.testing.assert_close(lp(w), ref)
    sp = softmax_problem(n=50, dim=5, num_classes=3, seed=3, reference_class=False)
    W = torch.randn(15, generator=as_generator(1), dtype=F64)
    ref = torch.nn.functional.cross_entropy(sp.X @ W.view(5, 3), sp.y) + 0.5 * sp.reg * W @ W
    torch.testing.assert_close(sp(W), ref)


def test_scale_features_exact_scales():
    X = torch.randn(100, 5, generator=as_generator(0), dtype=F64)
    Xs = scale_features(X, 1000.0)
    ratio = Xs.std(0) / (X - X.mean(0)).std(0)
    torch.testing.assert_close(ratio, 1000.0 ** (-torch.arange(5, dtype=F64) / 4))
    torch.testing.assert_close(Xs.mean(0), torch.zeros(5, dtype=F64), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="`conditioning` must be >= 1"): scale_features(X, 0.5)
    with pytest.raises(ValueError, match="`X` must have 2 dimension"): scale_features(X[0], 2.0)


def test_problems_seeded_and_validated():
    a, b = logistic_problem(seed=4), logistic_problem(seed=4)
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    c = logistic_problem(seed=as_generator(4))
    assert torch.equal(a.X, c.X)
    assert not torch.equal(a.X, logistic_problem(seed=5).X)
    with pytest.raises(ValueError, match="`reg` must be > 0"): logistic_problem(reg=0.0)
    with pytest.raises(ValueError, match="`conditioning` must be >= 1"): logistic_problem(conditioning=0.1)
    with pytest.raises(TypeError, match="`n` must be an int"): logistic_problem(n=10.5)
    with pytest.raises(TypeError, match="`dtype` must be a floating"): logistic_problem(dtype=torch.long)
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"): softmax_problem(num_classes=1)
    with pytest.raises(TypeError, match="`reference_class` must be bool"): softmax_problem(reference_class=1)
    with pytest.raises(ValueError, match="`kind` must be one of"): a.curvature("fisher", a.X.new_zeros(a.dim))
    with pytest.raises(TypeError, match="`seed`"): logistic_problem(seed=1.5)
    with pytest.raises(TypeError, match="`seed`"): softmax_problem(seed="0")


# ---- the method -----------------------------------------------------------------------------------------------------

def test_exact_run_matches_scipy(exact_run, f_star):
    assert exact_run.status == "converged"
    assert np.abs(exact_run.solution.numpy() - f_star.x).max() < 1e-8
    assert abs(float(exact_run.values[-1]) - f_star.fun) < 1e-12


def test_exact_run_is_superlinear_with_doubling_gamma(exact_run, f_star):
    r = exact_run
    assert (r.gammas == 2.0 ** torch.arange(r.num_iters, dtype=F64)).all() and (r.trials == 1).all()
    assert (r.lambdas[1:] < r.lambdas[:-1]).all() and r.lambdas[-1] < 1e-6  # the regulariser switches itself off
    gaps = r.gaps(f_star.fun)
    k = r.iters_to(f_star.fun, 1e-12)
    assert k is not None and k <= 10
    assert gaps[k - 3] / gaps[k].clamp_min(1e-17) > 1e3


def _check_record(run, f, curvature):
    "Every accepted step solves its system, passed the acceptance test, and did not increase f."
    assert (run.values.diff() <= 0).all()
    margins = -run.values.diff() - run.grad_norms[1:] ** 2 / (8 * run.lambdas)
    assert (margins >= 0).all()
    for k in range(run.num_iters):
        x, d = run.iterates[k], run.steps[k]
        torch.testing.assert_close(run.iterates[k + 1], x + d, rtol=0, atol=0)
        g = gradient(f, x)
        assert (curvature(x) @ d + run.lambdas[k] * d + g).norm() / g.norm() < 1e-10
    norms = torch.stack([gradient(f, x).norm() for x in run.iterates])
    torch.testing.assert_close(run.grad_norms, norms, rtol=1e-10, atol=1e-14)


def test_exact_record_consistent(exact_run, logistic):
    _check_record(exact_run, logistic, lambda x: hessian(logistic, x))


def test_bohning_run_linear_with_levelled_lambda(bohning_run, logistic, f_star):
    r = bohning_run
    _check_record(r, logistic, lambda x: logistic.curvature("bohning", x))
    assert r.status == "stalled"  # it stops at the round-off floor, not with an error
    k = r.iters_to(f_star.fun, 1e-10)
    assert k is not None and 10 < k < 100
    tail = r.lambdas[r.num_iters // 2:]
    assert tail.max() / tail.min() < 5  # λ_k levels off while γ_k shrinks with the gradient
    assert r.gammas[-1] < 1e-3 * r.gammas.max()
    lg = r.gaps(f_star.fun)[:k].clamp_min(1e-18).log10().numpy()
    assert np.corrcoef(np.arange(k), lg)[0, 1] ** 2 > 0.95  # a straight line on a log axis: linear rate


def test_all_beat_gradient_descent(logistic, exact_run, bohning_run, f_star):
    x0 = logistic.X.new_zeros(logistic.dim)
    gd = gradient_descent(logistic, x0, 1 / logistic.smoothness(), max_iters=300)
    gn = grad_norm_smooth(logistic, x0, "gauss_newton", max_iters=300)
    assert gd.iters_to(f_star.fun, 1e-10) is None
    for run in (exact_run, bohning_run, gn):
        assert run.iters_to(f_star.fun, 1e-10) < 100
        for k in (5, 10, 20):
            assert run.gaps(f_star.fun)[min(k, run.num_iters)] < gd.gaps(f_star.fun)[k]


def test_softmax_gauss_newton_run(f_star=None):
    sm = softmax_problem()
    x0 = sm.X.new_zeros(sm.dim)
    gn = grad_norm_smooth(sm, x0, "gauss_newton", max_iters=300)
    ex = grad_norm_smooth(sm, x0, "exact")
    _check_record(gn, sm, lambda x: sm.curvature("gauss_newton", x))
    fs = float(ex.values[-1])
    assert ex.status == "converged" and gn.iters_to(fs, 1e-10) is not None
    for x in gn.iterates[::10]:
        assert torch.linalg.eigvalsh(sm.curvature("gauss_newton", x) - hessian(sm, x))[0] > -1e-10


def test_gradient_descent_records_gamma():
    quad = lambda t: 0.5 * (t * torch.tensor([4.0, 1.0], dtype=t.dtype) * t).sum()
    r = gradient_descent(quad, torch.tensor([1.0, 2.0], dtype=F64), lr=0.25, max_iters=500)
    assert r.status == "converged" and r.grad_norms[-1] <= 1e-10
    torch.testing.assert_close(r.iterates[1], torch.tensor([0.0, 1.5], dtype=F64))
    torch.testing.assert_close(r.gammas, 0.25 * r.grad_norms[:-1])
    assert (r.lambdas == 4.0).all() and (r.trials == 1).all()
    with pytest.raises(ValueError, match="`lr` must be > 0"): gradient_descent(quad, torch.ones(2, dtype=F64), lr=-1.0)


def test_callable_hessian_and_fixed_gamma(logistic):
    x0 = logistic.X.new_zeros(logistic.dim)
    bohning = lambda x: logistic.curvature("bohning", x)
    fixed = grad_norm_smooth(logistic, x0, bohning, gamma0=0.5, adaptive=False, max_iters=20)
    assert fixed.method == "custom" and (fixed.gammas == 0.5).all() and (fixed.trials == 1).all()
    # with H = 0 and a large fixed γ every step is a normalised gradient step of length γ: f goes up
    zero = lambda x: torch.zeros(len(x), len(x), dtype=x.dtype)
    wild = grad_norm_smooth(logistic, x0, zero, gamma0=100.0, adaptive=False, max_iters=5)
    steps = wild.steps.norm(dim=1)
    torch.testing.assert_close(steps, torch.full_like(steps, 100.0))
    assert (wild.values.diff() > 0).any()


def test_search_failed_stops_without_increasing_f(logistic):
    x0 = logistic.X.new_zeros(logistic.dim)
    zero = lambda x: torch.zeros(len(x), len(x), dtype=x.dtype)
    r = grad_norm_smooth(logistic, x0, zero, gamma0=1e3, max_trials=1)
    assert r.status == "search_failed" and r.num_iters == 0 and len(r.values) == 1


def test_indefinite_hessian_halves_gamma():
    f = lambda x: (x ** 2).sum()
    indefinite = lambda x: torch.diag(torch.tensor([-1.0, 2.0], dtype=x.dtype))
    r = grad_norm_smooth(f, torch.tensor([1.0, 1.0], dtype=F64), indefinite, gamma0=10.0, max_iters=3)
    assert r.num_iters >= 1 and (r.trials > 1).any() and (r.values.diff() <= 0).all()


def test_run_bad_input(logistic):
    x0 = logistic.X.new_zeros(logistic.dim)
    quad = lambda t: (t * t).sum()
    with pytest.raises(TypeError, match="`f` must be callable"): grad_norm_smooth(3.0, x0)
    with pytest.raises(TypeError, match="`x0` must have a floating-point dtype"):
        grad_norm_smooth(quad, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="`hessian` must be one of"): grad_norm_smooth(logistic, x0, "newton")
    with pytest.raises(ValueError, match="`hessian`='bohning' needs `f`"): grad_norm_smooth(quad, x0, "bohning")
    with pytest.raises(ValueError, match="`gamma0` must be > 0"): grad_norm_smooth(logistic, x0, gamma0=-1.0)
    with pytest.raises(ValueError, match="`max_iters` must be >= 1"): grad_norm_smooth(logistic, x0, max_iters=0)
    with pytest.raises(ValueError, match="`accept_factor` must be > 0"):
        grad_norm_smooth(logistic, x0, accept_factor=0.0)
    with pytest.raises(ValueError, match="`max_trials` must be >= 1"): grad_norm_smooth(logistic, x0, max_trials=0)
    with pytest.raises(TypeError, match="`adaptive` must be bool"): grad_norm_smooth(logistic, x0, adaptive="yes")
    with pytest.raises(ValueError, match="`grad_tol` must be >= 0"): grad_norm_smooth(logistic, x0, grad_tol=-1.0)


def test_run_bad_shapes_and_nan_hessian(logistic):
    x0 = logistic.X.new_zeros(logistic.dim)
    with pytest.raises(ValueError, match="`x0` must have length"): grad_norm_smooth(logistic, x0[:-1])
    with pytest.raises(ValueError, match="`x0` must have length"): gradient_descent(logistic, x0[:-1], lr=0.1)
    with pytest.raises(ValueError, match="`hessian` must give shape"):
        grad_norm_smooth(logistic, x0, lambda x: torch.eye(len(x) + 1, dtype=x.dtype))
    with pytest.raises(TypeError, match="`hessian` must give a torch.Tensor"):
        grad_norm_smooth(logistic, x0, lambda x: np.eye(len(x)))
    nan = lambda x: torch.full((len(x), len(x)), float("nan"), dtype=x.dtype)
    with pytest.raises(ValueError, match="`hessian` gave non-finite"): grad_norm_smooth(logistic, x0, nan)


def test_runs_on_device(device):
    prob = logistic_problem(n=100, dim=10, device=device)
    x0 = prob.X.new_zeros(prob.dim)
    for h in CURVATURES:
        r = grad_norm_smooth(prob, x0, h, max_iters=200)
        assert r.iterates.device.type == device.type and r.values.device.type == "cpu"
        assert r.status in ("converged", "stalled") and (r.values.diff() <= 0).all()
    sm = softmax_problem(n=100, dim=5, num_classes=3, device=device)
    r = grad_norm_smooth(sm, sm.X.new_zeros(sm.dim), "gauss_newton", max_iters=200)
    assert r.iterates.device.type == device.type


def test_float32_runs_to_its_own_floor():
    prob = logistic_problem(n=200, dim=10, dtype=torch.float32, device="cpu")
    r = grad_norm_smooth(prob, prob.X.new_zeros(prob.dim), "bohning", max_iters=300)
    assert r.status in ("stalled", "converged") and r.grad_norms[-1] < 1e-3
    assert (r.values.diff() <= 0).all()


# ---- results, figures, explorer -------------------------------------------------------------------------------------

def test_run_helpers(exact_run, f_star):
    assert isinstance(exact_run, SmoothnessRun)
    with pytest.raises(Exception): exact_run.status = "x"  # frozen
    assert exact_run.iters_to(f_star.fun, 1e-300) is None or exact_run.gaps(f_star.fun).min() == 0
    assert exact_run.iters_to(f_star.fun, 10.0) == 0


def test_plot_runs(exact_run, bohning_run, f_star):
    fig = plot_runs({"exact": exact_run, "bohning": bohning_run}, f_star.fun, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    with pytest.raises(ValueError, match="`runs` is empty"): plot_runs({}, 0.0)
    with pytest.raises(TypeError, match="`runs` must be Mapping"): plot_runs([exact_run], 0.0)


def test_explorer_updates():
    ex = explore_smoothness()
    fig = ex.update(hessian="bohning", gamma0=0.1)
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert ex.update(hessian="bohning", gamma0=0.1) is fig
    off = ex.update(adaptive=False, hessian="exact", gamma0=1.0)
    assert set(np.asarray(off.data[2].y).tolist()) == {1.0}
    with pytest.raises(ValueError, match="`hessian` must be one of"): ex.update(hessian="fisher")
    with pytest.raises(ValueError, match="`hessian` must be one of"): smoothness_figure(hessian="fisher")
    assert isinstance(ex, Explorer) and set(ex.controls) >= {"hessian", "gamma0", "conditioning", "reg", "adaptive"}
    gn = ex.update(hessian="gauss_newton", adaptive=True)
    assert gn is not off and list(gn.data[1].y) != list(off.data[1].y)


def test_step_limits_figure(logistic):
    x0 = logistic.X.new_zeros(logistic.dim)
    gammas = torch.logspace(-3, 6, 10, dtype=F64)
    limits = step_limits(logistic.curvature("exact", x0), gradient(logistic, x0), gammas)
    fig = plot_step_limits(gammas, limits, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3 and fig.axes[0].get_title() == "t"
    with pytest.raises(ValueError, match="`limits` is empty"): plot_step_limits(gammas, {})
    with pytest.raises(TypeError, match="`limits`"): plot_step_limits(gammas, [1.0])


def test_compare_methods_and_gaps_figure():
    prob = logistic_problem(n=100, dim=8, conditioning=10.0)
    runs = compare_methods(prob, functools.partial(prob.curvature, "exact"), max_iters=40)
    assert list(runs) == ["exact Hessian", "Böhning bound (fixed)", "weighted Gauss–Newton",
                          "gradient descent, η = 1/L"]
    assert all(isinstance(r, SmoothnessRun) and (r.values.diff() <= 0).all() for r in runs.values())
    f_star = min(float(r.values.min()) for r in runs.values())
    fig = plot_gaps({k: r.gaps(f_star) for k, r in runs.items()}, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4
    with pytest.raises(TypeError, match="`problem`"): compare_methods(lambda w: w @ w)
    with pytest.raises(ValueError, match="`gaps` is empty"): plot_gaps({})


def test_conditioning_figure():
    fig = conditioning_figure((1, 100), active=1, max_iters=20)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 2 * 4
    assert [t.visible for t in fig.data] == [False] * 4 + [True] * 4
    with pytest.raises(ValueError, match="`kappas"): conditioning_figure((0.5,))
    with pytest.raises(ValueError, match="`kappas` is empty"): conditioning_figure(())


def test_closed_form_oracle_gives_the_same_run(logistic):
    w = torch.linspace(-0.5, 0.5, logistic.dim, dtype=F64)
    v, g = logistic.value_and_gradient(w)
    torch.testing.assert_close(v, logistic(w))
    torch.testing.assert_close(g, gradient(logistic, w), rtol=1e-12, atol=1e-15)
    x0 = logistic.X.new_zeros(logistic.dim)
    a = grad_norm_smooth(logistic, x0, "bohning", max_iters=30)
    b = grad_norm_smooth(logistic, x0, "bohning", max_iters=30, oracle=logistic.value_and_gradient)
    assert a.trials.tolist() == b.trials.tolist()
    torch.testing.assert_close(a.iterates, b.iterates, rtol=1e-9, atol=1e-12)
    c = gradient_descent(logistic, x0, 1.0, max_iters=5, oracle=logistic.value_and_gradient)
    torch.testing.assert_close(c.values, gradient_descent(logistic, x0, 1.0, max_iters=5).values)
    with pytest.raises(TypeError, match="`oracle` must be callable"): grad_norm_smooth(logistic, x0, oracle=3)


# ----------------------------------------------------------------------------- bad-input probes
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_H2 = torch.diag(torch.tensor([4.0, 1.0], dtype=F64))
_G2 = torch.tensor([2.0, -3.0], dtype=F64)
_QUAD = lambda t: 0.5 * (t * torch.tensor([4.0, 1.0], dtype=t.dtype) * t).sum()
_LOG = logistic_problem(n=20, dim=3, seed=0, device="cpu")
_X0 = torch.zeros(3, dtype=F64)
_BAD_H = [torch.ones(2, 3, dtype=F64), torch.ones(2, dtype=F64), torch.full((2, 2), NAN, dtype=F64),
          torch.ones(2, 2, dtype=torch.long), "H"]
_BAD_VEC = [torch.ones(3, dtype=F64), torch.full((2,), NAN, dtype=F64), torch.ones(2, 2, dtype=F64), "g"]
_RUN = gradient_descent(_QUAD, torch.ones(2, dtype=F64), lr=0.25, max_iters=3)
_BAD_X0 = [torch.ones(4, dtype=F64), torch.ones(3, 3, dtype=F64), torch.full((3,), NAN, dtype=F64),
           torch.ones(3, dtype=torch.long), "x0"]
_PROBLEM = dict(n=20, dim=3, conditioning=10.0, separation=2.0, reg=1e-3, seed=0, device="cpu", dtype=F64)
_BAD_PROBLEM = dict(n=[*SIZES, 1, 2.5], dim=[*SIZES, 2.5], conditioning=[NAN, INF, 0.5, "flat"],
                    separation=[NAN, INF, -1.0], reg=[NAN, INF, 0.0, -1.0], seed=[1.5, "zero"], device=[UNKNOWN],
                    dtype=[torch.long, "float64"])

PROBES = [
    Probe(regularized_newton_step, dict(H=_H2, g=_G2, lam=1.0),
          dict(H=_BAD_H, g=_BAD_VEC, lam=[NAN, INF, -1.0, "big"])),
    Probe(value_and_gradient, dict(f=_QUAD, theta=torch.ones(2, dtype=F64)),
          dict(f=["f", None], theta=[torch.ones(2, 2, dtype=F64), torch.full((2,), NAN, dtype=F64),
                                     torch.ones(2, dtype=torch.long), "theta"])),
    Probe(grad_norm_smooth, dict(f=_LOG, x0=_X0, hessian="exact", gamma0=1.0, max_iters=2, grad_tol=1e-10,
                                 adaptive=True, accept_factor=1 / 8, max_trials=5, oracle=None),
          dict(f=["f", None], x0=_BAD_X0, hessian=[UNKNOWN, 3, lambda x: torch.eye(2, dtype=F64)],
               gamma0=[NAN, INF, 0.0, -1.0], max_iters=[*SIZES, 2.5], grad_tol=[NAN, -1.0],
               adaptive=["yes", 1], accept_factor=[NAN, 0.0, -1.0], max_trials=[*SIZES, 2.5], oracle=["oracle", 3])),
    Probe(gradient_descent, dict(f=_LOG, x0=_X0, lr=0.1, max_iters=2, grad_tol=1e-10, oracle=None),
          dict(f=["f"], x0=_BAD_X0, lr=[NAN, INF, 0.0, -1.0], max_iters=[*SIZES, 2.5], grad_tol=[NAN, -1.0],
               oracle=["oracle"])),
    Probe(scale_features, dict(X=torch.ones(5, 3, dtype=F64), conditioning=10.0),
          dict(X=[torch.ones(5, dtype=F64), torch.full((5, 3), NAN, dtype=F64), torch.ones(5, 3, dtype=torch.long),
                  torch.ones(0, 3, dtype=F64), "X"], conditioning=[NAN, INF, 0.5, "x"])),
    Probe(logistic_problem, dict(_PROBLEM), dict(_BAD_PROBLEM)),
    Probe(softmax_problem, dict(**_PROBLEM, num_classes=3, reference_class=True),
          dict(**_BAD_PROBLEM, num_classes=[*SIZES, 1, 2.5], reference_class=["yes", 1])),
    Probe(plot_runs, dict(runs={"gd": _RUN}, f_star=0.0, title=None, floor=1e-16),
          dict(runs=[[_RUN], {}, {"gd": "run"}], f_star=[NAN, INF, "zero"], floor=[NAN, 0.0, -1.0])),
    Probe(compare_methods, dict(problem=_LOG, exact="exact", max_iters=2),
          dict(problem=["problem", _QUAD], exact=[UNKNOWN, 3], max_iters=[*SIZES, 2.5])),
    Probe(step_limits, dict(H=_H2, g=_G2, gammas=torch.tensor([1e-3, 1.0, 1e3], dtype=F64)),
          dict(H=[*_BAD_H, torch.diag(torch.tensor([1.0, -2.0], dtype=F64))], g=_BAD_VEC,
               gammas=[torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([1.0, NAN], dtype=F64),
                       torch.ones(2, 2, dtype=F64), torch.ones(0, dtype=F64), "gammas"])),
    Probe(plot_step_limits, dict(gammas=torch.tensor([1.0, 2.0], dtype=F64), limits={"a": torch.ones(2, dtype=F64)}),
          dict(gammas=["gammas", torch.tensor([1.0, -2.0], dtype=F64), torch.ones(2, 2, dtype=F64)],
               limits=[[torch.ones(2)], {}, {"a": "values"}, {"a": torch.ones(3, dtype=F64)}])),
    Probe(plot_gaps, dict(gaps={"a": torch.tensor([1.0, 0.1], dtype=F64)}, title=None, floor=1e-16),
          dict(gaps=[[1.0], {}, {"a": "gaps"}, {"a": torch.tensor([1.0, NAN])}], floor=[NAN, 0.0, -1.0])),
    Probe(conditioning_figure, dict(kappas=(1.0,), active=0, max_iters=2),
          dict(kappas=[(), (0.5,), (NAN,), "kappas", 3.0], active=[-1, 1, 0.5], max_iters=[*SIZES, 2.5])),
    Probe(smoothness_figure, dict(hessian="bohning", gamma0=1.0, conditioning=10.0, reg=1e-3, adaptive=True,
                                  max_iters=2, device="cpu"),
          dict(hessian=[UNKNOWN, 3], gamma0=[NAN, INF, 0.0, -1.0], conditioning=[NAN, 0.5], reg=[NAN, 0.0, -1.0],
               adaptive=["yes"], max_iters=[*SIZES, 2.5], device=[UNKNOWN])),
]
