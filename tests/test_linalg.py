"""Reference tests for gradviz.linalg against independent float64 Hessians (reference.py), scipy and closed forms."""
import copy
import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import scipy.stats
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import reference as ref
from gradviz.autodiff import flat_objective
from gradviz import linalg
from gradviz.core import as_generator
from gradviz.linalg import (DenseOperator, FunctionOperator, GaussNewtonOperator, HessianOperator, HutchppEstimate,
                            SpectralDensity, TraceEstimate, as_operator, compute_trace_errors, conjugate_gradient, hutchinson_trace,
                            linear_solve, sketch_solve, thick_restart_lanczos,
                            hutchpp_trace, lanczos, lanczos_tridiagonal, plot_trace_errors, randomized_svd,
                            slq_density)

F64 = torch.float64


def _mlp_problem(device="cpu", dtype=F64):
    "A trained tanh MLP with ~2,000 parameters on three Gaussian clusters."
    g = as_generator(0)
    centers = 3.0 * torch.randn(3, 10, generator=g, dtype=dtype)
    y = torch.arange(300) % 3
    X = centers[y] + torch.randn(300, 10, generator=g, dtype=dtype)
    layers, sizes = [], [10, 40, 30, 3]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a ** 0.5)
            lin.bias.zero_()
        layers += [lin, nn.Tanh()] if i < 2 else [lin]
    net = nn.Sequential(*layers).to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(150):
        opt.zero_grad(); nn.functional.cross_entropy(net(X), y).backward(); opt.step()
    net, X, y = net.to(device), X.to(device), y.to(device)
    return net, X, y


@pytest.fixture(scope="module")
def mlp_hessian():
    "The operator, and the truth from tests/reference.py: a reverse-over-reverse float64 Hessian and its spectrum."
    net, X, y = _mlp_problem()
    f, theta = flat_objective(net, nn.functional.cross_entropy, X, y)
    H = ref.model_hessian(net, nn.functional.cross_entropy, X, y)
    return HessianOperator(f, theta), H, torch.linalg.eigvalsh(H)


def test_problem_size(mlp_hessian):
    op, H, _ = mlp_hessian
    assert 1700 <= op.size <= 2200 and H.shape == (op.size, op.size)


@pytest.mark.parametrize("method", HessianOperator.methods)
def test_hessian_operator_matches_the_reference_hessian(mlp_hessian, method):
    "Headline check: both product methods against the independent float64 Hessian."
    op, H, _ = mlp_hessian
    op2 = HessianOperator(op.f, op.theta, method=method)
    V = torch.randn(op.size, 4, generator=as_generator(1), dtype=F64)
    assert torch.allclose(op2.matvec(V[:, 0]), H @ V[:, 0], atol=1e-8, rtol=0)
    assert torch.allclose(op2.matmat(V), H @ V, atol=1e-8, rtol=0)
    assert op2.num_hvps == 5


@pytest.mark.parametrize("method", HessianOperator.methods)
def test_hessian_operator_from_model_dense_matches_the_reference(method):
    from gradviz.data import mlp
    small = mlp([3, 4, 2], seed=1, device="cpu", dtype=F64)
    Xs, ys = torch.randn(20, 3, generator=as_generator(3), dtype=F64), torch.arange(20) % 2
    op = HessianOperator.from_model(small, nn.functional.cross_entropy, Xs, ys, method=method)
    H = ref.model_hessian(small, nn.functional.cross_entropy, Xs, ys)
    torch.testing.assert_close(op.dense(), H, atol=1e-12, rtol=0)
    f_ref, theta_ref = ref.flat_loss(small, nn.functional.cross_entropy, Xs, ys)
    torch.testing.assert_close(op.dense(), ref.fd_hessian(f_ref, theta_ref), atol=1e-6, rtol=0)


def test_hessian_operator_dense_and_scipy_views(mlp_hessian):
    op, H, exact = mlp_hessian
    Xs = torch.randn(5, 3, dtype=F64, generator=as_generator(0))
    small = HessianOperator.from_model(nn.Linear(3, 2).double(), lambda o, t: ((o - t) ** 2).mean(),
                                       Xs, torch.zeros(5, 2, dtype=F64))
    # mean squared error of a linear map: H = (2 / 10) I₂ ⊗ [X 1]ᵀ[X 1] in (weights row by row, then biases) order
    Xa = torch.cat([Xs, torch.ones(5, 1, dtype=F64)], 1)
    H_closed = torch.zeros(8, 8, dtype=F64)
    for out in range(2):
        idx = [3 * out, 3 * out + 1, 3 * out + 2, 6 + out]
        H_closed[torch.tensor(idx)[:, None], torch.tensor(idx)] = 2 / 10 * Xa.T @ Xa
    torch.testing.assert_close(small.dense(), H_closed, atol=1e-14, rtol=0)
    lin = op.to_scipy()
    assert lin.shape == (op.size, op.size) and lin.dtype == np.float64
    x = np.random.default_rng(0).standard_normal(op.size)
    assert np.allclose(lin @ x, (H @ torch.as_tensor(x)).numpy(), atol=1e-8)
    vals = spla.eigsh(lin, k=3, which="LA", return_eigenvectors=False, tol=1e-10)
    assert np.allclose(np.sort(vals), exact[-3:].numpy(), rtol=1e-8)


def test_linear_function_has_zero_hessian():
    op = HessianOperator(lambda t: (t * torch.arange(4.0, dtype=F64)).sum(), torch.ones(4, dtype=F64))
    assert torch.equal(op.matvec(torch.ones(4, dtype=F64)), torch.zeros(4, dtype=F64))


def test_lanczos_top10_bottom5_match_eigvalsh(mlp_hessian):
    op, _, exact = mlp_hessian
    top, vecs = lanczos(op, k=10, which="largest", seed=0)
    bottom, bvecs = lanczos(op, k=5, which="smallest", seed=1)
    ref_top, ref_bottom = exact.flip(0)[:10], exact[:5]
    assert torch.all((top - ref_top).abs() <= 1e-6 * ref_top.abs())
    assert torch.all((bottom - ref_bottom).abs() <= 1e-6 * ref_bottom.abs())
    assert torch.all(top[:-1] >= top[1:]) and torch.all(bottom[:-1] <= bottom[1:])
    # eigenvectors: orthonormal, with small residuals
    assert torch.allclose(vecs.T @ vecs, torch.eye(10, dtype=F64), atol=1e-8)
    resid = (op.matmat(vecs) - vecs * top).norm(dim=0) / exact.abs().max()
    assert resid.max() < 1e-6


def test_lanczos_uses_far_fewer_hvps_than_dimension(mlp_hessian):
    op, _, _ = mlp_hessian
    op.reset_count()
    lanczos(op, k=1, seed=0)
    assert op.num_hvps < op.size / 10


def test_lanczos_handles_repeated_eigenvalues():
    vals = torch.tensor([5.0, 5.0, 5.0, 2.0, 1.0, 1.0, 0.5, 0.0], dtype=F64)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=as_generator(0), dtype=F64))
    A = Q @ torch.diag(vals) @ Q.T
    top, _ = lanczos((A + A.T) / 2, k=4, seed=3)
    assert torch.allclose(top, torch.tensor([5.0, 5.0, 5.0, 2.0], dtype=F64), atol=1e-9)


def test_lanczos_fixed_iterations_and_ghosts():
    spectrum = torch.cat([torch.linspace(0, 1, 200, dtype=F64), torch.tensor([3.0, 5.0, 8.0], dtype=F64)])
    D = torch.diag(spectrum)
    T_full = lanczos_tridiagonal(D, 120, seed=1)
    T_plain = lanczos_tridiagonal(D, 120, reorthogonalize=False, seed=1)
    assert np.sum(np.abs(T_full.ritz()[0] - 8) < 1e-6) == 1
    assert np.sum(np.abs(T_plain.ritz()[0] - 8) < 1e-6) > 1
    op = DenseOperator(D)
    lanczos(op, k=2, num_iters=30)
    assert op.num_matvecs == 30


