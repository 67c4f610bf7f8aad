"""Reference tests for gradviz.representation.surgery (float64): GMS against its closed form, equalisation norms, the
first step's moments, homogeneity, PCGrad's orthogonality (and torchjd's PCGrad), SAM-GS against a line-by-line
re-implementation of the official `balance_magnitude`, the toys' gradients against autograd and finite differences,
batched runs against separate ones, the LS fixed point, the trainer against a plain step, and the chapter's findings
at small settings."""
import math

import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import reference as ref
from probe import INF, NAN, SIZES, UNKNOWN, Probe
from gradviz.data import mlp
from gradviz.representation.surgery import (METHODS, QUADRATIC_STARTS, REPO_STARTS, SAMGS, MTLData, MultiTaskTrainer,
                                            ParetoFront, QuadraticToy, RepoToy, ToyRun, TrainLog, aggregator, delta_m,
                                            equalize, explore_surgery, front_gap, gamma_figure,
                                            gradient_magnitude_similarity, linear_scalarization, mtl_regression,
                                            pareto_front, pcgrad, plot_contours, plot_delta_m, plot_loss_space,
                                            plot_similarity, quadratic_toy, repo_toy, run_toy, surgery_figure)

F64 = torch.float64


def _rand(K=3, p=7, seed=0, scales=None):
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(K, p, generator=g, dtype=F64)
    return G if scales is None else G * torch.tensor(scales, dtype=F64)[:, None]


