"""Every public function and class of Parts 1-7 refuses bad input with an error naming the argument."""
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

PARTS = ("curvature", "dynamics", "rl", "alignment", "representation", "bilevel", "distributed", "learned", "generation")
TESTS = sorted(p.stem for p in Path(__file__).parent.glob("test_*.py") if p.stem.split("_")[1] in PARTS)


def _tables(attr):
    return {name: getattr(importlib.import_module(name), attr, {} if attr == "UNPROBED" else []) for name in TESTS}


PROBES = [p for probes in _tables("PROBES").values() for p in probes]


@pytest.mark.parametrize("probe,arg,value", [c for p in PROBES for c in p.cases()])
def test_refuses_bad_input(probe, arg, value):
    probe.check(arg, value)


def _public(module):
    "Functions with arguments and classes that are not plain records, by qualified name."
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) and inspect.signature(obj).parameters:
            yield f"{module.__name__}.{name}"
        elif inspect.isclass(obj) and not dataclasses.is_dataclass(obj) and not issubclass(obj, tuple):
            yield f"{module.__name__}.{name}"


def _modules():
    import gradviz
    root = Path(gradviz.__file__).parent
    return [importlib.import_module(f"gradviz.{part}.{p.stem}")
            for part in PARTS for p in sorted((root / part).glob("*.py")) if p.stem != "__init__"]


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_every_public_function_is_probed(module):
    probed = {p.target for p in PROBES}
    unprobed = {f"{module.__name__}.{k}" for table in _tables("UNPROBED").values() for k in table}
    missing = [n for n in _public(module) if n not in probed and n not in unprobed]
    assert not missing, f"no bad-input probe (add to PROBES, or to UNPROBED with a reason): {missing}"
