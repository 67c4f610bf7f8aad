"""Curvature operators over data iterables: exact against the in-memory operator on the concatenated data (float64),
the determinism check, parameter subsets against blocks of the dense Hessian, and two real gloo ranks."""
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradviz.autodiff import flat_objective, hessian, param_layout, per_sample_grads
from gradviz.core import as_generator
from gradviz.data import gaussian_clusters, mlp, tiny_cnn, tiny_images
from gradviz.linalg import (BatchSumOperator, EmpiricalFisherOperator, GaussNewtonOperator, HessianOperator, batch_size, hutchinson_trace,
                            hutchpp_trace, lanczos, split_batch, split_into_chunks)
from gradviz.parallel import run_workers, split_evenly
from probe import SIZES, UNKNOWN, Probe

F64 = torch.float64
CE = nn.functional.cross_entropy


def _problem(n=70, seed=0):
    X, y = gaussian_clusters(n=n, dim=5, num_classes=3, seed=seed, device="cpu", dtype=F64)
    return mlp([5, 7, 3], activation="tanh", seed=seed, device="cpu", dtype=F64), X, y


def _vectors(size, k=3, seed=1):
    return torch.randn(size, k, generator=as_generator(seed), dtype=F64)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


class _Named(nn.Module):
    "The network called with keyword inputs, as a mapping batch calls it."
    def __init__(self, inner): super().__init__(); self.inner = inner
    def forward(self, features, scale=None): return self.inner(features if scale is None else features * scale)


# ---------------------------------------------------------------- exact weighting

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["hessian", "gauss-newton"])
def test_a_loader_of_unequal_batches_gives_the_in_memory_operator(reduction, kind):
    net, X, y = _problem()
    loss = nn.CrossEntropyLoss(reduction=reduction)
    loader = DataLoader(TensorDataset(X, y), batch_size=16)  # 16, 16, 16, 16, 6
    if kind == "hessian":
        op, full = HessianOperator.from_data(net, loss, loader), HessianOperator.from_model(net, loss, X, y)
    else:
        op, full = GaussNewtonOperator.from_data(net, loss, loader), GaussNewtonOperator(net, loss, X, y)
    V = _vectors(op.size)
    assert (op.num_data, op.reduction) == (70, reduction)
    assert _rel(op @ V, full @ V) < 1e-10
    assert _rel(op @ V[:, 0], full @ V[:, 0]) < 1e-10


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_empirical_fisher_is_the_outer_product_of_per_sample_gradients(reduction):
    net, X, y = _problem()
    loss = nn.CrossEntropyLoss(reduction=reduction)
    G = per_sample_grads(net, CE, X, y)  # an independent implementation (per-tensor vmap)
    dense = G.T @ G / (len(X) if reduction == "mean" else 1)
    V = _vectors(G.shape[1])
    assert _rel(EmpiricalFisherOperator(net, loss, X, y) @ V, dense @ V) < 1e-12
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    assert _rel(EmpiricalFisherOperator.from_data(net, loss, loader) @ V, dense @ V) < 1e-12
    mapping = [{"features": X[i:i + 25], "labels": y[i:i + 25]} for i in range(0, 70, 25)]
    assert _rel(EmpiricalFisherOperator.from_data(_Named(net), loss, mapping, max_batch=10) @ V, dense @ V) < 1e-12
    head = EmpiricalFisherOperator.from_data(net, loss, loader, params=net[2])
    cols = torch.arange(G.shape[1] - head.size, G.shape[1])
    assert _rel(head.dense(), dense[cols][:, cols]) < 1e-12


def test_the_plain_average_of_batch_hessians_is_not_the_full_hessian():
    "The test above can fail: averaging the batch averages over-weights the short last batch."
    net, X, y = _problem()
    batches = [(X[i:i + 64], y[i:i + 64]) for i in range(0, 70, 64)]
    v = _vectors(param_layout(net).size, 1)[:, 0]
    average = sum(HessianOperator.from_model(net, CE, a, b) @ v for a, b in batches) / 2
    assert _rel(average, HessianOperator.from_model(net, CE, X, y) @ v) > 1e-2