# ---------------------------------------------------------------- gradient magnitude similarity
@pytest.mark.parametrize("seed", range(5))
def test_gms_closed_form_symmetry_and_scale_invariance(seed):
    G = _rand(4, 9, seed, scales=[1.0, 3.0, 0.01, 250.0])
    S = gradient_magnitude_similarity(G)
    n = [float(v) for v in G.norm(dim=1)]
    for i in range(4):
        for j in range(4):
            r = n[i] / n[j]
            assert abs(float(S[i, j]) - 2 * r / (1 + r * r)) < 1e-14
    torch.testing.assert_close(S, S.T, rtol=0, atol=0)
    torch.testing.assert_close(gradient_magnitude_similarity(17.5 * G), S, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(S.diagonal(), torch.ones(4, dtype=F64))
    assert float(S.max()) <= 1.0 and float(S.fill_diagonal_(0).max()) < 1.0


def test_gms_is_one_iff_equal_norms_and_vanishes_at_extremes():
    a = torch.tensor([3.0, 4.0], dtype=F64)
    for b in (torch.tensor([5.0, 0.0], dtype=F64), torch.tensor([0.0, -5.0], dtype=F64)):
        assert float(gradient_magnitude_similarity(torch.stack([a, b]))[0, 1]) == 1.0
    for r in (1 + 1e-6, 2.0, 1e3):
        assert float(gradient_magnitude_similarity(torch.stack([a, a * r]))[0, 1]) < 1.0
    assert float(gradient_magnitude_similarity(torch.stack([a, a * 1e-9]))[0, 1]) < 1e-8
    assert float(gradient_magnitude_similarity(torch.zeros(2, 3, dtype=F64))[0, 1]) == 1.0


def test_gms_batched_equals_one_by_one():
    G = torch.randn(5, 3, 2, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    S = gradient_magnitude_similarity(G)
    for idx in [(0, 0), (4, 1), (2, 0)]:
        torch.testing.assert_close(S[idx], gradient_magnitude_similarity(G[idx]), rtol=0, atol=0)


# ---------------------------------------------------------------- equalisation and LS
def test_equalised_parts_have_the_mean_norm():
    norms = torch.tensor([0.5, 4.0, 30.0], dtype=F64)
    dirs = torch.randn(3, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    G = torch.zeros(3, 15, dtype=F64)  # disjoint supports: each part of the sum can be read off
    for i in range(3): G[i, 5 * i:5 * i + 5] = norms[i] * dirs[i] / dirs[i].norm()
    out = equalize(G)
    for i in range(3): assert abs(float(out[5 * i:5 * i + 5].norm()) - float(norms.mean())) < 1e-12
    same = dirs / dirs.norm(dim=1, keepdim=True) * 2.0
    torch.testing.assert_close(equalize(same), same.sum(0), rtol=1e-15, atol=1e-15)


def test_equalize_keeps_a_zero_gradient_at_zero():
    G = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=F64)
    torch.testing.assert_close(equalize(G), torch.tensor([1.5, 2.0], dtype=F64))


def test_linear_scalarization_is_the_gradient_of_the_weighted_sum():
    x = torch.randn(4, dtype=F64, requires_grad=True)
    losses = torch.stack([(x ** 2).sum(), (x ** 3).sum(), x.sin().sum()])
    G = torch.stack([torch.autograd.grad(l, x, retain_graph=True)[0] for l in losses])
    w = [0.5, 2.0, -1.0]
    (direct,) = torch.autograd.grad((torch.tensor(w, dtype=F64) * losses).sum(), x)
    torch.testing.assert_close(linear_scalarization(G, w), direct, rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------- PCGrad
@pytest.mark.parametrize("seed", range(5))
def test_pcgrad_two_conflicting_become_orthogonal_to_the_other(seed):
    g = torch.Generator().manual_seed(seed)
    g1 = torch.randn(6, generator=g, dtype=F64)
    g2 = -g1 + 0.3 * torch.randn(6, generator=g, dtype=F64)  # conflicting
    assert float(g1 @ g2) < 0
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert abs(float(p1 @ g2)) < 1e-12 and abs(float(p2 @ g1)) < 1e-12
    torch.testing.assert_close(pcgrad(torch.stack([g1, g2]), seed=seed), p1 + p2, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(pcgrad(torch.stack([g1, g2]), reduction="mean"), (p1 + p2) / 2, rtol=1e-13, atol=1e-13)


def test_pcgrad_leaves_agreeing_gradients_alone_and_is_seeded():
    G = _rand(4, 5, 3).abs()  # all inner products positive
    assert torch.equal(pcgrad(G), G.sum(0))
    H = _rand(5, 3, 4)
    assert torch.equal(pcgrad(H, seed=7), pcgrad(H, seed=7))
    assert any(not torch.allclose(pcgrad(H, seed=0), pcgrad(H, seed=s)) for s in range(1, 20))  # order matters, K ≥ 3


@pytest.mark.ref
@pytest.mark.parametrize("seed", range(4))
def test_pcgrad_matches_torchjd(seed):
    agg = ref.require_ref("torchjd.aggregation")
    G = _rand(2, 8, seed, scales=[1.0, 10.0 ** (seed - 1)])
    G[1] = -G[1] + 0.1 * G[0]  # make them conflict
    torch.testing.assert_close(pcgrad(G), agg.PCGrad()(G), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pcgrad(G.abs()), agg.PCGrad()(G.abs()), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- SAM-GS
class OfficialBalance:
    "The official `SAMGS.balance_magnitude`, re-written line by line in its own (p, K) layout, with its ×K."
    def __init__(self, K, b1, b2, gamma, rule="mean"):
        self.K, self.b1, self.b2, self.gamma, self.rule, self.m, self.v, self.t = K, b1, b2, gamma, rule, 0, 0, 0

    def __call__(self, grads):  # grads: (p, K)
        self.t += 1
        w = grads.clone()
        mg = torch.linalg.norm(w, dim=0).unsqueeze(1)
        sim = 2 * (mg @ mg.T) / (mg ** 2 + mg.T ** 2)
        pairs = sim[torch.triu(torch.ones_like(sim, dtype=torch.bool), diagonal=1)]
        self.m = self.b1 * self.m + (1 - self.b1) * w
        self.v = self.b2 * self.v + ((1 - self.b2) * (1 - pairs.mean()) ** 2) + 1e-8
        mhat, vhat = self.m / (1 - self.b1 ** self.t), self.v / (1 - self.b2 ** self.t)
        switch = pairs.mean() < self.gamma if self.rule == "mean" else (pairs < self.gamma).any()
        if switch:
            l2 = torch.norm(w, dim=0, p=2)
            g = (w / l2 * l2.mean()).sum(1)
        else:
            g = (w * abs(mhat) / torch.sqrt(vhat)).sum(1)
        return g * self.K, bool(switch)


@pytest.mark.parametrize("K, gamma, betas, rule", [(2, 0.1, (0.9, 0.9), "mean"), (2, 0.7, (0.9, 0.99), "mean"),
                                                   (3, 0.5, (0.8, 0.99), "mean"), (4, 0.9, (0.9, 0.9), "any")])
def test_samgs_equals_the_official_balance_magnitude(K, gamma, betas, rule):
    g = torch.Generator().manual_seed(K)
    ours, theirs, branches = SAMGS(K, gamma, betas, rule), OfficialBalance(K, *betas, gamma, rule), set()
    for t in range(40):
        scales = torch.exp(torch.randn(K, 1, generator=g, dtype=F64) * (0.2 if t % 3 else 4.0))  # switch branches
        G = torch.randn(K, 11, generator=g, dtype=F64) * scales
        want, switched = theirs(G.T.clone())
        got = ours(G)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        assert bool(ours.equalised) == switched
        branches.add(switched)
    assert branches == {True, False}


def test_samgs_first_step_moments():
    G = _rand(3, 6, 5, scales=[1.0, 2.0, 0.5])
    for b1, b2 in [(0.9, 0.99), (0.5, 0.9), (0.0, 0.0)]:
        s = SAMGS(3, 0.5, (b1, b2))
        s(G)
        sbar = float(torch.triu(gradient_magnitude_similarity(G), 1).sum() / 3)
        torch.testing.assert_close(s.m / (1 - b1), G, rtol=2e-15, atol=0)  # exact up to rounding
        assert abs(float(s.v / (1 - b2)) - ((1 - sbar) ** 2 + 1e-8 / (1 - b2))) <= 2e-15 * float(s.v / (1 - b2))


def test_samgs_homogeneity_degree_one_and_two():
    seq = [_rand(2, 5, s, scales=[1.0, 4.0]) for s in range(6)]
    for gamma, degree in ((1.5, 1), (0.0, 2)):  # γ > 1: always equalise; γ = 0: always modulate
        a, b = SAMGS(2, gamma), SAMGS(2, gamma)
        for G in seq:
            torch.testing.assert_close(a(3.0 * G), 3.0 ** degree * b(G), rtol=1e-12, atol=1e-12)


def test_samgs_state_and_shape_checks():
    s = SAMGS(2)
    s(_rand(2, 4))
    with pytest.raises(ValueError, match="`G`"): s(_rand(2, 5))
    with pytest.raises(ValueError, match="`G`"): s(_rand(3, 4))
    s.reset()
    s(_rand(2, 5))
    assert s.t == 1


def test_samgs_batched_equals_separate():
    G = torch.randn(30, 3, 2, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    G[:, 1, 1] *= 50  # row 1 of the batch has a magnitude conflict
    batched, single = SAMGS(2, 0.5), [SAMGS(2, 0.5) for _ in range(3)]
    for t in range(30):
        out = batched(G[t])
        for b in range(3): torch.testing.assert_close(out[b], single[b](G[t, b]), rtol=0, atol=0)


# ---------------------------------------------------------------- toys
@pytest.mark.parametrize("toy", [repo_toy(), repo_toy(3.0), quadratic_toy(100.0, 1.0), quadratic_toy(2.0, 5.0, 60.0)])
def test_toy_gradients_match_autograd_and_finite_differences(toy):
    x = torch.cat([torch.tensor(REPO_STARTS, dtype=F64), 3 * torch.randn(20, 2, dtype=F64,
                                                                       generator=torch.Generator().manual_seed(0))])
    xr = x.clone().requires_grad_(True)
    auto = torch.stack([torch.autograd.grad(toy.losses(xr)[:, k].sum(), xr)[0] for k in range(2)], -2)
    torch.testing.assert_close(toy.gradients(x), auto, rtol=1e-12, atol=1e-12)
    for i in (0, 3, 7):
        for k in range(2):
            fd = ref.fd_gradient(lambda p: toy.losses(p)[k], x[i])
            torch.testing.assert_close(toy.gradients(x[i])[k], fd, rtol=1e-6, atol=1e-6)


def test_repo_toy_optima_and_front():
    toy = repo_toy()
    front = pareto_front(toy, 200)
    assert float(front.points[:, 1].sub(-10.84).abs().max()) < 0.1
    ends = front.points[[0, -1], 0]
    assert abs(float(ends[0]) + 5.45) < 0.1 and abs(float(ends[1]) - 5.45) < 0.1
    f = front.losses
    assert bool((f[1:, 0] > f[:-1, 0]).all()) and bool((f[1:, 1] < f[:-1, 1]).all())  # sorted, non-dominated
    assert bool((front_gap(toy.losses(torch.tensor(REPO_STARTS, dtype=F64))[:4], front) > 10).all())


def test_quadratic_front_is_the_segment():
    toy = quadratic_toy(100.0, 1.0, 90.0)
    front = pareto_front(toy, 2000)
    torch.testing.assert_close(front.points[0], torch.tensor(toy.a, dtype=F64))
    torch.testing.assert_close(front.points[-1], torch.tensor(toy.b, dtype=F64))
    assert abs(float(front_gap(toy.losses(toy.ls_optimum()), front))) < 5e-3


def test_ls_fixed_point_of_the_quadratic_toy():
    toy = quadratic_toy(100.0, 1.0)
    torch.testing.assert_close(toy.ls_optimum(), torch.tensor([-0.980, 0.0], dtype=F64), rtol=0, atol=1e-3)
    run = run_toy(toy, "ls", QUADRATIC_STARTS, steps=3000, lr=1e-2, device="cpu")["ls"]
    torch.testing.assert_close(run.path[-1], toy.ls_optimum().expand(4, 2), rtol=0, atol=1e-3)


# ---------------------------------------------------------------- run_toy
def test_batched_methods_equal_separate_runs():
    toy, starts = repo_toy(), REPO_STARTS[:3]
    methods = {"ls": dict(method="ls"), "pc": dict(method="pcgrad", max_norm=1.0),
               "sam": dict(method="samgs", gamma=0.1, betas=(0.9, 0.9), max_norm=1.0),
               "sam7": dict(method="samgs", gamma=0.7, betas=(0.9, 0.9), max_norm=1.0),  # grouped with "sam"
               "any": dict(method="samgs", gamma=0.9, rule="any"), "eq": dict(method="equalize")}
    together = run_toy(toy, methods, starts, steps=150, lr=1e-2, device="cpu")
    for k, kw in methods.items():
        alone = run_toy(toy, {k: kw}, starts, steps=150, lr=1e-2, device="cpu")[k]
        assert torch.equal(alone.path, together[k].path) and torch.equal(alone.equalised, together[k].equalised)
        one = run_toy(toy, {k: kw}, starts[1:2], steps=150, lr=1e-2, device="cpu")[k]
        torch.testing.assert_close(one.path[:, 0], together[k].path[:, 1], rtol=0, atol=1e-13)


def test_run_toy_follows_the_official_training_loop():
    "One start, the official loop: Adam on x, SAM-GS on the two gradients, torch's clip_grad_norm_ to 1."
    toy, x = repo_toy(), nn.Parameter(torch.tensor(REPO_STARTS[2], dtype=F64))
    opt, sam, path = torch.optim.Adam([x], lr=1e-3), SAMGS(2, 0.1, (0.9, 0.9)), []
    for _ in range(300):
        opt.zero_grad()
        f = toy.losses(x)
        G = torch.stack([torch.autograd.grad(f[k], x, retain_graph=True)[0] for k in range(2)])
        x.grad = sam(G)
        torch.nn.utils.clip_grad_norm_([x], 1.0)
        opt.step()
        path.append(x.detach().clone())
    run = run_toy(toy, {"s": dict(method="samgs", gamma=0.1, betas=(0.9, 0.9), max_norm=1.0)}, [REPO_STARTS[2]],
                  steps=300, lr=1e-3, device="cpu")["s"]
    torch.testing.assert_close(run.path[1:, 0], torch.stack(path), rtol=0, atol=1e-10)


# ---------------------------------------------------------------- trainer
def _trunk_heads(seed=0, width=6):
    trunk = mlp([4, width], seed=seed, dtype=F64)
    trunk.append(nn.Tanh())
    return trunk, [mlp([width, 1], seed=seed + 1 + k, dtype=F64) for k in range(2)]


def test_trainer_ls_step_equals_a_plain_step_on_the_summed_loss():
    data = mtl_regression(n=40, d=4, n_test=4, seed=0, device="cpu", dtype=F64)
    (t1, h1), (t2, h2) = _trunk_heads(), _trunk_heads()
    tr = MultiTaskTrainer(t1, h1, "ls", lr=1e-2, optimizer="sgd")
    for _ in range(3): tr.step(data.X, data.Y)
    params = list(t2.parameters()) + [p for h in h2 for p in h.parameters()]
    opt = torch.optim.SGD(params, lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        z = t2(data.X)
        sum(((h(z).squeeze(-1) - data.Y[:, k]) ** 2).mean() for k, h in enumerate(h2)).backward()
        opt.step()
    for a, b in zip(list(t1.parameters()) + list(tr.heads.parameters()), params):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_trainer_applies_surgery_to_the_trunk_only():
    data = mtl_regression(n=40, d=4, n_test=4, seed=1, device="cpu", dtype=F64)
    trunk, heads = _trunk_heads(1)
    tr = MultiTaskTrainer(trunk, heads, "equalize", lr=1e-2, optimizer="sgd")
    z = trunk(data.X)
    losses = [((h(z).squeeze(-1) - data.Y[:, k]) ** 2).mean() for k, h in enumerate(heads)]
    shared = list(trunk.parameters())
    G = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(l, shared, retain_graph=True)]) for l in losses])
    head_grads = [torch.autograd.grad(l, list(h.parameters()), retain_graph=True) for l, h in zip(losses, heads)]
    before = [p.detach().clone() for p in shared] + [p.detach().clone() for h in heads for p in h.parameters()]
    tr.step(data.X, data.Y)
    want = torch.cat([p.reshape(-1) for p in before[:len(shared)]]) - 1e-2 * 2 * equalize(G)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in shared]), want, rtol=1e-13, atol=1e-13)
    got_heads = [p.detach() for h in heads for p in h.parameters()]
    for p0, p1, g in zip(before[len(shared):], got_heads, [g for hg in head_grads for g in hg]):
        torch.testing.assert_close(p1, p0 - 1e-2 * g, rtol=1e-13, atol=1e-13)
    assert bool(tr.last_equalised)


