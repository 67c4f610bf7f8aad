"""Reference tests for gradviz.curvature.sven: closed forms on linear models, Gauss–Newton, Jacobians, SVD variants."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from gradviz.autodiff import flatten_params, model_function, per_sample_grads
from gradviz.core import as_generator
from gradviz.curvature.sven import (History, Regression1D, ResidualJacobian, Sven, SvenStep, effective_residuals,
                                    explore_sven, fit, fits_figure, per_example_losses, plot_fits, plot_histories,
                                    plot_jacobian_spectra, regression_1d, residual_jacobian, spectra_along_training,
                                    sven_direction, sven_figure, truncated_svd)
from gradviz.data import mlp
from gradviz.viz import Explorer


def jacobian(f, theta):
    "The reference Jacobian: `torch.autograd.functional.jacobian`, independent of gradviz's derivative code."
    return torch.autograd.functional.jacobian(f, theta)

F64 = torch.float64
mse = nn.functional.mse_loss


def linear_problem(B, P, seed=0, out=1):
    g = as_generator(seed)
    lin = nn.Linear(P, out, bias=False).double()
    with torch.no_grad(): lin.weight.copy_(torch.randn(out, P, generator=g, dtype=F64))
    return lin, torch.randn(B, P, generator=g, dtype=F64), torch.randn(B, out, generator=g, dtype=F64)


def one_step(model, X, y, **kw):
    w0, R0 = flatten_params(model), (model(X) - y).detach().squeeze(1)
    info = Sven(model, mse, **kw).step(X, y)
    return flatten_params(model) - w0, R0, (model(X) - y).detach().squeeze(1), info


@pytest.mark.parametrize("svd", ["exact", "gram", "randomized"])
def test_underdetermined_kappa1_interpolates_at_minimum_norm(svd):
    lin, X, y = linear_problem(8, 20, seed=1)
    dw, R0, R1, info = one_step(lin, X, y, lr=1.0, k=8, kappa=1.0, rtol=0.0, svd=svd, power_iters=2)
    torch.testing.assert_close(R1, torch.zeros(8, dtype=F64), atol=1e-10, rtol=0)
    torch.testing.assert_close(dw, torch.linalg.pinv(X) @ (-R0), atol=1e-8, rtol=0)
    assert info.rank == 8 and info.loss == pytest.approx(float((R0 ** 2).mean()))


def test_kappa2_halves_every_residual():
    lin, X, y = linear_problem(8, 20, seed=2)
    _, R0, R1, _ = one_step(lin, X, y, lr=1.0, k=8, kappa=2.0, rtol=0.0)
    torch.testing.assert_close(R1 / R0, torch.full((8,), 0.5, dtype=F64), atol=1e-9, rtol=0)


def test_learning_rate_scales_the_step():
    lin, X, y = linear_problem(8, 20, seed=2)
    d1, *_ = one_step(lin, X, y, lr=1.0, k=8, kappa=1.0, rtol=0.0)
    lin, X, y = linear_problem(8, 20, seed=2)
    d2, *_ = one_step(lin, X, y, lr=0.25, k=8, kappa=1.0, rtol=0.0)
    torch.testing.assert_close(d2, 0.25 * d1, atol=1e-12, rtol=0)


def test_overdetermined_linear_is_gauss_newton():
    lin, X, y = linear_problem(50, 5, seed=3)
    dw, R0, _, _ = one_step(lin, X, y, lr=1.0, k=5, kappa=1.0, rtol=0.0)
    torch.testing.assert_close(dw, -torch.linalg.solve(X.T @ X, X.T @ R0), atol=1e-10, rtol=0)


def test_overdetermined_nonlinear_is_gauss_newton():
    net = mlp([2, 3, 1], activation="tanh", seed=0, device="cpu", dtype=F64)  # 13 parameters
    g = as_generator(4)
    X, y = torch.randn(40, 2, generator=g, dtype=F64), torch.randn(40, 1, generator=g, dtype=F64)
    fnet, theta = model_function(net), flatten_params(net)
    J = jacobian(lambda t: fnet(t, X).reshape(-1), theta)
    R = (net(X) - y).detach().reshape(-1)
    gn = -torch.linalg.solve(J.T @ J, J.T @ R)
    Sven(net, mse, lr=1.0, k=64, kappa=1.0, rtol=0.0).step(X, y)
    torch.testing.assert_close(flatten_params(net) - theta, gn, atol=1e-8, rtol=0)


def test_truncation_loss_is_monotone_in_k():
    losses = []
    for k in range(1, 9):
        lin, X, y = linear_problem(8, 20, seed=1)
        _, R0, R1, info = one_step(lin, X, y, lr=1.0, k=k, kappa=1.0, rtol=0.0)
        assert info.rank == k
        losses.append(float((R1 ** 2).mean()))
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    assert losses[0] < float((R0 ** 2).mean()) and losses[-1] < 1e-20


def test_residual_jacobian_matches_jacrev_and_loop():
    net = mlp([3, 8, 2], activation="gelu", seed=1, device="cpu", dtype=F64)
    g = as_generator(5)
    X, y = torch.randn(12, 3, generator=g, dtype=F64), torch.randn(12, 2, generator=g, dtype=F64)
    for kappa in (1.0, 2.0, 3.0):
        rj = residual_jacobian(net, mse, X, y, kappa=kappa)
        assert isinstance(rj, ResidualJacobian) and rj.M.shape == (12, sum(p.numel() for p in net.parameters()))
        fnet = model_function(net)
        res = lambda t: (((fnet(t, X) - y) ** 2).mean(1)) ** (kappa / 2)
        torch.testing.assert_close(rj.M, jacobian(res, flatten_params(net)), atol=1e-10, rtol=1e-8)
        torch.testing.assert_close(rj.r, res(flatten_params(net)), atol=1e-12, rtol=0)
    rows = []
    for i in range(12):
        net.zero_grad(); mse(net(X[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    torch.testing.assert_close(residual_jacobian(net, mse, X, y, kappa=2.0).M, torch.stack(rows), atol=1e-12, rtol=0)


def test_per_example_losses_cross_entropy():
    net = mlp([4, 5, 3], seed=0, device="cpu", dtype=F64)
    X, y = torch.randn(7, 4, generator=as_generator(0), dtype=F64), torch.arange(7) % 3
    ref = nn.functional.cross_entropy(net(X), y, reduction="none")
    ours = per_example_losses(net, nn.functional.cross_entropy, X, y)
    torch.testing.assert_close(ours, ref.detach(), atol=1e-12, rtol=0)


def test_zero_loss_rows_are_zero():
    r, slope = effective_residuals(torch.tensor([0.0, 4.0], dtype=F64), kappa=1.0)
    assert r.tolist() == [0.0, 2.0] and slope.tolist() == [0.0, 0.25]
    lin, X, y = linear_problem(4, 6, seed=0)
    with torch.no_grad(): y[0] = lin(X[:1])[0]  # first example already fitted
    rj = residual_jacobian(lin, mse, X, y, kappa=1.0)
    assert torch.isfinite(rj.M).all() and rj.M[0].abs().max() == 0


def test_randomized_svd_agrees_with_exact_on_a_network_jacobian():
    net = mlp([1, 16, 16, 16, 1], activation="gelu", seed=0, device="cpu", dtype=F64)
    X, y, _ = regression_1d(n=128, seed=0, device="cpu", dtype=F64)
    opt = Sven(net, mse, lr=0.1, k=64)
    for _ in range(3): opt.step(X, y)
    rj = residual_jacobian(net, mse, X, y)
    ex = truncated_svd(rj.M, 8, rtol=0.0)
    for method in ("randomized", "gram"):
        other = truncated_svd(rj.M, 8, rtol=0.0, method=method, seed=0)
        assert float(((other.S - ex.S).abs() / ex.S).max()) < 1e-3
        d_ex = sven_direction(rj.M, rj.r, k=8, rtol=0.0)
        d_o = sven_direction(rj.M, rj.r, k=8, rtol=0.0, method=method, seed=0)
        assert float((d_o - d_ex).norm() / d_ex.norm()) < 1e-3


def test_rtol_drops_small_singular_values():
    U = torch.linalg.qr(torch.randn(6, 6, generator=as_generator(1), dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(9, 6, generator=as_generator(2), dtype=F64)).Q
    M = U @ torch.diag(torch.tensor([1.0, 0.5, 1e-2, 1e-4, 1e-6, 1e-12], dtype=F64)) @ V.T
    assert len(truncated_svd(M, 6, rtol=1e-3).S) == 3
    assert len(truncated_svd(M, 6, rtol=0.0).S) == 5  # the absolute cut-off 1e-10 drops the last
    assert len(truncated_svd(M, 2, rtol=0.0).S) == 2
    assert len(truncated_svd(M, 100, rtol=0.0, atol=0.0).S) == 6  # k capped at min(B, P)


def test_single_example_direction_is_the_gradient():
    net = mlp([2, 4, 1], seed=3, device="cpu", dtype=F64)
    X, y = torch.randn(1, 2, generator=as_generator(0), dtype=F64), torch.ones(1, 1, dtype=F64)
    rj = residual_jacobian(net, mse, X, y)
    d = sven_direction(rj.M, rj.r, k=1)
    g = per_sample_grads(net, mse, X, y)[0]
    assert float(d @ g / (d.norm() * g.norm())) == pytest.approx(1.0, abs=1e-12)


def test_optimizer_works_with_a_scheduler_and_state_dict():
    net = mlp([1, 8, 1], activation="tanh", seed=0, device="cpu")
    X, y, _ = regression_1d(n=64, seed=1, device="cpu")
    opt = Sven(net, mse, lr=0.2, k=8)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    info = opt.step(X, y); sched.step()
    assert isinstance(info, SvenStep) and opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert set(opt.state_dict()["param_groups"][0]) >= {"lr", "k", "rtol", "kappa", "svd"}


def test_fit_histories_and_determinism():
    X, y, target = regression_1d(n=256, seed=0, device="cpu")
    Xg = torch.linspace(-1, 1, 50).unsqueeze(1)
    runs = {m: fit(mlp([1, 8, 8, 1], activation="gelu", seed=0, device="cpu"), X, y, m, epochs=4, batch_size=64,
                   lr=0.1 if m != "adam" else 0.01, seed=1, X_val=Xg, y_val=target(Xg), X_grid=Xg,
                   **({"k": 8} if m == "sven" else {}))
            for m in ("sgd", "adam", "sven", "lbfgs")}
    for m, h in runs.items():
        assert isinstance(h, History) and h.name == m
        assert h.epochs[0] == 0 and h.epochs[-1] >= 4 and np.all(np.diff(h.seconds) >= 0)
        assert np.isfinite(h.train_loss).all() and np.isfinite(h.val_loss).all()
        assert h.predictions.shape == (len(h.epochs), 50)
    again = fit(mlp([1, 8, 8, 1], activation="gelu", seed=0, device="cpu"), X, y, "sven", epochs=4, batch_size=64,
                lr=0.1, seed=1, k=8)
    np.testing.assert_array_equal(again.train_loss, runs["sven"].train_loss)
    lin, Xl, _ = linear_problem(128, 3, seed=6)
    yl = Xl @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64)  # noise-free linear target: one Gauss–Newton step
    h = fit(lin, Xl, yl, "sven", epochs=1, batch_size=32, lr=1.0, kappa=1.0, rtol=0.0)
    assert h.train_loss[0] > 0.1 and h.train_loss[-1] < 1e-20
    assert runs["sven"].at_seconds(-1.0) != runs["sven"].at_seconds(-1.0)  # nan before any record


def test_regression_data_is_standardised_and_seeded():
    X, y, target = regression_1d(n=1000, seed=3, device="cpu", dtype=F64)
    assert X.shape == (1000, 1) and y.shape == (1000, 1) and float(X.abs().max()) <= 1
    assert float(y.mean()) == pytest.approx(0.0, abs=1e-10) and float(y.std()) == pytest.approx(1.0, abs=1e-10)
    torch.testing.assert_close(regression_1d(n=1000, seed=3, device="cpu", dtype=F64)[0], X, atol=0, rtol=0)
    raw = torch.exp(-10 * X ** 2) * torch.sin(2 * X)
    assert float(torch.corrcoef(torch.cat([raw, y], 1).T)[0, 1]) == pytest.approx(1.0, abs=1e-12)


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_sven_follows_the_device(device):
    net = mlp([1, 8, 1], seed=0, device=device, dtype=F64)
    X, y, _ = regression_1d(n=32, seed=0, device=device, dtype=F64)
    info = Sven(net, mse, lr=0.1, k=4, svd="randomized", seed=0).step(X, y)
    assert next(net.parameters()).device.type == torch.device(device).type and np.isfinite(info.loss)


def test_bad_input_errors_name_the_argument():
    net = mlp([1, 4, 1], seed=0, device="cpu")
    X, y, _ = regression_1d(n=16, seed=0, device="cpu")
    with pytest.raises(TypeError, match="`model`"): Sven("net", mse)
    with pytest.raises(TypeError, match="`loss_fn`"): Sven(net, "mse")
    with pytest.raises(ValueError, match="`lr`"): Sven(net, mse, lr=0.0)
    with pytest.raises(ValueError, match="`k`"): Sven(net, mse, k=0)
    with pytest.raises(ValueError, match="`rtol`"): Sven(net, mse, rtol=2.0)
    with pytest.raises(ValueError, match="`kappa`"): Sven(net, mse, kappa=0.0)
    with pytest.raises(ValueError, match="`svd`"): Sven(net, mse, svd="lobpcg")
    with pytest.raises(ValueError, match="`power_iters`"): Sven(net, mse, power_iters=-1)
    with pytest.raises(ValueError, match="`oversample`"): Sven(net, mse, oversample=-1)
    with pytest.raises(ValueError, match="`X`|`y`"): Sven(net, mse).step(X, y[:5])
    with pytest.raises(ValueError, match="`losses`"):
        Sven(net, lambda out, t: -((out - t) ** 2).sum() - 1).step(X, y)  # negative losses
    with pytest.raises(ValueError, match="model"):
        Sven(nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 1)), mse).step(X, y)
    with pytest.raises(ValueError, match="`kappa`"): effective_residuals(torch.ones(3), kappa=-1.0)
    with pytest.raises(ValueError, match="`losses`"): effective_residuals(torch.ones(3, 1))
    with pytest.raises(ValueError, match="`M`"): truncated_svd(torch.ones(3), 1)
    with pytest.raises(ValueError, match="`method`"): truncated_svd(torch.ones(3, 3), 1, method="qr")
    with pytest.raises(ValueError, match="`r`"): sven_direction(torch.ones(3, 4), torch.ones(4))
    with pytest.raises(ValueError, match="`method`"): fit(net, X, y, method="rmsprop")
    with pytest.raises(ValueError, match="`epochs`"): fit(net, X, y, epochs=0)
    with pytest.raises(ValueError, match="`batch_size`"): fit(net, X, y, batch_size=17)
    with pytest.raises(ValueError, match="`X_val`"): fit(net, X, y, batch_size=16, X_val=X)
    with pytest.raises(ValueError, match="`n`"): regression_1d(n=1)


def test_regression_1d_is_a_named_tuple_and_takes_a_generator():
    data = regression_1d(n=50, seed=as_generator(2), device="cpu")
    assert isinstance(data, Regression1D) and data.X.shape == (50, 1)
    torch.testing.assert_close(data.X, regression_1d(n=50, seed=2, device="cpu").X, atol=0, rtol=0)
    torch.testing.assert_close(data.target(data.X), data.y)
    with pytest.raises(TypeError, match="`seed`"): regression_1d(seed=0.5)


def test_fit_progress_and_seed():
    X, y, _ = regression_1d(n=64, seed=0, device="cpu")
    seen = []
    def bar(iterable, total=None, desc=None):
        seen.append((len(iterable), desc))
        return iterable
    a = fit(mlp([1, 4, 1], seed=0, device="cpu"), X, y, "sven", epochs=3, batch_size=16, k=4, seed=5, progress=bar)
    b = fit(mlp([1, 4, 1], seed=0, device="cpu"), X, y, "sven", epochs=3, batch_size=16, k=4, seed=as_generator(5))
    np.testing.assert_array_equal(a.train_loss, b.train_loss)  # an int and a generator seeded with it agree
    assert seen == [(3, "epochs")]
    with pytest.raises(TypeError, match="`progress`"):
        fit(mlp([1, 4, 1], seed=0, device="cpu"), X, y, batch_size=16, progress="bar")


@pytest.fixture(scope="module")
def small_runs():
    X, y, target = regression_1d(n=128, seed=0, device="cpu")
    grid = torch.linspace(-1, 1, 30).unsqueeze(1)
    runs = {name: fit(mlp([1, 6, 1], activation="gelu", seed=0, device="cpu"), X, y, m, epochs=3, batch_size=32, lr=lr,
                      X_grid=grid, **kw)
            for name, m, lr, kw in (("Adam", "adam", 0.01, {}), ("Sven k=4", "sven", 0.1, {"k": 4}),
                                    ("L-BFGS", "lbfgs", 1.0, {}))}
    return runs, grid, target(grid)


def test_history_and_fit_figures(small_runs):
    runs, grid, target = small_runs
    fig = plot_histories(runs, {"Adam": "C0"}, titles=("a", "b"))
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.axes[1].lines) == 3
    assert fig.axes[0].get_title() == "a" and fig.axes[0].lines[0].get_color() == "C0"
    fig = plot_fits(runs, grid, target, epoch=2, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 1 + 3
    assert "(2 epochs)" in fig.axes[0].lines[1].get_label()
    slider = fits_figure(runs, grid, target, epochs=range(4), title="t")
    assert isinstance(slider, go.Figure) and len(slider.layout.sliders[0].steps) == 4 and len(slider.data) == 1 + 4 * 3
    assert [t.line.width for t in slider.data[1:4]] == [1.5, 3, 1.5]  # the Sven run is drawn thicker
    assert len(fits_figure(runs, grid, target, epochs=[1], max_points=10).data[0].x) == 10  # 30 points, every third


def test_jacobian_spectra_and_their_figure():
    X, y, _ = regression_1d(n=64, seed=0, device="cpu")
    spectra = spectra_along_training(mlp([1, 6, 1], activation="gelu", seed=0, device="cpu"), X, y, epochs=(0, 2),
                                     batch=16, batch_size=16, lr=0.1, k=8)
    assert list(spectra) == [0, 2] and all(s.shape == (16,) for s in spectra.values())
    assert not torch.equal(spectra[0], spectra[2])  # training moved the Jacobian
    fig = plot_jacobian_spectra(spectra, ks=(4,), title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2 + 1 + 1


def test_sven_figure_and_explorer():
    fig = sven_figure(k=2, epochs=1, batch_size=128, device="cpu")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and fig.axes[1].get_title() == "fit after 1 epochs"
    ex = explore_sven()
    assert isinstance(ex, Explorer) and {"k", "rtol", "lr", "batch_size", "epochs"} <= set(ex.controls)
    a = ex.update(epochs=1, batch_size=128, k=1)
    b = ex.update(k=4)
    assert isinstance(b, Figure) and a is not b and a.axes[0].get_title() != b.axes[0].get_title()
    assert ex.update(k=1) is a


def test_new_functions_name_bad_arguments(small_runs):
    runs, grid, target = small_runs
    with pytest.raises(ValueError, match="`runs` is empty"): plot_histories({})
    with pytest.raises(TypeError, match="`runs`"): plot_fits([1], grid, target)
    no_grid = {"x": fit(mlp([1, 2, 1], seed=0, device="cpu"), grid, target, "sgd", epochs=1, batch_size=30)}
    with pytest.raises(ValueError, match="`runs\\['x'\\]` has no predictions"): plot_fits(no_grid, grid, target)
    with pytest.raises(ValueError, match="`runs` is empty"): fits_figure({}, grid, target)
    with pytest.raises(ValueError, match="`epochs` is empty"):
        spectra_along_training(mlp([1, 2, 1], seed=0, device="cpu"), grid, target, epochs=())
    with pytest.raises(ValueError, match="`batch`"):
        spectra_along_training(mlp([1, 2, 1], seed=0, device="cpu"), grid, target, batch=0)
    with pytest.raises(ValueError, match="`spectra` is empty"): plot_jacobian_spectra({})
    with pytest.raises(ValueError, match="`k`"): sven_figure(k=0)
    with pytest.raises(TypeError, match="`seed`"): Sven(mlp([1, 2, 1], seed=0, device="cpu"), mse, seed=1.5)
    with pytest.raises(TypeError, match="`seed`"): truncated_svd(torch.ones(3, 3), 1, method="randomized", seed="a")


# ----------------------------------------------------------------------------- bad-input probes
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_NET = mlp([1, 3, 1], activation="gelu", seed=0, device="cpu", dtype=F64)
_XS = torch.linspace(-1, 1, 6, dtype=F64).unsqueeze(1)
_YS = torch.sin(_XS)
_DATA = dict(model=_NET, loss_fn=mse, X=_XS, y=_YS)
_BAD_DATA = dict(model=["net", None], loss_fn=["mse", None],
                 X=[torch.full((6, 1), NAN, dtype=F64), torch.ones(5, 1, dtype=F64), "X"],
                 y=[torch.full((6, 1), NAN, dtype=F64), torch.ones(5, 1, dtype=F64), "y"])
_MJ = torch.randn(4, 7, generator=as_generator(0), dtype=F64)
_BAD_M = [torch.ones(4, dtype=F64), torch.full((4, 7), NAN, dtype=F64), torch.ones(4, 7, dtype=torch.long), "M"]
_H1 = fit(mlp([1, 3, 1], seed=0, device="cpu", dtype=F64), _XS, _YS, "adam", epochs=1, batch_size=3, lr=0.01,
          X_grid=_XS)
_BAD_RUNS = [[_H1], {}, {"a": "run"}]

PROBES = [
    Probe(per_example_losses, dict(_DATA), dict(_BAD_DATA)),
    Probe(effective_residuals, dict(losses=torch.tensor([4.0, 1.0, 0.0], dtype=F64), kappa=2.0),
          dict(losses=[torch.tensor([-1.0]), torch.tensor([NAN]), torch.ones(2, 2), torch.tensor([1]), "losses"],
               kappa=[NAN, INF, 0.0, -1.0, "two"])),
    Probe(residual_jacobian, dict(**_DATA, kappa=2.0), dict(**_BAD_DATA, kappa=[NAN, 0.0, -1.0])),
    Probe(truncated_svd, dict(M=_MJ, k=3, rtol=1e-3, method="exact", oversample=2, power_iters=1, seed=0, atol=1e-10),
          dict(M=_BAD_M, k=[*SIZES, 2.5], rtol=[NAN, -0.1, 1.5], method=[UNKNOWN, 3], oversample=[-1, 2.5],
               power_iters=[-1, 2.5], seed=[1.5, "zero"], atol=[NAN, -1.0]),
          ),
    Probe(sven_direction, dict(M=_MJ, r=torch.ones(4, dtype=F64), k=3, rtol=1e-3, method="exact"),
          dict(M=_BAD_M, r=[torch.ones(5, dtype=F64), torch.full((4,), NAN, dtype=F64), "r"], k=[*SIZES, 2.5],
               rtol=[NAN, -0.1, 1.5], method=[UNKNOWN])),
    Probe(Sven, dict(model=_NET, loss_fn=mse, lr=0.1, k=4, rtol=1e-3, kappa=2.0, svd="exact", oversample=5,
                     power_iters=1, seed=0),
          dict(model=["net", nn.Sequential()], loss_fn=["mse"], lr=[NAN, INF, 0.0, -1.0], k=[*SIZES, 2.5],
               rtol=[NAN, -0.1, 1.5], kappa=[NAN, 0.0, -1.0], svd=[UNKNOWN, 3], oversample=[-1, 2.5],
               power_iters=[-1, 2.5], seed=[1.5, "zero"])),
    Probe(regression_1d, dict(n=10, seed=0, device="cpu", dtype=F64),
          dict(n=[*SIZES, 1, 2.5], seed=[1.5, "zero"], device=[UNKNOWN], dtype=[torch.long, "float64"])),
    Probe(fit, dict(model=mlp([1, 3, 1], seed=0, device="cpu", dtype=F64), X=_XS, y=_YS, method="adam", epochs=1,
                    batch_size=3, lr=0.01, loss_fn=mse, seed=0, X_val=None, y_val=None, X_grid=None, progress=False),
          dict(model=["net"], X=[torch.full((6, 1), NAN, dtype=F64), torch.ones(5, 1, dtype=F64), "X"],
               y=[torch.full((6, 1), NAN, dtype=F64), "y"], method=[UNKNOWN, 3], epochs=[*SIZES, 2.5],
               batch_size=[*SIZES, 7, 2.5], lr=[NAN, INF, 0.0, -1.0], loss_fn=["mse"], seed=[1.5, "zero"],
               X_val=[_XS, torch.full((6, 1), NAN, dtype=F64)], X_grid=["grid", torch.full((6, 1), NAN, dtype=F64)],
               progress=["yes"])),
    Probe(plot_histories, dict(runs={"a": _H1}, colors=None, titles=("a", "b"), highlight="Sven"),
          dict(runs=_BAD_RUNS, colors=["red"], titles=[("a",), "ab"])),
    Probe(plot_fits, dict(runs={"a": _H1}, X_grid=_XS, target=_YS, epoch=1, colors=None, title=None),
          dict(runs=_BAD_RUNS, X_grid=["grid", torch.ones(4, 1, dtype=F64)], target=["target", torch.ones(4, 1)],
               epoch=[NAN, -1.0], colors=["red"])),
    Probe(spectra_along_training, dict(model=mlp([1, 3, 1], seed=0, device="cpu", dtype=F64), X=_XS, y=_YS,
                                       epochs=(0, 1), batch=4, batch_size=3, loss_fn=mse, seed=0),
          dict(model=["net"], X=[torch.full((6, 1), NAN, dtype=F64), "X"], y=[torch.ones(5, 1, dtype=F64), "y"],
               epochs=[(), (-1,), (1.5,), "epochs"], batch=[*SIZES, 2.5], batch_size=[*SIZES, 2.5], loss_fn=["mse"],
               seed=[1.5, "zero"])),
    Probe(plot_jacobian_spectra, dict(spectra={0: torch.tensor([1.0, 0.1])}, rtol=1e-3, ks=(4,), title=None),
          dict(spectra=[[torch.ones(2)], {}, {0: "sv"}, {0: torch.tensor([1.0, NAN])}], rtol=[NAN, 0.0, -1.0],
               ks=[(0,), "k", (2.5,)])),
    Probe(fits_figure, dict(runs={"a": _H1}, X_grid=_XS, target=_YS, epochs=range(2), highlight="Sven", title=None,
                            max_points=10),
          dict(runs=_BAD_RUNS, X_grid=["grid", torch.ones(4, 1, dtype=F64)], target=["target"],
               epochs=[(), (-1,), "e"], max_points=[*SIZES, 1, 2.5])),
    Probe(sven_figure, dict(k=2, rtol=1e-3, lr=0.1, batch_size=64, epochs=1, device="cpu", progress=False),
          dict(k=[*SIZES, 2.5], rtol=[NAN, -0.1, 1.5], lr=[NAN, 0.0, -1.0], batch_size=[*SIZES, 513, 2.5],
               epochs=[*SIZES, 2.5], device=[UNKNOWN], progress=["yes"])),
]
