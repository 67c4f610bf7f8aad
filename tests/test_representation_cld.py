"""Reference tests for gradviz.representation.cld: CLD against scipy's Pearson (float64), affine invariance, short and
constant sequences, class-balanced selection with exact budgets, the trainer against a hand-written loop, eval-mode
logging, and the chapter's findings at small settings."""
import copy
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from scipy import stats
from torch import nn

from gradviz.core import as_generator
from gradviz.data import mlp
from gradviz.representation.cld import (BALANCE, METHODS, CoresetRuns, CoresetTask, RunSummary, Trajectories,
                                        checkpoint_stability, class_budgets, classifier, cld_figure, cld_scores,
                                        compute_coresets, coreset_fraction_figure, coreset_indices, coreset_task,
                                        easy_coreset, explore_cld, fit_classifier, hard_coreset, loss_trajectories,
                                        plot_accuracy_vs_fraction, plot_checkpoint_stability, plot_cld_histograms,
                                        plot_loss_differences,
                                        random_coreset, select_coreset, summarise_runs)

F64 = torch.float64


@pytest.fixture(scope="module")
def small():
    "A 1,000-sample task with 20 % noise and a float64 proxy run of 8 epochs (θ₀ logged)."
    task = coreset_task(n_train=1000, n_val=200, n_test=500, seed=7, device="cpu")
    X, Xv = task.X.double(), task.X_val.double()
    traj = loss_trajectories(lambda: classifier(task, (32,), seed=7).double(), X, task.y, Xv, task.y_val, 8, seed=7)
    return task, traj


# ---------------------------------------------------------------- the score
def test_cld_equals_scipy_pearsonr(small):
    task, traj = small
    got = cld_scores(traj.train, traj.labels, traj.val_class)
    d_tr, d_val = np.diff(traj.train.numpy(), axis=0), np.diff(traj.val_class.numpy(), axis=0)
    ref = np.array([stats.pearsonr(d_tr[:, i], d_val[:, c])[0] for i, c in enumerate(task.y.tolist())])
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10)
    pooled = cld_scores(traj.train, traj.labels, traj.pooled)
    ref_pooled = np.array([stats.pearsonr(d_tr[:, i], np.diff(traj.val.mean(1).numpy()))[0] for i in range(200)])
    np.testing.assert_allclose(pooled[:200].numpy(), ref_pooled, rtol=0, atol=1e-10)


@pytest.mark.parametrize("a, b", [(2.5, 3.0), (1e-3, -7.0), (-0.5, 1.0), (-40.0, 0.0)])
def test_affine_invariance(small, a, b):
    _, traj = small
    s = cld_scores(traj.train, traj.labels, traj.val_class)
    got = cld_scores(a * traj.train + b, traj.labels, traj.val_class)
    tol = 1e-12 if abs(b) <= abs(a) * 10 else 1e-9  # a shift b ≫ a·ℓ costs digits in the differences (cancellation)
    torch.testing.assert_close(got, s if a > 0 else -s, rtol=0, atol=tol)
    torch.testing.assert_close(cld_scores(traj.train, traj.labels, a * traj.val_class + b), s if a > 0 else -s,
                               rtol=0, atol=tol)


