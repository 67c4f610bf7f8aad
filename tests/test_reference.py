"""The independent references in `reference.py` agree with finite differences (and so may judge gradviz)."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import reference as ref

F64 = torch.float64


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(F64)


def _data(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def test_fd_gradient_and_hessian_on_a_closed_form():
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    f = lambda t: 0.5 * t @ A @ t + t.sin().sum()
    t = torch.tensor([0.3, -0.7], dtype=F64)
    assert torch.allclose(ref.fd_gradient(f, t), A @ t + t.cos(), atol=1e-9)
    assert torch.allclose(ref.fd_hessian(f, t), A - torch.diag(t.sin()), atol=1e-6)


def test_model_hessian_matches_finite_differences():
    net, (X, y) = _mlp(), _data()
    f, theta = ref.flat_loss(net, F.cross_entropy, X, y)
    assert torch.allclose(ref.model_hessian(net, F.cross_entropy, X, y), ref.fd_hessian(f, theta), atol=1e-6)


def test_reference_leaves_the_callers_model_alone():
    net = nn.Linear(3, 2)
    ref.model_hessian(net, F.mse_loss, torch.randn(4, 3), torch.randn(4, 2))
    assert net.weight.dtype == torch.float32


def test_gauss_newton_is_the_hessian_of_the_linearised_model():
    "G equals the Hessian of θ ↦ ℓ(f(θ₀) + J(θ − θ₀)) at θ₀, checked by finite differences of that model."
    net, (X, y) = _mlp(), _data()
    names, ps = ref.params_of(net)
    theta0 = torch.cat([p.flatten() for p in ps])
    out = lambda t: torch.func.functional_call(net, {n: c.view(p.shape) for n, c, p in
                                                     zip(names, torch.split(t, [p.numel() for p in ps]), ps)}, (X,))
    z0 = out(theta0).detach()
    J = torch.autograd.functional.jacobian(out, theta0).reshape(z0.numel(), -1)
    lin = lambda t: F.cross_entropy((z0.flatten() + J @ (t - theta0)).view_as(z0), y)
    assert torch.allclose(ref.gauss_newton(net, F.cross_entropy, X, y), ref.fd_hessian(lin, theta0), atol=1e-6)


def test_per_sample_loop_sums_to_the_batch_gradient_and_matches_finite_differences():
    net, (X, y) = _mlp(), _data()
    G = ref.per_sample_grads_loop(net, F.cross_entropy, X, y)
    f, theta = ref.flat_loss(net, lambda o, t: F.cross_entropy(o, t, reduction="sum"), X, y)
    assert torch.allclose(G.sum(0), ref.fd_gradient(f, theta), atol=1e-8)
    f1, _ = ref.flat_loss(net, F.cross_entropy, X[:1], y[:1])
    assert torch.allclose(G[0], ref.fd_gradient(f1, theta), atol=1e-8)


def test_dense_hessian_is_right_where_torch_func_hessian_is_not():
    "A transformer layer under the math attention backend: the reference agrees with finite differences."
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=4, nhead=1, dim_feedforward=4, dropout=0.0, batch_first=True).to(F64)
    head = nn.Linear(4, 1).to(F64)
    model = nn.Sequential(layer, head)
    model.eval()
    X = torch.randn(2, 3, 4, dtype=F64)
    y = torch.randn(2, 3, 1, dtype=F64)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        f, theta = ref.flat_loss(head, F.mse_loss, layer(X).detach(), y)  # small: the head only, for speed
        assert torch.allclose(ref.dense_hessian(f, theta), ref.fd_hessian(f, theta), atol=1e-6)
        names, ps = ref.params_of(layer)
        keep = names.index("linear2.weight")
        sizes = [p.numel() for p in ps]
        base = torch.cat([p.flatten() for p in ps])
        start = sum(sizes[:keep])

        def g(w):  # the loss as a function of one weight matrix of the attention layer
            t = torch.cat([base[:start], w, base[start + sizes[keep]:]])
            out = torch.func.functional_call(layer, {n: c.view(p.shape) for n, c, p in
                                                     zip(names, torch.split(t, sizes), ps)}, (X,))
            return F.mse_loss(head(out), y)

        w0 = base[start:start + sizes[keep]]
        assert torch.allclose(ref.dense_hessian(g, w0), ref.fd_hessian(g, w0), atol=1e-6)