def test_delta_m():
    assert delta_m([1.5, 2.0], [1.0, 1.0]) == pytest.approx(75.0, abs=1e-12)
    assert delta_m([1.0, 1.0], [1.0, 1.0]) == 0.0


# ---------------------------------------------------------------- findings at small settings
def test_finding_official_toy_only_small_gamma_leaves_the_upper_valleys():
    "At 10× the official step size (2 100 steps) from (∓6.5, 2.5): SAM-GS γ = 0.1 reaches the front; LS, PCGrad, γ = 0.7 do not."
    toy = repo_toy()
    front = pareto_front(toy, 200)
    methods = {"LS": dict(method="ls"), "PCGrad": dict(method="pcgrad", max_norm=1.0),
               "0.1": dict(method="samgs", gamma=0.1, betas=(0.9, 0.9), max_norm=1.0),
               "0.7": dict(method="samgs", gamma=0.7, betas=(0.9, 0.9), max_norm=1.0)}
    runs = run_toy(toy, methods, REPO_STARTS[2:4], steps=2100, lr=1e-2, device="cpu")
    gaps = {k: front_gap(r.losses[-1], front) for k, r in runs.items()}
    assert bool((gaps["0.1"] < 0.15).all())
    for k in ("LS", "PCGrad", "0.7"): assert bool((gaps[k] > 10).all())
    assert bool((runs["0.7"].path[-1, :, 1].abs() < 0.1).all()) and float(runs["0.7"].equalised.double().mean()) > 0.9


