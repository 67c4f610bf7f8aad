"""Reference tests for gradviz.bilevel.implicit: implicit Jacobians against closed forms (ridge, lasso), central
differences of exact solutions, forward/reverse adjointness, root and fixed-point forms, every linear solver, TorchOpt's
`custom_root` (test-only peer), and the chapter's findings (precision slope, flat memory, hyper-parameter descent,
distillation, lasso kinks) at small settings. Everything in float64."""
import math
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from torch.func import jvp

from gradviz.autodiff import hessian
from gradviz.bilevel import implicit as impl
from gradviz.bilevel.implicit import (SOLVES, _graph, _jacobian, Distillation, InnerProblem, Precision, SolutionPath,
                                      TuningRun, classify_with_images, compute_path, compute_precision, custom_fixed_point,
                                      custom_root, distill_dataset, explore_implicit, implicit_figure,
                                      jacobian_slider_figure, lasso_problem, logistic_task, newton_solver,
                                      plot_distilled, plot_path, plot_precision, plot_tuning, prox_gradient_map,
                                      ridge_problem, root_jvp, root_vjp, stationarity, tune_l2_weights,
                                      unrolled_solver)
from gradviz.core import as_generator
from gradviz.data import tiny_images
from reference import require_ref

F64 = torch.float64
LAM = 1.0


def _t(v): return torch.tensor(v, dtype=F64)


@pytest.fixture(scope="module")
def ridge():
    return ridge_problem(seed=1, device="cpu")


@pytest.fixture(scope="module")
def lasso():
    return lasso_problem(seed=1, device="cpu")


def _exact(problem):
    return lambda init, lam: problem.solution(lam)


def _logistic(seed=0):
    task = logistic_task(seed=seed, device="cpu")
    obj = lambda w, theta: impl._logistic_objective(w, theta, task.X, task.y)
    theta = torch.linspace(-3, 0, task.X.shape[1], dtype=F64)
    return task, obj, theta, newton_solver(obj)(torch.zeros(task.X.shape[1], dtype=F64), theta)


# ---------------------------------------------------------------- closed forms and finite differences
def test_ridge_jacobian_equals_the_closed_form(ridge):
    "dx*/dλ = −(XᵀX + λI)⁻¹x* through autograd (one implicit backward pass per coordinate), to 1e-8."
    J = torch.autograd.functional.jacobian(lambda l: custom_root(ridge.optimality)(_exact(ridge))(None, l), _t(LAM))
    H = ridge.X.T @ ridge.X + LAM * torch.eye(ridge.X.shape[1], dtype=F64)
    closed = -torch.linalg.solve(H, torch.linalg.solve(H, ridge.X.T @ ridge.y))
    assert float((J - closed).norm() / closed.norm()) < 1e-8
    torch.testing.assert_close(ridge.jacobian(LAM), closed, rtol=1e-12, atol=0)


def test_central_differences_of_exact_solutions(ridge):
    "Implicit Jv equals (x*(θ + hv) − x*(θ − hv)) / 2h, h = 1e-5, for ridge and per-feature logistic regression, 1e-6."
    h = 1e-5
    J = root_jvp(ridge.optimality, ridge.solution(LAM), (_t(LAM),), (_t(1.0),))
    fd = (ridge.solution(LAM + h) - ridge.solution(LAM - h)) / (2 * h)
    assert float((fd - J).norm() / J.norm()) < 1e-6
    task, obj, theta, w = _logistic()
    v = torch.randn(len(theta), generator=as_generator(3), dtype=F64)
    Jv = root_jvp(stationarity(obj), w, (theta,), (v,))
    solve = lambda th: newton_solver(obj)(torch.zeros_like(w), th)
    fd = (solve(theta + h * v) - solve(theta - h * v)) / (2 * h)
    assert float((fd - Jv).norm() / Jv.norm()) < 1e-6


