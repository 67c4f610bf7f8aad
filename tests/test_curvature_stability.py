"""Reference tests for gradviz.curvature.stability: linear stability of (linearised) SGD on least squares."""
import itertools
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import reference as ref
import torch
from matplotlib.figure import Figure

from probe import INF, NAN, SIZES, UNKNOWN, Probe

from gradviz.core import as_generator
from gradviz.data import count_parameters, mlp, train
from gradviz.autodiff import flatten_params
from gradviz.linalg import HessianOperator
from gradviz.viz import Explorer
from gradviz.curvature.stability import (
    DiagonalLinearNet, DiagonalRuns, Interpolation1D, MinimumReport, Recording, ReluMinimum, ReluRuns, Sharpness,
    SparseProblem, StepSizeSummary, ThresholdCurve, batch_weights, by_step_size, diagonal_net_trace, expected_sq_norm,
    explore_stability, half_mse, interpolation_problem, minima_figure, minimum_report, path_norm, plot_mean_square,
    plot_recordings, plot_relu_fits, plot_relu_sweep, plot_step_size_sweep, plot_threshold_curve, relu_minimum_report,
    second_moment_operator, sharpness_measures, simulate_linearised_sgd, single_sample_threshold, span_coordinates,
    sparse_problem, stability_figure, stability_margin, stability_radius, stability_threshold, threshold_curve,
    trace_bound, train_diagonal_nets, train_recording, train_relu_nets)

F64 = torch.float64