def test_finding_quadratic_toy_outcome_depends_on_the_path():
    toy = quadratic_toy(100.0, 1.0)
    runs = run_toy(toy, {"LS": dict(method="ls"), "S": dict(method="samgs", gamma=0.7)}, QUADRATIC_STARTS, steps=3000,
                   lr=1e-2, device="cpu")
    x = runs["S"].path[-1, :, 0]
    assert abs(float(x[0])) < 0.01 and abs(float(x[3])) < 0.01 and 0.85 < float(x[1]) < 0.95
    assert abs(float(x[2]) - float(toy.ls_optimum()[0])) < 0.01
    assert float(runs["S"].equalised[:, 2].double().mean()) < 0.1 and float(runs["S"].equalised[:, 0].double().mean()) > 0.9
    assert float((runs["LS"].path[-1] - toy.ls_optimum()).abs().max()) < 1e-3


def test_finding_samgs_keeps_the_small_task():
    "Targets ×100 and ×1, 500 full-batch Adam steps: SAM-GS (all equalisation) leaves task 2 far better fitted than LS."
    data = mtl_regression(n=1000, n_test=1000, seed=5, device="cpu")
    out = {}
    for m in ("ls", "samgs"):
        trunk = mlp([10, 32], seed=5)
        trunk.append(nn.Tanh())
        heads = [mlp([32, 1], seed=6 + k) for k in range(2)]
        log = MultiTaskTrainer(trunk, heads, m, lr=1e-3, gamma=0.7).fit(data.X, data.Y, steps=500)
        with torch.no_grad():
            z = trunk(data.X_test)
            out[m] = [float(((h(z).squeeze(-1) - data.Y_test[:, k]) ** 2).mean()) for k, h in enumerate(heads)]
        if m == "samgs": assert bool(log.equalised.all())
    assert out["samgs"][1] < 0.75 * out["ls"][1] and out["samgs"][0] > out["ls"][0]