def test_forward_and_reverse_mode_are_adjoint():
    "⟨w, Jv⟩ = ⟨Jᵀw, v⟩ for random v, w (θ ∈ R^20, CG at 1e-13), relative 1e-10."
    _, obj, theta, w = _logistic(seed=1)
    g = as_generator(4)
    for _ in range(3):
        v, c = torch.randn(len(theta), generator=g, dtype=F64), torch.randn(len(w), generator=g, dtype=F64)
        Jv = root_jvp(stationarity(obj), w, (theta,), (v,), tol=1e-13)
        JTc = root_vjp(stationarity(obj), w, (theta,), c, tol=1e-13)[0]
        assert abs(float(c @ Jv - JTc @ v)) < 1e-10 * abs(float(c @ Jv))


def test_lasso_derivative_on_and_off_the_support(lasso):
    "−(X_SᵀX_S)⁻¹sign(x*_S) on the support, exactly 0 off it (custom_fixed_point of ISTA, GMRES), to 1e-8."
    for lam in (5.0, 30.0, 100.0):
        x = lasso.solution(lam)
        S = x != 0
        J = torch.autograd.functional.jacobian(
            lambda l: custom_fixed_point(lasso.step_map)(_exact(lasso))(None, l), _t(lam))
        want = torch.zeros_like(x)
        want[S] = -torch.linalg.solve(lasso.X[:, S].T @ lasso.X[:, S], x[S].sign())
        assert float((J - want).abs().max()) < 1e-8 and bool((J[~S] == 0).all())
        corr = lasso.X.T @ (lasso.y - lasso.X @ x)  # the lasso's optimality conditions at the "exact" solution
        torch.testing.assert_close(corr[S], lam * x[S].sign(), rtol=0, atol=1e-9)
        assert float(torch.cat([corr[~S].abs(), corr.new_zeros(1)]).max()) <= lam


def test_root_form_equals_fixed_point_form(ridge):
    "custom_root(∇g) = custom_fixed_point(x − η∇g) (fixed η, CG) = custom_fixed_point(step map, GMRES), 1e-10."
    c = torch.randn(ridge.X.shape[1], generator=as_generator(5), dtype=F64)
    eta = 1 / ridge.lipschitz
    def hypergrad(dec):
        lam = _t(LAM).requires_grad_(True)
        return float(torch.autograd.grad(c @ dec(_exact(ridge))(None, lam), lam)[0])
    ref = hypergrad(custom_root(ridge.optimality))
    for dec in (custom_fixed_point(lambda x, l: x - eta * ridge.gradient(x, l), solve="cg"),
                custom_fixed_point(ridge.step_map), custom_root(stationarity(ridge.objective))):
        assert abs(hypergrad(dec) - ref) < 1e-10 * abs(ref)


@pytest.mark.parametrize("solve", SOLVES)
def test_every_linear_solver_gives_the_same_gradient(ridge, solve):
    x = ridge.solution(LAM)
    c = torch.randn(len(x), generator=as_generator(6), dtype=F64)
    got = root_vjp(ridge.optimality, x, (_t(LAM),), c, solve=solve, tol=1e-12)[0]
    want = -c @ torch.linalg.solve(ridge.X.T @ ridge.X + LAM * torch.eye(len(x), dtype=F64), x)
    assert abs(float(got - want)) < 1e-9 * abs(float(want))


def test_matrix_shaped_solutions_and_constants():
    "x may have any shape: X* = A⁻¹B for F = AX − B, so d⟨C, X*⟩/dB = A⁻ᵀC; a float parameter is a constant (None)."
    g = as_generator(7)
    A = torch.randn(4, 4, generator=g, dtype=F64) + 4 * torch.eye(4, dtype=F64)
    B, C = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    F = lambda X, A_, B_, scale: scale * (A_ @ X - B_)
    solver = custom_root(F, solve="gmres")(lambda init, A_, B_, scale: torch.linalg.solve(A_, B_))
    Bl, Al = B.clone().requires_grad_(True), A.clone().requires_grad_(True)
    X = solver(torch.zeros(4, 3, dtype=F64), Al, Bl, 2.0)
    gA, gB = torch.autograd.grad((C * X).sum(), (Al, Bl))
    torch.testing.assert_close(gB, torch.linalg.solve(A.T, C), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gA, -torch.linalg.solve(A.T, C) @ X.detach().T, rtol=1e-9, atol=1e-12)
    assert root_vjp(F, X.detach(), (A, B, 2.0), C, solve="dense")[2] is None



