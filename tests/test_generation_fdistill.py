"""Reference tests for gradviz.generation.fdistill: h(r) = r²f″(r) by autograd, D_f by quadrature against closed forms,
the score-difference gradient identity against autograd of the quadrature (float64), reverse KL against a separately
written VSD update, the ratio loss's calibration, stacked runs against single modules and runs, and the chapter's
findings at small settings."""
import math

import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.core import as_generator
from gradviz.data import GaussianMixture, imbalanced_ring, mlp
from gradviz.generation.fdistill import (DIVERGENCES, NORMALIZE, Distillation, _apply_stacked, _stacked_mlp,
                                         compute_gradient_identity, distill, distill_step_figure, explore_fdistill,
                                         f_divergence_1d, f_function, fdistill_figure, generator_loss, mode_coverage,
                                         normalized_weights, plot_coverage, plot_samples, plot_weight_functions,
                                         plot_weight_histograms, ratio_loss, weight_ess, weight_fn)
from tests.probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64
RING = imbalanced_ring(device="cpu")
P1D = GaussianMixture(torch.tensor([-2.0, 1.0], dtype=F64), torch.tensor([0.5, 0.7], dtype=F64),
                      torch.tensor([0.3, 0.7], dtype=F64))


def normal(mu, s):
    return lambda x: torch.distributions.Normal(torch.tensor(mu, dtype=F64), torch.tensor(s, dtype=F64)).log_prob(x)


# ---------------------------------------------------------------- the weights
@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9])
def test_weight_is_r2_times_second_derivative_of_f(divergence, alpha):
    r = torch.logspace(-3, 3, 25, dtype=F64, requires_grad=True)
    df = torch.autograd.grad(f_function(divergence, alpha)(r).sum(), r, create_graph=True)[0]
    d2f = torch.autograd.grad(df.sum(), r)[0]
    torch.testing.assert_close(weight_fn(divergence, alpha)(r.detach()), r.detach() ** 2 * d2f, rtol=1e-11, atol=0)
    assert abs(float(f_function(divergence, alpha)(torch.tensor(1.0, dtype=F64)))) < 1e-15


def test_weight_table_values():
    r = torch.tensor([0.1, 1.0, 10.0], dtype=F64)
    want = {"reverse_kl": torch.ones(3, dtype=F64), "forward_kl": r, "js": r / (1 + r), "hellinger": r.sqrt() / 2,
            "jeffreys": r + 1, "alpha": r ** 0.3}
    for k, v in want.items():
        torch.testing.assert_close(weight_fn(k, 0.3)(r), v, rtol=1e-13, atol=0)


def test_quadrature_matches_closed_forms():
    a, b = normal(0.0, 1.0), normal(1.5, 2.0)
    kl_ab = math.log(2.0) + (1 + 1.5 ** 2) / (2 * 4) - 0.5  # KL(N(0,1) ‖ N(1.5, 2²))
    kl_ba = -math.log(2.0) + (4 + 1.5 ** 2) / 2 - 0.5
    assert abs(float(f_divergence_1d(a, b, "forward_kl")) - kl_ab) < 1e-9  # D_f(p‖q) with p = a
    assert abs(float(f_divergence_1d(a, b, "reverse_kl")) - kl_ba) < 1e-9
    hel = 2 - 2 * math.sqrt(2 * 1 * 2 / (1 + 4)) * math.exp(-1.5 ** 2 / (4 * 5))
    assert abs(float(f_divergence_1d(a, b, "hellinger")) - hel) < 1e-9
    assert abs(float(f_divergence_1d(a, b, "jeffreys")) - (kl_ab + kl_ba)) < 1e-9
    assert all(abs(float(f_divergence_1d(P1D, P1D, k))) < 1e-12 for k in DIVERGENCES)


# ---------------------------------------------------------------- the gradient identity
@pytest.mark.parametrize("divergence, sigma", [("reverse_kl", 0.0), ("js", 0.0), ("reverse_kl", 0.5), ("js", 0.5)])
def test_identity_bounded_weights_within_two_percent(divergence, sigma):
    v = compute_gradient_identity(P1D, 0.7, 0.8, divergence, noise_std=sigma, seed=1)
    assert v.rel_error < 0.02
    assert ((v.estimate - v.exact).abs() < 4 * v.stderr).all()