@settings(max_examples=20, deadline=None)
@given(st.integers(5, 40), st.integers(1, 4), st.integers(0, 10_000))
def test_lanczos_extremes_of_random_symmetric_matrices(n, k, seed):
    k = min(k, n)
    M = torch.randn(n, n, generator=as_generator(seed), dtype=F64)
    A = (M + M.T) / 2
    exact = torch.linalg.eigvalsh(A)
    top, _ = lanczos(A, k=k, seed=seed)
    low, _ = lanczos(A, k=k, which="smallest", seed=seed)
    scale = exact.abs().max()
    assert torch.allclose(top, exact.flip(0)[:k], atol=1e-7 * scale)
    assert torch.allclose(low, exact[:k], atol=1e-7 * scale)


def test_slq_density_close_to_exact_spectrum(mlp_hessian):
    op, _, exact = mlp_hessian
    sd = slq_density(op, num_probes=20, num_iters=80, seed=0)
    assert isinstance(sd, SpectralDensity)
    assert abs(sd.weights.sum() - 1) < 1e-10
    assert np.allclose(sd.weights.sum(axis=1), 1 / 20)
    assert sd.wasserstein(exact.numpy()) <= 0.05 * (exact[-1] - exact[0]).item()
    lo, hi = sd.support
    assert lo == pytest.approx(exact[0].item(), rel=1e-6) and hi == pytest.approx(exact[-1].item(), rel=1e-6)
    grid, dens = sd.curve(num_points=4000, sigma=0.002)  # margin (5% of range) spans > 4 sigma
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-3)


def test_slq_is_exact_for_low_degree_moments():
    "Gauss quadrature with m nodes integrates polynomials of degree < 2m exactly, for each probe."
    A = torch.diag(torch.linspace(-1, 3, 50, dtype=F64))
    sd = slq_density(A, num_probes=1, num_iters=3, seed=0)
    z = torch.randint(0, 2, (50,), generator=as_generator(0)).to(F64) * 2 - 1
    q = z / math.sqrt(50)
    for power in range(1, 6):
        assert sd.moment(power) == pytest.approx(float(q @ torch.linalg.matrix_power(A, power) @ q), rel=1e-10)


def test_hutchinson_within_three_standard_errors(mlp_hessian):
    op, _, exact = mlp_hessian
    est = hutchinson_trace(op, num_probes=100, seed=0)
    assert abs(est.estimate - exact.sum().item()) <= 3 * est.stderr
    assert est.stderr > 0 and len(est.samples) == 100
    gauss = hutchinson_trace(op, num_probes=100, seed=1, distribution="gaussian")
    assert abs(gauss.estimate - exact.sum().item()) <= 3 * gauss.stderr


def test_conjugate_gradient_solves_spd_systems():
    Q, _ = torch.linalg.qr(torch.randn(60, 60, generator=as_generator(0), dtype=F64))
    A = Q @ torch.diag(torch.logspace(0, 2, 60, dtype=F64)) @ Q.T
    A = (A + A.T) / 2
    b = torch.randn(60, generator=as_generator(1), dtype=F64)
    res = conjugate_gradient(lambda v: A @ v, b, tol=1e-10)
    assert res.converged and torch.allclose(res.x, torch.linalg.solve(A, b), atol=1e-8)
    kappa, rate = 100.0, (10.0 - 1) / (10.0 + 1)  # ‖r_k‖/‖r_0‖ ≤ 2√κ ((√κ-1)/(√κ+1))^k
    assert res.num_iters <= math.ceil(math.log(1e-10 / (2 * math.sqrt(kappa))) / math.log(rate))
    warm = conjugate_gradient(A, b, tol=1e-10, x0=res.x)
    assert warm.num_iters <= 1
    assert conjugate_gradient(A, torch.zeros(60, dtype=F64)).num_iters == 0


def test_conjugate_gradient_on_hessian_operator_for_convex_problem():
    g = as_generator(2)
    X = torch.randn(40, 5, generator=g, dtype=F64)
    y = (torch.rand(40, generator=g, dtype=F64) > 0.5).to(F64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad(): model.weight.copy_(0.3 * torch.randn(1, 5, generator=g, dtype=F64))
    bce = lambda o, t: nn.functional.binary_cross_entropy_with_logits(o.squeeze(-1), t)
    b = torch.ones(5, dtype=F64)
    res = conjugate_gradient(HessianOperator.from_model(model, bce, X, y), b, tol=1e-12)
    H = ref.model_hessian(model, bce, X, y)
    s_ = torch.sigmoid(X @ model.weight.detach()[0])
    torch.testing.assert_close(H, X.T @ torch.diag(s_ * (1 - s_)) @ X / 40, atol=1e-14, rtol=0)  # the closed form
    assert res.converged and torch.allclose(H @ res.x, b, atol=1e-9)
    torch.testing.assert_close(res.x, torch.linalg.solve(H, b), atol=1e-8, rtol=0)


def test_function_operator_device_follows_the_default(monkeypatch):
    monkeypatch.setenv("GRADVIZ_DEVICE", "meta")  # nothing is computed: only where the operator says it lives
    assert FunctionOperator(lambda v: v, 3).device == torch.device("meta")
    assert FunctionOperator(lambda v: v, 3, device="cpu").device == torch.device("cpu")
    with pytest.raises(TypeError, match="`matvec`"): FunctionOperator("A", 3)
    with pytest.raises(ValueError, match="`size`"): FunctionOperator(lambda v: v, 0)


def test_seed_may_be_an_int_or_a_generator():
    A = torch.diag(torch.linspace(-1, 3, 40, dtype=F64))
    gen = lambda: torch.Generator().manual_seed(4)
    assert torch.equal(lanczos(A, k=2, seed=4)[1], lanczos(A, k=2, seed=gen())[1])
    assert np.array_equal(slq_density(A, 3, 10, seed=4).nodes, slq_density(A, 3, 10, seed=gen()).nodes)
    assert np.array_equal(hutchinson_trace(A, 5, seed=4).samples, hutchinson_trace(A, 5, seed=gen()).samples)
    T1, T2 = lanczos_tridiagonal(A, 5, seed=4), lanczos_tridiagonal(A, 5, seed=gen())
    assert np.array_equal(T1.alpha, T2.alpha)
    g = gen()
    draws = [hutchinson_trace(A, 5, seed=g, distribution="gaussian").samples for _ in range(2)]
    assert not np.array_equal(*draws)  # a generator moves on between calls
    for fn in (lambda s: lanczos(A, seed=s), lambda s: slq_density(A, num_iters=10, seed=s), lambda s: hutchinson_trace(A, seed=s)):
        with pytest.raises(TypeError, match="`seed`"): fn("4")


def test_function_operator_and_counts():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=F64))
    op = FunctionOperator(lambda v: A @ v, 5, dtype=F64)
    vals, _ = lanczos(op, k=2)
    assert torch.allclose(vals, torch.tensor([5.0, 4.0], dtype=F64))
    assert op.num_matvecs > 0


def test_operator_follows_device(device):
    net, X, y = _mlp_problem(device=device, dtype=torch.float32)
    op = HessianOperator.from_model(net, nn.functional.cross_entropy, X, y)
    vals, vecs = lanczos(op, k=2, seed=0)
    assert vals.device.type == device.type and vecs.device.type == device.type
    assert vals.dtype == torch.float32


