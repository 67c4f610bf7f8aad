"""Bad-input probes: one valid call of a public function, then one bad value at a time.

Each chapter's test file lists its probes in `PROBES`; `tests/test_bad_input.py` runs every
(probe, argument, bad value) as one parametrised test and checks that every public function and
class of Parts 1-4 is probed or listed in the file's `UNPROBED` with a reason.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

NAN, INF = float("nan"), float("inf")
SIZES = [0, -1]  # refused by any argument that counts something
UNKNOWN = "no-such-option"  # refused by any argument that picks an option by name


@dataclass(frozen=True)
class Probe:
    "A valid call of `fn` (keyword `args`) and, per argument, the values it must refuse by naming that argument."
    fn: Callable
    args: dict[str, Any]
    bad: dict[str, list]
    named: dict[str, str] = field(default_factory=dict)  # argument -> the name the error must give, where different

    @property
    def target(self) -> str:
        "The public name the probe covers, `module.qualname`."
        fn = getattr(self.fn, "__func__", self.fn)
        return f"{fn.__module__}.{fn.__qualname__}"

    def cases(self):
        "One `(probe, argument, value)` per bad value, with a readable test id."
        for arg, values in self.bad.items():
            for i, v in enumerate(values):
                yield pytest.param(self, arg, v, id=f"{self.target.split('gradviz.')[-1]}-{arg}-{i}")

    def check(self, arg: str, value):
        "The call with `arg=value` raises `ValueError`/`TypeError` whose message names the argument in backticks."
        name = self.named.get(arg, arg)
        with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
            self.fn(**{**self.args, arg: value})
