"""Reference tests for gradviz.rl.martingale: closed forms, numpy least squares, identities, bad input (float64)."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.rl.martingale import (
    ConvergenceRate, GaussianStep, IterativeFit, LinearFamily, Paths, coarsen, continuous_limits, convergence_rates,
    exact_transition, explore_martingale, family_value, fit_gtd, fit_lstd, fit_martingale_loss, fit_method, fit_mstde,
    fit_td, martingale_figure, martingale_loss, mesh_slider_figure, mesh_study, plot_convergence, plot_parameters_vs_dt,
    plot_quadratic_variation, predicted_quadratic_variation, quadratic_family, realized_quadratic_variation,
    returns_to_go, seed_study, simulate_diffusion, td_errors, td_test_functions, theta_star_brownian, true_value,
    value_traces)

KS = (10, 50, 200, 1000)


@pytest.fixture(scope="module")
def brownian_study():
    "ML, LSTD and MSTDE on 3 seeds of 4000 Brownian paths seen at K ∈ {10, 50, 200, 1000}."
    return [mesh_study(simulate_diffusion(4000, 1000, seed=s, device="cpu"), KS) for s in range(3)]


@pytest.fixture(scope="module")
def small():
    p = simulate_diffusion(500, 40, seed=11, device="cpu")
    phi, base = quadratic_family(p)
    return p, phi, base


# --- simulation -------------------------------------------------------------------------------

def test_exact_transition_closed_forms():
    assert exact_transition(0.25, 2.0, 0.0) == (1.0, 1.0)
    assert isinstance(exact_transition(0.25), GaussianStep) and exact_transition(0.25, 2.0).s == 1.0
    a, s = exact_transition(0.5, 1.5, 0.8)
    assert a == pytest.approx(math.exp(-0.4), abs=1e-15)
    assert s**2 == pytest.approx(2.25 * (1 - math.exp(-0.8)) / 1.6, rel=1e-14)
    a_small, s_small = exact_transition(0.5, 1.0, 1e-9)   # κ → 0 tends to Brownian motion
    assert a_small == pytest.approx(1.0, abs=1e-8) and s_small == pytest.approx(math.sqrt(0.5), rel=1e-8)


@pytest.mark.parametrize("kappa", [0.0, 1.0, 3.0])
def test_simulation_moments_are_exact_at_any_mesh(kappa):
    m_T = math.exp(-kappa) if kappa else 1.0
    v_T = (1 - math.exp(-2 * kappa)) / (2 * kappa) if kappa else 1.0
    for K in (1, 7, 300):
        X = simulate_diffusion(100_000 if K < 300 else 20_000, K, kappa=kappa, x0_mean=1.0, x0_std=0.0, seed=K, device="cpu").X[:, -1]
        se = math.sqrt(v_T / len(X))
        assert abs(X.mean().item() - m_T) < 4 * se
        assert abs(X.var().item() - v_T) < 6 * v_T * math.sqrt(2 / len(X))


def test_ou_recursion_matches_loop():
    "The cumulative-sum OU path equals the plain recursion X_{k+1} = aX_k + sZ_k."
    p = simulate_diffusion(50, 500, kappa=2.0, sigma=0.7, seed=4, device="cpu")
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(50, generator=g, dtype=torch.float64)
    Z = torch.randn(50, 500, generator=g, dtype=torch.float64)
    a, s = exact_transition(1 / 500, 0.7, 2.0)
    X = [x0]
    for k in range(500): X.append(a * X[-1] + s * Z[:, k])
    torch.testing.assert_close(p.X, torch.stack(X, 1), rtol=0, atol=1e-12)
    big = simulate_diffusion(20, 400, kappa=40.0, seed=4, device="cpu")   # κT large: the loop branch
    assert torch.isfinite(big.X).all()


def test_common_random_numbers_and_seeding():
    fine = simulate_diffusion(30, 1000, kappa=0.5, seed=2, device="cpu")
    for K in (10, 50, 200):
        assert torch.equal(simulate_diffusion(30, K, kappa=0.5, base_steps=1000, seed=2, device="cpu").X, coarsen(fine, K).X)
    assert torch.equal(fine.X, simulate_diffusion(30, 1000, kappa=0.5, seed=torch.Generator().manual_seed(2), device="cpu").X)
    assert not torch.equal(fine.X, simulate_diffusion(30, 1000, kappa=0.5, seed=3, device="cpu").X)
    assert fine.dt == pytest.approx(1e-3) and fine.times[-1].item() == pytest.approx(1.0) and fine.n_steps == 1000


def test_true_value_solves_feynman_kac():
    "∂_t J − κx ∂_x J + ½σ²∂²_x J = 0 (finite differences) and J(T, x) = x²."
    t, x, h = torch.tensor(0.3, dtype=torch.float64), torch.tensor([-1.2, 0.4, 2.0], dtype=torch.float64), 1e-4
    for kappa, sigma in ((0.0, 1.3), (0.7, 0.9)):
        J = lambda tt, xx: true_value(tt, xx, T=1.0, sigma=sigma, kappa=kappa)
        dt_ = (J(t + h, x) - J(t - h, x)) / (2 * h)
        dx = (J(t, x + h) - J(t, x - h)) / (2 * h)
        dxx = (J(t, x + h) - 2 * J(t, x) + J(t, x - h)) / h**2
        assert (dt_ - kappa * x * dx + 0.5 * sigma**2 * dxx).abs().max() < 1e-5
        torch.testing.assert_close(J(torch.tensor(1.0, dtype=torch.float64), x), x**2)


def test_theta_star_reproduces_true_value(small):
    p, phi, base = small
    for sigma in (0.5, 1.7):
        ps = simulate_diffusion(100, 20, sigma=sigma, seed=1, device="cpu")
        f, b = quadratic_family(ps)
        torch.testing.assert_close(family_value(theta_star_brownian(sigma), f, b), true_value(ps.times, ps.X, sigma=sigma), rtol=0, atol=1e-12)
    assert (phi[:, -1] == 0).all() and torch.equal(base[:, -1], p.X[:, -1] ** 2)   # terminal condition for every θ
    fam = quadratic_family(p)
    assert isinstance(fam, LinearFamily) and fam.phi is not None and torch.equal(fam.base, base)


# --- estimators -------------------------------------------------------------------------------

def test_ml_equals_numpy_lstsq_with_rewards(small):
    p, phi, base = small
    r = torch.randn(500, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theta = fit_martingale_loss(phi, base, p.dt, r)
    G = base[:, -1:].numpy() + np.cumsum((r.numpy() * p.dt)[:, ::-1], 1)[:, ::-1]
    A, y = phi[:, :-1].reshape(-1, 2).numpy(), (G - base[:, :-1].numpy()).reshape(-1)
    np.testing.assert_allclose(theta.numpy(), np.linalg.lstsq(A, y, rcond=None)[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(returns_to_go(base, p.dt, r), torch.as_tensor(G), rtol=0, atol=1e-12)


def test_ml_is_a_minimiser_and_sgd_reaches_it(small):
    p, phi, base = small
    theta = fit_martingale_loss(phi, base, p.dt)
    f0 = martingale_loss(theta, phi, base, p.dt)
    for d in torch.eye(2, dtype=torch.float64):
        assert martingale_loss(theta + 1e-3 * d, phi, base, p.dt) > f0
        assert martingale_loss(theta - 1e-3 * d, phi, base, p.dt) > f0
    sgd = fit_martingale_loss(phi, base, p.dt, solver="sgd", epochs=200, batch_size=100)
    assert isinstance(sgd, IterativeFit) and sgd.history.shape == (201, 2)
    torch.testing.assert_close(sgd.theta, theta, rtol=0, atol=0.03)


def test_lstd_solves_orthogonality_and_closed_form(small):
    p, phi, base = small
    theta = fit_lstd(phi, base, p.dt)
    xi, dphi = phi[:, :-1], phi.diff(dim=1)
    A = torch.einsum("nki,nkj->ij", xi, dphi).numpy()
    b = torch.einsum("nki,nk->i", xi, base.diff(dim=1)).numpy()
    np.testing.assert_allclose(theta.numpy(), -np.linalg.solve(A, b), rtol=1e-10)
    resid = (td_test_functions(phi, p.dt) * td_errors(theta, phi, base, p.dt)[..., None]).sum(1).mean(0)
    assert resid.abs().max() < 1e-12


def test_td_lambda_one_telescopes_to_the_ml_gradient(small):
    "Σ_k e_k δ_k (λ = 1 trace) = Σ_j φ_j Δt (G_j − J_j) at any θ, with rewards: to 1e-10."
    p, phi, base = small
    g = torch.Generator().manual_seed(3)
    r, theta = torch.randn(500, 40, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    lhs = (td_test_functions(phi, p.dt, lam=1.0) * td_errors(theta, phi, base, p.dt, r)[..., None]).sum(1)
    rhs = (phi[:, :-1] * p.dt * (returns_to_go(base, p.dt, r) - family_value(theta, phi, base)[:, :-1])[..., None]).sum(1)
    assert (lhs - rhs).abs().max() < 1e-10
    torch.testing.assert_close(fit_lstd(phi, base, p.dt, r, lam=1.0), fit_martingale_loss(phi, base, p.dt, r), rtol=0, atol=1e-10)


def test_trace_recursion_by_hand():
    phi = torch.arange(1.0, 9.0, dtype=torch.float64).reshape(1, 4, 2)
    e = td_test_functions(phi, 0.5, lam=0.25)
    d = 0.25**0.5
    want = [phi[0, 0] * 0.5]
    for k in (1, 2): want.append(d * want[-1] + phi[0, k] * 0.5)
    torch.testing.assert_close(e[0], torch.stack(want))
    torch.testing.assert_close(td_test_functions(phi, 0.5), phi[:, :-1])
    torch.testing.assert_close(td_test_functions(phi, 0.5, lam=0.0), phi[:, :-1] * 0.5)   # λ = 0 trace: TD(0) with step ∝ Δt


def test_td_and_gtd_converge_to_lstd(small):
    p, phi, base = small
    ref = fit_lstd(phi, base, p.dt)
    torch.testing.assert_close(fit_td(phi, base, p.dt, epochs=100).theta, ref, rtol=0, atol=0.03)
    torch.testing.assert_close(fit_gtd(phi, base, p.dt, epochs=400).theta, ref, rtol=0, atol=0.05)
    torch.testing.assert_close(fit_td(phi, base, p.dt, lam=0.7, epochs=100).theta, fit_lstd(phi, base, p.dt, lam=0.7), rtol=0, atol=0.03)


def test_td_step_size_does_not_need_retuning_across_meshes():
    fine = simulate_diffusion(2000, 500, seed=5, device="cpu")
    for K in (10, 500):
        p = coarsen(fine, K); phi, base = quadratic_family(p)
        torch.testing.assert_close(fit_td(phi, base, p.dt, lr=0.5).theta, fit_lstd(phi, base, p.dt), rtol=0, atol=0.03)


def test_mstde_minimises_mean_square_td_error(small):
    p, phi, base = small
    theta = fit_mstde(phi, base, p.dt)
    f = lambda th: (td_errors(th, phi, base, p.dt) ** 2).sum(1).mean()
    for d in torch.eye(2, dtype=torch.float64): assert f(theta + 1e-3 * d) > f(theta) < f(theta - 1e-3 * d)
    A, y = phi.diff(dim=1).reshape(-1, 2).numpy(), -base.diff(dim=1).reshape(-1).numpy()
    np.testing.assert_allclose(theta.numpy(), np.linalg.lstsq(A, y, rcond=None)[0], rtol=0, atol=1e-10)


def test_tolerances_on_brownian_motion(brownian_study):
    "ML and LSTD within 0.15 of θ* = (σ², 0) per coordinate at every K (N = 4000), MSTDE off by more than 1."
    star = theta_star_brownian(1.0)
    for study in brownian_study:
        for m in ("ML", "LSTD"): assert (study[m] - star).abs().max() < 0.15, (m, study[m])
        assert ((study["MSTDE"] - star).abs().max(1).values > 1).all()


def test_mstde_limit_matches_the_quadratic_variation_minimiser(brownian_study):
    "As Δt → 0, MSTDE's θ₂ tends to −8/5, the minimiser of ∫(1+t)(1+θ₂(1−t))²dt."
    th2 = np.mean([s["MSTDE"][-1, 1].item() for s in brownian_study])
    assert abs(th2 + 1.6) < 0.05


def test_quadratic_variation_gap_is_exact():
    "E Σ(ΔJ)² − E Σ 4σ²X_k²Δt = 2σ⁴TΔt for Brownian motion."
    fine = simulate_diffusion(20_000, 200, sigma=1.5, seed=8, device="cpu")
    for K in (5, 20, 200):
        p = coarsen(fine, K)
        gap = realized_quadratic_variation(true_value(p.times, p.X, sigma=1.5))[:, -1] - predicted_quadratic_variation(2 * p.X, 1.5, p.dt)[:, -1]
        assert abs(gap.mean().item() - 2 * 1.5**4 * p.dt) < 4 * gap.std().item() / math.sqrt(len(gap)) + 1e-9
    x = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(realized_quadratic_variation(x), torch.tensor([[0.0, 1.0, 5.0]], dtype=torch.float64))
    torch.testing.assert_close(predicted_quadratic_variation(x, 2.0, 0.5), torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64))


def test_ou_convergence_is_first_order():
    Ks = (5, 10, 20, 50, 100, 1000)
    study = mesh_study(simulate_diffusion(2000, 1000, kappa=1.0, seed=0, device="cpu"), Ks)
    rates = convergence_rates(study, Ks)
    for m, r in rates.items():
        assert isinstance(r, ConvergenceRate) and 0.7 < r.slope < 1.3, (m, r.slope)
        np.testing.assert_allclose(r.distance, (study[m][:-1] - study[m][-1]).norm(dim=1).numpy(), rtol=1e-12)
        np.testing.assert_allclose(r.dt, [1 / K for K in Ks[:-1]], rtol=1e-15)
    assert (study["ML"][-1] - study["LSTD"][-1]).abs().max() > 0.1   # different projections when misspecified
    fig = plot_convergence(rates, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) == len(rates) + 1
    assert fig.axes[0].get_title() == "t"


def test_device_follows_inputs_and_explicit_device(device):
    p = simulate_diffusion(200, 20, seed=0, device=device)
    assert p.X.device.type == device.type
    phi, base = quadratic_family(p)
    for f in (fit_martingale_loss, fit_lstd, fit_mstde): assert f(phi, base, p.dt).device.type == device.type
    assert fit_td(phi, base, p.dt, epochs=2).theta.device.type == device.type
    assert fit_lstd(phi.cpu(), base.cpu(), p.dt, device=device).device.type == device.type
    torch.testing.assert_close(fit_lstd(phi, base, p.dt).cpu(), fit_lstd(phi.cpu(), base.cpu(), p.dt), rtol=1e-9, atol=1e-9)


def test_continuous_limits_match_simulation():
    "ML and LSTD on OU (κ = 1) at K = 400, N = 20 000 land on the quadrature limits; Brownian limits are (σ², 0)."
    lim = continuous_limits(kappa=1.0)
    p = simulate_diffusion(20_000, 400, kappa=1.0, seed=1, device="cpu")
    phi, base = quadratic_family(p)
    torch.testing.assert_close(fit_martingale_loss(phi, base, p.dt), lim["ML"], rtol=0, atol=0.02)
    torch.testing.assert_close(fit_lstd(phi, base, p.dt), lim["LSTD"], rtol=0, atol=0.02)
    for m in ("ML", "LSTD"): torch.testing.assert_close(continuous_limits(sigma=0.7)[m], theta_star_brownian(0.7), rtol=0, atol=1e-9)
    k_small = continuous_limits(kappa=1e-7, sigma=0.7)   # κ → 0 is continuous
    torch.testing.assert_close(k_small["ML"], theta_star_brownian(0.7), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="`sigma`"): continuous_limits(sigma=-1.0)


# --- explorer ---------------------------------------------------------------------------------

def test_explorer_updates_every_method():
    ex = explore_martingale()
    assert set(ex.controls) >= {"method", "n_steps", "n_paths", "kappa", "sigma", "lam"}
    for m in ("ML", "LSTD", "TD(0)", "TD(λ)", "GTD", "MSTDE"):
        fig = ex.update(method=m, n_paths=300, n_steps=20)
        assert isinstance(fig, go.Figure) and len(fig.data) == (2 if m == "ML" else 3)
    moved = ex.update(kappa=1.5)
    assert moved is not fig and not np.array_equal(np.asarray(moved.data[0].y), np.asarray(fig.data[0].y))
    assert len(martingale_figure(kappa=1.5).data) == 3


def test_fit_method_matches_the_estimators_and_takes_a_generator(small):
    p, phi, base = small
    torch.testing.assert_close(fit_method("LSTD", phi, base, p.dt), fit_lstd(phi, base, p.dt))
    torch.testing.assert_close(fit_method("TD(λ)", phi, base, p.dt, lam=0.3, seed=2), fit_td(phi, base, p.dt, lam=0.3, seed=2).theta)
    a = fit_method("GTD", phi, base, p.dt, seed=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, fit_gtd(phi, base, p.dt, seed=torch.Generator().manual_seed(5)).theta)


def test_value_traces_and_mesh_slider_figure():
    star = theta_star_brownian(0.8)
    tr = value_traces({"θ*": star}, sigma=0.8)
    assert len(tr) == 2 and all(isinstance(t, go.Scatter) for t in tr)
    np.testing.assert_allclose(tr[1].y, tr[0].y, atol=1e-12)
    study = {"A": torch.stack([star, star + 0.1]), "B": torch.stack([star, star - 0.1])}
    fig = mesh_slider_figure(study, (10, 20), sigma=0.8)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 * 3 and len(fig.layout.sliders[0].steps) == 2
    assert fig.layout.sliders[0].active == 1


def test_static_figures():
    fine = simulate_diffusion(200, 40, seed=0, device="cpu")
    study = mesh_study(fine, (5, 10, 40))
    fig = plot_parameters_vs_dt(study, (5, 10, 40), truth=theta_star_brownian(), title="θ")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[0].lines) == len(study) + 1
    fig = plot_quadratic_variation(fine, lambda t, x: true_value(t, x), lambda t, x: 2 * x, (5, 10, 20), n_show=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[0].lines) == 4


def test_seed_study_repeats_mesh_study():
    out = seed_study(2, 300, (5, 10), methods=("ML", "MSTDE"), seed=4)
    assert set(out) == {"ML", "MSTDE"} and out["ML"].shape == (2, 2, 2)
    again = mesh_study(simulate_diffusion(300, 10, seed=5), (5, 10), ("ML",))
    torch.testing.assert_close(out["ML"][1], again["ML"])


# --- bad input ----------------------------------------------------------------------------------

def test_bad_input_names_the_argument(small):
    p, phi, base = small
    with pytest.raises(ValueError, match="`dt`"): exact_transition(-0.1)
    with pytest.raises(ValueError, match="`sigma`"): simulate_diffusion(10, 10, sigma=-1.0)
    with pytest.raises(ValueError, match="`sigma`"): true_value(torch.zeros(1), torch.zeros(1), sigma=-0.5)
    with pytest.raises(ValueError, match="`t`"): true_value(torch.tensor([1.5]), torch.zeros(1))
    with pytest.raises(ValueError, match="`n_paths`"): simulate_diffusion(0, 10)
    with pytest.raises(ValueError, match="`base_steps`"): simulate_diffusion(10, 10, base_steps=25)
    with pytest.raises(ValueError, match="`T`"): simulate_diffusion(10, 10, T=0.0)
    with pytest.raises(TypeError, match="`seed`"): simulate_diffusion(10, 10, seed="3")
    with pytest.raises(TypeError, match="`seed`"): fit_td(phi, base, p.dt, seed=1.5)
    with pytest.raises(ValueError, match="`seed`"): simulate_diffusion(10, 10, seed=-1)
    with pytest.raises(ValueError, match="`n_steps`"): coarsen(p, 7)
    with pytest.raises(TypeError, match="`paths`"): quadratic_family(p.X)
    for fit in (fit_martingale_loss, fit_lstd, fit_td, fit_gtd, fit_mstde):
        with pytest.raises(ValueError, match="`dt`"): fit(phi, base, 0.0)
        with pytest.raises(ValueError, match="`dt`"): fit(phi, base, -p.dt)
        with pytest.raises(ValueError, match="`base`"): fit(phi, base[:, :-1], p.dt)
        with pytest.raises(ValueError, match="`phi`"): fit(phi[0], base, p.dt)
        with pytest.raises(ValueError, match="`rewards`"): fit(phi, base, p.dt, torch.zeros(500, 41, dtype=torch.float64))
        with pytest.raises(TypeError, match="`phi`"): fit(phi.numpy(), base, p.dt)
    with pytest.raises(ValueError, match="`phi`"): fit_lstd(phi.float().masked_fill(torch.ones_like(phi, dtype=torch.bool), float("nan")), base, p.dt)
    with pytest.raises(ValueError, match="`lam`"): fit_td(phi, base, p.dt, lam=-0.1)
    with pytest.raises(ValueError, match="`lr`"): fit_td(phi, base, p.dt, lr=0.0)
    with pytest.raises(ValueError, match="`lr_w`"): fit_gtd(phi, base, p.dt, lr_w=-1.0)
    with pytest.raises(ValueError, match="`epochs`"): fit_td(phi, base, p.dt, epochs=0)
    with pytest.raises(ValueError, match="`solver`"): fit_martingale_loss(phi, base, p.dt, solver="adam")
    with pytest.raises(ValueError, match="`theta`"): family_value(torch.zeros(3, dtype=torch.float64), phi, base)
    with pytest.raises(ValueError, match="`methods`"): mesh_study(p, (10,), methods=("SARSA",))
    with pytest.raises(ValueError, match="`method`"): fit_method("SARSA", phi, base, p.dt)
    with pytest.raises(ValueError, match="`sigma`"): predicted_quadratic_variation(base, -1.0, p.dt)
    with pytest.raises(ValueError, match="`values`"): realized_quadratic_variation(base[0])
    with pytest.raises(ValueError, match="`study"): convergence_rates({"ML": torch.zeros(3, 2)}, (5, 10, 20, 40))
    with pytest.raises(ValueError, match="`n_steps`"): convergence_rates({"ML": torch.zeros(2, 2)}, (10, 20))
    with pytest.raises(ValueError, match="`study`"): mesh_slider_figure({"ML": torch.zeros(3, 2)}, (5, 10))
    with pytest.raises(ValueError, match="`x_max`"): value_traces({"ML": torch.zeros(2)}, x_max=0.0)
    with pytest.raises(ValueError, match="`repeats`"): seed_study(0, 10, (5,))
    with pytest.raises(ValueError, match="`method`"): martingale_figure("SARSA")
    with pytest.raises(ValueError, match="`n_show`"): plot_quadratic_variation(p, true_value, lambda t, x: 2 * x, (10,), n_show=0)


# --- bad-input probes (run by tests/test_bad_input.py) ----------------------------------------

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_P = simulate_diffusion(20, 8, seed=0, device="cpu")
_phi, _base = quadratic_family(_P)
_F64 = torch.float64
_nan = torch.tensor([0.0, NAN], dtype=_F64)
_POS = [0.0, -1.0, NAN, INF, "1"]
_NONNEG = [-1.0, NAN, INF, "1"]
_REAL = [NAN, INF, "0"]
_study = {"ML": torch.zeros(4, 2, dtype=_F64), "LSTD": torch.ones(4, 2, dtype=_F64)}
_KS4 = (10, 20, 40, 80)
_rates = convergence_rates({"ML": torch.rand(4, 2, dtype=_F64, generator=torch.Generator().manual_seed(0))}, _KS4)
_PB = dict(phi=_phi, base=_base, dt=_P.dt)  # a valid linear problem
_BAD_PB = dict(phi=[_phi[0], _phi.numpy(), _phi.int(), torch.full_like(_phi, NAN)],
               base=[_base[:, :-1], _base.numpy(), torch.full_like(_base, NAN)], dt=_POS,
               rewards=[torch.zeros(20, 9, dtype=_F64), torch.full((20, 8), NAN, dtype=_F64), "r"])
_SGD = dict(lr=_POS, epochs=SIZES + [2.5], batch_size=SIZES, seed=[-1, "0", 1.5])
_SEQ = [(), 5, "ab"]

PROBES = [
    Probe(exact_transition, dict(dt=0.1), dict(dt=_POS, sigma=_NONNEG, kappa=_REAL)),
    Probe(simulate_diffusion, dict(n_paths=4, n_steps=4, device="cpu"),
          dict(n_paths=SIZES + [2.5], n_steps=SIZES, T=_POS, sigma=_NONNEG, kappa=_REAL, x0_mean=_REAL,
               x0_std=_NONNEG, base_steps=[0, 6, 2.5], seed=[-1, "0", 1.5], device=[3, "no-such-device"])),
    Probe(coarsen, dict(paths=_P, n_steps=4), dict(paths=["paths", _P.X], n_steps=SIZES + [3, 2.5])),
    Probe(quadratic_family, dict(paths=_P), dict(paths=["paths", _P.X])),
    Probe(true_value, dict(t=torch.zeros(3, dtype=_F64), x=torch.zeros(3, dtype=_F64)),
          dict(t=[torch.tensor([1.5], dtype=_F64), _nan, "0", NAN], x=[_nan, "x", INF], T=_POS, sigma=_NONNEG,
               kappa=_REAL)),
    Probe(theta_star_brownian, dict(), dict(sigma=_NONNEG)),
    Probe(family_value, dict(theta=torch.zeros(2, dtype=_F64), phi=_phi, base=_base),
          dict(theta=[torch.zeros(3, dtype=_F64), [0.0, 0.0], _nan, torch.zeros(2, 1, dtype=_F64)],
               phi=[_phi.numpy(), torch.full_like(_phi, NAN), _phi.int()],
               base=[_base[:, :-1], _base.numpy(), torch.full_like(_base, NAN)])),
    Probe(returns_to_go, dict(base=_base, dt=_P.dt), dict(base=_BAD_PB["base"][1:] + [_base[0]], dt=_POS,
                                                        rewards=_BAD_PB["rewards"])),
    Probe(martingale_loss, dict(theta=torch.zeros(2, dtype=_F64), **_PB),
          dict(theta=[torch.zeros(3, dtype=_F64), _nan], **_BAD_PB)),
    Probe(fit_martingale_loss, dict(**_PB), dict(**_BAD_PB, solver=[UNKNOWN], **_SGD)),
    Probe(td_test_functions, dict(phi=_phi, dt=_P.dt), dict(phi=_BAD_PB["phi"], dt=_POS, lam=[-0.1, 1.5, NAN, "0"])),
    Probe(td_errors, dict(theta=torch.zeros(2, dtype=_F64), **_PB),
          dict(theta=[torch.zeros(3, dtype=_F64), _nan], **_BAD_PB)),
    Probe(fit_lstd, dict(**_PB), dict(**_BAD_PB, lam=[-0.1, 1.5, NAN], device=[3, "no-such-device"])),
    Probe(fit_td, dict(**_PB), dict(**_BAD_PB, lam=[-0.1, 1.5, NAN], **_SGD)),
    Probe(fit_gtd, dict(**_PB), dict(**_BAD_PB, lam=[-0.1, 1.5], **_SGD, lr_w=_POS + [1.5])),
    Probe(fit_mstde, dict(**_PB), dict(**_BAD_PB)),
    Probe(realized_quadratic_variation, dict(values=_base), dict(values=[_base[0], _base.numpy(), torch.full_like(_base, NAN)])),
    Probe(predicted_quadratic_variation, dict(grad_x=_base, sigma=1.0, dt=0.1),
          dict(grad_x=[_base[0], _base.numpy(), torch.full_like(_base, NAN)], sigma=_NONNEG, dt=_POS)),
    Probe(mesh_study, dict(paths=_P, n_steps=(4, 8)),
          dict(paths=["paths"], n_steps=_SEQ + [(0,), (3,)], methods=[("SARSA",), "ML", ()], family=["family"])),
    Probe(plot_parameters_vs_dt, dict(study=_study, n_steps=_KS4),
          dict(study=["study", {}, {"ML": torch.zeros(3, 2, dtype=_F64)}, {"ML": "x"}], n_steps=_SEQ + [(0, 1, 2, 3)],
               T=_POS, truth=[torch.zeros(3, dtype=_F64), "x", _nan], title=[3])),
    Probe(plot_quadratic_variation, dict(paths=_P, value_fn=true_value, grad_x_fn=lambda t, x: 2 * x, n_steps=(4, 8)),
          dict(paths=["paths"], value_fn=["f"], grad_x_fn=[3], n_steps=_SEQ + [(3,)], n_show=SIZES + [21],
               show_paths=["paths"], title=[3])),
    Probe(convergence_rates, dict(study=_study, n_steps=_KS4),
          dict(study=["study", {}, {"ML": torch.zeros(3, 2, dtype=_F64)}], n_steps=_SEQ + [(10, 20, 40, 0), (10, 20, 30, 40)],
               T=_POS)),
    Probe(plot_convergence, dict(rates=_rates), dict(rates=[{}, "rates", {"ML": "rate"}], title=[3])),
    Probe(continuous_limits, dict(), dict(T=_POS, sigma=_NONNEG, kappa=_REAL, x0_var=_NONNEG, n_grid=SIZES + [2, 2.5])),
    Probe(value_traces, dict(thetas={"ML": torch.zeros(2, dtype=_F64)}),
          dict(thetas=["thetas", {"ML": torch.zeros(3, dtype=_F64)}, {"ML": _nan}], T=_POS, sigma=_NONNEG, kappa=_REAL,
               x_max=_POS)),
    Probe(mesh_slider_figure, dict(study=_study, n_steps=_KS4),
          dict(study=["study", {}, {"ML": torch.zeros(3, 2, dtype=_F64)}], n_steps=_SEQ, T=_POS)),
    Probe(fit_method, dict(method="LSTD", **_PB),
          dict(method=[UNKNOWN], phi=_BAD_PB["phi"], base=_BAD_PB["base"], dt=_POS, lam=[-0.1, 1.5, NAN],
               seed=[-1, "0"])),
    Probe(martingale_figure, dict(n_steps=4, n_paths=10, device="cpu"),
          dict(method=[UNKNOWN], n_steps=SIZES, n_paths=SIZES, kappa=_REAL, sigma=_NONNEG, lam=[-0.1, 1.5, NAN],
               seed=[-1, "0"])),
    Probe(seed_study, dict(repeats=1, n_paths=10, n_steps=(2, 4), device="cpu"),
          dict(repeats=SIZES, n_paths=SIZES, n_steps=_SEQ + [(0,)], methods=[("SARSA",), "ML"], kappa=_REAL,
               seed=[-1, "0"], progress=["yes"])),
]