class _Cube(torch.autograd.Function):
    "x³ as an old-style autograd.Function: torch.func cannot transform it, plain autograd can."
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


def test_dense_solve_materialises_A_by_vmap_or_by_a_loop(ridge):
    "solve='dense' builds A = ∂ₓF in one vmap of products on F's graph, also for an F torch.func cannot transform."
    x = ridge.solution(LAM)
    c = torch.randn(len(x), generator=as_generator(8), dtype=F64)
    cg = root_vjp(ridge.optimality, x, (_t(LAM),), c, solve="cg", tol=1e-13)[0]
    assert abs(float(root_vjp(ridge.optimality, x, (_t(LAM),), c, solve="dense")[0] - cg)) < 1e-10 * abs(float(cg))
    H = ridge.X.T @ ridge.X + LAM * torch.eye(len(x), dtype=F64)
    jacobian = lambda fx: _jacobian(*_graph(lambda z: fx(z), x, (), ())[:2])
    torch.testing.assert_close(jacobian(lambda z: ridge.optimality(z, _t(LAM))), H, rtol=1e-13, atol=1e-12)
    fx = lambda z: ridge.optimality(z, _t(LAM)) + 0.01 * _Cube.apply(z)  # A = H + 0.03·diag(z²)
    with pytest.raises(RuntimeError): torch.func.vjp(fx, x)
    torch.testing.assert_close(jacobian(fx), H + torch.diag(0.03 * x ** 2), rtol=1e-13, atol=1e-12)


def test_parameter_product_runs_through_an_old_style_function(ridge):
    "uᵀ∂_θF comes from F's one recorded graph, so an autograd.Function in the parameter path works with every solver."
    x = ridge.solution(LAM)
    c = torch.randn(len(x), generator=as_generator(9), dtype=F64)
    F = lambda z, lam: ridge.optimality(z, 0.0) + lam * (z + 0.01 * _Cube.apply(z))  # B = ∂_λF = x + 0.01·x³
    A = ridge.X.T @ ridge.X + LAM * torch.diag(1 + 0.03 * x ** 2)
    expected = -torch.linalg.solve(A.T, c) @ (x + 0.01 * x ** 3)
    for solve in ("dense", "gmres", "normal_cg"):
        got = root_vjp(F, x, (_t(LAM),), c, solve=solve, tol=1e-13)[0]
        assert abs(float(got - expected)) < 1e-9 * abs(float(expected)), solve


def test_dense_solve_names_a_zero_or_singular_A():
    x, c = torch.ones(3, dtype=F64), torch.ones(3, dtype=F64)
    with pytest.raises(ValueError, match="does not depend on x"):
        root_vjp(lambda z, b: b - 1.0, x, (x.clone(),), c, solve="dense")
    with pytest.raises(ValueError, match="singular"):
        root_vjp(lambda z, b: z.sum() * torch.ones_like(z) - b, x, (x.clone(),), c, solve="dense")


# ---------------------------------------------------------------- decorator semantics
def test_forward_unchanged_and_init_gets_no_gradient(ridge):
    solver = unrolled_solver(ridge.step_map, 40)
    init = torch.zeros(ridge.X.shape[1], dtype=F64, requires_grad=True)
    lam = _t(LAM).requires_grad_(True)
    x = custom_fixed_point(ridge.step_map, solve="cg")(solver)(init, lam)
    assert torch.equal(x.detach(), solver(init.detach(), lam.detach()).detach())
    x.sum().backward()
    assert init.grad is None and lam.grad is not None


