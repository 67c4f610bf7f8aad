"""Reference tests for gradviz.learned.deep_cg: DCDM with the identity network against the engine CG's iterates, with
an exact inverse against dense solves, window 0 against a hand-written steepest descent, A-orthogonality and the
monotone A-norm error for an untrained network, the loss against a NumPy formula, Ritz values against the closed-form
Laplacian spectrum, the solution against scipy's sparse solve, and the chapter's findings at 16²."""
import numpy as np
import plotly.graph_objects as go
import pytest
import scipy.sparse.linalg as sspla
import torch
from matplotlib.figure import Figure
from torch import nn

from gradviz.data import poisson_system
from gradviz.linalg import conjugate_gradient
from gradviz.learned.deep_cg import (RHS_KINDS, DCDMTraining, PoissonNet, SolverComparison, compare_solvers, dcdm,
                                     dcdm_loss,
                                     deep_cg_figure, directions_figure, explore_deep_cg, inverse_direction,
                                     network_direction, plot_directions, plot_residuals, plot_training,
                                     right_hand_side, ritz_training_set, train_dcdm, white_noise_set)

F64 = torch.float64


@pytest.fixture(scope="module")
def fitted():
    "A PoissonNet trained for 80 steps on 16² Ritz data (seed 0), with its system and data."
    system = poisson_system(16, device="cpu")
    data = ritz_training_set(system, m=120, count=600, seed=0)
    return system, data, train_dcdm(system, data, steps=80, seed=0)


def _rough(system, seed=5):
    "An untrained float64 network as a direction function: arbitrary, nonlinear directions."
    return network_direction(PoissonNet(seed=seed, device="cpu", dtype=F64), system)


# ---------------------------------------------------------------- the iteration
@pytest.mark.parametrize("obstacles", [None, "disc", "slit"])
def test_identity_network_gives_the_engine_cg_iterates(obstacles):
    system = poisson_system(20, obstacles, device="cpu")
    b = right_hand_side(system, "noise", seed=1)
    cg = []
    conjugate_gradient(system.matvec, b, tol=1e-14, max_iters=30, callback=lambda k, x, r: cg.append(x.clone()))
    for k in (1, 2, 5, 12, 30):
        x = dcdm(system, b, lambda r: r, tol=1e-14, max_iters=k).x
        assert float((x - cg[k - 1]).norm() / cg[k - 1].norm()) < 1e-10


@pytest.mark.parametrize("scale", [1.0, 7.0, -0.01])
def test_exact_inverse_converges_in_one_step(scale):
    system = poisson_system(14, "box", device="cpu")
    A, b = system.dense(), right_hand_side(system, seed=2)
    res = dcdm(system, b, lambda r: scale * torch.linalg.solve(A, r))
    assert res.num_iters == 1 and res.converged and res.residual_norms[-1] / float(b.norm()) < 1e-12
    torch.testing.assert_close(inverse_direction(system)(b), torch.linalg.solve(A, b), rtol=0, atol=1e-12)


