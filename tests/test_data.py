"""Reference tests for gradviz.data: shapes, devices, seeding, closed forms and bad input."""
import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import reference as ref
from gradviz.core import as_generator
from gradviz.autodiff import flat_objective, hessian, per_sample_grads
from gradviz.data import (OBSTACLES, GaussianMixture, PreferencePairs, Regression, Teacher, TinyLM, cluster_means,
                          count_parameters, friedman1, friedman1_mean, gaussian_clusters, imbalanced_ring, mlp,
                          concentric_rings, next_token_loss, poisson_system, preference_pairs, sequence_logprob,
                          teacher_student, tiny_clips, tiny_cnn, tiny_images, tiny_lm, train, two_moons, two_spirals,
                          video_cnn)

F64 = torch.float64
DTYPES = [torch.float32, F64]

# Every data set and model maker called with small arguments, as (name, call(**common) -> tensors to compare).
GENERATORS = {
    "gaussian_clusters": lambda **kw: gaussian_clusters(60, 4, 3, 2.0, **kw),
    "cluster_means": lambda **kw: (cluster_means(5, 3, 2.0, **kw),),
    "teacher_student": lambda **kw: teacher_student(40, 3, 2, hidden=(5,), bias=True, noise=0.1, **kw)[:2],
    "two_spirals": lambda **kw: two_spirals(50, 0.05, 1.5, **kw),
    "concentric_rings": lambda **kw: concentric_rings(50, noise=0.05, **kw),
    "tiny_images": lambda **kw: tiny_images(20, 4, 8, 2, **kw),
    "mlp": lambda **kw: tuple(p.detach() for p in mlp([3, 5, 2], **kw).parameters()),
    "tiny_cnn": lambda **kw: tuple(p.detach() for p in tiny_cnn(1, 3, 6, 4, **kw).parameters()),
    "tiny_lm gru": lambda **kw: tuple(p.detach() for p in tiny_lm(10, 8, **kw).parameters()),
    "tiny_lm transformer": lambda **kw: tuple(p.detach()
                                              for p in tiny_lm(10, 8, 2, "transformer", 2, 12, **kw).parameters()),
    "preference_pairs": lambda dtype=None, **kw: (lambda p: (p.chosen, p.rejected, p.differ))(
        preference_pairs(10, 6, 8, 2, **kw)),
    "two_moons": lambda **kw: two_moons(30, 0.1, **kw),
    "friedman1": lambda **kw: friedman1(30, 6, 0.5, **kw),
    "tiny_clips": lambda **kw: tuple(tiny_clips(6, 4, 10, 3, 0.5, **kw)),
    "video_cnn 2plus1d": lambda **kw: tuple(p.detach() for p in video_cnn("2plus1d", width=3, **kw).parameters()),
}


def _nearest_mean_accuracy(X, y, means):
    return (torch.cdist(X, means).argmin(1) == y).double().mean().item()


def _empirical_means(X, y, num_classes):
    return torch.stack([X[y == c].mean(0) for c in range(num_classes)])


# ---------------------------------------------------------------- shapes, dtypes, devices

@pytest.mark.parametrize("dtype", DTYPES)
def test_shapes_dtypes_devices(device, dtype):
    X, y = gaussian_clusters(30, 4, 3, 2.0, device=device, dtype=dtype)
    assert X.shape == (30, 4) and X.dtype == dtype and X.device.type == device.type
    assert y.shape == (30,) and y.dtype == torch.long and y.device.type == device.type
    mu = cluster_means(4, 3, 2.0, device=device, dtype=dtype)
    assert mu.shape == (3, 4) and mu.dtype == dtype and mu.device.type == device.type
    X, y, teacher = teacher_student(20, 3, out_dim=2, hidden=(4,), bias=True, device=device, dtype=dtype)
    assert X.shape == (20, 3) and y.shape == (20, 2) and X.dtype == y.dtype == dtype
    assert X.device.type == y.device.type == device.type
    assert [w.shape for w in teacher.weights] == [(4, 3), (2, 4)] and [b.shape for b in teacher.biases] == [(4,), (2,)]
    assert all(w.device.type == device.type and w.dtype == dtype for w in teacher.weights)
    X, y = two_spirals(21, device=device, dtype=dtype)
    assert X.shape == (21, 2) and X.dtype == dtype and y.dtype == torch.long and X.device.type == device.type
    X, y = tiny_images(12, num_classes=3, image_size=7, channels=2, device=device, dtype=dtype)
    assert X.shape == (12, 2, 7, 7) and X.dtype == dtype and y.shape == (12,) and X.device.type == device.type
    pairs = preference_pairs(9, length=5, vocab_size=6, num_differ=2, device=device)
    assert pairs.chosen.shape == pairs.rejected.shape == pairs.differ.shape == (9, 5) and len(pairs) == 9
    assert pairs.chosen.dtype == torch.long and pairs.differ.dtype == torch.bool
    assert pairs.chosen.device.type == device.type


@pytest.mark.parametrize("dtype", DTYPES)
def test_models_live_on_device_and_dtype(device, dtype):
    for net in (mlp([3, 4, 2], device=device, dtype=dtype), tiny_cnn(2, 3, 6, 4, device=device, dtype=dtype)):
        assert all(p.device.type == device.type and p.dtype == dtype for p in net.parameters())
    out = tiny_cnn(2, 3, 6, 4, device=device, dtype=dtype)(torch.zeros(5, 2, 6, 6, device=device, dtype=dtype))
    assert out.shape == (5, 3) and out.dtype == dtype


@pytest.mark.parametrize("name", GENERATORS)
def test_float32_is_float64_rounded(name):
    a = GENERATORS[name](device="cpu", dtype=torch.float32)
    b = GENERATORS[name](device="cpu", dtype=F64)
    for x, z in zip(a, b):
        if x.is_floating_point(): assert torch.equal(x, z.to(torch.float32))
        else: assert torch.equal(x, z)


# ---------------------------------------------------------------- seeding

@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_data_different_seed_different_data(name):
    call = GENERATORS[name]
    a, b, c = call(seed=3, device="cpu"), call(seed=3, device="cpu"), call(seed=4, device="cpu")
    assert all(torch.equal(x, z) for x, z in zip(a, b))
    assert not all(torch.equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("name", GENERATORS)
def test_seed_may_be_a_generator_and_matches_the_same_int(name):
    call = GENERATORS[name]
    g = torch.Generator().manual_seed(5)
    a, b = call(seed=g, device="cpu"), call(seed=5, device="cpu")
    assert all(torch.equal(x, z) for x, z in zip(a, b))
    c = call(seed=g, device="cpu")  # the generator has advanced: new draws
    assert not all(torch.equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("name", GENERATORS)
def test_the_old_generator_keyword_is_gone(name):
    with pytest.raises(TypeError, match="generator"): GENERATORS[name](generator=torch.Generator(), device="cpu")


@pytest.mark.parametrize("name", GENERATORS)
def test_global_rng_untouched(name):
    state = torch.random.get_rng_state()
    GENERATORS[name](device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)


def test_train_leaves_global_rng_untouched_and_is_reproducible():
    X, y = gaussian_clusters(64, 3, 2, 2.0, device="cpu")
    state = torch.random.get_rng_state()
    runs = []
    for seed in (0, 0, 1):
        net = mlp([3, 8, 2], device="cpu")
        h = train(net, "cross_entropy", X, y, steps=20, lr=0.1, batch_size=8, seed=seed)
        runs.append((h, net[0].weight.detach().clone()))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])


