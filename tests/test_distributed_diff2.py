"""Reference tests for gradviz.distributed.diff2: closed-form and MLP per-sample gradients against autograd, DIFF2
against GD (no noise) and DP-GD (T = 1), the noise variance, sensitivities, the accountants against their definitions
and Opacus, real gloo processes against the simulation, failures of ranks, and the chapter's findings at small sizes."""
import math
import time
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from scipy.stats import norm

from gradviz.data import mlp
from gradviz.distributed.diff2 import (NOISE, ORDERS, Problem, Run, ServerState, Shard, Sweep, cauchy_grads,
                                       cauchy_loss, diff2, diff2_figure, diff2_worker, dp_gd, estimator_errors,
                                       explore_diff2, gaussian_rdp, gd, gdp_epsilon, grad_norms, make_plan,
                                       mlp_regression, noise_for_budget, plot_finals, plot_grad_norms, plot_sawtooth,
                                       rdp_to_dp, robust_regression, round_generator, sawtooth_figure, server_round,
                                       shard_grads, spent_epsilon, sweep, worker_round, zcdp_to_dp)
from gradviz.parallel import WorkerError
from workers import leftover_workers
from probe import INF, NAN, SIZES, UNKNOWN, Probe
from reference import require_ref


F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    return robust_regression(n=400, seed=0, device="cpu")




# ---------------------------------------------------------------- per-sample gradients
def test_cauchy_grads_match_autograd_per_sample(problem):
    x = torch.randn(20, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.3
    G = cauchy_grads(problem.A[:30], problem.b[:30], x)
    for i in range(30):
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.log1p((problem.A[i] @ xi - problem.b[i]) ** 2 / 2), xi)
        torch.testing.assert_close(G[i], g, rtol=0, atol=1e-14)
    assert (G.norm(dim=1) <= problem.G + 1e-12).all()
    torch.testing.assert_close(cauchy_loss(problem.A, problem.b, x),
                               torch.log1p((problem.A @ x - problem.b) ** 2 / 2).mean(), rtol=0, atol=1e-15)


def test_mlp_closed_form_matches_an_autograd_loop():
    p = mlp_regression(n=12, d=4, hidden=5, seed=3, device="cpu")
    net = mlp([4, 5, 1], "softplus", dtype=F64, device="cpu")
    torch.nn.utils.vector_to_parameters(p.x0, net.parameters())
    loop = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(
        0.5 * (net(p.A[i:i + 1])[0, 0] - p.b[i]) ** 2, list(net.parameters()))]) for i in range(12)])
    torch.testing.assert_close(shard_grads(p.shards(1)[0], p.x0), loop, rtol=0, atol=1e-13)


def test_worker_round_fast_path_equals_the_gradient_matrix(problem):
    shard = problem.shards()[1]
    x1 = problem.x0 - 0.02 * problem.grad(problem.x0)
    for restart, C in ((True, 0.3), (False, 1e-3), (True, None)):
        G = cauchy_grads(shard.A, shard.b, x1) - (0 if restart else cauchy_grads(shard.A, shard.b, problem.x0))
        norms = G.norm(dim=1)
        ref = G.sum(0) if C is None else (G * (C / norms).clamp(max=1)[:, None]).sum(0)
        rep = worker_round(shard, x1, problem.x0, restart, C)
        torch.testing.assert_close(rep.total, ref, rtol=0, atol=1e-13)
        assert rep.clipped == (0 if C is None else int((norms > C).sum())) and rep.count == len(shard.b)


# ---------------------------------------------------------------- DIFF2 against GD and DP-GD
def test_without_noise_or_clipping_diff2_is_gd(problem):
    exact = gd(problem, rounds=80)
    for T, P in ((10, 4), (3, 3), (80, 1)):
        run = diff2(problem, rounds=80, T=T, C1=None, C2=None, epsilon=None, workers=P)
        assert float((run.iterates - exact.iterates).abs().max()) < 1e-12


