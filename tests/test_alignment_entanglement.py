"""Reference tests for gradviz.alignment.entanglement: closed forms, autograd vs analytic gradients, first-order
predictions against measured changes, the exact toy, the normalised step, the Adam caveat, bad input (float64)."""
import copy
import math
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from gradviz.alignment.entanglement import (LOSSES, Coefficients, EntanglementStats, LogLinearPolicy, MarginLoss,
                                            PairLogprobs, PreferenceBatch, PreferenceRun, PreferenceTask, ToyPair,
                                            compute_trajectories, cpo_loss, dpo_loss, entangled_toy,
                                            entanglement_figure, entanglement_stats, explore_entanglement, ipo_loss,
                                            lm_preference_task, margin_loss, pair_cosines, pair_logprobs, plot_cosines,
                                            plot_condition_calls, plot_condition_plane, plot_trajectories,
                                            preference_batch, rdpo_loss,
                                            simpo_loss, slic_loss, toy_offset, train_preference, trajectories_figure,
                                            trajectory_traces)
from gradviz.core import as_generator

F64 = torch.float64


@pytest.fixture(scope="module")
def lm_task():
    return lm_preference_task(2, n=16, sft_steps=80, dtype=F64, device="cpu")


def _toy_batch(p, **kw):
    pol, i, j = entangled_toy(p, **kw)
    return pol, preference_batch(pol, torch.tensor([i]), torch.tensor([j]))


# --- losses: closed forms ------------------------------------------------------------------------------------------
def test_losses_closed_forms():
    w = torch.tensor([-3.0, -5.0], dtype=F64); l = torch.tensor([-4.0, -4.5], dtype=F64)
    rw, rl = torch.tensor([-3.5, -5.0], dtype=F64), torch.tensor([-4.0, -4.0], dtype=F64)
    h = (w - rw) - (l - rl)
    sig = lambda x: 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(dpo_loss(w, l, rw, rl, beta=0.5).numpy(), -np.log(sig(0.5 * h.numpy())), rtol=1e-14)
    np.testing.assert_allclose(ipo_loss(w, l, rw, rl, tau=0.25).numpy(), (h.numpy() - 2.0) ** 2, rtol=1e-14)
    np.testing.assert_allclose(slic_loss(w, l, rw, rl, beta=2.0).numpy(), np.maximum(0, 1 - 2 * h.numpy()), rtol=1e-14)
    np.testing.assert_allclose(simpo_loss(w, l, 4.0, 2.0, beta=2.0, gamma=0.3).numpy(),
                               -np.log(sig(2 * w.numpy() / 4 - 2 * l.numpy() / 2 - 0.3)), rtol=1e-14)
    np.testing.assert_allclose(rdpo_loss(w, l, rw, rl, 5.0, 3.0, beta=0.1, alpha=0.2).numpy(),
                               -np.log(sig(0.1 * h.numpy() - 0.4)), rtol=1e-14)
    np.testing.assert_allclose(cpo_loss(w, l, beta=0.1, lam=0.5).numpy(),
                               -np.log(sig(0.1 * (w - l).numpy())) - 0.5 * w.numpy(), rtol=1e-14)
    for kind in LOSSES:
        spec = MarginLoss(kind)
        assert torch.allclose(margin_loss(kind, w, l, rw, rl, 4.0, 4.0), spec(w, l, rw, rl, 4.0, 4.0).mean())


def test_rdpo_equals_dpo_at_equal_lengths():
    w, l = torch.randn(5, dtype=F64), torch.randn(5, dtype=F64)
    assert torch.equal(rdpo_loss(w, l, 0.0, 0.0, 7.0, 7.0, beta=0.1, alpha=3.0), dpo_loss(w, l, beta=0.1))


@pytest.mark.parametrize("kind", LOSSES)
def test_loss_weight_ratio_is_d_ratio(kind):
    "−∂ℓ/∂w ÷ ∂ℓ/∂l equals d_w/d_l for a pure margin loss (CPO: plus λ on w)."
    g = as_generator(1)
    w = (-5 - 5 * torch.rand(7, generator=g, dtype=F64)).requires_grad_()
    l = (-5 - 5 * torch.rand(7, generator=g, dtype=F64)).requires_grad_()
    spec = MarginLoss(kind)
    gw, gl = torch.autograd.grad(spec(w, l, w.detach() - 0.2, l.detach() + 0.1, 6.0, 3.0).sum(), (w, l))
    dw, dl = spec.coefficients(6.0, 3.0)
    if kind == "cpo":
        torch.testing.assert_close(-gw - spec.lam, gl * dw / dl, rtol=1e-12, atol=1e-14)
    else:
        torch.testing.assert_close(-gw / gl, torch.full_like(gw, float(dw / dl)), rtol=1e-12, atol=0)


