"""gradviz.parallel: real processes on loopback (gloo), against single-process sums, np.array_split and math.fsum."""
import math
import os
import re
import time

import numpy as np
import pytest
import torch

from gradviz.core import as_generator
import gradviz.parallel as parallel
from gradviz.parallel import (ShardSum, WorkerError, all_reduce_sum, demo_uneven_sum, free_port, is_distributed,
                              rank_and_world, run_workers, split_evenly)
from workers import leftover_workers
from probe import INF, NAN, SIZES, UNKNOWN, Probe
from torchrun import run_under_torchrun


F64 = torch.float64
TIMEOUT = 60.0  # generous: a busy CI machine takes seconds to start each process


# ---------------------------------------------------------------- workers (top level, so spawned processes find them)

def _report(rank, world_size, delays):
    "What a rank sees of its process group, answered after `delays[rank]` seconds."
    time.sleep(delays[rank])
    grad_input = torch.full((2,), float(rank + 1), dtype=F64, requires_grad=True)
    total, count = all_reduce_sum(grad_input * 2, torch.tensor([rank], dtype=torch.int64))
    return dict(rank_and_world=rank_and_world(), distributed=is_distributed(), env=(os.environ["RANK"],
                os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"]), total=total, count=count)


def _fail(rank, world_size, failing_rank):
    if rank == failing_rank: raise ValueError(f"boom from rank {rank}")
    return all_reduce_sum(torch.ones(3))  # waits for the failing rank, which never arrives


def _exit_silently(rank, world_size):
    if rank == 1: os._exit(3)
    return all_reduce_sum(torch.ones(3))


def _sleep(rank, world_size, seconds):
    time.sleep(seconds)
    return rank


def _unpicklable(rank, world_size):
    return lambda: rank




# ---------------------------------------------------------------- sums over real ranks

def test_two_ranks_give_the_single_process_float64_sum_exactly():
    g = as_generator(0)
    exact = torch.randint(-2**20, 2**20, (101,), generator=g).to(F64) / 2**10  # sums exact in any order
    gauss = torch.randn(101, generator=g, dtype=F64)
    x = torch.stack([exact, gauss], dim=1)
    ranks = run_workers(demo_uneven_sum, 2, x, timeout=TIMEOUT)
    assert [type(r) for r in ranks] == [ShardSum, ShardSum] and [r.rank for r in ranks] == [0, 1]
    assert [(r.start, r.stop) for r in ranks] == [(0, 51), (51, 101)]
    for r in ranks:
        assert r.total.dtype == F64 and r.total.device.type == "cpu"
        assert r.total[0].item() == exact.sum().item() == math.fsum(exact.tolist())
        assert r.total[1].item() == pytest.approx(math.fsum(gauss.tolist()), rel=1e-13, abs=1e-13)
        assert torch.equal(r.partial, x[r.start:r.stop].sum(0))
    assert leftover_workers() == []


def test_results_come_in_rank_order_with_the_helpers_seeing_the_process_group():
    delays = [1.0, 0.3, 0.0]  # the last rank answers first
    out = run_workers(_report, 3, delays, timeout=TIMEOUT)
    assert [o["rank_and_world"] for o in out] == [(0, 3), (1, 3), (2, 3)]
    assert [o["distributed"] for o in out] == [True] * 3
    assert [o["env"] for o in out] == [("0", "0", "3"), ("1", "1", "3"), ("2", "2", "3")]
    for o in out:
        assert torch.equal(o["total"], torch.full((2,), 2.0 * (1 + 2 + 3), dtype=F64))
        assert not o["total"].requires_grad and o["count"].dtype == torch.int64 and o["count"].item() == 0 + 1 + 2
    assert leftover_workers() == []


def test_world_size_one_runs_and_an_unpicklable_result_is_reported():
    x = torch.arange(7, dtype=F64)
    (only,) = run_workers(demo_uneven_sum, 1, x, timeout=TIMEOUT)
    assert (only.start, only.stop, only.total.item()) == (0, 7, 21.0)
    with pytest.raises(WorkerError, match="rank 0 of 1") as info:
        run_workers(_unpicklable, 1, timeout=TIMEOUT)
    assert "pickle" in info.value.traceback.lower()
    assert leftover_workers() == []


# ---------------------------------------------------------------- failures: prompt, named, and nothing left behind

def test_a_failing_rank_is_reported_with_its_rank_and_traceback():
    with pytest.raises(WorkerError, match="rank 1 of 2 failed") as info:
        run_workers(_fail, 2, 1, timeout=TIMEOUT)  # rank 0 sits in all_reduce: it is killed, not waited for
    err = info.value
    assert isinstance(err, RuntimeError) and err.rank == 1 and err.world_size == 2
    assert "ValueError: boom from rank 1" in str(err) and "Traceback (most recent call last)" in err.traceback
    assert "_fail" in err.traceback
    assert leftover_workers() == []


def test_a_rank_that_dies_without_a_word_is_reported():
    with pytest.raises(WorkerError, match="rank 1 of 2 failed") as info:
        run_workers(_exit_silently, 2, timeout=TIMEOUT)
    assert "exited with code 3" in str(info.value)
    assert leftover_workers() == []


def test_a_hanging_worker_is_killed_at_the_timeout():
    with pytest.raises(TimeoutError, match="`timeout`=5"):
        run_workers(_sleep, 2, 600.0, timeout=5.0)
    assert leftover_workers() == []


# ---------------------------------------------------------------- the same worker under torchrun

def test_the_notebooks_torchrun_script_runs_unchanged(tmp_path):
    res = run_under_torchrun("00_foundations/06_parallel.ipynb", "sum_shards.py", tmp_path, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    expected = torch.arange(101, dtype=F64).sum().item()
    assert res.stdout.count(str(expected)) == 2, res.stdout  # the two ranks share one pipe: lines may interleave


# ---------------------------------------------------------------- helpers outside a process group

@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 101])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_split_evenly_matches_numpy_array_split(n, world_size):
    shares = [split_evenly(n, world_size, r) for r in range(world_size)]
    pieces = np.array_split(np.arange(n), world_size)
    assert [list(range(n)[s]) for s in shares] == [p.tolist() for p in pieces]


def test_outside_a_process_group_the_helpers_are_the_identity():
    assert rank_and_world() == (0, 1) and not is_distributed()
    w = torch.arange(6, dtype=F64, requires_grad=True)
    strided = w[::2] * 1.0
    total = all_reduce_sum(strided)
    assert torch.equal(total, strided.detach()) and total.is_contiguous() and not total.requires_grad
    assert total.data_ptr() != strided.data_ptr()
    a, b = all_reduce_sum(torch.ones(2), torch.zeros(3, dtype=F64))
    assert a.shape == (2,) and b.dtype == F64


def _typed_locally():
    def local(rank, world_size): return rank
    return local


PROBES = [
    Probe(split_evenly, dict(n=10, world_size=3, rank=0),
          dict(n=[-1, 2.5, "10"], world_size=SIZES + [1.5], rank=[-1, 3, 0.5])),
    Probe(run_workers, dict(fn=demo_uneven_sum, world_size=2, backend="gloo", timeout=TIMEOUT),
          dict(fn=[lambda rank, world_size: rank, _typed_locally(), "demo_uneven_sum", None],
               world_size=SIZES + [1.5], backend=[UNKNOWN, "GLOO"], timeout=[0, -1.0, NAN, INF, "60"],
               threads=SIZES + [1.5, "1"])),
]


@pytest.mark.parametrize("probe,arg,value", [c for p in PROBES for c in p.cases()])
def test_bad_input_names_the_argument(probe, arg, value):
    probe.check(arg, value)
    assert leftover_workers() == []  # refused before anything started


def test_all_reduce_sum_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="`tensors`"): all_reduce_sum()
    with pytest.raises(TypeError, match=re.escape("`tensors[1]`")): all_reduce_sum(torch.ones(1), [1.0])


