"""Reference tests for gradviz.alignment.wagle: scores against a finite-difference loop, the μ limits, the mask's
size and ties, p = 1 against dense unlearning, frozen weights and the weight-decay leak, bad input (float64)."""
import copy
import math

import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

import reference as ref
from gradviz.alignment.wagle import (KIND_COLORS, METHODS, SCORE_KINDS, FactTask, Memorised, ScoreTerms, Setting,
                                     Summary, Tradeoffs, attribution_scores, compute_tradeoffs, explore_wagle,
                                     fictitious_facts, flat_params, layer_density, mask_ratio_figure, memorise,
                                     memorised_task, plot_layer_density, plot_mu_limits, plot_terms, plot_tradeoff,
                                     run_masked, score_terms, summarise, summed_gradient, topk_mask, unlearn,
                                     unlearning_loss, unlearning_metrics, wagle_figure, wagle_scores)
from gradviz.core import as_generator
from gradviz.data import count_parameters, next_token_loss, sequence_logprob, tiny_lm

F64 = torch.float64


@pytest.fixture(scope="module")
def small():
    task = fictitious_facts(4, 1, 2, forget_fraction=0.25, num_text=4, seed=1, device="cpu")
    return task, tiny_lm(task.vocab_size, 4, 1, "gru", seed=1, device="cpu", dtype=F64)


@pytest.fixture(scope="module")
def trained():
    task = fictitious_facts(seed=0, device="cpu")
    model = memorise(task, dim=16, steps=200, seed=0, dtype=F64)
    return model, task, score_terms(model, task.forget, task.retain_all)


def _fd_scores(model, forget, retain, mu):
    "WAGLE scores from central finite differences of the summed losses (tests/reference.py): no autodiff at all."
    def summed(batches):
        fs = [ref.flat_loss(model, next_token_loss, b, b) for b in batches]
        return (lambda theta: sum(f(theta) for f, _ in fs)), fs[0][1]
    (loss_f, theta), (loss_r, _) = summed(forget), summed(retain)
    g_f, g_r = ref.fd_gradient(loss_f, theta), ref.fd_gradient(loss_r, theta)
    return ((theta - g_r / mu) * g_f).abs()


@pytest.mark.parametrize("mu", [0.05, 1.0, 30.0])
def test_scores_match_a_per_parameter_loop(small, mu):
    task, model = small
    assert count_parameters(model) <= 200
    retain = [task.retain, task.text]
    torch.testing.assert_close(wagle_scores(model, [task.forget], retain, mu), _fd_scores(model, [task.forget], retain, mu),
                               rtol=1e-6, atol=1e-8)


def test_terms_and_sums(small):
    task, model = small
    g_r = summed_gradient(model, [task.retain, task.text])
    ps = list(model.parameters())
    ref = sum(torch.cat([g.reshape(-1) for g in torch.autograd.grad(next_token_loss(model(b), b), ps)]) for b in (task.retain, task.text))
    torch.testing.assert_close(g_r, ref)
    t = score_terms(model, task.forget, [task.retain, task.text])
    torch.testing.assert_close(t.prune, (flat_params(model) * t.g_f).abs())
    torch.testing.assert_close(t.wagle(2.0), (t.theta - t.g_r / 2.0).mul(t.g_f).abs())
    doubled = score_terms(model, task.forget, [task.retain, task.text, task.retain, task.text])
    torch.testing.assert_close(doubled.wagle(4.0), t.wagle(2.0))


def test_mu_limits(trained):
    from scipy import stats
    _, _, t = trained
    mu = t.balanced_mu()
    assert stats.spearmanr(t.wagle(mu * 1e10).numpy(), t.prune.numpy())[0] > 0.9999
    # weights with g_r = 0 (e.g. embedding rows of forget-only entities) tie at 0 in |g_r ⊙ g_f| but keep |θ ⊙ g_f| in
    # WAGLE at every μ, so the limit is exact only where g_r ≠ 0
    nz = t.retain > 0
    assert (~nz & (t.prune > 0)).any()
    assert stats.spearmanr(t.wagle(mu * 1e-10)[nz].numpy(), t.retain[nz].numpy())[0] > 0.99999
    assert stats.spearmanr(t.wagle(mu * 1e-10).numpy(), t.retain.numpy())[0] > 0.999
    mid = stats.spearmanr(t.wagle(mu).numpy(), t.prune.numpy())[0]
    assert mid < 0.999  # at the balanced μ the retain term matters
    # the same limits for the masks themselves
    assert torch.equal(topk_mask(t.wagle(mu * 1e12), 0.1), topk_mask(t.prune, 0.1)) or \
        (topk_mask(t.wagle(mu * 1e12), 0.1) ^ topk_mask(t.prune, 0.1)).sum() <= 2


