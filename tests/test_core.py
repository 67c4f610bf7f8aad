"""gradviz.core: device choice, generators, validation messages, timing."""
import pytest
import torch

from gradviz import core
from gradviz.core import (Timer, as_generator, available_devices, check_choice, check_finite, check_float, check_int,
                          check_same_length, check_tensor, check_type, default_device, resolve_device, time_call)


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


def test_resolve_device_follows_inputs(device):
    x = torch.zeros(2, device=device)
    assert resolve_device(None, x).type == device.type
    assert resolve_device("cpu", x) == torch.device("cpu")
    with pytest.raises(TypeError, match="`device`"): resolve_device(3)


def test_generators_are_reproducible_and_leave_global_state_alone():
    state = torch.random.get_rng_state()
    assert torch.equal(torch.randn(4, generator=as_generator(3)), torch.randn(4, generator=as_generator(3)))
    assert not torch.equal(torch.randn(4, generator=as_generator(3)), torch.randn(4, generator=as_generator(4)))
    assert torch.equal(torch.randn(4, generator=as_generator(None)), torch.randn(4, generator=as_generator(core.DEFAULT_SEED)))
    assert torch.equal(torch.random.get_rng_state(), state)
    g = torch.Generator()
    assert as_generator(g) is g
    with pytest.raises(ValueError, match="`seed_or_generator`"): as_generator(g, device="meta")
    with pytest.raises(TypeError, match="`seed_or_generator`"): as_generator("7")
    with pytest.raises(TypeError, match="`seed_or_generator`"): as_generator(True)
    with pytest.raises(ValueError, match="`seed_or_generator`"): as_generator(-3)


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
    (lambda: check_tensor("X", torch.zeros(2, dtype=torch.long), floating=True), TypeError, "`X` must have a floating-point dtype"),
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
    assert check_same_length(a=x, b=torch.zeros(2)) == 2


def test_timer_and_time_call():
    with Timer() as t: sum(range(1000))
    assert t.elapsed > 0
    calls = []
    timing = time_call(lambda: calls.append(1), repeat=6, warmup=2)
    assert len(calls) == 8 and len(timing.times) == 6 and timing.median >= 0
    with pytest.raises(ValueError, match="`repeat`"): time_call(lambda: None, repeat=0)