def test_margin_matches_loss_argument():
    w, l = torch.randn(4, dtype=F64), torch.randn(4, dtype=F64)
    for kind in ("dpo", "simpo", "rdpo", "cpo"):
        spec = MarginLoss(kind)
        m = spec.margin(w, l, 0.1, -0.2, 5.0, 4.0)
        extra = -spec.lam * w if kind == "cpo" else 0
        torch.testing.assert_close(spec(w, l, 0.1, -0.2, 5.0, 4.0), -F.logsigmoid(m) + extra, rtol=1e-13, atol=1e-14)


# --- analytic DPO gradient -----------------------------------------------------------------------------------------
def test_analytic_dpo_gradient(lm_task):
    model, batch = lm_task
    params, beta = list(model.parameters()), 0.3
    for i in range(3):
        w, l = pair_logprobs(model, batch.chosen[i:i + 1], batch.rejected[i:i + 1])
        gw = torch.cat([g.reshape(-1) for g in torch.autograd.grad(w.sum(), params, retain_graph=True)])
        gl = torch.cat([g.reshape(-1) for g in torch.autograd.grad(l.sum(), params, retain_graph=True)])
        loss = dpo_loss(w + 1.3, l, batch.ref_w[i:i + 1], batch.ref_l[i:i + 1], beta).sum()
        auto = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        h = ((w + 1.3 - batch.ref_w[i]) - (l - batch.ref_l[i])).detach()
        analytic = -beta * torch.sigmoid(-beta * h) * (gw - gl)
        assert float((analytic - auto).abs().max() / auto.abs().max()) < 1e-6


# --- first-order predictions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", LOSSES)
def test_predictions_within_one_percent_small_step(lm_task, kind):
    model, batch = lm_task
    run = train_preference(copy.deepcopy(model), batch, kind, steps=10, lr=1e-4)
    assert float(((run.pred_dw - run.dw).abs() / run.dw.abs()).max()) < 0.01
    assert float(((run.pred_dl - run.dl).abs() / run.dl.abs()).max()) < 0.01
    torch.testing.assert_close(run.pred_dw, run.step_dw, rtol=1e-6, atol=1e-12)  # SGD: Δθ = η u


@pytest.mark.parametrize("kind", ["dpo", "slic", "simpo", "rdpo", "cpo"])
def test_prediction_signs_at_larger_step(lm_task, kind):
    model, batch = lm_task
    run = train_preference(copy.deepcopy(model), batch, kind, steps=30, lr=1e-2)
    agree = (run.pred_dw.sign() == run.dw.sign()) & (run.pred_dl.sign() == run.dl.sign())
    assert float(agree.double().mean()) >= 0.95


def test_stats_against_direct_autograd(lm_task):
    "∇w, ∇l, the conditions and the predictions, against log-probs and gradients computed here by hand."
    model, batch = lm_task
    params, beta, lr = list(model.parameters()), 0.1, 0.05
    def logp(tokens):
        lp = model(tokens[:, :-1]).log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
        return lp.sum(1)
    w, l = logp(batch.chosen), logp(batch.rejected)
    flat = lambda out: torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params, retain_graph=True)])
    gw, gl = flat(w.mean()), flat(l.mean())
    h = (w - batch.ref_w) - (l - batch.ref_l)
    u = -flat((-F.logsigmoid(beta * h)).mean())
    st = entanglement_stats(model, batch, MarginLoss("dpo", beta=beta), lr=lr)
    assert isinstance(st, EntanglementStats)
    np.testing.assert_allclose([st.inner, st.norm_w2, st.norm_l2, st.pred_dw, st.pred_dl],
                               [float(gw @ gl), float(gw @ gw), float(gl @ gl), lr * float(gw @ u), lr * float(gl @ u)],
                               rtol=1e-10)
    assert st.chosen_up == bool(gw @ gl < gw @ gw) and st.rejected_down == bool(gw @ gl < gl @ gl)
    run = train_preference(copy.deepcopy(model), batch, MarginLoss("dpo", beta=beta), steps=1, lr=lr)
    np.testing.assert_allclose(float(run.inner[0]), float(gw @ gl), rtol=1e-10)