# ---------------------------------------------------------------- figures and explorer
@pytest.fixture(scope="module")
def small_runs():
    toy = quadratic_toy()
    return toy, run_toy(toy, {"LS": dict(method="ls"), "SAM-GS": dict(method="samgs", gamma=0.7)},
                        QUADRATIC_STARTS[:2], steps=50, lr=1e-2, device="cpu")


def test_figures(small_runs):
    toy, runs = small_runs
    front = pareto_front(toy, 20)
    assert isinstance(plot_contours(toy, runs, front, title="t"), Figure)
    assert isinstance(plot_loss_space(runs, front), Figure)
    assert isinstance(plot_similarity(runs, index=1, gamma=0.7), Figure)
    log = TrainLog(torch.rand(5, 2), torch.rand(5), torch.zeros(5, dtype=torch.bool))
    assert isinstance(plot_similarity({"a": log}), Figure)
    assert isinstance(plot_delta_m({"LS": [[10.0, 300.0], [12.0, 250.0]], "SAM-GS": [5.0, 80.0]}), Figure)
    fig = gamma_figure({0.1: runs["SAM-GS"], 0.7: runs["SAM-GS"]}, toy, reference=runs["LS"])
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2


def test_explorer():
    fig = surgery_figure(method="equalize", steps=30)
    assert isinstance(fig, go.Figure) and "equalised 100 %" in fig.layout.title.text
    assert "diverged" in surgery_figure(optimizer="sgd", lr=0.05, steps=200, method="ls").layout.title.text
    ex = explore_surgery()
    assert isinstance(ex.update(start=3), go.Figure)