# ---------------------------------------------------------------- bad input
def test_bad_input_errors_name_the_argument():
    A = torch.eye(4, dtype=F64)
    with pytest.raises(ValueError, match="`k` must be <= 4"): lanczos(A, k=5)
    with pytest.raises(ValueError, match="`k` must be >= 1"): lanczos(A, k=0)
    with pytest.raises(ValueError, match="`which` must be one of"): lanczos(A, which="middle")
    with pytest.raises(ValueError, match="`A` must be square"): lanczos(torch.ones(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="`A` must be symmetric"): lanczos(torch.triu(torch.ones(3, 3, dtype=F64)))
    with pytest.raises(TypeError, match="`op`"): lanczos(np.eye(3))
    with pytest.raises(TypeError, match="`op`"): lanczos(spla.aslinearoperator(np.eye(3)))
    with pytest.raises(ValueError, match="`num_iters` must be <= 4"): lanczos(A, num_iters=10)
    with pytest.raises(ValueError, match="`tol`"): lanczos(A, tol=0.0)
    with pytest.raises(ValueError, match="`num_probes`"): slq_density(A, num_probes=0)
    with pytest.raises(ValueError, match="`num_iters`"): slq_density(A, num_iters=0)
    with pytest.raises(ValueError, match="`num_probes`"): hutchinson_trace(A, num_probes=1)
    with pytest.raises(ValueError, match="`distribution`"): hutchinson_trace(A, distribution="uniform")
    with pytest.raises(ValueError, match="`v` must have shape"): DenseOperator(A).matvec(torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="`V` must have shape"): DenseOperator(A).matmat(torch.ones(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="`v0` must be non-zero"):
        lanczos_tridiagonal(A, 2, v0=torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match="`b` contains non-finite"):
        conjugate_gradient(A, torch.full((4,), float("nan"), dtype=F64))
    with pytest.raises(ValueError, match="positive definite"): conjugate_gradient(-A, torch.ones(4, dtype=F64))
    with pytest.raises(TypeError, match="`matvec`"): conjugate_gradient("A", torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="max_size"): DenseOperator(torch.eye(6, dtype=F64)).dense(max_size=5)


def test_hessian_operator_rejects_bad_functions():
    with pytest.raises(ValueError, match="`f` is not finite"):
        HessianOperator(lambda t: t.sum() * float("nan"), torch.ones(3))
    with pytest.raises(ValueError, match="`f` must return a scalar"): HessianOperator(lambda t: t * 2, torch.ones(3))
    with pytest.raises(TypeError, match="`f` must be callable"): HessianOperator(3, torch.ones(3))
    with pytest.raises(ValueError, match="`theta` must have 1 dimension"):
        HessianOperator(lambda t: t.sum(), torch.ones(3, 2))
    with pytest.raises(ValueError, match="`method`"): HessianOperator(lambda t: t.sum(), torch.ones(3), method="magic")
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="non-finite"):
        HessianOperator.from_model(net, lambda o, t: o.sum() * float("inf"), torch.ones(4, 3), torch.zeros(4))


def test_lanczos_with_an_operator_that_returns_its_input():
    op = FunctionOperator(lambda v: v, 6, dtype=F64)
    vals, vecs = lanczos(op, k=1)
    assert torch.allclose(vals, torch.ones(1, dtype=F64)) and torch.isfinite(vecs).all()


# --- randomized truncated SVD -------------------------------------------------------------------

def _matrix_with_spectrum(m, n, sig, seed=0):
    g = as_generator(seed)
    U = torch.linalg.qr(torch.randn(m, len(sig), generator=g, dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(n, len(sig), generator=g, dtype=F64)).Q
    return U @ torch.diag(sig) @ V.T


@pytest.mark.parametrize("m,n", [(120, 80), (80, 120)])
def test_randomized_svd_matches_exact_svd(m, n):
    A = _matrix_with_spectrum(m, n, 0.85 ** torch.arange(min(m, n), dtype=F64))
    U, S, Vh = randomized_svd(A, 8, power_iters=2, seed=1)
    Ue, Se, Vhe = torch.linalg.svd(A, full_matrices=False)
    assert U.shape == (m, 8) and S.shape == (8,) and Vh.shape == (8, n)
    assert float(((S - Se[:8]).abs() / Se[:8]).max()) < 1e-3
    torch.testing.assert_close(U.T @ U, torch.eye(8, dtype=F64), atol=1e-10, rtol=0)
    torch.testing.assert_close(Vh @ Vh.T, torch.eye(8, dtype=F64), atol=1e-10, rtol=0)
    # singular vectors agree up to sign: |<u_i, u_i^exact>| ≈ 1
    assert float((1 - (U * Ue[:, :8]).sum(0).abs()).abs().max()) < 1e-3
    assert float((1 - (Vh * Vhe[:8]).sum(1).abs()).abs().max()) < 1e-3


def test_randomized_svd_is_exact_on_low_rank_matrices():
    A = _matrix_with_spectrum(60, 40, torch.tensor([5.0, 3.0, 1.0, 0.5], dtype=F64), seed=3)
    U, S, Vh = randomized_svd(A, 4, oversample=2, power_iters=0, seed=0)
    torch.testing.assert_close(U @ torch.diag(S) @ Vh, A, atol=1e-10, rtol=0)
    torch.testing.assert_close(S, torch.tensor([5.0, 3.0, 1.0, 0.5], dtype=F64), atol=1e-10, rtol=0)


def test_randomized_svd_power_iterations_help_and_seed_is_reproducible():
    sig = 0.95 ** torch.arange(100, dtype=F64)
    A = _matrix_with_spectrum(150, 100, sig, seed=2)
    top5_error = lambda q: float(((randomized_svd(A, 5, oversample=5, power_iters=q, seed=0).S - sig[:5]).abs()
                                  / sig[:5]).max())
    err = [top5_error(q) for q in (0, 3)]
    assert err[1] < err[0] / 10
    a, b = randomized_svd(A, 5, seed=7), randomized_svd(A, 5, seed=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.S, b.S, atol=0, rtol=0)


def test_randomized_svd_function_pair_equals_dense():
    A = _matrix_with_spectrum(50, 30, 0.7 ** torch.arange(30, dtype=F64), seed=4)
    calls = []
    pair = (lambda X: calls.append("A") or A @ X, lambda Y: calls.append("At") or A.T @ Y)
    r = randomized_svd(pair, 6, power_iters=1, seed=0, shape=(50, 30), dtype=F64, device="cpu")
    d = randomized_svd(A, 6, power_iters=1, seed=0)
    torch.testing.assert_close(r.S, d.S, atol=1e-12, rtol=0)
    assert calls.count("A") == 2 and calls.count("At") == 2  # range + one power iteration + the final Qᵀ A


def test_randomized_svd_function_pair_device_follows_the_default(monkeypatch):
    A = _matrix_with_spectrum(20, 12, 0.7 ** torch.arange(12, dtype=F64), seed=5)
    seen = []
    pair = (lambda X: seen.append(X.device) or A.to(X.dtype) @ X.cpu(),
            lambda Y: seen.append(Y.device) or A.T.to(Y.dtype) @ Y.cpu())
    monkeypatch.setenv("GRADVIZ_DEVICE", "cpu")
    r = randomized_svd(pair, 3, seed=0, shape=(20, 12), dtype=F64)
    assert r.U.device.type == "cpu" and r.S.dtype == F64 and {d.type for d in seen} == {"cpu"}
    assert randomized_svd(pair, 3, seed=0, shape=(20, 12)).S.dtype == torch.float32  # a pair's default dtype
    with pytest.raises(ValueError, match="`device`"): randomized_svd(pair, 3, shape=(20, 12), device="warp-drive")


def test_randomized_svd_float32_and_oversample_capped():
    A = _matrix_with_spectrum(20, 10, 0.5 ** torch.arange(10, dtype=F64)).float()
    U, S, Vh = randomized_svd(A, 10, oversample=50, seed=0)  # ℓ capped at min(m, n)
    assert S.dtype == torch.float32 and U.shape == (20, 10)
    torch.testing.assert_close(S, torch.linalg.svdvals(A), rtol=1e-4, atol=1e-6)


def test_randomized_svd_bad_input():
    A = torch.randn(6, 4, dtype=F64)
    with pytest.raises(ValueError, match="`k`"): randomized_svd(A, 5)
    with pytest.raises(ValueError, match="`k`"): randomized_svd(A, 0)
    with pytest.raises(TypeError, match="`k`"): randomized_svd(A, 2.0)
    with pytest.raises(ValueError, match="`oversample`"): randomized_svd(A, 2, oversample=-1)
    with pytest.raises(ValueError, match="`power_iters`"): randomized_svd(A, 2, power_iters=-1)
    with pytest.raises(ValueError, match="`A`"): randomized_svd(torch.randn(6), 1)
    with pytest.raises(ValueError, match="`A`"): randomized_svd(torch.full((3, 3), float("nan")), 1)
    with pytest.raises(TypeError, match="`A`"): randomized_svd(torch.ones(3, 3, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="`A`"): randomized_svd([A], 1)
    with pytest.raises(ValueError, match="`shape`"): randomized_svd((lambda X: A @ X, lambda Y: A.T @ Y), 2)
    with pytest.raises(ValueError, match="`shape`"): randomized_svd((lambda X: A @ X, lambda Y: A.T @ Y), 2, shape=(6,))
    with pytest.raises(TypeError, match="`seed` must be an int or a torch.Generator"): randomized_svd(A, 2, seed="x")
    with pytest.raises(ValueError, match="`seed`"): randomized_svd(A, 2, seed=-1)
    with pytest.raises(TypeError, match="generator"): randomized_svd(A, 2, generator=0)  # the old keyword is gone


# ----------------------------------------------------------------------------- Gauss–Newton operator
def _gn_problem(num_layers_hidden=1, seed=3):
    from gradviz.data import gaussian_clusters, mlp, train
    X, y = gaussian_clusters(n=90, dim=4, num_classes=3, seed=seed, device="cpu", dtype=F64)
    sizes = [4] + [5] * num_layers_hidden + [3]
    net = mlp(sizes, activation="tanh", seed=seed, device="cpu", dtype=F64)
    train(net, "cross_entropy", X, y, steps=50, lr=0.2)
    return net, X, y


def _dense_jacobian(net, X):
    from gradviz.autodiff import flat_model, jacobian
    fn, theta = flat_model(net, X)
    return jacobian(fn, theta), fn(theta)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_gauss_newton_matches_the_reference(loss):
    "Headline check: G against Jᵀ ∇²ℓ J built from the linearised model by tests/reference.py."
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem(num_layers_hidden=2)
    target = y if loss == "cross_entropy" else nn.functional.one_hot(y, 3).to(F64)
    loss_fn = getattr(nn.functional, "cross_entropy" if loss == "cross_entropy" else "mse_loss")
    G = GaussNewtonOperator(net, loss_fn, X, target)
    G_ref = ref.gauss_newton(net, loss_fn, X, target)
    torch.testing.assert_close(G.dense(), G_ref, atol=1e-13, rtol=0)
    v = torch.randn(G.size, generator=as_generator(5), dtype=F64)
    torch.testing.assert_close(G @ v, G_ref @ v, atol=1e-13, rtol=0)


def test_gauss_newton_matches_closed_form_cross_entropy():
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem()
    J, z = _dense_jacobian(net, X)
    p = z.softmax(-1)
    H_out = torch.block_diag(*[torch.diag(q) - torch.outer(q, q) for q in p]) / len(X)
    G = GaussNewtonOperator(net, nn.functional.cross_entropy, X, y)
    assert torch.allclose(G.dense(), J.T @ H_out @ J, atol=1e-13, rtol=0)
    v = torch.randn(G.size, generator=as_generator(2), dtype=F64)
    assert torch.allclose(G.jvp(v).reshape(-1), J @ v, atol=1e-13, rtol=0)
    assert torch.linalg.eigvalsh(G.dense())[0] > -1e-12


def test_gauss_newton_matches_closed_form_mse():
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem()
    Y = nn.functional.one_hot(y, 3).to(F64)
    J, z = _dense_jacobian(net, X)
    G = GaussNewtonOperator(net, nn.functional.mse_loss, X, Y)
    assert torch.allclose(G.dense(), 2 * J.T @ J / z.numel(), atol=1e-13, rtol=0)


def test_gauss_newton_plus_residual_is_hessian_for_linear_model():
    from gradviz.data import mlp
    from gradviz.linalg import GaussNewtonOperator
    _, X, y = _gn_problem()
    lin = mlp([4, 3], seed=0, device="cpu", dtype=F64)
    G = GaussNewtonOperator(lin, nn.functional.cross_entropy, X, y).dense()
    assert torch.allclose(G, ref.model_hessian(lin, nn.functional.cross_entropy, X, y), atol=1e-13, rtol=0)


def test_gauss_newton_differs_from_hessian_by_a_small_residual():
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem(num_layers_hidden=2)
    H = ref.model_hessian(net, nn.functional.cross_entropy, X, y)
    G = GaussNewtonOperator(net, nn.functional.cross_entropy, X, y).dense()
    R = H - G
    assert torch.linalg.matrix_norm(R) > 1e-6 * torch.linalg.matrix_norm(H)  # a hidden layer makes R non-zero
    assert torch.linalg.eigvalsh(G)[0] > -1e-12 and torch.linalg.eigvalsh(H)[0] < 0  # H is indefinite, G is not


def test_gauss_newton_nonconvex_loss_is_not_clipped():
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem()
    loss = lambda z, t: -(z ** 2).mean()  # concave in the outputs: G = -2/(NC) JᵀJ is negative semi-definite
    J, z = _dense_jacobian(net, X)
    G = GaussNewtonOperator(net, loss, X, y)
    assert torch.allclose(G.dense(), -2 * J.T @ J / z.numel(), atol=1e-13, rtol=0)
    lin_loss = lambda z, t: z.sum()  # linear in the outputs: G = 0
    assert torch.count_nonzero(GaussNewtonOperator(net, lin_loss, X, y).dense()) == 0


def test_gauss_newton_rejects_bad_input():
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem()
    with pytest.raises(TypeError, match="`model`"): GaussNewtonOperator("net", nn.functional.cross_entropy, X, y)
    with pytest.raises(TypeError, match="`loss_fn`"): GaussNewtonOperator(net, 3, X, y)
    with pytest.raises(ValueError, match="same length"):
        GaussNewtonOperator(net, nn.functional.cross_entropy, X, y[:-1])
    with pytest.raises(ValueError, match="`X` contains non-finite"):
        GaussNewtonOperator(net, nn.functional.cross_entropy, X * float("nan"), y)
    with pytest.raises(ValueError, match="`v` must have shape"):
        GaussNewtonOperator(net, nn.functional.cross_entropy, X, y).matvec(torch.ones(2, dtype=F64))


def test_gauss_newton_on_device(device):
    from gradviz.data import gaussian_clusters, mlp
    from gradviz.linalg import GaussNewtonOperator
    dtype = torch.float32
    X, y = gaussian_clusters(n=40, dim=3, num_classes=2, seed=0, device=device, dtype=dtype)
    net = mlp([3, 4, 2], seed=0, device=device, dtype=dtype)
    G = GaussNewtonOperator(net, nn.functional.cross_entropy, X, y)
    out = G @ torch.ones(G.size, device=device, dtype=dtype)
    assert out.device.type == torch.device(device).type and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- Hutch++
def _rotated(spectrum, seed=0):
    "A symmetric matrix with the given eigenvalues in a random orthonormal basis."
    Q = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=as_generator(seed), dtype=F64)).Q
    A = Q @ torch.diag(spectrum) @ Q.T
    return (A + A.T) / 2


@pytest.mark.parametrize("m", [15, 16, 17, 40])
def test_hutchpp_is_exact_on_matrices_of_rank_at_most_m_over_3(m):
    lam = torch.tensor([4.0, -2.0, 1.5, 0.7, 0.1], dtype=F64)
    A = _rotated(torch.cat([lam, torch.zeros(55, dtype=F64)]), seed=1)  # rank 5 ≤ ⌊m/3⌋
    op = DenseOperator(A)
    est = hutchpp_trace(op, num_products=m, seed=2)
    assert est.estimate == pytest.approx(lam.sum().item(), abs=1e-12) and est.stderr < 1e-12
    assert est.low_rank == pytest.approx(lam.sum().item(), abs=1e-12)
    assert (est.sketch_size, est.num_probes, est.num_products) == (m // 3, m - 2 * (m // 3), m)
    assert op.num_matvecs == m
    tiny = hutchpp_trace(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=F64)), num_products=30, seed=0)  # k > p
    assert tiny.estimate == pytest.approx(6.0, abs=1e-12)


