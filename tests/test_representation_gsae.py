"""Reference tests for gradviz.representation.gsae: β = 0 against a separately written TopK SAE (bit for bit), the
selection rule against a brute-force score, ρ's normalisation and scale invariance, input gradients against central
differences, isolation of the selection from autograd, AuxK against a hand computation, the metrics on an exact
dictionary, the tiny-LM splice, the chapter's findings at small settings, and bad input (float64 where it matters)."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from scipy.stats import spearmanr

import reference as ref
from gradviz.core import as_generator
from gradviz.representation.gsae import (RHO_NORMS, LMTask, SAEMetrics, SpliceMetrics, SuperpositionTask, Sweep,
                                         TopKSAE, beta_slider_figure, compute_sweep, downstream_metrics, explore_gsae,
                                         fit_sae, gsae_figure, input_grads, markov_tokens, plot_pareto, plot_recovery,
                                         plot_selection_frequency, plot_selection_scatter, sae_loss, splice_metrics,
                                         superposition_task, tiny_lm_task, train_sae)

F64 = torch.float64


@pytest.fixture(scope="module")
def task64():
    return superposition_task(n=512, seed=0, device="cpu", dtype=F64)


@pytest.fixture(scope="module")
def lm_task():
    return tiny_lm_task(n_train=256, n_eval=64, length=8, dim=16, steps=60, seed=0, device="cpu")


def _plain_topk(X, init, k, steps, batch_size, lr, seed):
    "A TopK SAE written out by hand: own encoder, topk, decoder, normalised MSE and Adam loop, no AuxK."
    W_dec, W_enc, b_enc, b_pre = (p.detach().clone().requires_grad_(True) for p in init.parameters())
    opt, g = torch.optim.Adam([W_dec, W_enc, b_enc, b_pre], lr=lr), as_generator(seed)
    for _ in range(steps):
        x = X[torch.randint(len(X), (batch_size,), generator=g)]
        z = (x - b_pre) @ W_enc.T + b_enc
        keep = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, z.detach().topk(k, dim=-1).indices, True)
        recon = (z.relu() * keep) @ W_dec.T + b_pre
        loss = ((recon - x) ** 2).sum(-1).mean() / ((x - x.mean(0)) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad(): W_dec.div_(W_dec.norm(dim=0))
    return [W_dec, W_enc, b_enc, b_pre]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_beta_zero_equals_a_separate_topk_sae_bit_for_bit(dtype):
    task = superposition_task(n=512, seed=1, device="cpu", dtype=dtype)
    init = TopKSAE(32, 48, 4, aux_k=0, seed=5, device="cpu", dtype=dtype)
    ours = TopKSAE(32, 48, 4, beta=0.0, aux_k=0, seed=5, device="cpu", dtype=dtype)
    train_sae(ours, task.X, task.G, steps=200, batch_size=64, lr=3e-3, seed=7)
    plain = _plain_topk(task.X, init, 4, 200, 64, 3e-3, 7)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), plain))


def test_beta_zero_ignores_g_with_auxk_on():
    task = superposition_task(n=512, seed=2, device="cpu")
    a, b = (fit_sae(task.X, G, k=2, beta=0.0, n_latents=256, steps=300, seed=3) for G in (task.G, None))
    assert (a.since_fired >= a.dead_after).any()  # AuxK was active in this run
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    g_sae = fit_sae(task.X, task.G, k=2, beta=1.0, n_latents=256, steps=300, seed=3)
    assert not torch.equal(g_sae.W_dec, a.W_dec)


@pytest.mark.parametrize("rho_norm", RHO_NORMS)
def test_selection_matches_a_brute_force_score(task64, rho_norm):
    sae = fit_sae(task64.X, task64.G, k=5, beta=2.0, n_latents=40, rho_norm=rho_norm, steps=50, seed=0)
    X, G = task64.X[:64], task64.G[:64]
    z = (X - sae.b_pre) @ sae.W_enc.T + sae.b_enc
    rho = torch.stack([torch.stack([(G[i] @ sae.W_dec[:, j]).abs() for j in range(40)]) for i in range(64)])
    if rho_norm == "batch_mean": rho = rho / rho.mean()
    torch.testing.assert_close(sae.rho(G), rho, rtol=1e-12, atol=1e-14)
    score = (z + 2.0 * z * rho).detach().numpy()
    want = np.zeros_like(score, dtype=bool)
    np.put_along_axis(want, np.argsort(-score, axis=1)[:, :5], True, axis=1)
    assert np.array_equal(sae.select(z, G).numpy(), want)
    out = sae(X, G)
    assert (out.mask.sum(1) == 5).all() and ((out.codes != 0).sum(1) <= 5).all()
    torch.testing.assert_close(out.codes, z.relu() * torch.as_tensor(want))


def test_decoder_columns_stay_unit_norm(task64):
    sae = TopKSAE(32, 64, 4, beta=5.0, seed=0, device="cpu", dtype=F64)
    train_sae(sae, task64.X, task64.G, steps=100, seed=0)
    assert float((sae.W_dec.norm(dim=0) - 1).abs().max()) < 1e-6


def test_input_grads_against_central_differences(task64):
    G = input_grads(task64.net, task64.X[:5], task64.labels[:5])
    torch.testing.assert_close(G, task64.G[:5], rtol=1e-12, atol=1e-14)
    for i in range(5):
        fd = ref.fd_gradient(lambda x: F.cross_entropy(task64.net(x[None]), task64.labels[i:i + 1]), task64.X[i])
        assert float((fd - G[i]).norm() / G[i].norm()) < 1e-4


def test_no_gradient_through_the_selection_or_into_g(task64):
    sae = fit_sae(task64.X, task64.G, k=4, beta=5.0, n_latents=48, steps=30, seed=0)
    x_in = task64.X[:32].clone().requires_grad_(True)
    g_graph = torch.autograd.grad(F.cross_entropy(task64.net(x_in), task64.labels[:32], reduction="sum"), x_in,
                                  create_graph=True)[0]
    seen = []
    rho = sae._rho
    sae._rho = lambda g: (seen.append(g.requires_grad), rho(g))[1]
    grads = []
    for g_used in (g_graph, g_graph.detach()):
        sae.zero_grad()
        loss = sae_loss(sae, task64.X[:32], g_used)
        assert torch.autograd.grad(loss, g_graph, retain_graph=True, allow_unused=True)[0] is None
        loss.backward()
        grads.append([p.grad.clone() for p in sae.parameters()])
    del sae._rho
    assert seen == [True, False] and all(torch.equal(a, b) for a, b in zip(*grads)) and x_in.grad is None


def test_batch_normalised_selection_ignores_the_loss_scale(task64):
    sae = fit_sae(task64.X, task64.G, k=4, beta=5.0, n_latents=48, steps=30, seed=0)
    z = sae.encode(task64.X)
    for c in (1e-3, 7.0, 1e3):
        assert torch.equal(sae.select(z, task64.G), sae.select(z, c * task64.G))
    sae.rho_norm = "none"
    assert not torch.equal(sae.select(z, task64.G), sae.select(z, 1e3 * task64.G))


def test_aux_loss_against_a_hand_computation(task64):
    sae = TopKSAE(32, 20, 3, aux_k=4, dead_after=5, seed=0, device="cpu", dtype=F64)
    X = task64.X[:16]
    assert float(sae(X).aux_loss) == 0.0
    dead = torch.zeros(20, dtype=torch.bool)
    dead[[1, 4, 7, 8, 11, 15]] = True
    sae.since_fired[dead] = 5
    out = sae(X)
    z = sae.encode(X).detach()
    e = X - out.recon.detach()
    want = []
    for i in range(16):
        idx = [j for j in sorted(dead.nonzero()[:, 0].tolist(), key=lambda j: -float(z[i, j]))][:4]
        e_hat = sum(z[i, j].clamp_min(0) * sae.W_dec[:, j] for j in idx)
        want.append(((e_hat - e[i]) ** 2).sum())
    torch.testing.assert_close(out.aux_loss, torch.stack(want).mean() / (e ** 2).sum(-1).mean())
    total = sae_loss(sae, X)
    torch.testing.assert_close(total, ((out.recon - X) ** 2).sum(-1).mean() / ((X - X.mean(0)) ** 2).sum(-1).mean()
                               + out.aux_loss / 32)


def test_superposition_task_structure():
    t = superposition_task(n=256, inert_fraction=0.5, seed=3, device="cpu", dtype=F64)
    assert torch.equal(t.X, superposition_task(n=256, inert_fraction=0.5, seed=as_generator(3), device="cpu",
                                               dtype=F64).X)
    torch.testing.assert_close(t.features.norm(dim=1), torch.ones(96, dtype=F64))
    assert int(t.inert.sum()) == 24 and not t.inert[48:].any()
    with torch.no_grad():
        shifted = t.net(t.X + 2.5 * t.features[t.inert].sum(0))
        torch.testing.assert_close(shifted, t.net(t.X), rtol=0, atol=1e-12)
    assert float((t.G @ t.features[t.inert].T).abs().max()) < 1e-12
    torch.testing.assert_close(t.X, t.coef @ t.features, rtol=0, atol=0.1)
    assert set(t.labels.tolist()) <= set(range(10))


def test_downstream_metrics_on_an_exact_dictionary_and_by_hand():
    t = superposition_task(n=256, seed=4, device="cpu", dtype=F64)
    eye = torch.eye(32, dtype=F64)
    signed = TopKSAE(32, 64, 32, aux_k=0, device="cpu", dtype=F64)
    with torch.no_grad():
        signed.W_dec.copy_(torch.cat([eye, -eye], 1))
        signed.W_enc.copy_(torch.cat([eye, -eye], 1).T)
    m = downstream_metrics(signed, t)
    assert abs(m.fvu) < 1e-20 and abs(m.kl) < 1e-12 and abs(m.delta_ce) < 1e-12
    sae = TopKSAE(32, 50, 4, seed=1, device="cpu", dtype=F64)
    m = downstream_metrics(sae, t)
    recon = sae(t.X, t.G).recon.detach()
    p, q = F.softmax(t.net(t.X), -1), F.softmax(t.net(recon), -1)
    assert math.isclose(m.kl, float((p * (p / q).log()).sum(-1).mean()), rel_tol=1e-10)
    assert math.isclose(m.fvu, float(((recon - t.X) ** 2).sum() / ((t.X - t.X.mean(0)) ** 2).sum()), rel_tol=1e-10)
    assert m.dead == int((sae(t.X, t.G).mask.sum(0) == 0).sum()) and len(m.frequency) == 50


def test_first_order_attribution_holds_for_small_moves_only():
    t = superposition_task(n=512, seed=0, device="cpu", dtype=F64)
    def spearman(frac):
        first, exact = [], []
        with torch.no_grad():
            base = F.cross_entropy(t.net(t.X), t.labels, reduction="none")
            for j in range(48, 96):
                on = t.coef[:, j] > 0
                c = t.coef[on, j]
                first += (frac * c * (t.G[on] @ t.features[j]).abs()).tolist()
                moved = F.cross_entropy(t.net(t.X[on] - frac * c[:, None] * t.features[j]), t.labels[on], reduction="none")
                exact += (base[on] - moved).abs().tolist()
        return spearmanr(first, exact)[0]
    assert spearman(0.01) > 0.99 and spearman(0.1) > 0.8 and spearman(1.0) < 0.6


def test_markov_tokens_follow_the_chain():
    toks = markov_tokens(64, 10, 8, branching=2, seed=0, device="cpu")
    pairs = {(a, b) for row in toks.tolist() for a, b in zip(row, row[1:])}
    succ = {}
    for a, b in pairs: succ.setdefault(a, set()).add(b)
    assert toks.shape == (64, 10) and all(len(s) <= 2 for s in succ.values())
    assert torch.equal(toks, markov_tokens(64, 10, 8, branching=2, seed=0, device="cpu"))


def test_lm_task_and_an_exact_splice(lm_task):
    assert lm_task.X.shape == (256 * 8, 16) and lm_task.G.shape == lm_task.X.shape
    assert float(lm_task.eval_G[:, -1].abs().max()) == 0.0  # the last position feeds no scored prediction
    eye = torch.eye(16)
    signed = TopKSAE(16, 32, 16, aux_k=0, device="cpu")
    with torch.no_grad():
        signed.W_dec.copy_(torch.cat([eye, -eye], 1))
        signed.W_enc.copy_(torch.cat([eye, -eye], 1).T)
    m = splice_metrics(lm_task, signed)
    assert abs(m.delta_ce) < 1e-5 and abs(m.kl) < 1e-6 and m.fvu < 1e-10
    assert not any(p.requires_grad for p in lm_task.model.parameters())


def test_lm_gradients_are_per_token_loss_gradients(lm_task):
    toks = lm_task.tokens[:2]
    h = lm_task.X.reshape(256, 8, 16)[:2].clone().requires_grad_(True)
    from gradviz.autodiff import replace_output
    with replace_output(lm_task.model, lm_task.module, lambda o: h):
        logits = lm_task.model(toks)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), toks[:, 1:].reshape(-1), reduction="sum")
    (g,) = torch.autograd.grad(loss, h)
    torch.testing.assert_close(g, lm_task.G.reshape(256, 8, 16)[:2], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- the chapter's findings, at small settings

@pytest.fixture(scope="module")
def small_sweep():
    tasks = {s: superposition_task(n_loud=24, n_quiet=24, seed=s, device="cpu") for s in (1, 2)}
    return compute_sweep(seeds=(1, 2), ks=(4,), betas=(0.0, 1.0), tasks=tasks, device="cpu")


def test_g_sae_recovers_fewer_quiet_features_at_higher_fvu(small_sweep):
    "As in the chapter (k = 4, β = 1, 24 + 24 features): the g-SAE's FVU is higher in every seed, and it recovers fewer"
    " quiet features and at least as many loud ones on average — the opposite of the paper's quiet-feature claim."
    m, seeds = small_sweep.metrics, (1, 2)
    assert all(m[4, 1.0, s].fvu > m[4, 0.0, s].fvu for s in seeds)
    mean = lambda b, f: np.mean([getattr(m[4, b, s], f) for s in seeds])
    assert mean(1.0, "recovery_quiet") < mean(0.0, "recovery_quiet")
    assert mean(1.0, "recovery_loud") >= mean(0.0, "recovery_loud")


def test_g_sae_splices_with_lower_kl_on_the_tiny_lm():
    "As in the chapter: on the tiny LM (k = 4, β = 1) the g-SAE's splice has lower KL and higher FVU in every seed."
    task = tiny_lm_task(seed=0, device="cpu")
    for s in (1, 2):
        top, grad = (splice_metrics(task, fit_sae(task.X, task.G, 4, b, 128, seed=s)) for b in (0.0, 1.0))
        assert grad.kl < top.kl and grad.fvu > top.fvu
        assert abs(top.delta_ce) < 0.01 and abs(grad.delta_ce) < 0.01


def test_figures_and_explorer(small_sweep):
    for fig in (plot_pareto(small_sweep, title="t"), plot_recovery(small_sweep),
                plot_selection_frequency(small_sweep, 4, 1), plot_selection_scatter(small_sweep.saes[4, 1.0, 1],
                                                                                   small_sweep.tasks[1], sample=2)):
        assert isinstance(fig, Figure)
    fig = beta_slider_figure({b: small_sweep.metrics[4, b, 1] for b in (0.0, 1.0)})
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    cache = {}
    fig = gsae_figure(beta=1.0, k=4, n_latents=32, sample=1, cache=cache)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3 and len([k for k in cache if k[0] != "task"]) == 2
    before = len(cache)
    ex = explore_gsae(cache)
    assert isinstance(ex.update(beta=1.0, k=4, n_latents=32, sample=1), go.Figure)
    assert len(cache) == before  # the explorer reused the SAE trained above instead of training another


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    t = superposition_task(n=128, seed=0, device=device)
    sae = fit_sae(t.X, t.G, k=2, beta=1.0, n_latents=16, steps=3, seed=0)
    assert sae.W_dec.device.type == device and downstream_metrics(sae, t).frequency.device.type == "cpu"


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_T = superposition_task(n=64, seed=0, device="cpu")
_SAE = TopKSAE(32, 16, 2, beta=1.0, device="cpu")
_Z = _SAE.encode(_T.X).detach()
_LM = tiny_lm_task(n_train=16, n_eval=8, length=4, dim=8, steps=2, seed=0, device="cpu")
_LM_SAE = TopKSAE(8, 16, 2, device="cpu")
_SWEEP = compute_sweep(seeds=(0,), ks=(2,), betas=(0.0, 1.0), tasks={0: _T}, n_latents=16, steps=2, device="cpu")
_METRICS = {b: _SWEEP.metrics[2, b, 0] for b in (0.0, 1.0)}
_BAD_X = [_T.X[0], _T.X[:, :5], torch.full((4, 32), NAN), "X", _T.X.long()]

PROBES = [
    Probe(TopKSAE, dict(d=32, n_latents=16, k=2, device="cpu"),
          dict(d=SIZES, n_latents=SIZES, k=SIZES + [17], beta=[-0.1, NAN, INF, "1"], rho_norm=[UNKNOWN], aux_k=[-1, 17],
               aux_coef=[-1.0, NAN], dead_after=SIZES, seed=[-1, 0.5, "0"], device=[UNKNOWN], dtype=[torch.int64, "f"])),
    Probe(_SAE.forward, dict(x=_T.X, g=_T.G), dict(x=_BAD_X, g=[_T.G[:3], _T.G[:, :5], torch.full_like(_T.G, NAN)])),
    Probe(_SAE.select, dict(z=_Z, g=_T.G), dict(z=[_Z[0], _Z[:, :3], "z"], g=[_T.G[:3], torch.full_like(_T.G, INF)])),
    Probe(sae_loss, dict(sae=_SAE, x=_T.X), dict(sae=["sae", torch.nn.Linear(2, 2)], x=_BAD_X, g=[_T.G[:3]])),
    Probe(train_sae, dict(sae=_SAE, X=_T.X, steps=1),
          dict(sae=["sae"], X=_BAD_X, G=[_T.G[:3], "G"], steps=SIZES, batch_size=SIZES, lr=[0.0, -1.0, NAN],
               seed=[-1, 0.5], progress=["bar"])),
    Probe(input_grads, dict(net=_T.net, X=_T.X, labels=_T.labels),
          dict(net=["net"], X=[_T.X[0], "X", _T.X.long()], labels=[_T.labels[:3], _T.labels.double(), "y"])),
    Probe(superposition_task, dict(n=32, device="cpu"),
          dict(d=[0, -2, 7], n_loud=SIZES, n_quiet=SIZES, p_active=[0.0, 1.5, NAN], n=SIZES,
               loud=[(3.0, 2.0), (1.0,), "ab", (-1.0, 2.0)], quiet=[(0.6, 0.3), (NAN, 1.0)],
               inert_fraction=[-0.1, 1.1, NAN], num_classes=[1, 0], hidden=SIZES, noise=[-0.1, NAN],
               seed=[-1, 0.5], device=[UNKNOWN], dtype=[torch.int64])),
    Probe(downstream_metrics, dict(sae=_SAE, task=_T),
          dict(sae=["sae"], task=["task", _LM], use_grad=["yes"])),
    Probe(fit_sae, dict(X=_T.X, G=_T.G, k=2, n_latents=16, steps=1),
          dict(X=[_T.X[0], torch.full((64, 32), NAN), "X", _T.X.long()], G=[_T.G[:3]], k=SIZES + [17], beta=[-1.0, NAN], n_latents=SIZES, rho_norm=[UNKNOWN],
               steps=SIZES, batch_size=SIZES, lr=[0.0, NAN], seed=[-1, 0.5], progress=["bar"])),
    Probe(compute_sweep, dict(seeds=(0,), ks=(2,), betas=(0.0,), tasks={0: _T}, n_latents=16, steps=1, device="cpu"),
          dict(seeds=[(), (-1,), (0.5,), 3], ks=[(), (0,), (17,)], betas=[(), (-1.0,), (NAN,)], tasks=["tasks"],
               n_latents=SIZES, steps=SIZES, lr=[0.0, NAN], device=[UNKNOWN], progress=["bar"])),
    Probe(plot_pareto, dict(sweep=_SWEEP), dict(sweep=["sweep", Sweep({}, {}, {})])),
    Probe(plot_recovery, dict(sweep=_SWEEP), dict(sweep=["sweep", Sweep({}, {}, {})])),
    Probe(plot_selection_frequency, dict(sweep=_SWEEP, k=2, task_seed=0),
          dict(sweep=["sweep", Sweep({}, {}, {})], k=[3, "2"], task_seed=[1])),
    Probe(plot_selection_scatter, dict(sae=_SAE, task=_T),
          dict(sae=["sae"], task=["task"], sample=[-1, 64, 0.5])),
    Probe(markov_tokens, dict(n=4, device="cpu"),
          dict(n=SIZES, length=[1, 0], vocab_size=[1, 0], branching=[0, 17], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(tiny_lm_task, dict(n_train=8, n_eval=4, length=4, dim=8, steps=1, device="cpu"),
          dict(n_train=SIZES, n_eval=SIZES, length=[1], vocab_size=[1], dim=SIZES, layers=SIZES, steps=SIZES,
               seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(splice_metrics, dict(task=_LM, sae=_LM_SAE),
          dict(task=["task", _T], sae=["sae", _SAE], use_grad=["yes"])),
    Probe(beta_slider_figure, dict(metrics=_METRICS),
          dict(metrics=[{}, "m", {0.0: "m"}], active=[-1, 2, 0.5])),
    Probe(gsae_figure, dict(k=2, n_latents=16, cache={}),
          dict(beta=[-1.0, NAN], k=SIZES, n_latents=[1, 0], loud_quiet=[0.0, NAN], inert_fraction=[-0.1, 1.5],
               rho_norm=[UNKNOWN], sample=[-1, 0.5], cache=["cache"], progress=["bar"])),
    Probe(explore_gsae, dict(cache=None), dict(cache=["cache", 3])),
]