@pytest.mark.parametrize("ratio", [1e-4, 0.01, 0.05, 0.2, 1 / 3, 0.5, 0.99, 1.0])
def test_topk_exact_count(trained, ratio):
    _, _, t = trained
    for kind in SCORE_KINDS:
        m = topk_mask(attribution_scores(t, kind), ratio)
        assert m.dtype == torch.bool and int(m.sum()) == math.floor(ratio * len(t.theta))


def test_topk_ties_and_order():
    s = torch.tensor([2.0, 5.0, 5.0, 5.0, 1.0, 5.0], dtype=F64)
    assert topk_mask(s, 0.5).tolist() == [False, True, True, True, False, False]
    assert topk_mask(s, 0.34).tolist() == [False, True, True, False, False, False]
    assert topk_mask(torch.zeros(10), 0.3).tolist() == [True] * 3 + [False] * 7
    m = topk_mask(torch.arange(10.0), 0.3)
    assert m.nonzero().flatten().tolist() == [7, 8, 9]


def test_random_scores_seeded(trained):
    _, _, t = trained
    assert torch.equal(attribution_scores(t, "random", seed=3), attribution_scores(t, "random", seed=3))
    assert not torch.equal(attribution_scores(t, "random", seed=3), attribution_scores(t, "random", seed=4))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_full_mask_is_dense_bit_for_bit(trained, method, optimizer):
    model, task, t = trained
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    la = unlearn(a, task.forget, task.retain_all, None, method, steps=5, lr=1e-2, optimizer=optimizer, weight_decay=0.01)
    lb = unlearn(b, task.forget, task.retain_all, topk_mask(t.prune, 1.0), method, steps=5, lr=1e-2, optimizer=optimizer, weight_decay=0.01)
    assert torch.equal(la, lb) and all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_frozen_weights_bit_identical_without_decay(trained, optimizer):
    model, task, t = trained
    mask = topk_mask(t.wagle(t.balanced_mu()), 0.2)
    m = copy.deepcopy(model)
    unlearn(m, task.forget, task.retain_all, mask, "graddiff", steps=10, lr=1e-2, optimizer=optimizer)
    after = flat_params(m)
    assert torch.equal(after[~mask], t.theta[~mask])
    assert not torch.equal(after[mask], t.theta[mask])


def test_adamw_weight_decay_leaks_into_frozen_weights(trained):
    model, task, t = trained
    mask = topk_mask(t.prune, 0.2)
    lr, wd, steps = 1e-2, 0.1, 10
    m = copy.deepcopy(model)
    unlearn(m, task.forget, task.retain_all, mask, steps=steps, lr=lr, optimizer="adamw", weight_decay=wd)
    # decoupled decay alone: θ ← (1 − ηλ) θ each step, exactly, for the weights whose gradient is masked
    torch.testing.assert_close(flat_params(m)[~mask], t.theta[~mask] * (1 - lr * wd) ** steps, rtol=1e-12, atol=1e-15)
    m2 = copy.deepcopy(model)
    unlearn(m2, task.forget, task.retain_all, mask, steps=steps, lr=lr, optimizer="adam", weight_decay=wd)
    assert not torch.equal(flat_params(m2)[~mask], t.theta[~mask])  # coupled L2 is added after the mask too


def test_graddiff_sanity(trained):
    model, task, _ = trained
    m = copy.deepcopy(model)
    nll = lambda mod, x: next_token_loss(mod(x), x).item()
    f0, r0 = nll(m, task.forget), nll(m, task.retain_all)
    unlearn(m, task.forget, task.retain_all, None, "graddiff", steps=10, lr=1e-3, optimizer="sgd")
    assert nll(m, task.forget) > f0
    assert abs(nll(m, task.retain_all) - r0) < 0.05