def test_hutchpp_result_reads_like_a_trace_estimate():
    A = _rotated(1 / torch.arange(1, 41, dtype=F64))
    est = hutchpp_trace(A, num_products=31, seed=0)
    assert isinstance(est, TraceEstimate) and isinstance(est, HutchppEstimate)
    assert len(est.samples) == est.num_probes == 11 and est.sketch_size == 10
    assert est.estimate == pytest.approx(est.samples.mean(), rel=1e-14)
    assert est.stderr == pytest.approx(est.samples.std(ddof=1) / math.sqrt(11), rel=1e-12)
    assert math.isnan(hutchpp_trace(A, num_products=3, seed=0).stderr)  # one probe: no error bar to give
    same = hutchpp_trace(A, num_products=31, seed=torch.Generator().manual_seed(0))
    assert np.array_equal(est.samples, same.samples)


def _hutchpp_runs(A, m, seeds, distribution="rademacher"):
    runs = [hutchpp_trace(A, num_products=m, seed=s, distribution=distribution) for s in seeds]
    return np.array([r.estimate for r in runs]), np.array([r.stderr for r in runs])


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchpp_is_unbiased_and_its_error_bar_is_honest(distribution):
    "Full rank: the mean over seeds is within 3 s.e. of the exact trace, and ±2 s.e. covers it about 95 % of the time."
    lam = 1 / torch.arange(1, 101, dtype=F64)
    A, exact = _rotated(lam, seed=3), lam.sum().item()
    est, se = _hutchpp_runs(A, 60, range(400), distribution)  # k = 20 sketch columns, 20 probes
    assert abs(est.mean() - exact) <= 3 * est.std(ddof=1) / math.sqrt(len(est))
    coverage = np.mean(np.abs(est - exact) <= 2 * se)
    assert 0.90 <= coverage <= 0.99
    assert np.median(se) == pytest.approx(est.std(), rel=0.2)  # the typical error bar is the actual spread


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum_and_not_on_a_flat_one():
    i = torch.arange(1, 101, dtype=F64)
    decay = compute_trace_errors(_rotated(i ** -2.0), budgets=(12, 48), num_seeds=60, seed=0)
    flat = compute_trace_errors(_rotated(torch.linspace(0.01, 1, 100, dtype=F64)), budgets=(12, 48), num_seeds=60,
                                seed=0)
    assert decay.trace == pytest.approx(i.pow(-2.0).sum().item(), rel=1e-12)
    assert decay.ratio[0] < 0.3 and decay.ratio[1] < 0.05
    assert (flat.ratio > 1.2).all() and (flat.ratio < 2.5).all()
    g = as_generator(0)  # the errors are those of the two estimators, called in turn on one generator
    first = [hutchinson_trace(_rotated(i ** -2.0), 12, seed=g).estimate, hutchpp_trace(_rotated(i ** -2.0), 12, seed=g)]
    assert decay.hutchinson_errors[0, 0] == pytest.approx(abs(first[0] - decay.trace), rel=1e-12)
    assert decay.hutchpp_errors[0, 0] == pytest.approx(abs(first[1].estimate - decay.trace), rel=1e-12)


