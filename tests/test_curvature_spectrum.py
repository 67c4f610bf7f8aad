"""Reference tests for gradviz.curvature.spectrum: dense float64 Hessians, closed forms, PyHessian (optional)."""
import math
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import reference as ref
from reference import require_ref
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from gradviz.autodiff import model_function, flatten_params
from gradviz.core import as_generator
from gradviz.curvature.spectrum import (EXACT_MAX_PARAMS, ClusterProblem, GaussNewtonSplit, HessianSpectrum, LinePath,
                                        cluster_problem, count_outliers, explore_spectrum, gauss_newton_split,
                                        hessian_spectrum, image_problem, loss_along_line, near_zero_fraction,
                                        operator_spectrum, plot_gauss_newton_split, plot_line_paths, plot_slq_spectrum,
                                        plot_spectra, plot_top_eigenvalues, residual_operator, spectra_figure,
                                        spectrum_figure, symlog_bins)
from gradviz.viz import Explorer
from gradviz.data import mlp, train
from gradviz.linalg import DenseOperator

F64 = torch.float64


@pytest.fixture(scope="module")
def small64():
    "A trained ReLU network (p = 171) on three clusters, in float64."
    return cluster_problem(num_classes=3, width=12, n=150, steps=150, dtype=F64, device="cpu")


@pytest.fixture(scope="module")
def dense_H(small64):
    "The reference Hessian: reverse-over-reverse in float64, independent of gradviz's derivative code."
    return ref.model_hessian(small64.model, small64.loss_fn, small64.X, small64.y)


# ----------------------------------------------------------------------------- H = G + R
def test_split_identity_float64(small64):
    s = gauss_newton_split(small64.model, small64.loss_fn, small64.X, small64.y)
    assert isinstance(s, GaussNewtonSplit) and s.H_dense is not None
    assert s.relative_error() < 1e-5
    assert torch.linalg.matrix_norm(s.R_dense) > 1e-4 * torch.linalg.matrix_norm(s.H_dense)  # R is really there


def test_split_dense_matches_reference_hessian(small64, dense_H):
    s = gauss_newton_split(small64.model, small64.loss_fn, small64.X, small64.y)
    assert torch.allclose(s.H_dense, dense_H, atol=1e-12, rtol=0)


def test_gauss_newton_is_psd_and_hessian_is_not(small64):
    s = gauss_newton_split(small64.model, small64.loss_fn, small64.X, small64.y)
    eG, eH = torch.linalg.eigvalsh(s.G_dense), torch.linalg.eigvalsh(s.H_dense)
    assert eG[0] > -1e-10 * eG[-1]
    assert eH[0] < -1e-4


def test_gauss_newton_rank_is_n_times_c_minus_1(small64):
    "On N = 20 samples, N(C − 1) = 40 < p = 171: the softmax output Hessians (rank C − 1 each) cap G's rank."
    X, y = small64.X[:20], small64.y[:20]
    G_ref = ref.gauss_newton(small64.model, F.cross_entropy, X, y)  # Jᵀ ∇²_z ℓ J from the linearised model
    s = gauss_newton_split(small64.model, F.cross_entropy, X, y)
    assert s.H.size > 20 * 2 and torch.allclose(s.G_dense, G_ref, atol=1e-14, rtol=0)
    rank = lambda M: int(torch.linalg.matrix_rank(M, hermitian=True, rtol=1e-10))
    assert rank(G_ref) == rank(s.G_dense) == 20 * (3 - 1)  # diag(p) instead of diag(p) − ppᵀ would give N·C = 60
    assert rank(s.H_dense) > 20 * (3 - 1)  # the bound is G's, not H's: the residual adds rank


def test_linear_softmax_model_has_no_residual(small64):
    lin = mlp([10, 3], seed=0, device="cpu", dtype=F64)
    train(lin, "cross_entropy", small64.X, small64.y, steps=30, lr=0.1)
    s = gauss_newton_split(lin, F.cross_entropy, small64.X, small64.y)
    assert torch.linalg.matrix_norm(s.R_dense) < 1e-12 * torch.linalg.matrix_norm(s.H_dense)
    assert torch.allclose(s.G_dense, s.H_dense, atol=1e-14, rtol=0)


