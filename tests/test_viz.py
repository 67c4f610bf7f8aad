"""Reference tests for gradviz.viz: house style, kernel-free slider figures, the live Explorer."""
import math
import subprocess
import sys
import time

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from matplotlib.figure import Figure

import gradviz.core as core
from gradviz.core import Timer
from gradviz import viz
from gradviz.viz import (FIGSIZE, PALETTE, RENDERER, Control, Explorer, HouseStyle, line_figure, setup,
                         slider_figure, small_multiples, subplots)


@pytest.fixture
def clean_style():
    "Run a test that calls `setup()` and put plotly's and matplotlib's global defaults back afterwards."
    renderer, template = pio.renderers.default, pio.templates.default
    with mpl.rc_context():
        yield
    pio.renderers.default, pio.templates.default = renderer, template


# ---------------------------------------------------------------- house style

def test_setup_sets_renderer_template_and_rcparams(clean_style):
    style = setup()
    assert isinstance(style, HouseStyle)
    assert pio.renderers.default == RENDERER == "plotly_mimetype+notebook_connected"
    assert pio.templates.default == "gradviz"
    assert list(pio.templates["gradviz"].layout.colorway) == list(PALETTE)
    assert tuple(mpl.rcParams["figure.figsize"]) == FIGSIZE
    assert [c["color"] for c in mpl.rcParams["axes.prop_cycle"]] == list(PALETTE)
    assert "#0072B2" in style._repr_html_()


def test_setup_is_idempotent(clean_style):
    first = setup()
    rc = dict(mpl.rcParams)
    template = pio.templates["gradviz"].to_plotly_json()
    assert setup() == first
    assert dict(mpl.rcParams) == rc
    assert pio.templates["gradviz"].to_plotly_json() == template
    assert pio.renderers.default == RENDERER


def test_setup_renderer_none_leaves_renderer(clean_style):
    pio.renderers.default = "json"
    assert setup(renderer=None).renderer == "json"
    assert pio.renderers.default == "json"


def test_setup_bad_renderer(clean_style):
    with pytest.raises(ValueError, match="`renderer`"): setup(renderer="no-such-renderer")
    with pytest.raises(TypeError, match="`renderer`"): setup(renderer=3)


def test_setup_makes_figures_display_as_png_under_ipython():
    "In a fresh IPython shell (a subprocess, so this test process stays shell-free) a Figure gets a PNG repr."
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "from matplotlib.figure import Figure\n"
            "from gradviz.viz import setup\n"
            "ip = InteractiveShell.instance()\n"
            "setup()\n"
            "fig = Figure(); fig.subplots().plot([0, 1])\n"
            "data, _ = ip.display_formatter.format(fig)\n"
            "print(sorted(data))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'image/png'" in out.stdout


