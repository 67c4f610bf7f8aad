"""Reference tests for gradviz.autodiff against independent float64 references, closed forms and finite differences."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import reference as ref
from gradviz.autodiff import (flat_model, flat_objective, flatten_params, gradient, hessian, hvp,
                              hvp_finite_difference, jacobian, model_function, param_layout, per_sample_grads,
                              check_eval_mode, saved_tensor_bytes, select_params, train_mode_layers)
from gradviz.core import as_generator

F64 = torch.float64


def _mlp(sizes, seed=0, device="cpu"):
    g = as_generator(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a ** 0.5)
            lin.bias.copy_(0.1 * torch.randn(b, generator=g))
        layers += [lin, nn.Tanh()] if i < len(sizes) - 2 else [lin]
    return nn.Sequential(*layers).to(device=device, dtype=F64)


def _data(n, d, c, seed=1, device="cpu"):
    g = as_generator(seed)
    return (torch.randn(n, d, generator=g, dtype=F64).to(device),
            torch.randint(0, c, (n,), generator=g).to(device))


def test_hvp_matches_the_reference_hessian(device):
    "Headline check: forward-over-reverse products against a reverse-over-reverse float64 Hessian (tests/reference.py)."
    model, (X, y) = _mlp([4, 8, 3]), _data(30, 4, 3)
    H = ref.model_hessian(model, nn.functional.cross_entropy, X, y)
    f, theta = flat_objective(model.to(device), nn.functional.cross_entropy, X.to(device), y.to(device))
    for seed in range(3):
        v = torch.randn(theta.shape, generator=as_generator(seed), dtype=F64)
        assert torch.allclose(hvp(f, theta, v.to(device)).cpu(), H @ v, atol=1e-8, rtol=0)


def test_hessian_matches_the_reference_hessian_and_finite_differences():
    "Headline check: the dense Hessian against reverse-over-reverse and against second differences (no autodiff)."
    model = _mlp([3, 4, 2])
    X, y = _data(12, 3, 2)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    H = hessian(f, theta)
    torch.testing.assert_close(H, ref.model_hessian(model, nn.functional.cross_entropy, X, y), atol=1e-12, rtol=0)
    f_ref, theta_ref = ref.flat_loss(model, nn.functional.cross_entropy, X, y)
    torch.testing.assert_close(H, ref.fd_hessian(f_ref, theta_ref), atol=1e-6, rtol=0)


def test_hessian_of_linear_regression_is_closed_form():
    g = as_generator(0)
    n, d = 50, 6
    X, y = torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, generator=g, dtype=F64)
    model = nn.Linear(d, 1, bias=False).double()
    f, theta = flat_objective(model, lambda out, t: ((out.squeeze(-1) - t) ** 2).mean(), X, y)
    assert torch.allclose(hessian(f, theta), 2 / n * X.T @ X, atol=1e-12)


def test_hessian_of_logistic_regression_is_closed_form():
    g = as_generator(1)
    n, d = 40, 5
    X = torch.randn(n, d, generator=g, dtype=F64)
    y = (torch.rand(n, generator=g, dtype=F64) > 0.5).to(F64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad(): model.weight.copy_(torch.randn(1, d, generator=g, dtype=F64))
    bce = lambda out, t: nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), t)
    f, theta = flat_objective(model, bce, X, y)
    s = torch.sigmoid(X @ theta)
    expected = X.T @ torch.diag(s * (1 - s)) @ X / n
    assert torch.allclose(hessian(f, theta), expected, atol=1e-12)


def test_per_sample_grads_match_the_reference_loop(device):
    "Headline check: vmapped per-sample gradients against one float64 `.backward()` per sample (tests/reference.py)."
    model, (X, y) = _mlp([5, 7, 4]), _data(16, 5, 4)
    loop = ref.per_sample_grads_loop(model, nn.functional.cross_entropy, X, y)
    G = per_sample_grads(model.to(device), nn.functional.cross_entropy, X.to(device), y.to(device))
    assert G.device.type == device.type
    torch.testing.assert_close(G.cpu(), loop, atol=1e-12, rtol=0)


def test_per_sample_grads_in_float32_match_the_float64_reference():
    model = _mlp([5, 7, 4])
    X, y = _data(16, 5, 4)
    G32 = per_sample_grads(model.float(), nn.functional.cross_entropy, X.float(), y)
    assert G32.dtype == torch.float32
    torch.testing.assert_close(G32.double(), ref.per_sample_grads_loop(model, nn.functional.cross_entropy, X, y),
                               atol=1e-5, rtol=0)


def test_per_sample_grads_chunked_equals_unchunked():
    model = _mlp([3, 6, 2])
    X, y = _data(25, 3, 2)
    full = per_sample_grads(model, nn.functional.cross_entropy, X, y)
    assert torch.allclose(per_sample_grads(model, nn.functional.cross_entropy, X, y, chunk_size=4), full, atol=1e-14)


def test_mean_of_per_sample_grads_is_batch_gradient():
    model = _mlp([3, 6, 2])
    X, y = _data(25, 3, 2)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    G = per_sample_grads(model, nn.functional.cross_entropy, X, y)
    assert torch.allclose(G.mean(0), gradient(f, theta), atol=1e-13)


def test_gradient_matches_finite_differences():
    model = _mlp([3, 4, 2])
    X, y = _data(10, 3, 2)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    f_ref, theta_ref = ref.flat_loss(model, nn.functional.cross_entropy, X, y)
    assert torch.allclose(gradient(f, theta), ref.fd_gradient(f_ref, theta_ref), atol=1e-8)


def test_hvp_finite_difference_approximates_hvp():
    model = _mlp([3, 4, 2])
    X, y = _data(10, 3, 2)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    v = torch.randn(theta.shape, generator=as_generator(3), dtype=F64)
    assert torch.allclose(hvp_finite_difference(f, theta, v, eps=1e-5), hvp(f, theta, v), atol=1e-7)


def test_jacobian_matches_finite_differences_row_by_row():
    "Headline check: each row of the network's output Jacobian against central differences (no autodiff)."
    model = _mlp([3, 5, 2])
    X, _ = _data(7, 3, 2)
    g, theta = flat_model(model, X)
    J = jacobian(g, theta)
    assert J.shape == (14, theta.numel())
    rows = torch.stack([ref.fd_gradient(lambda t, i=i: g(t).reshape(-1)[i], theta) for i in range(14)])
    torch.testing.assert_close(J, rows, atol=1e-8, rtol=0)


def test_jacobian_gives_the_reference_gauss_newton_matrix():
    "For mean squared error over m outputs, G = (2/m) JᵀJ: the reference builds G from the linearised model."
    model = _mlp([3, 5, 2])
    X, _ = _data(7, 3, 2)
    Y = torch.randn(7, 2, dtype=F64, generator=as_generator(4))
    g, theta = flat_model(model, X)
    J = jacobian(g, theta)
    mse = lambda out, t: ((out - t) ** 2).mean()
    torch.testing.assert_close((2 / 14) * J.T @ J, ref.gauss_newton(model, mse, X, Y), atol=1e-12, rtol=0)


def test_jacobian_modes_agree_and_closed_forms():
    model = _mlp([3, 5, 2])
    X, _ = _data(7, 3, 2)
    g, theta = flat_model(model, X)
    assert torch.allclose(jacobian(g, theta, "reverse"), jacobian(g, theta, "forward"), atol=1e-12)
    M = torch.randn(4, 6, dtype=F64, generator=as_generator(5))
    for mode in ("reverse", "forward", "auto"):
        assert torch.equal(jacobian(lambda t: M @ t, torch.ones(6, dtype=F64), mode), M)
    t = torch.linspace(-1, 1, 5, dtype=F64)
    assert torch.allclose(jacobian(torch.sin, t), torch.diag(t.cos()), atol=1e-15)
    assert jacobian(lambda t: t.reshape(2, 3) * 2, torch.ones(6, dtype=F64)).shape == (6, 6)  # outputs flattened
    # for a linear model the Gauss-Newton matrix of MSE is the whole Hessian
    lin = nn.Linear(3, 2).double()
    g, theta = flat_model(lin, X)
    J = jacobian(g, theta)
    Y = torch.randn(7, 2, dtype=F64, generator=as_generator(4))
    mse = lambda out, t: ((out - t) ** 2).mean()
    assert torch.allclose(ref.model_hessian(lin, mse, X, Y), (2 / 14) * J.T @ J, atol=1e-12)


def test_frozen_parameters_and_buffers_are_respected():
    model = _mlp([3, 4, 2])
    model[0].weight.requires_grad_(False)
    X, y = _data(6, 3, 2)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    assert theta.numel() == 4 + 8 + 2
    assert param_layout(model).names == ("0.bias", "2.weight", "2.bias")
    assert torch.allclose(f(theta), nn.functional.cross_entropy(model(X), y))
    H = hessian(f, theta)
    torch.testing.assert_close(H, ref.model_hessian(model, nn.functional.cross_entropy, X, y), atol=1e-12, rtol=0)


def test_model_function_evaluates_the_network_at_any_theta():
    model = _mlp([3, 4, 2])
    X, _ = _data(5, 3, 2)
    net = model_function(model)
    theta = flatten_params(model)
    assert torch.equal(net(theta, X), model(X))
    assert torch.equal(net(torch.zeros_like(theta), X), torch.zeros(5, 2, dtype=F64))
    assert torch.equal(flatten_params(model), theta)  # the model is left as it was
    with pytest.raises(TypeError, match="`model`"): model_function("net")
    with pytest.raises(ValueError, match="`model` has no trainable parameters"): model_function(nn.ReLU())


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 10_000))
def test_flatten_unflatten_roundtrip(d_in, d_out, seed):
    model = nn.Linear(d_in, d_out)
    theta = torch.randn(param_layout(model).size, generator=as_generator(seed))
    parts = param_layout(model).unflatten(theta)
    assert torch.equal(torch.cat([p.reshape(-1) for p in parts.values()]), theta)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_hvp_is_linear_and_symmetric(seed):
    model = _mlp([2, 3, 2], seed=seed % 7)
    X, y = _data(5, 2, 2, seed=seed)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    g = as_generator(seed)
    u, v = torch.randn(theta.shape, generator=g, dtype=F64), torch.randn(theta.shape, generator=g, dtype=F64)
    assert torch.allclose(hvp(f, theta, 2 * u + v), 2 * hvp(f, theta, u) + hvp(f, theta, v), atol=1e-10)
    assert torch.allclose(u @ hvp(f, theta, v), v @ hvp(f, theta, u), atol=1e-10)


# ---------------------------------------------------------------- bad input
@pytest.fixture
def problem():
    model = _mlp([3, 4, 2])
    X, y = _data(6, 3, 2)
    return model, X, y


def test_bad_model_and_loss(problem):
    model, X, y = problem
    with pytest.raises(TypeError, match="`model`"): flat_objective("model", nn.functional.cross_entropy, X, y)
    with pytest.raises(TypeError, match="`loss_fn`"): flat_objective(model, "ce", X, y)
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar"):
        flat_objective(model, lambda out, t: out, X, y)
    with pytest.raises(ValueError, match="non-finite"):
        flat_objective(model, lambda out, t: out.sum() * float("inf"), X, y)


def test_bad_shapes(problem):
    model, X, y = problem
    with pytest.raises(ValueError, match="`y` has 5"): flat_objective(model, nn.functional.cross_entropy, X, y[:5])
    with pytest.raises(TypeError, match="`X` must be a torch.Tensor"):
        per_sample_grads(model, nn.functional.cross_entropy, X.numpy(), y)
    with pytest.raises(ValueError, match="`X` contains non-finite"):
        flat_objective(model, nn.functional.cross_entropy, X * float("nan"), y)
    f, theta = flat_objective(model, nn.functional.cross_entropy, X, y)
    with pytest.raises(ValueError, match="`v` must have shape"): hvp(f, theta, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="`theta` must have 1 dimension"): hvp(f, theta[None], theta[None])
    with pytest.raises(ValueError, match="`v` contains non-finite"): hvp(f, theta, theta * float("nan"))
    with pytest.raises(ValueError, match="`mode`"): jacobian(lambda t: t, theta, "sideways")
    with pytest.raises(ValueError, match="`eps`"): hvp_finite_difference(f, theta, theta, eps=0.0)


def test_dense_hessian_refuses_large_problems():
    f = lambda t: (t ** 2).sum()
    with pytest.raises(ValueError, match="max_params"): hessian(f, torch.zeros(6001))
    with pytest.raises(ValueError, match="`max_params`"): hessian(f, torch.zeros(3), max_params=0)


def test_per_sample_grads_refuses_batch_mixing_layers():
    X, y = _data(6, 3, 2)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    with pytest.raises(ValueError, match="BatchNorm1d"): per_sample_grads(bn, nn.functional.cross_entropy, X, y)
    bn.eval()
    assert per_sample_grads(bn, nn.functional.cross_entropy, X, y).shape == (6, 16 + 8 + 10)
    with pytest.raises(ValueError, match="`chunk_size`"):
        per_sample_grads(bn, nn.functional.cross_entropy, X, y, chunk_size=0)


def test_param_gradient_matches_backward_and_fills_unused_with_zeros():
    from gradviz.autodiff import param_gradient
    from gradviz.data import mlp
    net = mlp([3, 4, 2], device="cpu", dtype=torch.float64)
    X = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = net(X).square().sum()
    g = param_gradient(out, net, retain_graph=True)
    out.backward()
    torch.testing.assert_close(g, torch.cat([p.grad.reshape(-1) for p in net.parameters()]), atol=1e-12, rtol=0)
    g0 = param_gradient(net[0].weight.sum(), list(net.parameters()))
    assert torch.equal(g0[:12], torch.ones(12, dtype=torch.float64)) and not g0[12:].any()
    with pytest.raises(ValueError, match="`output`"): param_gradient(net(X).sum(1), net)
    with pytest.raises(ValueError, match="`params`"): param_gradient(out, [])


def test_parameter_subsets_of_the_flat_objective_give_the_reference_block():
    net, (X, y) = _mlp([3, 4, 2], seed=5), _data(12, 3, 2)
    H = ref.model_hessian(net, nn.functional.cross_entropy, X, y)
    f, theta = flat_objective(net, nn.functional.cross_entropy, X, y, params=net[2])  # last layer: entries 16..25
    assert theta.shape == (10,) and torch.equal(theta, flatten_params(net)[16:])
    assert (hessian(f, theta) - H[16:, 16:]).abs().max() < 1e-10
    g, theta_g = flat_model(net, X, params=["0.bias"])
    assert torch.allclose(g(theta_g), net(X)) and theta_g.shape == (4,)
    assert param_layout(net, r".*weight").names == ("0.weight", "2.weight")
    assert [n for n, _ in select_params(net, lambda n, p: "bias" in n)] == ["0.bias", "2.bias"]


def test_select_params_refuses_bad_selections():
    net = _mlp([3, 4, 2])
    net[0].bias.requires_grad_(False)
    for bad, match in [("0", "selects none"), (["0.weight", "x"], "does not have"), (["0.bias"], "frozen"),
                       (nn.Linear(3, 4), "not part of"), ("(", "regular expression"), ([], "selects none")]:
        with pytest.raises(ValueError, match=f"`params`.*{match}"): select_params(net, bad)
    for bad in (3, [1], {"0.weight"}):
        with pytest.raises(TypeError, match="`params`"): select_params(net, bad)
    assert [n for n, _ in select_params(net, net)] == ["0.weight", "2.weight", "2.bias"]  # the whole model


def test_train_mode_layers_name_dropout_and_batchnorm():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.1), nn.Dropout(0.0), nn.Linear(4, 2))
    assert train_mode_layers(net) == ["1 (BatchNorm1d: BatchNorm in training mode)",
                                      "2 (Dropout: dropout with p=0.1 > 0 in training mode)"]
    assert train_mode_layers(net.eval()) == [] and train_mode_layers(_mlp([3, 4, 2])) == []
    with pytest.raises(ValueError, match=r"`model`.*1 \(BatchNorm1d.*it breaks; call model.eval\(\) first, or pass ok=1"):
        check_eval_mode(net.train(), "it breaks", opt_in="ok=1")


# --- activations and their gradients ---------------------------------------------------------------------------

def _split_gradient(model, cut, X, y, loss_fn):
    "∂L/∂h for h the output of model[:cut], by running the two halves of a Sequential by hand (no hooks)."
    h = model[:cut](X).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(model[cut:](h), y), h)
    return h.detach(), g


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_activation_grads_equal_the_split_network(cut):
    from gradviz.autodiff import activation_grads
    model = _mlp([4, 6, 5, 3])
    X, y = _data(7, 4, 3)
    read = activation_grads(model, model[cut - 1], X, y, nn.functional.cross_entropy)
    h, g = _split_gradient(model, cut, X, y, nn.functional.cross_entropy)
    torch.testing.assert_close(read.activations, h, rtol=0, atol=1e-14)
    torch.testing.assert_close(read.grads, g, rtol=0, atol=1e-14)
    torch.testing.assert_close(read.loss, nn.functional.cross_entropy(model(X), y), rtol=0, atol=1e-14)


def test_activation_grads_of_a_transformer_block_match_central_differences():
    from gradviz.autodiff import activation_grads, replace_output
    from gradviz.data import next_token_loss, tiny_lm
    lm = tiny_lm(kind="transformer", dim=8, heads=2, vocab_size=6, device="cpu", dtype=F64)
    tokens = torch.randint(0, 6, (3, 5), generator=as_generator(2))
    module = lm.blocks[0]
    read = activation_grads(lm, module, tokens, tokens, next_token_loss)
    V = torch.randn(read.activations.shape, generator=as_generator(3), dtype=F64)
    eps = 1e-5
    def loss_at(t):
        with replace_output(lm, module, lambda h: h + t * V): return next_token_loss(lm(tokens), tokens)
    fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert abs(float(fd - (read.grads * V).sum())) < 1e-8 * max(1.0, abs(float(fd)))
    assert lm(tokens).allclose(lm(tokens)) and not module._forward_hooks  # the splice is gone


def test_activation_grads_leave_parameter_grads_alone_and_work_without_them():
    from gradviz.autodiff import activation_grads
    model = _mlp([3, 4, 2]).requires_grad_(False)
    X, y = _data(5, 3, 2)
    read = activation_grads(model, model[1], X, y, nn.functional.cross_entropy)
    assert read.grads.abs().sum() > 0 and all(p.grad is None for p in model.parameters())


def test_activation_grads_refuse_what_they_cannot_read():
    from gradviz.autodiff import activation_grads
    model = _mlp([3, 4, 2])
    X, y = _data(5, 3, 2)
    ce = nn.functional.cross_entropy
    with pytest.raises(ValueError, match="`module`.*not a submodule"): activation_grads(model, nn.Tanh(), X, y, ce)
    with pytest.raises(TypeError, match="`loss_fn`"): activation_grads(model, model[1], X, y, "cross_entropy")
    with pytest.raises(TypeError, match="`model`"): activation_grads("net", model[1], X, y, ce)
    with pytest.raises(ValueError, match="`module` ran 2 times"): activation_grads(_twice, _twice.shared, X, y, ce)
    with pytest.raises(ValueError, match="does not depend"):
        activation_grads(model, model[1], X, y, lambda out, t: model[0].bias.sum())
    unused = nn.ModuleDict({"a": nn.Linear(3, 2, dtype=F64), "b": nn.Linear(3, 2, dtype=F64)})
    class OnlyA(nn.Module):
        def __init__(self): super().__init__(); self.parts = unused
        def forward(self, x): return self.parts["a"](x)
    with pytest.raises(ValueError, match="not called"): activation_grads(OnlyA(), unused["b"], X, y, ce)
    assert not model[1]._forward_hooks and not model[0]._forward_hooks


class _Twice(nn.Module):
    "One Linear applied twice: a module with two call sites."
    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(3, 3, dtype=F64)
        self.out = nn.Linear(3, 2, dtype=F64)
    def forward(self, x): return self.out(self.shared(torch.tanh(self.shared(x))))


_twice = _Twice()


def test_replace_output_splices_only_inside_the_block_even_on_error():
    from gradviz.autodiff import replace_output
    model = _mlp([3, 4, 2])
    X, _ = _data(5, 3, 2)
    before = model(X)
    with replace_output(model, model[1], torch.zeros_like) as same:
        assert same is model
        torch.testing.assert_close(model(X), model[2].bias.expand(5, 2), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="boom"):
        with replace_output(model, model[1], torch.zeros_like): raise RuntimeError("boom")
    torch.testing.assert_close(model(X), before, rtol=0, atol=0)
    with pytest.raises(TypeError, match="`fn`"):
        with replace_output(model, model[1], 3.0): pass
    with pytest.raises(ValueError, match="`module`"):
        with replace_output(model, nn.Tanh(), torch.zeros_like): pass


def test_saved_tensor_bytes_counts_each_storage_once():
    x = torch.randn(500, dtype=torch.float64, generator=as_generator(0)).requires_grad_()
    w = torch.randn(500, 30, dtype=torch.float64, generator=as_generator(1)).requires_grad_()
    assert saved_tensor_bytes(lambda: (x * x).sum()) == 500 * 8
    assert saved_tensor_bytes(lambda: (x @ w).sum()) == (500 + 500 * 30) * 8
    assert saved_tensor_bytes(lambda: x.sigmoid().sum()) == 500 * 8  # sigmoid saves its output
    view = x[:100]
    assert saved_tensor_bytes(lambda: (view * view).sum()) == 500 * 8  # a view holds its whole storage
    with torch.no_grad(): assert saved_tensor_bytes(lambda: (x * w[:, 0]).sum()) == 0


def test_saved_tensor_bytes_grows_linearly_when_unrolling():
    x0 = torch.randn(64, dtype=torch.float64, generator=as_generator(2)).requires_grad_()
    def unroll(k):
        h = x0
        for _ in range(k): h = torch.tanh(h) + 0.5 * h
        return h.sum()
    b = [saved_tensor_bytes(unroll, k) for k in (5, 10, 20)]
    assert b[1] - b[0] == 5 * 64 * 8 and b[2] - b[1] == 10 * 64 * 8


def test_saved_tensor_bytes_refuses_non_callables():
    with pytest.raises(TypeError, match="`fn`"): saved_tensor_bytes(3)


def test_saved_tensor_bytes_names_torch_func_transforms():
    from torch.func import grad
    x = torch.randn(5, dtype=torch.float64, generator=as_generator(3)).requires_grad_()
    with pytest.raises(ValueError, match="`fn`.*torch.func"): saved_tensor_bytes(lambda: grad(lambda t: (t ** 3).sum())(x))