def test_condition_agreement_by_hand():
    f = dict(dtype=F64)
    # steps: Δw = +1, −0.5, +0.2; Δl = −1, −0.5, +0.5 (ideal, both ↓, both ↑)
    # conditions: up iff inner < ratio·‖∇w‖², down iff inner < ‖∇l‖²/ratio, ratio = 1
    inner = torch.tensor([0.0, 2.0, 0.5], **f)
    norm_w2, norm_l2 = torch.tensor([1.0, 1.0, 1.0], **f), torch.tensor([1.0, 3.0, 1.0], **f)
    z3 = torch.zeros(3, **f)
    run = PreferenceRun(MarginLoss("dpo"), logp_w=torch.tensor([0.0, 1.0, 0.5, 0.7], **f),
                        logp_l=torch.tensor([0.0, -1.0, -1.5, -1.0], **f), margin=torch.zeros(4, **f), inner=inner,
                        norm_w2=norm_w2, norm_l2=norm_l2, ratio=z3 + 1, pred_dw=z3, pred_dl=z3, step_dw=z3, step_dl=z3)
    # step 0: up, down → ideal ✓; step 1: not up, down → both ↓ ✓; step 2: up, down predicted but Δl > 0 ✗
    assert run.condition_agreement() == pytest.approx(2 / 3, abs=1e-15)


# --- margin monotonicity -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dpo", "simpo", "slic"])
def test_margin_never_decreases_small_step(lm_task, kind):
    model, batch = lm_task
    run = train_preference(copy.deepcopy(model), batch, kind, steps=20, lr=1e-3)
    assert float(run.margin.diff().min()) >= 0


def test_ipo_shrinks_margin_past_target(lm_task):
    model, batch = lm_task
    over = replace(batch, ref_w=batch.ref_w - 1.0)
    run = train_preference(copy.deepcopy(model), over, MarginLoss("ipo", tau=2.5), steps=10, lr=1e-3)
    assert float(run.margin.diff().max()) < 0


# --- exact toy -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [-2.5, -1.2, -0.7, 0.0, 0.6, 1.3, 2.5])
def test_toy_quadrant_every_step(p):
    pol, batch = _toy_batch(p, seed=3)
    assert abs(toy_offset(pol, 0, 1) - p) < 1e-10
    run = train_preference(pol, batch, MarginLoss("dpo", beta=1.0), steps=40, lr=0.01)
    pt = (run.norm_w2 - run.norm_l2) / (run.norm_w2 + run.norm_l2 - 2 * run.inner)
    assert abs(float(pt[0]) - p) < 1e-9
    assert torch.equal(pt > -1, run.dw > 0) and torch.equal(pt < 1, run.dl < 0)
    assert torch.equal(run.predicted_up, run.dw > 0) and torch.equal(run.predicted_down, run.dl < 0)


def test_toy_gradient_is_feature_minus_mean():
    pol, _ = _toy_batch(0.4)
    with torch.no_grad(): pol.theta.copy_(torch.linspace(-1, 1, 8, dtype=F64))
    (g,) = torch.autograd.grad(pol(torch.tensor([5]))[0], pol.theta)
    mu = pol.log_probs().exp() @ pol.features
    torch.testing.assert_close(g, (pol.features[5] - mu).detach(), rtol=1e-12, atol=1e-14)


# --- normalised variant, Adam --------------------------------------------------------------------------------------
def test_normalised_step_is_always_ideal(lm_task):
    model, batch = lm_task
    run = train_preference(copy.deepcopy(model), batch, "dpo", steps=60, lr=0.05, normalised=True)
    assert bool((run.dw > 0).all()) and bool((run.dl < 0).all())


def test_normalised_toy_even_outside_ideal_region():
    pol, batch = _toy_batch(2.5)
    plain = train_preference(copy.deepcopy(pol), batch, MarginLoss("dpo", beta=1.0), steps=20, lr=0.01)
    normed = train_preference(pol, batch, MarginLoss("dpo", beta=1.0), steps=20, lr=0.01, normalised=True)
    assert plain.quadrant_counts()["both ↑"] == 20 and normed.quadrant_counts()["ideal ↑↓"] == 20


