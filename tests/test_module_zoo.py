"""gradviz's curvature operators on a zoo of standard PyTorch layers, float64, against independent computations.

The references below never call gradviz: they differentiate the *real* model (its own `nn.Parameter`s, a plain
`model(X)` call) with `torch.autograd.grad` — reverse-over-reverse, one backward pass per basis vector for dense
Hessians, one per output for Jacobians — and perturb the real parameters in place for finite differences.
Only the math scaled-dot-product-attention backend is requested (torch's own context manager), because the fused
CPU attention kernel has no double backward. `torch.func.hessian` is deliberately *not* used as a reference: on
this torch it is ~20 % off for `nn.TransformerEncoderLayer` (see `tests/reference.py`).
"""
from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from gradviz.autodiff import flat_objective, flatten_params, hessian, hvp, hvp_reverse, model_function, param_layout
from gradviz.linalg import GaussNewtonOperator, HessianOperator

F64 = torch.float64
TOL = 1e-10  # relative tolerance for exact-vs-exact comparisons
FD_EPS, FD_TOL = 1e-4, 1e-6  # central finite differences of gradients


# ----------------------------------------------------------------------------------------------------------------
# The zoo
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    "One zoo member: a float64 eval-mode model, its loss and a batch, plus parameter subsets to try."
    model: nn.Module
    loss_fn: Callable
    X: torch.Tensor
    y: torch.Tensor
    subsets: list = field(default_factory=list)  # (selection or callable model -> selection, expected names)


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.head = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x): return self.head(F.relu(self.bn(self.conv(x))).flatten(1))


class RNNHead(nn.Module):
    "LSTM/GRU (batch_first) → last hidden state → Linear: one tensor out."
    def __init__(self, kind):
        super().__init__()
        self.rnn = kind(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class EmbedMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens): return self.head(self.emb(tokens).mean(1))


class EncoderHead(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=dropout,
                                                  batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x): return self.head(self.encoder(x))


class LNMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x): return self.fc2(F.gelu(self.norm(self.fc1(x))))


def _conv_bn() -> Case:
    torch.manual_seed(0)
    model = ConvBN().double()
    with torch.no_grad():  # non-trivial affine parameters and running statistics
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.normal_(0, 0.3)
        model.train()
        for _ in range(4): model(2.0 + 1.5 * torch.randn(8, 1, 5, 5, dtype=F64))
    model.eval()
    X, y = torch.randn(6, 1, 5, 5, dtype=F64), torch.randint(0, 3, (6,))
    return Case(model, F.cross_entropy, X, y,
                subsets=[(lambda m: m.head, ["head.weight", "head.bias"]),
                         (r"bn\..*|conv\.weight", ["conv.weight", "bn.weight", "bn.bias"])])


def _lstm() -> Case:
    torch.manual_seed(1)
    model = RNNHead(nn.LSTM).double().eval()
    return Case(model, F.mse_loss, torch.randn(4, 5, 3, dtype=F64), torch.randn(4, 2, dtype=F64))


def _gru() -> Case:
    torch.manual_seed(2)
    model = RNNHead(nn.GRU).double().eval()
    return Case(model, F.mse_loss, torch.randn(4, 5, 3, dtype=F64), torch.randn(4, 2, dtype=F64))


def _embedding() -> Case:
    torch.manual_seed(3)
    model = EmbedMean().double().eval()
    return Case(model, F.cross_entropy, torch.randint(0, 10, (6, 5)), torch.randint(0, 3, (6,)))


def _transformer() -> Case:
    torch.manual_seed(4)
    model = EncoderHead().double().eval()
    attn = ["encoder.self_attn.in_proj_weight", "encoder.self_attn.in_proj_bias",
            "encoder.self_attn.out_proj.weight", "encoder.self_attn.out_proj.bias"]
    return Case(model, F.mse_loss, torch.randn(2, 3, 8, dtype=F64), torch.randn(2, 3, 2, dtype=F64),
                subsets=[(lambda m: m.encoder.self_attn, attn),
                         (r"encoder\.linear\d\.weight|head\.bias",
                          ["encoder.linear1.weight", "encoder.linear2.weight", "head.bias"])])


