"""Reference tests for gradviz.representation.ms_loss: ∂L/∂S against the closed-form MS weights and finite differences,
the official formula, pytorch-metric-learning's MultiSimilarityLoss (+ MultiSimilarityMiner), mining limits, overflow,
the other pair losses against loops, recall against a loop, the similarity-usage findings and the zero-shot claim
at small settings (float64 unless noted)."""
import functools
import math

import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

import reference as ref
from gradviz.core import as_generator
from gradviz.representation.ms_loss import (LOSSES, LossComparison, MinedPairs, SimilarityUsage, TrainedEmbedding,
                                            ZeroShotTask, binomial_deviance_loss, compare_losses, contrastive_loss,
                                            explore_ms_loss, lifted_structure_loss, ms_loss, ms_loss_figure, ms_mine,
                                            pair_weights, plot_pair_weights, plot_recall_curves, recall_at_k,
                                            similarity_usage, toy_batch, train_embedding, triplet_loss,
                                            weight_curves_figure, zero_shot_task)

F64 = torch.float64


def _batch(classes=6, instances=4, dim=8, spread=0.6, seed=0):
    return toy_batch(classes, instances, dim=dim, spread=spread, seed=seed, device="cpu")


def _uneven(seed=0, m=30, d=16):
    "Random embeddings (not unit norm) and labels with unequal class sizes, every class at least twice."
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((k,), c) for c, k in enumerate((2, 3, 5, 4, 2, 6, 8))])[:m]
    return torch.randn(len(y), d, generator=g, dtype=F64), y[torch.randperm(len(y), generator=g)]


def _closed_form(S, y, alpha=2.0, beta=50.0, lam=0.5, eps=0.1, mine=True):
    "∂L/∂S from the closed-form weights w±/m, anchor by anchor in plain Python."
    W, m = torch.zeros_like(S), len(S)
    for i in range(m):
        P = [k for k in range(m) if y[k] == y[i] and k != i]
        N = [k for k in range(m) if y[k] != y[i]]
        if mine:
            lo, hi = min(float(S[i, k]) for k in P), max(float(S[i, k]) for k in N)
            P, N = [k for k in P if S[i, k] < hi + eps], [k for k in N if S[i, k] > lo - eps]
        if not P or not N: continue
        zp = 1 + sum(math.exp(-alpha * (float(S[i, k]) - lam)) for k in P)
        zn = 1 + sum(math.exp(beta * (float(S[i, k]) - lam)) for k in N)
        for k in P: W[i, k] = -math.exp(-alpha * (float(S[i, k]) - lam)) / zp / m
        for k in N: W[i, k] = math.exp(beta * (float(S[i, k]) - lam)) / zn / m
    return W


def _official(feats, labels, scale_pos=2.0, scale_neg=40.0, thresh=0.5, margin=0.1):
    "The official MS loss, re-implemented from its formula: a loop over anchors, division by the batch size."
    sim = feats @ feats.T
    terms = []
    for i in range(len(feats)):
        pos_ = sim[i][labels == labels[i]]
        pos_ = pos_[pos_ < 1 - 1e-5]
        neg_ = sim[i][labels != labels[i]]
        neg, pos = neg_[neg_ + margin > pos_.min()], pos_[pos_ - margin < neg_.max()]
        if len(neg) < 1 or len(pos) < 1: continue
        terms.append(torch.log(1 + torch.exp(-scale_pos * (pos - thresh)).sum()) / scale_pos
                     + torch.log(1 + torch.exp(scale_neg * (neg - thresh)).sum()) / scale_neg)
    return sum(terms) / len(feats) if terms else torch.zeros((), dtype=feats.dtype)