@pytest.mark.parametrize("noise", NOISE)
def test_t1_is_dp_gd_bit_for_bit(problem, noise):
    a = diff2(problem, 40, T=1, C1=0.7, epsilon=2.0, noise=noise, neighbouring="add_remove", seed=5)
    b = dp_gd(problem, 40, C=0.7, epsilon=2.0, noise=noise, neighbouring="add_remove", seed=5)
    assert torch.equal(a.iterates, b.iterates) and torch.equal(a.sigma, b.sigma)
    assert not torch.equal(a.iterates, dp_gd(problem, 40, C=0.7, epsilon=2.0, noise=noise, seed=6).iterates)


def test_server_round_by_hand(problem):
    st = ServerState.start(problem.x0, problem.n, T=2, lr=0.1)
    parts = [torch.full((20,), float(k), dtype=F64) for k in (1, 2, 3)]
    new = server_round(st, parts, 0.5, seed=9)
    noise = 0.5 * torch.randn(20, generator=round_generator(9, 0, 1), dtype=F64)
    torch.testing.assert_close(new.v, torch.full((20,), 6.0 / problem.n, dtype=F64) + noise, rtol=0, atol=0)
    torch.testing.assert_close(new.x, problem.x0 - 0.1 * new.v, rtol=0, atol=0)
    assert not new.restart and new.rounds == 1 and torch.equal(new.x_prev, problem.x0)
    again = server_round(new, parts, 0.0, seed=9)  # a difference round: v accumulates
    torch.testing.assert_close(again.v, new.v + 6.0 / problem.n, rtol=0, atol=1e-15)


def test_noise_variance_is_sigma1_squared_plus_k_sigma2_squared():
    p = robust_regression(n=60, workers=2, seed=5, device="cpu")
    runs = [diff2(p, rounds=5, T=5, C1=p.G, C2=1.0, epsilon=3.0, seed=s) for s in range(500)]
    assert max(float(r.clipped.max()) for r in runs) == 0.0
    err = torch.stack([r.estimates - torch.stack([p.grad(x) for x in r.iterates[:-1]]) for r in runs])
    s1, s2 = float(runs[0].sigma[0]), float(runs[0].sigma[1])
    theory = torch.tensor([s1 ** 2 + k * s2 ** 2 for k in range(5)], dtype=F64)
    ratio = err.var(0).mean(1) / theory
    assert ((ratio - 1).abs() < 0.1).all(), ratio


# ---------------------------------------------------------------- privacy: sensitivity and accounting
def _clipped_mean(p, x, x2, restart, C):
    return sum(worker_round(s, x, x2, restart, C).total for s in p.shards()) / p.n


def test_one_record_moves_the_clipped_mean_by_at_most_2c_over_n(problem):
    g = torch.Generator().manual_seed(2)
    x1 = problem.x0 - 0.02 * problem.grad(problem.x0)
    for x, x2, restart, C in ((problem.x0, problem.x0, True, 0.05), (x1, problem.x0, False, 1e-3)):
        base = _clipped_mean(problem, x, x2, restart, C)
        for _ in range(50):
            a = torch.randn(20, generator=g, dtype=F64)
            a = a * 5 * float(torch.rand(1, generator=g)) / a.norm()
            b = 100 * torch.rand(1, generator=g, dtype=F64) - 50
            moved = replace(problem, A=torch.cat([a[None], problem.A[1:]]), b=torch.cat([b, problem.b[1:]]))
            assert float((_clipped_mean(moved, x, x2, restart, C) - base).norm()) <= 2 * C / problem.n * (1 + 1e-9)
        removed = replace(problem, A=problem.A[1:], b=problem.b[1:])
        gap = _clipped_mean(removed, x, x2, restart, C) * removed.n / problem.n - base
        assert float(gap.norm()) <= C / problem.n * (1 + 1e-9)
    r0 = float(problem.A[0] @ problem.x0 - problem.b[0])
    crafted = replace(problem, A=torch.cat([-problem.A[:1], problem.A[1:]]),
                      b=torch.cat([torch.tensor([-r0], dtype=F64), problem.b[1:]]))
    tight = _clipped_mean(crafted, problem.x0, problem.x0, True, 0.05) - _clipped_mean(problem, problem.x0, problem.x0,
                                                                                        True, 0.05)
    assert abs(float(tight.norm()) / (2 * 0.05 / problem.n) - 1) < 1e-9