def _ln_mlp() -> Case:
    torch.manual_seed(5)
    model = LNMLP().double()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.normal_(0, 0.3)
    return Case(model.eval(), F.mse_loss, torch.randn(7, 4, dtype=F64), torch.randn(7, 2, dtype=F64))


ZOO = {"conv_bn": _conv_bn, "lstm": _lstm, "gru": _gru, "embedding": _embedding, "transformer": _transformer,
       "layernorm_gelu_mlp": _ln_mlp}
SUBSET_ZOO = [k for k in ZOO if ZOO[k]().subsets]
MSE_ZOO = [k for k in ZOO if ZOO[k]().loss_fn is F.mse_loss]

# Measured on torch 2.13 (CPU, float64): `torch.func.jvp(grad(f))` raises "RuntimeError: ZeroTensors are immutable"
# whenever the loss is `F.mse_loss` with reduction="mean" (the default), whatever the layers: even
# `jvp(grad(lambda w: F.mse_loss(x @ w, y)))` fails, while reduction="sum" and `((o - t) ** 2).mean()` work.
# gradviz's `HessianOperator(method="forward-over-reverse")` refuses it naming the fix; `autodiff.hvp` falls back.
def forward_mode_breaks(name, method="forward-over-reverse"):
    "Whether this zoo member's loss meets torch's forward-mode bug under `method`."
    return method == "forward-over-reverse" and name in MSE_ZOO


def refused_with_the_fix_named(build):
    "The product fails with a RuntimeError that names the working method, not a bare torch traceback."
    with pytest.raises(RuntimeError, match="method='reverse-over-reverse'"):
        build()


def elementwise_mse(o, t): return ((o - t) ** 2).mean()  # F.mse_loss's value, without its fused backward


# ----------------------------------------------------------------------------------------------------------------
# Independent references (no gradviz): the real model, its own parameters, torch.autograd only
# ----------------------------------------------------------------------------------------------------------------
def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _flat(grads, ps) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, ps)])


def forward(model, X):
    with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):  # fused attention has no double backward
        return model(X)


def ref_gradient(model, loss_fn, X, y, create_graph=False):
    "∇θ loss at the model's current parameters, flat, and the parameters it was taken with respect to."
    ps = [p for _, p in trainable(model)]
    loss = loss_fn(forward(model, X), y)
    return _flat(torch.autograd.grad(loss, ps, create_graph=create_graph, allow_unused=True), ps), ps


def ref_hessian(model, loss_fn, X, y) -> torch.Tensor:
    "Dense Hessian, reverse-over-reverse: one backward of the gradient per basis vector (row by row)."
    g, ps = ref_gradient(model, loss_fn, X, y, create_graph=True)
    if not g.requires_grad: return torch.zeros(g.numel(), g.numel(), dtype=g.dtype)
    return torch.stack([_flat(torch.autograd.grad(g[i], ps, retain_graph=True, allow_unused=True), ps)
                        for i in range(g.numel())])


def ref_gauss_newton(model, loss_fn, X, y) -> torch.Tensor:
    "Jᵀ (∇²_z ℓ) J from the dense output Jacobian (row by row) and the dense Hessian of the loss in the outputs."
    ps = [p for _, p in trainable(model)]
    z = forward(model, X)
    zf = z.reshape(-1)
    J = torch.stack([_flat(torch.autograd.grad(zf[k], ps, retain_graph=True, allow_unused=True), ps)
                     for k in range(zf.numel())])
    z0 = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        gz = torch.autograd.grad(loss_fn(z0, y), z0, create_graph=True)[0].reshape(-1)
    Hz = torch.stack([torch.autograd.grad(gz[k], z0, retain_graph=True)[0].reshape(-1) for k in range(gz.numel())])
    return J.T @ Hz @ J


def ref_fd_hvp(model, loss_fn, X, y, v, eps=FD_EPS) -> torch.Tensor:
    "(∇L(θ + εv) − ∇L(θ − εv)) / 2ε, the gradients taken on a copy whose parameters are moved in place."
    m = copy.deepcopy(model)
    ps = [p for _, p in trainable(m)]
    base = [p.detach().clone() for p in ps]
    chunks = torch.split(v, [p.numel() for p in ps])

    def grad_at(sign):
        with torch.no_grad():
            for p, b, c in zip(ps, base, chunks): p.copy_(b + sign * eps * c.view_as(p))
        return ref_gradient(m, loss_fn, X, y)[0]

    return (grad_at(+1) - grad_at(-1)) / (2 * eps)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    "Largest entry of |a − b| over the largest entry of |b|."
    return float((a - b).abs().max() / b.abs().max())