def test_identity_forward_kl_with_many_samples_and_closed_form():
    v = compute_gradient_identity(P1D, 0.7, 0.8, "forward_kl", num_samples=4_000_000, seed=2)
    closed = torch.tensor([0.9375, -3.9609375], dtype=F64)  # −E_p[∇_(μ,s) log q], the notes' numbers
    torch.testing.assert_close(v.exact, closed, rtol=1e-6, atol=0)
    assert v.rel_error < 0.03 and ((v.estimate - v.exact).abs() < 4 * v.stderr).all()


@pytest.mark.parametrize("divergence", ["hellinger", "jeffreys", "alpha"])
def test_identity_unbounded_weights_within_four_standard_errors(divergence):
    v = compute_gradient_identity(P1D, 0.7, 0.8, divergence, num_samples=400_000, seed=5)
    assert ((v.estimate - v.exact).abs() < 4 * v.stderr).all()


def test_student_equal_to_teacher_has_zero_gradient():
    p = GaussianMixture(*(torch.tensor([v], dtype=F64) for v in (-0.4, 1.3, 1.0)))
    for k in DIVERGENCES:
        v = compute_gradient_identity(p, -0.4, 1.3, k, num_samples=5000, noise_std=0.2)
        assert float(v.estimate.abs().max()) < 1e-13 and float(v.exact.abs().max()) < 1e-12


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_a_small_step_along_the_estimate_lowers_the_divergence(divergence):
    v = compute_gradient_identity(P1D, 0.7, 0.8, divergence, num_samples=200_000, seed=3)
    mu, s = 0.7 - 0.02 * float(v.estimate[0]), 0.8 - 0.02 * float(v.estimate[1])
    assert float(f_divergence_1d(P1D, normal(mu, s), divergence)) < v.value


# ---------------------------------------------------------------- the loss pieces
def test_reverse_kl_equals_a_separately_written_vsd_update():
    gen = mlp([2, 16, 16, 2], "silu", seed=3, dtype=F64)
    g = as_generator(4)
    z, eps = torch.randn(2, 300, 2, generator=g, dtype=F64)
    x = gen(z) + 0.3 * eps
    s_p = RING.score(x.detach(), noise_std=0.3)
    s_q = -(x.detach() - 0.2) / 1.7  # any student score
    for normalize in NORMALIZE:
        logits = 4 * torch.randn(300, generator=g, dtype=F64)
        ours = torch.autograd.grad(generator_loss(x, s_p, s_q, logits, "reverse_kl", normalize), list(gen.parameters()),
                                   retain_graph=True)
        J = torch.func.jacrev(lambda th: torch.func.functional_call(gen, th, (z,)))(dict(gen.named_parameters()))
        for (name, _), a in zip(gen.named_parameters(), ours):
            vsd = torch.einsum("nd,nd...->...", (s_q - s_p) / 300, J[name])  # mean over the batch of (s_q − s_p)ᵀ ∂x/∂θ
            torch.testing.assert_close(a, vsd, rtol=0, atol=1e-12)


def test_runs_are_summed_not_averaged():
    x = torch.randn(3, 10, 2, dtype=F64, requires_grad=True)
    s_p, s_q, lr = torch.randn(3, 10, 2, dtype=F64), torch.randn(3, 10, 2, dtype=F64), torch.randn(3, 10, dtype=F64)
    both = torch.autograd.grad(generator_loss(x, s_p, s_q, lr, "js"), x)[0]
    for i in range(3):
        one = torch.autograd.grad(generator_loss(x[i], s_p[i], s_q[i], lr[i], "js"), x)[0][i]
        torch.testing.assert_close(both[i], one, rtol=0, atol=1e-15)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_normalisation(divergence):
    lr = 3 * torch.randn(4, 64, generator=as_generator(0), dtype=F64)
    for normalize in ("batch_mean", "two_stage"):
        w = normalized_weights(lr, divergence, normalize)
        torch.testing.assert_close(w.mean(-1), torch.ones(4, dtype=F64), rtol=1e-12, atol=0)
    # two_stage removes a constant offset of the logits (E_q[r] = 1 fixes it)
    torch.testing.assert_close(normalized_weights(lr + 2.5, divergence, "two_stage"),
                               normalized_weights(lr, divergence, "two_stage"), rtol=1e-10, atol=0)
    raw = normalized_weights(lr, divergence, "none")
    torch.testing.assert_close(raw, weight_fn(divergence)(lr.exp()), rtol=1e-12, atol=0)