def test_solver_only_parameter_gets_zero_gradient(ridge):
    "η enters only the solver: implicit gives exactly 0, unrolling (30 steps) does not."
    step = lambda x, lam, eta: x - eta * ridge.gradient(x, lam)
    eta = _t(0.5 / ridge.lipschitz).requires_grad_(True)
    x0, c = torch.zeros(ridge.X.shape[1], dtype=F64), torch.ones(ridge.X.shape[1], dtype=F64)
    implicit = custom_root(lambda x, lam, eta_: ridge.optimality(x, lam))(unrolled_solver(step, 30))
    assert float(torch.autograd.grad(c @ implicit(x0, _t(LAM), eta), eta)[0]) == 0.0
    assert abs(float(torch.autograd.grad(c @ unrolled_solver(step, 30)(x0, _t(LAM), eta), eta)[0])) > 1e-3


def test_unrolled_derivative_equals_finite_differences_of_the_iterate(ridge):
    "The unrolled solver is differentiated exactly: d x_k/dλ matches central differences of x_k(λ) itself."
    x0, h = torch.zeros(ridge.X.shape[1], dtype=F64), 1e-5
    solver = unrolled_solver(ridge.step_map, 15)
    _, J = jvp(lambda l: solver(x0, l), (_t(LAM),), (_t(1.0),))
    fd = (solver(x0, _t(LAM + h)) - solver(x0, _t(LAM - h))) / (2 * h)
    assert float((fd - J).norm() / J.norm()) < 1e-7
    assert torch.equal(unrolled_solver(ridge.step_map, 500, tol=1e-3)(x0, _t(LAM)),
                       unrolled_solver(ridge.step_map, 500, tol=1e-3)(x0, _t(LAM)))


def test_prox_gradient_map_is_ista(lasso):
    soft = lambda v, eta, lam: v.sign() * (v.abs() - eta * lam).clamp_min(0)
    T = prox_gradient_map(lambda x, lam: 0.5 * (lasso.X @ x - lasso.y).pow(2).sum(), soft, 1 / lasso.lipschitz)
    x = torch.randn(lasso.X.shape[1], generator=as_generator(8), dtype=F64)
    torch.testing.assert_close(T(x, _t(20.0)), lasso.step_map(x, _t(20.0)), rtol=1e-13, atol=1e-13)


def test_explicit_hessians_equal_autodiff():
    _, obj, theta, w = _logistic()
    task = logistic_task(seed=0, device="cpu")
    torch.testing.assert_close(impl._logistic_hessian(w, theta, task.X, task.y), hessian(lambda z: obj(z, theta), w),
                               rtol=1e-10, atol=1e-12)
    X, _ = tiny_images(4, num_classes=4, noise=1.0, seed=0, device="cpu", dtype=F64)
    wc = 0.3 * torch.randn(impl._features(X[:1]).shape[1] * 4, generator=as_generator(9), dtype=F64)
    args = (X, torch.arange(4), 0.01, 4)
    torch.testing.assert_close(impl._classifier_hessian(wc, *args),
                               hessian(lambda z: impl._classifier_objective(z, *args), wc), rtol=1e-10, atol=1e-12)


def test_unconverged_linear_solve_warns(ridge):
    with pytest.warns(UserWarning, match="did not|stopped"):
        root_vjp(ridge.optimality, ridge.solution(LAM), (_t(LAM),), torch.ones(ridge.X.shape[1], dtype=F64),
                 max_iters=2)