def block_index(model: nn.Module, names) -> torch.Tensor:
    "Positions in the full flat θ (laid out by `param_layout(model)`) of the parameters `names`."
    layout = param_layout(model)
    starts = torch.cumsum(torch.tensor((0,) + layout.numels), 0)
    where = {n: (int(starts[i]), int(starts[i]) + k) for i, (n, k) in enumerate(zip(layout.names, layout.numels))}
    return torch.cat([torch.arange(*where[n]) for n in names])


@functools.cache
def reference_hessian(name: str) -> torch.Tensor:
    "The reference dense Hessian of a zoo member (cached: several tests index it)."
    c = ZOO[name]()
    return ref_hessian(c.model, c.loss_fn, c.X, c.y)


RESULTS: dict[str, dict[str, float]] = {}  # measured discrepancies, printed at the end with -s


def record(check: str, name: str, value: float) -> None:
    RESULTS.setdefault(check, {})[name] = value


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for check, by_model in RESULTS.items():
        print(f"\n{check}: " + ", ".join(f"{k}={v:.2e}" for k, v in by_model.items()))


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_layout_and_model_function_match_the_real_model(name):
    "θ is named_parameters in order; the pure function reproduces model(X) at θ₀ and at a moved θ."
    c = ZOO[name]()
    named = trainable(c.model)
    layout = param_layout(c.model)
    assert list(layout.names) == [n for n, _ in named]
    assert list(layout.numels) == [p.numel() for _, p in named]
    theta0 = flatten_params(c.model)
    assert theta0.dtype == F64
    assert torch.equal(theta0, torch.cat([p.detach().reshape(-1) for _, p in named]))
    net = model_function(c.model)
    with torch.no_grad():
        expected0 = forward(c.model, c.X)
        assert torch.allclose(net(theta0, c.X), expected0, rtol=0, atol=1e-13)
        assert torch.allclose(net(theta0, (c.X,)), expected0, rtol=0, atol=1e-13)  # tuple of positional inputs
        moved = theta0 + 0.1 * torch.randn(theta0.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
        m = copy.deepcopy(c.model)
        for (_, p), chunk in zip(trainable(m), torch.split(moved, layout.numels)): p.copy_(chunk.view_as(p))
        expected = forward(m, c.X)
        assert (expected - expected0).abs().max() > 1e-3  # the move matters, so the check below can fail
        assert torch.allclose(net(moved, c.X), expected, rtol=0, atol=1e-12)
        assert torch.equal(flatten_params(c.model), theta0)  # the model's own parameters were left alone


def test_model_function_takes_keyword_inputs():
    class Keyworded(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = EncoderHead().double().eval()

        def forward(self, x, scale): return self.inner(x) * scale

    torch.manual_seed(0)
    model = Keyworded().eval()
    X = torch.randn(2, 3, 8, dtype=F64)
    theta = flatten_params(model)
    out = model_function(model)(theta, {"x": X, "scale": 2.0})
    assert torch.allclose(out, 2.0 * forward(model.inner, X), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ZOO)
def test_dense_hessian_matches_reverse_over_reverse_reference(name):
    c = ZOO[name]()
    H_ref = reference_hessian(name)
    p = param_layout(c.model).size
    assert H_ref.shape == (p, p)
    assert H_ref.abs().max() > 1e-3  # non-trivial curvature: the comparison can fail
    assert rel(H_ref, H_ref.T) < 1e-12  # the reference is symmetric by itself (it is not symmetrised)
    op = HessianOperator.from_model(c.model, c.loss_fn, c.X, c.y)
    assert op.size == p and op.dtype == F64
    H = op.dense()
    err = rel(H, H_ref)
    record("dense Hessian vs reference (max |Δ| / max |H|)", name, err)
    assert err < TOL, f"{name}: dense Hessian off by {err:.3g} relative"


def _methods_disagreement(c, loss_fn) -> float:
    rr = HessianOperator.from_model(c.model, loss_fn, c.X, c.y, method="reverse-over-reverse")
    fr = HessianOperator.from_model(c.model, loss_fn, c.X, c.y, method="forward-over-reverse")
    gen = torch.Generator().manual_seed(7)
    worst = 0.0
    for _ in range(3):
        v = torch.randn(rr.size, generator=gen, dtype=F64)
        a, b = rr.matvec(v), fr.matvec(v)
        assert b.abs().max() > 1e-3
        worst = max(worst, float((a - b).norm() / b.norm()))
    return worst


@pytest.mark.parametrize("name", ZOO)
def test_methods_agree_on_random_products(name):
    if forward_mode_breaks(name):
        return refused_with_the_fix_named(lambda: _methods_disagreement(ZOO[name](), ZOO[name]().loss_fn))
    worst = _methods_disagreement(ZOO[name](), ZOO[name]().loss_fn)
    record("reverse-over-reverse vs forward-over-reverse (‖Δ‖/‖Hv‖)", name, worst)
    assert worst < TOL, f"{name}: methods disagree by {worst:.3g} relative"


@pytest.mark.parametrize("name", MSE_ZOO)
def test_methods_agree_with_elementwise_mse(name):
    "The MSE members with the loss written out: forward-over-reverse through the layers themselves is right."
    c = ZOO[name]()
    worst = _methods_disagreement(c, elementwise_mse)
    record("methods agree, hand-written MSE (‖Δ‖/‖Hv‖)", name, worst)
    assert worst < TOL, f"{name}: methods disagree by {worst:.3g} relative"
    op = HessianOperator.from_model(c.model, elementwise_mse, c.X, c.y, method="forward-over-reverse")
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(11), dtype=F64)
    v /= v.norm()
    hv, fd = op.matvec(v), ref_fd_hvp(c.model, elementwise_mse, c.X, c.y, v)
    err = float((hv - fd).norm() / fd.norm())
    record("HVP (forward-over-reverse, hand-written MSE) vs central FD", name, err)
    assert err < FD_TOL


@pytest.mark.parametrize("name, method", [pytest.param(n, m, id=f"{n}-{m}")
                                          for n in ZOO for m in HessianOperator.methods])
def test_hvp_matches_finite_differences_of_gradients(name, method):
    c = ZOO[name]()
    op = HessianOperator.from_model(c.model, c.loss_fn, c.X, c.y, method=method)
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(11), dtype=F64)
    v /= v.norm()
    if forward_mode_breaks(name, method): return refused_with_the_fix_named(lambda: op.matvec(v))
    hv, fd = op.matvec(v), ref_fd_hvp(c.model, c.loss_fn, c.X, c.y, v)
    err = float((hv - fd).norm() / fd.norm())
    record(f"HVP ({method}) vs central FD (‖Δ‖/‖FD‖)", name, err)
    assert err < FD_TOL, f"{name}: HVP vs finite differences {err:.3g} relative"


