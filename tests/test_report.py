"""gradviz.report: the curvature report against dense Hessians and Gauss–Newton matrices (float64), the per-layer
table against the blocks, two real ranks against one, and the notebook's torchrun script run under torchrun."""
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradviz.autodiff import flat_objective, hessian, param_layout
from gradviz.core import as_generator
from gradviz.data import gaussian_clusters, mlp, tiny_lm
from gradviz.linalg import GaussNewtonOperator
from gradviz.parallel import run_workers
from gradviz.report import (CurvatureReport, LayerCurvature, curvature_report, layer_groups, plot_curvature_report,
                            sharded_curvature_report)
from probe import SIZES, UNKNOWN, Probe
from torchrun import run_under_torchrun

F64 = torch.float64


def _problem():
    X, y = gaussian_clusters(n=90, dim=6, num_classes=3, seed=0, device="cpu", dtype=F64)
    net = mlp([6, 12, 3], activation="tanh", seed=0, device="cpu", dtype=F64)
    return net, X, y, DataLoader(TensorDataset(X, y), batch_size=32)  # 32, 32, 26


NET, X, Y, LOADER = _problem()


def _dense():
    f, theta = flat_objective(NET, F.cross_entropy, X, Y)
    return hessian(f, theta)


def _blocks(H):
    offsets = np.cumsum((0,) + param_layout(NET).numels)  # weight, bias per layer
    names = param_layout(NET).names
    out = {}
    for layer in ("0", "2"):
        idx = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i, n in enumerate(names)
                         if n.startswith(layer + ".")])
        out[layer] = H[idx][:, idx]
    return out


def test_layer_groups_are_the_modules_that_own_parameters():
    assert list(layer_groups(NET)) == ["0", "2"]
    lm = tiny_lm(kind="transformer", dim=8, heads=2, seed=0, device="cpu")
    assert {"embed", "position", "norm", "head"} <= set(layer_groups(lm))
    frozen = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    frozen[0].requires_grad_(False)
    assert list(layer_groups(frozen)) == ["1"]


def test_the_report_matches_the_dense_hessian_whole_and_by_block():
    H = _dense()
    exact = torch.linalg.eigvalsh(H)
    report = curvature_report(NET, F.cross_entropy, LOADER, k=4, trace_products=90, layer_products=60)
    np.testing.assert_allclose(report.top_eigenvalues, exact.flip(0)[:4].numpy(), rtol=1e-8)
    assert abs(report.trace.estimate - exact.sum().item()) < 4 * report.trace.stderr
    assert (report.num_params, report.num_data, report.kind) == (H.shape[0], 90, "hessian")
    blocks = _blocks(H)
    for layer in report.layers:
        block = blocks[layer.name]
        assert layer.size == block.shape[0] and layer.module == "Linear"
        assert abs(layer.top_eigenvalue - torch.linalg.eigvalsh(block)[-1].item()) < 1e-8
        if layer.size <= 60:  # small groups are exact
            assert layer.trace_stderr == 0 and abs(layer.trace - block.trace().item()) < 1e-10
        else:
            assert abs(layer.trace - block.trace().item()) < 4 * layer.trace_stderr
        assert layer.share == pytest.approx(layer.trace / report.trace.estimate)
    rows = report.rows()
    assert [r["name"] for r in rows] == ["0", "2", "(all)"] and rows[-1]["share"] == 1.0
    table = report._repr_markdown_()
    assert "| 0 | Linear |" in table and f"{report.num_params:,} parameters" in table


def test_gauss_newton_report_and_named_groups():
    G = GaussNewtonOperator(NET, F.cross_entropy, X, Y).dense()
    report = curvature_report(NET, F.cross_entropy, LOADER, k=3, curvature="gauss-newton",
                              params={"weights": r".*weight", "biases": lambda n, p: n.endswith("bias")})
    np.testing.assert_allclose(report.top_eigenvalues, torch.linalg.eigvalsh(G).flip(0)[:3].numpy(), rtol=1e-8)
    assert [layer.name for layer in report.layers] == ["weights", "biases"]
    assert [layer.module for layer in report.layers] == ["", ""]
    biases = report.layers[1]
    assert biases.size == 15 and biases.trace_stderr == 0  # 12 + 3 biases: exact
    assert curvature_report(NET, F.cross_entropy, LOADER, k=2, params=None).layers == ()