# ---------------------------------------------------------------- bad input
G2 = torch.randn(2, 3)
TOY, QTOY = repo_toy(), quadratic_toy()
FRONT = pareto_front(QTOY, 10)
RUNS = run_toy(QTOY, "ls", [[0.0, 1.0]], steps=3, device="cpu")
PROBES = [
    Probe(gradient_magnitude_similarity, dict(G=G2), {"G": [torch.randn(1, 3), torch.randn(3), torch.full((2, 3), NAN),
                                                           torch.ones(2, 3, dtype=torch.long), "G"]}),
    Probe(equalize, dict(G=G2), {"G": [torch.randn(1, 3), torch.randn(2, 0), "G"]}),
    Probe(linear_scalarization, dict(G=G2), {"G": [torch.randn(1, 3)], "weights": [[1.0], [1.0, NAN]]}),
    Probe(pcgrad, dict(G=G2), {"G": [torch.randn(1, 3), torch.full((2, 3), INF)], "seed": [-1, 1.5, "s"],
                               "reduction": [UNKNOWN]}),
    Probe(SAMGS, dict(num_tasks=2), {"num_tasks": [1, *SIZES, 2.5], "gamma": [-0.1, NAN, "g"],
                                     "betas": [(0.9,), (1.0, 0.9), (0.9, -0.1), "b"], "rule": [UNKNOWN],
                                     "eps": [-1.0, NAN]}),
    Probe(SAMGS(2).__call__, dict(G=G2), {"G": [torch.randn(3, 3), torch.randn(1, 3), torch.full((2, 3), NAN)]}),
    Probe(aggregator, dict(method="samgs"), {"method": [UNKNOWN], "num_tasks": [1, *SIZES], "gamma": [-1.0],
                                             "seed": [-1]}),
    Probe(quadratic_toy, dict(), {"s1": [*SIZES, NAN], "s2": [*SIZES, INF], "angle": [-1.0, 181.0, NAN]}),
    Probe(repo_toy, dict(), {"scale": [*SIZES, NAN]}),
    Probe(QTOY.losses, dict(x=torch.zeros(2)), {"x": [torch.zeros(3), torch.full((2,), NAN), "x"]}),
    Probe(QTOY.gradients, dict(x=torch.zeros(2)), {"x": [torch.zeros(3), torch.full((2,), NAN)]}),
    Probe(TOY.losses, dict(x=torch.zeros(2)), {"x": [torch.zeros(3), torch.full((2,), INF)]}),
    Probe(TOY.gradients, dict(x=torch.zeros(2)), {"x": [torch.zeros(1, 3), torch.full((2,), NAN)]}),
    Probe(run_toy, dict(toy=QTOY, methods="ls", starts=[[0.0, 1.0]], steps=2, device="cpu"),
          {"toy": ["toy", None], "methods": [UNKNOWN, {}, {"a": dict(method="ls", lr=1.0)}, {"a": dict(method=UNKNOWN)}],
           "starts": [[[0.0, 1.0, 2.0]], [[NAN, 0.0]], "s"], "steps": SIZES, "lr": [0.0, -1.0, NAN],
           "optimizer": [UNKNOWN], "seed": [-1]}),
    Probe(pareto_front, dict(toy=QTOY, n=5), {"toy": ["toy"], "n": [1, *SIZES]}),
    Probe(front_gap, dict(losses=torch.zeros(2, dtype=F64), front=FRONT),
          {"losses": [torch.zeros(3), torch.full((2,), NAN)], "front": [None, "f"]}),
    Probe(mtl_regression, dict(n=10, n_test=5, device="cpu"),
          {"n": [1, *SIZES], "d": SIZES, "scales": [[1.0], [1.0, 0.0], [1.0, NAN], "s"], "features": SIZES,
           "noise": [-1.0, NAN], "n_test": SIZES, "seed": [-1, "s"]}),
    Probe(MultiTaskTrainer, dict(trunk=nn.Linear(3, 4), heads=[nn.Linear(4, 1), nn.Linear(4, 1)]),
          {"trunk": ["t", None], "heads": [[nn.Linear(4, 1)]], "method": [UNKNOWN], "lr": [0.0, NAN],
           "optimizer": [UNKNOWN], "gamma": [-1.0], "betas": [(0.9,)], "max_norm": [0.0, -1.0]}),
    Probe(MultiTaskTrainer(nn.Linear(3, 4), [nn.Linear(4, 1), nn.Linear(4, 1)]).step,
          dict(X=torch.zeros(5, 3), Y=torch.zeros(5, 2)),
          {"X": [torch.zeros(5), torch.full((5, 3), NAN)], "Y": [torch.zeros(5, 3), torch.zeros(5), "y"]}),
    Probe(MultiTaskTrainer(nn.Linear(3, 4), [nn.Linear(4, 1), nn.Linear(4, 1)]).fit,
          dict(X=torch.zeros(5, 3), Y=torch.zeros(5, 2), steps=1), {"steps": SIZES, "Y": [torch.zeros(5, 1)]}),
    Probe(plot_contours, dict(toy=QTOY, runs=RUNS, front=FRONT), {"toy": ["t"], "runs": [{}, "r"], "front": ["f"]}),
    Probe(plot_loss_space, dict(runs=RUNS, front=FRONT), {"runs": [{}, {"a": "r"}], "front": [None]}),
    Probe(plot_similarity, dict(runs=RUNS), {"runs": [{}, {"a": 1}], "gamma": [-1.0, NAN]}),
    Probe(gamma_figure, dict(runs={0.1: RUNS["ls"]}, toy=QTOY), {"runs": [{}, {0.1: "r"}], "toy": ["t"],
                                                                  "active": [-1, 1], "reference": ["r"]}),
    Probe(delta_m, dict(losses=[1.0, 2.0], single=[1.0, 1.0]), {"losses": [[1.0]], "single": [[0.0, 1.0], [1.0]]}),
    Probe(plot_delta_m, dict(relative={"a": [1.0, 2.0]}), {"relative": [{}, "r"]}),
    Probe(surgery_figure, dict(steps=5), {"method": [UNKNOWN], "gamma": [-1.0, NAN], "beta1": [1.0, -0.1],
                                          "beta2": [1.5], "log_ratio": [9.0, NAN], "angle": [-5.0, 200.0],
                                          "optimizer": [UNKNOWN], "lr": [0.0, NAN], "start": [-1, 4], "steps": SIZES}),
]
UNPROBED = {}


def test_a_diverging_run_stops_at_its_last_finite_point_and_says_so():
    from gradviz.representation.surgery import QUADRATIC_STARTS, quadratic_toy, run_toy, surgery_figure
    toy = quadratic_toy(100.0, 1.0, 180.0)
    runs = run_toy(toy, {"ls": dict(method="ls"), "samgs": dict(method="samgs")}, QUADRATIC_STARTS, 1500, 0.1, "sgd")
    for run in runs.values():
        assert bool(run.diverged.all()) and bool(torch.isfinite(run.path).all())
    calm = run_toy(toy, {"ls": dict(method="ls")}, QUADRATIC_STARTS, 300, 1e-3, "sgd")["ls"]
    assert not bool(calm.diverged.any())
    for lr in (1e-2, 0.1):  # the explorer's SGD choices that diverge draw a figure saying so
        assert "diverged" in surgery_figure(optimizer="sgd", lr=lr).layout.title.text