def test_adaptive_c2_clips_nothing_on_the_cauchy_loss(problem):
    run = diff2(problem, rounds=100, T=10, C1=1.0, c=1.0, epsilon=3.0, seed=1)
    assert float(run.clipped[~run.restarts].max()) == 0.0
    assert float(diff2(problem, rounds=100, T=10, C1=1.0, c=0.3, epsilon=3.0, seed=1).clipped.max()) > 0


def test_compared_methods_spend_the_same_budget(problem):
    runs = [diff2(problem, 60, T, C1=1.0, epsilon=2.5, seed=0) for T in (1, 4, 10)] + [dp_gd(problem, 60, epsilon=2.5)]
    for r in runs:
        rho = float(((r.sensitivity / r.sigma) ** 2).sum() / 2)
        assert abs(zcdp_to_dp(rho, 1e-5) - 2.5) < 1e-9
    same_z = diff2(problem, 60, 10, C1=1.0, epsilon=2.5, restart_share=None)
    assert same_z.z_restart == same_z.z_difference == runs[-1].z_restart


def test_zcdp_is_the_rdp_conversion_minimised_and_gdp_is_below_both():
    for z in (0.7, 3.0, 24.0):
        for R in (1, 20, 200):
            for delta in (1e-5, 1e-3):
                e_z, e_r = zcdp_to_dp(R / (2 * z * z), delta), rdp_to_dp(gaussian_rdp(ORDERS, z, R), ORDERS, delta)
                assert abs(e_z - e_r) < 1e-3 and e_r >= e_z - 1e-12
                mu = math.sqrt(R) / z
                e_g = gdp_epsilon(mu, delta)
                assert e_g <= min(e_z, e_r)
                if e_g > 0:  # the defining equation holds at the returned ε (scipy's Φ, written out here)
                    d = norm.cdf(-e_g / mu + mu / 2) - math.exp(e_g) * norm.cdf(-e_g / mu - mu / 2)
                    assert abs(d - delta) < 1e-10 * max(1.0, delta * 1e6)


@pytest.mark.parametrize("accountant", ["zcdp", "rdp", "gdp"])
def test_noise_for_budget_spends_exactly_the_budget(accountant):
    for eps, R in ((0.5, 10), (3.0, 200), (8.0, 1000)):
        z = noise_for_budget(eps, 1e-5, R, accountant)
        assert abs(spent_epsilon(z, R, 1e-5, accountant) - eps) < 1e-8


@pytest.mark.ref
def test_rdp_curve_matches_opacus():
    require_ref("opacus")
    from opacus.accountants.analysis.rdp import compute_rdp
    from opacus.accountants import RDPAccountant
    orders = [1.5, 2.0, 4.0, 8.0, 16.0, 64.0]
    for z, R in ((1.1, 50), (24.0, 200)):
        ours = gaussian_rdp(orders, z, R)
        np.testing.assert_allclose(np.asarray(compute_rdp(q=1.0, noise_multiplier=z, steps=R, orders=orders)), ours,
                                   rtol=1e-10, atol=1e-12)
        acc = RDPAccountant()
        for _ in range(R): acc.step(noise_multiplier=z, sample_rate=1.0)
        ((zz, q, steps),) = acc.history
        assert (zz, q, steps) == (z, 1.0, R)


# ---------------------------------------------------------------- real processes (gloo on 127.0.0.1)
def _faulty_worker(rank, world_size, plan, bad_rank, fault):
    "`diff2_worker`, except that `bad_rank` raises or hangs."
    if rank == bad_rank:
        if fault == "raise": raise RuntimeError(f"rank {rank} lost its shard")
        time.sleep(600)
    return diff2_worker(rank, world_size, plan)