def test_hutchpp_on_hessian_and_gauss_newton_operators(mlp_hessian):
    "Against the trace of the independent float64 Hessian (reference.py), through the operator's batched products."
    op, H, _ = mlp_hessian
    op.reset_count()
    est = hutchpp_trace(op, num_products=90, seed=0)
    assert op.num_hvps == 90
    assert abs(est.estimate - H.trace().item()) <= 3 * est.stderr
    dense = hutchpp_trace(H, num_products=90, seed=0)  # the same probes through the dense matrix
    assert dense.estimate == pytest.approx(est.estimate, rel=1e-9)
    from gradviz.linalg import GaussNewtonOperator
    net, X, y = _gn_problem(num_layers_hidden=2)
    G_est = hutchpp_trace(GaussNewtonOperator(net, nn.functional.cross_entropy, X, y), num_products=30, seed=1)
    G_trace = ref.gauss_newton(net, nn.functional.cross_entropy, X, y).trace().item()
    assert abs(G_est.estimate - G_trace) <= 3 * G_est.stderr + 1e-10 * G_trace


def test_hutchpp_follows_the_operators_device_and_dtype(device):
    net, X, y = _mlp_problem()
    op64 = HessianOperator.from_model(net, nn.functional.cross_entropy, X, y)
    net32 = net.to(device=device, dtype=torch.float32)
    op32 = HessianOperator.from_model(net32, nn.functional.cross_entropy, X.to(device, torch.float32), y.to(device))
    est32, est64 = hutchpp_trace(op32, num_products=30, seed=0), hutchpp_trace(op64, num_products=30, seed=0)
    assert op32.num_hvps == 30 and np.isfinite(est32.samples).all()
    assert est32.estimate == pytest.approx(est64.estimate, rel=1e-3)  # probes drawn in float64 on the CPU, then moved


def test_plot_trace_errors():
    from matplotlib.figure import Figure
    i = torch.arange(1, 31, dtype=F64)
    results = {"decaying": compute_trace_errors(_rotated(i ** -2.0), budgets=(6, 12, 24), num_seeds=5, seed=0),
               "flat": compute_trace_errors(_rotated(i / 30), budgets=(6, 12, 24), num_seeds=5, seed=0)}
    fig = plot_trace_errors(results, title="a finding")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax, r in zip(fig.axes, results.values()):
        assert ax.get_xscale() == ax.get_yscale() == "log"
        hut, hpp = ax.get_lines()[:2]
        np.testing.assert_allclose(hut.get_ydata(), r.hutchinson / r.trace)
        np.testing.assert_allclose(hpp.get_ydata(), r.hutchpp / r.trace)
    assert fig._suptitle.get_text() == "a finding"


def test_hutchpp_bad_input_errors_name_the_argument():
    A = torch.eye(4, dtype=F64)
    with pytest.raises(ValueError, match="`num_products` must be >= 3"): hutchpp_trace(A, num_products=2)
    with pytest.raises(TypeError, match="`num_products`"): hutchpp_trace(A, num_products=6.0)
    with pytest.raises(ValueError, match="`distribution` must be one of"): hutchpp_trace(A, distribution="uniform")
    with pytest.raises(ValueError, match="`op` must be square"): hutchpp_trace(torch.ones(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="`op` must have 2"): hutchpp_trace(torch.ones(3, dtype=F64))
    with pytest.raises(TypeError, match="`op`"): hutchpp_trace(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="`op`"): hutchpp_trace(np.eye(3))
    with pytest.raises(TypeError, match="`seed`"): hutchpp_trace(A, seed="4")
    with pytest.raises(ValueError, match="`budgets` must be >= 3"): compute_trace_errors(A, budgets=(2, 6))
    with pytest.raises(ValueError, match="`budgets` is empty"): compute_trace_errors(A, budgets=())
    with pytest.raises(ValueError, match="`num_seeds`"): compute_trace_errors(A, num_seeds=0)
    with pytest.raises(ValueError, match="`trace`"): compute_trace_errors(A, trace=float("nan"))
    with pytest.raises(ValueError, match="`results` is empty"): plot_trace_errors({})
    with pytest.raises(TypeError, match="`results`"): plot_trace_errors({"a": 1.0})
    with pytest.raises(TypeError, match="`results`"): plot_trace_errors([1.0])


def _selection_problem():
    g = as_generator(3)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).to(F64)
    X, y = torch.randn(25, 4, generator=g, dtype=F64), torch.randint(0, 3, (25,), generator=g)
    return net, X, y