def test_split_for_mse():
    p = cluster_problem(num_classes=3, width=8, n=120, steps=100, loss="mse", lr=0.5, dtype=F64, device="cpu")
    s = gauss_newton_split(p.model, p.loss_fn, p.X, p.y)
    assert s.relative_error() < 1e-5
    assert torch.linalg.eigvalsh(s.G_dense)[0] > -1e-12


def test_residual_operator_matches_definition(small64):
    "R from the formula Σ_ic (∂ℓ/∂z_ic) ∇²z_ic, with the per-output Hessians summed explicitly."
    m, X, y = small64.model, small64.X[:20], small64.y[:20]
    net, theta = model_function(m), flatten_params(m)
    z = net(theta, X).detach().requires_grad_(True)
    dz = torch.autograd.grad(F.cross_entropy(z, y), z)[0]
    R_ref = sum(dz[i, c] * ref.dense_hessian(lambda t: net(t, X)[i, c], theta)
                for i in range(len(X)) for c in range(3))
    assert torch.allclose(residual_operator(m, F.cross_entropy, X, y).dense(), R_ref, atol=1e-12, rtol=0)


def test_split_operators_only_when_large():
    net = mlp([40, 70, 3], seed=0, device="cpu")
    X, y = torch.randn(30, 40, generator=as_generator(0)), torch.arange(30) % 3
    s = gauss_newton_split(net, F.cross_entropy, X, y)
    assert s.H.size > EXACT_MAX_PARAMS and s.H_dense is None
    v = torch.randn(s.H.size, generator=as_generator(1))
    assert torch.allclose(s.H @ v, s.G @ v + s.R @ v, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="dense"): s.relative_error()


# ----------------------------------------------------------------------------- spectra
def test_exact_spectrum_matches_eigvalsh(small64, dense_H):
    s = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, k=7)
    ref = torch.linalg.eigvalsh(dense_H).numpy()
    assert s.method == "exact" and s.num_params == len(ref)
    np.testing.assert_allclose(s.eigenvalues, ref, atol=1e-12)
    np.testing.assert_allclose(s.top_eigenvalues, ref[::-1][:7], atol=1e-12)
    assert math.isclose(s.trace, ref.sum(), rel_tol=1e-12)
    assert math.isclose(s.density.weights.sum(), 1.0, rel_tol=1e-12)


def test_lanczos_spectrum_matches_exact(small64, dense_H):
    s = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, k=6, exact=False,
                         num_probes=40, num_iters=60, seed=3)
    ref = torch.linalg.eigvalsh(dense_H).numpy()
    assert s.method == "lanczos" and s.eigenvalues is None
    np.testing.assert_allclose(s.top_eigenvalues, ref[::-1][:6], rtol=1e-7)
    assert abs(s.trace - ref.sum()) < 4 * s.trace_stderr
    assert s.density.wasserstein(ref) < 0.05 * (ref[-1] - ref[0])
    assert s.num_products > 40 * 60


def test_lanczos_spectrum_is_seeded(small64):
    kw = dict(k=3, exact=False, num_probes=3, num_iters=20)
    a = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, seed=5, **kw)
    b = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, seed=as_generator(5), **kw)
    assert np.array_equal(a.top_eigenvalues, b.top_eigenvalues) and a.trace == b.trace


def test_operator_spectrum_on_known_matrix():
    ev = torch.cat([torch.zeros(100, dtype=F64), torch.tensor([2.0, 2.5, 3.0], dtype=F64)])
    s = operator_spectrum(DenseOperator(torch.diag(ev)), k=5)
    np.testing.assert_allclose(s.top_eigenvalues, [3.0, 2.5, 2.0, 0.0, 0.0])
    assert s.num_outliers() == 3 and s.near_zero_fraction() == pytest.approx(100 / 103)
    assert isinstance(s, HessianSpectrum) and s.lambda_max == 3.0


