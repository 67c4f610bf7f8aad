"""Curvature over data loaders against peer libraries (float64): curvlinops' Hessian and GGN operators,
hessian-eigenthings 1.0's loader-based Hessian with its Lanczos and Hutch++, and PyHessian's `dataloader=` mode.

Every problem has an unequal last batch (70 samples in batches of 16: 16, 16, 16, 16, 6), where a plain average of
batch curvatures is *not* the full-data curvature. Peers are test-only references: each one skips when it is not
installed, and fails when `GRADVIZ_REQUIRE_REFS=1` (CI).

Weightings, read from the peers' source:
- curvlinops weights each batch by its share of the data for `reduction="mean"` (exact, like gradviz);
- hessian-eigenthings averages the batch Hessians with equal weights (`total / num_batches`), so a plain mean loss
  gives the mean of batch means; the loss `sum_loss · num_batches / N` makes its operator the full-data mean Hessian;
- PyHessian's `dataloader_hv_product` weights each batch by its size, so a mean loss is exact.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradviz.core import as_generator
from gradviz.data import gaussian_clusters, mlp
from gradviz.linalg import GaussNewtonOperator, HessianOperator, lanczos
from reference import model_hessian, require_ref

pytestmark = pytest.mark.ref

F64 = torch.float64
N, BATCH = 70, 16
LAST_LAYER = ["4.weight", "4.bias"]  # the output layer of mlp([5, 16, 16, 3])


def _problem():
    "A float64 tanh MLP 5→16→16→3 (419 parameters) and 70 seeded cluster samples in a loader of unequal batches."
    X, y = gaussian_clusters(n=N, dim=5, num_classes=3, separation=2.0, seed=3, device="cpu", dtype=F64)
    net = mlp([5, 16, 16, 3], activation="tanh", seed=3, device="cpu", dtype=F64)
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH)  # 16, 16, 16, 16, 6
    assert [len(b[1]) for b in loader] == [16, 16, 16, 16, 6]
    return net, X, y, loader


def _vectors(size, k=3, seed=1):
    return torch.randn(size, k, generator=as_generator(seed), dtype=F64)


def _rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def _layer_params(net, names):
    named = dict(net.named_parameters())
    return [named[n] for n in names]


# ----------------------------------------------------------------------------- curvlinops
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_curvlinops_products_over_a_loader(reduction, kind):
    curvlinops = require_ref("curvlinops")
    net, X, y, loader = _problem()
    loss = nn.CrossEntropyLoss(reduction=reduction)
    peer_cls = curvlinops.HessianLinearOperator if kind == "hessian" else curvlinops.GGNLinearOperator
    ours = (HessianOperator if kind == "hessian" else GaussNewtonOperator).from_data(net, loss, loader)
    peer = peer_cls(net, loss, [p for p in net.parameters()], loader)
    V = _vectors(ours.size)
    ours_V, peer_V = ours @ V, peer @ V
    assert ours_V.dtype == peer_V.dtype == F64
    assert _rel(ours_V, peer_V) < 1e-8, _rel(ours_V, peer_V)
    assert _rel(ours @ V[:, 0], peer @ V[:, 0]) < 1e-8
    # both are the full-data operator, not an average of batch operators
    full = HessianOperator.from_model(net, loss, X, y) if kind == "hessian" else GaussNewtonOperator(net, loss, X, y)
    assert _rel(peer_V, full @ V) < 1e-8


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_curvlinops_products_for_one_layer(reduction, kind):
    curvlinops = require_ref("curvlinops")
    net, X, y, loader = _problem()
    loss = nn.CrossEntropyLoss(reduction=reduction)
    peer_cls = curvlinops.HessianLinearOperator if kind == "hessian" else curvlinops.GGNLinearOperator
    ours = (HessianOperator if kind == "hessian" else GaussNewtonOperator).from_data(net, loss, loader, params=LAST_LAYER)
    peer = peer_cls(net, loss, _layer_params(net, LAST_LAYER), loader)
    assert ours.size == sum(p.numel() for p in _layer_params(net, LAST_LAYER)) == 51
    V = _vectors(ours.size)
    assert _rel(ours @ V, peer @ V) < 1e-8, _rel(ours @ V, peer @ V)


# ----------------------------------------------------------------------------- hessian-eigenthings 1.0
def _eigenthings_loss(criterion_sum, num_batches):
    "A `loss_fn(model, batch)` whose equal-weight batch average is the full-data mean loss: sum · num_batches / N."
    def loss_fn(model, batch):
        inputs, targets = batch
        return criterion_sum(model(inputs), targets) * (num_batches / N)
    return loss_fn


def _eigenthings_top(het, net, loader, k, param_filter=None):
    op = het.HessianOperator(net, loader, _eigenthings_loss(nn.CrossEntropyLoss(reduction="sum"), len(loader)),
                             param_filter=param_filter)
    steps = min(op.size - 1, 120)
    res = het.lanczos(op, k=k, max_iter=steps, which="LA", reorthogonalize=True, seed=0)
    return op, res


def test_eigenthings_top_eigenvalues_over_a_loader():
    het = require_ref("hessian_eigenthings")
    net, X, y, loader = _problem()
    loss = nn.CrossEntropyLoss()
    k = 5
    _, res = _eigenthings_top(het, net, loader, k)
    peer = res.eigenvalues.numpy()
    ours, _ = lanczos(HessianOperator.from_data(net, loss, loader), k=k, tol=1e-12, seed=0)
    ours = ours.numpy()
    dense = torch.linalg.eigvalsh(model_hessian(net, loss, X, y)).numpy()[::-1][:k]
    np.testing.assert_allclose(ours, dense, rtol=1e-9)
    np.testing.assert_allclose(np.sort(peer)[::-1], ours, rtol=1e-6)


def test_eigenthings_top_eigenvalues_for_one_layer():
    het = require_ref("hessian_eigenthings")
    net, X, y, loader = _problem()
    k = 3
    op, res = _eigenthings_top(het, net, loader, k, param_filter=het.match_names(*LAST_LAYER))
    assert op.size == 51
    ours, _ = lanczos(HessianOperator.from_data(net, nn.CrossEntropyLoss(), loader, params=LAST_LAYER), k=k, tol=1e-12, seed=0)
    np.testing.assert_allclose(np.sort(res.eigenvalues.numpy())[::-1], ours.numpy(), rtol=1e-6)


def test_eigenthings_plain_mean_loss_averages_batches_with_equal_weights():
    "Its default weighting on unequal batches: the mean of batch means, which is not the full-data Hessian."
    het = require_ref("hessian_eigenthings")
    net, X, y, loader = _problem()
    loss = nn.CrossEntropyLoss()
    plain = het.HessianOperator(net, loader, het.supervised_loss(loss))
    rescaled = het.HessianOperator(net, loader, _eigenthings_loss(nn.CrossEntropyLoss(reduction="sum"), len(loader)))
    ours = HessianOperator.from_data(net, loss, loader)
    v = _vectors(ours.size, k=1)[:, 0]
    assert _rel(rescaled.matvec(v), ours @ v) < 1e-10
    batch_mean = sum(HessianOperator.from_model(net, loss, *b) @ v for b in loader) / len(loader)
    assert _rel(plain.matvec(v), batch_mean) < 1e-10
    assert _rel(plain.matvec(v), ours @ v) > 1e-3  # the unequal last batch is over-weighted 16/6 ×


def test_eigenthings_hutchpp_trace_agrees_with_the_dense_trace():
    het = require_ref("hessian_eigenthings")
    net, X, y, loader = _problem()
    op = het.HessianOperator(net, loader, _eigenthings_loss(nn.CrossEntropyLoss(reduction="sum"), len(loader)))
    exact = float(torch.linalg.eigvalsh(model_hessian(net, nn.CrossEntropyLoss(), X, y)).sum())
    est = het.hutch_plus_plus(op, num_matvecs=90, seed=0)
    assert math.isfinite(est.stderr) and est.stderr > 0
    assert abs(est.estimate - exact) < 4 * est.stderr + 1e-9 * abs(exact), (est.estimate, exact, est.stderr)


# ----------------------------------------------------------------------------- PyHessian (optional)
def test_pyhessian_dataloader_top_eigenvalue():
    "PyHessian's power iteration over the loader; its stopping rule compares consecutive estimates, so it is loose."
    pyhessian = require_ref("pyhessian")
    warnings.filterwarnings("ignore", message=".*create_graph=True.*")
    net, X, y, loader = _problem()
    loss = nn.CrossEntropyLoss()
    ours, _ = lanczos(HessianOperator.from_data(net, loss, loader), k=2, tol=1e-12, seed=0)
    torch.manual_seed(0)  # PyHessian draws its start vectors from the global generator
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)  # its vectors are created with the default dtype; the model is float64
    try:
        hess = pyhessian.hessian(net, loss, dataloader=loader, cuda=False)
        top, _ = hess.eigenvalues(top_n=1, maxIter=500, tol=1e-8)
    finally: torch.set_default_dtype(previous)
    assert ours[0] > 1.3 * abs(ours[1])  # a gap (0.92 vs 0.66): power iteration converges within ~100 steps
    # measured: 2.0e-6 relative at tol=1e-8 (1.2e-3 at its default tol=1e-3); 1e-5 leaves room for its stopping rule
    np.testing.assert_allclose(top[0], float(ours[0]), rtol=1e-5)
