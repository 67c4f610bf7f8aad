"""Reference tests for gradviz.linalg against dense eigendecompositions, scipy and closed forms."""
import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from gradviz.autodiff import flat_objective, hessian, hvp
from gradviz.core import as_generator
from gradviz.linalg import (DenseOperator, FunctionOperator, HessianOperator, SpectralDensity, as_operator,
                            conjugate_gradient, hutchinson_trace, lanczos, lanczos_tridiagonal, slq_density)

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
    net, X, y = _mlp_problem()
    f, theta = flat_objective(net, nn.functional.cross_entropy, X, y)
    H = hessian(f, theta)
    return HessianOperator(f, theta), H, torch.linalg.eigvalsh(H)


def test_problem_size(mlp_hessian):
    op, H, _ = mlp_hessian
    assert 1700 <= op.size <= 2200 and H.shape == (op.size, op.size)


@pytest.mark.parametrize("method", HessianOperator.methods)
def test_hessian_operator_matches_dense(mlp_hessian, method):
    op, H, _ = mlp_hessian
    op2 = HessianOperator(op.f, op.theta, method=method)
    V = torch.randn(op.size, 4, generator=as_generator(1), dtype=F64)
    assert torch.allclose(op2.matvec(V[:, 0]), H @ V[:, 0], atol=1e-8, rtol=0)
    assert torch.allclose(op2.matmat(V), H @ V, atol=1e-8, rtol=0)
    assert op2.num_hvps == 5


def test_hessian_operator_dense_and_scipy_views(mlp_hessian):
    op, H, exact = mlp_hessian
    small = HessianOperator.from_model(nn.Linear(3, 2).double(), lambda o, t: ((o - t) ** 2).mean(),
                                       torch.randn(5, 3, dtype=F64, generator=as_generator(0)), torch.zeros(5, 2, dtype=F64))
    assert small.dense().shape == (8, 8)
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
    top, vecs = lanczos(op, k=10, which="largest", generator=0)
    bottom, bvecs = lanczos(op, k=5, which="smallest", generator=1)
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
    lanczos(op, k=1, generator=0)
    assert op.num_hvps < op.size / 10


def test_lanczos_handles_repeated_eigenvalues():
    vals = torch.tensor([5.0, 5.0, 5.0, 2.0, 1.0, 1.0, 0.5, 0.0], dtype=F64)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=as_generator(0), dtype=F64))
    A = Q @ torch.diag(vals) @ Q.T
    top, _ = lanczos((A + A.T) / 2, k=4, generator=3)
    assert torch.allclose(top, torch.tensor([5.0, 5.0, 5.0, 2.0], dtype=F64), atol=1e-9)


def test_lanczos_fixed_iterations_and_ghosts():
    spectrum = torch.cat([torch.linspace(0, 1, 200, dtype=F64), torch.tensor([3.0, 5.0, 8.0], dtype=F64)])
    D = torch.diag(spectrum)
    T_full = lanczos_tridiagonal(D, 120, generator=1)
    T_plain = lanczos_tridiagonal(D, 120, reorthogonalize=False, generator=1)
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
    top, _ = lanczos(A, k=k, generator=seed)
    low, _ = lanczos(A, k=k, which="smallest", generator=seed)
    scale = exact.abs().max()
    assert torch.allclose(top, exact.flip(0)[:k], atol=1e-7 * scale)
    assert torch.allclose(low, exact[:k], atol=1e-7 * scale)


def test_slq_density_close_to_exact_spectrum(mlp_hessian):
    op, _, exact = mlp_hessian
    sd = slq_density(op, num_probes=20, num_iters=80, generator=0)
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
    sd = slq_density(A, num_probes=1, num_iters=3, generator=0)
    z = torch.randint(0, 2, (50,), generator=as_generator(0)).to(F64) * 2 - 1
    q = z / math.sqrt(50)
    for power in range(1, 6):
        assert sd.moment(power) == pytest.approx(float(q @ torch.linalg.matrix_power(A, power) @ q), rel=1e-10)


def test_hutchinson_within_three_standard_errors(mlp_hessian):
    op, _, exact = mlp_hessian
    est = hutchinson_trace(op, num_probes=100, generator=0)
    assert abs(est.estimate - exact.sum().item()) <= 3 * est.stderr
    assert est.stderr > 0 and len(est.samples) == 100
    gauss = hutchinson_trace(op, num_probes=100, generator=1, distribution="gaussian")
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
    op = HessianOperator.from_model(nn.Linear(5, 1, bias=False).double(),
                                    lambda o, t: nn.functional.binary_cross_entropy_with_logits(o.squeeze(-1), t), X, y)
    b = torch.ones(5, dtype=F64)
    res = conjugate_gradient(op, b, tol=1e-12)
    assert torch.allclose(op.dense() @ res.x, b, atol=1e-9)


def test_function_operator_and_counts():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=F64))
    op = FunctionOperator(lambda v: A @ v, 5, dtype=F64)
    vals, _ = lanczos(op, k=2)
    assert torch.allclose(vals, torch.tensor([5.0, 4.0], dtype=F64))
    assert op.num_matvecs > 0


def test_operator_follows_device(device):
    net, X, y = _mlp_problem(device=device, dtype=torch.float32)
    op = HessianOperator.from_model(net, nn.functional.cross_entropy, X, y)
    vals, vecs = lanczos(op, k=2, generator=0)
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
    with pytest.raises(ValueError, match="`v0` must be non-zero"): lanczos_tridiagonal(A, 2, v0=torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match="`b` contains non-finite"): conjugate_gradient(A, torch.full((4,), float("nan"), dtype=F64))
    with pytest.raises(ValueError, match="positive definite"): conjugate_gradient(-A, torch.ones(4, dtype=F64))
    with pytest.raises(TypeError, match="`matvec`"): conjugate_gradient("A", torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="max_size"): DenseOperator(torch.eye(6, dtype=F64)).dense(max_size=5)


def test_hessian_operator_rejects_bad_functions():
    with pytest.raises(ValueError, match="`f` is not finite"): HessianOperator(lambda t: t.sum() * float("nan"), torch.ones(3))
    with pytest.raises(ValueError, match="`f` must return a scalar"): HessianOperator(lambda t: t * 2, torch.ones(3))
    with pytest.raises(TypeError, match="`f` must be callable"): HessianOperator(3, torch.ones(3))
    with pytest.raises(ValueError, match="`theta` must have 1 dimension"): HessianOperator(lambda t: t.sum(), torch.ones(3, 2))
    with pytest.raises(ValueError, match="`method`"): HessianOperator(lambda t: t.sum(), torch.ones(3), method="magic")
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="non-finite"):
        HessianOperator.from_model(net, lambda o, t: o.sum() * float("inf"), torch.ones(4, 3), torch.zeros(4))


def test_lanczos_with_an_operator_that_returns_its_input():
    op = FunctionOperator(lambda v: v, 6, dtype=F64)
    vals, vecs = lanczos(op, k=1)
    assert torch.allclose(vals, torch.ones(1, dtype=F64)) and torch.isfinite(vecs).all()