def test_mapping_batches_with_chunks_and_keyword_inputs():
    net, X, y = _problem()
    scale = torch.full((70, 1), 2.0, dtype=F64)
    batches = [{"features": X[i:i + 25], "scale": scale[i:i + 25], "labels": y[i:i + 25]} for i in range(0, 70, 25)]
    op = HessianOperator.from_data(_Named(net), CE, batches, max_batch=7)
    full = HessianOperator.from_model(net, CE, 2 * X, y)
    V = _vectors(op.size)
    assert _rel(op @ V, full @ V) < 1e-10
    assert op.num_data == 70


def test_a_count_function_sets_the_weights():
    "`batch_size_fn` may count something else than samples (tokens, say): a constant factor per sample cancels."
    net, X, y = _problem()
    batches = [{"features": X[i:i + 30], "labels": y[i:i + 30]} for i in range(0, 70, 30)]
    op = HessianOperator.from_data(_Named(net), CE, batches, batch_size_fn=lambda b: 3 * len(b["labels"]))
    assert op.num_data == 210
    v = _vectors(op.size, 1)[:, 0]
    assert _rel(op @ v, HessianOperator.from_model(net, CE, X, y) @ v) < 1e-10
    equal = HessianOperator.from_data(_Named(net), CE, batches, batch_size_fn=lambda b: 1)  # average of averages
    assert _rel(equal @ v, HessianOperator.from_model(net, CE, X, y) @ v) > 1e-3


def test_num_data_skips_the_counting_pass_and_sets_the_weights():
    net, X, y = _problem()
    loader = DataLoader(TensorDataset(X, y), batch_size=32)
    op = HessianOperator.from_data(net, CE, loader, num_data=140, check_deterministic=False)
    full = HessianOperator.from_model(net, CE, X, y)
    v = _vectors(op.size, 1)[:, 0]
    assert _rel(op @ v, 0.5 * (full @ v)) < 1e-10


def test_kept_graphs_and_forward_over_reverse_give_the_same_products():
    net, X, y = _problem()
    loader = DataLoader(TensorDataset(X, y), batch_size=20)
    V = _vectors(param_layout(net).size)
    base = HessianOperator.from_data(net, CE, loader) @ V
    kept = HessianOperator.from_data(net, CE, loader, keep_graphs=True)
    assert _rel(kept @ V, base) < 1e-12
    assert _rel(HessianOperator.from_data(net, CE, loader, method="forward-over-reverse") @ V, base) < 1e-10