def test_adam_plain_fails_preconditioned_works():
    pol, batch = _toy_batch(0.9)
    run = train_preference(pol, batch, MarginLoss("dpo", beta=1.0), steps=100, lr=1e-3, optimizer="adam")
    ok = lambda pw, pl: float(((pw.sign() == run.dw.sign()) & (pl.sign() == run.dl.sign())).double().mean())
    assert ok(run.pred_dw, run.pred_dl) < 0.5 and ok(run.step_dw, run.step_dl) >= 0.95
    typical_error = float(((run.step_dw - run.dw).abs() / run.dw.abs()).median())
    assert typical_error < 0.01


# --- the claims on the tiny LM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_dpo_slic_simpo_lower_both_on_most_steps(k):
    "After SFT, DPO, SLiC and SimPO lower both log-probs on most of 100 steps, at every k (32 pairs; 16 is too few)."
    model, batch = lm_preference_task(k, device="cpu")
    for kind in ("dpo", "slic", "simpo"):
        run = train_preference(copy.deepcopy(model), batch, kind, steps=100, lr=0.05)
        q = run.quadrant_counts()
        assert q["both ↓"] > 50 and q["both ↑"] <= 5, (kind, q)  # most steps lower both; raising both is rare
        d_w, d_l = float(run.logp_w[-1] - run.logp_w[0]), float(run.logp_l[-1] - run.logp_l[0])
        assert d_l < d_w < 0 and float(run.margin[-1]) > float(run.margin[0])


@pytest.fixture(scope="module")
def raw_tasks():
    "The tiny LM before SFT (the initial model is policy and reference), 16 pairs, float64."
    return {k: lm_preference_task(k, n=16, sft_steps=0, dtype=F64, device="cpu") for k in (1, 4)}


def test_rejected_rises_under_cpo_before_sft(raw_tasks):
    "The paper's failure mode: CPO raises the rejected log-prob at k = 1 (shared tokens), not at k = 4; DPO stays ideal."
    runs = {(kind, k): train_preference(copy.deepcopy(t.model), t.batch, MarginLoss(kind, lam=1.0), steps=20, lr=0.05)
            for k, t in raw_tasks.items() for kind in ("dpo", "cpo")}
    assert runs["cpo", 1].quadrant_counts()["both ↑"] >= 18 and float(runs["cpo", 1].logp_l[-1]) > float(
        runs["cpo", 1].logp_l[0])
    assert runs["cpo", 4].quadrant_counts()["both ↑"] == 0
    assert all(runs["dpo", k].quadrant_counts()["ideal ↑↓"] == 20 for k in raw_tasks)
    assert min(r.condition_agreement() for r in runs.values()) >= 0.95  # the conditions call the signs step by step
    assert float(runs["dpo", 1].cosine[0]) > 0.5 > 0 > float(runs["dpo", 4].cosine[0])


def test_plot_condition_calls(raw_tasks):
    t = raw_tasks[1]
    run = train_preference(copy.deepcopy(t.model), t.batch, MarginLoss("cpo", lam=1.0), steps=6, lr=0.05)
    fig = plot_condition_calls(run, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[1].patches) == 6
    misses = int(((~run.predicted_down) != (run.dl > 0)).sum())
    assert len(fig.axes[1].collections[0].get_offsets()) == misses
    with pytest.raises(TypeError, match="`run`"): plot_condition_calls("x")


# --- LM task, cosines, figures, explorer ---------------------------------------------------------------------------
def test_lm_task_shapes_and_reference(lm_task):
    model, batch = lm_task
    assert isinstance(batch, PreferenceBatch) and len(batch) == 16 and batch.chosen.shape == (16, 9)
    assert torch.equal(batch.chosen[:, 0], batch.rejected[:, 0])
    assert int((batch.chosen != batch.rejected).sum(1).max()) == 2
    w, l = pair_logprobs(model, batch.chosen, batch.rejected)
    torch.testing.assert_close(w.detach(), batch.ref_w)
    c = pair_cosines(model, batch, max_pairs=4)
    assert c.shape == (4,) and bool((c.abs() <= 1 + 1e-12).all())