# ---------------------------------------------------------------- GPW: ∂L/∂S
@pytest.mark.parametrize("mine", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autograd_weights_equal_closed_form(mine, seed):
    e, y = _batch(seed=seed)
    W = pair_weights(functools.partial(ms_loss, mine=mine), e, y)
    torch.testing.assert_close(W, _closed_form(e @ e.T, y, mine=mine), rtol=0, atol=1e-10)
    neg_mass = (W.clamp_min(0) * len(e)).sum(1)
    pos_mass = (-W.clamp_max(0) * len(e)).sum(1)
    assert float(neg_mass.max()) < 1 and float(pos_mass.max()) < 1
    assert float(neg_mass.max()) > 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_pair_weights_against_finite_differences(name):
    "∂L/∂S by central differences of the loss as a function of S, entry by entry (no autograd)."
    e, y = _batch(4, 3, seed=3)
    S = (e @ e.T).clone()
    z = torch.zeros(len(e), 1, dtype=F64)
    f = lambda s: LOSSES[name](z, y, similarity=s.reshape(S.shape))
    fd = ref.fd_gradient(f, S.reshape(-1), eps=1e-7).reshape(S.shape)
    torch.testing.assert_close(pair_weights(name, e, y), fd, rtol=1e-5, atol=1e-7)


def test_ms_weights_sum_below_one_and_concentrate_with_beta():
    e, y = _batch(8, 5, seed=4)
    share = []
    for beta in (2.0, 50.0, 500.0):
        w = pair_weights(functools.partial(ms_loss, beta=beta, mine=False), e, y).clamp_min(0) * len(e)
        assert float(w.sum(1).max()) < 1 if beta <= 50 else float(w.sum(1).max()) <= 1 + 1e-12  # rounds to 1 at large β
        share.append(float((w.amax(1) / w.sum(1)).mean()))
    assert share[0] < share[1] < share[2] and share[2] > 0.9  # β → ∞: the hardest negative takes the weight


# ---------------------------------------------------------------- the official formula and pytorch-metric-learning
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_official_formula(seed):
    e, y = _batch(seed=seed)
    a, b = e.clone().requires_grad_(), e.clone().requires_grad_()
    ours, theirs = ms_loss(a, y, alpha=2.0, beta=40.0, base=0.5, epsilon=0.1), _official(b, y)
    ours.backward(), theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    tangent = b.grad - (b.grad * e).sum(1, keepdim=True) * e  # ms_loss normalises its inputs
    torch.testing.assert_close(a.grad, tangent, rtol=0, atol=1e-12)


def test_official_formula_with_an_anchor_skipped():
    "An easy anchor (no kept pair) is skipped by both, and both still divide by the full batch size."
    e, y = _batch(3, 3, dim=6, spread=0.05, seed=5)
    mined = ms_mine(e @ e.T, y, 0.1)
    assert not bool(mined.anchors.all())
    torch.testing.assert_close(ms_loss(e, y, beta=40.0), _official(e, y), rtol=0, atol=1e-12)


def _pml(mine, embeddings, labels, dtype, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
    pml = ref.require_ref("pytorch_metric_learning")
    from pytorch_metric_learning import losses, miners, reducers
    x = embeddings.to(dtype).clone().requires_grad_()
    lf = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base, reducer=reducers.SumReducer())
    pairs = miners.MultiSimilarityMiner(epsilon=epsilon)(x, labels) if mine else None
    out = lf(x, labels, pairs) / len(x)
    out.backward()
    assert pml is not None
    return out.detach(), x.grad


@pytest.mark.ref
@pytest.mark.parametrize("mine", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (torch.float32, 1e-5)])
def test_equals_pytorch_metric_learning(mine, seed, dtype, tol):
    "MultiSimilarityLoss (+ MultiSimilarityMiner), reducer matched: SumReducer divided by the batch size."
    e, y = _uneven(seed)
    theirs, g_theirs = _pml(mine, e, y, dtype)
    x = e.to(dtype).clone().requires_grad_()
    ours = ms_loss(x, y, mine=mine)
    ours.backward()
    torch.testing.assert_close(ours.detach(), theirs, rtol=tol, atol=tol)
    torch.testing.assert_close(x.grad, g_theirs, rtol=tol, atol=tol)