@pytest.mark.skipif(torch.distributed.is_nccl_available(), reason="this torch build has NCCL")
def test_nccl_is_refused_where_torch_has_no_nccl():
    with pytest.raises(ValueError, match="`backend`"): run_workers(demo_uneven_sum, 2, backend="nccl")


def _threads(rank, world_size):
    return torch.get_num_threads(), os.environ["LOCAL_RANK"]


def test_each_rank_runs_with_the_threads_asked_for():
    assert run_workers(_threads, 3, threads=1, timeout=TIMEOUT) == [(1, "0"), (1, "1"), (1, "2")]
    assert [t for t, _ in run_workers(_threads, 2, threads=2, timeout=TIMEOUT)] == [2, 2]
    assert leftover_workers() == []


def test_free_port_gives_a_port_that_can_be_bound():
    import socket
    ports = {free_port() for _ in range(5)}
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s: s.bind(("127.0.0.1", port))


def test_nccl_needs_one_gpu_per_rank(monkeypatch):
    "With NCCL present but fewer GPUs than ranks, the refusal names both counts before any process starts."
    monkeypatch.setattr(torch.distributed, "is_backend_available", lambda backend: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"`world_size`=2 .* but 1 GPU"):
        run_workers(demo_uneven_sum, 2, torch.ones(3), backend="nccl")
    assert leftover_workers() == []
    parallel._check_gpus_per_rank(1)  # one rank, one GPU: accepted