@pytest.mark.parametrize("name", ZOO)
def test_gauss_newton_matches_JT_H_J_and_is_psd(name):
    c = ZOO[name]()
    G_ref = ref_gauss_newton(c.model, c.loss_fn, c.X, c.y)
    assert G_ref.abs().max() > 1e-3
    G = GaussNewtonOperator(c.model, c.loss_fn, c.X, c.y).dense()
    err = rel(G, G_ref)
    record("Gauss-Newton vs JᵀHJ (max |Δ| / max |G|)", name, err)
    assert err < TOL, f"{name}: Gauss-Newton off by {err:.3g} relative"
    assert torch.equal(G, G.T)
    ev = torch.linalg.eigvalsh(G)
    record("Gauss-Newton min eig / max eig", name, float(ev[0] / ev[-1]))
    assert ev[0] >= -1e-10 * ev[-1], f"{name}: Gauss-Newton has eigenvalue {float(ev[0]):.3g}"


@pytest.mark.parametrize("name, method", [pytest.param(n, m, id=f"{n}-{m}")
                                          for n in SUBSET_ZOO for m in HessianOperator.methods])
def test_parameter_subsets_give_the_block_of_the_full_hessian(name, method):
    c = ZOO[name]()
    H_ref = reference_hessian(name)
    for selection, names in c.subsets:
        sel = selection(c.model) if callable(selection) and not isinstance(selection, nn.Module) else selection
        assert list(param_layout(c.model, sel).names) == names
        idx = block_index(c.model, names)
        block = H_ref[idx][:, idx]
        assert block.abs().max() > 1e-3
        op = HessianOperator.from_model(c.model, c.loss_fn, c.X, c.y, method=method, params=sel)
        if forward_mode_breaks(name, method):
            refused_with_the_fix_named(op.dense)
            continue
        assert op.size == len(idx)
        assert torch.equal(op.theta, flatten_params(c.model)[idx])
        err = rel(op.dense(), block)
        record(f"subset block ({method})", f"{name}:{sel if isinstance(sel, str) else type(sel).__name__}", err)
        assert err < TOL, f"{name}, {sel}: subset Hessian off by {err:.3g} relative"