@pytest.mark.ref
def test_mining_equals_pytorch_metric_learning_miner():
    ref.require_ref("pytorch_metric_learning")
    from pytorch_metric_learning import miners
    for seed in range(4):
        e, y = _uneven(seed)
        for eps in (-0.1, 0.0, 0.1, 0.3):
            a1, p, a2, n = miners.MultiSimilarityMiner(epsilon=eps)(e, y)
            mined = ms_mine(torch.nn.functional.normalize(e) @ torch.nn.functional.normalize(e).T, y, eps)
            assert set(zip(a1.tolist(), p.tolist())) == set(map(tuple, mined.pos.nonzero().tolist()))
            assert set(zip(a2.tolist(), n.tolist())) == set(map(tuple, mined.neg.nonzero().tolist()))


@pytest.mark.ref
def test_other_hyper_parameters_equal_pytorch_metric_learning():
    e, y = _uneven(7)
    for kw in (dict(alpha=1.0, beta=10.0, base=1.0), dict(alpha=5.0, beta=80.0, base=0.2, epsilon=0.3)):
        theirs, _ = _pml(True, e, y, F64, **kw)
        torch.testing.assert_close(ms_loss(e, y, **kw), theirs, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- mining
def test_mining_monotone_in_epsilon_and_its_limits():
    e, y = _batch(8, 5, seed=6)
    S = e @ e.T
    grid = torch.linspace(-2.5, 2.5, 41).tolist()
    kept = [ms_mine(S, y, eps).num_pairs for eps in grid]
    assert all(a <= b for a, b in zip(kept, kept[1:])) and kept[0] == 0
    assert kept[-1] == int(len(y) * (len(y) - 1))
    pos = [int(ms_mine(S, y, eps).pos.sum()) for eps in grid]
    assert all(a <= b for a, b in zip(pos, pos[1:]))
    torch.testing.assert_close(ms_loss(e, y, epsilon=3.0), ms_loss(e, y, mine=False))
    assert float(ms_loss(e, y, epsilon=-3.0)) == 0.0


def test_mining_skips_both_sides_together():
    "With mining, an anchor keeps a positive iff it keeps a negative (so skipping is one rule)."
    for seed in range(5):
        e, y = _batch(5, 4, seed=seed, spread=0.3)
        for eps in (-0.2, 0.0, 0.05, 0.1, 0.4):
            mined = ms_mine(e @ e.T, y, eps)
            assert torch.equal(mined.pos.any(1), mined.neg.any(1))


def test_mining_has_no_gradient_and_self_pairs_are_never_positives():
    e, y = _batch(4, 3, seed=8)
    S = (e @ e.T).requires_grad_()
    mined = ms_mine(S, y, 10.0)
    assert not mined.pos.requires_grad and not bool(mined.pos.diagonal().any()) and not bool(mined.neg.diagonal().any())
    assert isinstance(mined, MinedPairs)


def test_no_overflow_near_one():
    e, y = _batch(4, 3, dim=4, spread=1e-6, seed=9)
    for beta in (50.0, 1e3, 1e5):
        x = e.clone().requires_grad_()
        out = ms_loss(x, y, beta=beta, mine=False)
        out.backward()
        assert torch.isfinite(out) and bool(torch.isfinite(x.grad).all())
    x32 = e.float().requires_grad_()
    out = ms_loss(x32, y, beta=50.0, mine=False)
    out.backward()
    assert torch.isfinite(out) and bool(torch.isfinite(x32.grad).all())


# ---------------------------------------------------------------- the other losses against loops
def test_other_losses_against_loops():
    e, y = _uneven(3)
    u = torch.nn.functional.normalize(e)
    S, m = u @ u.T, len(e)
    P = lambda i: [k for k in range(m) if y[k] == y[i] and k != i]
    N = lambda i: [k for k in range(m) if y[k] != y[i]]
    con = sum(sum(1 - S[i, k] for k in P(i)) + sum(max(0.0, float(S[i, k]) - 0.5) for k in N(i)) for i in range(m)) / m
    tri = sum(max(0.0, float(max(S[i, k] for k in N(i)) - min(S[i, k] for k in P(i))) + 0.1) for i in range(m)) / m
    bino = sum(sum(math.log1p(math.exp(-2 * (float(S[i, k]) - 0.5))) / 2 for k in P(i))
               + sum(math.log1p(math.exp(50 * (float(S[i, k]) - 0.5))) / 50 for k in N(i)) for i in range(m)) / m
    lif = sum(max(0.0, math.log(sum(math.exp(1 - float(S[i, k])) for k in P(i)))
                  + math.log(sum(math.exp(float(S[i, k])) for k in N(i)))) for i in range(m)) / m
    for fn, want in ((contrastive_loss, con), (triplet_loss, tri), (binomial_deviance_loss, bino),
                     (lifted_structure_loss, lif)):
        torch.testing.assert_close(fn(e, y), torch.tensor(float(want), dtype=F64), rtol=1e-10, atol=1e-12)
    assert float(ms_loss(e, y, mine=False)) <= float(binomial_deviance_loss(e, y))


# ---------------------------------------------------------------- the GPW findings
def test_similarity_usage_findings():
    "The chapter's table: which similarities move a loss's negative-pair weights (measured by intervention)."
    usage = {name: similarity_usage(name, seed=0) for name in LOSSES}
    assert usage["binomial"] == SimilarityUsage(True, False, False)
    assert usage["contrastive"] == SimilarityUsage(True, False, False)
    assert usage["ms"] == SimilarityUsage(True, True, False)  # weighting alone: S and N
    assert usage["ms+mining"] == SimilarityUsage(True, True, True)  # mining adds P
    assert usage["lifted"] == SimilarityUsage(True, True, False)
    assert usage["triplet"] == SimilarityUsage(True, True, True)  # batch-hard: it ranks negatives and positives
    assert usage["ms+mining"].as_text() == "S, N, P" and SimilarityUsage(False, False, False).as_text() == "—"
    assert similarity_usage("ms", seed=as_generator(0)) == usage["ms"]


# ---------------------------------------------------------------- retrieval and training
def test_recall_against_a_loop():
    g = torch.Generator().manual_seed(0)
    e, y = torch.randn(40, 5, generator=g, dtype=F64), torch.randint(0, 4, (40,), generator=g)
    u = torch.nn.functional.normalize(e)
    S = u @ u.T
    want = {}
    for k in (1, 3, 7):
        hits = 0
        for i in range(40):
            order = sorted((j for j in range(40) if j != i), key=lambda j: -float(S[i, j]))[:k]
            hits += any(y[j] == y[i] for j in order)
        want[k] = hits / 40
    assert recall_at_k(e, y, ks=(1, 3, 7)) == want


def test_zero_shot_task():
    t = zero_shot_task(seed=0, device="cpu")
    assert isinstance(t, ZeroShotTask) and t.X_train.shape == (2000, 16) and t.X_test.shape == (2000, 16)
    assert set(t.y_train.tolist()) == set(range(20)) and set(t.y_test.tolist()) == set(range(20, 40))
    again = zero_shot_task(seed=as_generator(0), device="cpu")
    assert torch.equal(again.X_test, t.X_test)
    assert float(t.X_train[:, 12:].std()) > 2.5  # the nuisance dimensions
    small = zero_shot_task(10, 5, 4, dim=6, nuisance=2, seed=1, device="cpu")
    per_class = zero_shot_task(shared_covariance=False, seed=0, device="cpu")
    assert per_class.X_test.shape == t.X_test.shape and not torch.equal(per_class.X_test, t.X_test)
    assert small.X_train.shape == (20, 6) and small.y_test.min() == 5


def test_train_embedding_uses_balanced_batches_and_is_seeded():
    t = zero_shot_task(10, 6, 20, seed=2, device="cpu")
    seen = []
    def loss(emb, labels):
        seen.append(labels.clone())
        return ms_loss(emb, labels)
    run = train_embedding(t, loss, iterations=7, classes_per_batch=4, per_class=3, eval_every=3, seed=0)
    assert isinstance(run, TrainedEmbedding) and run.iterations.tolist() == [0, 3, 6, 7]
    assert run.recall.shape == (4, 3) and run.losses.shape == (7,)
    for labels in seen:
        _, counts = labels.unique(return_counts=True)
        assert len(counts) == 4 and bool((counts == 3).all())
    again = train_embedding(t, "ms+mining", iterations=7, classes_per_batch=4, per_class=3, eval_every=3, seed=0)
    other = train_embedding(t, "ms+mining", iterations=7, classes_per_batch=4, per_class=3, eval_every=3, seed=1)
    assert torch.equal(again.losses, run.losses) and not torch.equal(other.losses, run.losses)


@pytest.fixture(scope="module")
def claim():
    "The chapter's experiment at small settings: one seed, four losses, 300 iterations at the tuned step size."
    return compare_losses(seeds=(0,), losses=("triplet", "lifted", "ms", "ms+mining"), lrs={n: 3e-3 for n in LOSSES},
                          device="cpu", iterations=300, eval_every=150)


def test_ms_beats_lifted_and_triplet_collapses(claim):
    "Central findings: both MS variants beat lifted structure by > 0.03 Recall@1; batch-hard triplet stays < 0.25."
    r1 = {k: float(v[0]) for k, v in claim.final(1).items()}
    assert min(r1["ms"], r1["ms+mining"]) > r1["lifted"] + 0.03
    assert r1["triplet"] < 0.25
    start = float(claim.recall[0, 0, 0, 0])
    assert min(r1["ms"], r1["ms+mining"]) > start + 0.3


def test_comparison_and_plots(claim):
    assert isinstance(claim, LossComparison) and claim.recall.shape == (4, 1, 3, 3)
    assert claim.iterations.tolist() == [0, 150, 300]
    assert set(claim.final(4)) == {"triplet", "lifted", "ms", "ms+mining"}
    fig = plot_recall_curves(claim, k=2, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 8
    e, y = _batch(4, 3)
    assert isinstance(plot_pair_weights(e, y, losses=("ms", "binomial")), Figure)
    sl = weight_curves_figure(e, y, betas=(5.0, 50.0), active=1)
    assert isinstance(sl, go.Figure) and len(sl.layout.sliders[0].steps) == 2 and len(sl.data) == 4


def test_explorer_and_its_figure():
    fig = ms_loss_figure(loss="ms+mining", epsilon=-5.0)
    assert fig.layout.title.text == "ms+mining: anchor 0 weights 0 pairs"
    everything = ms_loss_figure(loss="ms", classes=3, instances=3, anchor=4)
    assert everything.layout.title.text == "ms: anchor 4 weights 8 pairs"
    assert ms_loss_figure(anchor=17, classes=4, instances=4).layout.title.text.startswith("ms+mining: anchor 1 ")
    ex = explore_ms_loss()
    first = ex.update(beta=20.0)
    assert isinstance(first, go.Figure) and ex.update(beta=20.0) is first
    assert ex.update(loss="lifted") is not first
    with pytest.raises(ValueError, match="`loss`"): ex.update(loss="npair")


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    e, y = toy_batch(4, 3, seed=0, device=device)
    assert ms_loss(e, y).device.type == device and pair_weights("ms", e, y).device.type == device
    t = zero_shot_task(8, 4, 10, seed=0, device=device)
    run = train_embedding(t, iterations=2, classes_per_batch=2, per_class=2, eval_every=1)
    assert next(run.model.parameters()).device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_E, _Y = toy_batch(3, 3, dim=4, seed=0, device="cpu")
_S = _E @ _E.T
_SINGLE = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3])  # class 3 once
_BAD_E = [_E[0], "emb", _E[:1], _E.long(), torch.full_like(_E, NAN)]
_BAD_Y = [_Y.double(), _Y[:-1], "y", _SINGLE, torch.zeros_like(_Y), _Y[None]]
_BAD_S = [_S[:-1], _S.float()[None], torch.full_like(_S, INF), "S"]
_TASK = zero_shot_task(8, 4, 10, seed=0, device="cpu")
_CMP = LossComparison(("ms",), (0,), torch.tensor([0, 1]), torch.zeros(1, 1, 2, 3))