def test_short_and_constant_sequences(small):
    _, traj = small
    with pytest.raises(ValueError, match="`train_losses`.*T ≥ 2"):
        cld_scores(traj.train[:2], traj.labels, traj.val_class[:2])
    two = cld_scores(traj.train[:3], traj.labels, traj.val_class[:3])
    assert (((two.abs() - 1).abs() < 1e-12) | (two == 0)).all() and ((two.abs() - 1).abs() < 1e-12).any()
    # a hand-made T = 2 case: up-down against down-up is -1, up-down against up-down is +1
    losses = torch.tensor([[1.0, 1.0], [2.0, 0.0], [1.5, 0.5]], dtype=F64)
    torch.testing.assert_close(cld_scores(losses, torch.tensor([0, 0]), torch.tensor([3.0, 4.0, 3.2], dtype=F64)),
                               torch.tensor([1.0, -1.0], dtype=F64), rtol=0, atol=1e-15)
    flat = torch.ones(6, 4, dtype=F64) * torch.tensor([0.0, 1.0, -3.0, 1e6], dtype=F64)
    assert cld_scores(flat, torch.tensor([0, 1, 0, 1]), traj.val_class[:6]).tolist() == [0.0] * 4
    linear = torch.arange(6, dtype=F64)[:, None] * 0.1 + torch.tensor([0.3, 2.0], dtype=F64)  # constant differences
    assert cld_scores(linear, torch.tensor([0, 1]), traj.val_class[:6]).tolist() == [0.0, 0.0]
    flat_target = cld_scores(traj.train[:6], traj.labels, torch.full((6, traj.val_class.shape[1]), 2.0, dtype=F64))
    assert not flat_target.isnan().any() and (flat_target == 0).all()


def test_scores_compare_each_sample_with_its_labelled_class(small):
    _, traj = small
    s = cld_scores(traj.train, traj.labels, traj.val_class)
    for c in (0, 3):
        m = traj.labels == c
        torch.testing.assert_close(s[m], cld_scores(traj.train[:, m], traj.labels[m], traj.val_class[:, c]))


# ---------------------------------------------------------------- selection
@pytest.mark.parametrize("balance", BALANCE)
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2, 1 / 3, 0.5, 1.0])
def test_exactly_k_c_unique_indices_per_class(balance, fraction):
    task = coreset_task(n_train=3000, n_val=100, n_test=100, noise=0.0, imbalance=8.0, seed=2, device="cpu")
    scores = torch.rand(len(task.y), generator=as_generator(5), dtype=F64)
    idx = select_coreset(scores, task.y, fraction, balance)
    k = class_budgets(task.y, fraction, balance)
    n_c = torch.bincount(task.y)
    assert len(idx.unique()) == len(idx) and (idx.diff() > 0).all()
    assert torch.bincount(task.y[idx], minlength=10).tolist() == [k[c] for c in range(10)]
    if balance == "equal":
        want = max(1, round(fraction * len(task.y) / 10))
        assert all(k[c] == min(want, int(n_c[c])) for c in range(10))
    else:
        assert all(k[c] == max(1, round(fraction * int(n_c[c]))) for c in range(10))
    for c in range(10):  # within a class, every kept score beats every dropped one
        kept = torch.zeros(len(scores), dtype=torch.bool)
        kept[idx] = True
        m = task.y == c
        if (m & ~kept).any(): assert scores[m & kept].min() >= scores[m & ~kept].max()


def test_indices_point_into_the_original_data():
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 1, 1, 0, 2])
    scores = torch.tensor([0.9, 0.1, 0.3, 0.8, 0.7, 0.5, 0.2, 0.8, 0.7, 0.9])
    # classes 0: {1, 4, 8}, 1: {3, 6, 7}, 2: {0, 2, 5, 9}; ties at 0.7 (4, 8), 0.8 (3, 7), 0.9 (0, 9) go to the lower index
    assert select_coreset(scores, labels, 0.2).tolist() == [0, 3, 4]
    assert select_coreset(scores, labels, 0.5).tolist() == [0, 3, 4, 7, 8, 9]
    assert select_coreset(scores, labels, 1.0).tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]  # equal: k = 3 drops sample 2
    assert select_coreset(scores, labels, 1.0, "proportional").tolist() == list(range(10))
    assert easy_coreset(scores, labels, 0.1).tolist() == [1, 2, 6]
    assert hard_coreset(scores, labels, 0.1).tolist() == [0, 3, 4]