def test_data_are_the_same_numbers_on_every_device(device):
    Xc, yc = gaussian_clusters(40, 3, 2, 1.5, device="cpu")
    Xd, yd = gaussian_clusters(40, 3, 2, 1.5, device=device)
    assert torch.equal(Xd.cpu(), Xc) and torch.equal(yd.cpu(), yc)
    weight = lambda dev: mlp([3, 4], device=dev)[0].weight.detach().cpu()
    assert torch.equal(weight(device), weight("cpu"))


# ---------------------------------------------------------------- Gaussian clusters

@pytest.mark.parametrize("n,num_classes", [(60, 3), (61, 3), (10, 10), (7, 2)])
def test_classes_are_balanced(n, num_classes):
    _, y = gaussian_clusters(n, 2, num_classes, 1.0, device="cpu")
    counts = torch.bincount(y, minlength=num_classes)
    assert counts.max() - counts.min() <= 1 and counts.sum() == n
    _, y = tiny_images(n, num_classes, device="cpu")
    counts = torch.bincount(y, minlength=num_classes)
    assert counts.max() - counts.min() <= 1
    assert torch.bincount(two_spirals(n, device="cpu")[1]).tolist() in ([n // 2, n - n // 2], [n - n // 2, n // 2])


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 12), num_classes=st.integers(2, 9), separation=st.floats(0.0, 10.0), seed=st.integers(0, 50))
def test_cluster_means_nearest_pairs_are_separation_apart(dim, num_classes, separation, seed):
    mu = cluster_means(dim, num_classes, separation, seed=seed, device="cpu", dtype=F64)
    assert mu.shape == (num_classes, dim)
    d = torch.cdist(mu, mu) + torch.diag(torch.full((num_classes,), math.inf, dtype=F64))
    assert torch.allclose(d.min(1).values, torch.full((num_classes,), separation, dtype=F64), atol=1e-9)
    assert torch.allclose(mu.sum(0), torch.zeros(dim, dtype=F64), atol=1e-9)
    if dim >= num_classes - 1:  # a regular simplex: every pair equally far apart
        off = ~torch.eye(num_classes, dtype=torch.bool)
        assert torch.allclose(d[off], torch.full_like(d[off], separation), atol=1e-9)


def test_clusters_are_means_plus_unit_noise():
    X, y = gaussian_clusters(20_000, 6, 4, 3.0, seed=2, device="cpu", dtype=F64)
    Z = X - cluster_means(6, 4, 3.0, seed=2, device="cpu", dtype=F64)[y]
    assert Z.mean(0).abs().max() < 0.05
    assert (torch.cov(Z.T) - torch.eye(6, dtype=F64)).abs().max() < 0.05


def test_separation_only_moves_the_means():
    Xa, y = gaussian_clusters(50, 5, 3, 0.5, device="cpu", dtype=F64)
    Xb, _ = gaussian_clusters(50, 5, 3, 4.0, device="cpu", dtype=F64)
    shift = cluster_means(5, 3, 4.0, device="cpu", dtype=F64) - cluster_means(5, 3, 0.5, device="cpu", dtype=F64)
    assert torch.allclose(Xb - Xa, shift[y], atol=1e-12)


@pytest.mark.parametrize("dim,num_classes", [(2, 3), (10, 4), (20, 10)])
def test_separation_knob_controls_nearest_mean_accuracy(dim, num_classes):
    accs = []
    for s in (0.0, 1.0, 2.0, 4.0, 8.0):
        X, y = gaussian_clusters(400 * num_classes, dim, num_classes, s, seed=1, device="cpu")
        accs.append(_nearest_mean_accuracy(X, y, _empirical_means(X, y, num_classes)))
    assert all(a < b for a, b in zip(accs, accs[1:])), accs
    assert abs(accs[0] - 1 / num_classes) < 0.06, accs  # inseparable: near chance
    assert accs[-1] > 0.99, accs