def test_lm_task_seeded():
    a = lm_preference_task(1, n=8, sft_steps=5, seed=4, device="cpu")
    b = lm_preference_task(1, n=8, sft_steps=5, seed=4, device="cpu")
    assert torch.equal(a[1].chosen, b[1].chosen) and torch.equal(a[1].ref_w, b[1].ref_w)


@pytest.fixture(scope="module")
def two_runs(lm_task):
    return compute_trajectories({2: lm_task}, {"dpo": MarginLoss("dpo"), "simpo": MarginLoss("simpo")}, steps=5)


@pytest.fixture(scope="module")
def small_tasks():
    return {1: lm_preference_task(1, n=8, sft_steps=5, device="cpu")}


def test_named_results(lm_task):
    pol, i, j = toy = entangled_toy(0.2)
    assert isinstance(toy, ToyPair) and (toy.chosen, toy.rejected) == (i, j) == (0, 1) and toy.policy is pol
    assert isinstance(lm_task, PreferenceTask) and isinstance(lm_task.batch, PreferenceBatch)
    lp = pair_logprobs(pol, torch.tensor([0]), torch.tensor([1]))
    assert isinstance(lp, PairLogprobs) and torch.equal(lp.logp_w, lp[0])
    c = MarginLoss("simpo", beta=2.0).coefficients(4.0, 8.0)
    assert isinstance(c, Coefficients) and float(c.d_w) == 0.5 and float(c.d_l) == 0.25


def test_seeds_take_generators():
    a = entangled_toy(0.5, seed=as_generator(7)).policy.features
    assert torch.equal(a, entangled_toy(0.5, seed=7).policy.features)
    t1 = lm_preference_task(1, n=4, sft_steps=2, seed=as_generator(3), device="cpu")
    t2 = lm_preference_task(1, n=4, sft_steps=2, seed=as_generator(3), device="cpu")
    assert torch.equal(t1.batch.chosen, t2.batch.chosen) and torch.equal(t1.batch.ref_w, t2.batch.ref_w)


def test_compute_trajectories(lm_task, two_runs):
    model, batch = lm_task
    assert set(two_runs) == {("dpo", 2), ("simpo", 2)} and all(len(r.inner) == 5 for r in two_runs.values())
    alone = train_preference(copy.deepcopy(model), batch, "dpo", steps=5, lr=0.05)
    assert torch.equal(alone.logp_w, two_runs["dpo", 2].logp_w)  # same as one run by hand; the task is not changed
    slow = compute_trajectories({2: lm_task}, {"dpo": MarginLoss("dpo")}, steps=2, lrs={"dpo": 1e-6})
    assert abs(float(slow["dpo", 2].logp_w[-1] - slow["dpo", 2].logp_w[0])) < 1e-3
    with pytest.raises(ValueError, match="`tasks`"): compute_trajectories({}, {"dpo": MarginLoss("dpo")})
    with pytest.raises(ValueError, match="`losses`"): compute_trajectories({2: lm_task}, {})
    with pytest.raises(TypeError, match="`losses"): compute_trajectories({2: lm_task}, {"dpo": "dpo"})


