"""Reference tests for gradviz.dynamics.drift: modified flows of gradient descent, games and drift-adjusted steps."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from scipy.linalg import expm

import reference as ref
from gradviz.autodiff import flat_objective
from gradviz.data import mlp, teacher_student
from gradviz.dynamics.drift import (
    DAL_RUNS, FLOWS, LANDSCAPES, FlowPath, GDRun, LandscapeGrid, Streamlines, coefficient_figure, dal_comparison, dal_lr,
    drift_figure, drift_slider_figure, explore_drift, fit_order, flow_trajectories, game_field, game_gd_path,
    game_gradient, gd_path, grid_derivatives, grid_flow, igr_field, integrate_flow, interaction_terms, local_errors,
    modified_loss, ngf_field, pf_coefficient, plot_dal, plot_games, plot_orders, principal_flow_field, run_gd,
    streamlines, three_flows_figure)
from gradviz.viz import Explorer

D = torch.float64


def random_spd(p, lam_min, lam_max, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=D))
    return Q @ torch.diag(torch.linspace(lam_min, lam_max, p, dtype=D)) @ Q.T


def quadratic(A, b=None):
    b = torch.zeros(A.shape[0], dtype=D) if b is None else b
    return lambda th: 0.5 * th @ A @ th - b @ th


def valley(th):
    x, y = th[0], th[1]
    return 0.5 * (x * y - 1) ** 2 + 0.1 * x ** 4


def bilinear1(z): return z[0] * z[1]
def bilinear2(z): return -z[0] * z[1]


# ---------- flows and GD ----------

def test_ngf_and_gd_on_a_quadratic_with_linear_term():
    A, b = random_spd(4, 0.5, 3.0, seed=1), torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=D)
    E, th = quadratic(A, b), torch.tensor([0.3, 0.1, -0.2, 1.0], dtype=D)
    torch.testing.assert_close(ngf_field(E)(th), -(A @ th - b), rtol=0, atol=1e-13)
    path = gd_path(E, th, 0.2, 7)
    ref = th.clone()
    for _ in range(7): ref = ref - 0.2 * (A @ ref - b)
    assert path.shape == (8, 4)
    torch.testing.assert_close(path[-1], ref, rtol=0, atol=1e-13)


def test_integrate_flow_matches_the_matrix_exponential():
    A = random_spd(3, 0.2, 4.0, seed=2)
    th = torch.tensor([1.0, -0.5, 2.0], dtype=D)
    sol = integrate_flow(ngf_field(quadratic(A)), th, 1.5, t_eval=[0.0, 0.5, 1.5])
    assert isinstance(sol, FlowPath) and sol.complete and sol.theta.dtype == D
    for t, state in zip(sol.t, sol.theta):
        np.testing.assert_allclose(state.numpy(), expm(-A.numpy() * t) @ th.numpy(), rtol=0, atol=1e-9)


def test_integrate_flow_complex_state_and_budget():
    sol = integrate_flow(lambda z: 1j * z, torch.tensor([1.0], dtype=D), math.pi, t_eval=[math.pi])  # z' = iz
    assert sol.theta.is_complex()
    torch.testing.assert_close(sol.theta[-1], torch.tensor([-1.0 + 0j], dtype=torch.complex128), rtol=0, atol=1e-9)
    short = integrate_flow(lambda z: 1j * z, torch.tensor([1.0], dtype=D), 100.0, t_eval=np.linspace(0, 100, 101), max_evals=50)
    assert not short.complete and short.nfev < 80 and len(short.t) < 101


def test_integrate_flow_bad_input():
    f = ngf_field(valley)
    th = torch.tensor([1.0, 1.0], dtype=D)
    with pytest.raises(TypeError, match="`field`"): integrate_flow(3, th, 1.0)
    with pytest.raises(ValueError, match="`t_end`"): integrate_flow(f, th, 0.0)
    with pytest.raises(ValueError, match="`method`"): integrate_flow(f, th, 1.0, method="LSODA")
    with pytest.raises(ValueError, match="`t_eval`"): integrate_flow(f, th, 1.0, t_eval=[0.0, 2.0])
    with pytest.raises(ValueError, match="`max_evals`"): integrate_flow(f, th, 1.0, max_evals=0)
    with pytest.raises(TypeError, match="`theta0`"): integrate_flow(f, torch.tensor([1, 2]), 1.0)


def test_gd_path_bad_input():
    th = torch.tensor([1.0, 1.0], dtype=D)
    with pytest.raises(TypeError, match="`E`"): gd_path("E", th, 0.1, 3)
    with pytest.raises(ValueError, match="`h`"): gd_path(valley, th, 0.0, 3)
    with pytest.raises(ValueError, match="`steps`"): gd_path(valley, th, 0.1, -1)
    with pytest.raises(ValueError, match="`theta0`"): gd_path(valley, torch.ones(2, 2, dtype=D), 0.1, 3)
    with pytest.raises(TypeError, match="`E`"): ngf_field(None)


# ---------- IGR ----------

def _igr_by_autograd(E, theta, h):
    x = theta.clone().requires_grad_(True)
    g, = torch.autograd.grad(E(x), x, create_graph=True)
    return -torch.autograd.grad(E(x) + h / 4 * g.dot(g), x)[0]


def test_igr_field_is_the_gradient_of_the_modified_loss_on_a_network():
    X, y, _ = teacher_student(n=12, dim=3, hidden=(4,), noise=0.0, seed=5, dtype=D, device="cpu")
    f, th = flat_objective(mlp([3, 4, 1], "tanh", seed=3, dtype=D, device="cpu"), lambda o, t: 0.5 * (o - t).square().mean(), X, y)
    for h in (0.05, 0.5):
        torch.testing.assert_close(igr_field(f, h)(th), _igr_by_autograd(f, th, h), rtol=0, atol=1e-8)
    g = torch.func.grad(f)(th)
    assert abs(float(modified_loss(f, 0.2)(th)) - float(f(th) + 0.05 * g @ g)) < 1e-14


def test_igr_field_closed_form_on_a_quadratic():
    A = random_spd(3, 0.5, 2.0, seed=4)
    th = torch.tensor([0.2, -1.0, 0.7], dtype=D)
    torch.testing.assert_close(igr_field(quadratic(A), 0.3)(th), -(A @ th + 0.15 * A @ A @ th), rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="`h`"): igr_field(valley, -0.1)


# ---------- principal flow ----------

def test_pf_coefficient_series_and_branches():
    x = torch.linspace(-0.89, 0.89, 57, dtype=D)
    series = -sum(x ** p / (p + 1) for p in range(400))
    torch.testing.assert_close(pf_coefficient(x), series.to(torch.complex128), rtol=0, atol=1e-12)
    c = pf_coefficient(torch.tensor([1.5, 2.5], dtype=D))
    np.testing.assert_allclose(c.numpy(), np.log(1 - np.array([1.5, 2.5]) + 0j) / np.array([1.5, 2.5]), atol=1e-15)
    assert c.real[0] < 0 < c.real[1]
    np.testing.assert_allclose(c.imag.numpy(), math.pi / np.array([1.5, 2.5]), atol=1e-15)
    assert pf_coefficient(1.0).real.item() == -math.inf
    assert abs(pf_coefficient(1e-7).real.item() + 1) < 1e-7
    with pytest.raises(TypeError, match="`x`"): pf_coefficient(torch.tensor([1 + 1j]))


@pytest.mark.parametrize("h_lam_max", [0.5, 1.5, 1.9, 2.2])
def test_principal_flow_is_exact_on_quadratics(h_lam_max):
    A = random_spd(4, 1.0, 4.0, seed=7)
    h, n = h_lam_max / 4.0, 10
    E, th = quadratic(A), torch.tensor([0.5, -1.0, 0.25, 1.0], dtype=D)
    gd = gd_path(E, th, h, n)
    pf = integrate_flow(principal_flow_field(E, h), th, n * h, t_eval=np.arange(n + 1) * h)
    assert float((pf.theta - gd).abs().max()) < 1e-8
    lam, U = np.linalg.eigh(A.numpy())  # and the closed form c_i(t) = (1 − hλ_i)^{t/h} c_i(0)
    closed = U @ (np.power((1 - h * lam).astype(complex), n) * (U.T @ th.numpy()))
    np.testing.assert_allclose(pf.theta[-1].numpy(), closed, atol=1e-8)


def test_principal_flow_real_point_matches_numpy_eigendecomposition():
    th = torch.tensor([1.5, 0.3], dtype=D)
    H, g = ref.dense_hessian(valley, th).numpy(), ref.fd_gradient(valley, th).numpy()
    lam, U = np.linalg.eigh(H)
    h = 0.6
    expected = U @ (np.log(1 - h * lam + 0j) / (h * lam) * (U.T @ g))
    np.testing.assert_allclose(principal_flow_field(valley, h)(th).numpy(), expected, atol=1e-8)


def test_principal_flow_agrees_with_igr_to_second_order():
    th = torch.tensor([1.5, 0.3], dtype=D)
    gaps = [float((principal_flow_field(valley, h)(th).real - igr_field(valley, h)(th)).norm()) for h in (0.02, 0.01)]
    assert abs(gaps[0] / gaps[1] - 4) < 0.2
    with pytest.raises(ValueError, match="`h`"): principal_flow_field(valley, 0.0)


# ---------- local errors ----------

def test_local_error_orders():
    errs = local_errors(valley, torch.tensor([1.5, 0.3], dtype=D), [0.1, 0.05, 0.025, 0.0125])
    assert abs(fit_order(errs["h"], errs["ngf"]) - 2) < 0.2
    assert abs(fit_order(errs["h"], errs["igr"]) - 3) < 0.2
    assert fit_order([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="`hs`"): fit_order([1.0], [1.0])
    with pytest.raises(ValueError, match="`hs`"): local_errors(valley, torch.tensor([1.5, 0.3], dtype=D), [0.1])


# ---------- games ----------

def test_game_fields_on_the_bilinear_game():
    z = torch.tensor([0.7, -0.4], dtype=D)
    x, y, h = 0.7, -0.4, 0.2
    torch.testing.assert_close(game_gradient(bilinear1, bilinear2, 1)(z), torch.tensor([y, -x], dtype=D))
    torch.testing.assert_close(game_field(bilinear1, bilinear2, 1)(z), torch.tensor([-y, x], dtype=D))
    torch.testing.assert_close(game_field(bilinear1, bilinear2, 1, h)(z), torch.tensor([-y + h / 2 * x, x + h / 2 * y], dtype=D))
    torch.testing.assert_close(game_field(bilinear1, bilinear2, 1, h, "alternating")(z), torch.tensor([-y + h / 2 * x, x - h / 2 * y], dtype=D))
    torch.testing.assert_close(game_field(bilinear1, bilinear2, 1, h, interaction=0.0)(z), torch.tensor([-y, x], dtype=D))
    c_phi, c_psi = interaction_terms(bilinear1, bilinear2, 1, z)
    torch.testing.assert_close(c_phi, torch.tensor([-x], dtype=D)); torch.testing.assert_close(c_psi, torch.tensor([-y], dtype=D))


def test_game_with_a_shared_loss_is_igr():
    E = quadratic(random_spd(4, 0.5, 2.0, seed=9))
    z = torch.tensor([0.1, 0.2, -0.3, 0.4], dtype=D)
    torch.testing.assert_close(game_field(E, E, 2, 0.3)(z), igr_field(E, 0.3)(z), rtol=0, atol=1e-13)
    torch.testing.assert_close(game_gd_path(E, E, z, 2, 0.3, 5), gd_path(E, z, 0.3, 5), rtol=0, atol=1e-13)


def test_alternating_gd_modified_flow_is_second_order_accurate():
    "One alternating step follows the alternating modified flow to O(h³), and the simultaneous one only to O(h²)."
    L1 = lambda z: 0.5 * z[0] ** 2 * (1 + z[1] ** 2) + z[0] * z[1]
    L2 = lambda z: 0.5 * z[1] ** 2 + 0.3 * z[0] * z[1] ** 2
    z = torch.tensor([0.8, -0.5], dtype=D)
    hs = [0.08, 0.04, 0.02, 0.01]
    e_alt, e_sim = [], []
    for h in hs:
        step = game_gd_path(L1, L2, z, 1, h, 1, "alternating")[-1]
        e_alt.append(float((integrate_flow(game_field(L1, L2, 1, h, "alternating"), z, h).theta[-1] - step).norm()))
        e_sim.append(float((integrate_flow(game_field(L1, L2, 1, h, "simultaneous"), z, h).theta[-1] - step).norm()))
    assert abs(fit_order(hs, e_alt) - 3) < 0.2 and abs(fit_order(hs, e_sim) - 2) < 0.2


@pytest.mark.parametrize("h", [0.05, 0.1, 0.5])
def test_bilinear_game_growth_rates(h):
    z0 = torch.tensor([1.0, 0.0], dtype=D)
    r = game_gd_path(bilinear1, bilinear2, z0, 1, h, 20).norm(dim=1)
    torch.testing.assert_close(r[1:] / r[:-1], torch.full((20,), math.sqrt(1 + h * h), dtype=D), rtol=0, atol=1e-13)
    M = torch.stack([game_gd_path(bilinear1, bilinear2, e, 1, h, 1, "alternating")[1] for e in torch.eye(2, dtype=D)], 1)
    torch.testing.assert_close(M, torch.tensor([[1, -h], [h, 1 - h * h]], dtype=D), rtol=0, atol=1e-15)
    alt = game_gd_path(bilinear1, bilinear2, z0, 1, h, 400, "alternating")
    invariant = alt[:, 0] ** 2 + alt[:, 1] ** 2 - h * alt[:, 0] * alt[:, 1]  # conserved exactly: a bounded ellipse
    torch.testing.assert_close(invariant, torch.ones(401, dtype=D), rtol=0, atol=1e-12)
    assert float(alt.norm(dim=1).max()) <= 1 / math.sqrt(1 - h / 2) + 1e-12
    c = game_gd_path(bilinear1, bilinear2, z0, 1, h, 10, cancel_interaction=1.0).norm(dim=1)
    torch.testing.assert_close(c[1:] / c[:-1], torch.full((10,), math.sqrt(1 + h ** 4 / 4), dtype=D), rtol=0, atol=1e-13)


def test_game_bad_input():
    z = torch.tensor([1.0, 0.0], dtype=D)
    with pytest.raises(ValueError, match="`mode`"): game_field(bilinear1, bilinear2, 1, 0.1, "sequential")
    with pytest.raises(ValueError, match="`split`"): game_gd_path(bilinear1, bilinear2, z, 2, 0.1, 3)
    with pytest.raises(ValueError, match="`split`"): interaction_terms(bilinear1, bilinear2, 0, z)
    with pytest.raises(TypeError, match="`L2`"): game_gradient(bilinear1, 5, 1)
    with pytest.raises(ValueError, match="`h`"): game_gd_path(bilinear1, bilinear2, z, 1, 0.0, 3)


# ---------- DAL ----------

def test_dal_lr_on_eigenvectors_and_against_finite_differences():
    A = random_spd(5, 0.5, 8.0, seed=11)
    lam, U = torch.linalg.eigh(A)
    E = quadratic(A)
    for i in (0, 4):
        assert dal_lr(E, U[:, i].clone()) == pytest.approx(2 / float(lam[i]), rel=1e-12)
        assert dal_lr(E, U[:, i].clone(), c=1.0, power=2.0) == pytest.approx(1 / float(lam[i]) ** 2, rel=1e-12)
    assert dal_lr(E, U[:, 0].clone(), max_lr=0.5) == 0.5
    th = torch.tensor([1.5, 0.3], dtype=D)  # the authors' code can estimate H·g by a finite difference of gradients
    g = torch.func.grad(valley)(th)
    eps = 1e-6 / float(g.norm())
    hg = (torch.func.grad(valley)(th + eps * g) - torch.func.grad(valley)(th - eps * g)) / (2 * eps)
    assert dal_lr(valley, th) == pytest.approx(2 * float(g.norm()) / float(hg.norm()), rel=1e-7)


def test_dal_lr_bad_input():
    E = quadratic(torch.eye(2, dtype=D))
    with pytest.raises(ValueError, match="`max_lr`"): dal_lr(E, torch.zeros(2, dtype=D))
    assert dal_lr(E, torch.zeros(2, dtype=D), max_lr=3.0) == 3.0
    with pytest.raises(ValueError, match="`c`"): dal_lr(E, torch.ones(2, dtype=D), c=0.0)
    with pytest.raises(ValueError, match="`power`"): dal_lr(E, torch.ones(2, dtype=D), power=-1.0)
    with pytest.raises(TypeError, match="`theta`"): dal_lr(E, torch.ones(2, dtype=torch.int64))


# ---------- run_gd ----------

def test_run_gd_fixed_matches_gd_path_and_records_sharpness():
    A = random_spd(4, 0.5, 3.0, seed=13)
    E, th = quadratic(A), torch.tensor([1.0, 0.5, -0.5, 0.2], dtype=D)
    run = run_gd(E, th, 12, lr=0.3, record_every=5)
    assert isinstance(run, GDRun) and not run.diverged
    torch.testing.assert_close(run.theta, gd_path(E, th, 0.3, 12)[-1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(run.loss, [float(E(p)) for p in gd_path(E, th, 0.3, 12)], atol=1e-13)
    np.testing.assert_array_equal(run.sharpness_steps, [0, 5, 10, 12])
    np.testing.assert_allclose(run.sharpness, 3.0, atol=1e-8)
    np.testing.assert_allclose(run.lr, 0.3)


def test_run_gd_dal_and_divergence():
    A = torch.diag(torch.tensor([1.0, 4.0], dtype=D))
    E = quadratic(A)
    dal = run_gd(E, torch.tensor([0.0, 1.0], dtype=D), 3, rule="dal", record_every=1)
    np.testing.assert_allclose(dal.lr, 0.5, atol=1e-12)
    div = run_gd(E, torch.tensor([1.0, 1.0], dtype=D), 200, lr=1.0)
    assert div.diverged and len(div.loss) < 201
    with pytest.raises(ValueError, match="`rule`"): run_gd(E, torch.ones(2, dtype=D), 3, rule="adam")
    with pytest.raises(ValueError, match="`steps`"): run_gd(E, torch.ones(2, dtype=D), 0)
    with pytest.raises(ValueError, match="`lr`"): run_gd(E, torch.ones(2, dtype=D), 3, lr=0.0)


def test_run_gd_seed_takes_an_int_or_a_generator():
    A = random_spd(4, 0.5, 3.0, seed=13)
    E, th = quadratic(A), torch.tensor([1.0, 0.5, -0.5, 0.2], dtype=D)
    a, b = run_gd(E, th, 6, lr=0.3, record_every=3, seed=5), run_gd(E, th, 6, lr=0.3, record_every=3, seed=5)
    np.testing.assert_array_equal(a.sharpness, b.sharpness)
    g = run_gd(E, th, 6, lr=0.3, record_every=3, seed=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(g.sharpness, 3.0, atol=1e-8)
    with pytest.raises(TypeError, match="`seed`"): run_gd(E, th, 3, seed=1.5)


# ---------- the figures' machinery ----------

def test_grid_derivatives_match_reference_hessians_and_gradients():
    grid = grid_derivatives("valley", n=11)
    assert isinstance(grid, LandscapeGrid) and grid.n == 11 and grid.E.shape == (11, 11)
    P = grid.points()
    for i in (0, 37, 120):
        torch.testing.assert_close(grid.J[i], ref.dense_hessian(valley, P[i]), rtol=0, atol=1e-10)
        torch.testing.assert_close(grid.F[i], ref.fd_gradient(valley, P[i]), rtol=0, atol=1e-7)
    game = grid_derivatives("bilinear game", n=5)  # F = (∂ₓ xy, ∂ᵧ(−xy)) = (y, −x)
    torch.testing.assert_close(game.F, torch.stack([game.points()[:, 1], -game.points()[:, 0]], 1))
    with pytest.raises(ValueError, match="`landscape`"): grid_derivatives("ridge")
    with pytest.raises(ValueError, match="`n`"): grid_derivatives("valley", n=1)


@pytest.mark.parametrize("flow", FLOWS)
def test_grid_flow_matches_the_single_point_fields(flow):
    grid = grid_derivatives("valley", n=9)
    U, V = grid_flow(grid, flow, 0.4)
    field = {"NGF": ngf_field(valley), "IGR": igr_field(valley, 0.4), "PF": lambda z: principal_flow_field(valley, 0.4)(z).real}[flow]
    for i in (3, 40, 77):
        torch.testing.assert_close(torch.tensor([U.reshape(-1)[i], V.reshape(-1)[i]]), field(grid.points()[i]), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="`flow`"): grid_flow(grid, "GD", 0.4)
    with pytest.raises(ValueError, match="`mode`"): grid_flow(grid, "IGR", 0.4, mode="sequential")
    with pytest.raises(TypeError, match="`grid`"): grid_flow({"F": 1}, "NGF", 0.4)


def test_streamlines_follow_a_rotation():
    xs = ys = np.linspace(-1, 1, 21)
    X, Y = np.meshgrid(xs, ys)
    s = streamlines(xs, ys, -Y, X, seeds=4, steps=10)  # circles around the origin, anticlockwise
    assert isinstance(s, Streamlines) and np.isnan(s.x).sum() == len(s.heads) > 0
    ok = ~np.isnan(s.x)
    r = np.hypot(s.x[ok], s.y[ok])
    assert r.min() > 0.05
    for a, b in s.heads:  # the cross product of position and heading is positive: anticlockwise
        assert a[0] * (b[1] - a[1]) - a[1] * (b[0] - a[0]) > 0
    with pytest.raises(ValueError, match="`seeds`"): streamlines(xs, ys, -Y, X, seeds=0)
    with pytest.raises(ValueError, match="`step_size`"): streamlines(xs, ys, -Y, X, step_size=0.0)


def test_flow_trajectories_pf_goes_through_gd_and_is_cached():
    start = LANDSCAPES["quadratic"].start
    paths = flow_trajectories("quadratic", 0.3, start, 6, flows=("PF", "NGF"))
    np.testing.assert_allclose(paths["PF"][::12], paths["GD"], atol=1e-5)
    assert paths["NGF"].shape == (25, 2) and not paths["GD"].flags.writeable
    assert flow_trajectories("quadratic", 0.3, start, 6, flows=("PF",))["PF"] is paths["PF"]
    assert set(flow_trajectories("bilinear game", 0.2, (1.0, 0.0), 4)) == {"GD", "NGF", "IGR"}
    assert set(flow_trajectories("valley", 0.3, (1.5, 0.3), 4, mode="alternating")) == {"GD", "NGF", "IGR"}
    with pytest.raises(ValueError, match="`start`"): flow_trajectories("valley", 0.3, (1.0,), 4)
    with pytest.raises(ValueError, match="`flows`"): flow_trajectories("valley", 0.3, (1.5, 0.3), 4, flows=("GD",))
    with pytest.raises(ValueError, match="`h`"): flow_trajectories("valley", 0.0, (1.5, 0.3), 4)


# ---------- figures and the explorer ----------

def test_plot_orders():
    errs = local_errors(valley, torch.tensor([1.5, 0.3], dtype=D), [0.1, 0.05, 0.025])
    fig = plot_orders(errs, title="orders")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) == 4
    with pytest.raises(ValueError, match="`errs`"): plot_orders({"h": errs["h"]})
    with pytest.raises(TypeError, match="`errs`"): plot_orders([1, 2])


def test_three_flows_and_coefficient_figures():
    fig = three_flows_figure("quadratic", 0.3, 3)
    assert isinstance(fig, go.Figure) and len(fig.data) == 15  # per panel: contour, streamlines, arrows, GD, flow
    assert "hλ_max = 1.8" in fig.layout.title.text
    assert three_flows_figure("quadratic", 0.2, 3).data[1].x.tolist() != fig.data[1].x.tolist()
    with pytest.raises(ValueError, match="`landscape`"): three_flows_figure("bilinear game")
    assert len(coefficient_figure([0.3, 1.8]).data) == 4 and len(coefficient_figure().data) == 2
    with pytest.raises(TypeError, match=r"`hl\[0\]`"): coefficient_figure(["a"])


def test_drift_figure_and_slider():
    fig = drift_figure("quadratic", h=0.3, steps=4)
    names = [t.name for t in fig.data]
    assert isinstance(fig, go.Figure) and {"NGF flow", "IGR flow", "PF flow (real part)", "GD iterates"} <= set(names)
    fewer = drift_figure("quadratic", h=0.3, steps=4, igr=False, pf=False)
    assert len(fewer.data) == len(fig.data) - 2
    assert "PF flow (real part)" not in {t.name for t in drift_figure("bilinear game", h=0.2, x0=1.0, y0=0.0, steps=3).data}
    with pytest.raises(ValueError, match="`stream`"): drift_figure(stream="GD")
    with pytest.raises(ValueError, match="`landscape`"): drift_figure("ridge")
    sl = drift_slider_figure((0.1, 0.3), steps=3, active=1)
    assert isinstance(sl, go.Figure) and len(sl.layout.sliders[0].steps) == 2 and sl.layout.height == 520
    with pytest.raises(ValueError, match=r"`hs\[0\]`"): drift_slider_figure((0.0, 0.3))


def test_explore_drift_updates():
    ex = explore_drift()
    assert isinstance(ex, Explorer) and set(ex.controls) >= {"landscape", "h", "x0", "y0", "stream", "mode"}
    a = ex.update(h=0.1)
    b = ex.update(h=0.2)
    assert isinstance(a, go.Figure) and a is not b and a.data[-1].x != b.data[-1].x
    assert ex.update(igr=False) is not b


def test_games_and_dal_figures():
    fig = plot_games(h=0.2, steps=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="`h`"): plot_games(h=0.0)
    runs = dal_comparison({k: DAL_RUNS[k] for k in ("fixed h = 0.5", "DAL, p = 1")}, hidden=(8,), n=16, steps=30,
                          record_every=10, device="cpu")
    assert set(runs) == {"fixed h = 0.5", "DAL, p = 1"} and all(isinstance(r, GDRun) for r in runs.values())
    assert len(runs["fixed h = 0.5"].loss) == 31 and runs["fixed h = 0.5"].loss[-1] < runs["fixed h = 0.5"].loss[0]
    again = dal_comparison({"fixed h = 0.5": DAL_RUNS["fixed h = 0.5"]}, hidden=(8,), n=16, steps=30, record_every=10, device="cpu")
    np.testing.assert_array_equal(again["fixed h = 0.5"].loss, runs["fixed h = 0.5"].loss)
    fig = plot_dal(runs, title=None)
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="`runs`"): plot_dal({})
    with pytest.raises(TypeError, match="`runs`"): dal_comparison([("a", {})])


def test_dal_claim_catapult_edge_of_stability_and_no_spikes():
    runs = dal_comparison({k: DAL_RUNS[k] for k in ("fixed h = 1.0", "fixed h = 0.5", "DAL, p = 2")}, steps=150,
                          record_every=25, device="cpu")
    f1, f05, d2 = runs["fixed h = 1.0"], runs["fixed h = 0.5"], runs["DAL, p = 2"]
    jumps = f1.loss[1:] / f1.loss[:-1]
    assert f1.sharpness[0] > 2.0 and jumps.max() > 3 and int(np.argmax(jumps)) < 5  # the catapult, at the start
    assert np.all(np.abs(f1.sharpness[1:] - 2.0) < 0.15)  # then the sharpness sits at 2/h
    assert np.all(np.diff(f05.loss) <= 0) and np.all(np.diff(d2.loss) <= 0)  # no increase at all
    assert d2.sharpness[1:].min() > 2 / d2.lr.mean() and d2.lr.max() == 5.0 and d2.lr.min() < 0.3


# ---------- bad-input probes ----------

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402


def _half_square(th): return 0.5 * (th ** 2).sum()


_TH = torch.tensor([1.0, -0.5], dtype=D)
_BAD_TH = [torch.tensor([NAN, 1.0], dtype=D), torch.ones(2, 2, dtype=D), torch.ones(2, dtype=torch.long), "theta"]
_POS = [0.0, -1.0, NAN, INF]
_ERRS = dict(h=np.array([0.1, 0.05]), ngf=np.array([1e-2, 2.5e-3]), igr=np.array([1e-3, 1.25e-4]))
_GRID = grid_derivatives("valley", 5)
_XS = np.linspace(0, 1, 5)
_GDRUN = run_gd(_half_square, _TH, 2)

PROBES = [
    Probe(ngf_field, dict(E=_half_square), dict(E=["E", None])),
    Probe(gd_path, dict(E=_half_square, theta0=_TH, h=0.1, steps=3),
          dict(E=["E"], theta0=_BAD_TH, h=_POS, steps=[-1, 1.5])),
    Probe(integrate_flow, dict(field=ngf_field(_half_square), theta0=_TH, t_end=0.5),
          dict(field=["f"], theta0=_BAD_TH[:2], t_end=_POS, t_eval=[[2.0], [[0.1]], [NAN], []], rtol=_POS, atol=_POS,
               method=[UNKNOWN], max_evals=SIZES)),
    Probe(modified_loss, dict(E=_half_square, h=0.1), dict(E=["E"], h=[-1.0, NAN])),
    Probe(igr_field, dict(E=_half_square, h=0.1), dict(E=["E"], h=[-1.0, NAN])),
    Probe(pf_coefficient, dict(x=0.5), dict(x=["x", torch.tensor([1 + 1j]), torch.tensor([1]), NAN, INF,
                                              torch.tensor([0.5, NAN], dtype=D)])),
    Probe(principal_flow_field, dict(E=_half_square, h=0.1), dict(E=["E"], h=_POS)),
    Probe(local_errors, dict(E=_half_square, theta0=_TH, hs=[0.1, 0.05]),
          dict(E=["E"], theta0=_BAD_TH[:2], hs=[[0.1], [0.0, 0.1], [NAN, 0.1]]), named={"hs": r"hs(\[0\])?"}),
    Probe(fit_order, dict(hs=[0.1, 0.05], errors=[1e-2, 2.5e-3]),
          dict(hs=[[0.1], [-0.1, 0.05], [NAN, 0.1]], errors=[[1.0], [0.0, 1.0], [NAN, 1.0]])),
    Probe(game_gradient, dict(L1=bilinear1, L2=bilinear2, split=1), dict(L1=["L"], L2=[None], split=[0, -1, 1.5])),
    Probe(interaction_terms, dict(L1=bilinear1, L2=bilinear2, split=1, z=_TH),
          dict(L1=["L"], L2=["L"], split=[0, 2, 1.5], z=_BAD_TH)),
    Probe(game_field, dict(L1=bilinear1, L2=bilinear2, split=1, h=0.1),
          dict(L1=["L"], L2=["L"], split=[0, -1], h=[-1.0, NAN], mode=[UNKNOWN], interaction=[NAN, "x"])),
    Probe(game_gd_path, dict(L1=bilinear1, L2=bilinear2, z0=_TH, split=1, h=0.1, steps=3),
          dict(L1=["L"], z0=_BAD_TH, split=[0, 2], h=_POS, steps=[-1, 1.5], mode=[UNKNOWN],
               cancel_interaction=[NAN, "x"])),
    Probe(dal_lr, dict(E=_half_square, theta=_TH),
          dict(E=["E"], theta=_BAD_TH, c=_POS, power=[-1.0, NAN], max_lr=[0.0, -1.0, NAN])),
    Probe(run_gd, dict(E=_half_square, theta0=_TH, steps=2),
          dict(E=["E"], theta0=_BAD_TH, steps=SIZES, lr=_POS, rule=[UNKNOWN], c=[0.0, NAN], power=[-1.0],
               max_lr=[0.0, NAN], record_every=SIZES, seed=[-1, "s"])),
    Probe(plot_orders, dict(errs=_ERRS), dict(errs=["errs", {"h": _ERRS["h"]}])),
    Probe(grid_derivatives, dict(landscape="valley", n=5), dict(landscape=[UNKNOWN, 3], n=[1, 0, -1, 2.5])),
    Probe(grid_flow, dict(grid=_GRID, flow="NGF", h=0.1),
          dict(grid=["grid"], flow=[UNKNOWN], h=[-1.0, NAN], mode=[UNKNOWN])),
    Probe(streamlines, dict(xs=_XS, ys=_XS, U=np.ones((5, 5)), V=np.ones((5, 5))),
          dict(xs=[_XS[::-1], np.array([0.0]), np.r_[_XS[:4], NAN]], ys=[np.zeros(5)],
               U=[np.ones((4, 5)), np.full((5, 5), NAN)], V=[np.ones(5)], seeds=SIZES, steps=SIZES, step_size=_POS)),
    Probe(flow_trajectories, dict(landscape="valley", h=0.3, start=(1.5, 0.3), steps=2, flows=("NGF",)),
          dict(landscape=[UNKNOWN], h=_POS, start=[(1.0,), "ab", (NAN, 0.3)], steps=SIZES, flows=[(UNKNOWN,)],
               mode=[UNKNOWN], rtol=[0.0, NAN], max_evals=[0])),
    Probe(three_flows_figure, dict(landscape="valley", h=0.3, steps=2),
          dict(landscape=[UNKNOWN, "bilinear game"], h=_POS, steps=SIZES)),
    Probe(coefficient_figure, dict(hl=(0.3,)), dict(hl=[[NAN], ["x"], [INF]]), named={"hl": r"hl\[0\]"}),
    Probe(drift_figure, dict(landscape="valley", h=0.3, steps=2),
          dict(landscape=[UNKNOWN], h=_POS, x0=[NAN, "x"], y0=[INF], stream=[UNKNOWN], mode=[UNKNOWN], steps=SIZES,
               rtol=[0.0], max_evals=[0])),
    Probe(plot_games, dict(h=0.1, steps=5), dict(h=_POS, steps=SIZES)),
    Probe(dal_comparison, dict(runs={"a": dict(lr=0.5)}, hidden=(4,), n=8, steps=2, record_every=1, device="cpu"),
          dict(runs=["runs", {"a": "lr"}], hidden=[(0,), "x", (2.5,)], n=[1, -1], steps=SIZES, record_every=SIZES,
               dtype=[torch.long, "float64"], seed=[-1])),
    Probe(plot_dal, dict(runs={"a": _GDRUN}), dict(runs=[{}, "runs", {"a": "run"}])),
    Probe(drift_slider_figure, dict(hs=(0.1,), landscape="quadratic", steps=2),
          dict(hs=[[0.0], [NAN]], landscape=[UNKNOWN, "bilinear game"], steps=SIZES), named={"hs": r"hs\[0\]"}),
]


@pytest.mark.parametrize("landscape", ["quadratic"])
def test_the_principal_flow_field_stays_finite_at_the_pole(landscape):
    "hλ = 1 exactly (h = 1 on a unit eigenvalue) is the pole of log(1 − hλ)/(hλ): the field is evaluated just below it."
    from gradviz.dynamics.drift import drift_figure, grid_derivatives, grid_flow
    grid = grid_derivatives(landscape)
    lam = torch.linalg.eigvalsh(grid.J)
    for h in sorted({1.0, *(1 / lam[lam > 0].unique()[:3]).tolist()}):
        assert np.isfinite(grid_flow(grid, "PF", h)).all()
    drift_figure(landscape=landscape, h=1.0)  # the explorer's largest step size draws