def test_gloo_run_gives_the_simulations_iterates(problem):
    sim = diff2(problem, rounds=10, T=4, C1=0.8, epsilon=3.0, seed=7)
    proc = diff2(problem, rounds=10, T=4, C1=0.8, epsilon=3.0, seed=7, mode="processes", timeout=60)
    assert torch.equal(proc.iterates, sim.iterates) and torch.equal(proc.estimates, sim.estimates)
    assert torch.equal(proc.clipped, sim.clipped) and proc.mode == "processes" and proc.startup_seconds > 0
    assert leftover_workers() == []


def test_all_reduce_agrees_with_gather(problem):
    kw = dict(rounds=8, T=4, C1=0.8, epsilon=3.0, noise="distributed", workers=1, seed=8)
    sim = diff2(problem, **kw)
    proc = diff2(problem, **kw, mode="processes", reduce="all_reduce", timeout=60)
    assert float((proc.iterates - sim.iterates).abs().max()) < 1e-12
    assert leftover_workers() == []


def test_a_failing_rank_reaches_the_parent(problem):
    from gradviz.parallel import run_workers
    plan = make_plan(problem, rounds=3, T=2, workers=1, device="cpu")
    with pytest.raises(WorkerError, match="rank 1 of 2 failed") as info:
        run_workers(_faulty_worker, 2, plan, 1, "raise", timeout=60)
    assert "lost its shard" in info.value.traceback
    assert leftover_workers() == []


def test_a_hung_rank_is_killed_at_the_timeout(problem):
    from gradviz.parallel import run_workers
    plan = make_plan(problem, rounds=3, T=2, workers=1, device="cpu")
    with pytest.raises(TimeoutError, match="`timeout`=12"):
        run_workers(_faulty_worker, 2, plan, 1, "hang", timeout=12)
    assert leftover_workers() == []


# ---------------------------------------------------------------- findings at small sizes
def test_the_sawtooth_grows_between_restarts_as_predicted():
    T, errs, preds = 20, [], []
    for s in (3, 4, 5):
        p = robust_regression(2000, seed=s, device="cpu")
        run = diff2(p, 200, T, C1=p.G, epsilon=3.0, seed=s)
        errs.append(estimator_errors(p, run).numpy() ** 2)
        s2 = run.sigma.numpy() ** 2
        preds.append(20 * np.concatenate([np.cumsum(s2[i:i + T]) for i in range(0, 200, T)]))
    e, pr, k = np.mean(errs, 0), np.mean(preds, 0), np.arange(200) % T
    assert abs(e.mean() / pr.mean() - 1) < 0.1
    growth, predicted = e[k == T - 1].mean() / e[k == 0].mean(), pr[k == T - 1].mean() / pr[k == 0].mean()
    assert growth > 1.25 and abs(growth / predicted - 1) < 0.25


def test_diff2_estimates_better_but_drifts_further_and_does_not_beat_dp_gd():
    drift, err, final = {}, {}, {}
    for m, kw in (("DP-GD", dict(T=1)), ("DIFF2", dict(T=20))):
        for s in (3, 4, 5):
            p = robust_regression(2000, seed=s, device="cpu")
            noisy, clean = (diff2(p, 200, C1=p.G, epsilon=e, seed=s, **kw) for e in (3.0, None))
            drift.setdefault(m, []).append(float((noisy.iterates[-1] - clean.iterates[-1]).norm()))
            err.setdefault(m, []).append(float((estimator_errors(p, noisy) ** 2).mean()))
            final.setdefault(m, []).append(float(grad_norms(p, noisy)[-1]))
    assert np.mean(err["DIFF2"]) < np.mean(err["DP-GD"]) and np.mean(drift["DIFF2"]) > np.mean(drift["DP-GD"])
    assert sum(d < g for d, g in zip(final["DIFF2"], final["DP-GD"])) <= 2