def test_graphs_are_kept_while_they_fit_and_streamed_beyond(monkeypatch):
    import gradviz.linalg as linalg
    net, X, y = _problem()
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    V = _vectors(param_layout(net).size)
    full = HessianOperator.from_model(net, CE, X, y) @ V
    auto = HessianOperator.from_data(net, CE, loader)
    assert auto.keeps_graphs and auto.kept_bytes > 0
    fisher = EmpiricalFisherOperator.from_data(net, CE, loader)  # built under torch.func: held tensors counted
    assert fisher.keeps_graphs and fisher.kept_bytes >= 70 * auto.size * 8
    monkeypatch.setattr(linalg, "KEEP_GRAPHS_BYTES", auto.kept_bytes // 2)  # only half of them would fit
    streamed = HessianOperator.from_data(net, CE, loader)
    assert not streamed.keeps_graphs
    for op in (auto, streamed, HessianOperator.from_data(net, CE, loader, keep_graphs=True)):
        assert _rel(op @ V, full) < 1e-10
    assert HessianOperator.from_data(net, CE, loader, keep_graphs=True).keeps_graphs


def test_kept_batches_of_a_per_sample_loss_are_merged_into_one_graph_and_others_stay_apart():
    net, X, y = _problem()
    loader = DataLoader(TensorDataset(X, y), batch_size=16)  # 16, 16, 16, 16, 6
    V = _vectors(param_layout(net).size)
    full = HessianOperator.from_model(net, CE, X, y) @ V
    merged = HessianOperator.from_data(net, CE, loader)
    assert merged.merge_batches and len(merged._kept) == 1 and _rel(merged @ V, full) < 1e-12
    capped = HessianOperator.from_data(net, nn.CrossEntropyLoss(reduction="sum"), loader, max_batch=40)
    assert len(capped._kept) == 2 and _rel(capped @ V, 70 * full) < 1e-12  # 16 + 16 | 16 + 16 + 6
    coupled = lambda out, t: CE(out, t) + out.mean().square()  # couples the samples of a batch: never merged
    apart = HessianOperator.from_data(net, coupled, loader)
    assert not apart.merge_batches and len(apart._kept) == 5
    assert _rel(apart @ V, HessianOperator.from_data(net, coupled, loader, keep_graphs=False) @ V) < 1e-12
    assert _rel(apart @ V, HessianOperator.from_model(net, coupled, X, y) @ V) > 1e-6  # merging would change it
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0], dtype=F64))  # a weighted mean: not merged
    assert not HessianOperator.from_data(net, weighted, loader).merge_batches
    y_ignored = y.clone()
    y_ignored[::7] = -100  # ignore_index makes each batch's mean over a different count: not merged
    ignoring = HessianOperator.from_data(net, CE, DataLoader(TensorDataset(X, y_ignored), batch_size=16))
    assert len(ignoring._kept) == 5
    streamed = HessianOperator.from_data(net, CE, DataLoader(TensorDataset(X, y_ignored), batch_size=16),
                                         keep_graphs=False)
    assert _rel(ignoring @ V, streamed @ V) < 1e-12
    counted = HessianOperator.from_data(net, CE, loader, batch_size_fn=lambda b: len(b[1]))
    assert not counted.merge_batches  # a custom count may not be what the loss averages over


def test_iterative_methods_run_unchanged_and_count_products():
    net, X, y = _problem()
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    op = HessianOperator.from_data(net, CE, loader)
    f, theta = flat_objective(net, CE, X, y)
    exact = torch.linalg.eigvalsh(hessian(f, theta))
    values, _ = lanczos(op, k=3, seed=0)
    np.testing.assert_allclose(np.sort(np.asarray(values))[::-1], exact[-3:].flip(0).numpy(), rtol=1e-8)
    tr, tr_pp = hutchinson_trace(op, num_probes=40, seed=0), hutchpp_trace(op, num_products=40, seed=0)
    for est in (tr, tr_pp): assert abs(est.estimate - exact.sum().item()) < 4 * est.stderr + 1e-10
    op.reset_count()
    op @ _vectors(op.size, 4)
    assert op.num_matvecs == 4


# ---------------------------------------------------------------- parameter subsets

@pytest.mark.parametrize("selection", ["0.weight", re.compile(r"2\..*"), "module", "callable"])
def test_a_parameter_subset_is_the_block_of_the_dense_hessian(selection):
    net, X, y = _problem()
    layout = param_layout(net)
    chosen = {"0.weight": ["0.weight"], "module": ["2.weight", "2.bias"], "callable": ["0.bias", "2.bias"]}
    names = chosen.get(selection, ["2.weight", "2.bias"]) if isinstance(selection, str) else ["2.weight", "2.bias"]
    params = {"module": net[2], "callable": lambda n, p: n.endswith("bias"), "0.weight": ["0.weight"]}.get(
        selection, selection) if isinstance(selection, str) else selection
    offsets = np.cumsum((0,) + layout.numels)
    index = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i, n in enumerate(layout.names) if n in names])
    f, theta = flat_objective(net, CE, X, y)
    block = hessian(f, theta)[index][:, index]
    op = HessianOperator.from_data(net, CE, DataLoader(TensorDataset(X, y), batch_size=32), params=params)
    assert op.size == len(index)
    assert _rel(op.dense(), block) < 1e-10


