"""Reference tests for gradviz.dynamics.diffgrad (float64): Adam identity, friction, the aliasing bug, peers, F1–F3."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import scipy.optimize
from matplotlib.figure import Figure
from reference import require_ref
import torch
from torch import nn

from gradviz.data import tiny_cnn, tiny_images, train
from gradviz.dynamics.diffgrad import (
    METHODS, OPTIMIZERS, SYNTHETIC, CNNRun, DiffGrad, LRSearch, adam_denominator, apply_update_, average_grad_, average_sq_grad_,
    compare_optimizers, compute_trajectories, compute_trajectory, CPU_BLOCK, foreach_blocks, diffgrad_figure,
    diffgrad_step_, diffgrad_step_foreach_, explore_diffgrad, f1, f2, f3, friction_, loss_scale_slider_figure,
    plot_claim, plot_cnn, plot_steps, remember_grad_, synthetic_grad, train_cnn, animate_trajectories, tune_lr)
from gradviz.viz import Explorer

F64 = torch.float64


def _quadratic(seed=0, n=20, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(n, n, generator=g, dtype=F64)
    A = (Q @ Q.T / n + 0.1 * torch.eye(n, dtype=F64)).to(device)
    b = torch.randn(n, generator=g, dtype=F64).to(device)
    w0 = torch.randn(n, generator=g, dtype=F64).to(device)
    return A, b, w0


def _run_quadratic(make_opt, steps=50, seed=0, device="cpu", set_to_none=True):
    A, b, w0 = _quadratic(seed, device=device)
    w = nn.Parameter(w0.clone())
    opt = make_opt([w])
    for _ in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        (0.5 * w @ A @ w - b @ w).backward()
        opt.step()
    return w.detach(), opt


def _cnn_params(make_opt, steps=15, dtype=torch.float32):
    X, y = tiny_images(n=128, seed=0, device="cpu", dtype=dtype)
    net = tiny_cnn(seed=0, device="cpu", dtype=dtype)
    train(net, "cross_entropy", X, y, steps=steps, lr=1e-3, batch_size=32, optimizer=lambda p, lr: make_opt(p), seed=1)
    return [p.detach().clone() for p in net.parameters()]


# ---------------------------------------------------------------------------- step functions
def test_moments_match_definition():
    m, v, g = torch.tensor([1.0], dtype=F64), torch.tensor([2.0], dtype=F64), torch.tensor([-3.0], dtype=F64)
    average_grad_(m, g, 0.9); average_sq_grad_(v, g, 0.99)
    assert m.item() == pytest.approx(0.9 * 1.0 + 0.1 * -3.0, abs=1e-15)
    assert v.item() == pytest.approx(0.99 * 2.0 + 0.01 * 9.0, abs=1e-15)


def test_friction_is_sigmoid_of_absolute_change():
    g = torch.Generator().manual_seed(0)
    prev, cur = torch.randn(100, generator=g, dtype=F64), torch.randn(100, generator=g, dtype=F64)
    expected = 1 / (1 + torch.exp(-(prev - cur).abs()))
    xi = friction_(prev.clone(), cur)
    torch.testing.assert_close(xi, expected, rtol=0, atol=1e-15)
    assert bool((xi >= 0.5).all()) and bool((xi < 1).all())


def test_friction_is_half_when_gradient_unchanged():
    g = torch.randn(10, dtype=F64)
    assert torch.equal(friction_(g.clone(), g), torch.full_like(g, 0.5))


def test_remember_grad_copies():
    buf, g = torch.zeros(3, dtype=F64), torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    remember_grad_(buf, g)
    g.zero_()
    assert buf.tolist() == [1.0, 2.0, 3.0]


def test_first_adam_step_has_length_lr():
    p, g = torch.zeros(1, dtype=F64), torch.tensor([7.5], dtype=F64)
    m = average_grad_(torch.zeros(1, dtype=F64), g, 0.9)
    v = average_sq_grad_(torch.zeros(1, dtype=F64), g, 0.999)
    apply_update_(p, m, adam_denominator(v, 1, 0.999, 0.0), 1, 0.01, 0.9)
    assert p.item() == pytest.approx(-0.01, abs=1e-15)


# ---------------------------------------------------------------------------- the optimizer vs Adam
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("adam_foreach", [True, False])
def test_no_friction_is_adam_bit_for_bit(foreach, adam_foreach):
    ours = _cnn_params(lambda p: DiffGrad(p, lr=3e-3, friction=False, foreach=foreach))
    ref = _cnn_params(lambda p: torch.optim.Adam(p, lr=3e-3, foreach=adam_foreach))
    for a, b in zip(ours, ref): assert torch.equal(a, b)


def test_no_friction_is_adam_float64_quadratic():
    ours, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6, friction=False))
    ref, _ = _run_quadratic(lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6))
    assert torch.equal(ours, ref)


def test_friction_changes_the_result():
    ours, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.05))
    ref, _ = _run_quadratic(lambda p: torch.optim.Adam(p, lr=0.05))
    assert (ours - ref).abs().max() > 1e-3


def test_foreach_equals_plain_cnn():
    a = _cnn_params(lambda p: DiffGrad(p, lr=3e-3, foreach=True))
    b = _cnn_params(lambda p: DiffGrad(p, lr=3e-3, foreach=False))
    for x, y in zip(a, b): assert torch.equal(x, y)


def test_foreach_equals_plain_mixed_dtypes_and_weight_decay():
    g = torch.Generator().manual_seed(1)
    def run(foreach):
        ps = [nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)),
              nn.Parameter(torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=torch.float32))]
        opt = DiffGrad(ps, lr=0.01, weight_decay=0.1, foreach=foreach)
        for k in range(10):
            for i, p in enumerate(ps):
                p.grad = torch.sin((k + 1) * torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) + i)
            opt.step()
        return ps
    for a, b in zip(run(True), run(False)): assert torch.equal(a, b)


def test_foreach_blocks_large_tensors_bit_identical_to_plain():
    "Tensors above CPU_BLOCK are cut into flat blocks; elementwise arithmetic makes that invisible."
    shapes = [(3 * CPU_BLOCK + 7,), (5, 4), (2, CPU_BLOCK // 2 + 3)]
    def run(foreach):
        g = torch.Generator().manual_seed(5)
        ps = [nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
        opt = DiffGrad(ps, lr=1e-2, foreach=foreach)
        for k in range(4):
            for p in ps: p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        return ps
    for a, b in zip(run(True), run(False)): assert torch.equal(a, b)


def test_foreach_blocks_partition():
    big, small, odd = torch.zeros(2 * CPU_BLOCK + 1), torch.zeros(3), torch.zeros(4, CPU_BLOCK).t()  # odd: not contiguous
    units = foreach_blocks([[big, small, odd]] * 5, [2, 2, 2])
    assert [t.numel() for t in units[0][0][0]] == [3, 4 * CPU_BLOCK] and units[0][1] == [2, 2]
    assert [u[0][0][0].numel() for u in units[1:]] == [CPU_BLOCK, CPU_BLOCK, 1]
    for u in units[1:]: assert u[0][0][0].data_ptr() >= big.data_ptr()  # views, not copies


def test_weight_decay_leaves_grad_untouched_and_matches_l2():
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=F64))
    w.grad = torch.tensor([0.5, 0.5], dtype=F64)
    DiffGrad([w], lr=0.1, weight_decay=0.3).step()
    assert w.grad.tolist() == [0.5, 0.5]
    wd, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.05, weight_decay=0.2))
    # L2 in the gradient: the same as adding 0.1‖w‖² to the loss
    A, b, w0 = _quadratic(0)
    w2 = nn.Parameter(w0.clone()); opt = DiffGrad([w2], lr=0.05)
    for _ in range(50):
        opt.zero_grad(); (0.5 * w2 @ A @ w2 - b @ w2 + 0.1 * (w2 ** 2).sum()).backward(); opt.step()
    torch.testing.assert_close(wd, w2.detach(), rtol=0, atol=1e-12)


def test_state_dict_round_trip():
    w, opt = _run_quadratic(lambda p: DiffGrad(p, lr=0.05), steps=5)
    w2 = nn.Parameter(w.clone()); opt2 = DiffGrad([w2], lr=0.05)
    opt2.load_state_dict(opt.state_dict())
    s1, s2 = opt.state[opt.param_groups[0]["params"][0]], opt2.state[w2]
    assert s2["step"] == s1["step"] == 5 and torch.equal(s1["previous_grad"], s2["previous_grad"])


def test_parameters_without_grad_are_skipped():
    a, b = nn.Parameter(torch.ones(2, dtype=F64)), nn.Parameter(torch.ones(2, dtype=F64))
    a.grad = torch.ones(2, dtype=F64)
    opt = DiffGrad([a, b], lr=0.1); opt.step()
    assert b.tolist() == [1.0, 1.0] and len(opt.state[b]) == 0 and opt.state[a]["step"] == 1


def test_closure_returns_loss():
    w = nn.Parameter(torch.tensor([3.0], dtype=F64)); opt = DiffGrad([w], lr=0.1)
    def closure():
        opt.zero_grad(); loss = (w ** 2).sum(); loss.backward(); return loss
    assert opt.step(closure).item() == 9.0 and w.item() < 3.0


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_sparse_gradient_rejected():
    w = nn.Parameter(torch.zeros(4, dtype=F64))
    w.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.tensor([1.0], dtype=F64), (4,))
    with pytest.raises(RuntimeError, match="sparse"): DiffGrad([w]).step()


# ---------------------------------------------------------------------------- the aliasing bug guard
@pytest.mark.parametrize("foreach", [True, False])
def test_previous_gradient_is_a_copy_not_an_alias(foreach):
    "The original release stored `p.grad` itself: with in-place zero_grad, ξ ≡ 0.5 and diffGrad = Adam(α/2)."
    A, b, w0 = _quadratic(3)
    w = nn.Parameter(w0.clone()); opt = DiffGrad([w], lr=0.05, foreach=foreach)
    seen = []
    for k in range(6):
        opt.zero_grad(set_to_none=False)  # in place: an alias would now see the new gradient
        (0.5 * w @ A @ w - b @ w).backward()
        if k: seen.append(torch.sigmoid((opt.state[w]["previous_grad"] - w.grad).abs()))
        last = w.grad.clone(); opt.step()
        prev = opt.state[w]["previous_grad"]
        assert prev is not w.grad and prev.data_ptr() != w.grad.data_ptr()
        assert torch.equal(prev, last)
    xi = torch.stack(seen)
    assert xi.max() > 0.51, "friction stuck at 0.5: the previous gradient aliases the current one"
    # and the run is neither Adam at α/2 (what the aliased version computes) nor Adam at α
    ours, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.05, foreach=foreach), set_to_none=False)
    half, _ = _run_quadratic(lambda p: torch.optim.Adam(p, lr=0.025), set_to_none=False)
    assert (ours - half).abs().max() > 1e-3


def test_previous_gradient_survives_in_place_grad_mutation():
    w = nn.Parameter(torch.tensor([1.0, 2.0], dtype=F64)); opt = DiffGrad([w], lr=0.1)
    w.grad = torch.tensor([0.3, -0.4], dtype=F64); opt.step()
    w.grad.mul_(100.0)
    assert opt.state[w]["previous_grad"].tolist() == [0.3, -0.4]


# ---------------------------------------------------------------------------- peer libraries (test-only references)
@pytest.mark.ref
@pytest.mark.parametrize("module, cls", [("torch_optimizer", "DiffGrad"), ("pytorch_optimizer", "DiffGrad")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_peer_implementation(module, cls, seed):
    peer = getattr(require_ref(module), cls)
    for betas in ((0.9, 0.999), (0.95, 0.99)):
        ours, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.03, betas=betas), steps=50, seed=seed)
        ref, _ = _run_quadratic(lambda p: peer(p, lr=0.03, betas=betas), steps=50, seed=seed)
        assert (ours - ref).abs().max().item() < 1e-6


def test_device_and_dtype_follow_parameters(device):
    w, opt = _run_quadratic(lambda p: DiffGrad(p, lr=0.05), steps=10, device=device)
    st = opt.state[opt.param_groups[0]["params"][0]]
    assert st["exp_avg"].device.type == device.type and st["previous_grad"].dtype == F64
    ref, _ = _run_quadratic(lambda p: DiffGrad(p, lr=0.05, foreach=False), steps=10, device=device)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- synthetic functions
def _fd(fn, x, h=1e-6):
    return (fn(x + h) - fn(x - h)) / (2 * h)


@pytest.mark.parametrize("name", ["F1", "F2", "F3"])
def test_autograd_gradient_matches_finite_differences(name):
    x = torch.linspace(-1.4, 1.4, 281, dtype=F64)
    kinks = torch.tensor([-0.9, -0.5, -0.4, 0.0, 0.4, 0.5], dtype=F64)
    x = x[(x.unsqueeze(1) - kinks).abs().min(1).values > 1e-3]
    torch.testing.assert_close(synthetic_grad(name, x), _fd(SYNTHETIC[name], x), rtol=1e-6, atol=1e-6)


def _paper_f1(x): return np.where(x <= 0, (x + 0.3) ** 2, (x - 0.2) ** 2 + 0.05)
def _paper_f2(x): return np.where(x <= -0.9, -40 * x - 35.15, x ** 3 + x * np.sin(8 * x) + 0.85)
def _paper_f3(x):
    a = np.abs(x)
    return np.where(a > 0.5, x ** 2, np.where(a > 0.4, 0.75 - a, 7 * a / 8))


@pytest.mark.parametrize("name, paper", [("F1", _paper_f1), ("F2", _paper_f2), ("F3", _paper_f3)])
def test_synthetic_functions_follow_the_papers_definitions(name, paper):
    "The library's F1–F3 against the definitions written independently in NumPy, breakpoints included."
    x = np.concatenate([np.linspace(-1.5, 1.5, 3001), [-0.9, -0.5, -0.4, 0.0, 0.4, 0.5]])
    np.testing.assert_allclose(SYNTHETIC[name](torch.tensor(x, dtype=F64)).numpy(), paper(x), rtol=0, atol=1e-14)


def _minimise(fn, lo, hi):
    "scipy's bounded scalar minimiser of the library function on [lo, hi]."
    res = scipy.optimize.minimize_scalar(lambda v: fn(torch.tensor([v], dtype=F64)).item(), bounds=(lo, hi),
                                         method="bounded", options=dict(xatol=1e-10))
    return res.x, res.fun


def test_synthetic_minima_match_closed_forms():
    t = lambda v: torch.tensor([v], dtype=F64)
    # F1: global minimum −0.3 (value 0), local 0.2 (value 0.05), from the definition
    for lo, hi, x_star, f_star in ((-1.0, 0.0, -0.3, 0.0), (0.0, 1.0, 0.2, 0.05)):
        x_min, f_min = _minimise(f1, lo, hi)
        assert abs(x_min - x_star) < 1e-6 and abs(f_min - f_star) < 1e-10
    # F2: the global minimum is the root of the derivative 3x² + sin 8x + 8x cos 8x on [−0.8, −0.5] (brentq)
    root = scipy.optimize.brentq(lambda x: 3 * x * x + math.sin(8 * x) + 8 * x * math.cos(8 * x), -0.8, -0.5, xtol=1e-14)
    x_min, f_min = _minimise(f2, -0.89, -0.3)
    assert abs(x_min - root) < 1e-6 and abs(f_min - _paper_f2(np.array(root))) < 1e-12 and 0 < f_min < 1e-3
    assert abs(synthetic_grad("F2", t(root)).item()) < 1e-12 and abs(root + 0.643) < 1e-3
    # F2's local minimum at 0: zero slope, curvature 16 = 6x + 16 cos 8x − 64x sin 8x at 0 (second differences)
    h = 1e-4
    curv = (f2(t(h)) + f2(t(-h)) - 2 * f2(t(0.0))).item() / h ** 2
    assert abs(synthetic_grad("F2", t(0.0)).item()) < 1e-14 and abs(curv - 16) < 1e-3
    # F2 jumps at −0.9: the linear piece's value there, and the cubic piece's limit from the right
    assert abs(f2(t(-0.9)).item() - 0.85) < 1e-12
    assert abs(f2(t(-0.9 + 1e-12)).item() - ((-0.9) ** 3 - 0.9 * math.sin(-7.2) + 0.85)) < 1e-9
    # F3: global minimum 0 at 0; kinked local minima at ±0.5 (slopes ∓1 inside, ±1 outside, by finite differences)
    x_min, f_min = _minimise(f3, -0.3, 0.3)
    assert abs(x_min) < 1e-6 and f_min < 1e-6
    for c in (-0.5, 0.5):
        inner, outer = c - math.copysign(h, c), c + math.copysign(h, c)
        assert abs((f3(t(c)) - f3(t(inner))).item() / h - (-1.0)) < 1e-8
        assert abs((f3(t(outer)) - f3(t(c))).item() / h - 1.0) < 1e-3
        assert abs(f3(t(c)).item() - 0.25) < 1e-15


# ---------------------------------------------------------------------------- trajectories and the claims
def test_trajectories_equal_optimizer_loops():
    pair = compute_trajectories("F1", lr=0.1, betas=(0.95, 0.999), steps=120, device="cpu")
    for meth, make in (("adam", lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.95, 0.999))),
                       ("diffgrad", lambda p: DiffGrad(p, lr=0.1, betas=(0.95, 0.999)))):
        x = nn.Parameter(torch.tensor([-1.0], dtype=F64)); opt = make([x]); xs = [-1.0]
        for _ in range(120):
            opt.zero_grad(); f1(x).sum().backward(); opt.step(); xs.append(x.item())
        np.testing.assert_array_equal(pair[meth].x, np.array(xs))
    np.testing.assert_array_equal(compute_trajectory("F1", method="adam", steps=120, device="cpu").x, pair["adam"].x)


def test_trajectory_friction_matches_definition():
    tr = compute_trajectory("F2", method="diffgrad", steps=50)
    prev = np.concatenate([[0.0], tr.grad[:-1]])
    np.testing.assert_allclose(tr.friction, 1 / (1 + np.exp(-np.abs(prev - tr.grad))), rtol=0, atol=1e-14)
    assert np.all(compute_trajectory("F2", method="adam", steps=5).friction == 1.0)
    np.testing.assert_allclose(tr.value, f2(torch.tensor(tr.x)).numpy(), rtol=0, atol=1e-14)


def test_paper_claim_f1_f2():
    for name, local, glob in (("F1", 0.2, -0.3), ("F2", 0.0, -0.643)):
        pair = compute_trajectories(name, x0=-1.0, lr=0.1, betas=(0.95, 0.999), steps=300)
        assert abs(pair["adam"].x[-1] - local) < 5e-4 and abs(pair["diffgrad"].x[-1] - glob) < 5e-4


def test_loss_scale_turns_diffgrad_into_adam():
    big = compute_trajectories("F1", loss_scale=100.0)
    assert abs(big["diffgrad"].x[-1] - big["adam"].x[-1]) < 1e-2
    small, one = compute_trajectories("F1", loss_scale=0.01), compute_trajectories("F1")
    np.testing.assert_allclose(small["adam"].x, one["adam"].x, atol=1e-4)
    assert abs(small["diffgrad"].x[-1] + 0.3) < 1e-2


def test_constant_gradient_gives_half_adam_steps():
    pair = compute_trajectories(lambda x: 3.0 * x, 0.0, steps=10)
    np.testing.assert_allclose(pair["diffgrad"].steps[1:], 0.5 * pair["adam"].steps[1:], rtol=1e-12)


def test_figures_and_explorer():
    fig = diffgrad_figure("F2", x0=-1.0, lr=0.1, loss_scale=10.0, steps=50)
    assert isinstance(fig, go.Figure) and len(fig.data) == 8
    anim = animate_trajectories({"F1": compute_trajectories("F1", steps=20)}, every=5)
    assert len(anim.frames) == 5 and len(anim.frames[2].data) == 2
    ex = explore_diffgrad()
    assert isinstance(ex, Explorer) and set(ex.controls) >= {"fn", "x0", "lr", "beta1", "beta2", "loss_scale"}
    assert ex.update(fn="F3") is ex.update(fn="F3")
    a, b = ex.update(loss_scale=1.0), ex.update(loss_scale=100.0)
    assert a is not b and a.data[-1].y.tolist() != b.data[-1].y.tolist()  # diffGrad's ξ_t moves with the scale
    with pytest.raises(ValueError, match="`fn`"): diffgrad_figure("F4")


def _runs(steps=60):
    out = {}
    for name in ("F1", "F3"):
        pair = compute_trajectories(name, steps=steps)
        out[name] = {"Adam": pair["adam"], "diffGrad": pair["diffgrad"],
                     "Adam α/2": compute_trajectory(name, method="adam", lr=0.05, steps=steps)}
    return out


def test_claim_and_step_figures():
    runs = _runs()
    fig = plot_claim(runs, names=("F1", "F3"), title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 4 and len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match="`runs`"): plot_claim(runs, names=("F2",))
    fig = plot_steps(runs, "F1", upto=40)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 3 and len(fig.axes[0].lines[0].get_xdata()) == 40
    with pytest.raises(ValueError, match="`name`"): plot_steps(runs, "F2")
    with pytest.raises(ValueError, match="`upto`"): plot_steps(runs, "F1", upto=0)


def test_loss_scale_slider():
    fig = loss_scale_slider_figure((0.1, 100.0), steps=80, active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 2 + 2 * 2
    big = compute_trajectories("F1", loss_scale=100.0, steps=80)
    np.testing.assert_array_equal(fig.data[5].y, big["diffgrad"].x)
    assert fig.data[3].y.tolist() != fig.data[5].y.tolist()
    with pytest.raises(ValueError, match="`scales`"): loss_scale_slider_figure((0.0,))


def test_train_cnn_runs_every_optimizer():
    for name in OPTIMIZERS:
        r = train_cnn(name, 0.01 if name != "SGDM" else 0.03, seed=0, steps=20, n=128, device="cpu")
        assert r.train_loss.shape == (20,) and np.isfinite(r.val_loss) and 0 <= r.val_accuracy <= 1
        assert isinstance(r, CNNRun) and r.run_seed == 0


def test_train_cnn_seed_takes_a_generator_and_scales():
    a = train_cnn("Adam", 0.01, seed=torch.Generator().manual_seed(5), steps=5, n=64, device="cpu")
    assert isinstance(a.run_seed, int) and a.run_seed >= 0
    b = train_cnn("Adam", 0.01, seed=a.run_seed, steps=5, n=64, device="cpu")
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    wide = train_cnn("Adam", 0.01, steps=3, n=32, batch_size=16, image_size=12, width=4, device="cpu")
    assert wide.train_loss.shape == (3,)
    with pytest.raises(TypeError, match="`seed`"): train_cnn("Adam", 0.01, seed=1.5, steps=2, n=16, batch_size=8, device="cpu")


def test_compare_optimizers_and_plot_cnn():
    runs = compare_optimizers({"Adam": 0.01, "diffGrad": 0.01}, seeds=(0, 1), steps=25, n=64, device="cpu")
    assert list(runs) == ["Adam", "diffGrad"] and [r.run_seed for r in runs["Adam"]] == [0, 1]
    np.testing.assert_array_equal(runs["Adam"][1].train_loss,
                                  train_cnn("Adam", 0.01, seed=1, steps=25, n=64, device="cpu").train_loss)
    fig = plot_cnn(runs, window=5)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4
    with pytest.raises(ValueError, match="`window`"): plot_cnn(runs, window=0)
    with pytest.raises(TypeError, match="`lrs`"): compare_optimizers([("Adam", 0.01)])
    with pytest.raises(ValueError, match="`lrs`"): compare_optimizers({"Lion": 0.01}, seeds=(0,), steps=2, n=16)


# ---------------------------------------------------------------------------- bad input
def test_bad_hyperparameters():
    w = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="`lr`"): DiffGrad(w, lr=0.0)
    with pytest.raises(TypeError, match="`lr`"): DiffGrad(w, lr="fast")
    with pytest.raises(ValueError, match="`betas`"): DiffGrad(w, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="`betas`"): DiffGrad(w, betas=(0.9, -0.1))
    with pytest.raises(ValueError, match="`betas`"): DiffGrad(w, betas=(0.9,))
    with pytest.raises(ValueError, match="`eps`"): DiffGrad(w, eps=-1.0)
    with pytest.raises(ValueError, match="`weight_decay`"): DiffGrad(w, weight_decay=-1.0)
    with pytest.raises(TypeError, match="`friction`"): DiffGrad(w, friction=1)
    with pytest.raises(TypeError, match="`foreach`"): DiffGrad(w, foreach="yes")


def test_bad_trajectory_input():
    with pytest.raises(ValueError, match="`fn`"): compute_trajectories("F4")
    with pytest.raises(TypeError, match="`fn`"): compute_trajectories(3)
    with pytest.raises(ValueError, match="`methods`"): compute_trajectories("F1", methods=("adam", "sgd"))
    with pytest.raises(ValueError, match="`methods`"): compute_trajectories("F1", methods=("adam", "adam"))
    with pytest.raises(ValueError, match="`method`"): compute_trajectory("F1", method="rmsprop")
    with pytest.raises(ValueError, match="`steps`"): compute_trajectories("F1", steps=0)
    with pytest.raises(ValueError, match="`loss_scale`"): compute_trajectories("F1", loss_scale=0.0)
    with pytest.raises(ValueError, match="`lr`"): compute_trajectories("F1", lr=-0.1)
    with pytest.raises(ValueError, match="`x0`"): compute_trajectories("F1", x0=float("nan"))
    with pytest.raises(ValueError, match="`name`"): synthetic_grad("F9", torch.zeros(2, dtype=F64))
    with pytest.raises(TypeError, match="`x`"): synthetic_grad("F1", [0.0])
    with pytest.raises(ValueError, match="`optimizer`"): train_cnn("lion", 0.01, steps=2, n=16, device="cpu")
    with pytest.raises(ValueError, match="`every`"): animate_trajectories({"F1": compute_trajectories("F1", steps=5)}, every=0)


def test_adam_at_half_the_step_lands_where_diffgrad_lands():
    "The chapter's point: on F1–F3 at the paper's settings, ξ ≈ 0.5 makes diffGrad Adam at α/2."
    for name in ("F1", "F2", "F3"):
        diff = compute_trajectory(name, method="diffgrad", lr=0.1, betas=(0.95, 0.999), steps=300)
        half = compute_trajectory(name, method="adam", lr=0.05, betas=(0.95, 0.999), steps=300)
        assert abs(diff.x[-1] - half.x[-1]) < 0.02


def test_tune_lr_picks_the_lowest_mean_held_out_loss():
    search = tune_lr({"Adam": (1e-3, 3e-2), "diffGrad": (3e-3,)}, seeds=(0, 1), steps=15, n=64, device="cpu")
    assert isinstance(search, LRSearch) and set(search.runs) == {"Adam", "diffGrad"}
    runs = {lr: [train_cnn("Adam", lr, seed=s, steps=15, n=64, device="cpu") for s in (0, 1)] for lr in (1e-3, 3e-2)}
    means = {lr: np.mean([r.val_loss for r in rs]) for lr, rs in runs.items()}
    assert search.val_loss()["Adam"] == pytest.approx(means, abs=0)
    assert search.best() == {"Adam": min(means, key=means.get), "diffGrad": 3e-3}


def test_diffgrad_at_equal_step_trains_more_slowly_than_adam_on_the_cnn():
    "On the tiny CNN at Adam's step size, diffGrad's late training loss is higher than Adam's on every seed."
    for s in (10, 11, 12):
        adam = train_cnn("Adam", 3e-3, seed=s, steps=150, n=512, device="cpu")
        diff = train_cnn("diffGrad", 3e-3, seed=s, steps=150, n=512, device="cpu")
        assert diff.train_loss[-30:].mean() > adam.train_loss[-30:].mean()


# ---------------------------------------------------------------------------- bad-input probes (tests/test_bad_input.py)
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_T3, _T4 = torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64)
_TR = compute_trajectories("F1", steps=5)
_RUNS = {"F1": {"Adam": _TR["adam"], "diffGrad": _TR["diffgrad"]}}
_CNN = {"Adam": [train_cnn("Adam", 0.01, steps=3, n=16, batch_size=8, device="cpu")]}
_SMALL = dict(steps=2, n=16, batch_size=8, device="cpu")
_BETA = [NAN, -0.1, 1.0, INF, "0.9"]


def _lists(n=2):
    return [[torch.zeros(3, dtype=F64) for _ in range(n)] for _ in range(5)]


PROBES = [
    Probe(average_grad_, dict(exp_avg=_T3.clone(), grad=_T3, beta1=0.9), dict(exp_avg=["m"], grad=[_T4, "g"], beta1=_BETA)),
    Probe(average_sq_grad_, dict(exp_avg_sq=_T3.clone(), grad=_T3, beta2=0.999),
          dict(exp_avg_sq=["v"], grad=[_T4, "g"], beta2=_BETA)),
    Probe(friction_, dict(prev_grad=_T3.clone(), grad=_T3), dict(prev_grad=["p"], grad=[_T4, "g"])),
    Probe(remember_grad_, dict(prev_grad=_T3.clone(), grad=_T3), dict(prev_grad=["p"], grad=[_T4, "g"])),
    Probe(adam_denominator, dict(exp_avg_sq=_T3, step=1, beta2=0.999, eps=1e-8),
          dict(exp_avg_sq=["v"], step=[*SIZES, 1.5], beta2=_BETA, eps=[NAN, -1.0, INF])),
    Probe(apply_update_, dict(param=_T3.clone(), numerator=_T3, denominator=_T3 + 1, step=1, lr=0.1, beta1=0.9),
          dict(param=["p"], numerator=[_T4, "n"], denominator=[_T4], step=[*SIZES, 1.5], lr=[NAN, 0.0, -0.1, INF],
               beta1=_BETA)),
    Probe(diffgrad_step_, dict(param=_T3.clone(), grad=_T3, exp_avg=_T3.clone(), exp_avg_sq=_T3.clone(),
                               prev_grad=_T3.clone(), step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, friction=True),
          dict(param=["p"], grad=[_T4], exp_avg=[_T4], exp_avg_sq=[_T4], prev_grad=[_T4, "g"], step=SIZES,
               lr=[NAN, 0.0], beta1=_BETA, beta2=_BETA, eps=[NAN, -1.0], friction=[1, "yes"])),
    Probe(diffgrad_step_foreach_, dict(zip(("params", "grads", "exp_avgs", "exp_avg_sqs", "prev_grads"), _lists()),
                                       steps=[1, 1], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, friction=True),
          dict(params=["p", [_T3]], grads=[[_T3, _T4], _T3], exp_avgs=[[_T3]], exp_avg_sqs=[[_T4, _T4]],
               prev_grads=[[_T3, "g"]], steps=[[1], [0, 1], [1, 1.5], 1], lr=[NAN, -0.1], beta1=_BETA, beta2=_BETA,
               eps=[NAN, -1.0], friction=[0, "no"]),
          named={"params": "(params|grads)"}),
    Probe(foreach_blocks, dict(tensors=_lists(), steps=[1, 1], block=4),
          dict(tensors=["t", [], [[_T3]], [["t", "u"]]], steps=[[1], "s"], block=[*SIZES, 2.5]),
          named={"steps": "(steps|tensors)"}),
    Probe(DiffGrad, dict(params=[nn.Parameter(torch.zeros(2))], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                         friction=True, foreach=True),
          dict(params=["params", torch.zeros(2), [], 3], lr=[NAN, INF, 0.0, -1.0, "fast"],
               betas=[(0.9,), (1.0, 0.9), (0.9, 1.0), (0.9, NAN), (-0.1, 0.9), "0.9", 0.9],
               eps=[NAN, INF, -1.0], weight_decay=[NAN, INF, -1.0], friction=[1, "yes"], foreach=["yes", None])),
    *(Probe(f, dict(x=_T3), dict(x=[torch.full((3,), NAN), torch.zeros(3, dtype=torch.long), [0.0], "x"]))
      for f in (f1, f2, f3)),
    Probe(synthetic_grad, dict(name="F1", x=_T3),
          dict(name=[UNKNOWN, 1], x=[torch.full((3,), NAN), torch.zeros(3, dtype=torch.long), [0.0]])),
    Probe(compute_trajectories, dict(fn="F1", x0=-1.0, methods=("adam",), steps=3, lr=0.1, betas=(0.95, 0.999), eps=1e-8,
                                     loss_scale=1.0, grad_fn=None, dtype=F64, device="cpu"),
          dict(fn=[UNKNOWN, 3], x0=[NAN, INF, "x"], methods=[(UNKNOWN,), ("adam", "adam"), (), 3], steps=[*SIZES, 1.5],
               lr=[NAN, 0.0, -0.1], betas=[(0.95,), (1.0, 0.9), (NAN, 0.9)], eps=[NAN, -1.0],
               loss_scale=[NAN, 0.0, -1.0, INF], grad_fn=["grad"], dtype=["float64", torch.int64], device=[UNKNOWN])),
    Probe(compute_trajectory, dict(fn="F1", x0=-1.0, method="adam", steps=3),
          dict(fn=[UNKNOWN, 3], x0=[NAN], method=[UNKNOWN, 3], steps=SIZES)),
    Probe(plot_claim, dict(runs=_RUNS, names=("F1",), title="t"),
          dict(runs=["runs", {}, {"F1": "run"}, {"F1": {"Adam": "trajectory"}}], names=[("F9",), (), "F1"], title=[3])),
    Probe(plot_steps, dict(runs=_RUNS, name="F1", upto=3),
          dict(runs=["runs", {}, {"F1": {"Adam": 3}}], name=[UNKNOWN], upto=[*SIZES, 1.5])),
    Probe(animate_trajectories, dict(runs=_RUNS, every=2, trail=1, colors=("red", "blue")),
          dict(runs=["runs", {}, {"F1": {"Adam": 3}}], every=[*SIZES, 1.5], trail=[-1, 1.5], colors=[("red",), "red"])),
    Probe(train_cnn, dict(optimizer="Adam", lr=0.01, seed=0, **_SMALL, noise=1.0, image_size=8, width=4),
          dict(optimizer=[UNKNOWN, 3], lr=[NAN, 0.0, -0.1, INF], seed=[-1, 1.5, "0"], steps=[*SIZES, 1.5],
               batch_size=[*SIZES, 17], n=[*SIZES, 2], noise=[NAN, -1.0], image_size=[*SIZES, 1], width=SIZES,
               device=[UNKNOWN])),
    Probe(plot_cnn, dict(runs=_CNN, window=2, title="t"),
          dict(runs=["runs", {}, {"Adam": []}, {"Adam": ["run"]}], window=[*SIZES, 4, 1.5], title=[3])),
    Probe(compare_optimizers, dict(lrs={"Adam": 0.01}, seeds=(0,), **_SMALL),
          dict(lrs=[[("Adam", 0.01)], {}, {UNKNOWN: 0.01}, {"Adam": NAN}, {"Adam": -0.1}, {"Adam": 0.01, "diffGrad": 0.0}],
               seeds=[(), (-1,), (1.5,), 0, "0"], progress=["yes", 3])),
    Probe(tune_lr, dict(grid={"Adam": (0.01,)}, seeds=(0,), **_SMALL),
          dict(grid=["grid", {}, {UNKNOWN: (0.01,)}, {"Adam": ()}, {"Adam": (NAN,)}, {"Adam": 0.01}, {"Adam": (0.01, -1.0)}],
               seeds=[(), (-1,), 0], progress=["yes"])),
    Probe(loss_scale_slider_figure, dict(scales=(1.0, 10.0), fn="F1", active=0, steps=3),
          dict(scales=[(), (NAN,), (0.0,), (-1.0,), "1"], fn=[UNKNOWN], active=[-1, 2, 1.5])),
    Probe(diffgrad_figure, dict(fn="F1", x0=-1.0, lr=0.1, beta1=0.95, beta2=0.999, loss_scale=1.0, steps=3, device="cpu"),
          dict(fn=[UNKNOWN, 3], x0=[NAN, "x"], lr=[NAN, 0.0], beta1=_BETA, beta2=_BETA, loss_scale=[NAN, 0.0],
               steps=SIZES, device=[UNKNOWN])),
]