def _loss_probe(fn, **extra):
    return Probe(fn, dict(embeddings=_E, labels=_Y), dict(embeddings=_BAD_E, labels=_BAD_Y, similarity=_BAD_S, **extra))


PROBES = [
    Probe(ms_mine, dict(similarity=_S, labels=_Y), dict(similarity=[_S[:-1], _S[0], _S.long(), "S"], labels=_BAD_Y,
                                                        epsilon=[NAN, INF, "0.1"])),
    _loss_probe(ms_loss, alpha=[0.0, -1.0, NAN], beta=[0.0, -2.0, INF], base=[NAN, "λ"], epsilon=[NAN, INF],
                mine=["yes", 1]),
    _loss_probe(contrastive_loss, margin=[NAN, "m"]),
    _loss_probe(triplet_loss, margin=[INF, None]),
    _loss_probe(binomial_deviance_loss, alpha=[0.0, NAN], beta=[-1.0], base=[INF]),
    _loss_probe(lifted_structure_loss, margin=[NAN]),
    Probe(pair_weights, dict(loss="ms", embeddings=_E, labels=_Y),
          dict(loss=[UNKNOWN, 3, None], embeddings=_BAD_E, labels=_BAD_Y, similarity=_BAD_S)),
    Probe(similarity_usage, dict(loss="binomial", trials=1),
          dict(loss=[UNKNOWN, 2.0], trials=SIZES + [1.5], step=[0.0, -0.1, NAN], seed=[-1, 0.5, "0"])),
    Probe(toy_batch, dict(device="cpu"),
          dict(classes=SIZES + [1], instances=SIZES + [1], dim=SIZES + [1], spread=[-1.0, NAN], seed=[-1, "s"])),
    Probe(plot_pair_weights, dict(embeddings=_E, labels=_Y, losses=("ms",)),
          dict(embeddings=_BAD_E, labels=_BAD_Y, losses=[(UNKNOWN,)])),
    Probe(zero_shot_task, dict(num_classes=6, num_seen=3, per_class=4, device="cpu"),
          dict(num_classes=SIZES + [1], num_seen=SIZES + [6, 7], per_class=SIZES + [1], dim=SIZES + [1],
               nuisance=[-1, 16], radius=[-1.0, NAN], noise_scale=[-1.0, INF], shared_covariance=["no", 0],
               seed=[-1, 0.5])),
    Probe(recall_at_k, dict(embeddings=_E, labels=_Y),
          dict(embeddings=_BAD_E[:4], labels=[_Y[:-1], "y", _Y[None]], ks=[(), 5, (0,), (9,), ("1",)])),
    Probe(train_embedding, dict(task=_TASK, iterations=1, classes_per_batch=2, per_class=2),
          dict(task=["task", (_TASK.X_train, _TASK.y_train)], loss=[UNKNOWN, 3], iterations=SIZES,
               lr=[0.0, -1.0, NAN], classes_per_batch=SIZES + [1, 9], per_class=SIZES + [1, 11], hidden=SIZES,
               dim=SIZES, eval_every=SIZES, seed=[-1, 0.5])),
    Probe(compare_losses, dict(seeds=(0,), losses=("ms",), iterations=1, classes_per_batch=2, per_class=2),
          dict(seeds=[(), 0, (-1,), "0"], losses=[(), "ms", (UNKNOWN,)], lrs=[[1e-3], "lr"])),
    Probe(plot_recall_curves, dict(comparison=_CMP), dict(comparison=["cmp", {}], k=[3, 0, "1"])),
    Probe(_CMP.final, dict(k=1), dict(k=[3, 0, None])),
    Probe(weight_curves_figure, dict(embeddings=_E, labels=_Y, betas=(5.0,), active=0),
          dict(embeddings=_BAD_E, labels=_BAD_Y, betas=[(), 5.0, (0.0,), (NAN,)], active=[1, -1])),
    Probe(ms_loss_figure, dict(), dict(alpha=[0.0, NAN], beta=[-1.0], base=[NAN], epsilon=[INF], loss=[UNKNOWN],
                                       classes=SIZES + [1], instances=SIZES + [1], anchor=[-1, 0.5], seed=[-1])),
]