def test_two_class_bayes_accuracy_is_phi_of_half_separation():
    n = 40_000
    for s in (0.5, 1.0, 2.0, 3.0):
        X, y = gaussian_clusters(n, 7, 2, s, seed=4, device="cpu", dtype=F64)
        acc = _nearest_mean_accuracy(X, y, cluster_means(7, 2, s, seed=4, device="cpu", dtype=F64))
        p = torch.special.ndtr(torch.tensor(s / 2, dtype=F64)).item()
        assert abs(acc - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3


# ---------------------------------------------------------------- teacher-student

def test_linear_teacher_without_noise_is_exact():
    X, y, teacher = teacher_student(30, 4, out_dim=2, noise=0.0, device="cpu", dtype=F64)
    assert teacher.sizes == [4, 2] and teacher.biases == (None,)
    assert torch.allclose(y, X @ teacher.weights[0].T, atol=1e-12)
    assert torch.allclose(torch.linalg.lstsq(X, y).solution.T, teacher.weights[0], atol=1e-10)
    X, y, teacher = teacher_student(30, 4, bias=True, noise=0.0, device="cpu", dtype=F64)
    assert torch.allclose(y, X @ teacher.weights[0].T + teacher.biases[0], atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
def test_mlp_teacher_without_noise_gives_y_equal_teacher_of_x(device, activation):
    X, y, teacher = teacher_student(50, 3, out_dim=2, hidden=(7, 5), activation=activation, bias=True,
                                    noise=0.0, device=device, dtype=F64)
    assert teacher.sizes == [3, 7, 5, 2]
    assert torch.allclose(y, teacher(X), atol=1e-12)
    with torch.no_grad(): assert torch.allclose(teacher.module()(X), y, atol=1e-12)
    # an independent forward pass
    act = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda t: t}[activation]
    (W1, W2, W3), (b1, b2, b3) = teacher.weights, teacher.biases
    expected = act(act(X @ W1.T + b1) @ W2.T + b2) @ W3.T + b3
    assert torch.allclose(y, expected, atol=1e-12)


def test_teacher_noise_has_the_requested_scale_and_leaves_x_alone():
    X1, y1, t1 = teacher_student(20_000, 5, noise=0.3, device="cpu", dtype=F64)
    X2, y2, t2 = teacher_student(20_000, 5, noise=0.0, device="cpu", dtype=F64)
    assert torch.equal(X1, X2) and torch.equal(t1.weights[0], t2.weights[0])
    assert abs((y1 - y2).std().item() - 0.3) < 0.01
    w = t1.weights[0]
    assert abs(y2.var().item() / w.square().sum().item() - 1) < 0.05  # x ~ N(0, I): var(w·x) = |w|²
    ws = torch.cat([teacher_student(1, 50, seed=s, device="cpu", dtype=F64)[2].weights[0] for s in range(200)])
    assert abs(ws.square().sum(1).mean().item() - 1) < 0.05  # N(0, 1/fan_in): |w|² is 1 on average


def test_teacher_student_returns_a_named_regression():
    data = teacher_student(12, 3, out_dim=2, seed=4, device="cpu", dtype=F64)
    assert isinstance(data, Regression) and data._fields == ("X", "y", "teacher")
    X, y, teacher = data
    assert X is data.X and y is data.y and teacher is data.teacher
    assert torch.allclose(data.y, data.teacher(data.X), atol=0.5)  # noise 0.1 around the teacher
    assert torch.equal(teacher_student(12, 3, out_dim=2, seed=4, device="cpu", dtype=F64).X, X)


def test_teacher_is_frozen():
    _, _, teacher = teacher_student(5, 2, device="cpu")
    with pytest.raises(Exception): teacher.activation = "relu"
    assert isinstance(teacher, Teacher)


# ---------------------------------------------------------------- two spirals

@pytest.mark.parametrize("turns", [0.5, 1.5, 3.0])
def test_two_spirals_without_noise_lie_on_their_arms(turns):
    X, y = two_spirals(300, noise=0.0, turns=turns, device="cpu", dtype=F64)
    r = X.norm(dim=1)
    assert ((r >= 0.1 - 1e-12) & (r <= 1 + 1e-12)).all()
    t = (r - 0.1) / 0.9
    angle = 2 * math.pi * turns * t + math.pi * y.double()
    assert torch.allclose(X, r[:, None] * torch.stack([angle.cos(), angle.sin()], 1), atol=1e-10)


def test_two_spirals_noise_is_added_to_the_same_points():
    X0, y = two_spirals(500, noise=0.0, device="cpu", dtype=F64)
    X1, _ = two_spirals(500, noise=0.2, device="cpu", dtype=F64)
    assert abs((X1 - X0).std().item() - 0.2) < 0.02


# ---------------------------------------------------------------- concentric rings

@pytest.mark.parametrize("inner, outer", [((0.0, 0.5), (1.0, 1.5)), ((0.2, 0.4), (0.4, 2.0))])
def test_concentric_rings_radii_stay_in_their_class_ranges(inner, outer):
    X, y = concentric_rings(301, inner=inner, outer=outer, device="cpu", dtype=F64)
    r = X.norm(dim=1)
    assert X.shape == (301, 2) and y.dtype == torch.long and torch.bincount(y).tolist() == [151, 150]
    assert ((r[y == 0] >= inner[0] - 1e-12) & (r[y == 0] <= inner[1] + 1e-12)).all()
    assert ((r[y == 1] >= outer[0] - 1e-12) & (r[y == 1] <= outer[1] + 1e-12)).all()
    # radii uniform in the range: the mean radius of each class is the midpoint, angles cover the circle
    assert abs(r[y == 1].mean().item() - sum(outer) / 2) < 0.1 * (outer[1] - outer[0])
    angle = torch.atan2(X[:, 1], X[:, 0])
    assert torch.histc(angle, 4, -math.pi, math.pi).min() > 301 / 4 * 0.6


def test_concentric_rings_noise_moves_the_same_points_and_the_seed_decides():
    X0, y = concentric_rings(400, device="cpu", dtype=F64)
    X1, _ = concentric_rings(400, noise=0.1, device="cpu", dtype=F64)
    assert abs((X1 - X0).std().item() - 0.1) < 0.01
    assert torch.equal(X0, concentric_rings(400, device="cpu", dtype=F64)[0])
    assert not torch.equal(X0, concentric_rings(400, seed=1, device="cpu", dtype=F64)[0])


# ---------------------------------------------------------------- models

@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5), bias=st.booleans())
def test_mlp_parameter_count_closed_form(sizes, bias):
    net = mlp(sizes, bias=bias, device="cpu")
    expected = sum(a * b + (b if bias else 0) for a, b in zip(sizes[:-1], sizes[1:]))
    assert count_parameters(net) == expected
    assert net(torch.zeros(3, sizes[0])).shape == (3, sizes[-1])


@pytest.mark.parametrize("activation,cls",
                         [("tanh", nn.Tanh), ("relu", nn.ReLU), ("gelu", nn.GELU), ("identity", nn.Identity)])
def test_mlp_layout(activation, cls):
    net = mlp([4, 6, 5, 3], activation=activation, device="cpu")
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, cls, nn.Linear, cls, nn.Linear]


def test_mlp_initialisation_follows_torch_default_law():
    net = mlp([400, 300], init_scale=2.0, device="cpu", dtype=F64)
    bound = 2.0 / math.sqrt(400)
    w = net[0].weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.var().item() - bound ** 2 / 3) < 0.02 * bound ** 2
    assert count_parameters(mlp([3, 2], init_scale=0.0, device="cpu")) == 8
    assert all((p == 0).all() for p in mlp([3, 2], init_scale=0.0, device="cpu").parameters())


def test_count_parameters_trainable_only():
    net = mlp([3, 4, 2], device="cpu")
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 26 and count_parameters(net, trainable_only=True) == 14


@pytest.mark.parametrize("image_size", [2, 5, 8, 9, 16])
def test_tiny_cnn_forward_shape_and_count(image_size):
    net = tiny_cnn(3, 5, image_size, 6, device="cpu")
    assert net(torch.zeros(4, 3, image_size, image_size)).shape == (4, 5)
    half = math.ceil(image_size / 2)
    assert count_parameters(net) == (3 * 9 + 1) * 6 + (6 * 9 + 1) * 6 + (6 * half * half + 1) * 5


def test_tiny_cnn_has_no_batch_dependent_layers_so_per_sample_maths_works():
    net = tiny_cnn(1, 4, 8, 4, device="cpu", dtype=F64)
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in net.modules())
    X, _ = tiny_images(6, 4, 8, 1, device="cpu", dtype=F64)
    params = {k: v.detach() for k, v in net.named_parameters()}
    one = lambda x: torch.func.functional_call(net, params, (x[None],))[0]
    assert torch.allclose(torch.func.vmap(one)(X), net(X), atol=1e-12)


# ---------------------------------------------------------------- tiny images

def test_tiny_images_class_lives_in_neighbour_correlations_not_pixels():
    X, y = tiny_images(4000, 4, 8, 1, noise=0.0, seed=1, device="cpu", dtype=F64)
    assert X.abs().max() <= 1 + 1e-12
    k = math.pi / 2  # two periods over eight pixels
    for c in range(4):
        img = X[y == c, 0]
        assert img.mean(0).abs().max() < 0.1 and abs(img.var().item() - 0.5) < 0.02
        right = (img[:, :, :-1] * img[:, :, 1:]).mean() / 0.5
        below = (img[:, :-1, :] * img[:, 1:, :]).mean() / 0.5
        theta = math.pi * c / 4
        assert abs(right - math.cos(k * math.cos(theta))) < 0.05
        assert abs(below - math.cos(k * math.sin(theta))) < 0.05