def test_width_adds_near_zero_eigenvalues_and_classes_add_outliers():
    "Claims (a)–(c) at a reduced size: outlier count C − 1 at two widths, more mass at zero when wider."
    specs = {}
    for C in (3, 5):
        for w in (16, 32):
            p = cluster_problem(num_classes=C, width=w, n=300, dtype=F64, device="cpu")
            specs[C, w] = hessian_spectrum(p.model, p.loss_fn, p.X, p.y)
    for (C, w), s in specs.items(): assert s.num_outliers() == C - 1, (C, w, s.top_eigenvalues[:C + 1])
    for C in (3, 5): assert specs[C, 32].near_zero_fraction() > specs[C, 16].near_zero_fraction()


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_log_gap_counts_c_minus_1_on_fresh_networks(seed):
    """Networks the chapter never trains (width 24, N = 200, 1,000 steps, seeds 6-8): C - 1 outliers for C = 3, 6, 9.

    In this recipe seed 5 with C = 3 grows a third outlier (C, not C - 1) that both rules see; the seeds here do not."""
    counts = {}
    for C in (3, 6, 9):
        p = cluster_problem(num_classes=C, width=24, n=200, steps=1000, seed=seed, dtype=F64, device="cpu")
        ev = torch.linalg.eigvalsh(ref.model_hessian(p.model, p.loss_fn, p.X, p.y)).numpy()
        counts[C] = (count_outliers(ev), count_outliers(ev, rule="linear-gap"))
        assert counts[C][0] == C - 1, (seed, C, np.sort(ev)[::-1][:C + 2])
    if seed == 8: assert counts[9][1] == 1  # one dominant outlier: the linear rule's blind spot


# ----------------------------------------------------------------------------- PyHessian (optional reference)
@pytest.mark.ref
def test_against_pyhessian(small64, dense_H):
    pyhessian = require_ref("pyhessian")
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")
    torch.manual_seed(0)  # PyHessian draws its vectors from torch's global generator
    hess = pyhessian.hessian(small64.model, F.cross_entropy, data=(small64.X, small64.y), cuda=False)
    ref = torch.linalg.eigvalsh(dense_H).numpy()
    assert abs(ref[0]) < ref[::-1][2]  # power iteration targets |λ|: make sure the top 3 by magnitude are the top 3
    top_pyh, _ = hess.eigenvalues(top_n=3, maxIter=500, tol=1e-7)
    ours = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, k=3, exact=False, seed=0)
    np.testing.assert_allclose(sorted(top_pyh, reverse=True), ours.top_eigenvalues, rtol=1e-2)
    np.testing.assert_allclose(ours.top_eigenvalues, ref[::-1][:3], rtol=1e-8)
    samples = np.array(hess.trace(maxIter=200, tol=1e-9))
    assert abs(samples.mean() - ref.sum()) < 4 * samples.std(ddof=1) / math.sqrt(len(samples))
    ours_trace = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y, k=3, exact=False,
                                  num_probes=50, num_iters=30, seed=1)
    se_pyh = samples.std(ddof=1) / math.sqrt(len(samples))
    assert abs(ours_trace.trace - samples.mean()) < 4 * math.hypot(ours_trace.trace_stderr, se_pyh)


# ----------------------------------------------------------------------------- outliers, zero mass, lines
def test_count_outliers_and_near_zero_fraction():
    assert count_outliers([0.0, 0.01, 0.02, 1.0, 1.1, 1.2]) == 3
    assert count_outliers(torch.tensor([3.0, 0.1, 0.05])) == 1
    assert count_outliers([10.0, 9.0, 1.0, 0.9], window=2) == 1
    dominant = [5.0, 2.0, 1.8, 1.6, 0.01]
    assert count_outliers(dominant) == 4 and count_outliers(dominant, rule="linear-gap") == 1
    assert count_outliers([8.0, 4.2, 2.0, 0.5], min_rel=0.1) == 3 and count_outliers([8.0, 4.2, 2.0, 0.5]) == 2
    assert near_zero_fraction([0.0, 1e-5, 1.0, -1e-5]) == 0.75
    assert near_zero_fraction([0.0, 1.0], weights=[0.9, 0.1]) == pytest.approx(0.9)