def test_window_zero_with_identity_is_steepest_descent():
    system = poisson_system(10, device="cpu")
    A, b = system.dense(), right_hand_side(system, seed=0)
    x = torch.zeros_like(b)
    for _ in range(15):  # steepest descent with exact line search, written out
        r = b - A @ x
        x = x + (r @ r) / (r @ A @ r) * r
    got = dcdm(system, b, lambda r: r, window=0, tol=1e-14, max_iters=15)
    torch.testing.assert_close(got.x, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_untrained_network_a_orthogonal_and_a_norm_error_monotone(window):
    system = poisson_system(16, "two_boxes", device="cpu")
    b, f = right_hand_side(system, seed=4), _rough(system)
    res = dcdm(system, b, f, tol=1e-8, max_iters=25, window=window, record=True)
    P = res.directions
    AP = system.matvec(P)
    for k in range(len(P)):
        for j in range(1, min(window, k) + 1):
            assert float((P[k] @ AP[k - j]).abs() / (P[k] @ AP[k])) < 1e-10
    x_star = torch.as_tensor(sspla.spsolve(system.to_scipy().tocsc(), b.numpy()))
    errs = [float(torch.sqrt((x - x_star) @ system.matvec(x - x_star)))
            for x in (dcdm(system, b, f, tol=1e-8, max_iters=k, window=window).x for k in range(1, 21))]
    assert (np.diff(errs) <= 1e-12 * errs[0]).all()
    assert res.residuals.shape == (res.num_iters + 1, system.size)
    torch.testing.assert_close(res.residuals[-1], b - system.matvec(res.x), rtol=0, atol=1e-12)


def test_solution_matches_scipy_and_stops_on_the_true_residual(fitted):
    system, _, fit = fitted
    b = right_hand_side(system, "point", seed=7)
    res = dcdm(system, b, network_direction(fit.net, system), tol=1e-9)
    x_ref = sspla.spsolve(system.to_scipy().tocsc(), b.numpy())
    assert res.converged and float(torch.linalg.norm(b - system.matvec(res.x))) <= 1e-9 * float(b.norm())
    np.testing.assert_allclose(res.x.numpy(), x_ref, rtol=0, atol=1e-7 * np.abs(x_ref).max())


def test_bad_direction_is_refused():
    system = poisson_system(8, device="cpu")
    b = right_hand_side(system, seed=0)
    with pytest.raises(ValueError, match="`direction_fn`"):
        dcdm(system, b, lambda r: torch.zeros_like(r))
    with pytest.raises(ValueError, match="`direction_fn`"):
        dcdm(system, b, lambda r: r[:-1])


# ---------------------------------------------------------------- the loss
def test_loss_matches_numpy_and_is_scale_invariant():
    system = poisson_system(9, "disc", device="cpu")
    A = system.dense().numpy()
    B = white_noise_set(system, 6, seed=3) * torch.arange(1, 7, dtype=F64)[:, None]  # rows of different norms
    f = _rough(system)
    with torch.no_grad():
        got, F_ = float(dcdm_loss(f, B, system)), f(B).numpy()
    b = B.numpy()
    alpha = (b * F_).sum(1) / (F_ * (F_ @ A)).sum(1)
    ref = np.mean(((b - alpha[:, None] * (F_ @ A)) ** 2).sum(1) / (b ** 2).sum(1))
    assert abs(got - ref) < 1e-13
    for c in (-3.0, 0.1, 10.0):
        with torch.no_grad(): assert abs(float(dcdm_loss(lambda R: c * f(R), B, system)) - got) < 1e-12
    inv = lambda R: torch.linalg.solve(system.dense(), R.T).T
    assert float(dcdm_loss(inv, B, system.dense())) < 1e-24


def test_loss_has_gradients_for_training():
    system = poisson_system(8, device="cpu")
    net = PoissonNet(channels=4, blocks=1, seed=0, device="cpu")
    loss = dcdm_loss(network_direction(net, system), white_noise_set(system, 4).float(), system)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


# ---------------------------------------------------------------- data
def test_ritz_values_match_the_closed_form_spectrum():
    system = poisson_system(12, device="cpu")
    data = ritz_training_set(system, m=144, count=50, seed=1)  # m = n: every eigenvalue
    ij = torch.arange(1, 13, dtype=F64) * np.pi / 13
    exact = (4 - 2 * torch.cos(ij)[:, None] - 2 * torch.cos(ij)[None, :]).flatten().sort().values
    torch.testing.assert_close(data.ritz_values[:5], exact[:5], rtol=0, atol=1e-9)
    V = data.ritz_vectors
    torch.testing.assert_close(system.matvec(V[:, 0]), data.ritz_values[0] * V[:, 0], rtol=0, atol=1e-8)
    assert data.num_boosted == 144 // 2 + 144 // 20
    torch.testing.assert_close(data.b.norm(dim=1), torch.ones(50, dtype=F64), rtol=0, atol=1e-12)


def test_boost_moves_the_data_down_the_spectrum():
    system = poisson_system(16, device="cpu")
    q = lambda B: float((B * system.matvec(B)).sum(1).mean())
    boosted, flat = (ritz_training_set(system, m=100, count=400, low_boost=k, seed=0).b for k in (9.0, 1.0))
    assert q(boosted) < q(flat) < q(white_noise_set(system, 400)) + 0.2


def test_neumann_right_hand_sides_are_orthogonal_to_constants():
    system = poisson_system(14, "two_boxes", boundary="neumann", device="cpu")
    ones = torch.ones(system.size, dtype=F64)
    data = ritz_training_set(system, m=60, count=100, seed=0)
    assert (data.ritz_values > 1e-8).all()
    B = torch.cat([data.b, white_noise_set(system, 20)] + [right_hand_side(system, k, seed=2)[None] for k in RHS_KINDS])
    assert float((B @ ones).abs().max()) < 1e-10
    with pytest.raises(ValueError, match="`system`"):
        inverse_direction(system)


def test_right_hand_sides():
    system = poisson_system(12, "box", device="cpu")
    point = right_hand_side(system, "point", seed=3)
    assert point.sum() == 1 and (point != 0).sum() == 1
    smooth = right_hand_side(system, seed=3)
    assert torch.equal(smooth, right_hand_side(system, seed=torch.Generator().manual_seed(3)))
    assert not torch.equal(smooth, right_hand_side(system, seed=4))


# ---------------------------------------------------------------- the network
def test_poissonnet_shapes_parameters_and_seeds():
    net = PoissonNet(seed=0, device="cpu")
    assert sum(p.numel() for p in net.parameters()) == 18737
    assert net(torch.zeros(3, 1, 9, 11)).shape == (3, 1, 9, 11)
    assert torch.equal(PoissonNet(seed=0, device="cpu").head.weight, net.head.weight)
    assert not torch.equal(PoissonNet(seed=1, device="cpu").head.weight, net.head.weight)


def test_network_direction_reads_and_writes_fluid_cells():
    system = poisson_system(10, "disc", device="cpu")
    lin = nn.Conv2d(1, 1, 3, padding=1, bias=False, dtype=F64)
    f = network_direction(lin, system)
    R = white_noise_set(system, 3, seed=0)
    grids = torch.zeros(3, 1, 10, 10, dtype=F64)
    grids[:, 0, system.fluid] = R
    with torch.no_grad():
        torch.testing.assert_close(f(R), lin(grids)[:, 0, system.fluid], rtol=0, atol=1e-14)
        torch.testing.assert_close(f(R[0]), f(R)[0], rtol=0, atol=1e-14)


# ---------------------------------------------------------------- the chapter's findings, at 16²
def test_training_lowers_the_held_out_loss(fitted):
    _, _, fit = fitted
    assert isinstance(fit, DCDMTraining) and len(fit.losses) == 80
    assert fit.val_steps.tolist() == [0, 25, 50, 75, 80]
    assert fit.val_losses[-1] < 0.1 * fit.val_losses[0]


@pytest.mark.parametrize("obstacles", [None, "box"])
def test_trained_dcdm_needs_several_times_fewer_iterations_than_cg(fitted, obstacles):
    system16, _, fit = fitted
    system = system16 if obstacles is None else poisson_system(16, obstacles, device="cpu")
    for seed in (3, 4, 5):
        for kind in ("smooth", "point"):
            c = compare_solvers(system, right_hand_side(system, kind, seed=seed),
                                {"DCDM": network_direction(fit.net, system)})
            it = c.iterations
            assert it["DCDM"] is not None and min(it["CG"], it["Jacobi-PCG"]) >= 2.5 * it["DCDM"]


def test_comparison_iterations_and_jacobi_on_the_empty_grid():
    system = poisson_system(16, device="cpu")
    c = compare_solvers(system, right_hand_side(system, seed=0), {"inverse": inverse_direction(system)}, tol=1e-8)
    assert c.iterations["inverse"] == 1 and c.iterations["CG"] == c.iterations["Jacobi-PCG"]
    np.testing.assert_allclose(c.histories["CG"], c.histories["Jacobi-PCG"], rtol=1e-12)
    assert SolverComparison({"x": np.array([1.0, 0.5])}, 0.1).iterations == {"x": None}


# ---------------------------------------------------------------- figures and the explorer
def test_figures(fitted):
    system, _, fit = fitted
    b = right_hand_side(system, "point", seed=0)
    res = dcdm(system, b, network_direction(fit.net, system), record=True)
    c = compare_solvers(system, b, {"DCDM": network_direction(fit.net, system)})
    assert isinstance(plot_residuals(c), Figure) and len(plot_residuals({"a": c, "b": c}).axes) == 2
    assert isinstance(plot_training({"fit": fit}), Figure)
    assert len(plot_directions(system, res, count=2).axes) == 6
    fig = directions_figure(system, res, max_frames=4)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == min(4, res.num_iters)
    with pytest.raises(ValueError, match="`result`"):
        plot_directions(system, dcdm(system, b, lambda r: r))


def test_deep_cg_figure_and_explorer(fitted):
    fig = deep_cg_figure(16, "slit", 2, "exact inverse", tol=1e-8, device="cpu")
    assert [t.name.split(":")[0] for t in fig.data] == ["CG", "Jacobi-PCG", "DCDM (exact inverse)"]
    assert fig.data[2].name.endswith(": 1")
    ex = explore_deep_cg(fitted[2])
    shown = ex.update(N=16, network="trained")
    assert len(shown.data) == 3 and shown.layout.shapes[0].y0 == 1e-6
    assert ex.update(tol=1e-3).layout.shapes[0].y0 == 1e-3
    assert ex.update(network="identity", window=0).data[2].name.startswith("DCDM (identity)")
    with pytest.raises(ValueError, match="`network`"):
        ex.update(network="jacobi")


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_the_system(device):
    system = poisson_system(10, device=device)
    data = ritz_training_set(system, m=20, count=40, seed=0)
    fit = train_dcdm(system, data, net=PoissonNet(channels=4, blocks=1, device=device), steps=2, batch_size=8)
    assert data.b.device.type == device and next(fit.net.parameters()).device.type == device
    res = dcdm(system, right_hand_side(system, seed=0), network_direction(fit.net, system), max_iters=3)
    assert res.x.device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_SYS = poisson_system(8, device="cpu")
_B = right_hand_side(_SYS, seed=0)
_DATA = ritz_training_set(_SYS, m=10, count=20, seed=0)
_NET = PoissonNet(channels=2, blocks=1, device="cpu")
_RES = dcdm(_SYS, _B, lambda r: r, record=True)
_FIT = DCDMTraining(_NET, np.ones(3), np.array([0, 3]), np.ones(2))
_CMP = compare_solvers(_SYS, _B)
_BAD_B = [_B[:-1], _B[None, None], _B.long(), torch.full_like(_B, NAN), "b"]
_BAD_TOL = [0.0, -1.0, NAN, INF]

PROBES = [
    Probe(dcdm, dict(matvec=_SYS, b=_B, direction_fn=lambda r: r),
          dict(matvec=["A", 3], b=[_B[None], _B.long(), torch.full_like(_B, INF), "b"], direction_fn=[3, "f"],
               x0=[_B[:-1], torch.full_like(_B, NAN)], tol=_BAD_TOL, max_iters=SIZES + [1.5], window=[-1, 1.5],
               record=["yes"])),
    Probe(network_direction, dict(net=_NET, system=_SYS),
          dict(net=["net", nn.ReLU()], system=["system", 3])),
    Probe(inverse_direction, dict(system=_SYS), dict(system=["system", poisson_system(6, boundary="neumann")])),
    Probe(dcdm_loss, dict(net=lambda R: R, b=_DATA.b, matvec=_SYS),
          dict(net=[3], b=[_DATA.b[None], _DATA.b.long(), torch.zeros_like(_DATA.b), "b"], matvec=[3, "A"])),
    Probe(ritz_training_set, dict(system=_SYS, m=10, count=20),
          dict(system=["system"], m=SIZES + [1, 65], count=SIZES, low_boost=[0.0, -1.0, NAN], low_modes=[-1, 11],
               seed=[-1, 0.5])),
    Probe(white_noise_set, dict(system=_SYS, count=5), dict(system=["system"], count=SIZES, seed=[-1, 0.5])),
    Probe(PoissonNet, dict(channels=2, blocks=1, device="cpu"),
          dict(channels=SIZES, blocks=SIZES, seed=[-1, 0.5], device=[UNKNOWN, 3], dtype=[torch.int64, "float"])),
    Probe(train_dcdm, dict(system=_SYS, data=_DATA, net=PoissonNet(channels=2, blocks=1, device="cpu"), steps=1,
                           batch_size=4),
          dict(system=["system"], data=[_DATA.b[:, :-1], _DATA.b.long(), "data"], net=["net"], steps=SIZES,
               batch_size=SIZES + [100], lr=[0.0, NAN], val_fraction=[0.0, 1.0, NAN],
               val_every=SIZES, seed=[-1, 0.5], progress=["bar"])),
    Probe(right_hand_side, dict(system=_SYS), dict(system=["system"], kind=[UNKNOWN], seed=[-1, 0.5])),
    Probe(compare_solvers, dict(system=_SYS, b=_B),
          dict(system=["system"], b=_BAD_B, directions=[3, "f"], tol=_BAD_TOL, max_iters=SIZES, window=[-1])),
    Probe(plot_residuals, dict(comparisons=_CMP), dict(comparisons=[{}, "c", {"a": 3}])),
    Probe(plot_training, dict(runs=_FIT), dict(runs=[{}, "r", {"a": 3}])),
    Probe(plot_directions, dict(system=_SYS, result=_RES),
          dict(system=["system"], result=["r", dcdm(_SYS, _B, lambda r: r)], count=SIZES)),
    Probe(directions_figure, dict(system=_SYS, result=_RES),
          dict(system=["system"], result=["r", dcdm(_SYS, _B, lambda r: r)], max_frames=SIZES)),
    Probe(deep_cg_figure, dict(N=8, network="identity", device="cpu"),
          dict(N=[2, -1, 8.5], obstacles=[UNKNOWN], window=[-1], network=[UNKNOWN], low_boost=[0.0, NAN],
               tol=[0.0, 2.0, NAN], device=[UNKNOWN])),
    Probe(explore_deep_cg, dict(), dict(training=["t", _NET])),
]

UNPROBED = {}