def _block(net, M, chosen):
    "The rows and columns of M (over all trainable parameters) that belong to the parameters named in `chosen`."
    sizes = [p.numel() for p in net.parameters()]
    starts = np.cumsum([0] + sizes)
    idx = torch.cat([torch.arange(starts[i], starts[i + 1]) for i, (n, _) in enumerate(net.named_parameters())
                     if n in chosen])
    return M[idx][:, idx]


_SELECTIONS = {
    "names": (["4.bias", "0.weight"], {"0.weight", "4.bias"}),
    "regex": (r"2\..*", {"2.weight", "2.bias"}),
    "pattern": (__import__("re").compile(r".*\.bias"), {"0.bias", "2.bias", "4.bias"}),
    "callable": (lambda name, p: p.ndim == 2 and name != "2.weight", {"0.weight", "4.weight"}),
    "module": ("net[2]", {"2.weight", "2.bias"}),
}


@pytest.mark.parametrize("kind", list(_SELECTIONS))
def test_parameter_subsets_give_the_reference_blocks(kind):
    net, X, y = _selection_problem()
    sel, chosen = _SELECTIONS[kind]
    sel = net[2] if sel == "net[2]" else sel
    loss = nn.functional.cross_entropy
    H, G = ref.model_hessian(net, loss, X, y), ref.gauss_newton(net, loss, X, y)
    for method in HessianOperator.methods:
        op = HessianOperator.from_model(net, loss, X, y, method=method, params=sel)
        assert (op.dense() - _block(net, H, chosen)).abs().max() < 1e-10
    assert (GaussNewtonOperator(net, loss, X, y, params=sel).dense() - _block(net, G, chosen)).abs().max() < 1e-10


def test_per_layer_top_eigenvalues_match_the_dense_blocks():
    net, X, y = _selection_problem()
    H = ref.model_hessian(net, nn.functional.cross_entropy, X, y)
    for i in (0, 2, 4):
        op = HessianOperator.from_model(net, nn.functional.cross_entropy, X, y, params=net[i])
        top = lanczos(op, k=1, seed=0)[0].item()
        exact = torch.linalg.eigvalsh(_block(net, H, {f"{i}.weight", f"{i}.bias"}))[-1].item()
        assert abs(top - exact) < 1e-8 * abs(exact)


def test_parameter_subsets_refuse_bad_selections():
    net, X, y = _selection_problem()
    loss = nn.functional.cross_entropy
    for bad in ("nothing", ["0.weight", "9.weight"], [], nn.Linear(4, 5), lambda n, p: False):
        with pytest.raises(ValueError, match="`params`"): HessianOperator.from_model(net, loss, X, y, params=bad)
        with pytest.raises(ValueError, match="`params`"): GaussNewtonOperator(net, loss, X, y, params=bad)
    for bad in (3, [0], {"0.weight"}):
        with pytest.raises(TypeError, match="`params`"): HessianOperator.from_model(net, loss, X, y, params=bad)
        with pytest.raises(TypeError, match="`params`"): GaussNewtonOperator(net, loss, X, y, params=bad)


def test_subset_leaves_the_rest_fixed_and_the_model_untouched():
    net, X, y = _selection_problem()
    before = [p.detach().clone() for p in net.parameters()]
    op = HessianOperator.from_model(net, nn.functional.cross_entropy, X, y, params=net[4])
    op @ torch.ones(op.size, dtype=F64)
    assert op.size == 4 * 3 + 3
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("layer, name", [(nn.Dropout(0.3), "Dropout"), (nn.BatchNorm1d(6), "BatchNorm1d")])
def test_train_mode_layers_are_refused_until_eval_or_opt_in(layer, name):
    g = as_generator(4)
    net = nn.Sequential(nn.Linear(4, 6), layer, nn.Tanh(), nn.Linear(6, 3)).to(F64)
    X, y = torch.randn(20, 4, generator=g, dtype=F64), torch.randint(0, 3, (20,), generator=g)
    loss = nn.functional.cross_entropy
    builders = ((lambda **kw: HessianOperator.from_model(net, loss, X, y, **kw), ref.model_hessian),
                (lambda **kw: GaussNewtonOperator(net, loss, X, y, **kw), ref.gauss_newton))
    for build, reference in builders:
        with pytest.raises(ValueError, match=rf"1 \({name}: .*training mode.*model\.eval\(\).*allow_train_mode=True"):
            build()
        assert build(allow_train_mode=True).size == 4 * 6 + 6 + 6 * 3 + 3 + 2 * (name == "BatchNorm1d") * 6
        net.eval()  # dropout is the identity, BatchNorm uses its running statistics
        op = build()
        assert (op.dense() - reference(net, loss, X, y)).abs().max() < 1e-10
        net.train()


def test_plain_networks_in_training_mode_are_accepted():
    net, X, y = _selection_problem()
    assert net.training
    HessianOperator.from_model(net, nn.functional.cross_entropy, X, y)
    GaussNewtonOperator(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.0)).to(F64), nn.functional.cross_entropy, X, y)


def test_half_precision_is_refused_and_bfloat16_warns():
    net, X, y = _selection_problem()
    loss = nn.functional.cross_entropy
    with pytest.raises(TypeError, match="float16 in `model` and `X`.*second-order"):
        HessianOperator.from_model(copy.deepcopy(net).half(), loss, X.half(), y)
    with pytest.raises(TypeError, match="float16 in `X`"): GaussNewtonOperator(net, loss, X.half(), y)
    with pytest.raises(TypeError, match="float16 in `model`"):
        GaussNewtonOperator(copy.deepcopy(net).half(), loss, X, y)
    net16, X16 = copy.deepcopy(net).bfloat16(), X.bfloat16()
    with pytest.warns(UserWarning, match="bfloat16 in `model` and `X`.*noise"):
        op = HessianOperator.from_model(net16, loss, X16, y)
    with pytest.warns(UserWarning, match="bfloat16"): GaussNewtonOperator(net16, loss, X16, y)
    H = ref.model_hessian(net16, loss, X16, y)  # the bfloat16 point, in float64
    v = torch.ones(op.size, dtype=F64)
    err = ((op @ v.bfloat16()).to(F64) - H @ v).norm() / (H @ v).norm()
    assert torch.isfinite(err) and err < 0.2


def _nonsymmetric(n: int, kappa: float, seed: int) -> torch.Tensor:
    "An n×n matrix: symmetric part with eigenvalues log-spaced in [1, kappa], plus a skew-symmetric part."
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=as_generator(seed), dtype=F64))
    G = torch.randn(n, n, generator=as_generator(seed + 1), dtype=F64)
    return Q @ torch.diag(torch.logspace(0, math.log10(kappa), n, dtype=F64)) @ Q.T + 3 * (G - G.T) / math.sqrt(2 * n)


@pytest.mark.parametrize("method", ["normal_cg", "gmres", "dense"])
def test_linear_solve_matches_numpy_on_nonsymmetric_systems(method):
    A, b = _nonsymmetric(80, 20.0, 11), torch.randn(80, generator=as_generator(13), dtype=F64)
    exact = torch.from_numpy(np.linalg.solve(A.numpy(), b.numpy()))
    res = linear_solve(lambda v: A @ v, b, method, rmatvec=lambda v: A.T @ v, tol=1e-12)
    assert res.converged and res.method == method
    torch.testing.assert_close(res.x, exact, rtol=0, atol=1e-9)
    assert res.residual_norms[-1] <= 1e-9 * float(b.norm()) * (20 if method == "normal_cg" else 1)


def test_linear_solve_gmres_agrees_with_scipy_iteration_for_iteration():
    "Without restarts, GMRES's k-th residual is the minimum over the k-th Krylov space: scipy's full GMRES too."
    A, b = _nonsymmetric(40, 50.0, 21), torch.randn(40, generator=as_generator(23), dtype=F64)
    ours = linear_solve(A, b, "gmres", tol=1e-10, restart=40)
    theirs = []
    spla.gmres(A.numpy(), b.numpy(), rtol=1e-10, restart=40, callback=theirs.append, callback_type="pr_norm")
    k = min(len(theirs), len(ours.residual_norms) - 1) - 1
    np.testing.assert_allclose(ours.residual_norms[1:k + 1] / float(b.norm()), theirs[:k], rtol=1e-6, atol=1e-12)


