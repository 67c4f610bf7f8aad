"""gradviz.core: device choice, one seed argument, validation messages, progress, timing."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradviz import core
from gradviz.core import (DEFAULT_SEED, Timer, Timing, as_generator, as_seed, available_devices, check_choice,
                          check_finite, check_float, check_int, check_same_length, check_tensor, check_type,
                          default_device, gpu_cell_size, numpy_rng, progress, resolve_device, synchronize, time_call)


# ---------------------------------------------------------------- devices

def test_default_device_prefers_env(monkeypatch):
    monkeypatch.setenv("GRADVIZ_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("GRADVIZ_DEVICE", "quantum")
    with pytest.raises(ValueError, match="GRADVIZ_DEVICE"): default_device()


def test_default_device_order(monkeypatch):
    monkeypatch.delenv("GRADVIZ_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(core, "_mps_available", lambda: True)
    assert default_device().type == "mps"
    monkeypatch.setattr(core, "_mps_available", lambda: False)
    assert default_device().type == "cpu"
    assert available_devices()[0] == "cpu"


def test_available_devices_lists_the_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(core, "_mps_available", lambda: False)
    assert available_devices() == ["cpu", "cuda:0", "cuda:1"]


def test_resolve_device_follows_inputs(device):
    x = torch.zeros(2, device=device)
    assert resolve_device(None, x).type == device.type
    assert resolve_device("cpu", x) == torch.device("cpu")
    assert resolve_device(torch.device("meta"), x) == torch.device("meta")
    with pytest.raises(TypeError, match="`device`"): resolve_device(3)
    with pytest.raises(ValueError, match="`device`"): resolve_device("warp-drive")


def test_resolve_device_follows_a_module(device, monkeypatch):
    monkeypatch.setenv("GRADVIZ_DEVICE", "meta")  # what `default_device()` would say: never the answer below
    assert resolve_device(None, nn.Linear(2, 1).to(device)).type == device.type
    assert resolve_device(None, "not a model", nn.Linear(2, 1).to(device)).type == device.type  # first with a device
    buffers_only = nn.Module()
    buffers_only.register_buffer("scale", torch.ones(1, device=device))
    assert resolve_device(None, buffers_only).type == device.type
    assert resolve_device(None, nn.ReLU()) == torch.device("meta")  # nothing to follow: the default
    assert resolve_device(None) == torch.device("meta")
    assert resolve_device("cpu", nn.Linear(2, 1).to(device)) == torch.device("cpu")  # an explicit choice wins


def test_gpu_cell_size(monkeypatch):
    monkeypatch.delenv("GRADVIZ_GPU_SIZE", raising=False)
    assert gpu_cell_size("cpu") == "tiny"
    assert gpu_cell_size("cuda") == "full" and gpu_cell_size(torch.device("mps")) == "full"
    monkeypatch.setenv("GRADVIZ_DEVICE", "cpu")
    assert gpu_cell_size() == "tiny"  # None follows `default_device()`
    for forced in ("full", " FULL ", "tiny"):
        monkeypatch.setenv("GRADVIZ_GPU_SIZE", forced)
        assert gpu_cell_size("cpu") == gpu_cell_size("cuda") == forced.strip().lower()
    monkeypatch.setenv("GRADVIZ_GPU_SIZE", "huge")
    with pytest.raises(ValueError, match="GRADVIZ_GPU_SIZE"): gpu_cell_size()


def test_gpu_cell_size_bad_device(monkeypatch):
    monkeypatch.delenv("GRADVIZ_GPU_SIZE", raising=False)
    with pytest.raises(TypeError, match="`device`"): gpu_cell_size(3)
    with pytest.raises(ValueError, match="`device`"): gpu_cell_size("warp-drive")


# ---------------------------------------------------------------- one seed argument

def test_generators_are_reproducible_and_leave_global_state_alone():
    state = torch.random.get_rng_state()
    assert torch.equal(torch.randn(4, generator=as_generator(3)), torch.randn(4, generator=as_generator(3)))
    assert not torch.equal(torch.randn(4, generator=as_generator(3)), torch.randn(4, generator=as_generator(4)))
    default = torch.randn(4, generator=as_generator(None))
    assert torch.equal(default, torch.randn(4, generator=as_generator(DEFAULT_SEED)))
    assert torch.equal(torch.random.get_rng_state(), state)
    g = torch.Generator()
    assert as_generator(g) is g and as_generator(g, device="cpu") is g


@pytest.mark.parametrize("call, exc, match", [
    (lambda: as_generator(torch.Generator(), device="meta"), ValueError, "`seed` is a generator on cpu"),
    (lambda: as_generator("7"), TypeError, "`seed` must be an int or a torch.Generator, got str"),
    (lambda: as_generator(True), TypeError, "`seed`"),
    (lambda: as_generator(1.0), TypeError, "`seed`"),
    (lambda: as_generator(np.random.default_rng(0)), TypeError, "`seed`"),
    (lambda: as_generator(-3), ValueError, r"`seed` must be an int in \[0, 2\*\*64\), got -3"),
    (lambda: as_generator(2**64), ValueError, r"`seed` must be an int in \[0, 2\*\*64\)"),
    (lambda: as_seed(2**70), ValueError, "`seed`"),
    (lambda: as_generator(-3, name="data_seed"), ValueError, "`data_seed`"),
])
def test_as_generator_bad_input(call, exc, match):
    with pytest.raises(exc, match=match): call()


def test_as_generator_takes_every_seed_torch_takes():
    top = torch.Generator().manual_seed(2**64 - 1).initial_seed()
    assert as_generator(2**64 - 1).initial_seed() == top and as_seed(2**64 - 1) == 2**64 - 1


def test_as_seed_passes_ints_and_draws_once_from_a_generator():
    assert as_seed(11) == 11 and as_seed(np.int64(4)) == 4 and type(as_seed(np.int64(4))) is int
    assert as_seed(None) == DEFAULT_SEED
    assert as_seed(as_generator(5)) == as_seed(as_generator(5))
    g = as_generator(5)
    first, second = as_seed(g), as_seed(g)
    assert first != second and 0 <= first < 2**62 and 0 <= second < 2**62  # one draw each: independent streams
    state = torch.random.get_rng_state()
    as_seed(as_generator(0))
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: as_seed("7"), TypeError, "`seed`"),
    (lambda: as_seed(True), TypeError, "`seed`"),
    (lambda: as_seed(-1), ValueError, "`seed`"),
    (lambda: as_seed(2.5, name="run_seed"), TypeError, "`run_seed`"),
])
def test_as_seed_bad_input(call, exc, match):
    with pytest.raises(exc, match=match): call()


def test_numpy_rng_matches_numpy_for_an_int_and_follows_a_generator():
    assert isinstance(numpy_rng(7), np.random.Generator)
    np.testing.assert_array_equal(numpy_rng(7).normal(size=5), np.random.default_rng(7).normal(size=5))
    np.testing.assert_array_equal(numpy_rng(None).normal(size=3), np.random.default_rng(DEFAULT_SEED).normal(size=3))
    g = as_generator(5)
    a, b = numpy_rng(g).normal(size=3), numpy_rng(g).normal(size=3)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, numpy_rng(as_generator(5)).normal(size=3))
    with pytest.raises(TypeError, match="`seed`"): numpy_rng("7")
    with pytest.raises(ValueError, match="`noise_seed`"): numpy_rng(-1, name="noise_seed")


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("call, exc, msg", [
    (lambda: check_int("k", 0, minimum=1), ValueError, "`k` must be >= 1"),
    (lambda: check_int("k", 9, maximum=8), ValueError, "`k` must be <= 8"),
    (lambda: check_int("k", 1.0), TypeError, "`k` must be an int"),
    (lambda: check_int("k", True), TypeError, "`k` must be an int"),
    (lambda: check_float("lr", "0.1"), TypeError, "`lr` must be a real number"),
    (lambda: check_float("lr", float("inf")), ValueError, "`lr` must be finite"),
    (lambda: check_float("lr", 0.0, minimum=0, strict=True), ValueError, "`lr` must be > 0"),
    (lambda: check_float("p", 1.5, maximum=1), ValueError, "`p` must be <= 1"),
    (lambda: check_choice("which", "mid", ["a", "b"]), ValueError, "`which` must be one of"),
    (lambda: check_type("model", 1, torch.nn.Module), TypeError, "`model` must be Module"),
    (lambda: check_tensor("X", [1, 2]), TypeError, "`X` must be a torch.Tensor"),
    (lambda: check_tensor("X", torch.zeros(2, 3), ndim=1), ValueError, "`X` must have 1 dimension"),
    (lambda: check_tensor("X", torch.zeros(2, 3), shape=(2, 4)), ValueError, r"`X` must have shape \(2, 4\)"),
    (lambda: check_tensor("X", torch.zeros(2, dtype=torch.long), floating=True), TypeError,
     "`X` must have a floating-point dtype"),
    (lambda: check_tensor("X", torch.tensor([float("nan")])), ValueError, "`X` contains non-finite"),
    (lambda: check_finite("loss", float("nan")), ValueError, "`loss` is not finite"),
    (lambda: check_same_length(X=torch.zeros(3), y=torch.zeros(2)), ValueError, "`y` has 2"),
])
def test_validation_messages_name_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg): call()


def test_validators_return_values():
    assert check_int("k", 3) == 3 and check_float("lr", 1) == 1.0 and check_choice("w", "a", "ab") == "a"
    x = torch.zeros(2, 3)
    assert check_tensor("X", x, ndim=2, shape=(None, 3), floating=True) is x
    assert check_tensor("X", torch.tensor([float("inf")]), finite=False).isinf().all()
    assert check_same_length(a=x, b=torch.zeros(2)) == 2


# ---------------------------------------------------------------- progress

def test_progress_false_returns_the_loop_itself():
    loop = range(3)
    assert progress(loop) is loop and progress(loop, False) is loop and progress(loop, None) is loop


def test_progress_true_is_a_tqdm_bar_that_goes_away(capsys):
    bar = progress(range(4), True, desc="steps")
    assert list(bar) == [0, 1, 2, 3]
    assert bar.leave is False and bar.total == 4 and bar.desc.startswith("steps")
    assert "steps" in capsys.readouterr().err
    assert progress(iter([1, 2]), True, total=2).total == 2  # no `len`: the total is given


def test_progress_callable_wraps_the_loop_with_total_and_desc():
    seen = []
    def wrapper(it, total=None, desc=None):
        seen.append((total, desc))
        return (2 * x for x in it)
    assert list(progress(range(3), wrapper, desc="sweep", total=3)) == [0, 2, 4]
    assert seen == [(3, "sweep")]


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_progress_bad_input(bad):
    with pytest.raises(TypeError, match="`progress`"): progress(range(3), bad)


# ---------------------------------------------------------------- timing (measured, never asserted against a bound)

def test_timer_and_time_call():
    t = Timer()
    assert math.isnan(t.elapsed)
    with t: sum(range(1000))
    assert math.isfinite(t.elapsed) and "Timer(elapsed=" in repr(t)
    calls = []
    timing = time_call(lambda: calls.append(1), repeat=6, warmup=2)
    assert len(calls) == 8 and len(timing.times) == 6 and min(timing.times) <= timing.median <= max(timing.times)
    with pytest.raises(ValueError, match="`repeat`"): time_call(lambda: None, repeat=0)
    with pytest.raises(ValueError, match="`warmup`"): time_call(lambda: None, warmup=-1)
    synchronize("cpu")


def test_timing_median_and_spread_on_known_numbers():
    t = Timing((0.010, 0.012, 0.011, 0.013, 0.030))
    assert t.median == 0.012
    assert t.spread == pytest.approx((0.0215 - 0.0105) / 2 / 0.012)
    assert math.isnan(Timing((1.0, 2.0)).spread)
    assert "median=12.000 ms" in repr(t)
