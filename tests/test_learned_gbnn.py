"""Reference tests for gradviz.learned.gbnn: the assembled network against the boosted sum (float64), switch-off
against the staged predictions, residuals and F0 by autograd, the step factors against Newton steps by autograd, the
squared loss's monotone training loss, one stage against a hand-written L-BFGS fit, packed Adam against separate
runs, and the chapter's findings at small settings."""
import copy

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

from gradviz.core import as_generator
from gradviz.data import gaussian_clusters, mlp
from gradviz.learned.gbnn import (GBNN, BinomialLoss, SoftmaxLoss, SquaredLoss, SwitchOff, BoostTask, WidthSweep,
                                  _train_adam_widths, compute_switch_off, compute_width_sweep, explore_gbnn,
                                  fit_stage, gbnn_figure, make_task, plot_decision_boundaries, plot_switch_off,
                                  plot_width_sweep, stages_figure, switch_off, train_joint)
from probe import INF, NAN, SIZES, UNKNOWN, Probe

F64 = torch.float64


def _multiclass(n=240, extra=30):
    "Three Gaussian classes, class 0 over-represented (so F0 = 0 is not the minimiser)."
    X, y = gaussian_clusters(n + extra, num_classes=3, seed=4, dtype=F64)
    keep = torch.cat([torch.arange(n), n + torch.nonzero(y[n:] == 0).flatten()])
    return X[keep], y[keep]


@pytest.fixture(scope="module")
def fitted():
    "Small float64 GB-NNs of each loss."
    fr, moons = make_task("friedman1", n=120, seed=3), make_task("two_moons", n=120, seed=3)
    Xm, ym = _multiclass()
    return {"squared": (GBNN(SquaredLoss(), T=6, J=2, eta=0.5, lbfgs_iters=10).fit(fr.X, fr.y, seed=1), fr.X),
            "binomial": (GBNN(BinomialLoss(), T=6, J=2, eta=0.7, lbfgs_iters=10).fit(moons.X, moons.y, seed=1),
                         moons.X),
            "softmax": (GBNN(SoftmaxLoss(), T=5, J=3, eta=1.0, lbfgs_iters=10).fit(Xm, ym, seed=1), Xm)}


def _boosted_sum(model, X):
    "F0 + Σ ρ_t h_t(X), written out stage by stage."
    out = model.F0 + sum(rho * s(X) for rho, s in zip(model.rhos, model.stages))
    return out[:, 0] if model.F0.ndim == 0 else out


# ---------------------------------------------------------------- assembly and switch-off
@pytest.mark.parametrize("kind", ["squared", "binomial", "softmax"])
def test_assembled_network_is_the_boosted_sum(fitted, kind):
    model, X = fitted[kind]
    lo, hi = X.min(0).values, X.max(0).values
    fresh = lo + (hi - lo) * torch.rand(1000, X.shape[1], generator=as_generator(8), dtype=F64)
    net = model.to_network()
    assert net[0].out_features == model.T * model.J
    out = net(fresh)
    want = _boosted_sum(model, fresh)
    got = out[:, 0] / 2 if kind == "binomial" else (out[:, 0] if kind == "squared" else out)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    torch.testing.assert_close(model.predict(fresh), want, rtol=0, atol=1e-10)
    if kind == "binomial":  # read through a sigmoid, the doubled output is P(y = 1) = σ(2F)
        torch.testing.assert_close(torch.sigmoid(out[:, 0]), torch.sigmoid(2 * want), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["squared", "binomial", "softmax"])