def test_plot_trajectories_and_plane(two_runs):
    fig = plot_trajectories(two_runs, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plane = plot_condition_plane({"a": two_runs["dpo", 2]})
    assert isinstance(plane, Figure) and len(plane.axes) == 1
    with pytest.raises(ValueError, match="`runs`"): plot_trajectories({})
    with pytest.raises(ValueError, match="`runs`"): plot_condition_plane({})


def test_plot_cosines(lm_task, two_runs):
    c = pair_cosines(*lm_task, max_pairs=3)
    fig = plot_cosines({2: c}, {2: two_runs["dpo", 2]}, late=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) >= 3
    with pytest.raises(ValueError, match="`runs`"): plot_cosines({1: c}, {2: two_runs["dpo", 2]})
    with pytest.raises(ValueError, match="`late`"): plot_cosines({2: c}, {2: two_runs["dpo", 2]}, late=50)


def test_trajectories_figure(two_runs):
    assert len(trajectory_traces(two_runs["dpo", 2])) == 3
    fig = trajectories_figure({"dpo": two_runs["dpo", 2], "simpo": two_runs["simpo", 2]}, prefix="loss = ", active=1)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 * 3 and len(fig.layout.sliders[0].steps) == 2
    with pytest.raises(ValueError, match="`runs`"): trajectories_figure({})


def test_entanglement_figure(small_tasks):
    fig = entanglement_figure(loss="cpo", k=1, steps=3, tasks=small_tasks)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3 and "cpo" in fig.layout.title.text
    with pytest.raises(TypeError, match="positional"): entanglement_figure("dpo")
    with pytest.raises(ValueError, match="`loss`"): entanglement_figure(loss="kto", tasks=small_tasks)


def test_explore_entanglement(small_tasks):
    ex = explore_entanglement(small_tasks)
    assert all(ex.controls[n].costly for n in ("beta", "tau", "gamma", "lr"))
    assert ex.controls["normalised"].kind == "checkbox" and ex.controls["loss"].kind == "dropdown"
    a = ex.update(loss="dpo", k=1)
    b = ex.update(loss="dpo", k=1, normalised=True)
    assert isinstance(a, go.Figure) and len(a.data) == 3 and a is not b
    assert a.layout.title.text != b.layout.title.text or a.data[0].y.tolist() != b.data[0].y.tolist()
    with pytest.raises(ValueError, match="`optimizer`"): ex.update(optimizer="lbfgs")


# --- bad input -----------------------------------------------------------------------------------------------------
def test_bad_input(lm_task):
    model, batch = lm_task
    z = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="`kind`"): MarginLoss("kto")
    with pytest.raises(ValueError, match="`kind`"): margin_loss("orpo", z, z)
    with pytest.raises(ValueError, match="`logp_w` is empty"): dpo_loss(z[:0], z[:0])
    with pytest.raises(ValueError, match="`logp_l`"): dpo_loss(z, z[:2])
    with pytest.raises(ValueError, match="`beta`"): dpo_loss(z, z, beta=0.0)
    with pytest.raises(ValueError, match="`tau`"): ipo_loss(z, z, tau=-1.0)
    with pytest.raises(ValueError, match="`lam`"): cpo_loss(z, z, lam=-1.0)
    with pytest.raises(ValueError, match="`ref_w`"): dpo_loss(z, z, ref_w=torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="`chosen` is empty"): pair_logprobs(model, batch.chosen[:0], batch.rejected[:0])
    with pytest.raises(ValueError, match="`rejected`"): pair_logprobs(model, batch.chosen, batch.rejected[:3])
    with pytest.raises(ValueError, match="`optimizer`"): train_preference(model, batch, "dpo", optimizer="lbfgs")
    with pytest.raises(ValueError, match="`steps`"): train_preference(model, batch, "dpo", steps=0)
    with pytest.raises(ValueError, match="`lr`"): entanglement_stats(model, batch, "dpo", lr=-1.0)
    with pytest.raises(TypeError, match="`batch`"): entanglement_stats(model, (batch.chosen, batch.rejected))
    with pytest.raises(ValueError, match="`num_responses`"): entangled_toy(num_responses=2)
    with pytest.raises(ValueError, match="`num_differ`"): lm_preference_task(0, sft_steps=1, device="cpu")
    with pytest.raises(ValueError, match="`max_pairs`"): pair_cosines(model, batch, max_pairs=0)
    with pytest.raises(TypeError, match="`seed`"): entangled_toy(seed=0.5)
    with pytest.raises(ValueError, match="`seed`"): lm_preference_task(1, sft_steps=1, seed=-1, device="cpu")
    with pytest.raises(ValueError, match="`features`"): LogLinearPolicy(torch.zeros(3))


@pytest.mark.parametrize("bad", [0.0, -3.0, math.nan, math.inf])
def test_lengths_must_be_positive_and_finite(bad):
    z = torch.zeros(3, dtype=F64)
    per_pair = torch.tensor([4.0, bad, 2.0], dtype=F64)
    with pytest.raises(ValueError, match="`len_w`: lengths must be positive and finite"): simpo_loss(z, z, len_w=bad)
    with pytest.raises(ValueError, match="`len_l`"): simpo_loss(z, z, len_l=per_pair)
    with pytest.raises(ValueError, match="`len_w`"): rdpo_loss(z, z, len_w=per_pair)
    with pytest.raises(ValueError, match="`len_l`"): rdpo_loss(z, z, len_l=bad)
    with pytest.raises(ValueError, match="`len_w`"): margin_loss("simpo", z, z, len_w=bad)
    with pytest.raises(ValueError, match="`len_w`"): MarginLoss("simpo").coefficients(bad, 2.0)
    with pytest.raises(ValueError, match="`len_l`"): MarginLoss("dpo").coefficients(2.0, per_pair)


