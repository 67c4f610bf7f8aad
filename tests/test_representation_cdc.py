"""Reference tests for gradviz.representation.cdc: the folded kernel against the unfolded definition, nn.Conv2d and the
official two-convolution form; bias, offset invariance, gradients; contrast depth loss, attention, metrics; the sweep's
central finding at a small setting; figures, explorer and bad input (float64 where it matters)."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from gradviz.core import as_generator
from gradviz.data import count_parameters
from gradviz.representation.cdc import (ATTACKS, CDConv2d, LayerResponses, MiniCDCN, SpatialAttention, SpoofErrors,
                                        SpoofImages, ThetaSweep, acer, cdc_figure, cdc_reference, contrast_depth,
                                        contrast_depth_loss, depth_scores, dev_threshold, explore_cdc, folded_kernel,
                                        layer_responses, live_spoof_images, plot_acer_vs_theta, plot_depth_predictions,
                                        plot_layer_responses, responses_figure, theta_sweep, train_cdcn)
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64


def _randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=as_generator(seed), dtype=dtype)


def _loop_cdc(x, w, theta, stride, padding, bias=None):
    "The definition pixel by pixel, groups = 1, zero padding: Σₙ w(pₙ)(x(p₀+pₙ) − θ x(p₀))."
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = F.pad(x, (padding,) * 4)
    ho, wo = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    out = torch.zeros(n, o, ho, wo, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            diff = win - theta * win[:, :, k // 2:k // 2 + 1, k // 2:k // 2 + 1]
            out[:, :, i, j] = torch.einsum("nckl,ockl->no", diff, w)
    return out if bias is None else out + bias[:, None, None]


def _official(x, w, theta, stride=1, padding=1, groups=1, bias=None):
    "The official Conv2d_cd forward: conv(x, W) − θ·conv1×1(x, ΣW), the bias passed to both, 1×1 padding 0."
    out = F.conv2d(x, w, bias, stride, padding, groups=groups)
    return out - theta * F.conv2d(x, w.sum((2, 3), keepdim=True), bias, stride, 0, groups=groups)


# ---------------------------------------------------------------- the layer
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_theta_zero_is_conv2d_bit_for_bit(dtype):
    x = _randn(2, 3, 10, 10, dtype=dtype)
    for stride, padding, groups in ((1, 1, 1), (2, 0, 1), (1, 1, 3)):
        c = CDConv2d(3, 6, stride=stride, padding=padding, groups=groups, theta=0.0, bias=True, dtype=dtype)
        ref = nn.Conv2d(3, 6, 3, stride, padding, groups=groups, dtype=dtype)
        ref.load_state_dict({"weight": c.weight.detach(), "bias": c.bias.detach()})
        assert torch.equal(c(x), ref(x))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("groups,out", [(1, 6), (4, 4)])
@pytest.mark.parametrize("theta", [0.3, 0.7, 1.0])
def test_equals_official_two_convolutions_at_padding_one(stride, groups, out, theta):
    x = _randn(2, 4, 9, 9, seed=1)
    c = CDConv2d(4, out, stride=stride, groups=groups, theta=theta, seed=2, dtype=F64)
    torch.testing.assert_close(c(x), _official(x, c.weight, theta, stride, groups=groups), rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError):  # at padding 0 the two outputs do not even have the same size
        _official(x, c.weight, theta, stride, padding=0, groups=groups)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (F64, 1e-12)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("groups,out", [(1, 5), (4, 4)])
def test_equals_unfold_reference(dtype, tol, stride, padding, groups, out):
    x = _randn(2, 4, 11, 10, seed=3, dtype=dtype)
    for theta in (0.0, 0.5, 0.7, 1.0):
        c = CDConv2d(4, out, stride=stride, padding=padding, groups=groups, theta=theta, bias=True, seed=4, dtype=dtype)
        want = cdc_reference(x, c.weight, theta, stride, padding, groups, c.bias)
        torch.testing.assert_close(c(x), want, rtol=0, atol=tol)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0), (2, 0)])
def test_reference_equals_a_pixel_loop(stride, padding):
    "cdc_reference (unfold) against the definition written pixel by pixel: the reference itself is checked."
    x, w, b = _randn(2, 3, 7, 8, seed=5), _randn(4, 3, 3, 3, seed=6), _randn(4, seed=7)
    torch.testing.assert_close(cdc_reference(x, w, 0.6, stride, padding, bias=b), _loop_cdc(x, w, 0.6, stride, padding, b),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["replicate", "reflect", "circular"])
def test_padding_modes_match_reference(mode):
    x = _randn(1, 2, 8, 8, seed=8)
    c = CDConv2d(2, 3, theta=0.7, padding_mode=mode, dtype=F64)
    torch.testing.assert_close(c(x), cdc_reference(x, c.weight, 0.7, padding_mode=mode), rtol=0, atol=1e-12)


def test_larger_kernel_folds_at_its_centre():
    x = _randn(1, 2, 9, 9, seed=9)
    c = CDConv2d(2, 3, kernel_size=5, padding=2, theta=0.4, dtype=F64)
    torch.testing.assert_close(c(x), _loop_cdc(x, c.weight.detach(), 0.4, 1, 2), rtol=0, atol=1e-12)
    torch.testing.assert_close(folded_kernel(c.weight, 1.0).sum((2, 3)), torch.zeros(3, 2, dtype=F64), rtol=0, atol=1e-14)


def test_bias_is_added_once_and_the_official_bias_is_one_minus_theta():
    x, b = _randn(2, 4, 8, 8, seed=10), _randn(6, seed=11)
    c = CDConv2d(4, 6, theta=0.7, bias=True, dtype=F64)
    with torch.no_grad(): c.bias.copy_(b)
    no_bias = F.conv2d(x, folded_kernel(c.weight, 0.7), None, 1, 1)
    torch.testing.assert_close(c(x), no_bias + b[:, None, None], rtol=0, atol=1e-12)
    with torch.no_grad(): c.bias.copy_(0.3 * b)
    torch.testing.assert_close(c(x), _official(x, c.weight, 0.7, bias=b), rtol=0, atol=1e-12)


def test_theta_one_ignores_constant_offsets():
    x = torch.rand(2, 3, 16, 16, generator=as_generator(12))
    zero = CDConv2d(3, 8, theta=1.0).requires_grad_(False)
    rep = CDConv2d(3, 8, theta=1.0, padding_mode="replicate").requires_grad_(False)
    for c in (-0.3, 0.5, 2.0):
        assert float((zero(x + c) - zero(x))[..., 1:-1, 1:-1].abs().max()) < 1e-5
        assert float((rep(x + c) - rep(x)).abs().max()) < 1e-5
    assert float((zero(x + 0.5) - zero(x)).abs().max()) > 1e-2  # zero padding: the border sees a step
    half = CDConv2d(3, 8, theta=0.5, padding_mode="replicate", dtype=F64)
    x64, full = x.double(), CDConv2d(3, 8, theta=0.0, padding_mode="replicate", dtype=F64)
    with torch.no_grad(): full.weight.copy_(half.weight)
    torch.testing.assert_close(half(x64 + 1) - half(x64), 0.5 * (full(x64 + 1) - full(x64)), rtol=0, atol=1e-12)


def test_gradcheck_and_gradients_against_the_reference():
    c = CDConv2d(2, 3, stride=2, theta=0.6, bias=True, dtype=F64)
    x = _randn(1, 2, 6, 5, seed=13).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: F.conv2d(x, folded_kernel(w, 0.6), b, 2, 1), (x, c.weight, c.bias))
    gy = _randn(1, 3, 3, 3, seed=14)
    ours = torch.autograd.grad((c(x) * gy).sum(), (x, c.weight, c.bias))
    ref = torch.autograd.grad((cdc_reference(x, c.weight, 0.6, 2, 1, bias=c.bias) * gy).sum(), (x, c.weight, c.bias))
    for a, b in zip(ours, ref): torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # ∂L/∂W = vanilla gradient − θ · (centre-tap gradient of the vanilla layer) on every tap
    w = c.weight.detach().requires_grad_()
    g_van = torch.autograd.grad((F.conv2d(x.detach(), w, None, 2, 1) * gy).sum(), w)[0]
    g_cdc = torch.autograd.grad((F.conv2d(x.detach(), folded_kernel(w, 0.6), None, 2, 1) * gy).sum(), w)[0]
    torch.testing.assert_close(g_cdc, g_van - 0.6 * g_van[..., 1:2, 1:2], rtol=0, atol=1e-12)


def test_inference_reuses_the_folded_kernel_until_the_weight_changes():
    x = _randn(1, 2, 6, 6, seed=21)
    c = CDConv2d(2, 3, theta=0.7, dtype=F64)
    with torch.no_grad():
        first = c(x)
        assert c.kernel() is c.kernel()
        c.weight.mul_(2.0)  # an optimizer step or load_state_dict changes W in place
        torch.testing.assert_close(c(x), 2 * first, rtol=0, atol=1e-12)
        c.theta = 0.0
        torch.testing.assert_close(c(x), F.conv2d(x, c.weight, None, 1, 1), rtol=0, atol=1e-12)
    c.theta = 0.7
    assert c(x).requires_grad and c.kernel() is not c.kernel()  # with autograd: folded afresh, in the graph


def test_seeds_make_the_same_layer():
    a, b = CDConv2d(3, 4, seed=5), CDConv2d(3, 4, seed=as_generator(5))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, CDConv2d(3, 4, seed=6).weight)


# ---------------------------------------------------------------- loss, attention, model
def test_contrast_depth_by_hand():
    d = _randn(3, 6, 7, seed=15)
    hand = torch.stack([d[:, 1 + di:5 + di, 1 + dj:6 + dj] - d[:, 1:5, 1:6]
                        for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)], 1)
    torch.testing.assert_close(contrast_depth(d), hand, rtol=0, atol=1e-15)
    t = _randn(3, 6, 7, seed=16)
    torch.testing.assert_close(contrast_depth_loss(d, t), (hand - contrast_depth(t)).pow(2).mean(), rtol=0, atol=1e-15)
    assert float(contrast_depth_loss(d, d)) == 0
    assert abs(float(contrast_depth_loss(d + 2.5, t) - contrast_depth_loss(d, t))) < 1e-12


def test_attention_and_model_shapes():
    a = SpatialAttention(5, dtype=F64)(_randn(2, 6, 9, 9, seed=17))
    assert a.shape == (2, 1, 9, 9) and 0 < float(a.min()) and float(a.max()) < 1
    m = MiniCDCN(0.7, attention=True, device="cpu")
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 8, 8)
    assert 10_000 <= count_parameters(MiniCDCN(device="cpu")) <= 12_000
    assert MiniCDCN(depth_size=4, device="cpu")(torch.rand(1, 3, 64, 64)).shape == (1, 4, 4)
    assert all(c.theta == 0.3 for c in MiniCDCN(0.3, device="cpu").modules() if isinstance(c, CDConv2d))


# ---------------------------------------------------------------- data and metrics
def test_live_spoof_images():
    d = live_spoof_images(40, seed=3, device="cpu")
    assert isinstance(d, SpoofImages) and len(d) == 40 and d.images.shape == (40, 3, 32, 32)
    assert torch.equal(d.images, live_spoof_images(40, seed=as_generator(3), device="cpu").images)
    assert int(d.labels.sum()) == 20 and torch.equal(d.labels, (d.attack == 0).long())
    assert {ATTACKS[a] for a in d.attack.tolist()} == set(ATTACKS)
    assert float(d.depth[d.labels == 0].abs().max()) == 0 and torch.allclose(d.depth[d.labels == 1].amax((1, 2)),
                                                                            torch.ones(20))
    only = live_spoof_images(10, kinds=("replay",), seed=3, device="cpu")
    assert set(only.attack.tolist()) == {0, 2}
    plain, shifted = live_spoof_images(400, seed=4, device="cpu"), live_spoof_images(400, shift=True, seed=4, device="cpu")
    spread = lambda x: float(x.mean((1, 2, 3)).std())  # per-image brightness varies more after the shift
    assert spread(shifted.images) > 1.5 * spread(plain.images)
    assert live_spoof_images(4, size=64, seed=0, device="cpu").images.shape == (4, 3, 64, 64)


def _brute_threshold(s, y):
    "The equal-error threshold by a plain loop over candidates (ties: lower ACER, then lower t)."
    best = None
    for t in sorted(set(s.tolist())):
        ap = sum(1 for v, l in zip(s.tolist(), y.tolist()) if l == 0 and v > t) / int((y == 0).sum())
        bp = sum(1 for v, l in zip(s.tolist(), y.tolist()) if l == 1 and v <= t) / int((y == 1).sum())
        key = (abs(ap - bp), ap + bp, t)
        if best is None or key < best: best = key
    return best[2]


@pytest.mark.parametrize("seed", range(5))
def test_dev_threshold_and_acer_against_a_loop(seed):
    g = as_generator(seed)
    y = (torch.rand(60, generator=g) < 0.5).long()
    y[0], y[1] = 0, 1
    s = torch.randn(60, generator=g, dtype=F64) + 1.2 * y
    s[5] = s[6]  # a tie
    t = dev_threshold(s, y)
    assert t == _brute_threshold(s, y)
    e = acer(s, y, t)
    ap = sum(1 for v, l in zip(s.tolist(), y.tolist()) if l == 0 and v > t) / int((y == 0).sum())
    bp = sum(1 for v, l in zip(s.tolist(), y.tolist()) if l == 1 and v <= t) / int((y == 1).sum())
    assert e.apcer == pytest.approx(ap, abs=1e-12) and e.bpcer == pytest.approx(bp, abs=1e-12)
    assert e.acer == pytest.approx((ap + bp) / 2, abs=1e-12)


def test_depth_scores_restores_the_mode():
    m = MiniCDCN(device="cpu").train()
    x = torch.rand(5, 3, 32, 32)
    s = depth_scores(m, x, batch_size=2)
    assert m.training and s.shape == (5,)
    with torch.no_grad(): torch.testing.assert_close(s, m.eval()(x).mean((1, 2)))


# ---------------------------------------------------------------- the findings, at small settings
@pytest.fixture(scope="module")
def small_sweep():
    return theta_sweep((0.0, 1.0), (0,), device="cpu")


def test_central_finding_theta_zero_beats_theta_one_in_domain(small_sweep):
    "The chapter's finding (the paper's claim did not reproduce): θ = 0 has lower in-domain ACER than θ = 1."
    assert isinstance(small_sweep, ThetaSweep) and small_sweep.in_domain.shape == (2, 1)
    assert small_sweep.in_domain[0, 0] + 0.05 < small_sweep.in_domain[1, 0]
    assert (small_sweep.shifted > small_sweep.in_domain).all()


def test_layer_response_to_brightness_scales_with_one_minus_theta():
    r = {th: layer_responses(th) for th in (0.0, 0.5, 1.0)}
    b = {th: v.interior("cdc_bright") for th, v in r.items()}
    assert abs(b[0.5] - 0.5 * b[0.0]) < 1e-9 and b[1.0] < 1e-12
    assert min(v.interior("cdc_moire") for v in r.values()) > 0.5 * r[0.0].interior("cdc_moire")
    torch.testing.assert_close(r[1.0].vanilla_bright, r[0.0].cdc_bright)


def test_train_cdcn_is_deterministic_and_returns_eval_mode():
    d = live_spoof_images(32, seed=1, device="cpu")
    a, b = train_cdcn(d, 0.7, epochs=1, seed=3), train_cdcn(d, 0.7, epochs=1, seed=3)
    assert not a.training
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(p, q), n


# ---------------------------------------------------------------- figures and explorer
def test_figures(small_sweep):
    assert isinstance(plot_acer_vs_theta(small_sweep, title="t"), Figure)
    d, m = small_sweep.data[0]["test"], small_sweep.models[0.0, 0]
    fig = plot_depth_predictions(m, d, 1, 0.1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * len(ATTACKS)
    resp = layer_responses(0.7, size=16)
    assert isinstance(resp, LayerResponses) and isinstance(plot_layer_responses(resp), Figure)
    rf = responses_figure((0.0, 0.5, 1.0), active=1, size=16)
    assert isinstance(rf, go.Figure) and len(rf.data) == 6 and len(rf.layout.sliders[0].steps) == 3


def test_explorer(small_sweep):
    m = small_sweep.models[1.0, 0]
    cache = {(1.0, False, True): (m, 0.05)}
    fig = cdc_figure(theta=1.0, artifact="replay", cache=cache)
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == ["image", "heatmap", "heatmap"]
    assert np.asarray(fig.data[1].z).shape == (8, 8) and fig.data[0].z.shape == (32, 32, 3)
    ex = explore_cdc(cache)
    first = ex.update(theta=1.0, brightness=0.2)
    assert ex.update(theta=1.0, brightness=0.2) is first and ex.update(brightness=-0.2) is not first
    assert ex.controls["theta"].costly and not ex.controls["brightness"].costly


# ---------------------------------------------------------------- bad input
_W = _randn(4, 2, 3, 3, seed=20, dtype=torch.float32)
_X = torch.rand(2, 2, 6, 6)
_D = torch.rand(2, 5, 5)
_S, _Y = torch.tensor([0.9, 0.6, 0.2, 0.5]), torch.tensor([1, 1, 0, 0])
_DATA = live_spoof_images(4, seed=0, device="cpu")
_MODEL = MiniCDCN(0.7, width=2, device="cpu").eval()
_CACHE = {(0.7, False, True): (_MODEL, 0.05)}
_RESP = layer_responses(0.7, size=8)
_SWEEP = ThetaSweep((0.0,), (0,), np.zeros((1, 1)), np.zeros((1, 1)), {}, {})
_THETA = [-0.1, 1.5, NAN, "0.5"]
_SEED = [-1, 0.5]

PROBES = [
    Probe(folded_kernel, dict(weight=_W, theta=0.7),
          dict(weight=["w", _W[0], torch.ones(1, 1, 2, 2), _W.long(), _W.clone().fill_(NAN)], theta=_THETA)),
    Probe(CDConv2d, dict(in_ch=2, out_ch=4, device="cpu"),
          dict(in_ch=SIZES, out_ch=SIZES, kernel_size=[0, 2, -1], stride=SIZES, padding=[-1], groups=[0, 3],
               theta=_THETA, bias=["yes"], padding_mode=[UNKNOWN], seed=_SEED, device=[UNKNOWN], dtype=["float32"])),
    Probe(cdc_reference, dict(x=_X, weight=_W, theta=0.5),
          dict(x=["x", _X[0], _X.long(), _X.clone().fill_(INF)], weight=["w", _W[0], torch.ones(4, 2, 2, 2)],
               theta=_THETA, stride=SIZES, padding=[-1], groups=[0, 3], bias=[torch.zeros(5), "b"],
               padding_mode=[UNKNOWN])),
    Probe(contrast_depth, dict(depth=_D), dict(depth=["d", _D[0], torch.zeros(1, 2, 2), _D.clone().fill_(NAN)])),
    Probe(contrast_depth_loss, dict(pred=_D, target=_D),
          dict(pred=["p", _D[0], _D[:1], _D.long()], target=["t", _D[0], _D.clone().fill_(NAN)])),
    Probe(SpatialAttention, dict(kernel_size=3, device="cpu"),
          dict(kernel_size=[0, 2, -1], seed=_SEED, device=[UNKNOWN], dtype=["float32"])),
    Probe(MiniCDCN, dict(theta=0.7, width=2, device="cpu"),
          dict(theta=_THETA, width=SIZES, attention=["yes"], depth_size=[0, 2], seed=_SEED, device=[UNKNOWN],
               dtype=["float32"])),
    Probe(live_spoof_images, dict(n=4, device="cpu"),
          dict(n=[0, -1, 1], size=[0, 7], kinds=[(), (UNKNOWN,), "print"], shift=["yes"], seed=_SEED,
               device=[UNKNOWN])),
    Probe(acer, dict(scores=_S, labels=_Y, threshold=0.5),
          dict(scores=["s", _S[None], _Y, torch.tensor([0.9, NAN, 0.2, 0.5]), _S[:3]],
               labels=[torch.ones(4), torch.tensor([1, 2, 0, 0]), _Y[:3], "y"], threshold=[NAN, "t"])),
    Probe(dev_threshold, dict(scores=_S, labels=_Y),
          dict(scores=["s", _S[None], torch.tensor([0.9, INF, 0.2, 0.5])], labels=[torch.zeros(4), _Y[:2]])),
    Probe(depth_scores, dict(model=_MODEL, images=_DATA.images),
          dict(model=["model"], images=["x", _DATA.images[0], _DATA.images.clone().fill_(NAN)], batch_size=SIZES)),
    Probe(train_cdcn, dict(data=_DATA, epochs=1, batch_size=2, width=2),
          dict(data=["data", _DATA.images], theta=_THETA, epochs=SIZES, lr=[0.0, NAN], batch_size=[0, 100],
               cdl=["yes"], attention=["yes"], width=SIZES, seed=_SEED, progress=["bar"])),
    Probe(theta_sweep, dict(thetas=(0.5,), seeds=(0,), n_train=4, n_dev=4, n_test=4, epochs=1, batch_size=2, width=2,
                            device="cpu"),
          dict(thetas=[(), (1.5,), 0.5, (NAN,)], seeds=[(), (-1,), 3, (0.5,)], n_train=SIZES, n_dev=[1], n_test=[0],
               size=[0, 7], epochs=SIZES, lr=[0.0, NAN], batch_size=[0, 10], width=SIZES, cdl=["yes"],
               attention=["yes"], device=[UNKNOWN], progress=["bar"])),
    Probe(plot_acer_vs_theta, dict(sweep=_SWEEP), dict(sweep=["sweep", {}])),
    Probe(plot_depth_predictions, dict(model=_MODEL, data=_DATA),
          dict(model=["m"], data=["d", _DATA.images], per_attack=SIZES, threshold=[NAN, "t"])),
    Probe(layer_responses, dict(size=8),
          dict(theta=_THETA, size=[0, 7], amplitude=[-0.1, NAN], frequency=[-0.1, 0.6, NAN], brightness=[NAN, "b"],
               seed=_SEED)),
    Probe(_RESP.interior, dict(name="cdc_moire"), dict(name=[UNKNOWN, "live"])),
    Probe(plot_layer_responses, dict(resp=_RESP), dict(resp=["r", _SWEEP])),
    Probe(responses_figure, dict(thetas=(0.0, 1.0), size=8), dict(thetas=[(), (2.0,), 0.5], active=[-1, 2, 0.5])),
    Probe(cdc_figure, dict(cache=_CACHE),
          dict(theta=_THETA, brightness=[NAN, 2.0], contrast=[-1.0, NAN], artifact=[UNKNOWN], frequency=[0.6, -0.1],
               amplitude=[-0.1, INF], attention=["yes"], cdl=["yes"], cache=["c"], progress=["bar"])),
    Probe(explore_cdc, dict(cache=None), dict(cache=["cache", 3])),
]