def test_the_figure_has_its_three_panels():
    report = curvature_report(NET, F.cross_entropy, LOADER, k=3)
    fig = plot_curvature_report(report)
    assert isinstance(fig, go.Figure)
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds == ["Scatter", "Scatter", "Scatter", "Bar"]
    assert list(fig.data[3].y) == ["0", "2"]
    np.testing.assert_allclose(fig.data[2].y, report.top_eigenvalues)
    np.testing.assert_allclose(fig.data[3].x, [100 * layer.share for layer in report.layers])


def test_the_report_refuses_a_shuffling_loader():
    shuffled = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True, generator=as_generator(0))
    with pytest.raises(ValueError, match="shuffl"):
        curvature_report(NET, F.cross_entropy, shuffled)


def test_two_ranks_give_the_report_of_one():
    batches = list(LOADER)
    options = dict(k=3, trace_products=30, layer_products=30)
    two = run_workers(sharded_curvature_report, 2, NET, F.cross_entropy, batches, options, timeout=180.0)
    one = sharded_curvature_report(0, 1, NET, F.cross_entropy, batches, options)
    np.testing.assert_allclose(two[0].top_eigenvalues, one.top_eigenvalues, rtol=1e-10)
    np.testing.assert_array_equal(two[0].top_eigenvalues, two[1].top_eigenvalues)
    assert two[0].trace.estimate == pytest.approx(one.trace.estimate, rel=1e-10)
    for a, b in zip(two[0].layers, one.layers): assert a.trace == pytest.approx(b.trace, rel=1e-10)
    assert two[0].num_data == one.num_data == 90


def test_the_notebooks_torchrun_script_runs_unchanged(tmp_path):
    res = run_under_torchrun("00_foundations/05_your_model.ipynb", "curvature_ranks.py", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    found = dict(re.findall(r"rank (\d): (\[[^\]]*\])", res.stdout))  # the two ranks share one pipe
    assert sorted(found) == ["0", "1"], res.stdout
    assert found["0"] == found["1"]  # both ranks print the same top eigenvalues


PROBES = [
    Probe(layer_groups, dict(model=NET), dict(model=["net", None, nn.ReLU()])),
    Probe(curvature_report, dict(model=NET, loss_fn=F.cross_entropy, data=LOADER, k=2, params=None),
          dict(model=[None], loss_fn=[3], data=[[], torch.zeros(2)], k=SIZES, params=["every_layer", {}, 3],
               curvature=[UNKNOWN], trace_products=SIZES + [2], layer_products=SIZES, slq_probes=SIZES,
               slq_steps=SIZES + [1], seed=[-1, "0"], num_data=SIZES, max_batch=SIZES),
          named=dict(params="params")),
    Probe(plot_curvature_report, dict(report=None), dict(report=[3, "report"])),
    Probe(sharded_curvature_report, dict(rank=0, world_size=1, model=NET, loss_fn=F.cross_entropy,
                                         batches=list(LOADER), options=dict(k=2, params=None)),
          dict(batches=["batches", LOADER], options=[3, ["k"]], world_size=SIZES, rank=[-1, 1])),
]
UNPROBED = {"CURVATURES": "a table, not a function", "LayerCurvature": "a record", "CurvatureReport": "a record"}


@pytest.mark.parametrize("probe,arg,value", [c for p in PROBES for c in p.cases()])
def test_bad_input_names_the_argument(probe, arg, value):
    if probe.fn is plot_curvature_report:
        probe = Probe(plot_curvature_report, dict(report=curvature_report(NET, F.cross_entropy, LOADER, k=2,
                                                                          params=None)), probe.bad)
    probe.check(arg, value)


def test_records_are_plain_data():
    row = LayerCurvature("x", "Linear", 3, 1.0, 2.0, 0.1, 0.5)
    assert row.share == 0.5
    assert CurvatureReport.__dataclass_fields__.keys() >= {"top_eigenvalues", "trace", "density", "layers"}