def test_npo_loss_closed_form(trained):
    model, task, _ = trained
    with torch.no_grad():
        ref = sequence_logprob(model, task.forget)[0]
        got = unlearning_loss(model, task.forget, task.retain_all, "npo", gamma=0.0, beta=0.5, ref_logp=ref)
        torch.testing.assert_close(got, torch.tensor((2 / 0.5) * math.log(2), dtype=F64))
        shifted = unlearning_loss(model, task.forget, task.retain_all, "npo", gamma=0.0, beta=0.5, ref_logp=ref - 1.0)
        torch.testing.assert_close(shifted, torch.tensor(4 * math.log(1 + math.exp(0.5)), dtype=F64))
        gd = unlearning_loss(model, task.forget, task.retain_all, "graddiff", gamma=2.0)
        torch.testing.assert_close(gd, -next_token_loss(model(task.forget), task.forget) + 2 * next_token_loss(model(task.retain_all), task.retain_all))


def test_task_and_metrics(trained):
    model, task, _ = trained
    assert isinstance(task, FactTask) and len(task.forget) == 6 and len(task.retain) == 54
    ents = lambda x: set(x[:, 0].tolist())
    assert not ents(task.forget) & ents(task.retain)
    assert int(task.forget.max()) < task.vocab_size and int(task.text.max()) < task.vocab_size
    again = fictitious_facts(seed=0, device="cpu")
    assert torch.equal(again.forget, task.forget) and torch.equal(again.text_test, task.text_test)
    m = unlearning_metrics(model, task)
    assert m["forget_acc"] == 1.0 and m["retain_acc"] == 1.0 and 0.5 < m["utility"] <= 1.0


def test_layer_density(trained):
    model, _, t = trained
    mask = topk_mask(t.prune, 0.3)
    d = layer_density(model, mask)
    total = sum(d[n] * p.numel() for n, p in model.named_parameters())
    assert abs(total - int(mask.sum())) < 1e-9


@pytest.fixture(scope="module")
def tradeoffs(trained):
    model, task, t = trained
    return compute_tradeoffs(seeds=(0,), ratios=(0.2, 0.5), methods=("graddiff",), setting=Setting(steps=3),
                             models={0: Memorised(model, task, t)})


def test_tradeoffs_and_plots(trained, tradeoffs):
    model, task, t = trained
    runs, models = tradeoffs
    assert isinstance(tradeoffs, Tradeoffs) and len(runs) == 1 + 2 * len(SCORE_KINDS) and set(models) == {0}
    assert runs["graddiff", "snip", 0.2, 0] == run_masked(model, task, t, "snip", 0.2, Setting(steps=3))
    s = summarise(runs, "forget_acc")
    assert isinstance(s, Summary) and s.metric == "forget_acc" and s.std["graddiff", "dense", 1.0] == 0.0
    assert s.mean["graddiff", "snip", 0.2] == runs["graddiff", "snip", 0.2, 0]["forget_acc"]
    fig = plot_tradeoff(runs)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert isinstance(plot_layer_density(model, t, 0.2), Figure)
    assert isinstance(plot_terms(t), Figure)
    assert isinstance(plot_mu_limits([1.0, 2.0], [0.5, 0.6], [0.6, 0.5], 1.5), Figure)
    out = run_masked(model, task, t, "snip", 0.2, Setting(steps=2))
    assert set(out) >= {"forget_acc", "retain_acc", "utility"}


def test_summary_by_hand():
    runs = {("npo", "wagle", 0.5, s): {"retain_acc": a} for s, a in enumerate((0.2, 0.4, 0.9))}
    s = summarise(runs, "retain_acc")
    assert s.mean == {("npo", "wagle", 0.5): pytest.approx(0.5)}
    assert s.std[("npo", "wagle", 0.5)] == pytest.approx(((0.09 + 0.01 + 0.16) / 3) ** 0.5)


def test_compute_tradeoffs_progress(trained):
    model, task, t = trained
    seen = []
    def bar(it, total=None, desc=None):
        seen.append(desc)
        return it
    compute_tradeoffs(seeds=(0,), ratios=(0.5,), methods=("npo",), setting=Setting(steps=1),
                      models={0: (model, task, t)}, progress=bar)
    assert seen == ["seeds"]