def test_linear_solve_cg_and_restarts():
    A = _nonsymmetric(60, 10.0, 31)
    S, b = A @ A.T, torch.randn(60, generator=as_generator(33), dtype=F64)  # symmetric positive definite
    cg = linear_solve(S, b, "cg", tol=1e-12)
    torch.testing.assert_close(S @ cg.x, b, rtol=0, atol=1e-9)
    full, short = (linear_solve(A, b, "gmres", tol=1e-10, restart=r) for r in (60, 5))
    assert full.converged and short.converged and full.num_iters < short.num_iters
    warm = linear_solve(A, b, "gmres", tol=1e-10, x0=full.x)
    assert warm.num_iters == 0 and warm.converged
    assert linear_solve(S, torch.zeros(60, dtype=F64), "gmres").num_iters == 0


def test_linear_solve_refuses_bad_input():
    A, b = torch.eye(3, dtype=F64), torch.ones(3, dtype=F64)
    with pytest.raises(ValueError, match="`method`"): linear_solve(A, b, "lu")
    with pytest.raises(ValueError, match="`rmatvec`"): linear_solve(lambda v: v, b, "normal_cg")
    with pytest.raises(ValueError, match="`matvec`"): linear_solve(torch.zeros(3, 3, dtype=F64), b, "dense")
    with pytest.raises(ValueError, match="`matvec`"): linear_solve(torch.eye(4, dtype=F64), b)
    with pytest.raises(TypeError, match="`matvec`"): linear_solve("A", b)
    with pytest.raises(ValueError, match="`tol`"): linear_solve(A, b, tol=0.0)
    with pytest.raises(ValueError, match="`restart`"): linear_solve(A, b, "gmres", restart=0)
    with pytest.raises(ValueError, match="`x0`"): linear_solve(A, b, x0=torch.ones(2, dtype=F64))


def _consistent(m: int, n: int, seed: int):
    "A consistent m×n system with singular values 1…10 and its solution."
    U, _ = torch.linalg.qr(torch.randn(m, n, generator=as_generator(seed), dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=as_generator(seed + 1), dtype=F64))
    K = U @ torch.diag(torch.linspace(1, 10, n, dtype=F64)) @ V.T
    x = torch.randn(n, generator=as_generator(seed + 2), dtype=F64)
    return K, K @ x, x


@pytest.mark.parametrize("sketch", ["row", "gaussian", "block"])
def test_sketch_solve_converges_and_records_the_exact_residual(sketch):
    K, b, x = _consistent(30, 20, 41)
    res = sketch_solve(K, b, sketch, stop=1e-10, block_size=4, seed=3)
    assert res.converged and res.num_iters == len(res.residual_norms) - 1
    torch.testing.assert_close(res.x, x, rtol=0, atol=1e-8)
    assert res.residual_norms[-1] <= 1e-10 * float(b.norm())
    for t in (1, 7, 1500):  # the tracked residual equals K x_t − b recomputed from scratch
        xt = sketch_solve(K, b, sketch, stop=1e-30, max_iters=t, block_size=4, seed=3).x
        assert abs(res.residual_norms[t] - float((K @ xt - b).norm())) <= 1e-9 * float(b.norm())


def test_sketch_solve_kaczmarz_meets_the_strohmer_vershynin_bound_in_mean():
    K, b, x = _consistent(40, 15, 51)
    rate = 1 - 1 / float((K ** 2).sum())  # σ_min(K) = 1
    steps = np.array([50, 200, 800])
    mse = np.mean([[float((sketch_solve(K, b, stop=1e-30, max_iters=int(t), seed=s).x - x).norm() ** 2)
                    for t in steps] for s in range(50)], axis=0)
    bound = rate ** steps * float(x.norm() ** 2)
    assert np.all(mse <= bound), (mse, bound)
    assert mse[-1] < 0.5 * mse[0]  # and it does converge


def test_sketch_solve_rows_are_drawn_by_squared_norm():
    "A system whose second row is 3× longer: Kaczmarz picks it 9× as often (each step solves one row exactly)."
    K = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=F64)
    hits = [int(sketch_solve(K, torch.tensor([1.0, 3.0], dtype=F64), stop=1e-12, max_iters=1, seed=s).x[1] != 0)
            for s in range(2000)]
    assert abs(np.mean(hits) - 0.9) < 0.025


def test_sketch_solve_is_deterministic_and_stops_on_a_callable():
    K, b, _ = _consistent(25, 25, 61)
    a, c = (sketch_solve(K, b, "gaussian", stop=1e-6, seed=7) for _ in range(2))
    torch.testing.assert_close(a.x, c.x, rtol=0, atol=0)
    seen = []
    res = sketch_solve(K, b, stop=lambda x, rnorm: seen.append(rnorm) or len(seen) > 10)
    assert res.num_iters == 10 and res.converged and seen == list(res.residual_norms)
    one = sketch_solve(K, b, "block", block_size=25, stop=1e-10)
    assert one.num_iters == 1


def test_sketch_solve_refuses_bad_input():
    K, b = torch.eye(3, dtype=F64), torch.ones(3, dtype=F64)
    with pytest.raises(ValueError, match="`sketch`"): sketch_solve(K, b, "sparse")
    with pytest.raises(ValueError, match="`b`"): sketch_solve(K, torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="`K`"): sketch_solve(torch.zeros(3, 3, dtype=F64), b)
    with pytest.raises(ValueError, match="`K`"): sketch_solve(torch.ones(3, dtype=F64), b)
    with pytest.raises(ValueError, match="`stop`"): sketch_solve(K, b, stop=-1.0)
    with pytest.raises(ValueError, match="`block_size`"): sketch_solve(K, b, "block", block_size=4)
    with pytest.raises(ValueError, match="`max_iters`"): sketch_solve(K, b, max_iters=0)


def test_hessian_matmat_is_one_batched_pass_equal_to_columns(mlp_hessian):
    "The batched pass (the default off a CPU, forced here) gives the column-by-column products."
    model, X, y = _mlp_problem()
    loss = nn.functional.cross_entropy
    op = HessianOperator.from_model(model, loss, X, y)
    assert not linalg._batches(op) or op.device.type != "cpu"
    op._batches = True
    V = torch.randn(op.size, 9, generator=as_generator(71), dtype=F64)
    torch.testing.assert_close(op.matmat(V), torch.stack([op.matvec(v) for v in V.T], dim=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.matmat(V), mlp_hessian[1] @ V, rtol=0, atol=1e-10)
    data = [(X[:120], y[:120]), (X[120:], y[120:])]
    streamed = HessianOperator.from_data(model, loss, data, keep_graphs=False)
    torch.testing.assert_close(streamed.matmat(V), op.matmat(V), rtol=0, atol=1e-12)


def test_batched_slq_runs_the_same_recurrences_as_one_probe_at_a_time(mlp_hessian):
    op, _, eigenvalues = mlp_hessian
    exact = eigenvalues.numpy()
    spread = exact[-1] - exact[0]
    fast, slow = (slq_density(op, num_probes=6, num_iters=60, seed=3, batched=b) for b in (True, False))
    between = scipy.stats.wasserstein_distance(fast.nodes.ravel(), slow.nodes.ravel(),
                                               fast.weights.ravel(), slow.weights.ravel())
    w_fast, w_slow = fast.wasserstein(exact), slow.wasserstein(exact)
    assert between <= max(w_fast, w_slow) and abs(w_fast - w_slow) <= 0.5 * max(w_fast, w_slow)
    np.testing.assert_allclose(fast.weights.sum(), 1.0, atol=1e-12)
    diag = DenseOperator(torch.diag(torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0], dtype=F64)))  # early breakdown
    a, b = (slq_density(diag, num_probes=4, num_iters=6, seed=1, batched=flag) for flag in (True, False))
    np.testing.assert_allclose(a.nodes, b.nodes, atol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-12)