def test_ratio_loss_is_minimised_by_the_log_ratio():
    g = as_generator(0)
    xp, xq = 1 + torch.randn(50_000, generator=g, dtype=F64), torch.randn(50_000, generator=g, dtype=F64)
    ab = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=50, line_search_fn="strong_wolfe")
    def closure():
        opt.zero_grad()
        loss = ratio_loss(ab[0] + ab[1] * xp, ab[0] + ab[1] * xq)
        loss.backward()
        return loss
    opt.step(closure)
    torch.testing.assert_close(ab.detach(), torch.tensor([-0.5, 1.0], dtype=F64), rtol=0, atol=0.04)


# ---------------------------------------------------------------- stacked training
def test_stacked_mlp_equals_separate_modules():
    params = _stacked_mlp([3, 8, 8, 2], [5, 9], None, F64)
    x = torch.randn(2, 7, 3, dtype=F64)
    for i, s in enumerate([5, 9]):
        torch.testing.assert_close(_apply_stacked(params, x)[i], mlp([3, 8, 8, 2], "silu", seed=s, dtype=F64)(x[i]),
                                   rtol=0, atol=1e-14)


def test_paired_runs_and_seeds():
    both = distill(RING, ("reverse_kl", "forward_kl"), 30, runs=2, seed=3, batch_size=64, hidden=16, snapshot_every=10)
    alone = distill(RING, "reverse_kl", 30, runs=2, seed=3, batch_size=64, hidden=16, snapshot_every=10)
    gen = distill(RING, "reverse_kl", 30, runs=2, seed=as_generator(3), batch_size=64, hidden=16, snapshot_every=10)
    torch.testing.assert_close(both.samples[:, :2], alone.samples, rtol=0, atol=1e-5)
    torch.testing.assert_close(gen.samples, alone.samples, rtol=0, atol=0)
    assert torch.equal(both.samples[0, :2], both.samples[0, 2:])
    assert both.samples.shape == (4, 4, 500, 2) and both.steps.tolist() == [0, 10, 20, 30]
    assert (weight_ess(both.weights[:2]) == 1).all()


def test_mode_coverage_by_hand():
    pts = torch.cat([RING.means[0].repeat(6, 1), RING.means[4].repeat(1, 1) + 0.05, torch.tensor([[0.0, 0.0]] * 3,
                                                                                                    dtype=F64)])
    cov = mode_coverage(pts, RING)
    assert cov.mass.tolist() == [0.6, 0, 0, 0, 0.1, 0, 0, 0]  # the centre point is more than 4 std from every mode
    assert cov.covered.tolist() == [True, False, False, False, True, False, False, False]
    assert cov.rare == 4 and abs(float(cov.rare_ratio) - 5.0) < 1e-12 and int(cov.num_covered) == 2


def test_weight_ess():
    assert float(weight_ess(torch.tensor([2.0, 2.0, 2.0]))) == 1.0
    assert abs(float(weight_ess(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))) - 0.2) < 1e-7


# ---------------------------------------------------------------- figures and the explorer
@pytest.fixture(scope="module")
def small_run():
    return distill(RING, ("reverse_kl", "js"), 40, runs=2, seed=0, batch_size=64, hidden=16, snapshot_every=20)


def test_figures(small_run):
    for fig in (plot_weight_functions(), plot_samples(small_run, run=1), plot_coverage(small_run),
                plot_weight_histograms(small_run)):
        assert isinstance(fig, Figure)
    fig = distill_step_figure(small_run, num_points=50)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 3 and len(fig.data) == 2 * (1 + 3)


def test_explorer():
    cache = {}
    fig = fdistill_figure(divergence="reverse_kl", step=80, cache=cache)
    assert isinstance(fig, go.Figure) and len(cache) == 1
    ex = explore_fdistill(cache)
    assert ex.update(divergence="reverse_kl", step=80) is not None and len(cache) == 1