def test_tiny_images_channels_share_the_pattern():
    X, _ = tiny_images(10, 3, 6, 3, noise=0.0, device="cpu")
    assert torch.equal(X[:, 0], X[:, 1]) and torch.equal(X[:, 0], X[:, 2])


# ---------------------------------------------------------------- preference pairs

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), length=st.integers(1, 10), vocab_size=st.integers(2, 30), data=st.data())
def test_preference_pairs_invariants(n, length, vocab_size, data):
    k = data.draw(st.integers(1, length))
    p = preference_pairs(n, length, vocab_size, k, seed=data.draw(st.integers(0, 100)), device="cpu")
    assert isinstance(p, PreferencePairs) and p.vocab_size == vocab_size
    assert (p.differ.sum(1) == k).all()
    assert torch.equal(p.chosen[~p.differ], p.rejected[~p.differ])
    assert (p.chosen[p.differ] >= vocab_size // 2).all() and (p.rejected[p.differ] < vocab_size // 2).all()
    assert (p.chosen >= 0).all() and (p.chosen < vocab_size).all() and (p.rejected >= 0).all()


# ---------------------------------------------------------------- training

def test_training_reduces_the_loss(device):
    X, y = gaussian_clusters(200, 5, 3, 3.0, device=device)
    for kw in (dict(lr=0.5), dict(lr=0.5, batch_size=20), dict(lr=0.01, batch_size=20, optimizer="adam")):
        net = mlp([5, 16, 3], device=device)
        h = train(net, "cross_entropy", X, y, steps=150, **kw)
        assert h.shape == (150,) and h.device.type == "cpu"
        assert h[-20:].mean() < 0.5 * h[:5].mean(), kw
    X, y = tiny_images(128, 4, 8, 1, device=device)
    net = tiny_cnn(1, 4, 8, 8, device=device)
    h = train(net, torch.nn.functional.cross_entropy, X, y, steps=60, lr=0.01, batch_size=32, optimizer="adam")
    assert h[-10:].mean() < 0.5 * h[0]


def test_gradient_descent_on_linear_regression_recovers_the_teacher():
    X, y, teacher = teacher_student(100, 4, noise=0.0, device="cpu", dtype=F64)
    lam_max = torch.linalg.eigvalsh(2 * X.T @ X / len(X)).max().item()
    student = mlp([4, 1], bias=False, device="cpu", dtype=F64)
    h = train(student, "mse", X, y, steps=400, lr=1.0 / lam_max)
    assert torch.allclose(student[0].weight, teacher.weights[0], atol=1e-8)
    diverged = train(mlp([4, 1], bias=False, device="cpu", dtype=F64), "mse", X, y, steps=100, lr=2.1 / lam_max)
    assert diverged[-1] > diverged[0] > h[-1]


def test_minibatches_visit_every_sample_once_per_epoch():
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
        def forward(self, x):
            seen.append(x[:, 0].long().tolist())
            return x * self.w

    X = torch.arange(10.0)[:, None]
    train(Recorder(), "mse", X, X, steps=6, lr=0.1, batch_size=3)  # 3 full batches per epoch, 1 sample dropped
    for epoch in (seen[:3], seen[3:]):
        flat = sum(epoch, [])
        assert len(flat) == 9 and len(set(flat)) == 9 and all(len(b) == 3 for b in epoch)


def test_train_accepts_optimizer_factories_and_shows_progress():
    X, y = gaussian_clusters(60, 3, 2, 3.0, device="cpu")
    net = mlp([3, 8, 2], device="cpu")
    h = train(net, "cross_entropy", X, y, steps=30, lr=0.1, optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
              progress=True)
    assert h[-5:].mean() < h[0]
    h = train(mlp([3, 8, 2], device="cpu"), "cross_entropy", X, y, steps=5, lr=0.1, optimizer=torch.optim.AdamW)
    assert torch.isfinite(h).all()


def test_train_progress_callable_wraps_the_step_loop_and_changes_nothing():
    X, y = gaussian_clusters(40, 3, 2, 2.0, device="cpu")
    seen = []
    def wrapper(it, total=None, desc=None):
        seen.append((total, desc))
        for step in it:
            seen.append(step)
            yield step
    with_bar = train(mlp([3, 4, 2], device="cpu"), "cross_entropy", X, y, steps=5, lr=0.1, progress=wrapper)
    plain = train(mlp([3, 4, 2], device="cpu"), "cross_entropy", X, y, steps=5, lr=0.1)
    assert seen == [(5, "train"), 0, 1, 2, 3, 4] and torch.equal(with_bar, plain)
    with pytest.raises(TypeError, match="`progress`"):
        train(mlp([3, 4, 2], device="cpu"), "cross_entropy", X, y, steps=2, progress="yes")


def _manual_sgd(net, X, y, lrs):
    "Plain full-batch SGD with step sizes `lrs`, written out: the reference for `train`'s schedules."
    for eta in lrs:
        net.zero_grad(); nn.functional.mse_loss(net(X), y).backward()
        with torch.no_grad():
            for p in net.parameters(): p -= eta * p.grad
    return net


def test_train_follows_a_per_step_schedule_given_as_list_tensor_array_or_function():
    X, y, _ = teacher_student(30, 3, hidden=(4,), seed=1, device="cpu", dtype=F64)
    lrs = [0.3 * (1 - t / 8) for t in range(8)]
    manual = _manual_sgd(mlp([3, 5, 1], device="cpu", dtype=F64), X, y, lrs)
    for schedule in (lrs, torch.tensor(lrs, dtype=F64), np.array(lrs), lambda t: lrs[t]):
        net = mlp([3, 5, 1], device="cpu", dtype=F64)
        train(net, "mse", X, y, steps=8, lr=schedule)
        for p, q in zip(net.parameters(), manual.parameters()): torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_train_schedule_of_equal_values_is_the_constant_run_and_adam_sees_the_schedule():
    X, y = gaussian_clusters(40, 3, 2, 2.0, device="cpu")
    runs = [train(mlp([3, 6, 2], device="cpu"), "cross_entropy", X, y, steps=10, lr=lr, batch_size=8)
            for lr in (0.2, [0.2] * 10)]
    assert torch.equal(*runs)
    frozen = mlp([3, 6, 2], device="cpu")
    before = [p.detach().clone() for p in frozen.parameters()]
    train(frozen, "cross_entropy", X, y, steps=5, lr=[0.0] * 5, optimizer="adam")
    assert all(torch.equal(p, q) for p, q in zip(frozen.parameters(), before))


def test_train_callback_sees_each_steps_gradient_before_the_update():
    X, y, _ = teacher_student(30, 3, seed=2, device="cpu", dtype=F64)
    net, seen, calls = mlp([3, 1], bias=False, device="cpu", dtype=F64), [], []
    def callback(t, model, loss):
        w = model[0].weight
        expected = torch.func.grad(lambda v: nn.functional.mse_loss(X @ v.T, y))(w.detach())
        seen.append((t, loss.item(), (w.grad - expected).abs().max().item()))
    lr_calls = lambda t: calls.append(t) or 0.1
    h = train(net, "mse", X, y, steps=6, lr=lr_calls, callback=callback)
    assert [t for t, _, _ in seen] == list(range(6)) and calls == list(range(6))
    assert max(e for _, _, e in seen) < 1e-14 and [l for _, l, _ in seen] == h.tolist()


# ---------------------------------------------------------------- bad input

BAD_CALLS = [
    (lambda: gaussian_clusters(2, 2, 3, 1.0), ValueError, "`n`"),
    (lambda: gaussian_clusters(10, 0, 3, 1.0), ValueError, "`dim`"),
    (lambda: gaussian_clusters(10, 2, 1, 1.0), ValueError, "`num_classes`"),
    (lambda: gaussian_clusters(10, 2, 3, -1.0), ValueError, "`separation`"),
    (lambda: gaussian_clusters(10, 2, 3, float("nan")), ValueError, "`separation`"),
    (lambda: gaussian_clusters(10.0, 2, 3, 1.0), TypeError, "`n`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, seed=-1), ValueError, "`seed`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, seed=1.5), TypeError, "`seed`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, seed="3"), TypeError, "`seed` must be an int or a torch.Generator"),
    (lambda: teacher_student(10, 2, seed=True), TypeError, "`seed`"),
    (lambda: train(mlp([3, 2], device="cpu"), "mse", torch.zeros(4, 3), torch.zeros(4, 2), seed=[1]), TypeError,
     "`seed`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, dtype=torch.int64), ValueError, "`dtype`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, dtype="float32"), TypeError, "`dtype`"),
    (lambda: gaussian_clusters(10, 2, 3, 1.0, device="warp-drive"), ValueError, "`device`"),
    (lambda: cluster_means(2, 3, "far"), TypeError, "`separation`"),
    (lambda: teacher_student(10, 2, noise=-0.1), ValueError, "`noise`"),
    (lambda: teacher_student(10, 2, hidden=(4, 0)), ValueError, r"`hidden\[1\]`"),
    (lambda: teacher_student(10, 2, hidden=4), TypeError, "`hidden`"),
    (lambda: teacher_student(10, 2, activation="swish"), ValueError, "`activation`"),
    (lambda: teacher_student(10, 2, out_dim=0), ValueError, "`out_dim`"),
    (lambda: teacher_student(10, 2, bias=1), TypeError, "`bias`"),
    (lambda: two_spirals(1), ValueError, "`n`"),
    (lambda: two_spirals(10, noise=-1.0), ValueError, "`noise`"),
    (lambda: two_spirals(10, turns=0.0), ValueError, "`turns`"),
    (lambda: concentric_rings(1), ValueError, "`n`"),
    (lambda: concentric_rings(10, noise=-0.1), ValueError, "`noise`"),
    (lambda: concentric_rings(10, inner=0.5), TypeError, "`inner`"),
    (lambda: concentric_rings(10, inner=(0.5, 0.2)), ValueError, "`inner`"),
    (lambda: concentric_rings(10, outer=(-1.0, 1.0)), ValueError, r"`outer\[0\]`"),
    (lambda: concentric_rings(10, inner=(0.0, 1.2)), ValueError, "`outer` must start"),
    (lambda: mlp([3]), ValueError, "`sizes`"),
    (lambda: mlp("3,4"), TypeError, "`sizes`"),
    (lambda: mlp([3, 0]), ValueError, r"`sizes\[1\]`"),
    (lambda: mlp([3, 2.5]), TypeError, r"`sizes\[1\]`"),
    (lambda: mlp([3, 2], activation="softmax"), ValueError, "`activation`"),
    (lambda: mlp([3, 2], activation=torch.tanh), TypeError, "`activation`"),
    (lambda: mlp([3, 2], init_scale=-1.0), ValueError, "`init_scale`"),
    (lambda: tiny_cnn(0), ValueError, "`in_channels`"),
    (lambda: tiny_cnn(1, image_size=1), ValueError, "`image_size`"),
    (lambda: tiny_cnn(1, width=0), ValueError, "`width`"),
    (lambda: tiny_images(10, channels=0), ValueError, "`channels`"),
    (lambda: tiny_images(10, noise=-0.5), ValueError, "`noise`"),
    (lambda: tiny_images(3, num_classes=4), ValueError, "`n`"),
    (lambda: preference_pairs(5, length=4, num_differ=5), ValueError, "`num_differ`"),
    (lambda: preference_pairs(5, vocab_size=1), ValueError, "`vocab_size`"),
    (lambda: preference_pairs(0), ValueError, "`n`"),
    (lambda: count_parameters("model"), TypeError, "`model`"),
    (lambda: tiny_lm(1), ValueError, "`vocab_size`"),
    (lambda: tiny_lm(dim=0), ValueError, "`dim`"),
    (lambda: tiny_lm(layers=0), ValueError, "`layers`"),
    (lambda: tiny_lm(kind="lstm"), ValueError, "`kind`"),
    (lambda: tiny_lm(kind="transformer", dim=10, heads=4), ValueError, "`heads`"),
    (lambda: tiny_lm(max_length=0), ValueError, "`max_length`"),
    (lambda: tiny_lm(dtype=torch.long), ValueError, "`dtype`"),
    (lambda: tiny_lm(device="cpu")(torch.zeros(3, 4)), ValueError, "`tokens`"),
    (lambda: tiny_lm(kind="transformer", max_length=4, device="cpu")(torch.zeros(2, 5, dtype=torch.long)), ValueError,
     "max_length"),
    (lambda: sequence_logprob(tiny_lm(device="cpu"), torch.zeros(2, 1, dtype=torch.long)), ValueError, "`tokens`"),
    (lambda: sequence_logprob(tiny_lm(device="cpu"), torch.zeros(2, 4)), TypeError, "`tokens`"),
    (lambda: sequence_logprob(tiny_lm(device="cpu"), torch.zeros(2, 4, dtype=torch.long),
                              torch.ones(2, 3, dtype=torch.bool)), ValueError, "`mask`"),
    (lambda: sequence_logprob(tiny_lm(device="cpu"), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4)), TypeError,
     "`mask`"),
    (lambda: next_token_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long)), ValueError, "`logits`"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS, ids=[m for _, _, m in BAD_CALLS])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match): call()