def data(n=10, d=14, seed=0, scale_rows=True):
    g = as_generator(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.logspace(0, -1, d, dtype=torch.float64)
    if scale_rows: X = X * (0.3 + torch.rand(n, 1, generator=g, dtype=torch.float64))
    return X


def brute_force_operator(X, lr, B, replacement):
    """E_S[(I-ηH_S) ⊗ (I-ηH_S)] in the full p-dimensional space, enumerating every batch."""
    n, p = X.shape
    I = torch.eye(p, dtype=X.dtype)
    if replacement: batches = list(itertools.product(range(n), repeat=B))
    else: batches = list(itertools.combinations(range(n), B))
    T = torch.zeros(p * p, p * p, dtype=X.dtype)
    for S in batches:
        HS = X[list(S)].T @ X[list(S)] / B
        A = I - lr * HS
        T += torch.kron(A, A)
    return T / len(batches)


@pytest.mark.parametrize("B,replacement", [(1, False), (2, False), (3, False), (5, False), (2, True), (3, True)])
def test_operator_spectrum_matches_brute_force_enumeration(B, replacement):
    X = data(n=5, d=4, seed=1)
    lr = 0.7
    T = second_moment_operator(X, lr, B, replacement)
    Tb = brute_force_operator(X, lr, B, replacement)
    # span is the whole R^4 here (n=5 > d=4), so the spectra agree exactly
    ev = torch.linalg.eigvalsh(T)
    evb = torch.linalg.eigvals(Tb).real.sort().values
    torch.testing.assert_close(ev, evb, rtol=1e-10, atol=1e-10)


def test_operator_in_span_matches_brute_force_radius_overparametrised():
    X = data(n=4, d=6, seed=2)   # rank 4 < p = 6: brute force has extra eigenvalues exactly 1
    for lr in (0.2, 0.5, 1.5):
        Tb = brute_force_operator(X, lr, 2, False)
        evb = torch.linalg.eigvals(Tb)
        ev = torch.linalg.eigvalsh(second_moment_operator(X, lr, 2))
        # every span eigenvalue appears in the full spectrum
        for e in ev: assert float((evb - e).abs().min()) < 1e-9
        ones = int(((evb - 1).abs() < 1e-9).sum())
        assert ones >= (6 - 4) ** 2   # M restricted to the orthogonal complement never moves: eigenvalue exactly 1
        # cross terms span × complement follow the mean dynamics I − ηH: eigenvalues 1 − ηλ_k
        lam = torch.linalg.eigvalsh(X.T @ X / 4)[-4:]
        for e in 1 - lr * lam: assert float((evb - e).abs().min()) < 1e-9


def test_gd_threshold_is_two_over_lambda_max():
    for seed in range(5):
        X = data(n=12, d=20, seed=seed)
        lam = torch.linalg.eigvalsh(X.T @ X / 12)
        assert abs(2 / stability_threshold(X, 12) / float(lam[-1]) - 1) < 1e-12
        assert abs(stability_radius(X, 0.999 * stability_threshold(X, 12), 12) - 1) < 0.01


@pytest.mark.parametrize("replacement", [False, True])
def test_threshold_monotone_in_batch_size_and_above_lambda_max(replacement):
    X = data(n=12, d=20, seed=3)
    lam_max = float(torch.linalg.eigvalsh(X.T @ X / 12)[-1])
    inv = [2 / stability_threshold(X, B, replacement) for B in range(1, 13)]
    assert all(a >= b * (1 - 1e-9) for a, b in zip(inv, inv[1:]))
    assert all(v >= lam_max * (1 - 1e-9) for v in inv)


def test_radius_crosses_one_at_threshold():
    X = data(n=9, d=7, seed=4)
    for B in (1, 2, 4, 9):
        eta = stability_threshold(X, B)
        assert stability_radius(X, eta * (1 - 1e-6), B) <= 1 + 1e-9
        assert stability_radius(X, eta * (1 + 1e-4), B) > 1


def test_bisection_agrees_with_grid():
    X = data(n=8, d=10, seed=5)
    for B in (1, 3, 8):
        eta = stability_threshold(X, B)
        grid = np.linspace(eta / 50, 2 * eta, 200)
        eta_grid = stability_threshold(X, B, lr_grid=grid)
        assert eta_grid <= eta * (1 + 1e-9) and eta - eta_grid <= grid[1] - grid[0] + 1e-12


def test_margin_and_radius_agree_on_stability():
    X = data(n=7, d=9, seed=6)
    for B, lr in itertools.product((1, 2, 5), np.linspace(0.01, 1.5, 40)):
        assert (stability_margin(X, float(lr), B) <= 1 + 1e-10) == (stability_radius(X, float(lr), B) <= 1 + 1e-10)


def test_single_sample_closed_form():
    for seed in range(5):
        X = data(n=9, d=6 + seed, seed=10 + seed)
        assert abs(single_sample_threshold(X) / stability_threshold(X, 1) - 1) < 1e-9


def test_single_sample_orthogonal_rows_closed_form():
    # orthogonal rows: each direction is hit by its own sample, η* = 2 / max ‖x_i‖²
    norms = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    X = torch.diag(norms.sqrt())
    assert abs(stability_threshold(X, 1) - 2 / 3.0) < 1e-10
    assert abs(single_sample_threshold(X) - 2 / 3.0) < 1e-10


def test_trace_bound_b1_on_random_instances():
    for seed in range(15):
        g = as_generator(seed)
        n, d = int(torch.randint(2, 15, (1,), generator=g)), int(torch.randint(1, 20, (1,), generator=g))
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        X = X * torch.rand(n, 1, generator=g, dtype=torch.float64) ** 3
        tr = float((X ** 2).sum()) / n
        assert tr <= 2 / stability_threshold(X, 1) * (1 + 1e-9)
        for B in range(1, n + 1):
            assert trace_bound(X, B) <= 2 / stability_threshold(X, B) * (1 + 1e-9)


def test_trace_bound_fails_without_batch_factor():
    # equal-norm rows: tr H is attained at B = 1 but not at B = 5 (n = 20), the finding of the chapter
    X = data(n=20, d=50, seed=0, scale_rows=False)
    X = X / X.norm(dim=1, keepdim=True)
    tr = float((X ** 2).sum()) / 20
    assert 2 / stability_threshold(X, 1) >= tr * (1 - 1e-9)
    assert 2 / stability_threshold(X, 5) < tr


def test_monte_carlo_matches_second_moment():
    X = data(n=6, d=5, seed=7)
    for B, replacement in ((1, False), (2, False), (2, True)):
        eta = 0.8 * stability_threshold(X, B, replacement)
        mc = simulate_linearised_sgd(X, eta, B, steps=15, runs=20000, replacement=replacement, seed=3)
        exact = expected_sq_norm(X, eta, B, 15, replacement)
        se = mc.std(1) / math.sqrt(20000)
        assert float(((mc.mean(1) - exact).abs() / se.clamp_min(1e-30))[1:].max()) < 5


def test_monte_carlo_bounded_below_and_explodes_above():
    X = data(n=20, d=50, seed=8, scale_rows=False)
    X = X / X.norm(dim=1, keepdim=True)
    eta = stability_threshold(X, 1)
    assert stability_radius(X, 0.9 * eta, 1) < 1 < stability_radius(X, 1.1 * eta, 1)
    lo = simulate_linearised_sgd(X, 0.9 * eta, 1, steps=2000, runs=200, seed=0)
    hi = simulate_linearised_sgd(X, 1.1 * eta, 1, steps=2000, runs=200, seed=0)
    assert float(lo[-1].mean()) < 0.1 * float(lo[0].mean()) and float(hi[-1].mean()) > 1e2


def test_sharpness_measures_exact_and_estimated():
    X = data(n=30, d=40, seed=9)
    f = lambda th: 0.5 * ((X @ th) ** 2).mean()
    op = HessianOperator(f, torch.zeros(40, dtype=torch.float64))
    eig = torch.linalg.eigvalsh(X.T @ X / 30)
    ex = sharpness_measures(op)
    assert isinstance(ex, Sharpness)
    assert abs(ex.sharpness - float(eig[-1])) < 1e-10 and abs(ex.trace - float(eig.sum())) < 1e-10
    assert abs(ex.frobenius - float(eig.norm())) < 1e-10
    est = sharpness_measures(op, exact=False, num_probes=300, seed=1)
    assert abs(est.sharpness - ex.sharpness) < 1e-8
    assert abs(est.trace - ex.trace) < 0.1 * ex.trace and abs(est.frobenius - ex.frobenius) < 0.1 * ex.frobenius
    dense = sharpness_measures(X.T @ X / 30)
    assert abs(dense.trace - ex.trace) < 1e-10


def test_diagonal_net_trace_identity_and_interpolation_hessian():
    g = as_generator(11)
    X = torch.randn(9, 5, generator=g, dtype=torch.float64)
    net = DiagonalLinearNet(5, dtype=torch.float64)
    with torch.no_grad():
        net.u.copy_(torch.randn(5, generator=g, dtype=torch.float64))
        net.v.copy_(torch.randn(5, generator=g, dtype=torch.float64))
    y_fit = net(X).detach()  # targets = outputs: an interpolating point
    G = ref.gauss_newton(net, half_mse, X, y_fit)  # Jᵀ (I/n) J, independent of gradviz's derivative code
    assert abs(float(G.trace()) / float(diagonal_net_trace(X, net.u.detach(), net.v.detach())) - 1) < 1e-12
    assert float((ref.model_hessian(net, half_mse, X, y_fit) - G).norm() / G.norm()) < 1e-12
    # batched form
    U, V = torch.stack([net.u.detach(), 2 * net.u.detach()]), torch.stack([net.v.detach(), net.v.detach()])
    assert diagonal_net_trace(X, U, V).shape == (2,)


def test_train_diagonal_nets_interpolates_and_matches_autograd_step():
    g = as_generator(12)
    X = torch.randn(10, 20, generator=g, dtype=torch.float64)
    beta = torch.zeros(20, dtype=torch.float64); beta[:2] = 1
    y = X @ beta
    runs = train_diagonal_nets(X, y, [0.05], None, steps=1, init_scale=0.3)
    net = DiagonalLinearNet(20, init_scale=0.3, dtype=torch.float64)
    loss = half_mse(net(X), y)
    gu, gv = torch.autograd.grad(loss, [net.u, net.v])
    torch.testing.assert_close(runs.u[0], (net.u - 0.05 * gu).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(runs.v[0], (net.v - 0.05 * gv).detach(), rtol=1e-12, atol=1e-12)
    runs = train_diagonal_nets(X, y, [0.05, 0.1], 1, steps=4000)
    assert float(runs.train_loss.max()) < 1e-5 * float(0.5 * (y ** 2).mean()) and not runs.diverged.any()


def test_train_diagonal_nets_reports_divergence():
    X = torch.randn(10, 20, generator=as_generator(13), dtype=torch.float64)
    runs = train_diagonal_nets(X, X[:, 0], [0.01, 50.0], 2, steps=200)
    assert runs.diverged.tolist() == [False, True]


def test_train_recording_gd_matches_manual_and_records():
    X = torch.randn(16, 3, generator=as_generator(14), dtype=torch.float64)
    y = X[:, :1] ** 2
    net = mlp([3, 8, 1], "relu", seed=0, dtype=torch.float64, device="cpu")
    rec = train_recording(net, half_mse, X, y, 0.05, steps=20, record_every=10, num_probes=4)
    assert rec.steps.tolist() == [0, 10, 20]
    assert rec.loss[-1] < rec.loss[0] and np.all(rec.sharpness > 0) and np.all(rec.param_norm > 0)
    assert abs(rec.sharpness[-1] - float(torch.linalg.eigvalsh(ref.model_hessian(net, half_mse, X, y))[-1])) < 1e-6


def test_train_recording_seed_and_progress():
    X = torch.randn(16, 3, generator=as_generator(14), dtype=torch.float64)
    y = X[:, :1] ** 2
    runs, seen = [], []
    def bar(iterable, total=None, desc=None):
        seen.append(desc)
        return iterable
    for seed in (3, 3, as_generator(3)):
        net = mlp([3, 8, 1], "relu", seed=0, dtype=torch.float64, device="cpu")
        runs.append(train_recording(net, half_mse, X, y, 0.05, steps=6, batch_size=4, record_every=3, num_probes=2,
                                    seed=seed, progress=bar))
    assert isinstance(runs[0], Recording) and np.array_equal(runs[0].loss, runs[1].loss)
    assert np.all(np.isfinite(runs[2].loss)) and seen == ["training"] * 3


def test_train_diagonal_nets_progress_callable_wraps_the_steps():
    X = torch.randn(6, 4, generator=as_generator(2), dtype=torch.float64)
    totals = []
    def bar(iterable, total=None, desc=None):
        totals.append(len(iterable))
        return iterable
    runs = train_diagonal_nets(X, X[:, 0], [0.01], 2, steps=7, progress=bar)
    assert isinstance(runs, DiagonalRuns) and totals == [7]


# ---------------------------------------------------------------- figures and the explorer
def test_threshold_curve_and_its_figure():
    X = data(n=8, d=10, seed=5)
    c = threshold_curve(X, [1, 2, 8])
    assert isinstance(c, ThresholdCurve) and c.batch_sizes == [1, 2, 8]
    assert abs(c.inv_thresholds[-1] / c.sharpness - 1) < 1e-12 and abs(c.trace_bounds[0] / c.trace - 1) < 1e-12
    fig = plot_threshold_curve(c, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) == 2 + 3


def test_plot_mean_square():
    X = data(n=6, d=5, seed=7)
    runs = {(B, f): simulate_linearised_sgd(X, f * stability_threshold(X, B), B, steps=20, runs=10, seed=0)
            for B in (1, 2) for f in (0.9, 1.1)}
    fig = plot_mean_square(X, runs, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3 * len(runs)


@pytest.fixture(scope="module")
def sweep():
    prob = sparse_problem(n=12, d=20, k=3, n_test=50, device="cpu")
    gd = train_diagonal_nets(prob.X, prob.y, [0.05, 0.1], None, steps=300)
    sgd = train_diagonal_nets(prob.X, prob.y, [0.01, 0.02], 1, steps=300)
    return prob, {"GD": minimum_report(gd, prob, num_probes=4), "SGD": minimum_report(sgd, prob, 1, num_probes=4)}


def test_sparse_problem_and_minimum_report(sweep):
    prob, reports = sweep
    assert isinstance(prob, SparseProblem) and prob.X.shape == (12, 20) and prob.X_test.shape == (50, 20)
    torch.testing.assert_close(prob.y, prob.X @ prob.beta_star)
    X, *_ = sparse_problem(n=12, d=20, k=3, n_test=50, seed=as_generator(0), device="cpu")
    torch.testing.assert_close(X, prob.X)  # a generator seeded with the same int draws the same
    r = reports["GD"][1]
    assert isinstance(r, MinimumReport) and r.lr == 0.1 and r.beta.shape == (20,)
    assert r.l1 == pytest.approx(float(r.beta.abs().sum())) and set(r.numbers()) >= {"lr", "l1", "eta_star"}
    assert r.lr <= r.eta_star


def test_sweep_figures(sweep):
    prob, reports = sweep
    fig = plot_step_size_sweep(reports, l1_star=3.0, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and len(fig.axes[2].lines) == 2 * 2 + 1
    fig = minima_figure(reports, prob.beta_star, title="t")
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 4 and len(fig.data) == 1 + 4
    assert fig.layout.showlegend


def test_path_norm_and_recordings_figure():
    net = mlp([2, 3, 1], "relu", seed=0, dtype=torch.float64, device="cpu")
    W, b, a = net[0].weight.detach(), net[0].bias.detach(), net[2].weight.detach()
    manual = sum(abs(float(a[0, k])) * math.sqrt(float(W[k] @ W[k] + b[k] ** 2)) for k in range(3))
    assert path_norm(net) == pytest.approx(manual, rel=1e-12)
    X = torch.randn(10, 2, generator=as_generator(1), dtype=torch.float64)
    rec = train_recording(net, half_mse, X, X[:, :1], 0.1, steps=4, record_every=2, num_probes=2, norm_fn=path_norm)
    fig = plot_recordings({0.1: rec, 0.2: rec}, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and len(fig.axes[2].lines) == 2


def test_stability_figure_and_explorer():
    fig = stability_figure(lr=0.05, n=12, d=20, steps=200)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[1].patches) == 4
    assert stability_figure(lr=50.0, method="GD", steps=50).axes[0].get_title().endswith("diverged")
    ex = explore_stability()
    assert isinstance(ex, Explorer) and {"lr", "batch_size", "init_scale", "n", "d", "method"} <= set(ex.controls)
    a = ex.update(n=12, d=20)
    b = ex.update(method="GD")
    assert isinstance(b, Figure) and a is not b and a.axes[0].get_title() != b.axes[0].get_title()
    assert ex.update(method="SGD") is a


def _linear():
    return mlp([2, 1], seed=0, device="cpu")


@pytest.mark.parametrize("call,arg", [
    (lambda: batch_weights(5, 0), "batch_size"),
    (lambda: batch_weights(5, 6), "batch_size"),
    (lambda: batch_weights(5, 2, replacement="yes"), "replacement"),
    (lambda: span_coordinates(torch.ones(3)), "X"),
    (lambda: span_coordinates(torch.ones(3, 2, dtype=torch.long)), "X"),
    (lambda: span_coordinates(torch.zeros(3, 2)), "X"),
    (lambda: span_coordinates(torch.tensor([[1.0, float("nan")]])), "X"),
    (lambda: second_moment_operator(torch.ones(3, 2), -0.1, 1), "lr"),
    (lambda: second_moment_operator(torch.randn(60, 60, dtype=torch.float64), 0.1, 1), "max_dim"),
    (lambda: stability_margin(torch.ones(3, 2), float("inf"), 1), "lr"),
    (lambda: stability_threshold(torch.ones(3, 2), 4), "batch_size"),
    (lambda: stability_threshold(torch.ones(3, 2), 1, tol=0), "tol"),
    (lambda: stability_threshold(torch.ones(3, 2), 1, lr_grid=[]), "lr_grid"),
    (lambda: stability_threshold(torch.ones(3, 2), 1, lr_grid=[100.0]), "lr_grid"),
    (lambda: stability_threshold(torch.ones(3, 2), 1, lr_grid=[-1.0]), "lr_grid"),
    (lambda: simulate_linearised_sgd(torch.ones(3, 2), 0.1, 1, steps=0), "steps"),
    (lambda: simulate_linearised_sgd(torch.ones(3, 2), 0.1, 4), "batch_size"),
    (lambda: sharpness_measures("H"), "op"),
    (lambda: DiagonalLinearNet(0), "dim"),
    (lambda: DiagonalLinearNet(3, init_scale=0.0), "init_scale"),
    (lambda: diagonal_net_trace(torch.ones(3, 2), torch.ones(3), torch.ones(3)), "u"),
    (lambda: train_diagonal_nets(torch.ones(3, 2), torch.ones(4), [0.1]), "y"),
    (lambda: train_diagonal_nets(torch.ones(3, 2), torch.ones(3), []), "lrs"),
    (lambda: train_diagonal_nets(torch.ones(3, 2), torch.ones(3), [0.0]), "lrs"),
    (lambda: train_recording(_linear(), half_mse, torch.ones(3, 2), torch.ones(3, 1), 0.1, record_every=0),
     "record_every"),
    (lambda: train_recording("net", half_mse, torch.ones(3, 2), torch.ones(3, 1), 0.1), "model"),
    (lambda: train_recording(_linear(), half_mse, torch.ones(3, 2), torch.ones(3, 1), 0.1, seed=-1), "seed"),
    (lambda: train_diagonal_nets(torch.ones(3, 2), torch.ones(3), [0.1], progress="bar"), "progress"),
    (lambda: threshold_curve(torch.ones(3, 2), []), "batch_sizes"),
    (lambda: threshold_curve(torch.ones(3, 2), [0]), "batch_sizes"),
    (lambda: plot_threshold_curve({"B": 1}), "curve"),
    (lambda: plot_mean_square(torch.ones(3, 2), {}), "runs"),
    (lambda: sparse_problem(d=3, k=4), "k"),
    (lambda: sparse_problem(n=0), "n"),
    (lambda: sparse_problem(seed=1.5), "seed"),
    (lambda: minimum_report("runs", sparse_problem(n=4, d=3, k=1, n_test=2, device="cpu")), "runs"),
    (lambda: plot_step_size_sweep({}), "reports"),
    (lambda: plot_step_size_sweep({"GD": []}), "reports"),
    (lambda: minima_figure({}, torch.ones(3)), "reports"),
    (lambda: path_norm(mlp([2, 3, 3, 1], seed=0, device="cpu")), "net"),
    (lambda: path_norm("net"), "net"),
    (lambda: plot_recordings({}), "recordings"),
    (lambda: stability_figure(method="Adam"), "method"),
])
def test_bad_input_names_the_argument(call, arg):
    with pytest.raises((ValueError, TypeError), match=f"`{arg}"):
        call()


def test_follows_input_device_and_dtype():
    X = data(n=6, d=5, seed=15).float()
    T = second_moment_operator(X, 0.1, 2)
    assert T.dtype == torch.float32 and T.device == X.device
    v = simulate_linearised_sgd(X, 0.1, 2, steps=3, runs=4)
    assert v.dtype == torch.float32 and v.device == X.device


# ---------------------------------------------------------------- the chapter's claims at small settings
def test_diagonal_sweep_sgd_sparser_and_better_gd_flat():
    "SGD (B = 1): larger η gives a smaller ‖β‖₁ and test error, tr H ≤ 2/η; GD: ‖β‖₁ flat across η."
    prob = sparse_problem(device="cpu")
    with torch.no_grad():
        gd = train_diagonal_nets(prob.X, prob.y, [0.05, 0.35], None, steps=5000, seed=0)
        sgd = train_diagonal_nets(prob.X, prob.y, [0.01, 0.06], 1, steps=20000, seed=0)
    gd_rep, sgd_rep = minimum_report(gd, prob, num_probes=4), minimum_report(sgd, prob, 1, num_probes=4)
    assert sgd_rep[1].l1 < sgd_rep[0].l1 and sgd_rep[1].test < 0.1 * sgd_rep[0].test
    assert max(r.l1 for r in gd_rep) < 1.06 * min(r.l1 for r in gd_rep)
    assert all(r.trace <= 2 / r.lr for r in sgd_rep) and all(r.sharpness <= 2 / r.lr for r in gd_rep)
    assert gd_rep[1].trace > 2 / gd_rep[1].lr   # GD's minimum at η = 0.35 is far outside SGD's trace cap


def test_gd_edge_of_stability_pins_sharpness_at_two_over_eta():
    X = torch.randn(32, 4, generator=as_generator(0), dtype=F64)
    y = torch.tanh(X @ torch.randn(4, 1, generator=as_generator(1), dtype=F64))
    net = mlp([4, 32, 1], "relu", seed=1, dtype=F64, device="cpu")
    rec = train_recording(net, half_mse, X, y, 0.5, steps=1500, record_every=100, num_probes=2)
    late = rec.sharpness[rec.steps >= 750]
    assert abs(float(late.mean()) * 0.5 / 2 - 1) < 0.1 and float(rec.sharpness[0]) < 0.9 * 2 / 0.5


def test_interpolation_problem():
    prob = interpolation_problem(n=12, frequency=2.0, n_test=50, device="cpu")
    assert isinstance(prob, Interpolation1D) and prob.x.shape == (12,) and prob.x_test.shape == (50,)
    torch.testing.assert_close(prob.y, torch.sin(2 * math.pi * prob.x), rtol=0, atol=1e-15)
    gaps = prob.x.diff()
    assert bool((gaps > 0.8 * 2 / 11).all() and (gaps < 1.2 * 2 / 11).all())
    again = interpolation_problem(n=12, frequency=2.0, n_test=50, seed=as_generator(0), device="cpu")
    torch.testing.assert_close(again.x, prob.x)
    assert interpolation_problem(n=4, dtype=torch.float32, device="cpu").x.dtype == torch.float32


def test_train_relu_nets_gd_is_autograd_sgd_from_the_same_initialisation():
    prob = interpolation_problem(n=8, device="cpu")
    start = train_relu_nets(prob.x, prob.y, [0.1, 0.05], steps=0, width=6, repeats=2, seed=3)
    runs = train_relu_nets(prob.x, prob.y, [0.1, 0.05], steps=30, width=6, repeats=2, seed=3)
    assert isinstance(runs, ReluRuns) and runs.lrs.tolist() == [0.1, 0.1, 0.05, 0.05] and runs.repeat.tolist() == [0, 1, 0, 1]
    for e in range(4):
        net = start.net(e)
        train(net, half_mse, prob.x[:, None], prob.y, steps=30, lr=float(runs.lrs[e]))
        torch.testing.assert_close(flatten_params(net), flatten_params(runs.net(e)), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(runs.net(e)(prob.x[:, None]).detach().reshape(-1), runs(prob.x)[e])
    torch.testing.assert_close(flatten_params(start.net(0)), flatten_params(start.net(2)))   # same init for every η
    assert count_parameters(runs.net(0)) == 3 * 6 + 1


def test_train_relu_nets_sgd_step_is_a_single_sample_step():
    prob = interpolation_problem(n=6, device="cpu")
    start = train_relu_nets(prob.x, prob.y, [0.2], 1, steps=0, width=5, seed=4)
    one = flatten_params(train_relu_nets(prob.x, prob.y, [0.2], 1, steps=1, width=5, seed=4).net(0))
    candidates = []
    for i in range(6):
        net = start.net(0)
        train(net, half_mse, prob.x[i:i + 1, None], prob.y[i:i + 1], steps=1, lr=0.2)
        candidates.append(flatten_params(net))
    assert min(float((c - one).abs().max()) for c in candidates) < 1e-12
    assert train_relu_nets(prob.x, prob.y, [0.01, 80.0], 2, steps=50, width=5).diverged.tolist() == [False, True]


@pytest.fixture(scope="module")
def relu_small():
    prob = interpolation_problem(n=6, n_test=40, device="cpu")
    runs = train_relu_nets(prob.x, prob.y, [0.05, 0.1], None, steps=200, width=8, repeats=2, seed=1)
    return prob, runs


def test_relu_minimum_report_against_dense_reference(relu_small):
    prob, runs = relu_small
    rep = relu_minimum_report(runs, prob)
    X = prob.x[:, None]
    for e, r in enumerate(rep):
        net = runs.net(e)
        eig = torch.linalg.eigvalsh(ref.model_hessian(net, half_mse, X, prob.y))
        assert isinstance(r, ReluMinimum) and r.lr == float(runs.lrs[e]) and r.repeat == int(runs.repeat[e])
        assert abs(r.sharpness - float(eig[-1])) < 1e-9 * float(eig[-1]) and abs(r.trace - float(eig.sum())) < 1e-9 * r.trace
        assert abs(r.frobenius - float(eig.norm())) < 1e-9 * r.frobenius
        assert abs(r.gn_trace - float(ref.gauss_newton(net, half_mse, X, prob.y).trace())) < 1e-9 * r.gn_trace
        w, b, a = (t.detach() for t in (net[0].weight[:, 0], net[0].bias, net[2].weight[0]))
        manual = sum(abs(float(a[k])) * math.hypot(float(w[k]), float(b[k])) for k in range(8))
        assert r.path_norm == pytest.approx(manual, rel=1e-12)
        loss = 0.5 * float((net(X).detach().reshape(-1) - prob.y).square().mean())
        test = float((net(prob.x_test[:, None]).detach().reshape(-1) - prob.y_test).square().mean())
        assert r.train_loss == pytest.approx(loss, rel=1e-10) and r.test == pytest.approx(test, rel=1e-10)
        grads = ref.per_sample_grads_loop(net, lambda out, t: out.sum(), X, prob.y)   # rows ∇_θ f(xᵢ)
        assert r.eta_star == pytest.approx(stability_threshold(grads, 6), rel=1e-9)
    one = relu_minimum_report(runs, prob, batch_size=1)
    assert all(2 / o.eta_star >= o.trace * (1 - 1e-9) for o in one)   # tr H ≤ 2/η*(1)
    est = relu_minimum_report(runs, prob, exact=False, num_probes=64, seed=0)
    for r, s in zip(rep, est):
        assert abs(s.sharpness - r.sharpness) < 1e-6 * r.sharpness and abs(s.trace - r.trace) < 0.3 * r.trace


def test_relu_minimum_report_marks_diverged_runs():
    prob = interpolation_problem(n=6, device="cpu")
    runs = train_relu_nets(prob.x, prob.y, [0.01, 80.0], steps=50, width=5)
    ok, bad = relu_minimum_report(runs, prob)
    assert math.isfinite(ok.trace) and math.isnan(bad.trace) and math.isnan(bad.path_norm)


def test_by_step_size_against_numpy(relu_small):
    prob, runs = relu_small
    rep = relu_minimum_report(runs, prob)
    s = by_step_size(rep, "path_norm")
    assert isinstance(s, StepSizeSummary) and s.lrs.tolist() == [0.05, 0.1]
    for i, lr in enumerate((0.05, 0.1)):
        vals = np.array([r.path_norm for r in rep if r.lr == lr])
        assert s.mean[i] == pytest.approx(vals.mean()) and s.low[i] == vals.min() and s.high[i] == vals.max()


def test_relu_claim_sgd_caps_the_trace_not_the_test_error():
    "The chapter's finding at η = 0.1 on n = 20, width 100: SGD's minima have under half GD's trace, a slightly lower"
    " path norm in every pair, no better test error; every minimum is stable for the method that found it."
    prob = interpolation_problem(device="cpu")
    with torch.no_grad():
        gd = train_relu_nets(prob.x, prob.y, [0.1], None, steps=4000, repeats=2, seed=0)
        sgd = train_relu_nets(prob.x, prob.y, [0.1], 1, steps=4000, repeats=2, seed=0)
    g, s = relu_minimum_report(gd, prob), relu_minimum_report(sgd, prob)
    assert all(r.sharpness <= 2 / r.lr and r.lr <= r.eta_star for r in g)
    assert all(r.trace <= 2 / r.lr and r.lr <= r.eta_star for r in s)
    assert np.mean([r.trace for r in s]) < 0.5 * np.mean([r.trace for r in g])
    assert all(b.path_norm < a.path_norm < 1.15 * b.path_norm for a, b in zip(g, s))
    assert np.mean([r.test for r in s]) > np.mean([r.test for r in g])
    assert all(r.eta_star < 0.1 for r in relu_minimum_report(gd, prob, batch_size=1))   # GD's minima: unstable for SGD


def test_relu_figures(relu_small):
    prob, runs = relu_small
    fig = plot_relu_fits({"GD": runs, "again": runs}, prob, [0.05, 0.1], repeat=1, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[0].lines) == 1 + 2 + 1
    rep = relu_minimum_report(runs, prob)
    fig = plot_relu_sweep({"GD": rep, "SGD": rep[:2]}, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 and fig.axes[2].lines[-1].get_label().startswith("2/η")


# ---------------------------------------------------------------- bad input: one probe per public function
_X = torch.randn(6, 4, generator=as_generator(0), dtype=F64)
_XNAN = torch.full((6, 4), NAN, dtype=F64)
_BAD_X = [torch.zeros(6, 4, dtype=F64), _XNAN, torch.ones(6), torch.ones(6, 4, dtype=torch.long), torch.ones(0, 4), "X"]
_PROB = sparse_problem(n=6, d=4, k=1, n_test=5, device="cpu")
_DRUNS = train_diagonal_nets(_PROB.X, _PROB.y, [0.05], None, steps=3)
_IP = interpolation_problem(n=6, n_test=9, device="cpu")
_RRUNS = train_relu_nets(_IP.x, _IP.y, [0.05], None, steps=3, width=4)
_RREP = relu_minimum_report(_RRUNS, _IP)
_NET = mlp([4, 3, 1], "relu", seed=0, dtype=F64, device="cpu")
_Y1 = torch.ones(6, 1, dtype=F64)
_REC = train_recording(mlp([4, 3, 1], "relu", seed=0, dtype=F64, device="cpu"), half_mse, _X, _Y1, 0.1, steps=2,
                       record_every=1, num_probes=2)
_CURVE = threshold_curve(_X, [1, 6])

PROBES = [
    Probe(batch_weights, dict(n=20, batch_size=5, replacement=False),
          dict(n=[*SIZES, 2.5, "20"], batch_size=[*SIZES, 21, 2.5], replacement=["yes", 1])),
    Probe(span_coordinates, dict(X=_X), dict(X=_BAD_X)),
    Probe(second_moment_operator, dict(X=_X, lr=0.1, batch_size=2, replacement=False, max_dim=50),
          dict(X=_BAD_X, lr=[NAN, INF, -1.0, "0.1"], batch_size=[*SIZES, 7], replacement=["yes"],
               max_dim=[*SIZES, 3, 2.5])),
    Probe(stability_radius, dict(X=_X, lr=0.1, batch_size=2, replacement=False),
          dict(X=_BAD_X, lr=[NAN, INF, -1.0], batch_size=[*SIZES, 7], replacement=["yes"])),
    Probe(stability_margin, dict(X=_X, lr=0.1, batch_size=2, replacement=False),
          dict(X=_BAD_X, lr=[NAN, INF, -1.0], batch_size=[*SIZES, 7], replacement=["yes"])),
    Probe(stability_threshold, dict(X=_X, batch_size=2, replacement=False, lr_grid=None, tol=1e-12),
          dict(X=_BAD_X, batch_size=[*SIZES, 7, 2.5], replacement=["yes"], tol=[NAN, 0.0, -1.0, "tight"],
               lr_grid=[[], [NAN], [-1.0], [1e6], "grid", 0.1])),
    Probe(single_sample_threshold, dict(X=_X), dict(X=_BAD_X)),
    Probe(trace_bound, dict(X=_X, batch_size=2, replacement=False),
          dict(X=_BAD_X, batch_size=[*SIZES, 7], replacement=["yes"])),
    Probe(sharpness_measures, dict(op=_X.T @ _X, exact=None, num_probes=4, seed=0),
          dict(op=["H", torch.ones(3, 4, dtype=F64), torch.full((3, 3), NAN, dtype=F64)], exact=["yes", 1],
               num_probes=[*SIZES, 1, 2.5], seed=[1.5, "zero", -1])),
    Probe(simulate_linearised_sgd, dict(X=_X, lr=0.1, batch_size=2, steps=3, runs=4, replacement=False, seed=0),
          dict(X=_BAD_X, lr=[NAN, INF, -1.0], batch_size=[*SIZES, 7], steps=[*SIZES, 2.5], runs=[*SIZES, 2.5],
               replacement=["yes"], seed=[1.5, "zero", -1])),
    Probe(expected_sq_norm, dict(X=_X, lr=0.1, batch_size=2, steps=3, replacement=False),
          dict(X=_BAD_X, lr=[NAN, INF, -1.0], batch_size=[*SIZES, 7], steps=[*SIZES, 2.5], replacement=["yes"])),
    Probe(threshold_curve, dict(X=_X, batch_sizes=[1, 2], replacement=False),
          dict(X=_BAD_X, batch_sizes=[[], [0], [7], [1.5], 3, "12"], replacement=["yes"])),
    Probe(plot_threshold_curve, dict(curve=_CURVE, title=None), dict(curve=["curve", {"B": 1}])),
    Probe(plot_mean_square, dict(X=_X, runs={(1, 0.9): torch.ones(4, 2, dtype=F64)}, replacement=False, title=None),
          dict(X=_BAD_X, runs=[{}, "runs", {1: torch.ones(4, 2)}, {(1, 0.9): "v"}, {(1, 0.9): torch.ones(4)}],
               replacement=["yes"])),
    Probe(DiagonalLinearNet, dict(dim=3, init_scale=0.1, device=None, dtype=F64),
          dict(dim=[*SIZES, 2.5], init_scale=[NAN, INF, 0.0, -1.0], device=[UNKNOWN], dtype=[torch.long, "float64"])),
    Probe(diagonal_net_trace, dict(X=_X, u=torch.ones(4, dtype=F64), v=torch.ones(4, dtype=F64)),
          dict(X=_BAD_X[1:], u=[torch.ones(3, dtype=F64), torch.full((4,), NAN, dtype=F64), "u"],
               v=[torch.ones(3, dtype=F64), torch.full((4,), NAN, dtype=F64), "v"])),
    Probe(half_mse, dict(out=torch.ones(3, 1), y=torch.ones(3)),
          dict(out=["out", torch.ones(4)], y=["y", torch.ones(4)])),
    Probe(train_diagonal_nets, dict(X=_PROB.X, y=_PROB.y, lrs=[0.1], batch_size=None, steps=2, init_scale=0.1, seed=0,
                                    progress=False),
          dict(X=[_XNAN, torch.ones(6), "X"], y=[torch.ones(5, dtype=F64), torch.full((6,), NAN, dtype=F64), "y"],
               lrs=[[], [NAN], [0.0], [-1.0], 0.1, "lr"], batch_size=[*SIZES, 7, 2.5], steps=[*SIZES, 2.5],
               init_scale=[NAN, 0.0, -1.0], seed=[1.5, "zero", -1], progress=["bar", 3])),
    Probe(sparse_problem, dict(n=6, d=4, k=1, n_test=5, seed=0, device="cpu", dtype=F64),
          dict(n=[*SIZES, 2.5], d=[*SIZES, 2.5], k=[-1, 5, 2.5], n_test=[*SIZES, 2.5], seed=[1.5, "zero", -1],
               device=[UNKNOWN, 3], dtype=[torch.long, "float64"])),
    Probe(minimum_report, dict(runs=_DRUNS, problem=_PROB, batch_size=None, num_probes=2, seed=0),
          dict(runs=["runs", _RRUNS], problem=["problem", _IP], batch_size=[*SIZES, 7, 2.5], num_probes=[*SIZES, 1],
               seed=[1.5, "zero", -1])),
    Probe(plot_step_size_sweep, dict(reports={"GD": minimum_report(_DRUNS, _PROB, num_probes=2)}, l1_star=None, title=None),
          dict(reports=[{}, {"GD": []}, "reports", {"GD": ["r"]}, {"GD": _RREP}], l1_star=[NAN, "five"])),
    Probe(train_recording, dict(model=mlp([4, 3, 1], "relu", seed=0, dtype=F64, device="cpu"), loss_fn=half_mse, X=_X,
                                y=_Y1, lr=0.1, steps=1, batch_size=None, record_every=1, num_probes=2, norm_fn=None,
                                seed=0, progress=False),
          dict(model=["net"], loss_fn=["mse", None], X=[_XNAN, "X"], y=[torch.ones(5, 1, dtype=F64), "y"],
               lr=[NAN, INF, 0.0, -1.0], steps=[*SIZES, 2.5], batch_size=[*SIZES, 7], record_every=[*SIZES, 2.5],
               num_probes=[*SIZES, 1], norm_fn=["norm"], seed=[1.5, "zero", -1], progress=["bar", 3])),
    Probe(path_norm, dict(net=_NET), dict(net=["net", mlp([4, 3, 3, 1], seed=0, device="cpu"), mlp([4, 3, 2], seed=0, device="cpu")])),
    Probe(plot_recordings, dict(recordings={0.1: _REC}, title=None),
          dict(recordings=[{}, "recordings", {0.1: "rec"}, {0.0: _REC}, {"lr": _REC}])),
    Probe(interpolation_problem, dict(n=6, frequency=1.0, n_test=9, seed=0, device="cpu", dtype=F64),
          dict(n=[*SIZES, 1, 2.5], frequency=[NAN, INF, -1.0, "one"], n_test=[*SIZES, 1, 2.5], seed=[1.5, "zero", -1],
               device=[UNKNOWN, 3], dtype=[torch.long, "float64"])),
    Probe(train_relu_nets, dict(x=_IP.x, y=_IP.y, lrs=[0.1], batch_size=None, steps=1, width=3, repeats=1, seed=0,
                                progress=False),
          dict(x=[torch.ones(6, 1, dtype=F64), torch.full((6,), NAN, dtype=F64), torch.ones(6, dtype=torch.long), "x"],
               y=[torch.ones(5, dtype=F64), torch.full((6,), NAN, dtype=F64), "y"],
               lrs=[[], [NAN], [0.0], [-1.0], 0.1, "lr"], batch_size=[*SIZES, 7, 2.5], steps=[-1, 2.5],
               width=[*SIZES, 2.5], repeats=[*SIZES, 2.5], seed=[1.5, "zero", -1], progress=["bar", 3])),
    Probe(relu_minimum_report, dict(runs=_RRUNS, problem=_IP, batch_size=None, exact=None, num_probes=2, seed=0),
          dict(runs=["runs", _DRUNS], problem=["problem", _PROB], batch_size=[*SIZES, 7, 2.5], exact=["yes", 1],
               num_probes=[*SIZES, 1], seed=[1.5, "zero", -1])),
    Probe(by_step_size, dict(reports=_RREP, field="path_norm"),
          dict(reports=[[], "reports", [1.0], minimum_report(_DRUNS, _PROB, num_probes=2)], field=[UNKNOWN, "repeat", 3])),
    Probe(plot_relu_fits, dict(runs={"GD": _RRUNS}, problem=_IP, lrs=[0.05], repeat=0, title=None),
          dict(runs=[{}, "runs", {"GD": "runs"}, {"GD": _DRUNS}], problem=["problem", _PROB], lrs=[[], [0.3], [NAN], 0.05],
               repeat=[-1, 1, 2.5])),
    Probe(plot_relu_sweep, dict(reports={"GD": _RREP}, title=None),
          dict(reports=[{}, {"GD": []}, "reports", {"GD": ["r"]}])),
    Probe(minima_figure, dict(reports={"GD": minimum_report(_DRUNS, _PROB, num_probes=2)}, beta_star=_PROB.beta_star,
                              colors=None, title=None),
          dict(reports=[{}, {"GD": []}, "reports", {"GD": _RREP}], beta_star=["b", torch.ones(3, dtype=F64),
                                                                            torch.full((4,), NAN, dtype=F64)],
               colors=["red", [3]])),
    Probe(stability_figure, dict(lr=0.05, batch_size=1, init_scale=0.1, n=8, d=6, method="SGD", steps=2, device="cpu",
                                 progress=False),
          dict(lr=[NAN, INF, 0.0, -1.0, "0.05"], batch_size=[*SIZES, 2.5], init_scale=[NAN, 0.0, -1.0],
               n=[*SIZES, 2.5], d=[*SIZES, 2.5], method=[UNKNOWN, 3], steps=[*SIZES, 2.5], device=[UNKNOWN, 3],
               progress=["bar", 3])),
]
