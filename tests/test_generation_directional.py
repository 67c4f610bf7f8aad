"""Reference tests for gradviz.generation.directional: the attack against finite differences and torchattacks, poll
sets that span positively (and the released one that does not), uniform covering points (KS), counters against an
independent tally, monotone incumbents, the extreme barrier, the radius state machine, a concave problem every method
solves, and the chapter's findings at small settings."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import nn

from gradviz.core import as_generator
from gradviz.data import mlp
from gradviz.generation.directional import (METHODS, POLLS, Comparison, CountingFunction, SearchResult, SurrogateField,
                                            attacks_only, cdsm, compare_searches, covering_point, directional_attack,
                                            directional_figure, evaluations_figure, explore_directional, hybrid,
                                            phi_grid, plot_best_vs_evals, plot_search_paths, poll_directions,
                                            run_method, scipy_search, surrogate_field)
from reference import require_ref

F64 = torch.float64
B = torch.tensor([[2.0, 0.3, 0.0], [0.0, 1.0, -0.5], [0.4, 0.0, 1.5]], dtype=F64)
Y_GOAL = torch.tensor([1.0, -0.5, 0.25], dtype=F64)
X_OPT = torch.linalg.solve(B, Y_GOAL)


def lin3(x):
    return x @ B.T


def f3(y):
    return -((y - Y_GOAL) ** 2).sum(-1)


ORIGIN = torch.zeros(3, dtype=F64)


@pytest.fixture(scope="module")
def p20():
    return surrogate_field(20, seed=0, device="cpu")


@pytest.fixture(scope="module")
def p2():
    return surrogate_field(2, seed=0, device="cpu")


def _smooth():
    net = mlp([4, 16, 3], "tanh", seed=3, dtype=F64)
    y_ref = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
    return net, (lambda y: -((y - y_ref) ** 2).sum(-1))


def _fd_grad(phi, x, h=1e-6):
    return torch.tensor([(phi(x + h * e) - phi(x - h * e)) / (2 * h) for e in torch.eye(len(x), dtype=F64)], dtype=F64)


# ---------------------------------------------------------------- the attack
def test_fgsm_attack_is_r_sign_grad_and_gain_is_first_order():
    net, f = _smooth()
    phi = lambda x: float(f(net(x)))
    x = torch.tensor([0.2, -0.4, 0.1, 0.7], dtype=F64)
    with torch.no_grad(): g = _fd_grad(phi, x)
    rs = [0.02 / 2 ** k for k in range(5)]
    errs = []
    for r in rs:
        d = directional_attack(net, f, x, r)
        assert torch.equal(d, r * g.sign())
        with torch.no_grad(): errs.append(phi(x + d) - phi(x) - r * float(g.abs().sum()))
    ratios = np.array(errs[1:]) / np.array(errs[:-1])
    np.testing.assert_allclose(ratios, 0.25, atol=0.02)


def test_pgd_stays_in_the_box_and_gains_at_least_fgsm():
    net, f = _smooth()
    x = torch.tensor([0.2, -0.4, 0.1, 0.7], dtype=F64)
    inner = lambda d: float(((net(x + d) - net(x)) * torch.autograd.functional.jacobian(f, net(x))).sum())
    d1, d10 = directional_attack(net, f, x, 0.3), directional_attack(net, f, x, 0.3, steps=10)
    assert d10.abs().max() <= 0.3 + 1e-15
    with torch.no_grad(): assert inner(d10) >= inner(d1) - 1e-12


def test_ce_variant_drops_the_mean_of_u():
    net, f = _smooth()
    x = torch.tensor([0.5, 0.1, -0.3, 0.2], dtype=F64)
    J = torch.autograd.functional.jacobian(net, x)
    u = torch.autograd.functional.jacobian(f, net(x).detach())
    d = directional_attack(net, f, x, 0.01, variant="ce")
    assert torch.equal(d, 0.01 * torch.sign(J.T @ (u - u.mean())))
    one = nn.Linear(4, 1, dtype=F64)
    assert torch.equal(directional_attack(one, lambda y: y.sum(), x, 0.1, variant="ce"), torch.zeros(4, dtype=F64))


class _PhiXR(nn.Module):
    "The released w-space model: w ↦ Φ(x + 2r(w − ½)) − Φ(x) (Phi_xr_model.py), batched."
    def __init__(self, phi, x, r):
        super().__init__()
        self.phi, self.x, self.r = phi, x, r

    def forward(self, w):
        return self.phi(self.x + 2 * self.r * (w - 0.5)) - self.phi(self.x)


@pytest.mark.ref
def test_ce_variant_equals_torchattacks_targeted_fgsm_in_w_space():
    torchattacks = require_ref("torchattacks")
    net, f = _smooth()
    for seed in range(3):
        x = 0.5 * torch.randn(4, generator=as_generator(seed), dtype=F64)
        r = 0.05 * (seed + 1)
        u = torch.autograd.functional.jacobian(f, net(x).detach())
        atk = torchattacks.FGSM(_PhiXR(net, x, r), eps=0.5)
        atk.set_mode_targeted_by_label(quiet=True)
        w_adv = atk(torch.full((1, 4), 0.5, dtype=F64), u[None])
        ref = 2 * r * (w_adv[0] - 0.5)
        torch.testing.assert_close(directional_attack(net, f, x, r, variant="ce"), ref, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- poll and covering
@pytest.mark.parametrize("n", [2, 3, 7, 20])
@pytest.mark.parametrize("kind", ["n+1", "2n"])
def test_poll_sets_span_positively_with_unit_sup_norm(n, kind):
    D = poll_directions(n, kind, seed=n, device="cpu")
    assert len(D) == (n + 1 if kind == "n+1" else 2 * n)
    torch.testing.assert_close(D.abs().amax(1), torch.ones(len(D), dtype=F64), rtol=0, atol=1e-15)
    G = torch.randn(10_000, n, generator=as_generator(0), dtype=F64)
    G = torch.cat([G, torch.eye(n, dtype=F64), -torch.eye(n, dtype=F64)])
    assert ((G @ D.T).amax(1) > 0).all()


@pytest.mark.parametrize("n", [3, 6, 20])
def test_official_poll_is_rank_deficient_for_n_at_least_3(n):
    D = poll_directions(n, "official", seed=0, device="cpu")
    assert int(torch.linalg.matrix_rank(D)) == n // 2 + 1
    assert D[:, n // 2 + 1:].abs().max() == 0
    e_last = torch.eye(n, dtype=F64)[-1]
    assert (D @ e_last).max() <= 0  # e_n sees no ascent direction: not a positive spanning set


@pytest.mark.parametrize("n", [1, 3, 20])
def test_covering_points_are_uniform_in_the_ball(n):
    x = torch.linspace(-1, 1, n, dtype=F64)
    pts = covering_point(x, 0.7, seed=n, num=4000)
    rho = (pts - x).norm(dim=1) / 0.7
    assert rho.max() <= 1
    assert stats.kstest(rho.numpy(), lambda t: np.clip(t, 0, 1) ** n).pvalue > 0.01
    if n > 1:  # directions uniform: the mean unit vector is near 0
        assert ((pts - x) / (pts - x).norm(dim=1, keepdim=True)).mean(0).norm() < 0.1


# ---------------------------------------------------------------- runs
def _tally(phi):
    box = [0]
    def counted(x):
        box[0] += 1 if x.ndim == 1 else len(x)
        return phi(x)
    return counted, box


@pytest.mark.parametrize("method", METHODS)
def test_counters_match_an_independent_tally_and_incumbents_increase(method, p20):
    phi, box = _tally(p20.model)
    field = SurrogateField(phi, 20, 20, p20.target, p20.x_star, p20.bound, p20.fit_error)
    res = run_method(method, field, p20.starts(1, seed=11)[0], budget=300, r0=0.3)
    assert res.calls == box[0] <= 300
    assert (np.diff(res.values) > 0).all() and (np.diff(res.evals) >= 0).all()
    with torch.no_grad(): np.testing.assert_allclose(res.values, p20.f(p20.model(res.path)).numpy(), rtol=0, atol=1e-12)
    assert res.kinds[0] == "start" and len(res.kinds) == len(res.path)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_solves_a_concave_problem(method):
    field = SurrogateField(lin3, 3, 3, Y_GOAL, X_OPT, 10.0, 0.0)
    res = run_method(method, field, ORIGIN, budget=600, r0=0.1)
    assert (res.x - X_OPT).norm() < 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_no_infeasible_incumbent(method, p2):
    for x0 in p2.starts(2, seed=4, constrained=True):
        res = run_method(method, p2, x0, budget=300, constrained=True, r0=0.3)
        assert (p2.phi(res.path, constrained=True) > -math.inf).all()
        assert (p2.constraint(p2.model(res.path)) <= 0).all()


def test_infeasible_start_is_refused(p2):
    bad = next(x for x in p2.starts(50, seed=0) if p2.phi(x, True) == -math.inf)
    with pytest.raises(ValueError, match="`x0`"):
        hybrid(p2.model, p2.f, bad, 100, constraint=p2.constraint)
    with pytest.raises(ValueError, match="`x0`"):
        scipy_search(p2.model, p2.f, bad, 100, p2.constraint)


def test_radius_state_machine_on_a_flat_objective():
    "Nothing ever improves: the attack radius shrinks by 1.3 and the poll radius halves every iteration."
    flat = lambda y: y.sum() * 0.0
    res = hybrid(lin3, flat, ORIGIN, 10_000, r0=0.5, r_min=1e-3)
    k = np.arange(1, len(res.radii) + 1)
    np.testing.assert_allclose(res.radii[:, 0], np.maximum(0.5 / 1.3 ** k, 1e-3), rtol=1e-12)
    np.testing.assert_allclose(res.radii[:, 1], np.maximum(0.5 / 2.0 ** k, 1e-3), rtol=1e-12)
    assert res.radii[-1, 0] == res.radii[-1, 1] == 1e-3 and res.calls < 10_000 and len(res.path) == 1


def test_radii_stay_in_bounds_and_poll_radius_moves_by_two(p20):
    res = hybrid(p20.model, p20.f, p20.starts(1, seed=2)[0], 800, r0=0.3)
    assert (res.radii[:, 0] >= 1e-5).all() and (res.radii[:, 0] <= 1.0 + 1e-12).all()
    steps = res.radii[1:, 1] / res.radii[:-1, 1]
    assert np.isin(np.round(steps, 12), [0.5, 1.0, 2.0]).all()


def test_budget_is_exact_and_seed_reproducible(p20):
    x0 = p20.starts(1, seed=3)[0]
    a, b = cdsm(p20.model, p20.f, x0, 500, r0=0.3, seed=7), cdsm(p20.model, p20.f, x0, 500, r0=0.3, seed=as_generator(7))
    assert a.calls == 500 and torch.equal(a.path, b.path)
    assert scipy_search(p20.model, p20.f, x0, 500).calls == 500


def test_counting_function_budget():
    c = CountingFunction(lin3, budget=3)
    c(ORIGIN)
    c(torch.zeros(2, 3, dtype=F64))
    assert c.calls == 3
    with pytest.raises(Exception):
        c(ORIGIN)
    assert c.calls == 3


def test_best_at_is_a_step_function():
    res = SearchResult("x", torch.zeros(3, 2), ("start", "poll", "poll"), np.array([1, 5, 9]),
                       np.array([-3.0, -2.0, -1.0]), 12, np.zeros((0, 2)))
    np.testing.assert_array_equal(res.best_at([0, 1, 4, 5, 8, 9, 100]), [np.nan, -3, -3, -2, -2, -1, -1])
    comp = Comparison({"cdsm": (res, res)}, torch.zeros(2, 2), 12)
    np.testing.assert_array_equal(comp.curves([5])["cdsm"][:, 0], [-2, -2, -2])
    np.testing.assert_array_equal(comp.evals_to_reach("cdsm", -1.5), [9, 9])


# ---------------------------------------------------------------- the chapter's findings at small settings
def test_hybrid_leads_cdsm_in_20_dimensions(p20):
    comp = compare_searches(p20, 5, 1000, ("hybrid", "cdsm"), r0=0.3, seed=0)  # the notebook's report starts
    q = comp.curves([100, 300, 1000])
    assert (q["hybrid"][1] > q["cdsm"][1]).all()


def test_attacks_stall_at_kinks_and_collapse_at_the_constraint(p20):
    x0s = p20.starts(3, seed=0, constrained=True)
    for x0 in x0s:
        con_a = attacks_only(p20.model, p20.f, x0, 1000, p20.constraint, r0=0.3)
        con_h = hybrid(p20.model, p20.f, x0, 1000, constraint=p20.constraint, r0=0.3)
        assert con_a.calls < 300 and con_h.value > con_a.value
    free = attacks_only(p20.model, p20.f, p20.starts(1, seed=0)[0], 3000, r0=0.3)
    x = free.x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(p20.f(p20.model(x)), x)
    assert free.calls < 3000 and g.norm() > 0.05  # stopped, yet far from stationary
    assert cdsm(p20.model, p20.f, free.x, 300, r0=1e-3).value > free.value


def test_surrogate_fits_the_2d_field(p2):
    assert p2.fit_error < 0.1 and float(p2.phi(p2.x_star)) == 0.0
    assert float(p2.constraint(p2.target)) == pytest.approx(0.5)


# ---------------------------------------------------------------- figures and explorer
def test_figures(p2):
    runs = [run_method(m, p2, p2.starts(1, seed=1)[0], 200, r0=0.3) for m in ("hybrid", "cdsm")]
    assert isinstance(plot_search_paths(p2, runs, constrained=True), Figure)
    comp = compare_searches(p2, 2, 100, ("hybrid", "powell"), seed=1)
    assert isinstance(plot_best_vs_evals({"n = 2": comp}), Figure)
    fig = evaluations_figure(p2, runs, checkpoints=[10, 100])
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2
    Z = phi_grid(p2, size=11)
    assert Z.shape == (11, 11) and np.nanmax(Z) <= 0


def test_explorer(p2, p20):
    fig = directional_figure(cache={2: p2}, budget=100)
    assert [t.name for t in fig.data][-2:] == ["hybrid (these settings)", "cDSM (same r0)"]
    fig20 = directional_figure(n=20, cache={20: p20}, budget=100, variant="ce", attack_steps=3)
    assert fig20.data[0].name == "attack radius"
    ex = explore_directional(cache={2: p2, 20: p20})
    assert ex.update(budget=100) is ex.update(budget=100)
    with pytest.raises(ValueError, match="`attack`"):
        directional_figure(cache={2: p2}, attack=False, covering=False, poll=False)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_inputs(device):
    B_d, Y_d = B.to(device), Y_GOAL.to(device)
    res = hybrid(lambda x: x @ B_d.T, lambda y: -((y - Y_d) ** 2).sum(-1), ORIGIN.to(device), 300)
    assert res.x.device.type == device
    assert poll_directions(4, device=device).device.type == device
    assert covering_point(ORIGIN.to(device), 0.5).device.type == device


# ---------------------------------------------------------------- bad-input probes (run by tests/test_bad_input.py)

from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_FIELD = surrogate_field(2, seed=0, steps=2, device="cpu")
_X = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
_BAD_X = [_X[None], _X.long(), torch.full_like(_X, NAN), "x"]
_RUN = SearchResult("hybrid", torch.zeros(2, 2, dtype=F64), ("start", "poll"), np.array([1, 3]), np.array([-2.0, -1.0]),
                    3, np.zeros((1, 2)))
_COMP = Comparison({"hybrid": (_RUN,)}, torch.zeros(1, 2, dtype=F64), 3)
_RUNS = dict(Phi=[3], f=[3], x0=_BAD_X, budget=[0, 3], constraint=[3], device=[UNKNOWN, 3])

PROBES = [
    Probe(CountingFunction, dict(phi=lin3, budget=5), dict(phi=[3, "phi"], budget=SIZES + [1.5])),
    Probe(directional_attack, dict(Phi=lin3, f=f3, x=_X, r=0.1),
          dict(Phi=[3], f=["f"], x=_BAD_X, r=[0.0, -1.0, NAN, INF, "r"], steps=SIZES, variant=[UNKNOWN])),
    Probe(poll_directions, dict(n=3, kind="n+1", device="cpu"),
          dict(n=SIZES + [2.5], kind=[UNKNOWN], seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(covering_point, dict(x=_X, radius=0.5), dict(x=_BAD_X, radius=[0.0, -1.0, NAN], seed=[-1, 0.5], num=SIZES)),
    Probe(hybrid, dict(Phi=lin3, f=f3, x0=_X, budget=20),
          dict(**_RUNS, tau=[-1.0, NAN], r0=[0.0, -1.0, NAN], r_min=[0.0], r_max=[1e-9], grow=[0.5], weak_grow=[0.9],
               shrink=[1.0, 0.5], attack_steps=SIZES, variant=[UNKNOWN], poll=[UNKNOWN],
               steps=[[], [UNKNOWN], "attack"], seed=[-1, 0.5])),
    Probe(cdsm, dict(Phi=lin3, f=f3, x0=_X, budget=20),
          dict(**_RUNS, r0=[0.0, NAN], r_min=[-1.0], poll=[UNKNOWN], search=["yes"], seed=[-1, 0.5])),
    Probe(attacks_only, dict(Phi=lin3, f=f3, x0=_X, budget=20),
          dict(**_RUNS, r0=[0.0], grow=[0.5], shrink=[1.0], attack_steps=SIZES, variant=[UNKNOWN])),
    Probe(scipy_search, dict(Phi=lin3, f=f3, x0=_X, budget=20),
          dict(**_RUNS, method=[UNKNOWN], r0=[0.0, NAN])),
    Probe(surrogate_field, dict(n=2, steps=1, device="cpu"),
          dict(n=[1, 0, 2.5], m=SIZES, seed=[-1, 0.5], steps=SIZES, device=[UNKNOWN], progress=["bar"])),
    Probe(run_method, dict(method="cdsm", field=_FIELD, x0=_FIELD.starts(1)[0], budget=10),
          dict(method=[UNKNOWN], field=["field", _RUN], x0=[_X], budget=[0, 2], constrained=["yes"], r0=[0.0],
               seed=[-1, 0.5])),
    Probe(compare_searches, dict(field=_FIELD, starts=1, budget=10, methods=("cdsm",)),
          dict(field=["field"], starts=SIZES, budget=[0, 2], methods=[[UNKNOWN], "cdsm", []], constrained=["yes"],
               r0=[0.0, {"hybrid": 0.1}], seed=[-1, 0.5], progress=["bar"])),
    Probe(phi_grid, dict(field=_FIELD, size=5),
          dict(field=["field", SurrogateField(lin3, 3, 3, Y_GOAL, X_OPT, 1.0, 0.0)], constrained=["yes"],
               size=[1, 0, 2.5])),
    Probe(plot_search_paths, dict(field=_FIELD, results=[_RUN]),
          dict(field=["field"], results=[[], _RUN, ["r"]], constrained=["yes"])),
    Probe(plot_best_vs_evals, dict(comparisons={"a": _COMP}), dict(comparisons=[{}, "c", {"a": "c"}])),
    Probe(evaluations_figure, dict(field=_FIELD, results=[_RUN], checkpoints=[1, 2]),
          dict(field=["field"], results=[[], _RUN, ["r"]], checkpoints=[[], [0], 5], constrained=["yes"])),
    Probe(directional_figure, dict(cache={2: _FIELD}, budget=10),
          dict(n=[3, UNKNOWN], r0=[0.0, NAN], tau=[-1.0], grow=[0.5], shrink=[1.0], budget=[0, 2], attack_steps=SIZES,
               attack=["yes"], covering=[1], search=["no"], poll=[None], variant=[UNKNOWN], constrained=["yes"],
               x1=[5.0, NAN], x2=[-5.0, "x"], cache=["cache", 3])),
    Probe(explore_directional, dict(cache=None), dict(cache=["cache", 3])),
]
UNPROBED = {}