def test_divergence_is_reported():
    model, batch = lm_preference_task(2, n=8, sft_steps=5, device="cpu")
    with pytest.raises(ValueError, match="diverged.*`lr`"):
        train_preference(model, batch, MarginLoss("ipo", tau=0.01), steps=30, lr=100.0)


# --- bad-input probes ----------------------------------------------------------------------------------------------
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_t, _nan3 = torch.zeros(3, dtype=F64), torch.full((3,), NAN, dtype=F64)
_bad_logp = [torch.zeros(0, dtype=F64), _nan3, torch.zeros(3, 2, dtype=F64), "x"]
_bad_beta = [NAN, INF, 0.0, -1.0, "x"]
_bad_ref = [torch.zeros(2, dtype=F64), _nan3, NAN, "x"]
_bad_len = [0.0, -1.0, NAN, INF, torch.zeros(3, dtype=F64), torch.ones(2, dtype=F64), "x"]
_ptask = lm_preference_task(1, n=4, sft_steps=0, device="cpu")
_pmodel, _pbatch = _ptask
_prun = train_preference(copy.deepcopy(_pmodel), _pbatch, "dpo", steps=2, lr=0.01)
_ppol = LogLinearPolicy(torch.eye(4, dtype=F64))
_bad_model = ["x", _t]
_bad_tokens = [_pbatch.chosen[:, :0], _pbatch.chosen.double(), _pbatch.chosen + 100, -_pbatch.chosen - 1, "x"]
_bad_runs = [{}, "x", {"a": "x"}]