def test_memorised_task():
    mem = memorised_task(3, num_entities=6, dim=8, steps=5, device="cpu")
    assert isinstance(mem, Memorised) and isinstance(mem.task, FactTask) and isinstance(mem.terms, ScoreTerms)
    task = fictitious_facts(6, seed=3, device="cpu")
    model = memorise(task, dim=8, steps=5, seed=3)
    assert torch.equal(mem.task.forget, task.forget) and torch.equal(mem.terms.theta, flat_params(model))
    again = memorised_task(as_generator(5), num_entities=6, dim=8, steps=2, device="cpu")
    assert torch.equal(again.terms.g_f, memorised_task(as_generator(5), num_entities=6, dim=8, steps=2,
                                                       device="cpu").terms.g_f)


def test_seeds_take_generators(trained):
    model, task, t = trained
    assert torch.equal(fictitious_facts(seed=as_generator(0), device="cpu").forget, task.forget)
    assert torch.equal(attribution_scores(t, "random", seed=as_generator(2)), attribution_scores(t, "random", seed=2))
    a = run_masked(model, task, t, "random", 0.3, Setting(steps=2), seed=as_generator(4))
    assert a == run_masked(model, task, t, "random", 0.3, Setting(steps=2), seed=4)


def test_mask_ratio_figure(tradeoffs):
    fig = mask_ratio_figure(tradeoffs.runs, "graddiff", active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    assert len(fig.data) == 2 * len(SCORE_KINDS)
    assert {tr.marker.color for tr in fig.data} == {KIND_COLORS[k] for k in SCORE_KINDS}


def test_wagle_figure(trained):
    model, task, t = trained
    cache = {0: (model, task, t)}
    fig = wagle_figure(ratio=0.1, steps=5, cache=cache)
    assert isinstance(fig, go.Figure) and [tr.name for tr in fig.data] == ["before", "after"]
    assert fig.data[0].marker.color not in KIND_COLORS.values()  # "before" never takes a mask's colour
    assert len({KIND_COLORS[k] for k in SCORE_KINDS + ("dense",)}) == len(SCORE_KINDS) + 1
    assert "frozen moved: 0 of" in fig.layout.title.text
    leaky = wagle_figure(ratio=0.1, steps=5, optimizer="adamw", weight_decay=0.1, cache=cache)
    assert "frozen moved: 0 of" not in leaky.layout.title.text


def test_explorer(trained):
    model, task, t = trained
    ex = explore_wagle({0: (model, task, t)})
    assert all(ex.controls[n].costly for n in ("ratio", "log_mu", "lr", "steps", "weight_decay", "gamma"))
    fig = ex.update(ratio=0.1, steps=5)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    other = ex.update(ratio=0.5, steps=5)
    assert other is not fig and other.layout.title.text != fig.layout.title.text
    with pytest.raises(ValueError, match="`method`"): ex.update(method="ga")


def test_score_terms_are_checked_at_construction():
    x = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="`theta`, `g_f` and `g_r` must have the same length, got 4, 3 and 4"):
        ScoreTerms(x, x[:3], x)
    with pytest.raises(ValueError, match="`g_r`"): ScoreTerms(x, x, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="`theta`"): ScoreTerms(x.reshape(2, 2), x, x)
    with pytest.raises(TypeError, match="`g_f`"): ScoreTerms(x, [1.0, 2.0, 3.0, 4.0], x)


