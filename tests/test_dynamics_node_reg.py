"""Reference tests for gradviz.dynamics.node_reg: the Dormand–Prince solver against closed forms and scipy,
the embedded error order, the local regulariser against the solver's own step, gradient isolation, w = 0,
and bad input."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.data import concentric_rings, mlp
from gradviz.dynamics.node_reg import (
    DOPRI5_A, DOPRI5_B, DOPRI5_C, DOPRI5_E, STABILITY_SIZE, NeuralODE, NODERun, ODEClassifier, ODESolution, StepErrors,
    adjoint_backward, dopri5_step, error_norm, explore_node_reg, local_regularizer, node_classifier, node_reg_figure,
    odeint_adjoint, odeint_dopri5, flow_paths, plot_flows, plot_nfe_history, plot_step_errors, plot_step_profile,
    plot_tradeoff, sample_time, sampled_estimates, step_errors, step_profile_frames, step_profile_slider_figure, train_node)
from gradviz.viz import Explorer
from reference import fd_gradient, flat_loss, require_ref

F64 = torch.float64


def _decay(t, z): return -z


def _rotation(omega):
    R = torch.tensor([[0.0, -omega], [omega, 0.0]], dtype=F64)
    return lambda t, z: R @ z, lambda t, z: R.numpy() @ z


# ---------------------------------------------------------------- tableau and one step

def test_tableau_consistency_and_order_conditions():
    for row, c in zip(DOPRI5_A, DOPRI5_C): assert abs(sum(row) - c) < 1e-14
    assert abs(sum(DOPRI5_B) - 1) < 1e-15 and abs(sum(DOPRI5_E)) < 1e-15
    bhat = [b - e for b, e in zip(DOPRI5_B, DOPRI5_E)]
    for q in range(1, 6): assert abs(q * sum(b * c ** (q - 1) for b, c in zip(DOPRI5_B, DOPRI5_C)) - 1) < 1e-13
    for q in range(1, 5): assert abs(q * sum(b * c ** (q - 1) for b, c in zip(bhat, DOPRI5_C)) - 1) < 1e-13


def test_one_step_on_a_linear_problem_is_the_stability_polynomial_and_finds_the_eigenvalue():
    lam, h = -2.0, 0.2
    s = dopri5_step(lambda t, z: lam * z, 0.0, torch.ones(3, dtype=F64), h)
    x = lam * h
    poly5 = sum(x ** k / math.factorial(k) for k in range(6)) + x ** 6 / 600  # DOPRI5's stability polynomial
    torch.testing.assert_close(s.z1, torch.full((3,), poly5, dtype=F64), rtol=0, atol=1e-15)
    assert abs(s.stiffness().item() - abs(lam)) < 1e-12
    assert torch.equal(s.k7, lam * s.z1)


def test_embedded_error_estimate_is_fifth_order_and_the_kept_solution_sixth():
    hs = np.logspace(-2.3, -0.5, 10)
    one = torch.ones(1, dtype=F64)
    est = [abs(dopri5_step(_decay, 0.0, one, float(h)).error.item()) for h in hs]
    true = [abs(dopri5_step(_decay, 0.0, one, float(h)).z1.item() - math.exp(-h)) for h in hs]
    assert abs(np.polyfit(np.log(hs), np.log(est), 1)[0] - 5) < 0.3
    assert abs(np.polyfit(np.log(hs[4:]), np.log(true[4:]), 1)[0] - 6) < 0.3


def test_error_norm_is_the_scaled_rms():
    err, z0, z1 = torch.tensor([1e-6, -2e-6], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.5, -3.0], dtype=F64)
    scale = 1e-6 + 1e-3 * torch.tensor([1.0, 3.0], dtype=F64)
    assert abs(error_norm(err, z0, z1, 1e-6, 1e-3).item() - ((err / scale) ** 2).mean().sqrt().item()) < 1e-15


def test_stiffness_is_zero_not_nan_for_a_constant_field():
    s = dopri5_step(lambda t, z: torch.zeros_like(z), 0.0, torch.ones(2, dtype=F64), 0.1)
    assert s.stiffness().item() == 0.0


# ---------------------------------------------------------------- the adaptive solver

@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
@pytest.mark.parametrize("problem", ["decay", "rotation"])
def test_solver_error_below_ten_tol_and_same_steps_as_scipy(problem, tol):
    from scipy import integrate as scipy_integrate
    if problem == "decay":
        f, f_np, z0, exact = _decay, lambda t, z: -z, [1.0], np.array([math.exp(-1.0)])
    else:
        (f, f_np), z0 = _rotation(2 * math.pi), [1.0, 0.5]
        exact = np.array([1.0, 0.5])  # one full turn
    ours = odeint_dopri5(f, torch.tensor(z0, dtype=F64), 0.0, 1.0, atol=tol, rtol=tol)
    ref = scipy_integrate.solve_ivp(f_np, (0.0, 1.0), np.array(z0), method="RK45", atol=tol, rtol=tol)
    err, err_ref = np.abs(ours.z.numpy() - exact).max(), np.abs(ref.y[:, -1] - exact).max()
    assert err < 10 * tol
    assert ours.nfe == ref.nfev and np.abs(ours.z.numpy() - ref.y[:, -1]).max() < 1e-12
    assert 0.5 < (err + 1e-300) / (err_ref + 1e-300) < 2
    # the estimate ẽ = hΣe_j k_j cancels ~10 digits at tight tolerances, so summation order moves the grid by ~1e-6 relative
    assert len(ours.times) == len(ref.t) and np.allclose(ours.times.numpy(), ref.t, rtol=0, atol=1e-6)


def test_solver_error_falls_with_tolerance():
    errs = [abs(odeint_dopri5(_decay, torch.ones(1, dtype=F64), atol=t, rtol=t).z.item() - math.exp(-1)) for t in (1e-3, 1e-6, 1e-9)]
    assert errs[0] > errs[1] > errs[2]


def test_nfe_counts_rejected_attempts_and_the_probe():
    sol = odeint_dopri5(lambda t, z: -30.0 * z, torch.ones(1, dtype=F64), first_step=1.0, atol=1e-6, rtol=1e-6)
    assert sol.num_rejected >= 2
    assert sol.nfe == 1 + 6 * len(sol.attempts)
    calls = []
    sol2 = odeint_dopri5(lambda t, z: calls.append(t) or -z, torch.ones(1, dtype=F64))
    assert sol2.nfe == len(calls) == 2 + 6 * len(sol2.attempts)


def test_solution_record_is_consistent():
    sol = odeint_dopri5(_decay, torch.ones(2, dtype=F64), atol=1e-8, rtol=1e-8)
    assert torch.allclose(sol.times.diff(), sol.steps, rtol=0, atol=1e-15)
    assert (sol.errors < 1).all() and sol.states.shape == (sol.num_steps + 1, 2)
    for t in np.linspace(0, 1, 17):
        # cubic Hermite between steps: error <= h^4 max|z''''| / 384 (+ the solver's own error)
        assert abs(sol.state_at(float(t))[0].item() - math.exp(-t)) < sol.steps.max().item() ** 4 / 384 + 1e-7
    assert sol.step_index(0.0) == 0 and sol.step_index(1.0) == sol.num_steps - 1


def test_solver_gradients_match_the_exact_derivative():
    a = torch.tensor(-0.7, dtype=F64, requires_grad=True)
    sol = odeint_dopri5(lambda t, z: a * z, torch.ones(1, dtype=F64), atol=1e-10, rtol=1e-10)
    (g,) = torch.autograd.grad(sol.z.sum(), a)
    assert abs(g.item() - math.exp(-0.7)) < 1e-8  # d/da e^{a} at t = 1


def test_global_regularisers_sum_the_per_step_estimates():
    sol = odeint_dopri5(lambda t, z: -3.0 * z, torch.ones(1, dtype=F64), keep_graph=True)
    assert abs(sol.reg_error.item() - float((sol.errors * sol.steps).sum())) < 1e-14
    assert abs(sol.reg_stiffness.item() - sol.num_steps * 3.0 / STABILITY_SIZE) < 1e-10


# ---------------------------------------------------------------- the local regulariser

def _field_and_solution(seed=0, keep_graph=False):
    net = mlp([3, 8, 3], seed=seed, device="cpu", dtype=F64)
    z0 = torch.randn(32, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    f = lambda t, z: net(z)
    with torch.no_grad(): sol = odeint_dopri5(f, z0, atol=1e-6, rtol=1e-6)
    return net, f, sol


def test_regulariser_at_a_step_start_is_the_solvers_own_error_norm():
    net, f, sol = _field_and_solution()
    for j, t in enumerate(sol.times[:-1].tolist()):
        r = local_regularizer(f, sol, t)
        assert r.index == j and r.value.item() == sol.errors[j].item() * sol.steps[j].item()


def test_biased_sampling_lands_on_step_starts_and_unbiased_is_uniform():
    _, f, sol = _field_and_solution()
    g = torch.Generator().manual_seed(0)
    starts = set(sol.times[:-1].tolist())
    assert all(sample_time(sol, "biased", g) in starts for _ in range(50))
    ts = np.array([sample_time(sol, "unbiased", g) for _ in range(4000)])
    assert ts.min() >= 0 and ts.max() <= 1 and abs(ts.mean() - 0.5) < 0.02 and abs(ts.var() - 1 / 12) < 0.01


def test_sampling_uses_its_own_generator_not_the_global_one():
    _, f, sol = _field_and_solution()
    torch.manual_seed(123); before = torch.rand(3)
    torch.manual_seed(123)
    sample_time(sol, "unbiased", 7); sample_time(sol, "biased", torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), before)
    assert sample_time(sol, "unbiased", 7) == sample_time(sol, "unbiased", 7)


def test_start_state_carries_no_gradient_but_the_parameters_do():
    net, f, sol = _field_and_solution()
    r = local_regularizer(f, sol, 0.37)
    assert not r.step.z0.requires_grad and r.value.requires_grad
    grads = torch.autograd.grad(r.value, list(net.parameters()))
    assert sum(g.abs().sum().item() for g in grads) > 0
    r_s = local_regularizer(f, sol, 0.37, "stiffness")
    assert torch.autograd.grad(r_s.value, list(net.parameters()))[0].abs().sum() > 0


def test_weighted_biased_estimate_is_exactly_the_global_sum():
    _, f, sol = _field_and_solution(1)
    with torch.no_grad():
        total = sum(local_regularizer(f, sol, t).value.item() for t in sol.times[:-1].tolist())
    glob = float((sol.errors * sol.steps).sum())
    assert abs(total - glob) < 1e-12 * max(glob, 1)  # E[N·R(t_j)] over uniform j
    est = sampled_estimates(f, sol, num_samples=300)
    assert abs(est["biased: mean weighted estimate"] - glob) < 4 * est["biased: standard error"] + 1e-12


# ---------------------------------------------------------------- the module and training

def test_w_zero_is_bit_identical_to_unregularised_training():
    ref = train_node(0.0, "none", steps=8, tol=1e-4)
    for mode in ("unbiased", "biased", "global"):
        run = train_node(0.0, mode, steps=8, tol=1e-4)
        assert torch.equal(run.loss, ref.loss)
        assert all(torch.equal(p, q) for p, q in zip(run.model.parameters(), ref.model.parameters()))
        assert torch.isfinite(run.reg).all()


def test_a_positive_weight_changes_training_and_history_is_recorded():
    ref, reg = train_node(0.0, "none", steps=6, tol=1e-4), train_node(1.0, "unbiased", steps=6, tol=1e-4)
    assert not torch.equal(ref.loss, reg.loss)
    assert len(reg.nfe) == 6 and torch.isfinite(reg.t_star).all() and torch.isnan(ref.t_star).all()


def test_neural_ode_penalty_only_in_training_mode():
    node = NeuralODE(mlp([2, 4, 2], seed=0, device="cpu", dtype=F64), regularize="global", weight=2.0)
    z0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    _, pen = node(z0)
    assert pen.item() > 0 and abs(pen.item() - 2.0 * node.last["reg"]) < 1e-12
    node.eval()
    zT, pen = node(z0)
    assert pen.item() == 0.0 and len(node.history) == 1


def test_classifier_shapes_and_augmentation():
    model = node_classifier(2, 1, 8, seed=0, device="cpu")
    assert isinstance(model, ODEClassifier)
    logits, pen = model(torch.zeros(7, 2, dtype=F64))
    assert logits.shape == (7,) and pen.shape == ()


@pytest.fixture(scope="module")
def two_runs():
    return train_node(0.3, "unbiased", steps=3, tol=1e-3, device="cpu"), train_node(0.0, "none", steps=3, tol=1e-3, device="cpu")


def test_plots_and_explorer_build(two_runs):
    run, base = two_runs
    for fig in (plot_nfe_history({"a": run}), plot_tradeoff({0.0: base, 0.3: run}), plot_step_profile({"a": run})):
        assert isinstance(fig, Figure) and fig.axes
    ex = explore_node_reg({(0.3, 1e-6, "unbiased", "error"): run, (0.0, 1e-6, "none", "error"): base}, steps=3, device="cpu")
    fig = ex.update()
    assert isinstance(ex, Explorer) and len(fig.data) >= 4 and ex.cache_info().misses == 1 and "NFE" in fig.layout.title.text
    other = ex.update(w=0.01)  # not preloaded: trains one small run
    assert other is not fig and other.layout.title.text.startswith("w = 0.01")


def test_node_reg_figure(two_runs):
    run, base = two_runs
    fig = node_reg_figure(run, base, last=2)
    assert isinstance(fig, go.Figure) and len(fig.data) == 5 and fig.layout.yaxis2.type == "log"
    assert f"{base.test_nfe} → {run.test_nfe}" in fig.layout.title.text
    assert len(node_reg_figure(run, base, last=0, title="t").data) == 4
    with pytest.raises(TypeError, match="`baseline`"): node_reg_figure(run, "none")
    with pytest.raises(ValueError, match="`last`"): node_reg_figure(run, base, last=-1)


def test_step_profile_slider_and_flows(two_runs):
    run, base = two_runs
    fig = step_profile_slider_figure({"w = 0": base, "w = 0.3": run})
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 2
    np.testing.assert_allclose(fig.data[1].x, run.test_solution.times.numpy())
    with pytest.raises(ValueError, match="`runs`"): step_profile_slider_figure({})
    X, y = concentric_rings(10, seed=5, device="cpu", dtype=F64)
    fig = plot_flows({"a": run, "b": base}, X, y)
    assert isinstance(fig, Figure) and len(fig.axes) == 4


def test_step_errors_are_fifth_and_sixth_order():
    errs = step_errors(np.logspace(-2.0, -0.6, 6), lam=-2.0)
    assert isinstance(errs, StepErrors) and errs.estimate.shape == (6,)
    ok = errs.true > 1e-13
    assert abs(np.polyfit(np.log(errs.h), np.log(errs.estimate), 1)[0] - 5) < 0.3
    assert abs(np.polyfit(np.log(errs.h[ok]), np.log(errs.true[ok]), 1)[0] - 6) < 0.4
    one = torch.ones(1, dtype=F64)
    s = dopri5_step(lambda t, z: -2.0 * z, 0.0, one, float(errs.h[-1]))
    assert errs.true[-1] == abs(s.z1.item() - math.exp(-2.0 * errs.h[-1]))
    fig = plot_step_errors(errs, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match=r"`hs\[0\]`"): step_errors([0.0, 0.1])
    with pytest.raises(TypeError, match="`errors`"): plot_step_errors((1, 2, 3))


def test_seeds_take_an_int_or_a_generator():
    _, f, sol = _field_and_solution()
    g = torch.Generator().manual_seed(7)
    assert sample_time(sol, "unbiased", g) == sample_time(sol, "unbiased", 7)
    node = NeuralODE(torch.nn.Tanh(), seed=torch.Generator().manual_seed(2))
    assert isinstance(node.generator, torch.Generator)
    a = node_classifier(seed=torch.Generator().manual_seed(0), device="cpu")
    assert all(p.isfinite().all() for p in a.parameters())
    run = train_node(0.1, "unbiased", steps=2, tol=1e-3, seed=torch.Generator().manual_seed(4), device="cpu")
    assert isinstance(run, NODERun) and isinstance(run.settings["seed"], int)
    again = train_node(0.1, "unbiased", steps=2, tol=1e-3, seed=run.settings["seed"], device="cpu")
    assert torch.equal(again.loss, run.loss)
    est = sampled_estimates(f, sol, num_samples=20, seed=torch.Generator().manual_seed(1))
    assert est == sampled_estimates(f, sol, num_samples=20, seed=1)


def test_train_node_follows_its_device_and_takes_a_progress_callable():
    seen = []
    def bar(it, total=None, desc=None):
        seen.append(total)
        return it
    run = train_node(0.0, "none", steps=2, tol=1e-3, progress=bar, device="cpu")
    assert seen and next(run.model.parameters()).device.type == "cpu"


# ---------------------------------------------------------------- the adjoint method

def test_adjoint_closed_form_with_and_without_a_jump():
    a = torch.tensor(-0.7, dtype=F64, requires_grad=True)
    f, z0, ts, c = (lambda t, z: a * z), torch.tensor([1.5], dtype=F64), 0.4, 2.0
    with torch.no_grad(): z1 = odeint_dopri5(f, z0, atol=1e-10, rtol=1e-10).z
    r = adjoint_backward(f, [a], z1, torch.ones(1, dtype=F64), atol=1e-10, rtol=1e-10, jumps={ts: torch.tensor([c], dtype=F64)})
    # L = z(1) + c z(t*):  ∂L/∂z0 = e^a + c e^{a t*},  ∂L/∂a = z0 (e^a + c t* e^{a t*})
    assert abs(r.grad_z0.item() - (math.exp(-0.7) + c * math.exp(-0.7 * ts))) < 1e-8
    assert abs(r.grads[0].item() - 1.5 * (math.exp(-0.7) + c * ts * math.exp(-0.7 * ts))) < 1e-8
    assert abs(r.z0.item() - 1.5) < 1e-8  # z integrated backwards returns to z(0)
    r0 = adjoint_backward(f, [a], z1, torch.ones(1, dtype=F64), atol=1e-10, rtol=1e-10)
    assert abs(r0.grad_z0.item() - math.exp(-0.7)) < 1e-8 and abs(r0.grads[0].item() - 1.5 * math.exp(-0.7)) < 1e-8


def _tiny_node(gradient, **kw):
    return NeuralODE(mlp([2, 6, 2], "tanh", seed=3, device="cpu", dtype=F64), atol=1e-10, rtol=1e-10, gradient=gradient, **kw)


_XT = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
_YT = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=F64)


def _grads(node, X):
    X = X.clone().requires_grad_(True)
    zT, pen = node(X)
    loss = ((zT - _YT) ** 2).sum() + pen
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [X, *node.field.parameters()])])


def test_adjoint_matches_finite_differences_on_a_tiny_model():
    node = _tiny_node("adjoint").eval()
    g = _grads(node, _XT)[_XT.numel():]
    f, theta = flat_loss(_tiny_node("backprop").eval(), lambda out, y: ((out[0] - y) ** 2).sum(), _XT, _YT)
    fd = fd_gradient(f, theta, eps=1e-5)
    assert (g - fd).norm() / fd.norm() < 1e-6


@pytest.mark.parametrize("regularize", ["none", "unbiased", "biased"])
def test_adjoint_matches_backprop_through_the_solver_with_the_local_regulariser(regularize):
    ga = _grads(_tiny_node("adjoint", regularize=regularize, weight=0.5, seed=4), _XT)
    gb = _grads(_tiny_node("backprop", regularize=regularize, weight=0.5, seed=4), _XT)
    assert (ga - gb).norm() / gb.norm() < 1e-7  # inputs and parameters; both runs sample the same t*


def test_adjoint_jump_equals_differentiating_through_the_state_at_t_star():
    net = mlp([2, 6, 2], "tanh", seed=5, device="cpu", dtype=F64)
    names, shapes = [n for n, _ in net.named_parameters()], [p.shape for p in net.parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    ts, v, z0 = 0.35, torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=F64), _XT

    def loss(theta):  # L = Σ z(1)² + Σ v·z(t*), by two tight solves split at t*
        ps = dict(zip(names, (c.view(s) for c, s in zip(theta.split([math.prod(s) for s in shapes]), shapes))))
        f = lambda t, z: torch.func.functional_call(net, ps, (z,))
        zs = odeint_dopri5(f, z0, 0.0, ts, atol=1e-11, rtol=1e-11).z
        return (odeint_dopri5(f, zs, ts, 1.0, atol=1e-11, rtol=1e-11).z ** 2).sum() + (v * zs).sum()

    f = lambda t, z: net(z)
    with torch.no_grad(): z1 = odeint_dopri5(f, z0, atol=1e-11, rtol=1e-11).z
    r = adjoint_backward(f, list(net.parameters()), z1, 2 * z1, atol=1e-11, rtol=1e-11, jumps={ts: v})
    g = torch.cat([x.reshape(-1) for x in r.grads])
    fd = fd_gradient(loss, theta0, eps=1e-5)
    assert (g - fd).norm() / fd.norm() < 1e-6
    without = torch.cat([x.reshape(-1) for x in adjoint_backward(f, list(net.parameters()), z1, 2 * z1, atol=1e-11,
                                                                  rtol=1e-11).grads])
    assert (without - fd).norm() / fd.norm() > 1e-2  # the jump matters


def test_adjoint_gap_to_backprop_shrinks_with_the_tolerance():
    gaps = []
    for tol in (1e-4, 1e-6, 1e-8):
        node = lambda g: NeuralODE(mlp([2, 6, 2], "tanh", seed=3, device="cpu", dtype=F64), atol=tol, rtol=tol, t1=5.0, gradient=g)
        ga, gb = _grads(node("adjoint"), _XT), _grads(node("backprop"), _XT)
        gaps.append(float((ga - gb).norm() / gb.norm()))
    assert gaps[0] > 10 * gaps[1] > 100 * gaps[2] and all(g < 30 * t for g, t in zip(gaps, (1e-4, 1e-6, 1e-8)))


def test_adjoint_records_the_backward_solve_and_refuses_the_global_regulariser():
    seen = []
    a = torch.tensor(-1.0, dtype=F64, requires_grad=True)
    sol = odeint_adjoint(lambda t, z: a * z, ONE, [a], on_backward=seen.append)
    sol.z.sum().backward()
    assert len(seen) == 1 and seen[0].nfe > 0 and abs(a.grad.item() - math.exp(-1.0)) < 1e-5
    with pytest.raises(ValueError, match="`gradient`"): NeuralODE(torch.nn.Tanh(), regularize="global", gradient="adjoint")


@pytest.mark.ref
def test_adjoint_matches_torchdiffeq():
    tde = require_ref("torchdiffeq")
    net = mlp([2, 6, 2], "tanh", seed=3, device="cpu", dtype=F64)

    class Field(torch.nn.Module):
        def __init__(self): super().__init__(); self.net = net
        def forward(self, t, z): return self.net(z)

    z1 = tde.odeint_adjoint(Field(), _XT, torch.tensor([0.0, 1.0], dtype=F64), rtol=1e-10, atol=1e-10, method="dopri5")[-1]
    ref = torch.cat([g.reshape(-1) for g in torch.autograd.grad(((z1 - _YT) ** 2).sum(), list(net.parameters()))])
    ours = _grads(_tiny_node("adjoint").eval(), _XT)[_XT.numel():]
    assert (ours - ref).norm() / ref.norm() < 1e-7


def test_the_nfe_cut_is_the_same_trained_by_backprop_or_by_the_adjoint():
    kw = dict(steps=100, n=128, tol=1e-6, device="cpu")
    runs = {(g, w): train_node(w, "unbiased" if w else "none", gradient=g, **kw) for g in ("backprop", "adjoint") for w in (0.0, 0.3)}
    for g in ("backprop", "adjoint"):
        base, reg = runs[g, 0.0], runs[g, 0.3]
        assert reg.test_nfe <= 0.5 * base.test_nfe and base.accuracy >= 0.99 and reg.accuracy >= 0.95
    for w in (0.0, 0.3): assert abs(runs["adjoint", w].test_nfe - runs["backprop", w].test_nfe) <= 6
    bwd = {w: float(runs["adjoint", w].backward_nfe.double().mean()) for w in (0.0, 0.3)}
    assert bwd[0.3] < 0.5 * bwd[0.0] and torch.isnan(runs["backprop", 0.3].backward_nfe).all()


# ---------------------------------------------------------------- bad input

ONE = torch.ones(1, dtype=F64)


@pytest.mark.parametrize("call, error, match", [
    (lambda: dopri5_step("f", 0.0, ONE, 0.1), TypeError, "`f`"),
    (lambda: dopri5_step(_decay, 0.0, ONE, -0.1), ValueError, "`h`"),
    (lambda: dopri5_step(_decay, 0.0, [1.0], 0.1), TypeError, "`z`"),
    (lambda: dopri5_step(_decay, 0.0, ONE, 0.1, k1=torch.ones(2, dtype=F64)), ValueError, "`k1`"),
    (lambda: odeint_dopri5(_decay, ONE, 0.0, 0.0), ValueError, "`t1`"),
    (lambda: odeint_dopri5(_decay, ONE, rtol=-1.0), ValueError, "`rtol`"),
    (lambda: odeint_dopri5(_decay, torch.tensor([float("nan")], dtype=F64)), ValueError, "`z0`"),
    (lambda: odeint_dopri5(_decay, ONE, first_step=0.0), ValueError, "`first_step`"),
    (lambda: odeint_dopri5(_decay, ONE, max_steps=0), ValueError, "`max_steps`"),
    (lambda: odeint_dopri5(_decay, ONE, max_steps=2), RuntimeError, "`max_steps`"),
    (lambda: sample_time("sol"), TypeError, "`solution`"),
    (lambda: sample_time(odeint_dopri5(_decay, ONE), "uniform"), ValueError, "`sampling`"),
    (lambda: local_regularizer(_decay, odeint_dopri5(_decay, ONE), 1.5), ValueError, "`t_star`"),
    (lambda: local_regularizer(_decay, odeint_dopri5(_decay, ONE), 0.5, "curvature"), ValueError, "`reg_type`"),
    (lambda: NeuralODE("net"), TypeError, "`field`"),
    (lambda: NeuralODE(torch.nn.Tanh(), regularize="local"), ValueError, "`regularize`"),
    (lambda: NeuralODE(torch.nn.Tanh(), weight=-1.0), ValueError, "`weight`"),
    (lambda: NeuralODE(torch.nn.Tanh(), t0=1.0, t1=1.0), ValueError, "`t1`"),
    (lambda: NeuralODE(torch.nn.Tanh(), seed=-1), ValueError, "`seed`"),
    (lambda: NeuralODE(torch.nn.Tanh())(torch.ones(2, dtype=torch.long)), TypeError, "`z0`"),
    (lambda: node_classifier(augment=-1), ValueError, "`augment`"),
    (lambda: train_node(steps=0), ValueError, "`steps`"),
    (lambda: train_node(tol=0.0), ValueError, "`tol`"),
    (lambda: train_node(regularize="sometimes", steps=1), ValueError, "`regularize`"),
    (lambda: sampled_estimates(_decay, odeint_dopri5(_decay, ONE), num_samples=0), ValueError, "`num_samples`"),
    (lambda: plot_nfe_history({}), ValueError, "`runs`"),
    (lambda: plot_tradeoff([1]), TypeError, "`runs`"),
    (lambda: explore_node_reg(steps=0), ValueError, "`steps`"),
    (lambda: sample_time(odeint_dopri5(_decay, ONE), seed=-1), ValueError, "`seed`"),
    (lambda: sample_time(odeint_dopri5(_decay, ONE), seed=0.5), TypeError, "`seed`"),
    (lambda: sample_time(odeint_dopri5(_decay, ONE), seed=True), TypeError, "`seed`"),
    (lambda: train_node(steps=1, seed="s"), TypeError, "`seed`"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match): call()


# ---------------------------------------------------------------- bad-input probes

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_A = torch.tensor(-0.5, dtype=F64, requires_grad=True)
_SOL = odeint_dopri5(_decay, ONE)
_RUN = train_node(0.3, "unbiased", steps=2, tol=1e-3, n=16, device="cpu")
_X, _Y = concentric_rings(6, seed=1, device="cpu", dtype=F64)
_T3, _NAN3 = torch.ones(3, dtype=F64), torch.full((3,), NAN, dtype=F64)
_NAN1 = torch.full((1,), NAN, dtype=F64)
_TOL = [0.0, -1.0, NAN, INF]
_RUNS_BAD = [{}, [1], {"a": "run"}]

PROBES = [
    Probe(error_norm, dict(error=_T3, z0=_T3, z1=_T3, atol=1e-6, rtol=1e-6),
          dict(error=[_NAN3, "e"], z0=[torch.ones(4, dtype=F64), _NAN3], z1=[torch.ones(2, dtype=F64)], atol=_TOL,
               rtol=_TOL)),
    Probe(dopri5_step, dict(f=_decay, t=0.0, z=ONE, h=0.1),
          dict(f=["f"], t=[NAN, INF, "0"], z=[_NAN1, torch.ones(1, dtype=torch.long), "z"], h=_TOL,
               k1=[torch.ones(2, dtype=F64), _NAN1])),
    Probe(odeint_dopri5, dict(f=_decay, z0=ONE),
          dict(f=[None], z0=[_NAN1, [1.0]], t0=[NAN], t1=[0.0, -1.0, INF], atol=_TOL, rtol=_TOL,
               first_step=[0.0, -0.1, NAN], max_steps=SIZES + [1.5], keep_graph=["yes"])),
    Probe(sample_time, dict(solution=_SOL), dict(solution=["sol", None], sampling=[UNKNOWN], seed=[-1, 0.5, "s"])),
    Probe(local_regularizer, dict(f=_decay, solution=_SOL, t_star=0.5),
          dict(f=["f"], solution=["sol"], t_star=[NAN, -1.0, 2.0, "t"], reg_type=[UNKNOWN])),
    Probe(adjoint_backward, dict(f=lambda t, z: _A * z, params=[_A], z1=ONE, grad_z1=ONE),
          dict(f=["f"], params=["p", [torch.ones(1, dtype=torch.long)], [3.0]], z1=[_NAN1, "z"],
               grad_z1=[torch.ones(2, dtype=F64), _NAN1], t0=[NAN], t1=[0.0, INF], atol=_TOL, rtol=_TOL,
               jumps=[{2.0: ONE}, {0.5: torch.ones(2, dtype=F64)}, {0.5: _NAN1}, [1]])),
    Probe(odeint_adjoint, dict(f=lambda t, z: _A * z, z0=ONE, params=[_A]),
          dict(f=["f"], z0=[_NAN1, "z"], params=["p", ["x"]], t1=[0.0, NAN], atol=_TOL, rtol=_TOL, on_backward=["x"])),
    Probe(NeuralODE, dict(field=torch.nn.Tanh()),
          dict(field=["net", None], regularize=[UNKNOWN], reg_type=[UNKNOWN], weight=[-1.0, NAN], atol=_TOL,
               rtol=_TOL, t0=[NAN], t1=[0.0, INF], seed=[-1, 0.5], gradient=[UNKNOWN])),
    Probe(ODEClassifier, dict(ode=NeuralODE(torch.nn.Tanh()), readout=torch.nn.Linear(3, 1)),
          dict(ode=["ode", torch.nn.Tanh()], readout=["r"], augment=[-1, 1.5])),
    Probe(node_classifier, dict(dim=2, augment=1, hidden=4, device="cpu"),
          dict(dim=SIZES, augment=[-1, 0.5], hidden=SIZES, seed=[-1, "s"], dtype=["float64", torch.long],
               regularize=[UNKNOWN], weight=[NAN])),
    Probe(train_node, dict(weight=0.0, regularize="none", steps=1, tol=1e-3, n=8, device="cpu"),
          dict(weight=[-1.0, NAN], regularize=[UNKNOWN], reg_type=[UNKNOWN], tol=_TOL, steps=SIZES, lr=[0.0, NAN],
               n=[1, -1], hidden=SIZES, augment=[-1], seed=[-1, "s"], gradient=[UNKNOWN])),
    Probe(step_errors, dict(hs=[0.1, 0.2]), dict(hs=[[0.0], [NAN], [-0.1], "x"], lam=[NAN, INF, "l"]),
          named={"hs": r"hs\[0\]"}),
    Probe(plot_step_errors, dict(errors=step_errors([0.1, 0.2])), dict(errors=[(1, 2, 3), "e"])),
    Probe(sampled_estimates, dict(f=_decay, solution=_SOL, num_samples=3),
          dict(f=["f"], solution=["sol"], num_samples=SIZES, seed=[-1])),
    Probe(plot_nfe_history, dict(runs={"a": _RUN}), dict(runs=_RUNS_BAD)),
    Probe(plot_tradeoff, dict(runs={0.0: _RUN}), dict(runs=_RUNS_BAD + [{-1.0: _RUN}, {NAN: _RUN}, {"w": _RUN}])),
    Probe(plot_step_profile, dict(runs={"a": _RUN}), dict(runs=_RUNS_BAD, last=[-1, 1.5])),
    Probe(flow_paths, dict(run=_RUN, X=_X), dict(run=["run"], X=[torch.ones(3, dtype=F64), torch.ones(3, 3, dtype=F64),
                                                                torch.full((3, 2), NAN, dtype=F64)], num_times=[1, -1])),
    Probe(plot_flows, dict(runs={"a": _RUN}, X=_X, y=_Y),
          dict(runs=_RUNS_BAD, X=[torch.full((6, 2), NAN, dtype=F64), "X"], y=[torch.zeros(5), torch.full((6,), 2.0)])),
    Probe(step_profile_frames, dict(runs={"a": _RUN}), dict(runs=["runs", {"a": "run"}])),
    Probe(step_profile_slider_figure, dict(runs={"a": _RUN}), dict(runs=_RUNS_BAD)),
    Probe(node_reg_figure, dict(run=_RUN, baseline=_RUN), dict(run=["run"], baseline=[None], last=[-1, 2.5])),
    Probe(explore_node_reg, dict(steps=2, device="cpu"), dict(runs=["runs", {(0.1,): "run"}], steps=SIZES)),
]
