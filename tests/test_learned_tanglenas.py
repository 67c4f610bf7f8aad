"""Reference tests for gradviz.learned.tanglenas: one-hot paths against plain sliced convolutions, the padding
identity, superposition = tied WS-DARTS for one linear op (float64) and not with GroupNorm → ReLU inside, the
architecture gradient against explicit slices and the softmax chain rule, simplex weights, exact activation-memory
scaling, discretisation against the one-hot supernet, and the chapter's findings at small settings."""
import itertools
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from gradviz.core import as_generator
from gradviz.learned.tanglenas import (COMBINE, KINDS, ArchitectureScores, ArchitectureSearch, EntangledConv2d,
                                      MemoryScaling, RandomSearch, SharedConv2d, ShapesTask, Supernet, accuracy,
                                      activation_bytes, architectures, choice_weights, chosen_architecture,
                                      compute_memory, discretize, explore_tanglenas, kernel_set, mixtures,
                                      plot_alpha_trajectories, plot_memory, plot_mixed_kernel, plot_ranking,
                                      plot_shapes, search, search_figure, shapes_task, spos_random_search,
                                      standalone_net, tanglenas_figure, train_architectures)
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64


def _randomise(op, seed):
    "Random α and bias, so no check passes by symmetry."
    g = as_generator(seed)
    with torch.no_grad():
        for p in op.arch: p.copy_(torch.randn(p.shape, generator=g, dtype=F64).to(p.dtype))
        if hasattr(op, "bias"): op.bias.copy_(torch.randn(op.bias.shape, generator=g, dtype=F64).to(op.bias.dtype))
    return op


def _slice(W, c, k):
    "W[:c, :, s:s+k, s:s+k] with s = (K − k) / 2, written with explicit indices."
    s = (W.shape[-1] - k) // 2
    return W[:c, :, s:s + k, s:s + k]