def test_loss_along_line(small64):
    a = mlp([10, 3], seed=1, device="cpu", dtype=F64)
    b = mlp([10, 3], seed=2, device="cpu", dtype=F64)
    line = loss_along_line(a, b, F.cross_entropy, small64.X, small64.y, num_points=11, extend=0.2)
    assert line.alphas[0] == pytest.approx(-0.2) and line.alphas[-1] == pytest.approx(1.2)
    assert 0.0 in line.alphas and 1.0 in line.alphas
    assert line.losses[line.alphas == 0][0] == pytest.approx(F.cross_entropy(a(small64.X), small64.y).item())
    assert line.losses[line.alphas == 1][0] == pytest.approx(F.cross_entropy(b(small64.X), small64.y).item())
    assert line.barrier <= 1e-12  # convex in the parameters
    bump = type(line)(np.array([0.0, 0.5, 1.0]), np.array([1.0, 3.0, 2.0]))
    assert bump.barrier == pytest.approx(1.5)


def test_symlog_bins_and_plots(small64):
    e = symlog_bins([-1.0, 0.0, 10.0], linthresh=0.01, num_bins=10)
    assert len(e) == 11 and e[0] < -1.0 + 1e-6 and e[-1] > 10.0 - 1e-6 and np.all(np.diff(e) > 0)
    s = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y)
    assert isinstance(plot_spectra({"a": s, "b": s.eigenvalues}), Figure)
    fig = spectrum_figure(num_classes=3, width=8, n=200, steps=20, show="G")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and fig.axes[0].get_title().startswith("G: p = ")
    fig = plot_spectra({"a": s, "b": s.eigenvalues, "c": torch.tensor(s.eigenvalues)}, ncols=2, suptitle="x")
    assert isinstance(fig, Figure) and sum(ax.get_visible() for ax in fig.axes) == 3


def test_spectrum_figure_reports_progress():
    seen = []
    def bar(iterable, total=None, desc=None):
        seen.append(total)
        return iterable
    spectrum_figure(num_classes=3, width=8, n=200, steps=7, progress=bar)
    assert seen == [7]