def test_import_changes_no_global_style():
    code = ("import plotly.io as pio, matplotlib as mpl\n"
            "before = (pio.templates.default, pio.renderers.default, tuple(mpl.rcParams['figure.figsize']))\n"
            "import gradviz.viz\n"
            "after = (pio.templates.default, pio.renderers.default, tuple(mpl.rcParams['figure.figsize']))\n"
            "assert before == after, (before, after)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_palette_is_hex_and_distinct():
    assert len(set(PALETTE)) == len(PALETTE) >= 6
    assert all(c.startswith("#") and len(c) == 7 for c in PALETTE)


# ---------------------------------------------------------------- static figures

def test_subplots_is_outside_pyplot():
    before = plt.get_fignums()
    fig, axes = subplots(2, 3, sharex=True)
    assert isinstance(fig, Figure) and axes.shape == (2, 3)
    assert plt.get_fignums() == before
    assert fig.get_layout_engine() is not None
    fixed, _ = subplots(layout="none")
    assert fixed.get_layout_engine() is None


@pytest.mark.parametrize("kw, exc, name", [(dict(nrows=0), ValueError, "nrows"), (dict(ncols=1.5), TypeError, "ncols")])
def test_subplots_bad_input(kw, exc, name):
    with pytest.raises(exc, match=f"`{name}`"): subplots(**kw)


def test_small_multiples_panels_and_titles():
    seen = []
    fig = small_multiples(lambda ax, s: (seen.append(s), ax.plot([0, s])), [1, 2, 3, 4, 5], ncols=3)
    assert seen == [1, 2, 3, 4, 5]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 6 and len(visible) == 5
    assert [ax.get_title() for ax in visible] == ["1", "2", "3", "4", "5"]
    assert plt.get_fignums() == []


@pytest.mark.parametrize("args, kw, exc, name", [
    ((lambda ax, s: None, []), {}, ValueError, "settings"),
    ((lambda ax, s: None, 3), {}, TypeError, "settings"),
    (("draw", [1]), {}, TypeError, "draw"),
    ((lambda ax, s: None, [1, 2]), dict(titles=["a"]), ValueError, "titles"),
    ((lambda ax, s: None, [1, 2]), dict(ncols=0), ValueError, "ncols"),
])
def test_small_multiples_bad_input(args, kw, exc, name):
    with pytest.raises(exc, match=f"`{name}`"): small_multiples(*args, **kw)


def test_line_figure_accepts_tensors_and_log_axis():
    fig = line_figure(torch.arange(4), {"a": torch.tensor([1.0, 0.1, 0.01, 0.001]), "b": [4, 3, 2, 1]},
                      title="t", x_title="k", y_title="f", log_y=True)
    assert [t.name for t in fig.data] == ["a", "b"]
    np.testing.assert_allclose(fig.data[0].y, [1.0, 0.1, 0.01, 0.001])
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "k"
    assert list(line_figure(None, {"c": [5, 6, 7]}).data[0].x) == [0, 1, 2]


@pytest.mark.parametrize("xs, ys, exc, name", [
    ([0, 1], {}, ValueError, "ys_by_label"),
    ([0, 1], [[1, 2]], TypeError, "ys_by_label"),
    ([0, 1], {"a": [1, 2, 3]}, ValueError, r"ys_by_label\['a'\]"),
    ([[0, 1]], {"a": [1]}, ValueError, "xs"),
    ([0, 1], {"a": ["x", object()]}, TypeError, r"ys_by_label\['a'\]"),
])
def test_line_figure_bad_input(xs, ys, exc, name):
    with pytest.raises(exc, match=f"`{name}`"): line_figure(xs, ys)


# ---------------------------------------------------------------- slider figures

def _frames(n=4):
    x = np.linspace(-1, 1, 11)
    return {f"a={a}": [go.Scatter(x=x, y=a * x**2, name=f"curve {a}"), go.Scatter(x=[0], y=[a], name=f"dot {a}")]
            for a in range(1, n + 1)}


def _visible_names(fig, step):
    return [tr.name for tr, v in zip(fig.data, step.args[0]["visible"]) if v]


def test_slider_steps_match_frames():
    frames = _frames(4)
    fig = slider_figure(frames, prefix="a = ", active=2)
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == 4 and slider.active == 2
    assert [s.label for s in slider.steps] == list(frames)
    for step, (label, traces) in zip(slider.steps, frames.items()):
        assert step.method == "restyle"
        assert len(step.args[0]["visible"]) == len(fig.data)
        assert _visible_names(fig, step) == [t.name for t in traces]
    assert [t.name for t in fig.data if t.visible] == ["curve 3", "dot 3"]
    assert slider.currentvalue.prefix == "a = "


def test_slider_shared_ranges_cover_every_frame():
    fig = slider_figure(_frames(4))
    ys = np.concatenate([np.asarray(t.y, float) for t in fig.data])
    xs = np.concatenate([np.asarray(t.x, float) for t in fig.data])
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert x0 < xs.min() and x1 > xs.max() and y0 < ys.min() and y1 > ys.max()
    assert y1 == pytest.approx(4 + 0.05 * 4)
    assert fig.layout.yaxis.autorange is False


def test_slider_shared_log_range_ignores_nonfinite_and_nonpositive():
    frames = {"a": go.Scatter(y=[1.0, 10.0, float("inf")]), "b": go.Scatter(y=[0.0, 1e-3, float("nan")])}
    fig = slider_figure(frames, log_y=True)
    lo, hi = fig.layout.yaxis.range
    assert fig.layout.yaxis.type == "log"
    assert lo < -3 < 1 < hi < 1.5
    assert fig.layout.xaxis.range[0] < 0 < 2 < fig.layout.xaxis.range[1]  # y-only traces: x is 0..n-1


def test_slider_explicit_and_auto_ranges():
    fig = slider_figure(_frames(2), x_range=(-3, 3), y_range=None)
    assert list(fig.layout.xaxis.range) == [-3, 3]
    assert fig.layout.yaxis.range is None
    assert list(slider_figure(_frames(2), y_range=(1, 100), log_y=True).layout.yaxis.range) == [0, 2]


def test_slider_background_always_visible_and_frames_may_differ_in_size():
    bg = go.Scatter(x=[-1, 1], y=[0, 0], name="axis")
    frames = [("one", [go.Scatter(y=[1], name="p")]), ("two", [go.Scatter(y=[2], name="q"), go.Scatter(y=[3], name="r")])]
    fig = slider_figure(frames, background=bg)
    steps = fig.layout.sliders[0].steps
    assert len(fig.data) == 4
    assert _visible_names(fig, steps[0]) == ["axis", "p"]
    assert _visible_names(fig, steps[1]) == ["axis", "q", "r"]


def test_slider_does_not_mutate_callers_traces():
    tr = go.Scatter(y=[1, 2], name="t")
    slider_figure({"a": [tr], "b": [go.Scatter(y=[3])]}, active=1)
    assert tr.visible is None


def test_slider_html_carries_every_frame():
    html = slider_figure(_frames(3)).to_html(include_plotlyjs=False, full_html=False)
    assert html.count('"restyle"') == 3 and "curve 3" in html


@pytest.mark.parametrize("frames, kw, exc, match", [
    ({}, {}, ValueError, "`frames` is empty"),
    ([], {}, ValueError, "`frames` is empty"),
    ("abc", {}, TypeError, "`frames`"),
    ([("a", go.Scatter()), "b"], {}, TypeError, "`frames`"),
    ({"a": []}, {}, ValueError, r"`frames\['a'\]`"),
    ({"a": [1, 2]}, {}, TypeError, r"`frames\['a'\]`"),
    ([("a", go.Scatter()), ("a", go.Scatter())], {}, ValueError, "duplicate labels"),
    ({"a": go.Scatter()}, dict(active=1), ValueError, "`active`"),
    ({"a": go.Scatter()}, dict(active=-1), ValueError, "`active`"),
    ({"a": go.Scatter()}, dict(x_range=(1, 0)), ValueError, "`x_range`"),
    ({"a": go.Scatter()}, dict(y_range="auto"), ValueError, "`y_range`"),
])
def test_slider_bad_input(frames, kw, exc, match):
    with pytest.raises(exc, match=match): slider_figure(frames, **kw)


# ---------------------------------------------------------------- controls

@pytest.mark.parametrize("spec, kind, value", [
    ((1, 9), "int", 5),
    ((5, 60, 5), "int", 30),
    ((0.0, 1.0), "float", 0.5),
    ((0, 1.0, 0.25), "float", 0.5),
    (["sgd", "adam"], "dropdown", "sgd"),
    (True, "checkbox", True),
    ({"min": 1e-3, "max": 1e1, "log": True}, "log", pytest.approx(0.1)),
    ({"options": [1, 2, 3], "value": 2}, "dropdown", 2),
    ({"value": False}, "checkbox", False),
    ({"min": 0.0, "max": 2.0, "value": 0.3, "costly": True}, "float", 0.3),
])
def test_control_from_spec(spec, kind, value):
    c = Control.from_spec("p", spec)
    assert c.kind == kind and c.value == value


def test_control_costly_and_continuous_update_are_the_same_flag():
    assert Control.from_spec("p", {"min": 0, "max": 1, "continuous_update": False}).costly
    assert not Control.from_spec("p", {"min": 0, "max": 1}).costly
    assert Control.from_spec("p", Control("float", min=0.0, max=1.0, costly=True)).value == 0.5


@pytest.mark.parametrize("spec, exc, match", [
    ((1.0, 0.5), ValueError, "min < max"),
    ({"min": 0, "max": 1, "value": 3}, ValueError, r"`controls\['p'\].value` must be <= 1"),
    (Control("int", min=0, max=10, step=2.5), TypeError, r"`controls\['p'\].step` must be an int"),
    ({"min": 0.0, "max": 1.0, "step": 0.0}, ValueError, r"`controls\['p'\].step`"),
    ({"min": 0.0, "max": 1.0, "step": 2.0}, ValueError, "larger than the range"),
    ({"min": 0.0, "max": 1.0, "log": True}, ValueError, "logarithmic"),
    ({"min": 0}, ValueError, "needs both"),
    ({"min": 0, "max": 1, "colour": 1}, ValueError, r"unknown key\(s\) \['colour'\]"),
    ({"value": 3}, ValueError, r"`controls\['p'\]` needs"),
    ([], ValueError, "has no options"),
    ({"options": ["a"], "value": "b"}, ValueError, r"`controls\['p'\].value` must be one of"),
    ("fast", TypeError, r"`controls\['p'\]` must be"),
    ({"min": 0, "max": 1, "costly": "yes"}, TypeError, "costly"),
    (Control("slider", 1), ValueError, "kind"),
])
def test_control_bad_spec(spec, exc, match):
    with pytest.raises(exc, match=match): Control.from_spec("p", spec)


def test_control_check_and_widgets():
    lr = Control.from_spec("lr", {"min": 0.01, "max": 0.25, "step": 0.005})
    assert lr.check("lr", 0.2) == 0.2
    with pytest.raises(ValueError, match="`lr` must be <= 0.25"): lr.check("lr", 0.3)
    with pytest.raises(TypeError, match="`lr`"): lr.check("lr", "big")
    with pytest.raises(ValueError, match="`opt` must be one of"): Control.from_spec("opt", ["a"]).check("opt", "b")
    with pytest.raises(TypeError, match="`flag`"): Control.from_spec("flag", True).check("flag", 1)
    w = lr.build("lr")
    assert type(w).__name__ == "FloatSlider" and w.continuous_update and w.readout_format == ".3f"
    costly = Control.from_spec("n", {"min": 1, "max": 9, "costly": True}).build("n")
    assert type(costly).__name__ == "IntSlider" and costly.continuous_update is False
    assert type(Control.from_spec("d", {"min": 1e-3, "max": 1.0, "log": True}).build("d")).__name__ == "FloatLogSlider"
    assert type(Control.from_spec("o", ["a", "b"]).build("o")).__name__ == "Dropdown"
    assert type(Control.from_spec("c", True).build("c")).__name__ == "Checkbox"


def test_default_float_step_is_readable():
    assert Control.from_spec("p", (0.01, 0.25)).step == 0.002
    assert Control.from_spec("p", (0.0, 3.0)).step == 0.02


# ---------------------------------------------------------------- explorer

def mpl_fn(a: float, n: int = 3, flag: bool = True):
    fig, ax = subplots()
    ax.plot(np.arange(n), a * np.arange(n))
    return fig


def plotly_fn(a: float, kind: str = "line"):
    return go.Figure(go.Scatter(y=[0, a], mode="lines" if kind == "line" else "markers"))


CONTROLS = {"a": (0.0, 1.0, 0.1), "n": (2, 10), "flag": True}


def test_update_returns_figure_and_keeps_other_params():
    ex = Explorer(mpl_fn, CONTROLS)
    assert ex.figure is None and ex.params == {"a": 0.5, "n": 6, "flag": True}
    fig = ex.update(a=0.2)
    assert isinstance(fig, Figure) and ex.figure is fig
    assert ex.params == {"a": 0.2, "n": 6, "flag": True}
    assert len(fig.axes[0].lines[0].get_xdata()) == 6
    fig2 = ex.update(n=3)
    assert ex.params["a"] == 0.2 and len(fig2.axes[0].lines[0].get_xdata()) == 3


def test_update_plotly_figure():
    ex = Explorer(plotly_fn, {"a": (0.0, 2.0), "kind": ["line", "markers"]})
    fig = ex.update(a=1.5, kind="markers")
    assert isinstance(fig, go.Figure) and fig.data[0].mode == "markers" and fig.data[0].y[1] == 1.5


def test_cache_hits_and_lru_eviction():
    calls = []
    def fn(a):
        calls.append(a)
        return plotly_fn(a)
    ex = Explorer(fn, {"a": (0, 10)}, cache_size=2)
    f1 = ex.update(a=1)
    assert ex.update(a=1) is f1
    assert ex.cache_info() == viz.CacheInfo(hits=1, misses=1, maxsize=2, currsize=1)
    ex.update(a=2); ex.update(a=1)   # 1 becomes most recent
    ex.update(a=3)                   # evicts 2
    assert ex.cache_info().currsize == 2
    ex.update(a=1); ex.update(a=2)
    assert calls == [1, 2, 3, 2]
    ex.cache_clear()
    assert ex.cache_info() == viz.CacheInfo(0, 0, 2, 0)


def test_cache_size_zero_turns_caching_off():
    ex = Explorer(plotly_fn, {"a": (0, 10)}, cache_size=0)
    assert ex.update(a=1) is not ex.update(a=1)
    assert ex.cache_info().hits == 0 and ex.cache_info().currsize == 0


def test_unhashable_parameters_skip_the_cache():
    ex = Explorer(lambda a: plotly_fn(len(a)), {"a": {"options": [[1], [1, 2]]}})
    ex.update(a=[1, 2]); ex.update(a=[1, 2])
    assert ex.cache_info().misses == 2 and ex.cache_info().currsize == 0


def test_update_rejects_unknown_and_invalid_params():
    ex = Explorer(mpl_fn, CONTROLS)
    with pytest.raises(ValueError, match="`b`, `c`"): ex.update(b=1, c=2)
    with pytest.raises(ValueError, match="`a` must be <= 1.0"): ex.update(a=2.0)
    with pytest.raises(TypeError, match="`n` must be an int"): ex.update(n=2.5)
    with pytest.raises(TypeError, match="`flag`"): ex.update(flag="yes")
    assert ex.params == {"a": 0.5, "n": 6, "flag": True}


def test_matplotlib_figures_from_pyplot_are_closed():
    def fn(a):
        fig, ax = plt.subplots()
        ax.plot([0, a])
        return fig
    before = plt.get_fignums()
    fig = Explorer(fn, {"a": (0.0, 1.0)}).update()
    assert not plt.fignum_exists(fig.number) and plt.get_fignums() == before


def test_fn_must_return_a_figure():
    with pytest.raises(TypeError, match="`fn` must return"): Explorer(lambda a: 3, {"a": (0, 1)}).update()


@pytest.mark.parametrize("fn, controls, kw, exc, match", [
    (3, {"a": (0, 1)}, {}, TypeError, "`fn`"),
    (mpl_fn, [("a", (0, 1))], {}, TypeError, "`controls`"),
    (lambda: None, {}, dict(device=False), ValueError, "`controls` is empty"),
    (mpl_fn, {"a": (0, 1), "zz": (0, 1)}, {}, ValueError, r"`fn` does not accept \['zz'\]"),
    (lambda a, b: None, {"a": (0, 1)}, {}, ValueError, r"`fn` needs \['b'\]"),
    (mpl_fn, {"a": (0, 1), "progress": True}, {}, ValueError, "'progress'"),
    (mpl_fn, {"not a name": (0, 1)}, {}, ValueError, "identifiers"),
    (mpl_fn, {"a": (0, 1)}, dict(cache_size=-1), ValueError, "`cache_size`"),
    (mpl_fn, {"a": (0, 1)}, dict(height=10), ValueError, "`height`"),
    (mpl_fn, {"a": (0, 1)}, dict(progress_after=-1.0), ValueError, "`progress_after`"),
    (mpl_fn, {"a": (0, 1)}, dict(device="cuda"), TypeError, "`device`"),
    (mpl_fn, {"a": (1, 0)}, {}, ValueError, r"`controls\['a'\]`"),
])
def test_explorer_bad_construction(fn, controls, kw, exc, match):
    with pytest.raises(exc, match=match): Explorer(fn, controls, **kw)


def test_kwargs_functions_take_any_control():
    ex = Explorer(lambda **kw: plotly_fn(kw["x"]), {"x": (0.0, 1.0)})
    assert ex.update(x=0.25).data[0].y[1] == 0.25


# ---------------------------------------------------------------- progress

def test_progress_is_passed_only_to_functions_that_ask():
    got = {}
    def with_progress(a, progress):
        got["progress"] = progress
        return plotly_fn(a)
    ex = Explorer(with_progress, {"a": (0.0, 1.0)})
    ex.update()
    assert got["progress"] == ex.progress
    Explorer(lambda a, **kw: (got.update(kw=kw), plotly_fn(a))[1], {"a": (0.0, 1.0)}).update()
    assert got["kw"] == {}


def _slow_fn(a, progress):
    for _ in progress(range(4), desc="working"):
        time.sleep(0.03)
    return plotly_fn(a)


def test_progress_bar_appears_only_after_the_delay(capsys):
    Explorer(_slow_fn, {"a": (0.0, 1.0)}).update()               # 0.12 s of work, 1 s delay: no bar
    assert "working" not in capsys.readouterr().err
    Explorer(_slow_fn, {"a": (0.0, 1.0)}, progress_after=0.0).update()
    assert "working" in capsys.readouterr().err


def test_progress_bar_is_tqdm_with_the_delay():
    ex = Explorer(_slow_fn, {"a": (0.0, 1.0)}, progress_after=0.7)
    bar = ex.progress(range(3), desc="x")
    assert bar.delay == 0.7 and bar.total == 3 and bar.leave is False
    assert list(bar) == [0, 1, 2]


# ---------------------------------------------------------------- devices

def _fake_gpu(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu", "cuda:0"])


def test_no_device_dropdown_on_cpu_only_machine(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu"])
    assert "device" not in Explorer(lambda a, device=None: plotly_fn(a), {"a": (0, 1)}).controls


def test_device_dropdown_appears_with_gpu(monkeypatch):
    _fake_gpu(monkeypatch)
    seen = []
    ex = Explorer(lambda a, device=None: (seen.append(device), plotly_fn(a))[1], {"a": (0, 1)})
    c = ex.controls["device"]
    assert c.kind == "dropdown" and c.options == ("cpu", "cuda:0")
    ex.update(device="cpu")
    assert seen == ["cpu"]
    with pytest.raises(ValueError, match="`device` must be one of"): ex.update(device="tpu")
    assert type(ex.widget.children[0].children[-1]).__name__ == "Dropdown"


def test_device_dropdown_only_for_functions_with_a_device_parameter(monkeypatch):
    _fake_gpu(monkeypatch)
    assert "device" not in Explorer(plotly_fn, {"a": (0, 1)}).controls
    assert "device" not in Explorer(lambda a, device=None: plotly_fn(a), {"a": (0, 1)}, device=False).controls


def test_device_dropdown_forced(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu"])
    ex = Explorer(lambda a, device: plotly_fn(a), {"a": (0, 1)}, device=True)
    assert ex.controls["device"].options == ("cpu",) and ex.params["device"] == "cpu"
    with pytest.raises(ValueError, match=r"`fn` does not accept \['device'\]"):
        Explorer(plotly_fn, {"a": (0, 1)}, device=True)


def test_device_dropdown_with_real_devices():
    ex = Explorer(lambda a, device=None: plotly_fn(a), {"a": (0, 1)})
    assert ("device" in ex.controls) == (len(core.available_devices()) > 1)


def test_explorer_computes_on_the_chosen_device(device):
    def fn(a, device=None):
        x = torch.full((3,), float(a), device=device)
        return plotly_fn(float((2 * x).sum().cpu()))
    ex = Explorer(fn, {"a": (0.0, 1.0)}, device=True)
    name = next((o for o in ex.controls["device"].options if o.split(":")[0] == device.type), None)
    if name is None: pytest.skip(f"{device} is not among the offered devices")
    assert ex.update(a=0.5, device=name).data[0].y[1] == 3.0


# ---------------------------------------------------------------- widgets (no front end needed)

def test_widget_layout_and_fixed_height():
    ex = Explorer(mpl_fn, CONTROLS)
    w = ex.widget
    assert type(w).__name__ == "VBox"
    controls, out = w.children
    assert type(controls).__name__ == "HBox" and type(out).__name__ == "Output"
    assert [c.description for c in controls.children] == ["a", "n", "flag"]
    fig = ex.figure
    assert out.layout.height == f"{math.ceil(fig.get_figheight() * fig.dpi) + 12}px"
    assert Explorer(plotly_fn, {"a": (0, 1)}, height=333).widget.children[1].layout.height == "333px"
    assert ex.widget is w


def test_widget_changes_go_through_the_cache():
    ex = Explorer(mpl_fn, CONTROLS)
    slider = ex.widget.children[0].children[0]
    slider.value = 0.3
    assert ex.params["a"] == pytest.approx(0.3)
    slider.value = 0.5
    assert ex.cache_info().hits == 1  # 0.5 was the starting value


def test_update_from_code_moves_the_widgets():
    ex = Explorer(mpl_fn, CONTROLS)
    sliders = ex.widget.children[0].children
    ex.update(a=0.9, n=4)
    assert sliders[0].value == pytest.approx(0.9) and sliders[1].value == 4
    assert ex.cache_info().misses == 2


def test_mimebundle_has_widget_and_static_snapshot():
    ex = Explorer(mpl_fn, CONTROLS)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].startswith("<figure><img src=\"data:image/png;base64,")
    assert bundle["text/plain"].startswith("Explorer(mpl_fn")
    pbundle = Explorer(plotly_fn, {"a": (0, 1)})._repr_mimebundle_()
    assert "plotly" in pbundle["text/html"].lower()


# ---------------------------------------------------------------- latency of the book's demo explorer

LAM = torch.tensor([1.0, 10.0], dtype=torch.float64)


def _gd_path(lr, steps, device=None):
    A = torch.diag(LAM).to(device)
    theta = torch.tensor([-1.6, 0.8], dtype=torch.float64, device=device)
    path = [theta]
    for _ in range(steps):
        theta = theta - lr * (A @ theta)
        path.append(theta)
    return torch.stack(path).cpu()


def _explore_gd(lr: float, steps: int, device=None):
    "The notebook's explorer figure: iterates over level-set ellipses, and log10 loss per iteration."
    path = _gd_path(lr, steps, device)
    loss = 0.5 * (path**2 * LAM).sum(-1)
    t = torch.linspace(0, 2 * math.pi, 121, dtype=torch.float64)
    fig, (ax1, ax2) = subplots(1, 2, figsize=(8, 3.3), layout="none")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.89, wspace=0.28)
    for c in (0.05, 0.2, 0.5, 1, 2, 4, 7, 11):
        r = (2 * c / LAM).sqrt()
        ax1.plot(r[0] * t.cos(), r[1] * t.sin(), color="0.8", lw=0.8)
    ax1.plot(path[:, 0], path[:, 1], "o-", ms=3, lw=1.2)
    ax1.set(xlim=(-2, 2), ylim=(-1.5, 1.5), xlabel="θ₁", ylabel="θ₂", title=f"η = {lr:.3f}")
    ax2.plot(loss.log10(), "o-", ms=3, lw=1.2)
    ax2.set(xlabel="iteration k", ylabel="log₁₀ f(θ_k)", ylim=(-10, 4), title=f"ηλ_max = {10 * lr:.2f}")
    for ax in (ax1, ax2): ax.locator_params(nbins=4)
    return fig


def test_demo_explorer_latency():
    ex = Explorer(_explore_gd, {"lr": {"min": 0.01, "max": 0.25, "step": 0.005, "value": 0.1}, "steps": (5, 60, 5)})
    ex.update()
    timing = ex.latency(repeat=7)
    print(f"\ndemo explorer latency (uncached update + PNG render): {timing}")
    assert len(timing.times) == 7
    assert timing.median < 1.0  # DESIGN target is 150 ms; the generous bound keeps a busy machine from failing CI
    with Timer() as t: ex.update(lr=0.1)
    assert ex.cache_info().hits >= 1 and t.elapsed < 0.05


def test_latency_bad_input():
    ex = Explorer(plotly_fn, {"a": (0.0, 1.0)})
    with pytest.raises(ValueError, match="`name`"): ex.latency(name="b")
    with pytest.raises(ValueError, match="`repeat`"): ex.latency(repeat=0)
    assert len(ex.latency(repeat=3, name="a").times) == 3