def test_switching_off_later_units_gives_the_staged_prediction(fitted, kind):
    model, X = fitted[kind]
    net, staged = model.to_network(), model.staged_predict(X)
    for t in range(model.T + 1):
        out = switch_off(net, t * model.J)(X)
        got = out[:, 0] / 2 if kind == "binomial" else (out[:, 0] if kind == "squared" else out)
        torch.testing.assert_close(got, staged[t], rtol=0, atol=1e-10)
    before = copy.deepcopy(net.state_dict())
    switch_off(net, 1, "random", seed=3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # a copy: the original is untouched


def test_random_switch_off_keeps_exactly_keep_units():
    net = mlp([2, 10, 1], seed=0, dtype=F64)
    off = switch_off(net, 4, "random", seed=5)
    assert int((off[2].weight != 0).sum()) == 4 and torch.equal(off[2].bias, net[2].bias)
    assert torch.equal(switch_off(net, 4, "random", seed=5)[2].weight, off[2].weight)


# ---------------------------------------------------------------- the losses, by autograd
CASES = {"squared": lambda: (SquaredLoss(), make_task("friedman1", n=50, seed=0).y),
         "binomial": lambda: (BinomialLoss(), torch.tensor([0, 1, 1, 1, 0, 1, 1, 0, 1, 1])),
         "softmax": lambda: (SoftmaxLoss(), _multiclass()[1])}


@pytest.mark.parametrize("kind", list(CASES))
def test_residuals_are_negative_gradients_and_F0_minimises_the_mean_loss(kind):
    loss, y = CASES[kind]()
    t = loss.target(y).to(F64)
    for seed in range(3):
        F_ = (3 * torch.randn(t.shape, generator=as_generator(seed), dtype=F64)).requires_grad_()
        grad, = torch.autograd.grad(loss.losses(t, F_).sum(), F_)
        torch.testing.assert_close(loss.residuals(t, F_.detach()), -grad, rtol=0, atol=1e-12)
    c = loss.init(t).clone().requires_grad_()
    dc, = torch.autograd.grad(loss.losses(t, c.expand_as(t)).mean(), c)
    assert float(dc.abs().max()) < 1e-10
    for shift in (-0.1, 0.1):  # and a minimum, not just a stationary point (softmax: move one class's score)
        moved = c.detach().clone()
        moved.view(-1)[0] += shift
        assert loss.losses(t, moved.expand_as(t)).mean() > loss.losses(t, c.detach().expand_as(t)).mean()


def _newton(loss, t, F_, h):
    "−φ′(0)/φ″(0) for φ(ρ) = Σ L(t, F + ρh), by autograd."
    rho = torch.zeros((), dtype=F64, requires_grad=True)
    d1, = torch.autograd.grad(loss.losses(t, F_ + rho * h).sum(), rho, create_graph=True)
    d2, = torch.autograd.grad(d1, rho)
    return float((-d1 / d2).detach())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_step_is_one_newton_step(seed):
    g = as_generator(seed)
    t = BinomialLoss().target(torch.randint(0, 2, (300,), generator=g))
    F_, h = torch.randn(300, generator=g, dtype=F64), torch.randn(300, generator=g, dtype=F64)
    assert abs(float(BinomialLoss().step(t, F_, h)) - _newton(BinomialLoss(), t, F_, h)) < 1e-8


def test_softmax_step_is_the_diagonal_newton_step_not_the_full_one():
    g = as_generator(4)
    t = SoftmaxLoss().target(_multiclass()[1])
    F_, h = torch.randn(t.shape, generator=g, dtype=F64), torch.randn(t.shape, generator=g, dtype=F64)
    p = torch.softmax(F_, -1)
    # by hand: gradient −Σ h r, diagonal curvature Σ h² p(1 − p), full curvature Σ_i h_iᵀ(diag p_i − p_i p_iᵀ)h_i
    num = (h * (t - p)).sum()
    diag = (h * h * p * (1 - p)).sum()
    full = ((h * h * p).sum() - ((h * p).sum(1) ** 2).sum())
    assert abs(float(SoftmaxLoss().step(t, F_, h)) - float(num / diag)) < 1e-12
    assert abs(_newton(SoftmaxLoss(), t, F_, h) - float(num / full)) < 1e-10
    assert abs(float(num / diag) - float(num / full)) > 1e-3


def test_squared_step_is_one_or_the_exact_line_search():
    g = as_generator(2)
    t, F_, h = (torch.randn(40, generator=g, dtype=F64) for _ in range(3))
    assert float(SquaredLoss().step(t, F_, h)) == 1.0
    rho = SquaredLoss(line_search=True).step(t, F_, h)
    phi = lambda r: float(SquaredLoss().losses(t, F_ + r * h).sum())
    assert phi(float(rho)) < min(phi(float(rho) - 1e-4), phi(float(rho) + 1e-4))


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_squared_loss_never_rises_when_stages_fit_all_the_data(eta):
    fr = make_task("friedman1", n=150, seed=2)
    m = GBNN(SquaredLoss(), T=10, J=1, eta=eta, subsample=1.0, lbfgs_iters=15).fit(fr.X, fr.y, seed=2)
    assert float(m.train_loss.diff().max()) <= 1e-12
    ls = GBNN(SquaredLoss(line_search=True), T=10, J=1, eta=eta, subsample=0.1, lbfgs_iters=15).fit(fr.X, fr.y, seed=2)
    assert float(ls.train_loss.diff().max()) <= 1e-12


def test_one_stage_at_full_width_is_an_mlp_fitted_to_centred_targets():
    fr = make_task("friedman1", n=100, seed=5)
    one = GBNN(SquaredLoss(), T=1, J=6, eta=1.0, subsample=1.0, lbfgs_iters=25).fit(fr.X, fr.y, seed=7)
    plain = mlp([10, 6, 1], "sigmoid", seed=as_generator(7), dtype=F64)
    opt = torch.optim.LBFGS(plain.parameters(), lr=1, max_iter=25, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")
    def closure():
        opt.zero_grad()
        value = ((plain(fr.X)[:, 0] - (fr.y - fr.y.mean())) ** 2).mean()
        value.backward()
        return value
    opt.step(closure)
    for a, b in zip(one.stages[0].parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert float(one.rhos[0]) == 1.0
    torch.testing.assert_close(one.F0, fr.y.mean(), rtol=0, atol=1e-12)


def test_stage_fits_a_single_sigmoid_exactly_and_restarts_keep_the_best():
    X = torch.linspace(-3, 3, 120, dtype=F64)[:, None]
    r = 4 * torch.sigmoid(3 * X[:, 0] - 1) - 1
    net = fit_stage(X, r, J=1, lbfgs_iters=100, seed=0)
    assert float((net(X)[:, 0] - r).abs().max()) < 1e-4
    err = lambda n: float(((n(X)[:, 0] - r) ** 2).mean())
    single = fit_stage(X, r, activation="relu", lbfgs_iters=5, seed=0)
    best = fit_stage(X, r, activation="relu", lbfgs_iters=5, restarts=4, seed=0)  # its first start is `single`'s
    assert err(best) <= err(single)


def test_packed_adam_trains_every_width_as_a_separate_run():
    tk = make_task("two_moons", n=80, seed=6)
    t = tk.loss.target(tk.y).to(F64)
    packed = _train_adam_widths(tk.X, t, tk.loss, (3, 7), 40, 0.05, "sigmoid", 6)
    for w, net in zip((3, 7), packed):
        alone = train_joint(tk.X, tk.y, tk.loss, w, "adam", 40, 0.05, seed=6)
        for a, b in zip(net.parameters(), alone.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_fit_refuses_bad_data():
    model = GBNN(BinomialLoss(), T=2)
    X = torch.zeros(10, 2, dtype=F64)
    with pytest.raises(ValueError, match="`y`"): model.fit(X, torch.arange(10) % 3)
    with pytest.raises(ValueError, match="`y`"): model.fit(X, torch.arange(9) % 2)
    with pytest.raises(ValueError, match="not fitted"): model.predict(X)
    with pytest.raises(ValueError, match="`num_classes`"): SoftmaxLoss(num_classes=1).target(torch.tensor([0, 0]))


# ---------------------------------------------------------------- findings at small settings
@pytest.fixture(scope="module")
def spirals():
    return compute_width_sweep("two_spirals", seeds=(2,), widths=(4, 20, 100), J=2, eta=0.5, lbfgs_iters=20,
                               optimizers=("lbfgs",), joint_iters=60, activation="tanh", n=300, device="cpu")


def test_gbnn_stays_flat_with_width_where_joint_lbfgs_overfits(spirals):
    gb = spirals.gbnn["test", "loss"][0, [2, 10, 50]]
    lb = spirals.joint["lbfgs", "test", "loss"][0]
    assert gb[-1] == gb.min() and (np.diff(spirals.gbnn["train", "loss"][0]) < 0).all()
    assert lb[-1] > 1.5 * lb.min()


def test_first_units_degrade_more_gracefully_than_random_ones(spirals):
    res = compute_switch_off(spirals, keep=(20,), seed=9)
    first = res.error["GB-NN, first units"][0, 0]
    assert first < res.error["GB-NN, random units"][0, 0] and first < res.error["joint L-BFGS, random units"][0, 0]
    assert isinstance(res, SwitchOff)


# ---------------------------------------------------------------- figures and explorer
def test_figures_and_explorer(spirals):
    assert isinstance(plot_width_sweep(spirals, "error"), Figure)
    assert isinstance(plot_switch_off(compute_switch_off(spirals, keep=(5, 100), draws=1)), Figure)
    tk = make_task("two_moons", n=60, seed=0)
    model = GBNN(BinomialLoss(), T=4, lbfgs_iters=3).fit(tk.X, tk.y)
    assert isinstance(plot_decision_boundaries(model, tk, (1, 4), res=10), Figure)
    fig = stages_figure(model, tk, (0, 2, 4), res=8)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 3
    cache = {}
    panel = gbnn_figure(T=3, lbfgs_iters=2, keep=0.5, cache=cache)
    assert isinstance(panel, go.Figure) and len(cache) == 1
    gbnn_figure(T=3, lbfgs_iters=2, keep=1.0, cache=cache)
    assert len(cache) == 1  # `keep` reuses the fitted model
    assert isinstance(gbnn_figure(task="friedman1", T=2, lbfgs_iters=2, cache=cache), go.Figure)
    ex = explore_gbnn(cache)
    assert ex.controls["keep"].costly is False and all(c.costly for k, c in ex.controls.items() if k != "keep")


# ---------------------------------------------------------------- bad input
_TASK = make_task("two_moons", n=20, n_test=10, seed=0, device="cpu")
_X, _Y = _TASK.X, _TASK.y
_R = torch.randn(20, generator=as_generator(0), dtype=F64)
_MODEL = GBNN(BinomialLoss(), T=2, lbfgs_iters=2).fit(_X, _Y)
_NET = _MODEL.to_network()
_SWEEP = compute_width_sweep("two_moons", seeds=(0,), widths=(2,), J=2, lbfgs_iters=1, adam_steps=1, joint_iters=1,
                             n=8, device="cpu")
_CACHE = {}
_FRACTIONS = [0.0, 1.5, NAN, "0.5"]

PROBES = [
    Probe(fit_stage, dict(X=_X, r=_R, lbfgs_iters=2),
          dict(X=[_X[0], _X.long(), torch.full_like(_X, NAN), "X"], r=[_R[:-1], _R[None, None], "r", _R + INF],
               J=SIZES, activation=[UNKNOWN], lbfgs_iters=SIZES, subsample=_FRACTIONS, restarts=SIZES,
               seed=[-1, 0.5], device=[UNKNOWN, 3])),
    Probe(GBNN, dict(loss=BinomialLoss(), T=2),
          dict(loss=["loss", None, SquaredLoss], T=SIZES, J=SIZES, eta=_FRACTIONS, subsample=_FRACTIONS,
               activation=[UNKNOWN], lbfgs_iters=SIZES, restarts=SIZES)),
    Probe(switch_off, dict(net=_NET, keep=1),
          dict(net=["net", mlp([2, 3, 3, 1]), _TASK], keep=[-1, 1000, 0.5], order=[UNKNOWN], seed=[-1, 0.5])),
    Probe(train_joint, dict(X=_X, y=_Y, loss=BinomialLoss(), width=2, steps=1),
          dict(X=[_X[0], "X", torch.full_like(_X, NAN)], y=[_Y[:-1], _Y.double(), _Y + 2, "y"], loss=["loss"],
               width=SIZES, optimizer=[UNKNOWN], steps=SIZES, lr=[0.0, NAN], activation=[UNKNOWN], seed=[-1, 0.5],
               device=[UNKNOWN])),
    Probe(make_task, dict(n=10, n_test=10, device="cpu"),
          dict(name=[UNKNOWN], n=SIZES + [2], noise=[-0.1, NAN], n_test=SIZES, seed=[-1, 0.5], device=[UNKNOWN])),
    Probe(compute_width_sweep, dict(seeds=(0,), widths=(2,), J=2, lbfgs_iters=1, adam_steps=1, joint_iters=1, n=8,
                                    device="cpu"),
          dict(task=[UNKNOWN], seeds=[(), (-1,), (0.5,), 3], widths=[(), (3,), (4, 2), "w"], J=SIZES,
               eta=_FRACTIONS, subsample=_FRACTIONS, lbfgs_iters=SIZES, optimizers=[(UNKNOWN,)], adam_steps=SIZES,
               adam_lr=[0.0, NAN], joint_iters=SIZES, activation=[UNKNOWN], n=SIZES, noise=[-1.0, NAN],
               progress=["bar"], device=[UNKNOWN])),
    Probe(compute_switch_off, dict(sweep=_SWEEP, draws=1),
          dict(sweep=["sweep", _TASK], keep=[[-1], [1000], "k"], draws=SIZES, seed=[-1, 0.5])),
    Probe(plot_width_sweep, dict(sweep=_SWEEP), dict(sweep=["sweep", _TASK], metric=[UNKNOWN])),
    Probe(plot_switch_off, dict(result=compute_switch_off(_SWEEP, draws=1)), dict(result=["result", _SWEEP])),
    Probe(plot_decision_boundaries, dict(model=_MODEL, task=_TASK, stages=(1,), res=4),
          dict(model=["model", GBNN(BinomialLoss())], task=["task", make_task("friedman1", n=10, n_test=10)],
               stages=[[], [-1], [1000], 3, [0.5]], res=SIZES + [1])),
    Probe(stages_figure, dict(model=_MODEL, task=_TASK, stages=(1,), res=4),
          dict(model=["model", GBNN(BinomialLoss())], task=["task", _MODEL], stages=[[], [5], "1"], res=SIZES)),
    Probe(gbnn_figure, dict(T=2, lbfgs_iters=2, cache=_CACHE),
          dict(task=[UNKNOWN], T=SIZES, J=SIZES, eta=_FRACTIONS, subsample=_FRACTIONS, lbfgs_iters=SIZES,
               activation=[UNKNOWN], noise=[-1.0, NAN], keep=_FRACTIONS, cache=["cache", 3])),
    Probe(explore_gbnn, dict(cache=None), dict(cache=["cache", 3])),
]
UNPROBED = {}