# ---------------------------------------------------------------- the determinism check

def _conv_bn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 8 * 8, 4)).double()


def test_the_determinism_check_names_each_cause_and_passes_in_eval_mode():
    X, y = tiny_images(n=40, seed=0, device="cpu", dtype=F64)
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    shuffled = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, generator=as_generator(0))
    dropped = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, drop_last=True, generator=as_generator(0))
    cnn = tiny_cnn(seed=0, device="cpu", dtype=F64)
    with pytest.raises(ValueError, match=r"`data`.*shuffl"):
        HessianOperator.from_data(cnn, CE, shuffled)
    with pytest.raises(ValueError, match=r"`data`.*batch"):
        HessianOperator.from_data(cnn, CE, dropped)
    dropout = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, 4)).double()
    with pytest.raises(ValueError, match="Dropout"):
        HessianOperator.from_data(dropout, CE, loader)
    with pytest.raises(ValueError, match="different losses on the same batch.*Dropout"):
        HessianOperator.from_data(dropout, CE, loader, allow_train_mode=True)
    bn = _conv_bn().train()
    with pytest.raises(ValueError, match="BatchNorm"):
        GaussNewtonOperator.from_data(bn, CE, loader)
    with pytest.raises(ValueError, match="shuffl"):
        HessianOperator.from_data(bn, CE, shuffled, allow_train_mode=True)
    for model in (cnn, dropout.eval(), bn.eval()):
        assert HessianOperator.from_data(model, CE, loader).num_data == 40
    assert HessianOperator.from_data(cnn, CE, shuffled, check_deterministic=False).num_data == 40


# ---------------------------------------------------------------- bad input

def _loader():
    net, X, y = _problem(n=20)
    return net, DataLoader(TensorDataset(X, y), batch_size=8)


NET, LOADER = _loader()
PROBES = [
    Probe(HessianOperator.from_data, dict(model=NET, loss_fn=CE, data=LOADER),
          dict(model=["net", None], loss_fn=[3], data=[[], torch.zeros(3), iter([(1, 2)]), [(torch.zeros(2, 5),)],
                                                         [{"x": torch.zeros(2, 5)}], 5],
               params=["no_such_param", [], lambda n, p: False], num_data=SIZES + [1.5], batch_size_fn=[3],
               target_key=[0], reduction=[UNKNOWN], max_batch=SIZES, method=[UNKNOWN], keep_graphs=["yes"],
               check_deterministic=[1], allow_train_mode=["no"], distributed=[True], device=["meta"], progress=[3])),
    Probe(GaussNewtonOperator.from_data, dict(model=NET, loss_fn=CE, data=LOADER),
          dict(data=[[], iter([])], params=["nothing"], num_data=SIZES, max_batch=SIZES)),
    Probe(EmpiricalFisherOperator.from_data, dict(model=NET, loss_fn=CE, data=LOADER),
          dict(data=[[], iter([])], params=["nothing"], reduction=[UNKNOWN], max_batch=SIZES)),
    Probe(EmpiricalFisherOperator, dict(model=NET, loss_fn=CE, X=torch.zeros(4, 5, dtype=F64),
                                        y=torch.zeros(4, dtype=torch.long)),
          dict(model=[None], X=[torch.zeros(3, 5, dtype=F64), "X"], params=["nothing"], reduction=[UNKNOWN])),
    Probe(split_batch, dict(batch=(torch.zeros(2), torch.zeros(2))),
          dict(batch=[{"x": torch.zeros(2)}, (torch.zeros(2),), (torch.zeros(2), [1, 2]), ({}, torch.zeros(2))]),
          named=dict(batch="data")),
    Probe(split_into_chunks, dict(batch=(torch.zeros(4, 2), torch.zeros(4)), max_batch=2), dict(max_batch=SIZES)),
]