def _train_args(**over):
    X, y = gaussian_clusters(20, 3, 2, 1.0, device="cpu")
    args = dict(model=mlp([3, 2], device="cpu"), loss_fn="cross_entropy", X=X, y=y, steps=3, lr=0.1)
    args.update(over)
    return args


@pytest.mark.parametrize("over,error,match", [
    (dict(model="net"), TypeError, "`model`"),
    (dict(loss_fn="hinge"), ValueError, "`loss_fn`"),
    (dict(loss_fn=3), TypeError, "`loss_fn`"),
    (dict(X=[[1.0]]), TypeError, "`X`"),
    (dict(X=torch.zeros(20, 3, dtype=torch.long)), TypeError, "`X`"),
    (dict(X=torch.full((20, 3), float("nan"))), ValueError, "`X`"),
    (dict(y=torch.zeros(19, dtype=torch.long)), ValueError, "`y` has 19"),
    (dict(steps=0), ValueError, "`steps`"),
    (dict(lr=0.0), ValueError, "`lr`"),
    (dict(lr=float("inf")), ValueError, "`lr`"),
    (dict(batch_size=0), ValueError, "`batch_size`"),
    (dict(batch_size=21), ValueError, "`batch_size`"),
    (dict(optimizer="lbfgs"), ValueError, "`optimizer`"),
    (dict(optimizer=0.1), TypeError, "`optimizer`"),
    (dict(model=nn.ReLU()), ValueError, "`model`"),
    (dict(batch_size=4, seed=-2), ValueError, "`seed`"),
    (dict(lr=[0.1, 0.1]), ValueError, "`lr` has 2 values but `steps` is 3"),
    (dict(lr=[0.1, -0.1, 0.1]), ValueError, r"`lr\[1\]`"),
    (dict(lr=[0.1, float("nan"), 0.1]), ValueError, r"`lr\[1\]`"),
    (dict(lr=lambda t: -1.0), ValueError, r"`lr\(0\)`"),
    (dict(lr=lambda t: "fast"), TypeError, r"`lr\(0\)`"),
    (dict(lr="0.1"), TypeError, "`lr`"),
    (dict(callback=3), TypeError, "`callback`"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_train_bad_input_names_the_argument(over, error, match):
    with pytest.raises(error, match=match): train(**_train_args(**over))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_train_rejects_data_on_another_device():
    X, y = gaussian_clusters(20, 3, 2, 1.0, device="cuda")
    with pytest.raises(ValueError, match="`X`"): train(mlp([3, 2], device="cpu"), "cross_entropy", X, y, steps=2)


# ---------------------------------------------------------------- the tiny language model

KINDS = ["gru", "transformer"]


def _tokens(n=5, length=7, vocab=10, seed=0):
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_lm_is_causal_and_shaped(kind, device):
    lm, toks = tiny_lm(10, 16, 2, kind, 4, 12, device=device, dtype=F64), _tokens().to(device)
    out = lm(toks)
    assert out.shape == (5, 7, 10) and out.dtype == F64 and out.device.type == device.type
    for t in range(1, 7):  # changing token t leaves every logit before t untouched
        changed = toks.clone(); changed[:, t] = (changed[:, t] + 3) % 10
        assert torch.equal(lm(changed)[:, :t], out[:, :t]) and not torch.equal(lm(changed)[:, t], out[:, t])


def test_tiny_lm_default_sizes_are_in_the_promised_range():
    counts = {k: count_parameters(tiny_lm(kind=k, device="cpu")) for k in KINDS}
    assert counts == {"gru": 16 * 48 + 2 * (48 * 144 + 144) + 48 * 16 + 16,
                      "transformer": 16 * 48 + 32 * 48 + 2 * 2 * 48 + 48 * 144 + 144 + 48 * 48 + 48
                                     + 48 * 96 + 96 + 96 * 48 + 48 + 2 * 48 + 48 * 16 + 16}
    assert all(15_000 <= c <= 50_000 for c in counts.values())


def test_gru_layer_matches_torch_gru_with_the_same_weights():
    lm = tiny_lm(10, 8, 1, "gru", device="cpu", dtype=F64)
    torch_gru = nn.GRU(8, 8, batch_first=True, dtype=F64)
    layer = lm.blocks[0]
    with torch.no_grad():  # torch orders the gates (r, z, n) like the layer's chunks
        torch_gru.weight_ih_l0.copy_(layer.input.weight); torch_gru.bias_ih_l0.copy_(layer.input.bias)
        torch_gru.weight_hh_l0.copy_(layer.hidden.weight); torch_gru.bias_hh_l0.copy_(layer.hidden.bias)
    x = torch.randn(4, 6, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(layer(x), torch_gru(x)[0], atol=1e-12, rtol=0)


def test_attention_block_matches_a_loop_over_positions():
    lm = tiny_lm(10, 8, 1, "transformer", 2, 12, device="cpu", dtype=F64)
    block, x = lm.blocks[0], torch.randn(3, 5, 8, dtype=F64, generator=torch.Generator().manual_seed(2))
    out = block(x)
    for t in range(5):  # position t computed from the prefix alone
        torch.testing.assert_close(block(x[:, : t + 1])[:, -1], out[:, t], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_logprob_equals_prefix_by_prefix_scoring(kind):
    lm, toks = tiny_lm(10, 8, 1, kind, 2, 12, seed=3, device="cpu", dtype=F64), _tokens()
    total, mean = sequence_logprob(lm, toks)
    prefix_scores = lambda row: sum(torch.log_softmax(lm(row[None, :t])[0, -1], -1)[row[t]] for t in range(1, 7))
    by_prefix = torch.stack([prefix_scores(row) for row in toks])
    torch.testing.assert_close(total, by_prefix, atol=1e-12, rtol=0)
    torch.testing.assert_close(mean, total / 6, atol=1e-14, rtol=0)
    torch.testing.assert_close(mean.mean(), -next_token_loss(lm(toks), toks), atol=1e-12, rtol=0)


def test_sequence_logprob_mask_selects_positions_and_empty_rows_are_zero():
    lm, toks = tiny_lm(10, 8, device="cpu", dtype=F64), _tokens()
    mask = torch.zeros_like(toks, dtype=torch.bool); mask[:, 4:] = True; mask[0] = False; mask[1, 0] = True
    total, mean = sequence_logprob(lm, toks, mask)
    full = torch.log_softmax(lm(toks[:, :-1]), -1).gather(-1, toks[:, 1:, None])[..., 0]
    torch.testing.assert_close(total[1:], full[1:, 3:].sum(1), atol=1e-12, rtol=0)  # position 0 is never scored
    torch.testing.assert_close(mean[1:], full[1:, 3:].mean(1), atol=1e-12, rtol=0)
    assert total[0] == 0 and mean[0] == 0 and torch.isfinite(mean).all()


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_lm_works_with_vmap_per_sample_gradients_and_double_backward(kind):
    lm, toks = tiny_lm(8, 8, 1, kind, 2, 12, device="cpu", dtype=F64), _tokens(4, 5, 8)
    G = per_sample_grads(lm, next_token_loss, toks, toks)
    torch.testing.assert_close(G, ref.per_sample_grads_loop(lm, next_token_loss, toks, toks), atol=1e-12, rtol=0)
    small = tiny_lm(4, 2, 1, kind, 1, 6, device="cpu", dtype=F64)  # double backward: a symmetric Hessian
    H = hessian(*flat_objective(small, next_token_loss, toks[:, :4] % 4, toks[:, :4] % 4))
    torch.testing.assert_close(H, H.T, atol=1e-10, rtol=0)


def test_train_fits_a_tiny_lm_on_token_ids_and_rejects_ids_for_other_models():
    pairs = preference_pairs(64, 6, 8, 2, seed=4, device="cpu")
    lm = tiny_lm(8, 16, device="cpu")
    losses = train(lm, next_token_loss, pairs.chosen, pairs.chosen, steps=60, lr=1e-2, optimizer="adam")
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(TypeError, match="`X` must be floating point"):
        train(mlp([6, 2], device="cpu"), "cross_entropy", pairs.chosen, torch.zeros(64, dtype=torch.long), steps=1)


def test_loss_function_resolves_names_and_passes_callables():
    from gradviz.data import loss_function
    import torch.nn.functional as F
    assert loss_function("mse") is F.mse_loss and loss_function("cross_entropy") is F.cross_entropy
    fn = lambda a, b: (a - b).abs().mean()
    assert loss_function(fn) is fn
    with pytest.raises(ValueError, match="`loss_fn`"): loss_function("hinge")
    with pytest.raises(TypeError, match="`loss_fn`"): loss_function(3)


# --- class-balanced batches and label noise ----------------------------------------------------------------------

def test_balanced_batches_hold_distinct_classes_and_samples_and_skip_small_classes():
    from gradviz.data import balanced_batches
    labels = torch.tensor([0] * 9 + [1] * 3 + [2] * 7 + [3] * 5 + [4] * 6)  # class 1 is too small for per_class = 4
    batches = balanced_batches(labels, classes_per_batch=2, per_class=4, seed=3)
    assert len(batches) == len(labels) // 8
    for b in batches:
        assert len(b.unique()) == 8
        counts = torch.bincount(labels[b], minlength=5)
        assert sorted(counts.tolist()) == [0, 0, 0, 4, 4] and counts[1] == 0
    g = torch.Generator().manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(batches, balanced_batches(labels, 2, 4, seed=g)))
    assert not all(torch.equal(a, b) for a, b in zip(batches, balanced_batches(labels, 2, 4, seed=4)))


def test_balanced_batches_use_every_sample_of_a_class_before_repeating_one():
    from gradviz.data import balanced_batches
    labels = torch.arange(60) % 3  # 20 per class, 5 drawn at a time: 4 draws of a class cover it exactly
    batches = balanced_batches(labels, classes_per_batch=3, per_class=5, seed=0)  # 4 batches: every class 4 times
    counts = torch.bincount(torch.cat(batches), minlength=60)
    assert torch.equal(counts, torch.ones(60, dtype=torch.long))


def test_balanced_batches_refuse_bad_input():
    from gradviz.data import balanced_batches
    labels = torch.arange(20) % 4
    with pytest.raises(ValueError, match="`classes_per_batch`"): balanced_batches(labels, 5, 2)
    with pytest.raises(ValueError, match="`per_class`"): balanced_batches(labels, 2, 0)
    with pytest.raises(TypeError, match="`labels`"): balanced_batches(labels.double(), 2, 2)
    with pytest.raises(ValueError, match="`labels`"): balanced_batches(torch.tensor([], dtype=torch.long), 1, 1)
    with pytest.raises(ValueError, match="`labels`"): balanced_batches(labels - 1, 2, 2)


@pytest.mark.parametrize("rate,n,C", [(0.2, 5000, 10), (0.0, 50, 2), (1.0, 37, 3), (0.33, 101, 7)])
def test_flip_labels_flips_exactly_round_rate_n_to_other_classes(rate, n, C):
    from gradviz.data import flip_labels
    clean = torch.arange(n) % C
    noisy = flip_labels(clean, rate, num_classes=C, seed=1)
    assert int(noisy.flipped.sum()) == round(rate * n)
    assert torch.equal(noisy.flipped, noisy.labels != clean)
    assert int(noisy.labels.min()) >= 0 and int(noisy.labels.max()) < C and noisy.labels.dtype == clean.dtype
    assert torch.equal(noisy.labels, flip_labels(clean, rate, C, seed=1).labels)


def test_flip_labels_spread_uniformly_over_the_other_classes():
    from scipy.stats import chisquare
    from gradviz.data import flip_labels
    clean = torch.zeros(90_000, dtype=torch.long)  # all class 0: the flipped ones should land evenly on 1 … 5
    noisy = flip_labels(clean, 0.5, num_classes=6, seed=2)
    landed = torch.bincount(noisy.labels[noisy.flipped], minlength=6)
    assert landed[0] == 0
    assert chisquare(landed[1:].numpy()).pvalue > 1e-3


def test_flip_labels_refuse_bad_input():
    from gradviz.data import flip_labels
    y = torch.arange(10) % 3
    with pytest.raises(ValueError, match="`rate`"): flip_labels(y, -0.1, 3)
    with pytest.raises(ValueError, match="`num_classes`"): flip_labels(y, 0.1, 1)
    with pytest.raises(ValueError, match="`num_classes`"): flip_labels(y, 0.1, 2)  # label 2 does not fit
    with pytest.raises(TypeError, match="`y`"): flip_labels(y.float(), 0.1, 3)


# ---------------------------------------------------------------- Parts 8 and 9: Poisson, moons, mixtures, clips

@pytest.mark.parametrize("obstacle", [None, *OBSTACLES])
@pytest.mark.parametrize("boundary", ["dirichlet", "neumann"])
def test_poisson_stencil_equals_its_sparse_matrix(obstacle, boundary):
    system = poisson_system(13, obstacle, boundary, device="cpu")
    S = torch.from_numpy(system.to_scipy().toarray())
    V = torch.randn(4, system.size, generator=as_generator(0), dtype=F64)
    torch.testing.assert_close(system.matvec(V), V @ S.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(system.operator() @ V[0], S @ V[0], rtol=0, atol=1e-12)
    assert torch.equal(S, S.T) and torch.equal(system.diagonal(), S.diagonal())
    eig = torch.linalg.eigvalsh(S)
    if boundary == "dirichlet":
        assert system.null_space() is None and float(eig[0]) > 1e-6
    else:  # one zero eigenvalue, the constants
        assert abs(float(eig[0])) < 1e-12 and float(eig[1]) > 1e-6
        assert float(system.matvec(system.null_space()).abs().max()) < 1e-13


def test_poisson_eigenvalues_match_the_closed_form():
    N = 9
    c = torch.cos(torch.arange(1, N + 1, dtype=F64) * math.pi / (N + 1))
    closed = (4 - 2 * c[:, None] - 2 * c[None]).flatten().sort().values
    torch.testing.assert_close(torch.linalg.eigvalsh(poisson_system(N, device="cpu").dense()), closed,
                               rtol=0, atol=1e-12)


def test_poisson_grids_round_trip_and_solids_stay_zero():
    system = poisson_system(16, "box", device="cpu")
    v = torch.arange(system.size, dtype=F64)
    grid = system.to_grid(v)
    assert grid.shape == (16, 16) and bool((grid[~system.fluid] == 0).all())
    assert torch.equal(system.from_grid(grid), v)
    assert system.size == 16 * 16 - int((~system.fluid).sum())


def test_poisson_refuses_bad_input():
    with pytest.raises(ValueError, match="`N`"): poisson_system(2)
    with pytest.raises(ValueError, match="`boundary`"): poisson_system(8, boundary="periodic")
    with pytest.raises(ValueError, match="`obstacles`"): poisson_system(8, "star")
    with pytest.raises(TypeError, match="`obstacles`"): poisson_system(8, torch.zeros(8, 8))
    wall = torch.zeros(8, 8, dtype=torch.bool)
    wall[:, 4] = True
    with pytest.raises(ValueError, match="2 regions"): poisson_system(8, wall, "neumann")
    with pytest.raises(ValueError, match="`v`"): poisson_system(8).matvec(torch.zeros(5, dtype=F64))


def test_two_moons_and_friedman1_follow_their_formulas():
    X, y = two_moons(200, 0.0, device="cpu", dtype=F64)
    assert torch.allclose(X[y == 0].norm(dim=1), torch.ones(100, dtype=F64), atol=1e-12)
    assert torch.allclose((X[y == 1] - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1), torch.ones(100, dtype=F64))
    X, yf = friedman1(500, 7, 0.0, device="cpu", dtype=F64)
    x = X.numpy()
    numpy_target = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4])
    np.testing.assert_allclose(yf.numpy(), numpy_target, rtol=0, atol=1e-12)
    assert torch.equal(friedman1_mean(X), yf) and float(X.min()) >= 0 and float(X.max()) < 1
    with pytest.raises(ValueError, match="`dim`"): friedman1(dim=4)
    with pytest.raises(ValueError, match="`noise`"): two_moons(noise=-1.0)


def test_gaussian_mixture_score_is_the_gradient_of_its_log_density():
    mix = GaussianMixture(torch.randn(3, 2, generator=as_generator(0), dtype=F64),
                          torch.tensor([0.3, 0.5, 1.0], dtype=F64), [0.2, 0.3, 0.5])
    x = torch.randn(50, 2, generator=as_generator(1), dtype=F64).requires_grad_()
    for sigma in (0.0, 0.7):
        auto = torch.autograd.grad(mix.log_prob(x, sigma).sum(), x)[0]
        torch.testing.assert_close(mix.score(x.detach(), sigma), auto, rtol=0, atol=1e-12)
    gamma = mix.responsibilities(x.detach(), 0.2)
    torch.testing.assert_close(gamma.sum(1), torch.ones(50, dtype=F64), rtol=0, atol=1e-14)


def test_gaussian_mixture_in_one_dimension_matches_scipy():
    from scipy import stats
    mix = GaussianMixture(torch.tensor([-2.0, 1.0], dtype=F64), torch.tensor([0.5, 0.7], dtype=F64), [0.3, 0.7])
    x = torch.linspace(-4, 4, 41, dtype=F64)
    for sigma in (0.0, 0.4):
        sd = np.sqrt(np.array([0.25, 0.49]) + sigma**2)
        dens = 0.3 * stats.norm.pdf(x.numpy(), -2, sd[0]) + 0.7 * stats.norm.pdf(x.numpy(), 1, sd[1])
        np.testing.assert_allclose(mix.log_prob(x, sigma).exp().numpy(), dens, rtol=1e-12)
    assert mix.score(x).shape == x.shape


def test_gaussian_mixture_samples_follow_the_weights_and_variances():
    ring = imbalanced_ring(8, 0.05, 0.3, radius=3.0, std=0.2, device="cpu")
    x, comp = ring.sample(40_000, seed=3, noise_std=0.1)
    share = torch.bincount(comp, minlength=8).double() / 40_000
    assert float((share - ring.weights).abs().max()) < 0.01
    resid = x - ring.means[comp]
    assert abs(float(resid.var()) - (0.04 + 0.01)) < 0.002
    assert torch.equal(ring.sample(10, seed=3)[0], ring.sample(10, seed=3)[0])
    assert not torch.equal(ring.sample(10, seed=3)[0], ring.sample(10, seed=4)[0])


def test_gaussian_mixture_refuses_bad_input():
    with pytest.raises(ValueError, match="`weights` must sum to 1"): GaussianMixture(torch.zeros(2, 1), 1.0, [0.5, 0.6])
    with pytest.raises(ValueError, match="`weights`"): GaussianMixture(torch.zeros(2, 1), 1.0, [1.0])
    with pytest.raises(ValueError, match="`stds`"): GaussianMixture(torch.zeros(2, 1), torch.tensor([1.0, -1.0]), [.5, .5])
    with pytest.raises(ValueError, match="`x`"): imbalanced_ring(device="cpu").score(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="`rare` \\+ `major`"): imbalanced_ring(rare=0.5, major=0.5)
    with pytest.raises(ValueError, match="`k`"): imbalanced_ring(k=2)


def test_tiny_clips_move_in_the_label_direction():
    clips = tiny_clips(40, seed=1, device="cpu", dtype=F64)
    video = clips.x[:, 0] - clips.x[:, 0].median(dim=1, keepdim=True).values  # the moving blob alone
    w = video.clamp_min(0)
    r = torch.arange(24, dtype=F64)
    col = (w * r).sum((2, 3)) / w.sum((2, 3))
    row = (w * r[:, None]).sum((2, 3)) / w.sum((2, 3))
    dx, dy = col[:, -1] - col[:, 0], row[:, 0] - row[:, -1]  # up is −row
    angle = torch.atan2(dy, dx) % (2 * math.pi)
    predicted = torch.round(angle / (math.pi / 2)).long() % 4
    assert float((predicted == clips.y).double().mean()) > 0.95
    assert clips.x.shape == (40, 1, 8, 24, 24) and float(clips.x.min()) >= 0 and float(clips.x.max()) <= 1


def test_tiny_clips_background_correlation():
    for rho in (0.0, 1.0):
        clips = tiny_clips(400, background_correlation=rho, seed=0, device="cpu")
        agree = float((clips.background == clips.y).double().mean())
        assert (agree == 1.0) if rho == 1.0 else abs(agree - 0.25) < 0.07
    with pytest.raises(ValueError, match="`background_correlation`"): tiny_clips(4, background_correlation=1.5)


@pytest.mark.parametrize("kind", ["3d", "2d_temporal", "2plus1d"])
def test_video_cnn_shapes_and_frame_order(kind):
    net = video_cnn(kind, in_channels=2, num_classes=5, width=4, seed=0, device="cpu", dtype=F64)
    x = torch.rand(3, 2, 8, 12, 12, generator=as_generator(0), dtype=F64)
    with torch.no_grad(): out, rev = net(x), net(x.flip(2))
    assert out.shape == (3, 5)
    assert (float((out - rev).abs().max()) < 1e-12) == (kind == "2d_temporal")
    other = video_cnn(kind, in_channels=2, num_classes=5, width=4, seed=1, device="cpu", dtype=F64)
    assert not torch.equal(next(net.parameters()), next(other.parameters()))
    with pytest.raises(ValueError, match="`kind`"): video_cnn("4d")


def test_gaussian_mixture_keeps_a_float_std_exact():
    mix = GaussianMixture(torch.zeros(2, 1, dtype=F64), 0.7, [0.5, 0.5])
    assert mix.stds.dtype == F64 and float(mix.stds[0]) == 0.7