def test_bad_input(trained, small):
    model, task, t = trained
    with pytest.raises(ValueError, match="`forget_batches`"): wagle_scores(model, [], task.retain_all, 1.0)
    with pytest.raises(ValueError, match="`retain_batches"): wagle_scores(model, task.forget, task.retain_all[:0], 1.0)
    with pytest.raises(ValueError, match="`mu`"): wagle_scores(model, task.forget, task.retain_all, 0.0)
    with pytest.raises(ValueError, match="`mu`"): wagle_scores(model, task.forget, task.retain_all, -2.0)
    with pytest.raises(ValueError, match="`mu`"): t.wagle(0.0)
    for r in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="`ratio`"): topk_mask(t.prune, r)
    with pytest.raises(ValueError, match="`scores`"): topk_mask(t.prune.reshape(2, -1), 0.5)
    with pytest.raises(ValueError, match="`kind`"): attribution_scores(t, "wanda")
    with pytest.raises(TypeError, match="`terms`"): attribution_scores("nope", "snip")
    with pytest.raises(ValueError, match="`method`"): unlearn(copy.deepcopy(model), task.forget, task.retain_all, method="ga")
    with pytest.raises(ValueError, match="`method`"): unlearning_loss(model, task.forget, task.retain_all, "kl")
    with pytest.raises(ValueError, match="`optimizer`"): unlearn(copy.deepcopy(model), task.forget, task.retain_all, optimizer="lion")
    with pytest.raises(ValueError, match="`forget` batch 0 is empty"): unlearn(copy.deepcopy(model), task.forget[:0], task.retain_all)
    with pytest.raises(ValueError, match="`mask`"): unlearn(copy.deepcopy(model), task.forget, task.retain_all, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="`mask`"): unlearn(copy.deepcopy(model), task.forget, task.retain_all, torch.ones(len(t.theta)))
    with pytest.raises(ValueError, match="`ref_logp`"): unlearning_loss(model, task.forget, task.retain_all, "npo")
    with pytest.raises(ValueError, match="`forget_fraction`"): fictitious_facts(forget_fraction=0.0)
    with pytest.raises(TypeError, match="`model`"): summed_gradient("model", task.forget)
    with pytest.raises(TypeError, match="positional"): wagle_figure(0.2)
    with pytest.raises(ValueError, match="`kind`"): wagle_figure(kind="wanda", cache={0: (model, task, t)})
    with pytest.raises(ValueError, match="`metric`"): summarise({("graddiff", "snip", 0.2, 0): {"a": 1.0}}, "b")
    with pytest.raises(ValueError, match="`runs`"): summarise({}, "forget_acc")
    with pytest.raises(ValueError, match="`methods`"): compute_tradeoffs(methods=("ga",))
    with pytest.raises(TypeError, match="`setting`"): run_masked(model, task, t, "snip", setting={"lr": 0.1})
    with pytest.raises(ValueError, match="`method`"):
        mask_ratio_figure({("graddiff", "snip", 0.2, 0): {"forget_acc": 1.0}}, "npo")
    with pytest.raises(ValueError, match="`dim`"): memorised_task(dim=0, device="cpu")
    with pytest.raises(TypeError, match="`seed`"): fictitious_facts(seed=1.5)


@pytest.fixture(scope="module")
def claim():
    "The chapter's experiment at p = 0.2 only: 3 seeds, GradDiff and NPO, every mask (Adam, η = 3·10⁻³, 30 steps)."
    return compute_tradeoffs(seeds=(0, 1, 2), ratios=(0.2,), device="cpu")


def test_attribution_masks_beat_random_and_weight_masks(claim):
    """In every seed and for both methods, each gradient mask lowers the forget log-likelihood by > 0.5 nats below the
    random and |θ| masks at p = 0.2, and its mean forget accuracy is at least 0.25 lower."""
    runs = claim.runs
    for m in METHODS:
        for base in ("random", "weight"):
            for kind in ("gradient", "snip", "wagle"):
                ll = [(runs[m, kind, 0.2, s]["forget_ll"], runs[m, base, 0.2, s]["forget_ll"]) for s in (0, 1, 2)]
                assert all(a < b - 0.5 for a, b in ll)
                acc = [runs[m, k, 0.2, s]["forget_acc"] for k in (kind, base) for s in (0, 1, 2)]
                assert sum(acc[:3]) / 3 <= sum(acc[3:]) / 3 - 0.25


def test_wagle_does_not_beat_snip_here(claim):
    "As measured: at equal p WAGLE (at μ*) forgets less than SNIP in every seed, with the same mean retain accuracy."
    runs = claim.runs
    for m in METHODS:
        assert all(runs[m, "wagle", 0.2, s]["forget_ll"] > runs[m, "snip", 0.2, s]["forget_ll"] for s in (0, 1, 2))
        s_w, s_s = summarise(runs, "retain_acc").mean[m, "wagle", 0.2], summarise(runs, "retain_acc").mean[m, "snip", 0.2]
        assert abs(s_w - s_s) <= 0.02