def test_the_ratio_to_dp_gd_shrinks_with_n():
    seeds = (3, 4, 5)
    sw_dp = sweep((500, 8000), (1,), (3.5,), seeds, device="cpu")
    sw_d2 = sweep((500, 8000), (20,), (3.5,), seeds, device="cpu")
    ratio = [np.median(sw_d2.values(n, 20, 3.5, seeds) / sw_dp.values(n, 1, 3.5, seeds)) for n in (500, 8000)]
    assert ratio[0] > 1.5 and ratio[1] < ratio[0]
    assert isinstance(sw_dp, Sweep) and set(sw_dp.gd) == {(n, s) for n in (500, 8000) for s in seeds}


# ---------------------------------------------------------------- figures and the explorer
def test_figures_and_explorer(problem):
    runs = {T: diff2(problem, 30, T, C1=1.0, seed=0) for T in (1, 5, 10)}
    assert isinstance(plot_grad_norms({"DIFF2": grad_norms(problem, runs[5]).numpy()}), Figure)
    assert isinstance(plot_sawtooth(estimator_errors(problem, runs[5]).numpy(), 5), Figure)
    assert isinstance(plot_finals([1, 5, 10], {"DIFF2": np.ones((2, 3))}, xlabel="T"), Figure)
    with pytest.raises(ValueError, match="`finals`"):
        plot_finals([1, 5], {"DIFF2": np.ones((2, 3))})
    fig = sawtooth_figure(problem, runs)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    panel = diff2_figure(T=5, log10_n=2.75)
    assert [t.name for t in panel.data[:3]] == ["GD", "DP-GD", "DIFF2"] and "σ₁" in panel.layout.title.text
    quiet = diff2_figure(T=5, log10_n=2.75, noise=False)
    assert "no noise" in quiet.layout.title.text
    ex = explore_diff2()
    assert ex.update(T=3) is ex.update(T=3)
    with pytest.raises(ValueError, match="workers"):
        ex.update(workers=0)


# ---------------------------------------------------------------- bad input
_P = robust_regression(n=40, seed=0, device="cpu")
_X = torch.zeros(20, dtype=F64)
_RUN = diff2(_P, 4, 2, C1=1.0, seed=0)
_ST = ServerState.start(_X, 40, 2, 0.1)