def test_random_coreset_is_seeded_and_balanced():
    labels = torch.arange(600) % 6
    a, b = random_coreset(labels, 0.1, seed=3), random_coreset(labels, 0.1, seed=as_generator(3))
    assert torch.equal(a, b) and not torch.equal(a, random_coreset(labels, 0.1, seed=4))
    assert torch.bincount(labels[a]).tolist() == [10] * 6


# ---------------------------------------------------------------- training and logging
def test_fit_classifier_equals_a_hand_written_loop():
    X = torch.randn(50, 3, generator=as_generator(0), dtype=F64)
    y = torch.arange(50) % 3
    model = fit_classifier(mlp([3, 5, 3], "relu", seed=1, dtype=F64), X, y, epochs=3, lr=0.1, momentum=0.8,
                           batch_size=16, seed=9)
    ref, g, buf = mlp([3, 5, 3], "relu", seed=1, dtype=F64), as_generator(9), None
    ps = list(ref.parameters())
    for _ in range(3):
        for idx in torch.randperm(50, generator=g).split(16):
            grads = torch.autograd.grad(F.cross_entropy(ref(X[idx]), y[idx]), ps)
            buf = list(grads) if buf is None else [0.8 * b + gr for b, gr in zip(buf, grads)]
            with torch.no_grad():
                for p, b in zip(ps, buf): p -= 0.1 * b
    for p, q in zip(model.parameters(), ps): torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_trajectories_are_logged_in_eval_mode_in_fixed_order():
    task = coreset_task(n_train=300, n_val=50, n_test=50, seed=1, device="cpu")
    base = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10))
    model_fn = lambda: copy.deepcopy(base)
    traj = loss_trajectories(model_fn, task.X, task.y, task.X_val, task.y_val, 3, seed=1)
    assert isinstance(traj, Trajectories) and traj.train.shape == (4, 300) and traj.val.shape == (4, 50)
    init = model_fn().eval()
    with torch.no_grad():
        torch.testing.assert_close(traj.train[0], F.cross_entropy(init(task.X), task.y, reduction="none"))
        final = traj.model.eval()
        torch.testing.assert_close(traj.train[-1], F.cross_entropy(final(task.X), task.y, reduction="none"))
        torch.testing.assert_close(traj.val[-1], F.cross_entropy(final(task.X_val), task.y_val, reduction="none"))
    for c in range(10):
        torch.testing.assert_close(traj.val_class[:, c], traj.val[:, task.y_val == c].mean(1))
    torch.testing.assert_close(traj.pooled, traj.val.mean(1))
    plain = lambda: classifier(task, (16,), seed=2)  # no dropout: the run is a function of `seed` alone
    with_init = loss_trajectories(plain, task.X, task.y, task.X_val, task.y_val, 3, seed=1)
    no_init = loss_trajectories(plain, task.X, task.y, task.X_val, task.y_val, 3, include_init=False, seed=1)
    torch.testing.assert_close(no_init.train, with_init.train[1:], rtol=0, atol=0)  # logging θ₀ changes nothing


def test_task():
    task = coreset_task(seed=0, device="cpu")
    assert isinstance(task, CoresetTask) and int(task.flipped.sum()) == 1000
    assert torch.bincount(task.y_val).tolist() == [50] * 10 and torch.bincount(task.y_test).tolist() == [500] * 10
    again = coreset_task(seed=as_generator(0), device="cpu")
    assert torch.equal(again.X, task.X) and torch.equal(again.y, task.y)
    clean = coreset_task(noise=0.0, seed=0, device="cpu")
    assert torch.equal(clean.X, task.X) and torch.equal(clean.y, task.y_clean)
    imb = torch.bincount(coreset_task(n_train=20_000, noise=0.0, imbalance=10.0, seed=0, device="cpu").y)
    assert 8 < imb[0] / imb[-1] < 12.5