def test_held_out_utility_unchanged(claim):
    "Held-out text accuracy is exactly where it started in every run; its log-likelihood moves < 1/20 of the forget drop."
    start = {s: unlearning_metrics(mem.model, mem.task) for s, mem in claim.models.items()}
    for (_, _, _, s), v in claim.runs.items():
        assert v["utility"] == start[s]["utility"]
    ll = max(abs(v["utility_ll"] - start[k[3]]["utility_ll"]) for k, v in claim.runs.items())
    assert ll < max(start[k[3]]["forget_ll"] - v["forget_ll"] for k, v in claim.runs.items()) / 20


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    task = fictitious_facts(seed=2, device=device)
    model = memorise(task, dim=8, steps=5, seed=2)
    t = score_terms(model, task.forget, task.retain_all)
    assert t.theta.device.type == device and topk_mask(t.prune, 0.2).device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_TASK = fictitious_facts(4, 1, 2, forget_fraction=0.25, num_text=4, seed=1, device="cpu")
_LM = tiny_lm(_TASK.vocab_size, 4, 1, "gru", seed=1, device="cpu", dtype=F64)
_TERMS = score_terms(_LM, _TASK.forget, _TASK.retain_all)
_N = len(_TERMS.theta)
_MEM = Memorised(_LM, _TASK, _TERMS)
_RUNS = {("graddiff", k, 0.2, 0): {"forget_acc": 1.0, "forget_ll": -1.0, "retain_acc": 1.0} for k in SCORE_KINDS}
_RUNS[("graddiff", "dense", 1.0, 0)] = {"forget_acc": 0.5, "forget_ll": -2.0, "retain_acc": 0.9}
_TOK = _TASK.forget
_BAD_BATCHES = [[], None, "tokens", _TOK[:0], _TOK[0], _TOK.double(), -_TOK - 1]
_BAD_TOKENS = [_TOK[:0], _TOK[0], _TOK.double(), "tokens", -_TOK - 1]
_MASK = torch.ones(_N, dtype=torch.bool)
_REF = sequence_logprob(_LM, _TOK)[0].detach()