def _known_spectrum(spectrum: torch.Tensor, seed: int) -> torch.Tensor:
    "A dense symmetric matrix Q diag(spectrum) Qᵀ with a random orthogonal Q."
    Q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=as_generator(seed), dtype=F64))
    A = Q @ torch.diag(spectrum.to(F64)) @ Q.T
    return (A + A.T) / 2


@pytest.mark.parametrize("which", ["largest", "smallest"])
@pytest.mark.parametrize("case", ["clustered", "repeated", "spread"])
def test_thick_restart_matches_eigvalsh_on_known_spectra(case, which):
    bulk = torch.linspace(0, 1, 396, dtype=F64)
    ends = {"clustered": [1.020, 1.021, 1.023, 1.026], "repeated": [2.0, 2.0, 3.0, 3.0], "spread": [1.5, 2, 4, 8]}[case]
    spectrum = torch.cat([bulk, torch.tensor(ends, dtype=F64), -torch.tensor(ends, dtype=F64)])
    A = _known_spectrum(spectrum, seed=5)
    exact = torch.linalg.eigvalsh(A)
    res = thick_restart_lanczos(A, k=4, which=which, ncv=16, seed=0, tol=1e-12)
    want = exact[-4:].flip(0) if which == "largest" else exact[:4]
    torch.testing.assert_close(res.values, want, rtol=0, atol=1e-8)
    torch.testing.assert_close(A @ res.vectors, res.vectors * res.values, rtol=0, atol=1e-7)
    assert res.basis_rows == 17 and res.num_restarts > 0


def test_thick_restart_agrees_with_the_full_basis_on_the_network_hessian(mlp_hessian):
    op, _, eigenvalues = mlp_hessian
    for which, want in (("largest", eigenvalues[-10:].flip(0)), ("smallest", eigenvalues[:5])):
        full = lanczos(op, k=len(want), which=which, seed=0, tol=1e-10)[0]
        capped, _ = lanczos(op, k=len(want), which=which, ncv=30, seed=0, tol=1e-10)
        torch.testing.assert_close(capped, full, rtol=0, atol=1e-8 * float(eigenvalues.abs().max()))
        torch.testing.assert_close(capped, want, rtol=0, atol=1e-8 * float(eigenvalues.abs().max()))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(30, 120), k=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_thick_restart_has_no_ghosts_on_random_symmetric_matrices(n, k, seed):
    G = torch.randn(n, n, generator=as_generator(seed), dtype=F64)
    A = (G + G.T) / 2
    exact = torch.linalg.eigvalsh(A)
    res = thick_restart_lanczos(A, k=k, ncv=min(n, 2 * k + 8), seed=seed, tol=1e-12, max_products=20_000)
    torch.testing.assert_close(res.values, exact[-k:].flip(0), rtol=0, atol=1e-8 * float(exact.abs().max()))


def test_thick_restart_skips_only_corrections_it_does_not_need(monkeypatch):
    "Steps whose components along the basis are already below eps^(3/4) skip the subtraction; nothing else changes."
    import gradviz.linalg as gl
    spectrum = torch.cat([torch.linspace(0, 1, 396, dtype=F64), torch.tensor([1.020, 1.021, 1.023, 1.026], dtype=F64)])
    A = _known_spectrum(spectrum, seed=5).float()
    exact = torch.linalg.eigvalsh(A.double())[-4:].flip(0)
    lean = thick_restart_lanczos(A, k=4, ncv=16, seed=0, tol=1e-5)
    monkeypatch.setattr(gl, "_SKIP_BELOW", 50.0)  # eps**50 underflows to 0: every step subtracts
    always = thick_restart_lanczos(A, k=4, ncv=16, seed=0, tol=1e-5)
    assert always.num_corrections == always.num_products
    assert 0 < lean.num_corrections < 0.8 * lean.num_products, (lean.num_corrections, lean.num_products)
    assert abs(lean.num_products - always.num_products) <= 0.1 * always.num_products
    for res in (lean, always):
        torch.testing.assert_close(res.values.double(), exact, rtol=0, atol=2e-5)
        torch.testing.assert_close(res.vectors.T @ res.vectors, torch.eye(4), rtol=0, atol=1e-5)


def test_thick_restart_refuses_bad_input():
    A = torch.eye(30, dtype=F64)
    with pytest.raises(ValueError, match="`ncv`"): thick_restart_lanczos(A, k=5, ncv=6)
    with pytest.raises(ValueError, match="`k`"): thick_restart_lanczos(A, k=0)
    with pytest.raises(ValueError, match="`which`"): thick_restart_lanczos(A, which="middle")
    with pytest.raises(ValueError, match="`ncv`"): lanczos(A, k=2, ncv=10, num_iters=20)
    with pytest.raises(ValueError, match="`max_products`"): thick_restart_lanczos(A, max_products=0)


def test_gauss_newton_matmat_equals_columns_and_the_reference():
    model, X, y = _mlp_problem()
    G = GaussNewtonOperator(model, nn.functional.cross_entropy, X, y)
    V = torch.randn(G.size, 6, generator=as_generator(73), dtype=F64)
    torch.testing.assert_close(G.matmat(V), torch.stack([G.matvec(v) for v in V.T], dim=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(G.matmat(V), ref.gauss_newton(model, nn.functional.cross_entropy, X, y) @ V,
                               rtol=0, atol=1e-10)


def test_preconditioned_cg_equals_cg_on_the_scaled_system():
    Q, _ = torch.linalg.qr(torch.randn(80, 80, generator=as_generator(5), dtype=F64))
    d = torch.logspace(-1, 1, 80, dtype=F64)
    A0 = Q @ torch.diag(torch.linspace(1, 5, 80, dtype=F64)) @ Q.T
    A = d[:, None] * ((A0 + A0.T) / 2) * d[None]
    b = torch.randn(80, generator=as_generator(6), dtype=F64)
    seen = []
    pcg = conjugate_gradient(A, b, tol=1e-11, preconditioner=1 / A.diagonal(),
                             callback=lambda k, x, r: seen.append((k, x.clone(), r.clone())))
    s = A.diagonal().rsqrt()
    ref_run = []
    conjugate_gradient(s[:, None] * A * s[None], s * b, tol=1e-11, callback=lambda k, x, r: ref_run.append(s * x))
    assert [k for k, _, _ in seen] == list(range(1, pcg.num_iters + 1)) and len(ref_run) >= 20
    for (_, x, r), x_ref in zip(seen[:20], ref_run[:20]):  # the iterates agree step by step (the stops differ:
        # the scaled run measures its residual in the scaled norm)
        torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-9 * float(x_ref.norm()))
        torch.testing.assert_close(r, b - A @ x, rtol=0, atol=1e-9 * float(b.norm()))
    torch.testing.assert_close(pcg.x, torch.linalg.solve(A, b), rtol=0, atol=1e-8)


def test_conjugate_gradient_without_new_keywords_is_unchanged():
    Q, _ = torch.linalg.qr(torch.randn(40, 40, generator=as_generator(7), dtype=F64))
    A = Q @ torch.diag(torch.logspace(0, 2, 40, dtype=F64)) @ Q.T
    A = (A + A.T) / 2
    b = torch.randn(40, generator=as_generator(8), dtype=F64)
    plain = conjugate_gradient(A, b, tol=1e-10)
    identity = conjugate_gradient(A, b, tol=1e-10, preconditioner=lambda r: r, callback=lambda k, x, r: None)
    assert plain.num_iters == identity.num_iters
    assert torch.equal(plain.x, identity.x) and np.array_equal(plain.residual_norms, identity.residual_norms)
    with pytest.raises(TypeError, match="`preconditioner`"): conjugate_gradient(A, b, preconditioner="jacobi")
    with pytest.raises(ValueError, match="`preconditioner`"): conjugate_gradient(A, b, preconditioner=-torch.ones(40))
    with pytest.raises(TypeError, match="`callback`"): conjugate_gradient(A, b, callback=3)