def test_coreset_indices(small):
    task, traj = small
    s = cld_scores(traj.train[:5], traj.labels, traj.pooled[:5])
    assert torch.equal(coreset_indices("cld", traj, 0.2, target="pooled", checkpoints=5), select_coreset(s, task.y, 0.2))
    assert torch.equal(coreset_indices("easy", traj, 0.2), easy_coreset(traj.train[-1], task.y, 0.2))
    assert torch.equal(coreset_indices("random", traj, 0.2, seed=4), random_coreset(task.y, 0.2, seed=4))


# ---------------------------------------------------------------- the chapter's findings, at small settings
REPORT = (3, 4, 5)


@pytest.fixture(scope="module")
def claim():
    "The chapter's setting (5,000 samples, 20 % noise, 30 epochs, θ₀ logged) at f ≤ 20 %, three methods."
    return compute_coresets(REPORT, (0.05, 0.1, 0.2), ("cld", "random", "easy"), full=False, device="cpu")


def test_cld_coreset_filters_label_noise(claim):
    "The top-20 % CLD coreset holds under a quarter of the 20 % noise rate in every seed; random keeps about 20 %."
    for s in REPORT:
        assert claim.noise["cld", 0.2, s] < 0.2 / 4
        assert 0.15 < claim.noise["random", 0.2, s] < 0.25
    scores = {s: cld_scores(t.train, t.labels, t.val_class) for s, t in claim.trajectories.items()}
    assert all(scores[s][claim.tasks[s].flipped].mean() < scores[s][~claim.tasks[s].flipped].mean() - 0.4 for s in REPORT)


def test_cld_beats_random_by_five_points_on_average(claim):
    "At f ≤ 20 % the mean gap over seeds is ≥ 5 points, and ≥ 3 points in every seed."
    for f in (0.05, 0.1, 0.2):
        gaps = [claim.accuracy["cld", f, s] - claim.accuracy["random", f, s] for s in REPORT]
        assert np.mean(gaps) >= 0.05 and min(gaps) >= 0.03


def test_easy_baseline_does_as_well(claim):
    "As measured: the lowest-loss coreset is never more than a point behind CLD, and ahead at f = 5 %."
    mean = summarise_runs(claim).mean
    assert all(mean["easy", f] >= mean["cld", f] - 0.01 for f in (0.05, 0.1, 0.2))
    assert mean["easy", 0.05] > mean["cld", 0.05] + 0.01


def test_first_half_of_checkpoints_ranks_like_all(claim):
    "Spearman(CLD from the first 16 of 31 checkpoints, CLD from all) > 0.9; without θ₀ (15 of 30) it is below 0.9."
    for s in REPORT:
        traj = claim.trajectories[s]
        assert checkpoint_stability(traj, [16])[0] > 0.9
        no_init = replace(traj, train=traj.train[1:], val=traj.val[1:], val_class=traj.val_class[1:])
        assert checkpoint_stability(no_init, [15])[0] < 0.9


def test_without_noise_the_gap_is_small(claim):
    "Without label noise the mean CLD − random gap at f = 10 % and 20 % is under 5 points and below the noisy one."
    clean = compute_coresets(REPORT, (0.1, 0.2), ("cld", "random"), noise=0.0, full=False, device="cpu")
    for f in (0.1, 0.2):
        gap = np.mean([clean.accuracy["cld", f, s] - clean.accuracy["random", f, s] for s in REPORT])
        noisy = np.mean([claim.accuracy["cld", f, s] - claim.accuracy["random", f, s] for s in REPORT])
        assert abs(gap) < 0.05 and abs(gap) < noisy


def test_selection_transfers_to_a_wider_network(claim):
    "Coresets from the 64-wide proxy train a 256 × 256 MLP ≥ 5 points better than random ones at f = 10 %."
    wide = compute_coresets(REPORT, (0.1,), ("cld", "random"), target_hidden=(256, 256), full=False,
                            proxies={s: (claim.tasks[s], claim.trajectories[s]) for s in REPORT})
    assert np.mean([wide.accuracy["cld", 0.1, s] - wide.accuracy["random", 0.1, s] for s in REPORT]) >= 0.05