PROBES = [
    Probe(cauchy_grads, dict(A=_P.A, b=_P.b, x=_X), dict(A=[_P.A[0], "A", _P.A.long()], b=[_P.b[:3], "b"],
                                                        x=[_X[:3], torch.full_like(_X, NAN), "x"])),
    Probe(cauchy_loss, dict(A=_P.A, b=_P.b, x=_X), dict(A=[_P.A[0]], b=[_P.b[:3]], x=[_X[:3]])),
    Probe(shard_grads, dict(shard=_P.shards()[0], x=_X), dict(shard=["shard"], x=["x", torch.zeros(2, 2)])),
    Probe(robust_regression, dict(n=20, device="cpu"), dict(n=SIZES, d=SIZES, workers=[0, 30], feature_clip=[0.0, NAN],
                                                            noise=[-1.0], seed=[-1, "s"])),
    Probe(mlp_regression, dict(n=20, device="cpu"), dict(n=SIZES, d=SIZES, hidden=SIZES, workers=[0, 30],
                                                         feature_clip=[0.0], L=[0.0, INF], noise=[-1.0])),
    Probe(worker_round, dict(shard=_P.shards()[0], x_prev=_X, x_prev2=_X, restart=True, C=1.0),
          dict(shard=["shard"], x_prev=[_X[:3], "x"], x_prev2=[_X[:3]], restart=[1, "yes"], C=[-1.0, NAN])),
    Probe(round_generator, dict(seed=0, rank=0, rnd=1), dict(seed=[-1, "s"], rank=[-1], rnd=[-1, 1.5])),
    Probe(server_round, dict(state=_ST, partial_sums=[_X], sigma=0.1, seed=0),
          dict(state=["state"], partial_sums=[[]], sigma=[-1.0, NAN])),
    Probe(gaussian_rdp, dict(orders=[2.0], noise_multiplier=1.0, steps=3),
          dict(orders=[[1.0], [NAN]], noise_multiplier=[0.0, -1.0, NAN], steps=[-1, 1.5])),
    Probe(rdp_to_dp, dict(rdp=[1.0], orders=[2.0], delta=1e-5), dict(rdp=[[1.0, 2.0]], orders=[[0.5]],
                                                                     delta=[0.0, 1.0, NAN])),
    Probe(zcdp_to_dp, dict(rho=0.1, delta=1e-5), dict(rho=[-1.0, NAN], delta=[0.0, 1.5])),
    Probe(gdp_epsilon, dict(mu=1.0, delta=1e-5), dict(mu=[0.0, -1.0, INF], delta=[0.0, 1.0])),
    Probe(spent_epsilon, dict(noise_multiplier=5.0, rounds=10, delta=1e-5),
          dict(noise_multiplier=[0.0], rounds=SIZES, accountant=[UNKNOWN])),
    Probe(noise_for_budget, dict(epsilon=3.0, delta=1e-5, rounds=10),
          dict(epsilon=[0.0, -1.0, NAN], delta=[0.0, 1.0], rounds=SIZES, accountant=[UNKNOWN])),
    Probe(make_plan, dict(problem=_P, rounds=4, T=2), dict(problem=["p"], rounds=SIZES, T=SIZES, C1=[0.0, NAN],
                                                          C2=[0.0, UNKNOWN], c=[0.0], epsilon=[0.0], delta=[1.0],
                                                          neighbouring=[UNKNOWN], noise=[UNKNOWN], reduce=[UNKNOWN],
                                                          restart_share=[0.0, 1.0], workers=[0, 100])),
    Probe(diff2, dict(problem=_P, rounds=4, T=2), dict(problem=["p"], rounds=SIZES, T=SIZES, lr=[0.0, NAN],
                                                      C1=[-1.0], epsilon=[0.0, NAN], delta=[0.0, 1.0],
                                                      neighbouring=[UNKNOWN], noise=[UNKNOWN], accountant=[UNKNOWN],
                                                      mode=[UNKNOWN], backend=[UNKNOWN], seed=[-1, "s"])),
    Probe(dp_gd, dict(problem=_P, rounds=4), dict(problem=["p"], rounds=SIZES, C=[0.0, NAN], epsilon=[0.0],
                                                 delta=[1.0], noise=[UNKNOWN])),
    Probe(gd, dict(problem=_P, rounds=4), dict(problem=["p"], rounds=SIZES, lr=[0.0, -1.0])),
    Probe(grad_norms, dict(problem=_P, run=_RUN), dict(problem=["p"], run=["run"])),
    Probe(estimator_errors, dict(problem=_P, run=_RUN), dict(problem=["p"], run=["run"])),
    Probe(sweep, dict(ns=[40], Ts=[1], C1s=[1.0], seeds=[0], rounds=2, device="cpu"),
          dict(ns=[[], 40], Ts=[[]], C1s=[[]], seeds=[[]], loss=[UNKNOWN])),
    Probe(plot_grad_norms, dict(curves={"GD": np.ones(3)}), dict(curves=["c"])),
    Probe(plot_sawtooth, dict(errors=np.ones(4), T=2), dict(T=SIZES)),
    Probe(plot_finals, dict(x=[1, 2], finals={"a": np.ones((1, 2))}), dict(finals=["f", {"a": np.ones((1, 3))}])),
    Probe(sawtooth_figure, dict(problem=_P, runs={2: _RUN}), dict(runs=["r", {1: _RUN}])),
    Probe(diff2_figure, dict(log10_n=2.0, T=2), dict(epsilon=[0.0, NAN], log10_n=[0.5, NAN], T=SIZES, C1=[0.0], c=[0.0],
                                                    lr_scale=[0.0, 3.0], workers=SIZES, adaptive=[1], noise=[1])),
]

UNPROBED = {"diff2_worker": "a process-group entry point: it runs only inside `run_workers`/`torchrun`, where a bad "
                            "world size is refused (tested with real processes)"}