def test_autodiff_hessian_of_the_transformer_matches_the_reference():
    "gradviz's dense `autodiff.hessian` (jacfwd over grad) is right here; `torch.func.hessian` is only recorded."
    c = _transformer()
    f, theta = flat_objective(c.model, elementwise_mse, c.X, c.y)
    H_ref = ref_hessian(c.model, elementwise_mse, c.X, c.y)
    err = rel(hessian(f, theta), H_ref)
    record("autodiff.hessian vs reference (hand-written MSE)", "transformer", err)
    assert err < TOL
    record("torch.func.hessian vs reference (recorded only, not asserted)", "transformer",
           rel(torch.func.hessian(f)(theta), H_ref))


def test_train_mode_batchnorm_is_refused_unless_allowed():
    c = _conv_bn()
    c.model.train()
    with pytest.raises(ValueError, match="BatchNorm"):
        HessianOperator.from_model(c.model, c.loss_fn, c.X, c.y)
    with pytest.raises(ValueError, match="BatchNorm"):
        GaussNewtonOperator(c.model, c.loss_fn, c.X, c.y)
    ref_model = copy.deepcopy(c.model)  # before gradviz's forward touches the running statistics
    op = HessianOperator.from_model(c.model, c.loss_fn, c.X, c.y, allow_train_mode=True)
    # Accepted, it is the Hessian of the batch-statistics loss: check it against the train-mode reference.
    H_ref = ref_hessian(ref_model, c.loss_fn, c.X, c.y)
    err = rel(op.dense(), H_ref)
    record("train-mode BN Hessian vs reference", "conv_bn", err)
    assert err < TOL
    assert rel(H_ref, reference_hessian("conv_bn")) > 1e-3  # and it differs from the eval-mode Hessian
    GaussNewtonOperator(c.model, c.loss_fn, c.X, c.y, allow_train_mode=True)


def test_train_mode_dropout_is_refused_unless_allowed():
    torch.manual_seed(0)
    model = EncoderHead(dropout=0.1).double().train()
    X, y = torch.randn(2, 3, 8, dtype=F64), torch.randn(2, 3, 2, dtype=F64)
    with pytest.raises(ValueError, match="dropout"):
        HessianOperator.from_model(model, F.mse_loss, X, y)
    with pytest.raises(ValueError, match="dropout"):
        GaussNewtonOperator(model, F.mse_loss, X, y)
    op = HessianOperator.from_model(model, F.mse_loss, X, y, allow_train_mode=True)
    assert torch.isfinite(op.matvec(torch.ones(op.size, dtype=F64))).all()
    GaussNewtonOperator(model, F.mse_loss, X, y, allow_train_mode=True)
    HessianOperator.from_model(model.eval(), F.mse_loss, X, y)  # eval mode: accepted without opting in


@pytest.mark.parametrize("name", MSE_ZOO)
def test_autodiff_hvp_falls_back_where_forward_mode_breaks(name):
    "`autodiff.hvp` is forward-over-reverse where it can be and reverse-over-reverse where torch's forward mode breaks."
    c = ZOO[name]()
    f, theta = flat_objective(c.model, c.loss_fn, c.X, c.y)
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(11), dtype=F64)
    v /= v.norm()
    fd = ref_fd_hvp(c.model, c.loss_fn, c.X, c.y, v)
    for product in (hvp, hvp_reverse):
        assert float((product(f, theta, v) - fd).norm() / fd.norm()) < FD_TOL