# ---------------------------------------------------------------- figures and explorer
@pytest.fixture(scope="module")
def tiny_runs():
    return compute_coresets((0, 1), (0.1, 0.3), ("cld", "random"), task_kwargs=dict(n_train=400, n_val=100, n_test=200),
                            epochs=4, device="cpu")


def test_runs_and_summary(tiny_runs):
    assert isinstance(tiny_runs, CoresetRuns) and len(tiny_runs.accuracy) == 8 and set(tiny_runs.full) == {0, 1}
    s = summarise_runs(tiny_runs, "noise")
    assert isinstance(s, RunSummary)
    assert s.mean["cld", 0.1] == pytest.approx(np.mean([tiny_runs.noise["cld", 0.1, k] for k in (0, 1)]))
    assert s.std["random", 0.3] == pytest.approx(np.std([tiny_runs.noise["random", 0.3, k] for k in (0, 1)]))


def test_figures(tiny_runs):
    assert isinstance(plot_accuracy_vs_fraction(tiny_runs, title="t"), Figure)
    traj, task = tiny_runs.trajectories[0], tiny_runs.tasks[0]
    assert isinstance(plot_cld_histograms(cld_scores(traj.train, traj.labels, traj.val_class), task.flipped), Figure)
    fig = plot_loss_differences(traj, task.flipped, cls=1, n=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    shown = [len(ax.lines) - 1 for ax in fig.axes]  # sample lines, the validation target aside
    assert shown == [min(2, int(((traj.labels == 1) & (task.flipped == w)).sum())) for w in (False, True)]
    rho = np.array([checkpoint_stability(tiny_runs.trajectories[s], [3, 5]) for s in (0, 1)])
    assert rho.shape == (2, 2) and np.allclose(rho[:, -1], 1.0)
    assert isinstance(plot_checkpoint_stability([3, 5], rho), Figure)
    fig = coreset_fraction_figure(tiny_runs, active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 4


def _tiny_cache():
    task = coreset_task(n_train=300, n_val=60, n_test=100, seed=0, device="cpu")
    traj = loss_trajectories(lambda: classifier(task, (16,)), task.X, task.y, task.X_val, task.y_val, 4)
    return {(0.2, 1.0, 500, 64): (task, traj)}


def test_cld_figure_and_explorer():
    cache = _tiny_cache()
    fig = cld_figure(fraction=0.2, checkpoints=5, cache=cache)
    assert isinstance(fig, go.Figure) and [t.name for t in fig.data] == ["correct label", "mislabelled", *METHODS]
    task, traj = cache[0.2, 1.0, 500, 64]
    s = cld_scores(traj.train, traj.labels, traj.val_class)
    share = [float(task.flipped[select_coreset(s, task.y, f)].double().mean()) for f in np.geomspace(0.02, 0.5, 9)]
    np.testing.assert_allclose(fig.data[2].y, share)
    bars = np.array([fig.data[0].y, fig.data[1].y])
    np.testing.assert_allclose(bars.sum(1) * 0.05, [1.0, 1.0])  # densities over bins of width 0.05
    full = cld_figure(fraction=0.2, checkpoints=5, retrain=True, target="pooled", cache=cache)
    assert len(full.data) == 7 and all(0 <= a <= 1 for a in full.data[-1].y)
    ex = explore_cld(cache)
    assert all(ex.controls[n].costly for n in ("noise", "imbalance", "n_val", "proxy_width", "retrain"))
    a = ex.update(checkpoints=5)
    assert ex.update(checkpoints=5) is a and ex.update(checkpoints=4) is not a
    with pytest.raises(ValueError, match="`target`"): ex.update(target="median")
    assert len(cache) == 1


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    task = coreset_task(n_train=200, n_val=50, n_test=50, seed=0, device=device)
    traj = loss_trajectories(lambda: classifier(task, (8,)), task.X, task.y, task.X_val, task.y_val, 3)
    assert traj.train.device.type == device and next(traj.model.parameters()).device.type == device
    assert coreset_indices("cld", traj, 0.2).device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_TASK = coreset_task(n_train=100, n_val=20, n_test=20, seed=0, device="cpu")
_TRAJ = loss_trajectories(lambda: classifier(_TASK, (4,)), _TASK.X, _TASK.y, _TASK.X_val, _TASK.y_val, 3, batch_size=50)
_L, _Y, _V = _TRAJ.train, _TRAJ.labels, _TRAJ.val_class
_NET = classifier(_TASK, (4,))
_RUNS = CoresetRuns({("cld", 0.1, 0): 0.5}, {("cld", 0.1, 0): 0.5}, {("cld", 0.1, 0): 0.1}, {0: None}, {0: _TASK},
                    {0: _TRAJ})
_CACHE = {(0.2, 1.0, 500, 64): (_TASK, _TRAJ)}
_BAD_LABELS = [_Y[:-1], _Y.double(), _Y[None], -_Y - 1, "y", _Y[:0]]
_FRACTIONS = [0.0, -0.1, 1.5, NAN, "f"]

PROBES = [
    Probe(fit_classifier, dict(model=_NET, X=_TASK.X, y=_TASK.y, epochs=1),
          dict(model=["model"], X=[_TASK.X[0], _TASK.X.long(), torch.full_like(_TASK.X, NAN), "X"],
               y=_BAD_LABELS, epochs=SIZES, lr=[0.0, NAN], momentum=[-0.1, 1.5, NAN], batch_size=SIZES,
               seed=[-1, 0.5], on_epoch=[3], progress=["bar"])),
    Probe(loss_trajectories, dict(model_fn=lambda: classifier(_TASK, (4,)), X=_TASK.X, y=_TASK.y, X_val=_TASK.X_val,
                                  y_val=_TASK.y_val, epochs=1),
          dict(model_fn=[3, lambda: "model"], X=[_TASK.X[0], "X", torch.full_like(_TASK.X, INF)], y=_BAD_LABELS,
               X_val=[_TASK.X_val[0], "X"], y_val=[_TASK.y_val[:-1], _TASK.y_val.double(), _TASK.y_val * 0],
               epochs=SIZES, include_init=["yes"], lr=[0.0, NAN], momentum=[2.0], batch_size=SIZES, seed=[-1, 0.5],
               device=[UNKNOWN, 3], progress=["bar"])),
    Probe(cld_scores, dict(train_losses=_L, labels=_Y, val_losses=_V),
          dict(train_losses=[_L[:2], _L[0], _L[..., None], _L.long(), torch.full_like(_L, NAN), "L"],
               labels=[_Y[:-1], _Y.double(), -_Y - 1, _Y + 100, "y"],
               val_losses=[_V[:-1], _V[:2], _V[:, :2], _V[..., None], torch.full_like(_V, NAN), "V"])),
    Probe(class_budgets, dict(labels=_Y, fraction=0.2),
          dict(labels=[_Y.double(), _Y[:0], "y"], fraction=_FRACTIONS, balance=[UNKNOWN])),
    Probe(select_coreset, dict(scores=_L[-1], labels=_Y, fraction=0.2),
          dict(scores=[_L, torch.full_like(_L[-1], NAN), "s"], labels=[_Y[:-1], _Y.double(), "y"], fraction=_FRACTIONS,
               balance=[UNKNOWN])),
    Probe(random_coreset, dict(labels=_Y, fraction=0.2),
          dict(labels=[_Y.double(), _Y[:0], "y"], fraction=_FRACTIONS, balance=[UNKNOWN], seed=[-1, 0.5])),
    Probe(easy_coreset, dict(final_losses=_L[-1], labels=_Y, fraction=0.2),
          dict(final_losses=[_L, torch.full_like(_L[-1], NAN)], labels=[_Y[:-1]], fraction=_FRACTIONS,
               balance=[UNKNOWN])),
    Probe(hard_coreset, dict(final_losses=_L[-1], labels=_Y, fraction=0.2),
          dict(final_losses=[_L, "l"], labels=[_Y[:-1], "y"], fraction=_FRACTIONS, balance=[UNKNOWN])),
    Probe(coreset_task, dict(n_train=50, n_val=20, n_test=10, device="cpu"),
          dict(n_train=SIZES + [5], n_val=SIZES + [5], n_test=SIZES, dim=SIZES, num_classes=[1, 0],
               separation=[-1.0, NAN], noise=[-0.1, 1.5, NAN], imbalance=[0.5, NAN], seed=[-1, 0.5],
               device=[UNKNOWN])),
    Probe(classifier, dict(task=_TASK), dict(task=["task", _TRAJ], hidden=[[], "64", [0], [4, -1]], seed=[-1, 0.5])),
    Probe(coreset_indices, dict(method="random", traj=_TRAJ, fraction=0.2),
          dict(method=[UNKNOWN], traj=["traj", _TASK], fraction=_FRACTIONS, balance=[UNKNOWN], target=[UNKNOWN],
               checkpoints=[2, 5, 0.5], seed=[-1, 0.5])),
    Probe(compute_coresets, dict(seeds=(0,), fractions=(0.5,), methods=("random",), epochs=1, full=False,
                                 task_kwargs=dict(n_train=50, n_val=20, n_test=20), device="cpu"),
          dict(seeds=[(), (-1,), (0.5,), 3], fractions=[(), (0.0,), (1.5,), (NAN,), 0.5], methods=[(UNKNOWN,)],
               noise=[-0.1, 1.5], task_kwargs=["kw"], proxy_hidden=[(), (0,)], target_hidden=[(0,)],
               epochs=SIZES, include_init=["yes"], proxies=["proxies", {0: ("task", _TRAJ)}, {0: (_TASK, "traj")}],
               device=[UNKNOWN], progress=["bar"])),
    Probe(summarise_runs, dict(runs=_RUNS), dict(runs=["runs", {}], metric=[UNKNOWN])),
    Probe(plot_accuracy_vs_fraction, dict(runs=_RUNS), dict(runs=["runs", {}])),
    Probe(plot_cld_histograms, dict(scores=_L[-1], flipped=_TASK.flipped),
          dict(scores=[_L, torch.full_like(_L[-1], NAN), "s"], flipped=[_TASK.flipped[:-1], _TASK.flipped.double()])),
    Probe(plot_loss_differences, dict(traj=_TRAJ, flipped=_TASK.flipped),
          dict(traj=["traj", _TASK], flipped=[_TASK.flipped[:-1], _TASK.flipped.long(), "f"], cls=[-1, 10, 0.5],
               n=SIZES)),
    Probe(checkpoint_stability, dict(traj=_TRAJ, counts=[3, 4]),
          dict(traj=["traj"], counts=[[], [2], [5], 3, [3.5]], target=[UNKNOWN])),
    Probe(plot_checkpoint_stability, dict(counts=[3, 4], rho=np.array([[0.5, 1.0]])),
          dict(counts=[[3], "ab", []], rho=[np.array([[0.5]]), np.array([[NAN, 1.0]])]),
          named=dict(counts="rho")),
    Probe(coreset_fraction_figure, dict(runs=_RUNS), dict(runs=["runs"], active=[-1, 5, 0.5])),
    Probe(cld_figure, dict(fraction=0.2, checkpoints=3, cache=_CACHE),
          dict(fraction=_FRACTIONS, noise=[-0.1, 0.95, NAN], imbalance=[0.5, INF], checkpoints=[2, 5, 0.5],
               target=[UNKNOWN], n_val=SIZES, proxy_width=SIZES, retrain=["yes"], cache=["cache", 3])),
    Probe(explore_cld, dict(cache=None), dict(cache=["cache", 3])),
]