PROBES = [
    Probe(dpo_loss, dict(logp_w=_t, logp_l=_t),
          dict(logp_w=_bad_logp, logp_l=[torch.zeros(4, dtype=F64), _nan3, "x"], ref_w=_bad_ref, ref_l=_bad_ref,
               beta=_bad_beta)),
    Probe(ipo_loss, dict(logp_w=_t, logp_l=_t), dict(logp_w=_bad_logp, ref_w=_bad_ref, tau=_bad_beta)),
    Probe(slic_loss, dict(logp_w=_t, logp_l=_t), dict(logp_l=[torch.zeros(4, dtype=F64)], ref_l=_bad_ref,
                                                      beta=_bad_beta)),
    Probe(simpo_loss, dict(logp_w=_t, logp_l=_t, len_w=4.0, len_l=4.0),
          dict(logp_w=_bad_logp, len_w=_bad_len, len_l=_bad_len, beta=_bad_beta, gamma=[NAN, INF, "x"])),
    Probe(rdpo_loss, dict(logp_w=_t, logp_l=_t, len_w=4.0, len_l=4.0),
          dict(ref_w=_bad_ref, len_w=_bad_len, len_l=_bad_len, beta=_bad_beta, alpha=[NAN, "x"])),
    Probe(cpo_loss, dict(logp_w=_t, logp_l=_t), dict(logp_w=_bad_logp, beta=_bad_beta, lam=[NAN, -1.0, "x"])),
    Probe(MarginLoss, dict(kind="dpo"),
          dict(kind=[UNKNOWN, 3], beta=_bad_beta, tau=_bad_beta, gamma=[NAN, "x"], alpha=[INF, "x"],
               lam=[NAN, -1.0, "x"])),
    Probe(margin_loss, dict(kind="simpo", logp_w=_t, logp_l=_t),
          dict(kind=[UNKNOWN], logp_w=_bad_logp, len_w=_bad_len, beta=_bad_beta, gamma=[NAN])),
    Probe(LogLinearPolicy, dict(features=torch.eye(4, dtype=F64)),
          dict(features=[torch.zeros(4), torch.zeros(1, 3), torch.full((4, 2), NAN), torch.eye(4, dtype=torch.long),
                         "x"],
               theta=[torch.zeros(3, dtype=F64), torch.full((4,), NAN, dtype=F64), "x"])),
    Probe(toy_offset, dict(policy=_ppol, chosen=0, rejected=1),
          dict(policy=["x", _pmodel], chosen=[-1, 4, 0.5, "x"], rejected=[-1, 4, 0, 1.5])),
    Probe(entangled_toy, dict(p=0.5, num_responses=8, dim=3),
          dict(p=[NAN, INF, "x"], num_responses=SIZES + [2], dim=SIZES + [1], seed=[-1, 0.5, "x"],
               device=[UNKNOWN, 3], dtype=[torch.int64, "x"])),
    Probe(pair_logprobs, dict(model=_pmodel, chosen=_pbatch.chosen, rejected=_pbatch.rejected),
          dict(model=_bad_model, chosen=_bad_tokens, rejected=_bad_tokens[1:] + [_pbatch.rejected[:2]])),
    Probe(preference_batch, dict(model=_ppol, chosen=torch.tensor([0, 2]), rejected=torch.tensor([1, 3])),
          dict(model=_bad_model, chosen=[torch.tensor([0, 9]), torch.tensor([[0, 1]]), torch.tensor([0.0, 2.0])],
               rejected=[torch.tensor([1]), torch.tensor([-1, 3])])),
    Probe(lm_preference_task, dict(num_differ=1, n=4, sft_steps=0, device="cpu"),
          dict(num_differ=SIZES + [9], n=SIZES, length=SIZES, vocab_size=SIZES + [1], dim=SIZES, kind=[UNKNOWN],
               layers=SIZES, sft_steps=[-1, 0.5], sft_lr=[NAN, 0.0, -1.0], seed=[-1, "x"], device=[UNKNOWN],
               dtype=[torch.int64])),
    Probe(pair_cosines, dict(model=_pmodel, batch=_pbatch, max_pairs=2),
          dict(model=_bad_model, batch=["x", (_pbatch.chosen, _pbatch.rejected)], max_pairs=SIZES + [1.5])),
    Probe(entanglement_stats, dict(model=_pmodel, batch=_pbatch, loss="dpo", lr=0.05),
          dict(model=_bad_model, batch=["x"], loss=[UNKNOWN, 3], lr=_bad_beta, normalised=["yes", 1])),
    Probe(train_preference, dict(model=copy.deepcopy(_pmodel), batch=_pbatch, loss="dpo", steps=1, lr=0.01),
          dict(model=_bad_model, batch=["x"], loss=[UNKNOWN, 3], steps=SIZES + [1.5], lr=_bad_beta,
               optimizer=[UNKNOWN], normalised=["yes"])),
    Probe(compute_trajectories, dict(tasks={1: _ptask}, losses={"dpo": MarginLoss("dpo")}, steps=1),
          dict(tasks=[{}, "x", {1: "x"}, {1: (_pmodel, "x")}], losses=[{}, "x", {"dpo": "dpo"}],
               steps=SIZES, lr=_bad_beta, lrs=["x", {"dpo": NAN}, {"dpo": -1.0}, {"dpo": "x"}])),
    Probe(plot_trajectories, dict(runs={("dpo", 1): _prun}), dict(runs=_bad_runs + [{"dpo": _prun}])),
    Probe(plot_condition_plane, dict(runs={"a": _prun}), dict(runs=_bad_runs, lim=[NAN, 0.0, -1.0, "x"], ax=["x"])),
    Probe(plot_cosines, dict(pair_cos={1: torch.zeros(2, dtype=F64)}, runs={1: _prun}, late=0),
          dict(pair_cos=[{}, "x", {1: "x"}], runs=_bad_runs + [{2: _prun}], late=SIZES[1:] + [5, 0.5])),
    Probe(plot_condition_calls, dict(run=_prun), dict(run=["x", {"a": _prun}])),
    Probe(trajectory_traces, dict(run=_prun), dict(run=["x", {"a": _prun}], name=[3])),
    Probe(trajectories_figure, dict(runs={"a": _prun}), dict(runs=_bad_runs, active=[-1, 1, 0.5])),
    Probe(entanglement_figure, dict(loss="dpo", k=1, steps=1, tasks={1: _ptask}),
          dict(loss=[UNKNOWN], beta=_bad_beta, tau=_bad_beta, gamma=[NAN], k=SIZES + [9, 1.5],
               optimizer=[UNKNOWN], lr=_bad_beta, normalised=["yes"], steps=SIZES, tasks=["x"])),
    Probe(explore_entanglement, dict(tasks={1: _ptask}), dict(tasks=["x", {1: "x"}])),
]
