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
                                            plot_condition_plane, plot_trajectories, preference_batch, rdpo_loss,
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


def test_stats_match_first_step_of_run(lm_task):
    model, batch = lm_task
    st = entanglement_stats(model, batch, "dpo", lr=0.05)
    run = train_preference(copy.deepcopy(model), batch, "dpo", steps=1, lr=0.05)
    assert isinstance(st, EntanglementStats)
    np.testing.assert_allclose([st.inner, st.norm_w2, st.norm_l2, st.pred_dw],
                               [run.inner[0], run.norm_w2[0], run.norm_l2[0], run.pred_dw[0]], rtol=1e-10)
    assert abs(st.cosine) <= 1 and st.chosen_up == bool(run.predicted_up[0])


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
