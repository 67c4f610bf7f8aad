"""Reference tests for gradviz.rl.ggd: scipy's gennorm, closed forms, Monte Carlo, a linear solve, bad input."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import scipy.optimize
import scipy.stats
import torch
from matplotlib.figure import Figure

from gradviz.rl.ggd import (LOSSES, SLIDER_BETAS, ACStudy, BIEVWeights, GGDFit, MeanSD, NoisyChain, PointTask, ReturnGap,
                            TaskStep, TDRun, biev_weights, effective_batch_size, excess_kurtosis, explore_ggd_td,
                            family_groups, fit_ggd_shape, ggd_density, ggd_entropy, ggd_kurtosis, ggd_nll,
                            ggd_shape_slider_figure, ggd_shape_traces, ggd_td_figure, ggd_variance, head_beta,
                            head_variance, noisy_chain, plot_ggd_moments, plot_ggd_shapes, plot_learned_beta,
                            plot_returns, plot_rmse, point_task, return_gap, reward_noise, rmse_table, rollout_return,
                            sample_ggd, sample_transitions, td_loss, train_actor_critic, train_td_critic,
                            unit_variance_alpha)

F64 = torch.float64
BETAS = np.geomspace(0.3, 10, 25)


# ---------------------------------------------------------------- the distribution against scipy

@pytest.mark.parametrize("beta", BETAS)
def test_nll_equals_minus_gennorm_logpdf(beta):
    x = torch.linspace(-3, 3, 301, dtype=F64)
    ref = -scipy.stats.gennorm.logpdf(x.numpy(), beta)
    np.testing.assert_allclose(ggd_nll(x, float(beta)).numpy(), ref, rtol=0, atol=1e-10)
    ref_scaled = -scipy.stats.gennorm.logpdf(x.numpy(), beta, loc=0.4, scale=1.7)
    np.testing.assert_allclose(ggd_nll(x, float(beta), alpha=1.7, loc=0.4).numpy(), ref_scaled, rtol=0, atol=1e-10)


def test_nll_far_tail_agrees_relatively():
    x = torch.linspace(-8, 8, 161, dtype=F64)
    for beta in (0.3, 3.0, 10.0):
        np.testing.assert_allclose(ggd_nll(x, beta).numpy(), -scipy.stats.gennorm.logpdf(x.numpy(), beta), rtol=1e-12, atol=1e-12)


def test_nll_broadcasts_tensor_shapes_and_matches_density():
    x = torch.linspace(-2, 2, 7, dtype=F64)
    b = torch.tensor([[0.5], [1.0], [4.0]], dtype=F64)
    out = ggd_nll(x, b)
    assert out.shape == (3, 7)
    for i, beta in enumerate((0.5, 1.0, 4.0)):
        np.testing.assert_allclose(out[i].numpy(), ggd_nll(x, beta).numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ggd_density(x, 1.5, 0.8).numpy(), scipy.stats.gennorm.pdf(x.numpy(), 1.5, scale=0.8), rtol=1e-12)


def test_nll_closed_forms_at_beta_one_and_two():
    x = torch.randn(100, dtype=F64, generator=torch.Generator().manual_seed(0)) * 3
    np.testing.assert_allclose(ggd_nll(x, 1.0).numpy(), (x.abs() + math.log(2)).numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(ggd_nll(x, 2.0).numpy(), (x**2 + 0.5 * math.log(math.pi)).numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ggd_nll(x, 2.0).numpy(), -scipy.stats.norm.logpdf(x.numpy(), scale=math.sqrt(0.5)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ggd_nll(x, 1.0).numpy(), -scipy.stats.laplace.logpdf(x.numpy()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.3])
def test_moments_equal_scipy(alpha):
    b = torch.from_numpy(BETAS)
    var = np.array([scipy.stats.gennorm(x, scale=alpha).var() for x in BETAS])
    kur = np.array([float(scipy.stats.gennorm.stats(x, moments="k")) for x in BETAS])
    ent = np.array([scipy.stats.gennorm(x, scale=alpha).entropy() for x in BETAS])
    np.testing.assert_allclose(ggd_variance(b, alpha).numpy(), var, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ggd_kurtosis(b).numpy(), kur, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ggd_entropy(b, alpha).numpy(), ent, rtol=0, atol=1e-10)


def test_moments_closed_forms():
    np.testing.assert_allclose(ggd_variance(1.0, 2.0).item(), 8.0, rtol=1e-14)  # Laplace(b): 2b²
    np.testing.assert_allclose(ggd_variance(2.0, 2.0).item(), 2.0, rtol=1e-14)  # σ² = α²/2
    np.testing.assert_allclose(ggd_kurtosis(1.0).item(), 3.0, atol=1e-13)
    np.testing.assert_allclose(ggd_kurtosis(2.0).item(), 0.0, atol=1e-13)
    np.testing.assert_allclose(ggd_kurtosis(1e6).item(), -1.2, atol=1e-4)
    np.testing.assert_allclose(ggd_entropy(1.0).item(), 1 + math.log(2), atol=1e-14)
    np.testing.assert_allclose(ggd_entropy(2.0).item(), 0.5 * math.log(math.pi * math.e), atol=1e-14)
    np.testing.assert_allclose(ggd_variance(3.0, unit_variance_alpha(3.0)).item(), 1.0, rtol=1e-13)


def test_variance_minimum_and_entropy_monotone():
    r = scipy.optimize.minimize_scalar(lambda lb: scipy.special.gamma(3 / math.exp(lb)) / scipy.special.gamma(1 / math.exp(lb)),
                                       bounds=(0, 4), method="bounded", options=dict(xatol=1e-12))
    assert abs(math.exp(r.x) - 9.1147) < 1e-3 and abs(r.fun - 0.31433) < 1e-5
    b = torch.logspace(-1, 3, 3000, dtype=F64)
    v, h = ggd_variance(b), ggd_entropy(b)
    bd = math.exp(r.x)
    assert bool((v[b < bd].diff() < 0).all()) and bool((v[b > bd].diff() > 0).all())
    assert bool((h.diff() < 0).all())
    # the argmin does not depend on a β-independent scale
    v3 = ggd_variance(b, 3.0)
    assert abs(b[v3.argmin()].item() - bd) / bd < 0.01


# ---------------------------------------------------------------- sampling and fitting

@pytest.mark.parametrize("beta", [0.8, 1.0, 2.0, 4.0])
def test_mle_recovers_beta(beta):
    x = sample_ggd(20_000, beta, seed=11, device="cpu")
    fit = fit_ggd_shape(x)
    assert isinstance(fit, GGDFit) and abs(fit.beta - beta) < 0.05
    ref = scipy.stats.gennorm.fit(x.numpy(), floc=0, fscale=1)[0]
    assert abs(ref - fit.beta) < 2e-3
    free = fit_ggd_shape(x, alpha=None)
    assert abs(free.beta - beta) < 0.1 * beta and abs(free.alpha - 1) < 0.05


def test_fixed_alpha_absorbs_the_scale():
    x = 3.0 * torch.randn(20_000, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert 0.6 < fit_ggd_shape(x).beta < 0.7
    free = fit_ggd_shape(x, alpha=None)
    assert abs(free.beta - 2) < 0.1 and abs(free.alpha - 3 * math.sqrt(2)) < 0.15


def test_sample_ggd_is_seeded_and_matches_its_distribution():
    a, b = sample_ggd(5000, 1.3, 0.7, seed=3, device="cpu"), sample_ggd(5000, 1.3, 0.7, seed=3, device="cpu")
    assert torch.equal(a, b) and a.dtype == F64
    assert scipy.stats.kstest(a.numpy(), scipy.stats.gennorm(1.3, scale=0.7).cdf).pvalue > 1e-3
    u = sample_ggd(5000, math.inf, 2.0, seed=0, device="cpu")
    assert u.abs().max() <= 2.0 and abs(u.var().item() - 4 / 3) < 0.1


def test_sample_ggd_seed_is_numpys_seed_or_a_torch_generator():
    "An int seeds NumPy directly (scipy's own draws); a torch.Generator gives one seed, reproducibly."
    ref = scipy.stats.gennorm.rvs(0.9, scale=1.5, size=50, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(sample_ggd(50, 0.9, 1.5, seed=7, device="cpu").numpy(), ref)
    a = sample_ggd(50, 0.9, seed=torch.Generator().manual_seed(1), device="cpu")
    b = sample_ggd(50, 0.9, seed=torch.Generator().manual_seed(1), device="cpu")
    assert torch.equal(a, b) and not torch.equal(a, sample_ggd(50, 0.9, seed=1, device="cpu"))
    ch = noisy_chain(device="cpu")
    t1, t2 = (sample_transitions(ch, 200, seed=torch.Generator().manual_seed(3), device="cpu") for _ in range(2))
    assert torch.equal(t1.reward, t2.reward) and torch.equal(t1.state, t2.state)


# ---------------------------------------------------------------- BIEV

def test_excess_kurtosis_equals_scipy():
    x = torch.randn(50, 7, dtype=F64, generator=torch.Generator().manual_seed(1)) ** 3
    np.testing.assert_allclose(excess_kurtosis(x).numpy(), scipy.stats.kurtosis(x.numpy(), axis=1, bias=False), rtol=1e-10, atol=1e-10)


def test_biev_equal_variances_uniform_and_zero_xi():
    d = torch.randn(1, 5, dtype=F64, generator=torch.Generator().manual_seed(0)).expand(32, 5)
    out = biev_weights(d, 16)
    assert isinstance(out, BIEVWeights) and out.weights.shape == (32,) and isinstance(out.xi, float)
    for direction in ("divide", "multiply"):
        w, xi = biev_weights(d, 16, direction=direction)
        np.testing.assert_allclose(w.numpy(), np.full(32, 1 / 32), rtol=0, atol=1e-15)
        assert xi == 0.0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("min_ess", [2, 16, 64])
def test_biev_weights_sum_to_one_and_keep_batch_size(seed, min_ess):
    g = torch.Generator().manual_seed(seed)
    d = torch.exp(3 * torch.randn(128, 1, dtype=F64, generator=g)) * torch.randn(128, 6, dtype=F64, generator=g)
    w, xi = biev_weights(d, min_ess)
    assert abs(w.sum().item() - 1) < 1e-12 and bool((w > 0).all()) and xi >= 0
    assert effective_batch_size(w).item() >= min(127, min_ess) - 1
    # ξ is the smallest floor: a slightly smaller one misses the target
    if xi > 0:
        v = d.var(-1, unbiased=False) / (excess_kurtosis(d) / 6 + 7 / 5)
        w_less = 1 / (v.clamp_min(1e-8) + 0.99 * xi)
        assert effective_batch_size(w_less).item() < min(127, min_ess)


def test_biev_weights_are_inverse_corrected_variances():
    "The weights against numpy variances and scipy's bias-corrected kurtosis, both directions."
    d = torch.randn(40, 5, dtype=F64, generator=torch.Generator().manual_seed(4))
    w, xi = biev_weights(d, 1, kurtosis_correction=False)
    assert xi == 0.0
    inv = 1 / np.var(d.numpy(), axis=1)
    np.testing.assert_allclose(w.numpy(), inv / inv.sum(), rtol=1e-12)
    c = scipy.stats.kurtosis(d.numpy(), axis=1, bias=False) / 5 + 6 / 4
    for direction, v in (("multiply", np.var(d.numpy(), axis=1) * c), ("divide", np.var(d.numpy(), axis=1) / c)):
        w2, _ = biev_weights(d, 1, direction=direction)
        np.testing.assert_allclose(w2.numpy(), (1 / v) / (1 / v).sum(), rtol=1e-12)


def test_kurtosis_correction_vanishes_for_large_gaussian_ensembles():
    "κ̂ → 0 and (M+1)/(M−1) → 1: with M = 2000 members the correction changes the weights by < 0.5 %, with M = 5 by far more."
    g = torch.Generator().manual_seed(3)
    for M, small in ((2000, True), (5, False)):
        d = torch.exp(torch.randn(64, 1, dtype=F64, generator=g)) * torch.randn(64, M, dtype=F64, generator=g)
        ratio = biev_weights(d, 1).weights / biev_weights(d, 1, kurtosis_correction=False).weights
        assert (ratio.sub(1).abs().max().item() < 5e-3) == small, (M, ratio)


def test_inverse_variance_bias_monte_carlo():
    "Library kurtosis is unbiased for Gaussian samples (E κ̂ = 0 exactly); the delta-method direction beats the code's."
    x = torch.randn(400_000, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    k = excess_kurtosis(x)
    assert abs(k.mean().item()) < 4 * k.std().item() / math.sqrt(len(k))
    s2, c = x.var(-1, unbiased=False), k / 5 + 1.5
    assert abs((1 / (c * s2)).mean().item() - 1) < abs((c / s2).mean().item() - 1)


# ---------------------------------------------------------------- the chain and the critic

def test_chain_values_solve_bellman_and_match_monte_carlo():
    ch = noisy_chain(alpha=1.0, gamma=0.8, values=torch.linspace(0.5, -0.5, 10, dtype=F64), device="cpu")
    V = ch.true_values()
    np.testing.assert_allclose(V.numpy(), np.linspace(0.5, -0.5, 10), atol=1e-13)
    P = ch.transition_matrix()
    np.testing.assert_allclose(P.sum(1).numpy(), np.ones(10), atol=0)
    np.testing.assert_allclose((ch.mean_rewards + ch.gamma * P @ V).numpy(), V.numpy(), atol=1e-13)
    buf = sample_transitions(ch, 40_000, seed=5, device="cpu")
    assert torch.equal(buf.state, torch.from_numpy(np.random.default_rng(5).integers(0, 10, 40_000)))
    td = buf.reward + ch.gamma * V[buf.next_state] - V[buf.state]
    for s in range(10):
        m = buf.state == s
        assert abs(td[m].mean().item()) < 5 * math.sqrt(2.5 / m.sum().item())


def test_transition_noise_families():
    ch = noisy_chain(("laplace", "gaussian", "uniform", "ggd"), alpha=0.5, shape=0.7, device="cpu")
    buf = sample_transitions(ch, 40_000, seed=0, device="cpu")
    noise = buf.reward - ch.mean_rewards[buf.state]
    for s, (beta, cdf) in enumerate([(1.0, None), (2.0, None), (None, scipy.stats.uniform(-0.5, 1.0).cdf), (0.7, None)]):
        x = noise[buf.state == s].numpy()
        ref = cdf or scipy.stats.gennorm(beta, scale=0.5).cdf
        assert scipy.stats.kstest(x, ref).pvalue > 1e-3
    assert torch.equal(sample_transitions(ch, 100, seed=1, device="cpu").reward, sample_transitions(ch, 100, seed=1, device="cpu").reward)


def test_td_loss_values():
    z = torch.zeros(2, 5, 3, dtype=F64)
    ones = torch.ones_like(z)
    assert abs(td_loss("ggd", z, z, ones).item() - 2 * math.log(2)) < 1e-10  # summed over the 2 runs
    assert abs(td_loss("mse", z + 2, z, ones).item() - 8.0) < 1e-14
    d = torch.randn(1, 5, 16, dtype=F64, generator=torch.Generator().manual_seed(0))
    h = torch.randn_like(d)
    beta = torch.nn.functional.softplus(h + math.log(math.e - 1)).clamp(0.2, 20)
    ref = (5 * beta / beta.sum(-2, keepdim=True) * ggd_nll(d, beta)).mean()
    assert abs(td_loss("ggd", d, h, torch.ones_like(d)).item() - ref.item()) < 1e-9
    # λ = 0 turns the BIEV term off
    assert abs(td_loss("ggd+biev", d, h, torch.ones_like(d), lam=0.0).item() - ref.item()) < 1e-9
    assert td_loss("ggd+biev", d, h, torch.ones_like(d), lam=1.0).item() > ref.item()


@pytest.fixture(scope="module")
def small_runs():
    ch = noisy_chain(device="cpu")
    return ch, {loss: train_td_critic(ch, loss, seeds=(0, 1), steps=400, device="cpu") for loss in LOSSES}


def test_training_reduces_value_error_and_learns_beta(small_runs):
    ch, runs = small_runs
    for loss, run in runs.items():
        assert isinstance(run, TDRun) and run.values.shape == (2, 5, 10) and run.rmse.shape[0] == 2
        assert bool((run.rmse[:, -1] < 0.75 * run.rmse[:, 0]).all()) and run.rmse[:, -1].mean() < 0.5 * run.rmse[:, 0].mean(), loss
        assert run.record_steps[0] == 0 and run.record_steps[-1] == 400
    b = runs["ggd"].beta.mean((0, 1))
    assert 0.6 < b[:4].mean() < 1.5 and 1.3 < b[4:7].mean() < 3 and b[7:].mean() > 3
    sw = runs["ggd+biev"].state_weights
    assert sw.shape == (2, 10) and bool((sw > 0).all())


def test_training_is_seeded_and_runs_are_independent(small_runs):
    ch, runs = small_runs
    again = train_td_critic(ch, "ggd", seeds=(1,), steps=400, device="cpu")
    np.testing.assert_allclose(again.values[0].numpy(), runs["ggd"].values[1].numpy(), atol=1e-12)


def test_rmse_table_and_plots(small_runs):
    ch, runs = small_runs
    groups = {"a": slice(0, 4), "b": slice(4, 10)}
    t = rmse_table(runs, ch, groups)
    err = runs["mse"].values.mean(1) - ch.true_values()
    assert isinstance(t["mse"]["all"], MeanSD) and list(t["mse"]) == ["all", "a", "b"]
    np.testing.assert_allclose(t["mse"]["all"].mean, err.pow(2).mean(-1).sqrt().mean().item(), rtol=1e-12)
    np.testing.assert_allclose(t["mse"]["all"].mean, runs["mse"].rmse[:, -1].mean().item(), rtol=1e-12)
    np.testing.assert_allclose(t["mse"]["b"].std, err[:, 4:].pow(2).mean(-1).sqrt().std().item(), rtol=1e-12)
    fig = plot_rmse(runs, ch, groups, title="left", group_title="right")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["left", "right"] and len(fig.axes[0].lines) == len(LOSSES)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["all", "a", "b"]
    fig = plot_learned_beta(runs["ggd"], ch, title="β")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and fig.axes[0].get_title() == "β"
    assert len(plot_ggd_shapes(betas=(1.0, 2.0)).axes[0].lines) == 3
    assert len(plot_ggd_moments().axes) == 3


def test_family_groups():
    ch = noisy_chain(device="cpu")
    assert family_groups(ch) == {"Laplace (β = 1)": slice(0, 4), "Gaussian (β = 2)": slice(4, 7), "uniform (β = ∞)": slice(7, 10)}
    assert family_groups(noisy_chain(("ggd",) * 3, shape=0.7, device="cpu")) == {"GGD (β = 0.7)": slice(0, 3)}


def test_shape_traces_and_slider_figure():
    tr = ggd_shape_traces(1.5)
    assert len(tr) == 4 and all(isinstance(t, go.Scatter) for t in tr)
    y, x = np.asarray(tr[0].y), np.asarray(tr[0].x)
    assert abs(np.trapezoid(y, x) - 1) < 1e-3 and abs(np.trapezoid(x**2 * y, x) - 1) < 5e-3
    fig = ggd_shape_slider_figure()
    assert isinstance(fig, go.Figure) and len(fig.data) == 4 * len(SLIDER_BETAS)
    assert [s.label for s in fig.layout.sliders[0].steps] == [f"{b:g}" for b in SLIDER_BETAS]
    assert sum(bool(t.visible) for t in fig.data) == 4 and fig.layout.yaxis2.type == "log"
    assert len(ggd_shape_slider_figure(betas=(1.0, 2.0), active=0).data) == 8


def test_td_figure_and_explorer():
    fig = ggd_td_figure(beta=2.0, noise="ggd", members=4, min_ess=8, lam=0.0)
    assert isinstance(fig, go.Figure) and len(fig.data) == 5
    assert [type(t).__name__ for t in fig.data] == ["Scatter", "Scatter", "Bar", "Scatter", "Bar"]
    ex = explore_ggd_td()
    assert set(ex.controls) == {"beta", "alpha", "noise", "members", "min_ess", "lam"}
    f1 = ex.update(beta=2.0)
    assert ex.update(beta=2.0) is f1
    f2 = ex.update(beta=3.0)
    assert f2 is not f1 and not np.array_equal(np.asarray(f2.data[0].y), np.asarray(f1.data[0].y))
    f3 = ex.update(noise="laplace")
    assert not np.array_equal(np.asarray(f3.data[2].y), np.asarray(f2.data[2].y))


# ---------------------------------------------------------------- the actor-critic on the point task

def test_point_task_steps_exactly_and_returns_match_closed_forms():
    task = point_task(dt=0.2, horizon=20, action_cost=0.1)
    st = task.step(torch.tensor([1.9, -1.95, 0.0], dtype=F64), torch.tensor([2.0, -0.5, 0.3], dtype=F64))
    assert isinstance(st, TaskStep)
    np.testing.assert_allclose(st.next_x.numpy(), [2.0, -2.0, 0.06], atol=1e-15)
    np.testing.assert_allclose(st.reward.numpy(), [-4.1, -4.025, -0.0036 - 0.009], atol=1e-15)
    k = np.arange(1, 21)
    for x0, a in ((-1.5, 0.5), (0.3, -0.2), (1.5, 1.0)):  # the last one runs into the wall at 2 and stays there
        ref = -np.sum(np.minimum(x0 + k * 0.2 * a, 2.0) ** 2) - 20 * 0.1 * a**2
        got = rollout_return(task, lambda x: torch.full_like(x, a), torch.tensor([x0], dtype=F64)).item()
        assert abs(got - ref) < 1e-12
    x = torch.tensor([1.0, -0.4], dtype=F64)
    for _ in range(20): x = task.step(x, (-x / 0.2).clamp(-1, 1)).next_x
    assert x.abs().max() == 0  # the controller that steers straight to 0 gets there


def test_reward_noise_families_against_scipy():
    t = point_task(noise="student-t", noise_shape=1.5, noise_scale=0.5)
    x = reward_noise(t, 50_000, seed=1, device="cpu")
    assert scipy.stats.kstest(x.numpy(), scipy.stats.t(1.5, scale=0.5).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(x.numpy(), np.random.default_rng(1).standard_t(1.5, 50_000) * 0.5)
    g = reward_noise(point_task(noise="ggd", noise_shape=0.6, noise_scale=0.3), 50_000, seed=2, device="cpu")
    assert scipy.stats.kstest(g.numpy(), scipy.stats.gennorm(0.6, scale=0.3).cdf).pvalue > 1e-3
    assert bool((reward_noise(point_task(noise="none"), 10, device="cpu") == 0).all())


def test_actor_critic_is_seeded_and_runs_are_independent():
    task = point_task()
    a = train_actor_critic(task, ("mse", "ggd"), seeds=(0, 1), steps=120, eval_every=40, device="cpu")
    b = train_actor_critic(task, ("mse", "ggd"), seeds=(0, 1), steps=120, eval_every=40, device="cpu")
    c = train_actor_critic(task, ("ggd",), seeds=(1,), steps=120, eval_every=40, device="cpu")
    assert isinstance(a, ACStudy) and a.returns.shape == (2, 2, 4) and a.record_steps.tolist() == [0, 40, 80, 120]
    assert torch.equal(a.returns, b.returns) and torch.equal(a.beta, b.beta)
    # batching changes float32 rounding only, which training later amplifies: compare the early records
    np.testing.assert_allclose(c.returns[0, 0, :3].numpy(), a.returns[1, 1, :3].numpy(), rtol=1e-4)
    assert torch.equal(a.returns[0, :, 0], a.returns[1, :, 0])  # paired: the same initial actor for both losses
    fig = plot_returns(a, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2 and fig.axes[0].get_title() == "t"
    gap = return_gap(a, last=4)
    assert isinstance(gap, ReturnGap) and gap.n == 2
    d = (a.returns[1] - a.returns[0]).mean(-1)
    assert abs(gap.mean - d.mean().item()) < 1e-12 and abs(gap.se - d.std().item() / math.sqrt(2)) < 1e-12


def test_ggd_critic_beats_mse_under_student_t_reward_noise():
    "The chapter's claim at the chapter's settings (10 paired seeds, 1 000 steps): GGD ahead at the end, by > 2 s.e."
    study = train_actor_critic(point_task(), ("mse", "ggd"), seeds=tuple(range(10)), device="cpu")
    gap = return_gap(study, "ggd", "mse", last=5)
    assert gap.mean > 2 * gap.se and gap.wins >= 8
    end = study.returns[..., -5:].mean(-1)
    assert end[1].std() < end[0].std() / 2 and study.beta[1].mean() < 1.5


# ---------------------------------------------------------------- bad input

def test_bad_input_names_the_argument():
    x = torch.zeros(5, dtype=F64)
    with pytest.raises(ValueError, match="`beta`"): ggd_nll(x, 0.0)
    with pytest.raises(ValueError, match="`beta`"): ggd_nll(x, torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(ValueError, match="`alpha`"): ggd_nll(x, 1.0, alpha=-2.0)
    with pytest.raises(TypeError, match="`delta`"): ggd_nll([0.0, 1.0], 1.0)
    with pytest.raises(TypeError, match="`delta`"): ggd_nll(torch.zeros(3, dtype=torch.int64), 1.0)
    with pytest.raises(ValueError, match="`beta`"): ggd_variance(-1.0)
    with pytest.raises(ValueError, match="`beta`"): ggd_kurtosis(0.0)
    with pytest.raises(ValueError, match="`alpha`"): ggd_entropy(1.0, 0.0)
    with pytest.raises(ValueError, match="`n`"): sample_ggd(0, 1.0)
    with pytest.raises(ValueError, match="`beta`"): sample_ggd(10, -1.0)
    with pytest.raises(ValueError, match="`samples`"): fit_ggd_shape(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="`samples`"): fit_ggd_shape(torch.zeros(1, dtype=F64))
    with pytest.raises(ValueError, match="`beta_range`"): fit_ggd_shape(torch.ones(5, dtype=F64), beta_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="`td_errors`"): biev_weights(torch.zeros(8, 3, dtype=F64))
    with pytest.raises(ValueError, match="`td_errors`"): biev_weights(torch.zeros(8, dtype=F64))
    with pytest.raises(ValueError, match="`min_ess`"): biev_weights(torch.randn(8, 5, dtype=F64), 0)
    with pytest.raises(ValueError, match="`direction`"): biev_weights(torch.randn(8, 5, dtype=F64), direction="x")
    with pytest.raises(ValueError, match="`x`"): excess_kurtosis(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="`weights`"): effective_batch_size(torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(ValueError, match="`noise\\[0\\]`"): noisy_chain(("cauchy", "laplace"))
    with pytest.raises(ValueError, match="`gamma`"): noisy_chain(gamma=1.5)
    with pytest.raises(ValueError, match="`alpha`"): noisy_chain(alpha=0.0)
    with pytest.raises(ValueError, match="`values`"): noisy_chain(values=[1.0, 2.0])
    ch = noisy_chain(device="cpu")
    with pytest.raises(TypeError, match="`chain`"): sample_transitions("chain", 10)
    with pytest.raises(ValueError, match="`n`"): sample_transitions(ch, 0)
    with pytest.raises(ValueError, match="`loss`"): train_td_critic(ch, "huber")
    with pytest.raises(ValueError, match="`members`"): train_td_critic(ch, "ggd+biev", members=2)
    with pytest.raises(ValueError, match="`lr`"): train_td_critic(ch, lr=0.0)
    with pytest.raises(ValueError, match="`steps`"): train_td_critic(ch, steps=0)
    with pytest.raises(TypeError, match="`seeds`"): train_td_critic(ch, seeds=3)
    with pytest.raises(ValueError, match="`h`"): td_loss("mse", torch.zeros(1, 5, 3, dtype=F64), torch.zeros(1, 5, 2, dtype=F64), torch.ones(1, 5, 3, dtype=F64))
    with pytest.raises(ValueError, match="`lam`"): td_loss("mse", torch.zeros(1, 5, 3, dtype=F64), torch.zeros(1, 5, 3, dtype=F64), torch.ones(1, 5, 3, dtype=F64), lam=-1.0)
    with pytest.raises(ValueError, match="`noise`"): ggd_td_figure(noise="cauchy")
    with pytest.raises(ValueError, match="`members`"): ggd_td_figure(members=2)
    with pytest.raises(ValueError, match="`beta`"): ggd_shape_traces(0.0)
    with pytest.raises(ValueError, match="`seed`"): sample_ggd(10, 1.0, seed=-1)
    with pytest.raises(TypeError, match="`seed`"): sample_ggd(10, 1.0, seed=np.random.default_rng(0))
    with pytest.raises(TypeError, match="`seed`"): sample_transitions(ch, 10, seed="0")
    with pytest.raises(TypeError, match="`chain`"): family_groups(ch.noise)
    with pytest.raises(ValueError, match="`chain`"): family_groups(noisy_chain(("laplace", "uniform", "laplace"), device="cpu"))
    with pytest.raises(TypeError, match="`betas`"): ggd_shape_slider_figure(betas=())
    with pytest.raises(ValueError, match="`betas\\[1\\]`"): ggd_shape_slider_figure(betas=(1.0, -1.0))
    with pytest.raises(ValueError, match="`active`"): ggd_shape_slider_figure(betas=(1.0, 2.0), active=5)
    with pytest.raises(TypeError, match="`progress`"): train_td_critic(ch, steps=2, progress="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda():
    x = torch.linspace(-2, 2, 11, dtype=F64, device="cuda")
    assert ggd_nll(x, 1.5).device.type == "cuda"
    ch = noisy_chain(device="cuda")
    run = train_td_critic(ch, "ggd+biev", seeds=(0,), steps=50, device="cuda")
    assert run.values.device.type == "cuda"


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_d = torch.randn(16, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
_t3 = torch.zeros(1, 5, 8, dtype=F64)
_ch = noisy_chain(device="cpu")
_run = TDRun("ggd", (0,), torch.zeros(1, 5, 10, dtype=F64), torch.zeros(1, 5, 10, dtype=F64), torch.ones(1, 2, dtype=F64),
             torch.tensor([0, 1]), torch.ones(1, 10, dtype=F64))
_short = TDRun("ggd", (0,), torch.zeros(1, 5, 3, dtype=F64), torch.zeros(1, 5, 3, dtype=F64), torch.ones(1, 2, dtype=F64),
               torch.tensor([0, 1]), torch.ones(1, 3, dtype=F64))
_task = point_task()
_study = ACStudy(("mse", "ggd"), (0, 1), torch.tensor([0, 50, 100]), torch.randn(2, 2, 3, dtype=F64), torch.ones(2, 2, dtype=F64))
_groups = {"a": slice(0, 4), "b": slice(4, 10)}
_nan_t = torch.tensor([0.0, NAN], dtype=F64)
_BETA = [0.0, -1.0, NAN, INF, "1", torch.tensor([1.0, -1.0], dtype=F64)]
_POS = [0.0, -1.0, NAN, INF, "1"]
_RANGE = [(2.0, 1.0), (1.0,), "ab", 2.0]
_RANGE_ENTRY = [(0.0, 1.0), (1.0, NAN), (-1.0, 2.0)]
_BOOL = ["yes", 1]

PROBES = [
    Probe(ggd_nll, dict(delta=torch.zeros(4, dtype=F64), beta=1.5),
          dict(delta=[[0.0, 1.0], torch.zeros(3, dtype=torch.int64), _nan_t], beta=_BETA + [torch.ones(3, dtype=F64)],
               alpha=_POS + [torch.tensor([1.0, NAN], dtype=F64)], loc=[NAN, "0", _nan_t])),
    Probe(ggd_variance, dict(beta=1.5), dict(beta=_BETA, alpha=_POS, device=[3, "no-such-device"])),
    Probe(ggd_kurtosis, dict(beta=1.5), dict(beta=_BETA, device=[3])),
    Probe(ggd_entropy, dict(beta=1.5), dict(beta=_BETA, alpha=_POS)),
    Probe(sample_ggd, dict(n=10, beta=1.5), dict(n=SIZES + [2.5], beta=[0.0, -1.0, NAN, -INF, "1"], alpha=_POS,
                                                 seed=[-1, "0", 1.5])),
    Probe(fit_ggd_shape, dict(samples=torch.randn(50, dtype=F64)),
          dict(samples=[torch.zeros(3, 2, dtype=F64), torch.zeros(1, dtype=F64), _nan_t, [0.0, 1.0]],
               alpha=_POS, loc=[NAN, "0"], beta_range=_RANGE)),
    Probe(fit_ggd_shape, dict(samples=torch.randn(50, dtype=F64)), dict(beta_range=_RANGE_ENTRY),
          named={"beta_range": r"beta_range\[\d\]"}),
    Probe(excess_kurtosis, dict(x=_d), dict(x=[torch.zeros(3, dtype=F64), [1.0] * 5, torch.full((5,), NAN, dtype=F64),
                                            torch.zeros(5, dtype=torch.int64)])),
    Probe(effective_batch_size, dict(weights=torch.ones(4, dtype=F64)),
          dict(weights=[torch.tensor([1.0, -1.0], dtype=F64), _nan_t, [1.0, 2.0], torch.zeros(4, dtype=F64),
                        torch.tensor(1.0, dtype=F64)])),
    Probe(biev_weights, dict(td_errors=_d),
          dict(td_errors=[torch.zeros(8, 3, dtype=F64), torch.zeros(8, dtype=F64), _d[:1], torch.full((8, 5), NAN, dtype=F64),
                          _d.numpy()],
               min_ess=SIZES + [1.5], kurtosis_correction=_BOOL, direction=[UNKNOWN], eps=_POS)),
    Probe(noisy_chain, dict(device="cpu"),
          dict(noise=["laplace", ("laplace",), 3], alpha=_POS, gamma=[0.0, 1.0, 1.5, NAN, "0.9"],
               values=[[1.0, 2.0], [NAN] * 10, "abcdefghij", [["a"]] * 10], shape=_POS, device=[3, "no-such-device"])),
    Probe(noisy_chain, dict(device="cpu"), dict(noise=[("cauchy", "laplace")]), named={"noise": r"noise\[0\]"}),
    Probe(family_groups, dict(chain=_ch),
          dict(chain=["chain", _ch.noise, noisy_chain(("laplace", "uniform", "laplace"), device="cpu")])),
    Probe(sample_transitions, dict(chain=_ch, n=10, device="cpu"), dict(chain=["chain"], n=SIZES + [2.5], seed=[-1, "0", 1.5])),
    Probe(head_beta, dict(h=torch.zeros(3, dtype=F64)), dict(h=[[0.0], _nan_t, torch.zeros(3, dtype=torch.int64)],
                                                         beta_max=[0.1, NAN, INF, "20"])),
    Probe(head_variance, dict(h=torch.zeros(3, dtype=F64)), dict(h=[[0.0], _nan_t, torch.zeros(3, dtype=torch.int64)])),
    Probe(td_loss, dict(loss="ggd+biev", delta=_t3, h=_t3, weight=torch.ones_like(_t3)),
          dict(loss=[UNKNOWN, 3], delta=[torch.zeros(8, dtype=F64), torch.full((1, 5, 8), NAN, dtype=F64), [0.0]],
               h=[torch.zeros(1, 5, 7, dtype=F64), [0.0], torch.full((1, 5, 8), NAN, dtype=F64)],
               weight=[torch.ones(1, 5, 7, dtype=F64), "1", -torch.ones_like(_t3), torch.full((1, 5, 8), NAN, dtype=F64)],
               lam=[-1.0, NAN, "0.1"], min_ess=SIZES, beta_max=[0.1, NAN], detach_weights=_BOOL, direction=[UNKNOWN])),
    Probe(td_loss, dict(loss="ggd+biev", delta=_t3[:, :3], h=_t3[:, :3], weight=torch.ones_like(_t3[:, :3])),
          dict(delta=[torch.zeros(1, 3, 8, dtype=F64)])),  # BIEV's kurtosis needs 4 members
    Probe(train_td_critic, dict(chain=_ch, steps=2, n_transitions=50, device="cpu"),
          dict(chain=["chain"], loss=[UNKNOWN], seeds=[3, (), "ab"], n_transitions=[0, 1], members=SIZES,
               steps=SIZES, batch_size=[0, 1], lr=_POS, lam=[-1.0, NAN], min_ess=SIZES, beta_max=[0.1, NAN],
               detach_weights=_BOOL, direction=[UNKNOWN], record_every=SIZES, progress=["yes", 3])),
    Probe(train_td_critic, dict(chain=_ch, steps=2, n_transitions=50, device="cpu"), dict(seeds=[(-1,), (1.5,), ("0",)]),
          named={"seeds": r"seeds\[0\]"}),
    Probe(unit_variance_alpha, dict(beta=1.5), dict(beta=_BETA)),
    Probe(ggd_density, dict(x=torch.zeros(3, dtype=F64), beta=1.5),
          dict(x=[[0.0], _nan_t], beta=_BETA, alpha=_POS)),
    Probe(plot_ggd_shapes, dict(betas=(1.0, 2.0)), dict(betas=[(), "ab", 2.0])),
    Probe(plot_ggd_shapes, dict(betas=(1.0, 2.0)), dict(betas=[(1.0, -1.0), (1.0, NAN), (1.0, "2")]), named={"betas": r"betas\[1\]"}),
    Probe(plot_ggd_moments, dict(), dict(beta_range=_RANGE, alpha=_POS)),
    Probe(plot_ggd_moments, dict(), dict(beta_range=_RANGE_ENTRY), named={"beta_range": r"beta_range\[\d\]"}),
    Probe(plot_learned_beta, dict(run=_run, chain=_ch),
          dict(run=["run", _ch], chain=["chain", noisy_chain(("laplace",) * 3, device="cpu")], ax=["ax"], title=[3])),
    Probe(plot_learned_beta, dict(run=_run, chain=_ch), dict(run=[_short]), named={"run": "chain"}),
    Probe(rmse_table, dict(runs={"ggd": _run}, chain=_ch, groups=_groups),
          dict(runs=[{}, {"ggd": "run"}, "runs", ["run"]], chain=["chain", noisy_chain(("laplace",) * 3, device="cpu")],
               groups=[{"a": 3}, "groups", {"a": slice(20, 30)}])),
    Probe(rmse_table, dict(runs={"ggd": _run}, chain=_ch, groups=_groups), dict(runs=[{"ggd": _short}]), named={"runs": "chain"}),
    Probe(plot_rmse, dict(runs={"ggd": _run}, chain=_ch, groups=_groups),
          dict(runs=[{}, {"ggd": "run"}], chain=["chain"], groups=[{"a": 3}], title=[3], group_title=[3])),
    Probe(point_task, dict(), dict(dt=_POS, horizon=SIZES + [2.5], gamma=[0.0, 1.0, NAN, "0.9"],
                                   action_cost=[-1.0, NAN, INF], x_max=_POS, start=[-1.0, 3.0, NAN], noise=[UNKNOWN],
                                   noise_shape=[1.0, 0.5, NAN, -1.0], noise_scale=[-1.0, NAN, INF])),
    Probe(reward_noise, dict(task=_task, n=10, device="cpu"), dict(task=["task"], n=SIZES + [2.5], seed=[-1, "0"])),
    Probe(rollout_return, dict(task=_task, policy=lambda x: -x, starts=torch.zeros(3, dtype=F64)),
          dict(task=["task"], policy=["policy", 3],
               starts=[[0.0], _nan_t, torch.tensor([3.0], dtype=F64), torch.zeros(3, dtype=torch.int64)])),
    Probe(train_actor_critic, dict(task=_task, seeds=(0,), steps=2, device="cpu"),
          dict(task=["task"], losses=["mse", (), ("mse", "mse"), 3], seeds=[3, (), "ab"], steps=SIZES,
               envs=SIZES, members=SIZES, hidden=SIZES, batch_size=[0, 1], lr_critic=_POS, lr_actor=_POS,
               tau=[0.0, 1.5, NAN], explore_std=_POS, lam=[-1.0, NAN], warmup=[-1, 2.5], eval_every=SIZES,
               progress=["yes"])),
    Probe(train_actor_critic, dict(task=_task, seeds=(0,), steps=2, device="cpu"), dict(losses=[(UNKNOWN,), ("gaussian-nll",)]),
          named={"losses": r"losses\[0\]"}),
    Probe(train_actor_critic, dict(task=_task, seeds=(0,), steps=2, device="cpu"), dict(seeds=[(-1,), (1.5,)]),
          named={"seeds": r"seeds\[0\]"}),
    Probe(return_gap, dict(study=_study), dict(study=["study"], loss=[UNKNOWN, "ggd+biev"], baseline=[UNKNOWN],
                                               last=SIZES + [4, 2.5])),
    Probe(plot_returns, dict(study=_study), dict(study=["study", _run], title=[3])),
    Probe(ggd_shape_traces, dict(beta=1.5), dict(beta=_POS, alpha=_POS, points=SIZES + [2])),
    Probe(ggd_shape_slider_figure, dict(betas=(1.0, 2.0), active=0),
          dict(betas=[(), "ab", 2.0], active=[-1, 5, 1.5, "0"])),
    Probe(ggd_td_figure, dict(), dict(beta=_POS, alpha=_POS, noise=[UNKNOWN], members=[2, 0], min_ess=SIZES,
                                      lam=[-1.0, NAN], progress=["yes"])),
]