def _sum_of_slices(op, x, m):
    "Σ m_ck pad(conv(x, slice_ck W)): WS-DARTS with tied weights, written out."
    C = op.widths[-1]
    return sum(m[i, j] * F.pad(F.conv2d(x, _slice(op.weight, c, k), op.bias[:c], padding=k // 2),
                               (0, 0, 0, 0, 0, C - c))
               for (i, c), (j, k) in itertools.product(enumerate(op.widths), enumerate(op.kernels)))


# ---------------------------------------------------------------- the mixed convolutions
@pytest.mark.parametrize("combine", COMBINE)
def test_one_hot_path_is_a_plain_sliced_convolution(combine):
    op = _randomise(EntangledConv2d(3, combine=combine, mode="onehot", seed=1), 2)
    x = torch.randn(2, 3, 11, 11, generator=as_generator(3))
    for c, k in itertools.product(op.widths, op.kernels):
        op.set_path(c, k)
        with torch.no_grad():
            got = op(x)
            ref = F.conv2d(x, _slice(op.weight, c, k), op.bias[:c], padding=k // 2)
        torch.testing.assert_close(got[:, :c], ref, rtol=0, atol=1e-6)
        assert (got[:, c:] == 0).all()
    op.set_path(None)  # argmax α
    i, j = divmod(int(choice_weights(list(op.arch), 3, 3).argmax()), 3)
    with torch.no_grad():
        ref = F.conv2d(x, _slice(op.weight, op.widths[i], op.kernels[j]), op.bias[:op.widths[i]],
                       padding=op.kernels[j] // 2)
        torch.testing.assert_close(op(x)[:, :op.widths[i]], ref, rtol=0, atol=1e-6)


def test_padded_kernel_equals_the_small_kernel():
    x = torch.randn(2, 4, 9, 9, generator=as_generator(0), dtype=F64)
    for k in (1, 3, 5, 7):
        w = torch.randn(5, 4, k, k, generator=as_generator(k), dtype=F64)
        s = (9 - k) // 2
        torch.testing.assert_close(F.conv2d(x, F.pad(w, (s, s, s, s)), padding=4), F.conv2d(x, w, padding=k // 2),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("combine, tau", [("product", 1.0), ("product", 0.3), ("joint", 1.0), ("joint", 2.0)])
def test_superposition_is_tied_ws_darts_for_one_linear_op(combine, tau):
    op = _randomise(EntangledConv2d(2, widths=(4, 8), kernels=(1, 3, 5), combine=combine, temperature=tau, seed=4,
                                    dtype=F64), 5)
    x = torch.randn(3, 2, 8, 8, generator=as_generator(6), dtype=F64)
    with torch.no_grad():
        m = choice_weights(list(op.arch), 2, 3, tau)
        torch.testing.assert_close(op(x), _sum_of_slices(op, x, m), rtol=0, atol=1e-10)
        torch.testing.assert_close(SharedConv2d.tied(op)(x), op(x), rtol=0, atol=1e-10)
        nonlinear = SharedConv2d.tied(op, nonlinear=True)(x)
        assert (nonlinear - F.relu(F.group_norm(op(x), 2))).abs().max() > 0.05


def test_architecture_gradient_matches_explicit_slices_and_the_chain_rule():
    op = _randomise(EntangledConv2d(2, widths=(4, 8), kernels=(3, 5), temperature=0.7, seed=7, dtype=F64), 8)
    x = torch.randn(2, 2, 7, 7, generator=as_generator(9), dtype=F64)
    target = torch.randn(2, 8, 7, 7, generator=as_generator(10), dtype=F64)
    (op(x).tanh() * target).sum().backward()
    # the same loss through explicit slices, differentiated with respect to the mixture table itself
    m = choice_weights([p.detach() for p in op.arch], 2, 2, 0.7).requires_grad_(True)
    (_sum_of_slices(op, x, m).tanh() * target).sum().backward()
    dm = m.grad
    a, b = (op.arch[0] / 0.7).softmax(0).detach(), (op.arch[1] / 0.7).softmax(0).detach()
    torch.testing.assert_close(op.arch[1].grad, b / 0.7 * (a @ dm - a @ dm @ b), rtol=0, atol=1e-10)
    torch.testing.assert_close(op.arch[0].grad, a / 0.7 * (dm @ b - a @ dm @ b), rtol=0, atol=1e-10)
    W, bias = op.mixed_weight()  # ∂L/∂m_ck = ⟨∂L/∂W_mix, pad(slice_ck W)⟩ + ⟨∂L/∂b_mix, pad(b_:c)⟩
    W.retain_grad(), bias.retain_grad()
    (F.conv2d(x, W, bias, padding=2).tanh() * target).sum().backward()
    with torch.no_grad():
        inner = torch.tensor([[float((W.grad * op.slice_padded(i, j)).sum()
                                     + (bias.grad * op.bias * op.chan_masks[i]).sum()) for j in range(2)]
                              for i in range(2)], dtype=F64)
    torch.testing.assert_close(inner, dm, rtol=0, atol=1e-10)


def test_architecture_gradient_against_finite_differences():
    op = _randomise(EntangledConv2d(1, widths=(4,), kernels=(1, 3, 5), seed=11, dtype=F64), 12)
    x = torch.randn(2, 1, 6, 6, generator=as_generator(13), dtype=F64)
    loss = lambda: float((op(x) ** 3).sum().detach())
    (op(x) ** 3).sum().backward()
    h, fd = 1e-6, []
    for j in range(3):
        with torch.no_grad(): op.arch[1][j] += h
        up = loss()
        with torch.no_grad(): op.arch[1][j] -= 2 * h
        fd.append((up - loss()) / (2 * h))
        with torch.no_grad(): op.arch[1][j] += h
    torch.testing.assert_close(op.arch[1].grad, torch.tensor(fd, dtype=F64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("combine", COMBINE)
def test_mixture_weights_lie_on_the_simplex(combine):
    for seed in range(10):
        g = as_generator(seed)
        arch = [10 * torch.randn(3, generator=g, dtype=F64), 10 * torch.randn(4, generator=g, dtype=F64)] \
            if combine == "product" else [10 * torch.randn(12, generator=g, dtype=F64)]
        w = choice_weights(arch, 3, 4, temperature=0.2)
        assert w.shape == (3, 4) and (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-12
    prod = choice_weights([torch.tensor([0.0, math.log(3)]), torch.tensor([0.0, 0.0, math.log(2)])], 2, 3)
    torch.testing.assert_close(prod, torch.tensor([[1, 1, 2], [3, 3, 6]]) / 16.0)


def test_sample_mode_draws_uniform_paths_reproducibly():
    op = EntangledConv2d(1, widths=(4, 8), kernels=(1, 3), mode="sample", seed=3)
    draws = [int(op.mixture().argmax()) for _ in range(400)]
    again = EntangledConv2d(1, widths=(4, 8), kernels=(1, 3), mode="sample", seed=3)
    assert draws[:20] == [int(again.mixture().argmax()) for _ in range(20)]
    counts = np.bincount(draws, minlength=4)
    assert counts.min() > 60 and all(float(op.mixture().sum()) == 1.0 for _ in range(5))


# ---------------------------------------------------------------- supernet and discretisation
@pytest.mark.parametrize("kind", KINDS)
def test_discretised_network_equals_the_one_hot_supernet(kind):
    net = Supernet(kind, widths=(8, 16), kernels=(3, 5), seed=2, device="cpu")
    with torch.no_grad():
        for p in net.parameters(): p.add_(0.2 * torch.randn(p.shape, generator=as_generator(4)))
    x = torch.randn(5, 1, 12, 12, generator=as_generator(5))
    for arch in (((8, 3), (16, 5)), ((16, 5), (8, 3)), ((8, 5), (8, 5))):
        for op, (c, k) in zip(net.ops, arch):
            op.mode = "onehot"
            op.set_path(c, k)
        with torch.no_grad(): gap = (discretize(net, arch)(x) - net(x)).abs().max()
        assert gap < 1e-5, (arch, float(gap))
        n_conv = [m for m in discretize(net, arch) if isinstance(m, nn.Conv2d)]
        assert [(m.out_channels, m.kernel_size[0]) for m in n_conv] == list(arch)
    for op in net.ops: op.path = None
    assert discretize(net)[0].out_channels == chosen_architecture(net)[0][0]


def test_supernet_parameters_and_search_space():
    tangle, darts = Supernet("tangle", seed=0, device="cpu"), Supernet("darts", seed=0, device="cpu")
    count = lambda net: sum(p.numel() for p in net.weight_parameters())
    assert count(tangle) == 32 * 49 + 32 + 32 * 32 * 49 + 32 + 32 * 4 + 4
    convs = sum(c * k * k for c in (8, 16, 32) for k in (3, 5, 7))
    assert count(darts) == convs * (1 + 32) + 2 * 3 * (8 + 16 + 32) + 32 * 4 + 4
    assert len(architectures(tangle)) == 81 and len(set(architectures(tangle))) == 81
    assert sum(p.numel() for p in tangle.arch_parameters()) == 12
    assert mixtures(tangle).shape == (2, 3, 3)


def test_standalone_net_is_seeded():
    a, b = (standalone_net(((8, 3), (16, 5)), seed=s) for s in (1, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = standalone_net(((8, 3), (16, 5)), seed=as_generator(2))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    assert a(torch.zeros(2, 1, 12, 12)).shape == (2, 4)


# ---------------------------------------------------------------- memory
def test_activation_bytes_constant_for_tangle_linear_for_darts():
    mem = compute_memory(choices=(1, 2, 3, 4), largest=7, width=8, size=8, batch=2, device="cpu")
    tangle, darts = np.array(mem.activation["tangle"]), np.array(mem.activation["darts"])
    assert (tangle == tangle[0]).all() and tangle[0] > 0
    steps = np.diff(darts)
    assert (steps == steps[0]).all() and steps[0] > 0
    # one extra candidate keeps its padded conv output and its GroupNorm → ReLU output, two (2, 8, 8, 8) float32 maps,
    # and GroupNorm's mean and 1/std per sample and group (2 × 1 each)
    assert steps[0] == 2 * (2 * 8 * 8 * 8 * 4) + 2 * (2 * 1 * 4)
    assert mem.kernels == ((7,), (5, 7), (3, 5, 7), (1, 3, 5, 7))


def test_activation_bytes_of_a_linear_layer():
    assert activation_bytes(nn.Linear(10, 3), torch.zeros(4, 10)) == (4 * 10 + 4 * 3 + 4) * 4


def test_kernel_sets():
    assert kernel_set(3, 7) == (3, 5, 7) and kernel_set(6, 11) == (1, 3, 5, 7, 9, 11)


# ---------------------------------------------------------------- task, search, evaluation
def test_shapes_task_is_seeded_and_balanced():
    a, b = shapes_task(40, 12, "global", seed=3, device="cpu"), shapes_task(40, 12, "global", seed=as_generator(3),
                                                                             device="cpu")
    assert torch.equal(a.X, b.X) and a.X.shape == (40, 1, 12, 12) and a.X_test.shape == (1000, 1, 12, 12)
    assert torch.bincount(a.y).tolist() == [10] * 4
    clean = shapes_task(8, 16, "local", noise=0.0, seed=0, device="cpu").X[:, 0]
    # bars are longer than wide in their direction: horizontal (class 0) and vertical (class 1)
    spread = lambda img, dim: float((img.sum(dim) > 0.5 * img.sum(dim).max()).sum())
    assert spread(clean[0], 0) > spread(clean[0], 1) and spread(clean[1], 1) > spread(clean[1], 0)


def test_search_is_reproducible_and_spos_leaves_alpha_alone():
    task = shapes_task(64, 12, seed=0, device="cpu")
    runs = [search(Supernet("tangle", widths=(8,), kernels=(1, 3), seed=1, device="cpu"), task, 2, batch_size=16,
                   seed=as_generator(5) if i else 5) for i in range(2)]
    assert torch.equal(runs[0].mixtures, runs[1].mixtures) and not torch.equal(runs[0].mixtures[0],
                                                                                runs[0].mixtures[-1])
    assert runs[0].mixtures.shape == (3, 2, 1, 2) and len(runs[0].train_loss) == 2 * 2
    spos = search(Supernet("spos", widths=(8,), kernels=(1, 3), seed=1, device="cpu"), task, 1, batch_size=16)
    assert torch.equal(spos.mixtures[0], spos.mixtures[-1])
    rs = spos_random_search(spos.net, task, samples=10, seed=0)
    assert len(rs.architectures) == 4 and rs.best == rs.architectures[int(rs.val_accuracy.argmax())]
    ref = accuracy(spos.net, task.X[32:], task.y[32:], rs.best)
    assert rs.val_accuracy.max() == ref and spos.net.ops[0].mode == "sample"


def test_accuracy_and_rank():
    net = standalone_net(((8, 3),), seed=0)
    X = torch.randn(20, 1, 8, 8, generator=as_generator(0))
    with torch.no_grad(): y = net(X).argmax(1)
    assert accuracy(net, X, y) == 1.0 and accuracy(net, X, (y + 1) % 4) == 0.0
    scores = ArchitectureScores((((8, 3),), ((8, 5),), ((8, 7),)), torch.tensor([[0.5], [0.9], [0.9]], dtype=F64), 1)
    assert [scores.rank(a) for a in scores.architectures] == [3, 1, 1]


def test_the_searches_find_a_wide_last_stage_on_the_global_task():
    "The chapter's finding at small settings: TangleNAS's 7×7 weight takes the last stage; 3×3 there fails alone."
    task = shapes_task(1200, 12, "global", seed=11, device="cpu")
    res = search(Supernet("tangle", widths=(16,), seed=1, device="cpu"), task, 4, 1e-2, 3e-2, 16, seed=1)
    assert res.architecture[-1] == (16, 7) and float(res.mixtures[-1, -1].sum(0)[-1]) > 0.5
    assert accuracy(discretize(res.net), task.X_test, task.y_test) > 0.85
    scores = train_architectures([((16, 3), (16, 3)), ((16, 3), (16, 7))], task, steps=100, lr=1e-2, batch_size=32)
    assert scores.accuracy[1, 0] - scores.accuracy[0, 0] > 0.3


# ---------------------------------------------------------------- figures and explorer
def test_figures_and_explorer():
    task = shapes_task(48, 12, seed=0, device="cpu")
    res = search(Supernet("tangle", widths=(8, 16), seed=0, device="cpu"), task, 2, batch_size=16)
    assert isinstance(plot_alpha_trajectories(res), Figure) and isinstance(plot_shapes(task), Figure)
    assert isinstance(plot_mixed_kernel(res.net.ops[0]), Figure)
    mem = compute_memory(choices=(1, 2), largest=3, width=8, size=6, batch=2, device="cpu")
    assert isinstance(plot_memory(mem), Figure)
    scores = train_architectures(architectures(res.net)[:3], task, steps=2, batch_size=16)
    assert isinstance(plot_ranking(scores, {"tangle": [scores.architectures[0]]}), Figure)
    fig = search_figure(res)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 3
    cache = {}
    key = ("kernels 3, 5, 7", "spos", 0.03, 0.5, 1.0, "global")
    cache[key] = (res, res.architecture, 0.5)  # a precomputed run: the figure only draws it
    assert isinstance(tanglenas_figure(method="spos", cache=cache), go.Figure)
    ex = explore_tanglenas(cache)
    assert all(c.costly for c in ex.controls.values())


# ---------------------------------------------------------------- bad input
_TASK = shapes_task(8, 12, n_test=4, seed=0, device="cpu")
_NET = Supernet("tangle", widths=(8, 16), kernels=(3, 5), seed=0, device="cpu")
_OP = EntangledConv2d(1, widths=(8,), kernels=(3,), device="cpu")
_RES = ArchitectureSearch(_NET, mixtures(_NET)[None], torch.zeros(1), chosen_architecture(_NET))
_MEM = MemoryScaling((1,), ((3,),), {"tangle": (1,), "darts": (1,)}, {"tangle": (1,), "darts": (1,)})
_SCORES = ArchitectureScores((((8, 3),),), torch.ones(1, 1, dtype=F64), 1)
_X = torch.zeros(2, 1, 8, 8)
_SEEDS = [-1, 0.5]
_WIDTHS, _KERNELS = [(), "8", (0,), (16, 8)], [(), (4,), (5, 3), [3.0]]
_OP_BAD = dict(in_channels=SIZES, widths=_WIDTHS, kernels=_KERNELS, combine=[UNKNOWN], mode=[UNKNOWN],
               temperature=[0.0, -1.0, NAN], seed=_SEEDS, device=[UNKNOWN, 3])

PROBES = [
    Probe(choice_weights, dict(arch=[torch.zeros(2), torch.zeros(3)], num_widths=2, num_kernels=3),
          dict(arch=[[torch.zeros(3), torch.zeros(3)], [torch.zeros(5)], [], "a", [torch.full((2,), NAN), torch.zeros(3)]],
               num_widths=SIZES, num_kernels=SIZES, temperature=[0.0, NAN, INF])),
    Probe(EntangledConv2d, dict(in_channels=2), _OP_BAD),
    Probe(SharedConv2d, dict(in_channels=2), {**_OP_BAD, "nonlinear": ["yes", 1]}),
    Probe(Supernet, dict(), dict(kind=[UNKNOWN], in_channels=SIZES, num_classes=[1, 0], widths=_WIDTHS,
                                 kernels=_KERNELS, stages=SIZES, combine=[UNKNOWN], temperature=[0.0, NAN],
                                 seed=_SEEDS, device=[UNKNOWN])),
    Probe(mixtures, dict(net=_NET), dict(net=["net", _OP])),
    Probe(chosen_architecture, dict(net=_NET), dict(net=["net", _OP])),
    Probe(standalone_net, dict(architecture=((8, 3),)),
          dict(architecture=[(), "ab", ((8, 4),), ((7, 3),), ((0, 3),), (8, 3)], in_channels=SIZES,
               num_classes=[1, 0], group=SIZES, seed=_SEEDS, device=[UNKNOWN])),
    Probe(discretize, dict(net=_NET), dict(net=["net", _OP], architecture=[((8, 4), (8, 3)), ((8, 3),), "ab"])),
    Probe(shapes_task, dict(n=8, size=12, n_test=4, device="cpu"),
          dict(n=SIZES + [3], size=[11, 0], structure=[UNKNOWN], noise=[-0.1, NAN], n_test=SIZES, seed=_SEEDS,
               device=[UNKNOWN])),
    Probe(plot_shapes, dict(task=_TASK), dict(task=["task", _NET], per_class=SIZES)),
    Probe(search, dict(net=_NET, task=_TASK, epochs=1),
          dict(net=["net", nn.Linear(2, 2)], task=["task"], epochs=SIZES, lr=[0.0, NAN], arch_lr=[0.0, -1.0, NAN],
               batch_size=SIZES, split=[0.0, 1.0, NAN, 0.01], seed=_SEEDS, progress=["bar"])),
    Probe(accuracy, dict(model=_NET, X=_X, y=torch.zeros(2, dtype=torch.long)),
          dict(model=["model"], X=[_X[0], "X", torch.full_like(_X, NAN), _X.long()], y=[torch.zeros(3), "y"],
               architecture=[((8, 4), (8, 3)), "ab"])),
    Probe(architectures, dict(net=_NET), dict(net=["net", _OP])),
    Probe(spos_random_search, dict(net=_NET, task=_TASK, samples=2),
          dict(net=["net"], task=["task"], samples=SIZES, split=[0.0, 1.0, NAN], seed=_SEEDS)),
    Probe(train_architectures, dict(archs=[((8, 3),)], task=_TASK, steps=1, batch_size=4),
          dict(archs=[[], "ab", 3], task=["task"], steps=SIZES, seeds=[[], [-1], "ab"], group=SIZES,
               progress=["bar"])),
    Probe(kernel_set, dict(n=3, largest=7), dict(n=SIZES, largest=[6, 3, 0])),
    Probe(activation_bytes, dict(net=nn.Linear(2, 2), X=torch.zeros(1, 2)),
          dict(net=["net"], X=["X", torch.zeros(1, 2, dtype=torch.long), torch.full((1, 2), NAN)])),
    Probe(compute_memory, dict(choices=(1, 2), largest=3, width=8, size=6, batch=2, device="cpu"),
          dict(choices=[(), "ab", (0,), 3], width=SIZES, size=[0, 3], batch=SIZES, seed=_SEEDS, device=[UNKNOWN])),
    Probe(plot_alpha_trajectories, dict(result=_RES), dict(result=["result", _NET])),
    Probe(plot_mixed_kernel, dict(op=_OP), dict(op=["op", SharedConv2d(1, (8,), (3,), device="cpu")])),
    Probe(plot_memory, dict(mem=_MEM), dict(mem=["mem", _RES])),
    Probe(plot_ranking, dict(scores=_SCORES, picks={}), dict(scores=["scores", _MEM], picks=["picks", [1]])),
    Probe(search_figure, dict(result=_RES), dict(result=["result"], stage=[2, -3, 0.5])),
    Probe(tanglenas_figure, dict(cache={}),
          dict(preset=[UNKNOWN], method=[UNKNOWN], arch_lr=[0.0, NAN], split=[0.0, 1.0, NAN], temperature=[0.0, INF],
               structure=[UNKNOWN], cache=["cache", 3])),
    Probe(explore_tanglenas, dict(cache=None), dict(cache=["cache", 3])),
]

UNPROBED = {}