PROBES = [
    Probe(f_function, dict(divergence="js"), dict(divergence=[UNKNOWN, 3]), ),
    Probe(weight_fn, dict(divergence="alpha", alpha=0.5), dict(divergence=[UNKNOWN], alpha=[0.0, 1.0, NAN, "a"])),
    Probe(plot_weight_functions, dict(divergences=("js",)), dict(divergences=[[UNKNOWN]], alpha=[1.5, NAN])),
    Probe(f_divergence_1d, dict(p=P1D, q=normal(0.0, 1.0)),
          dict(p=["x", RING], q=[3], divergence=[UNKNOWN], lo=[NAN, 30.0], hi=[INF], num_points=SIZES + [2])),
    Probe(normalized_weights, dict(log_r=torch.zeros(5)),
          dict(log_r=[torch.tensor(1.0), torch.tensor([NAN]), "x"], divergence=[UNKNOWN], normalize=[UNKNOWN])),
    Probe(generator_loss, dict(x_t=torch.zeros(4, 2), s_p=torch.zeros(4, 2), s_q=torch.zeros(4, 2), log_r=torch.zeros(4)),
          dict(x_t=[torch.zeros(4), "x"], s_p=[torch.zeros(4, 3)], s_q=[torch.zeros(3, 2), torch.full((4, 2), NAN)],
               log_r=[torch.zeros(5)], divergence=[UNKNOWN], normalize=[UNKNOWN])),
    Probe(ratio_loss, dict(logit_real=torch.zeros(4), logit_fake=torch.zeros(3)),
          dict(logit_real=[torch.tensor(0.0), "x"], logit_fake=[torch.zeros(2, 3), torch.tensor([INF])])),
    Probe(compute_gradient_identity, dict(p=P1D, mu=0.7, s=0.8, num_samples=100),
          dict(p=["x"], mu=[NAN], s=[0.0, -1.0], divergence=[UNKNOWN], num_samples=SIZES, noise_std=[-0.1, NAN],
               seed=[-1, "s"])),
    Probe(mode_coverage, dict(samples=torch.zeros(5, 2), mixture=RING),
          dict(samples=[torch.zeros(5, 3), torch.zeros(2), "x"], mixture=["ring"], within=[0.0, -1.0],
               threshold=[-0.1, 1.5])),
    Probe(distill, dict(teacher=RING, steps=1, batch_size=8, hidden=4, noise_levels=2, num_eval=4),
          dict(teacher=["ring"], divergence=[UNKNOWN, ["js", "js"], []], steps=SIZES, runs=SIZES, alpha=[0.0, 1.0],
               gan_weight=[-1.0, NAN], normalize=[UNKNOWN], exact_ratio=["yes"], batch_size=SIZES + [7], hidden=SIZES,
               noise_levels=SIZES, sigma_range=[(0.0, 1.0), (2.0, 1.0), "x"], lr=[0.0, NAN], lr_aux=[-1.0],
               snapshot_every=SIZES, num_eval=SIZES, seed=[-1, 1.5], device=["no-such-device"])),
    Probe(weight_ess, dict(weights=torch.ones(3)), dict(weights=[torch.tensor([-1.0, 1.0]), torch.tensor(1.0), "w"])),
]
UNPROBED = {
    "plot_samples": "takes a Distillation (its type is checked); drawing a small run is tested in test_figures",
    "plot_coverage": "takes a Distillation (its type is checked); tested in test_figures",
    "plot_weight_histograms": "takes a Distillation (its type is checked); tested in test_figures",
    "distill_step_figure": "takes a Distillation (its type is checked); tested in test_figures",
    "fdistill_figure": "every argument is checked, but a valid call trains a run; tested in test_explorer",
    "explore_fdistill": "one optional cache dict (type checked); tested in test_explorer",
}


# ---------------------------------------------------------------- the chapter's findings, small
def test_forward_kl_weights_are_the_most_uneven():
    "The notebook's 'forward KL is the noisiest': its last-step weights have the smallest effective sample size."
    res = distill(RING, ("reverse_kl", "js", "forward_kl"), 150, runs=2, seed=1, batch_size=64, hidden=32,
                  snapshot_every=50)
    ess = {k: weight_ess(res.weights[res.runs_of(k)]) for k in ("reverse_kl", "js", "forward_kl")}
    assert float(ess["forward_kl"].max()) < float(ess["js"].min()) and float(ess["js"].max()) < 1.0
    torch.testing.assert_close(ess["reverse_kl"], torch.ones(2), rtol=0, atol=1e-6)


def test_exact_ratio_and_gan_term_run_and_differ():
    base = distill(RING, "forward_kl", 20, seed=0, batch_size=64, hidden=16, snapshot_every=10)
    exact = distill(RING, "forward_kl", 20, seed=0, batch_size=64, hidden=16, snapshot_every=10, exact_ratio=True)
    gan = distill(RING, "forward_kl", 20, seed=0, batch_size=64, hidden=16, snapshot_every=10, gan_weight=0.5)
    assert torch.equal(base.samples[0], exact.samples[0]) and torch.equal(base.samples[0], gan.samples[0])
    assert not torch.allclose(base.samples[-1], exact.samples[-1]) and not torch.allclose(base.samples[-1], gan.samples[-1])
    assert exact.log_ratio.isfinite().all() and torch.allclose(exact.weights.mean(-1), torch.ones(1))