PROBES = [
    Probe(flat_params, dict(model=_LM), dict(model=["model", torch.zeros(3)])),
    Probe(summed_gradient, dict(model=_LM, batches=_TOK), dict(model=["model"], batches=_BAD_BATCHES, name=[3])),
    Probe(ScoreTerms, dict(theta=_TERMS.theta, g_f=_TERMS.g_f, g_r=_TERMS.g_r),
          dict(theta=[_TERMS.theta[:-1], _TERMS.theta[None], "theta"], g_f=[_TERMS.g_f[:-1]], g_r=[[1.0]])),
    Probe(score_terms, dict(model=_LM, forget_batches=_TOK, retain_batches=_TASK.retain_all),
          dict(model=["model"], forget_batches=_BAD_BATCHES, retain_batches=_BAD_BATCHES)),
    Probe(wagle_scores, dict(model=_LM, forget_batches=_TOK, retain_batches=_TASK.retain_all, mu=1.0),
          dict(model=["model"], forget_batches=[[], _TOK.double()], retain_batches=[None, _TOK[0]],
               mu=[0.0, -1.0, NAN, INF, "1"])),
    Probe(_TERMS.wagle, dict(mu=1.0), dict(mu=[0.0, NAN, "1"])),
    Probe(attribution_scores, dict(terms=_TERMS),
          dict(terms=["terms", _TERMS.theta], kind=[UNKNOWN], mu=[0.0, NAN], seed=[-1, 0.5, "0"])),
    Probe(topk_mask, dict(scores=_TERMS.prune, ratio=0.2),
          dict(scores=[_TERMS.prune[None], torch.full((4,), NAN), "scores"], ratio=[0.0, -0.1, 1.5, NAN, "p"])),
    Probe(unlearning_loss, dict(model=_LM, forget=_TOK, retain=_TASK.retain_all, method="npo", ref_logp=_REF),
          dict(model=["model"], forget=_BAD_TOKENS, retain=_BAD_TOKENS, method=[UNKNOWN], gamma=[-1.0, NAN],
               beta=[0.0, NAN], ref_logp=[_REF[:-1], torch.full_like(_REF, NAN), "ref"])),
    Probe(unlearn, dict(model=_LM, forget=_TOK, retain=_TASK.retain_all, steps=1),
          dict(model=["model"], forget=_BAD_TOKENS, retain=_BAD_TOKENS,
               mask=[_MASK[:-1], _MASK.double(), _MASK[None], "mask"], method=[UNKNOWN], steps=SIZES,
               lr=[0.0, NAN], optimizer=[UNKNOWN], gamma=[-1.0, INF], beta=[0.0, NAN], weight_decay=[-0.1, NAN],
               progress=["bar"])),
    Probe(fictitious_facts, dict(device="cpu"),
          dict(num_entities=SIZES, num_relations=SIZES, num_values=SIZES, forget_fraction=[0.0, 1.5, NAN],
               num_text=SIZES, stickiness=[-0.1, 1.1, NAN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(memorise, dict(task=_TASK, dim=4, steps=1),
          dict(task=["task", _TOK], dim=SIZES, steps=SIZES, lr=[0.0, NAN], seed=[-1, 0.5], dtype=["float32"],
               kind=[UNKNOWN], layers=SIZES)),
    Probe(unlearning_metrics, dict(model=_LM, task=_TASK), dict(model=["model"], task=["task", _TOK])),
    Probe(memorised_task, dict(seed=0, num_entities=4, dim=4, steps=1, device="cpu"),
          dict(seed=[-1, 0.5], num_entities=SIZES, num_relations=SIZES, num_values=SIZES, dim=SIZES,
               kind=[UNKNOWN], layers=SIZES, steps=SIZES, lr=[0.0, NAN], device=[UNKNOWN])),
    Probe(run_masked, dict(model=_LM, task=_TASK, terms=_TERMS, kind="snip", setting=Setting(steps=1)),
          dict(model=["model"], task=["task"], terms=["terms"], kind=[UNKNOWN], ratio=[0.0, 1.5, NAN],
               setting=[{"lr": 0.1}], mu=[0.0, NAN], seed=[-1, 0.5], progress=["bar"])),
    Probe(compute_tradeoffs, dict(seeds=(0,), models={0: _MEM}, setting=Setting(steps=1)),
          dict(seeds=[(), (-1,), (0.5,), 3], ratios=[(), (0.0,), (1.5,), (NAN,)], methods=[(UNKNOWN,)],
               setting=[{"lr": 0.1}], models=["models"], device=[UNKNOWN], progress=["bar"])),
    Probe(summarise, dict(runs=_RUNS, metric="forget_acc"), dict(runs=[{}, "runs"], metric=[UNKNOWN])),
    Probe(plot_tradeoff, dict(runs=_RUNS), dict(runs=[{}, "runs"], x=[UNKNOWN], y=[UNKNOWN])),
    Probe(layer_density, dict(model=_LM, mask=_MASK),
          dict(model=["model"], mask=[_MASK[:-1], _MASK.double(), _MASK[None], "mask"])),
    Probe(plot_layer_density, dict(model=_LM, terms=_TERMS),
          dict(model=["model"], terms=["terms", ScoreTerms(_TERMS.theta[:3], _TERMS.g_f[:3], _TERMS.g_r[:3])],
               ratio=[0.0, 1.5, NAN], mu=[0.0, NAN])),
    Probe(plot_terms, dict(terms=_TERMS), dict(terms=["terms"], mu=[0.0, -1.0, NAN])),
    Probe(plot_mu_limits, dict(mus=[1.0, 2.0], rho_snip=[0.5, 0.6], rho_retain=[0.6, 0.5], mu_star=1.5),
          dict(mus=[[], [0.0, 1.0], "mus", [1.0, NAN]], rho_snip=[[0.5], [NAN, 0.1]], rho_retain=[[0.1, 0.2, 0.3]],
               mu_star=[0.0, NAN, "1"])),
    Probe(mask_ratio_figure, dict(runs=_RUNS, metrics=("forget_acc",)),
          dict(runs=[{}, "runs"], method=[UNKNOWN], metrics=[(UNKNOWN,), (), "forget_acc"], active=[-1, 5, 0.5])),
    Probe(wagle_figure, dict(steps=1, cache={0: _MEM}),
          dict(ratio=[0.0, 1.5, NAN], log_mu=[NAN, INF], kind=[UNKNOWN], method=[UNKNOWN], lr=[0.0, NAN],
               steps=SIZES, optimizer=[UNKNOWN], weight_decay=[-0.1, NAN], gamma=[-1.0, NAN], cache=["cache"],
               progress=["bar"])),
    Probe(explore_wagle, dict(cache=None), dict(cache=["cache", 3])),
]