@pytest.mark.parametrize("probe,arg,value", [c for p in PROBES for c in p.cases()])
def test_bad_input_names_the_argument(probe, arg, value):
    probe.check(arg, value)


def test_one_progress_bar_counts_every_batch_read():
    seen = []
    def progress(iterable, total=None, desc=None):
        for item in iterable:
            seen.append(desc)
            yield item
    op = HessianOperator.from_data(NET, CE, LOADER, progress=progress, keep_graphs=False)
    op @ torch.zeros(op.size, dtype=F64)
    assert seen == ["checking the data"] * 3 + ["checking again"] * 3 + ["product"] * 3
    bar = HessianOperator.from_data(NET, CE, LOADER, progress=True, keep_graphs=False)
    assert _rel(bar @ torch.ones(bar.size, dtype=F64), op @ torch.ones(op.size, dtype=F64)) < 1e-12


def test_a_batch_size_fn_must_return_a_count():
    with pytest.raises(ValueError, match="`batch_size_fn`"):
        HessianOperator.from_data(NET, CE, LOADER, batch_size_fn=lambda b: -1)
    with pytest.raises(ValueError, match="counts no samples"):
        HessianOperator.from_data(NET, CE, LOADER, batch_size_fn=lambda b: 0)


def test_unknown_options_of_the_gauss_newton_constructor_are_refused():
    with pytest.raises(TypeError, match="unknown option"):
        GaussNewtonOperator.from_data(NET, CE, LOADER, num_dat=3)
    with pytest.raises(TypeError, match="`method`"):
        GaussNewtonOperator.from_data(NET, CE, LOADER, method="forward-over-reverse")


# ---------------------------------------------------------------- two real ranks

def _sharded_products(rank, world_size, seed):
    "Rank `rank`'s uneven share of the batches, summed over ranks: products and top eigenvalues."
    net, X, y = _problem()
    batches = [(X[i:i + 9], y[i:i + 9]) for i in range(0, 70, 9)]  # 8 batches: 9 × 7 and 7
    mine = batches[split_evenly(len(batches), 3, rank)] if rank < 2 else []
    if rank == 1: mine = batches[split_evenly(len(batches), 3, 1)] + batches[split_evenly(len(batches), 3, 2)]
    op = HessianOperator.from_data(net, CE, mine, distributed=True)
    values, _ = lanczos(op, k=3, seed=seed)
    return dict(num_data=op.num_data, products=op @ _vectors(op.size), values=np.asarray(values))


def test_two_gloo_ranks_with_uneven_shares_give_the_single_process_operator():
    out = run_workers(_sharded_products, 2, 0, timeout=120.0)
    net, X, y = _problem()
    single = HessianOperator.from_model(net, CE, X, y)
    values, _ = lanczos(single, k=3, seed=0)
    for r in out:
        assert r["num_data"] == 70
        assert _rel(r["products"], single @ _vectors(single.size)) < 1e-10
        np.testing.assert_allclose(r["values"], np.asarray(values), rtol=1e-10)
    np.testing.assert_array_equal(out[0]["values"], out[1]["values"])


def test_batch_helpers():
    pair = (torch.zeros(5, 3), torch.arange(5))
    assert batch_size(pair) == 5 and batch_size((torch.zeros(4, 2), torch.tensor(1.0))) == 4
    chunks = split_into_chunks({"a": torch.zeros(5, 2), "labels": torch.arange(5), "c": torch.zeros(3)}, 2)
    assert [c["labels"].tolist() for c in chunks] == [[0, 1], [2, 3], [4]]
    assert all(c["c"].shape == (3,) for c in chunks)
    assert isinstance(HessianOperator.from_data(NET, CE, LOADER), BatchSumOperator)