def test_figures_of_the_claims(small64):
    other = cluster_problem(num_classes=3, width=12, n=150, steps=50, dtype=F64, device="cpu")
    specs = {s: hessian_spectrum(p.model, p.loss_fn, p.X, p.y, k=5) for s, p in ((1.0, small64), (2.0, other))}
    fig = plot_top_eigenvalues(specs, num_outliers=2, num_bulk=1, xlabel="separation")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3
    split = gauss_newton_split(small64.model, small64.loss_fn, small64.X, small64.y)
    fig = plot_gauss_newton_split(split, top=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[0].collections) == 1
    bump = LinePath(np.array([0.0, 0.5, 1.0]), np.array([1.0, 3.0, 2.0]))
    fig = plot_line_paths({"flat": LinePath(np.array([0.0, 1.0]), np.array([1.0, 1.0])), "bump": bump}, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2 + 2  # two paths and the α = 0, 1 markers


def test_spectra_slider_figure(small64):
    s = hessian_spectrum(small64.model, small64.loss_fn, small64.X, small64.y)
    fig = spectra_figure({"one": s, "half": s.eigenvalues / 2, "tenth": s.eigenvalues / 10}, title="t")
    assert isinstance(fig, go.Figure) and len(fig.data) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert list(fig.layout.xaxis.ticktext)  # symlog tick labels come through `layout=`
    assert [t.visible for t in fig.data] == [True, False, False]


def test_image_problem_and_slq_plot():
    p = image_problem(n=32, num_classes=4, image_size=6, channels=1, width=3, steps=5, batch_size=8)
    assert isinstance(p, ClusterProblem) and tuple(p.X.shape) == (32, 1, 6, 6) and len(p.losses) == 5
    s = hessian_spectrum(p.model, p.loss_fn, p.X, p.y, k=4, exact=False, num_probes=2, num_iters=10, seed=0)
    fig = plot_slq_spectrum(s, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[1].lines[0].get_xdata()) == 4


def test_explorer_updates():
    ex = explore_spectrum()
    assert isinstance(ex, Explorer) and {"num_classes", "width", "loss", "show"} <= set(ex.controls)
    a = ex.update(num_classes=3, show="R", steps=0)
    b = ex.update(loss="mse")
    assert isinstance(a, Figure) and isinstance(b, Figure) and a is not b
    assert a.axes[0].get_title() != b.axes[0].get_title()
    assert ex.cache_info().misses == 2
    assert ex.update(loss="cross_entropy") is a and ex.cache_info().hits == 1


def test_cluster_problem_seed_accepts_a_generator():
    a = cluster_problem(num_classes=3, width=4, n=60, steps=3, seed=5, device="cpu")
    b = cluster_problem(num_classes=3, width=4, n=60, steps=3, seed=5, device="cpu")
    c = cluster_problem(num_classes=3, width=4, n=60, steps=3, seed=as_generator(5), device="cpu")
    assert torch.equal(a.X, b.X) and torch.equal(a.losses, b.losses)
    assert c.X.shape == a.X.shape and torch.isfinite(c.losses).all()


def test_on_device(device):
    p = cluster_problem(num_classes=3, width=8, n=100, steps=10, device=device)
    s = hessian_spectrum(p.model, p.loss_fn, p.X, p.y, k=3, exact=False, num_probes=2, num_iters=10, seed=0)
    assert np.all(np.isfinite(s.top_eigenvalues)) and math.isfinite(s.trace)
    cpu = hessian_spectrum(p.model, p.loss_fn, p.X, p.y, k=3, device="cpu")
    assert cpu.method == "exact"


# ----------------------------------------------------------------------------- bad input
def test_bad_input(small64):
    m, X, y, L = small64.model, small64.X, small64.y, small64.loss_fn
    with pytest.raises(ValueError, match="`k`"): hessian_spectrum(m, L, X, y, k=0)
    with pytest.raises(ValueError, match="`num_probes`"): hessian_spectrum(m, L, X, y, exact=False, num_probes=0)
    with pytest.raises(TypeError, match="`exact`"): hessian_spectrum(m, L, X, y, exact="yes")
    with pytest.raises(TypeError, match="`model`"): hessian_spectrum("net", L, X, y)
    with pytest.raises(ValueError, match="`X` contains non-finite"): hessian_spectrum(m, L, X * float("nan"), y)
    with pytest.raises(ValueError, match="same length"): hessian_spectrum(m, L, X, y[:-1])
    big = nn.Linear(100, 31)
    with pytest.raises(ValueError, match="`exact`=True needs p"):
        hessian_spectrum(big, F.cross_entropy, torch.randn(4, 100), torch.zeros(4, dtype=torch.long), exact=True)
    with pytest.raises(TypeError, match="`dense`"): gauss_newton_split(m, L, X, y, dense=1)
    with pytest.raises(ValueError, match="`eigenvalues` needs at least 2"): count_outliers([1.0])
    with pytest.raises(ValueError, match="`window`"): count_outliers([1.0, 2.0, 3.0], window=5)
    with pytest.raises(ValueError, match="`eigenvalues` contains non-finite"): count_outliers([1.0, float("nan")])
    with pytest.raises(ValueError, match="`rel_tol`"): near_zero_fraction([1.0, 0.0], rel_tol=-1)
    with pytest.raises(ValueError, match="`weights`"): near_zero_fraction([1.0, 0.0], weights=[1.0])
    linear = mlp([10, 3], seed=0, dtype=F64, device="cpu")
    with pytest.raises(ValueError, match="same parameters"): loss_along_line(m, linear, L, X, y)
    with pytest.raises(ValueError, match="`num_points`"): loss_along_line(m, m, L, X, y, num_points=1)
    with pytest.raises(ValueError, match="`extend`"): loss_along_line(m, m, L, X, y, extend=-0.1)
    with pytest.raises(ValueError, match="`loss`"): cluster_problem(loss="hinge")
    with pytest.raises(ValueError, match="`steps`"): cluster_problem(steps=-1)
    with pytest.raises(ValueError, match="`show`"): spectrum_figure(show="Q")
    with pytest.raises(ValueError, match="`spectra` is empty"): plot_spectra({})
    with pytest.raises(ValueError, match="`linthresh`"): symlog_bins([1.0], linthresh=0)
    with pytest.raises(TypeError, match="`seed`"): cluster_problem(seed=1.5)
    with pytest.raises(TypeError, match="`progress`"): cluster_problem(steps=2, progress="yes")
    with pytest.raises(TypeError, match="`spectra`"): plot_top_eigenvalues([1.0], num_outliers=1)
    with pytest.raises(ValueError, match="`num_outliers`"):
        plot_top_eigenvalues({1.0: hessian_spectrum(m, L, X, y, k=3)}, num_outliers=0)
    split_ops = gauss_newton_split(m, L, X, y, dense=False)
    with pytest.raises(ValueError, match="dense"): plot_gauss_newton_split(split_ops)
    with pytest.raises(ValueError, match="`paths` is empty"): plot_line_paths({})
    with pytest.raises(ValueError, match="`spectra` is empty"): spectra_figure({})
    with pytest.raises(ValueError, match="`n`"): image_problem(n=2, num_classes=4)
    with pytest.raises(TypeError, match="`spectrum`"): plot_slq_spectrum(np.zeros(3))


# ----------------------------------------------------------------------------- bad-input probes
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_M = mlp([4, 5, 3], seed=0, device="cpu", dtype=F64)
_X = torch.randn(12, 4, generator=as_generator(0), dtype=F64)
_Y = torch.arange(12) % 3
_MODEL = dict(model=_M, loss_fn=F.cross_entropy, X=_X, y=_Y)
_BAD_MODEL = dict(model=["net", nn.Sequential()], loss_fn=["cross_entropy", None],
                  X=[torch.full((12, 4), NAN, dtype=F64), torch.ones(11, 4, dtype=F64), "X"],
                  y=[torch.ones(11, dtype=torch.long), "y"])
_SPEC = hessian_spectrum(_M, F.cross_entropy, _X, _Y, k=4)
_SPLIT = gauss_newton_split(_M, F.cross_entropy, _X, _Y)
_BAD_EIGS = [[1.0], [1.0, NAN], [1.0, INF], "abc", [], torch.ones(2, 2)[:0]]
_BAD_SPECTRA = [[1.0, 2.0], {}, {"a": "abc"}, {"a": [1.0, NAN]}, "spectra"]

PROBES = [
    Probe(operator_spectrum, dict(op=torch.diag(torch.arange(1.0, 7.0, dtype=F64)), k=2, num_probes=2, num_iters=3,
                                  exact=None, seed=0),
          dict(op=["op", torch.ones(3, 4), torch.full((3, 3), NAN), torch.ones(3)], k=[*SIZES, 7, 1.5],
               num_probes=[*SIZES, 2.5], num_iters=[*SIZES, 2.5], exact=["yes", 1], seed=[1.5, "zero", -1])),
    Probe(count_outliers, dict(eigenvalues=[3.0, 2.0, 0.1], window=None, rule="log-gap", min_rel=0.3),
          dict(eigenvalues=[*_BAD_EIGS, [0.0, -1.0]], window=[*SIZES, 1, 4, 2.5], rule=[UNKNOWN, 3],
               min_rel=[NAN, INF, 0.0, -1.0, 1.5, "0.3"])),
    Probe(near_zero_fraction, dict(eigenvalues=[0.0, 1.0], rel_tol=1e-3, weights=None),
          dict(eigenvalues=_BAD_EIGS[1:], rel_tol=[NAN, INF, 0.0, -1.0, "small"],
               weights=[[1.0], [NAN, 1.0], [-1.0, 2.0], [0.0, 0.0], "w"])),
    Probe(hessian_spectrum, dict(**_MODEL, k=2, num_probes=2, num_iters=3, exact=None, seed=0, device=None),
          dict(**_BAD_MODEL, k=[*SIZES, 1.5], num_probes=SIZES, num_iters=SIZES, exact=["yes", 1], seed=[1.5, "zero"],
               device=[UNKNOWN, 3])),
    Probe(cluster_problem, dict(num_classes=3, width=4, separation=3.0, steps=2, n=30, dim=3, loss="cross_entropy",
                                lr=0.05, batch_size=None, seed=0, device="cpu", dtype=F64, progress=False),
          dict(num_classes=[*SIZES, 1, 2.5], width=[*SIZES, 2.5], separation=[NAN, INF, -1.0, "far"],
               steps=[-1, 2.5], n=[*SIZES, 2.5], dim=[*SIZES, 2.5], loss=[UNKNOWN, 3], lr=[NAN, INF, 0.0, -1.0],
               batch_size=[*SIZES, 31, 2.5], seed=[1.5, "zero", -1], device=[UNKNOWN], dtype=[torch.long, "float64"],
               progress=["yes", 3])),
    Probe(residual_operator, dict(_MODEL), dict(_BAD_MODEL)),
    Probe(gauss_newton_split, dict(**_MODEL, dense=None, device=None),
          dict(**_BAD_MODEL, dense=["yes", 1], device=[UNKNOWN])),
    Probe(loss_along_line, dict(model_a=_M, model_b=_M, loss_fn=F.cross_entropy, X=_X, y=_Y, num_points=3, extend=0.25),
          dict(model_a=["net"], model_b=["net", mlp([4, 3], seed=0, device="cpu", dtype=F64)],
               loss_fn=["cross_entropy"], X=[torch.full((12, 4), NAN, dtype=F64), torch.ones(11, 4, dtype=F64), "X"],
               y=[torch.ones(11, dtype=torch.long), "y"], num_points=[*SIZES, 1, 2.5], extend=[NAN, INF, -0.1, "x"])),
    Probe(symlog_bins, dict(eigenvalues=[-1.0, 0.0, 10.0], linthresh=0.01, num_bins=10),
          dict(eigenvalues=_BAD_EIGS[1:], linthresh=[NAN, INF, 0.0, -1.0], num_bins=[*SIZES, 2.5])),
    Probe(plot_spectra, dict(spectra={"a": _SPEC}, suptitle=None, ncols=None, rel_linthresh=1e-3, num_bins=10),
          dict(spectra=_BAD_SPECTRA, ncols=[*SIZES, 1.5], rel_linthresh=[NAN, 0.0, -1.0],
               num_bins=[*SIZES, 2.5])),
    Probe(plot_top_eigenvalues, dict(spectra={1.0: _SPEC}, num_outliers=2, num_bulk=1, xlabel="x", title=None),
          dict(spectra=[[_SPEC], {}, {1.0: "abc"}], num_outliers=[*SIZES, 5, 1.5], num_bulk=[-1, 3, 1.5])),
    Probe(plot_gauss_newton_split, dict(split=_SPLIT, top=5, num_bins=10),
          dict(split=["split", _SPEC, gauss_newton_split(**_MODEL, dense=False)], top=[*SIZES, 1000, 2.5],
               num_bins=[*SIZES, 2.5])),
    Probe(plot_line_paths, dict(paths={"a": LinePath(np.array([0.0, 1.0]), np.array([1.0, 1.0]))}, title=None),
          dict(paths=[[1.0], {}, {"a": "path"}])),
    Probe(spectra_figure, dict(spectra={"a": _SPEC, "b": _SPEC}, title=None, rel_linthresh=1e-3, num_bins=10),
          dict(spectra=_BAD_SPECTRA, rel_linthresh=[NAN, 0.0, -1.0], num_bins=[*SIZES, 2.5])),
    Probe(spectrum_figure, dict(num_classes=2, width=2, separation=3.0, steps=1, n=20, loss="cross_entropy", show="H",
                                device="cpu", progress=False),
          dict(num_classes=[*SIZES, 1], width=SIZES, separation=[NAN, -1.0], steps=[-1, 2.5], n=SIZES,
               loss=[UNKNOWN], show=[UNKNOWN, 3], device=[UNKNOWN], progress=["yes"])),
    Probe(image_problem, dict(n=8, num_classes=2, image_size=4, channels=1, width=2, steps=1, batch_size=4, lr=0.05,
                              seed=0, device="cpu", progress=False),
          dict(n=[*SIZES, 2.5], num_classes=[*SIZES, 1], image_size=[*SIZES, 2.5], channels=[*SIZES, 2.5],
               width=[*SIZES, 2.5], steps=[*SIZES, 2.5], batch_size=[*SIZES, 2.5], lr=[NAN, INF, 0.0, -1.0],
               seed=[1.5, "zero"], device=[UNKNOWN], progress=["yes"])),
    Probe(plot_slq_spectrum, dict(spectrum=_SPEC, title=None, num_points=50),
          dict(spectrum=["spectrum", np.zeros(3)], num_points=[*SIZES, 1, 2.5])),
]