def test_gradient_methods_match_autograd(ridge, lasso):
    x = torch.randn(ridge.X.shape[1], generator=as_generator(10), dtype=F64)
    for p in (ridge, lasso):
        torch.testing.assert_close(p.gradient(x, _t(2.0)), stationarity(p.objective)(x, _t(2.0)),
                                   rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- peer: TorchOpt's custom_root (test-only)
@pytest.mark.ref
def test_equals_torchopt_custom_root(ridge):
    "TorchOpt 0.7.3 custom_root + solve_cg gives the same hyper-gradients (scalar λ and per-feature θ), to 1e-8."
    require_ref("torchopt")
    from torchopt.diff.implicit import custom_root as torchopt_root
    from torchopt.linear_solve import solve_cg
    c = torch.randn(ridge.X.shape[1], generator=as_generator(11), dtype=F64)
    grads = []
    for dec in (custom_root(ridge.optimality, tol=1e-12),
                torchopt_root(ridge.optimality, argnums=1, solve=solve_cg(rtol=1e-12, maxiter=500))):
        lam = _t(LAM).requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torchopt calls the deprecated functorch.vjp
            grads.append(torch.autograd.grad(c @ dec(_exact(ridge))(None, lam), lam)[0])
    assert abs(float(grads[0] - grads[1])) < 1e-8 * abs(float(grads[0]))
    task, obj, theta, w = _logistic()
    solver = newton_solver(obj)
    out = []
    for dec in (custom_root(stationarity(obj), tol=1e-12),
                torchopt_root(stationarity(obj), argnums=1, solve=solve_cg(rtol=1e-12, maxiter=500))):
        th = theta.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            out.append(torch.autograd.grad(c @ dec(solver)(torch.zeros_like(w), th), th)[0])
    assert float((out[0] - out[1]).norm()) < 1e-8 * float(out[0].norm())


# ---------------------------------------------------------------- the chapter's findings, at small settings
@pytest.fixture(scope="module")
def precision():
    return compute_precision(ridge_problem(seed=3, device="cpu"), LAM, [1, 2, 4, 8, 16, 32, 64, 100, 140, 200])


def test_implicit_error_is_linear_in_the_iterate_error(precision):
    "Log-log slope within 0.1 of 1, error/distance bounded (factor < 3); unrolled: lower slope, ratio grows > 10×."
    assert isinstance(precision, Precision)
    assert abs(precision.slope("implicit") - 1) < 0.1
    assert precision.slope("unrolled") < precision.slope("implicit") - 0.1
    r_imp = precision.implicit_error / precision.distance
    r_unr = precision.unrolled_error / precision.distance
    assert r_imp.max() / r_imp.min() < 3 and r_unr[-1] / r_unr[0] > 10 and r_unr[-1] > r_unr[-2]


def test_memory_is_flat_for_implicit_and_linear_for_unrolled(precision):
    p, x_bytes = precision, 200 * 20 * 8
    assert p.implicit_bytes.min() == p.implicit_bytes.max() == 21 * 8  # x̂ (20 doubles) and λ
    many = p.ks >= 2
    slope, intercept = np.polyfit(p.ks[many], p.unrolled_bytes[many], 1)
    np.testing.assert_allclose(p.unrolled_bytes[many], slope * p.ks[many] + intercept, rtol=1e-6)
    assert slope > 100 and abs(intercept - x_bytes) < 0.05 * x_bytes


def test_hyperparameter_descent_lowers_validation_and_test_loss():
    "Seed 3, lr 100 (chosen on seeds 0–2 in the notebook), 30 steps: validation −20 %, test −10 %, noise θ higher."
    task = logistic_task(seed=3, device="cpu")
    run = tune_l2_weights(task, steps=30, lr=100.0)
    assert isinstance(run, TuningRun) and run.log_weights.shape == (31, 20)
    assert run.val_loss[-1] < 0.8 * run.val_loss[0] and run.test_loss[-1] < 0.9 * run.test_loss[0]
    theta = run.log_weights[-1]
    assert float(theta[~task.informative].mean() - theta[task.informative].mean()) > 1


def test_hypergradient_equals_finite_differences_of_validation_loss():
    "The outer gradient tune_l2_weights follows is the true one: central differences of L_val(w*(θ)) agree to 1e-6."
    task, obj, theta, w = _logistic(seed=2)
    import torch.nn.functional as F
    solver = custom_root(stationarity(obj))(newton_solver(obj))
    th = theta.clone().requires_grad_(True)
    val = lambda wv: F.binary_cross_entropy_with_logits(task.X_val @ wv, task.y_val)
    g = torch.autograd.grad(val(solver(torch.zeros_like(w), th)), th)[0]
    v, h = torch.randn(len(theta), generator=as_generator(12), dtype=F64), 1e-5
    fd = (val(newton_solver(obj)(torch.zeros_like(w), theta + h * v)) -
          val(newton_solver(obj)(torch.zeros_like(w), theta - h * v))) / (2 * h)
    assert abs(float(g @ v) - float(fd)) < 1e-6 * abs(float(fd))


def test_distilled_images_beat_random_real_ones():
    "Seed 3, 30 steps: the four learned images beat every one of 20 random one-per-class real sets on test images."
    X, y = tiny_images(400, num_classes=4, noise=1.0, seed=3, device="cpu", dtype=F64)
    Xt, yt = tiny_images(1000, num_classes=4, noise=1.0, seed=103, device="cpu", dtype=F64)
    d = distill_dataset(X, y, steps=30, lr=0.05, seed=3)
    assert isinstance(d, Distillation) and d.loss[-1] < 0.5 * d.loss[0]
    classes, g = torch.arange(4), as_generator(3)
    acc = classify_with_images(d.images, classes, Xt, yt)
    random = [classify_with_images(X[torch.stack([(y == c).nonzero().flatten()[torch.randint(100, (), generator=g)]
                                                  for c in range(4)])], classes, Xt, yt) for _ in range(20)]
    assert acc > max(random) and acc > classify_with_images(d.initial, classes, Xt, yt)


def test_distillation_gradient_equals_finite_differences():
    "The pixels' hyper-gradient through custom_root equals central differences of the outer loss, 1e-6."
    import torch.nn.functional as F
    X, y = tiny_images(40, num_classes=4, noise=1.0, seed=4, device="cpu", dtype=F64)
    S = X[:4].clone()
    def outer(images):
        W = impl._fit_classifier(images, torch.arange(4), 0.01, 4, differentiable=True)
        return F.cross_entropy(impl._features(X) @ W, y)
    Sl = S.clone().requires_grad_(True)
    g = torch.autograd.grad(outer(Sl), Sl)[0]
    v, h = torch.randn(S.shape, generator=as_generator(13), dtype=F64), 1e-5
    fd = (outer(S + h * v) - outer(S - h * v)) / (2 * h)
    assert abs(float((g * v).sum()) - float(fd)) < 1e-6 * abs(float(fd))


def test_lasso_path_is_piecewise_linear(lasso):
    path = compute_path(lasso, np.geomspace(2.0, 200.0, 16))
    assert isinstance(path, SolutionPath)
    S = path.solutions != 0
    change = (S[1:] != S[:-1]).any(1)
    jump = (path.implicit[1:] - path.implicit[:-1]).abs().max(1).values
    assert change.any() and (~change).any()
    assert float(jump[~change].max()) < 1e-8 and float(jump[change].min()) > 1e-4
    assert float((path.implicit - path.exact).abs().max()) < 1e-8


# ---------------------------------------------------------------- figures and explorer
def test_figures(ridge, precision):
    path = compute_path(ridge, [0.5, 1.0, 2.0, 4.0])
    assert isinstance(plot_path(path, coords=3, tangents=2, title="t"), Figure)
    assert isinstance(plot_precision(precision), Figure)
    task = logistic_task(seed=0, device="cpu")
    runs = [tune_l2_weights(task, steps=2, lr=10.0)]
    assert isinstance(plot_tuning(runs, [task.informative]), Figure)
    X, y = tiny_images(40, num_classes=4, noise=1.0, seed=0, device="cpu", dtype=F64)
    assert len(plot_distilled(distill_dataset(X, y, steps=1)).axes) == 8
    fig = jacobian_slider_figure(ridge, LAM, [1, 10])
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 5
    np.testing.assert_allclose(fig.data[0].y, ridge.jacobian(LAM).numpy())


def test_implicit_figure_and_explorer():
    cache = {}
    fig = implicit_figure(problem="ridge", lam=1.0, k=400, cache=cache)
    assert isinstance(fig, go.Figure) and fig.data[-1].name == "exact"
    p = cache["ridge"][0]
    np.testing.assert_allclose(fig.data[-1].y, p.jacobian(1.0).numpy())
    np.testing.assert_allclose(fig.data[-2].y, p.jacobian(1.0).numpy(), rtol=1e-6, atol=1e-9)  # converged: ≈ exact
    unrolled = implicit_figure(problem="lasso", lam=30.0, k=5, mode="unrolled", solve="gmres", cache=cache)
    assert "lasso" in unrolled.layout.title.text and {"ridge", "lasso", ("lasso", 30.0)} <= set(cache)
    ex = explore_implicit(cache)
    a = ex.update(k=20)
    assert ex.update(k=20) is a and ex.update(k=25) is not a
    with pytest.raises(ValueError, match="`mode`"): ex.update(mode="both")


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    p = ridge_problem(seed=0, device=device)
    lam = torch.tensor(LAM, dtype=F64, device=device, requires_grad=True)
    x = custom_root(p.optimality)(_exact(p))(None, lam)
    (g,) = torch.autograd.grad(x.sum(), lam)
    assert x.device.type == device and g.device.type == device
    task = logistic_task(seed=0, device=device)
    assert tune_l2_weights(task, steps=1).log_weights.device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_R = ridge_problem(n=30, d=5, seed=0, device="cpu")
_X0 = _R.solution(1.0)
_L1 = torch.tensor(1.0, dtype=F64)
_F = _R.optimality
_TASK = logistic_task(n_train=20, n_val=20, n_test=20, d=5, informative=2, seed=0, device="cpu")
_IMG, _IMG_Y = tiny_images(16, num_classes=4, noise=1.0, seed=0, device="cpu", dtype=F64)
_PREC = Precision(np.array([1, 2]), np.array([1.0, 0.5]), np.array([0.1, 0.05]), np.array([0.1, 0.08]),
                  np.array([168.0, 168.0]), np.array([300.0, 600.0]), 1.0)
_PATH = compute_path(_R, [0.5, 1.0])
_RUN = TuningRun(torch.zeros(2, 5, dtype=F64), np.array([0.5, 0.4]), np.array([0.5, 0.45]))
_DIST = Distillation(_IMG[:4], _IMG[:4], np.array([1.0, 0.5]), 0.01)
_CACHE: dict = {}
_BAD_FN = [3, "f"]

PROBES = [
    Probe(root_vjp, dict(optimality_fn=_F, x=_X0, params=(_L1,), cotangent=torch.ones(5, dtype=F64)),
          dict(optimality_fn=_BAD_FN, x=["x", _X0.long(), torch.full_like(_X0, NAN)], params=[_L1, "p"],
               cotangent=[torch.ones(4, dtype=F64), "w", torch.full_like(_X0, INF)], solve=[UNKNOWN],
               tol=[0.0, -1.0, NAN], max_iters=SIZES)),
    Probe(root_jvp, dict(optimality_fn=_F, x=_X0, params=(_L1,), tangents=(torch.ones((), dtype=F64),)),
          dict(optimality_fn=_BAD_FN, x=["x", _X0.long()], params=[_L1, "p"],
               tangents=["t", (), (torch.ones(2, dtype=F64),), (torch.full((), NAN, dtype=F64),)],
               solve=[UNKNOWN], tol=[0.0, NAN], max_iters=SIZES)),
    Probe(custom_root, dict(optimality_fn=_F), dict(optimality_fn=_BAD_FN, solve=[UNKNOWN], tol=[0.0, NAN, "t"],
                                                   max_iters=SIZES)),
    Probe(custom_fixed_point, dict(map_fn=_R.step_map), dict(map_fn=_BAD_FN, solve=[UNKNOWN], tol=[-1.0, INF],
                                                            max_iters=SIZES)),
    Probe(stationarity, dict(objective=_R.objective), dict(objective=_BAD_FN)),
    Probe(prox_gradient_map, dict(objective=_R.objective, prox=lambda v, eta, lam: v, step=0.1),
          dict(objective=_BAD_FN, prox=_BAD_FN, step=[0.0, -1.0, NAN, "s"])),
    Probe(unrolled_solver, dict(map_fn=_R.step_map, num_steps=3),
          dict(map_fn=_BAD_FN, num_steps=[-1, 0.5], tol=[-1.0, NAN])),
    Probe(newton_solver, dict(objective=_R.objective),
          dict(objective=_BAD_FN, tol=[0.0, NAN], max_iters=SIZES, hessian_fn=_BAD_FN)),
    Probe(ridge_problem, dict(n=10, d=3, device="cpu"),
          dict(n=SIZES, d=SIZES, condition=[0.5, NAN], noise=[-1.0, NAN], seed=[-1, 0.5], device=[UNKNOWN, 3],
               dtype=[torch.long, "float"])),
    Probe(lasso_problem, dict(n=10, d=3, informative=2, device="cpu"),
          dict(n=SIZES, d=SIZES, informative=[0, 4], noise=[-1.0, INF], seed=[-1, 0.5], device=[UNKNOWN],
               dtype=[torch.int32])),
    Probe(compute_precision, dict(problem=_R, lam=1.0, ks=[1], memory=False),
          dict(problem=["p", _TASK], lam=[0.0, -1.0, NAN, "l"], ks=[[], [-1], 3, [0.5]], solve=[UNKNOWN],
               tol=[0.0], memory=["yes"], progress=["bar"])),
    Probe(compute_path, dict(problem=_R, lams=[1.0]),
          dict(problem=["p"], lams=[[], [-1.0], 3.0, ["l"]], solve=[UNKNOWN], tol=[0.0, NAN], progress=["bar"])),
    Probe(logistic_task, dict(n_train=5, n_val=5, n_test=5, d=3, informative=1, device="cpu"),
          dict(n_train=SIZES, n_val=SIZES, n_test=SIZES, d=SIZES, informative=[0, 4], signal=[-1.0, NAN],
               seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(tune_l2_weights, dict(task=_TASK, steps=1),
          dict(task=["t", _R], steps=[-1, 0.5], lr=[0.0, -1.0, NAN], init=[NAN, "x"], solve=[UNKNOWN],
               device=[UNKNOWN], progress=["bar"])),
    Probe(classify_with_images, dict(images=_IMG[:4], labels=_IMG_Y[:4], X=_IMG, y=_IMG_Y),
          dict(images=[_IMG[0], _IMG.long()[:4], "i", torch.full_like(_IMG[:4], NAN)],
               labels=[_IMG_Y[:3], _IMG_Y[:4].double(), "l"], X=[_IMG[0], "X", _IMG[:, :, :4]],
               y=[_IMG_Y[:-1], _IMG_Y.double()], reg=[0.0, NAN], num_classes=[1, 0.5])),
    Probe(distill_dataset, dict(X=_IMG, y=_IMG_Y, steps=0),
          dict(X=[_IMG[0], "X", _IMG.long()], y=[_IMG_Y[:-1], _IMG_Y.double(), "y"], steps=[-1, 0.5],
               lr=[0.0, NAN], reg=[0.0, -1.0], seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(plot_path, dict(path=_PATH), dict(path=["p", _PREC], coords=SIZES, tangents=[-1, 0.5])),
    Probe(plot_precision, dict(precision=_PREC), dict(precision=["p", _PATH])),
    Probe(plot_tuning, dict(runs=[_RUN]), dict(runs=[[], ["r"], "r"], informative=[[_TASK.informative] * 2])),
    Probe(plot_distilled, dict(distillation=_DIST), dict(distillation=["d", _RUN])),
    Probe(jacobian_slider_figure, dict(problem=_R, lam=1.0, ks=[1]),
          dict(problem=["p"], lam=[0.0, NAN], ks=[[], [-1], 3], solve=[UNKNOWN])),
    Probe(implicit_figure, dict(problem="ridge", k=2, cache=_CACHE),
          dict(problem=[UNKNOWN, 3], lam=[0.0, NAN, "l"], k=[-1, 0.5], inner_tol=[-1.0, NAN], solve=[UNKNOWN],
               mode=[UNKNOWN], cache=["c", 3])),
    Probe(explore_implicit, dict(cache=None), dict(cache=["c", 3])),
]
UNPROBED: dict = {}
