"""Reference tests for gradviz.viz: house style, compact storage, kernel-free slider figures, the live Explorer."""
import base64
import io
import json
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
from PIL import Image

import gradviz.core as core
from gradviz import viz
from gradviz.viz import (FIGSIZE, PALETTE, RENDERER, Control, Explorer, HouseStyle, checkbox, compact_figure, dropdown,
                         png_bytes, setup, slider, slider_figure, small_multiples, subplots)


@pytest.fixture
def clean_style():
    "Run a test that calls `setup()` and put plotly's and matplotlib's global defaults back afterwards."
    renderer, template = pio.renderers.default, pio.templates.default
    with mpl.rc_context():
        yield
    pio.renderers.default, pio.templates.default = renderer, template


def _decode(spec) -> np.ndarray:
    "A plotly typed array (`{'dtype', 'bdata', 'shape'}`) as a NumPy array."
    a = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    return a.reshape([int(n) for n in spec["shape"].split(",")]) if "shape" in spec else a


# ---------------------------------------------------------------- house style

def test_setup_sets_renderer_template_and_rcparams(clean_style):
    style = setup()
    assert isinstance(style, HouseStyle)
    assert pio.renderers.default == RENDERER == "gradviz_mimetype+gradviz_notebook"
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


def test_setup_makes_figures_display_as_palette_pngs_under_ipython():
    "In a fresh IPython shell (a subprocess, so this test process stays shell-free) a Figure shows as a palette PNG."
    code = ("import base64, io, json\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "from matplotlib.figure import Figure\n"
            "from PIL import Image\n"
            "from gradviz.viz import png_bytes, setup\n"
            "ip = InteractiveShell.instance()\n"
            "setup()\n"
            "fig = Figure(); fig.subplots().plot([0, 1])\n"
            "data, _ = ip.display_formatter.format(fig)\n"
            "png = data['image/png']\n"
            "png = png if isinstance(png, bytes) else base64.b64decode(png)\n"
            "print(json.dumps({'mimes': sorted(data), 'mode': Image.open(io.BytesIO(png)).mode,\n"
            "                  'same': png == png_bytes(fig)}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "image/png" in got["mimes"] and "image/svg+xml" not in got["mimes"] and "application/pdf" not in got["mimes"]
    assert got["mode"] == "P" and got["same"]


def test_renderers_registered_by_setup_give_both_mime_types_from_compact_data(clean_style):
    setup()
    x = np.linspace(0, 1, 50)
    fig = go.Figure(go.Scatter(x=x, y=x ** 2))
    assert set(RENDERER.split("+")) <= set(pio.renderers)
    bundle = pio.renderers["gradviz_mimetype"].to_mimebundle(fig.to_dict())
    data = bundle["application/vnd.plotly.v1+json"]
    assert data["data"][0]["y"]["dtype"] == "f4"
    np.testing.assert_allclose(_decode(data["data"][0]["y"]), x ** 2, rtol=1e-6)
    assert set(data["layout"]["template"].get("data", {})) <= {"scatter"}
    page = pio.renderers["gradviz_notebook"].to_mimebundle(fig.to_dict())["text/html"]
    assert '"dtype":"f4"' in page and '"dtype":"f8"' not in page and "cdn.plot.ly" in page
    assert len(page) < len(pio.renderers["notebook_connected"].to_mimebundle(fig.to_dict())["text/html"])


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


# ---------------------------------------------------------------- compact storage

def _line_plot(figsize=FIGSIZE):
    fig, ax = subplots(figsize=figsize)
    for k in range(1, 6): ax.plot(np.sin(np.linspace(0, k * np.pi, 200)), label=f"k = {k}")
    ax.legend()
    return fig


def test_png_bytes_is_a_smaller_palette_png_of_the_same_size():
    fig = _line_plot()
    plain = io.BytesIO()
    fig.savefig(plain, format="png", dpi=fig.dpi, bbox_inches="tight")
    small = png_bytes(fig)
    img, ref = Image.open(io.BytesIO(small)), Image.open(io.BytesIO(plain.getvalue()))
    assert img.format == "PNG" and img.mode == "P" and len(img.getpalette()) <= 3 * 256
    assert img.size == ref.size
    assert len(small) < len(plain.getvalue())
    own_size = (round(FIGSIZE[0] * fig.dpi), round(FIGSIZE[1] * fig.dpi))
    assert Image.open(io.BytesIO(png_bytes(fig, tight=False))).size == own_size


def test_png_bytes_keeps_the_picture():
    "A palette of 256 colours is enough for a line plot: the pixels match the full-colour render closely."
    fig = _line_plot()
    plain = io.BytesIO()
    fig.savefig(plain, format="png", dpi=fig.dpi)
    ref = np.asarray(Image.open(plain).convert("RGB"), dtype=float)
    got = np.asarray(Image.open(io.BytesIO(png_bytes(fig, tight=False))).convert("RGB"), dtype=float)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 2.0


def _wave(n=500):
    x = np.linspace(0, 1, n)
    fig = go.Figure(go.Scatter(x=x, y=np.sin(20 * x), name="sin"))
    fig.update_layout(template="plotly_white")
    return fig, x


def test_compact_figure_stores_float32_typed_arrays_and_keeps_values():
    fig, x = _wave()
    d = compact_figure(fig)
    assert d["data"][0]["x"]["dtype"] == d["data"][0]["y"]["dtype"] == "f4"
    np.testing.assert_allclose(_decode(d["data"][0]["y"]), np.sin(20 * x), rtol=1e-6, atol=1e-7)
    assert len(pio.to_json(d)) < 0.5 * len(pio.to_json(fig))
    assert isinstance(fig.data[0].y, np.ndarray) and fig.data[0].y.dtype == np.float64  # the figure is untouched
    pio.from_json(json.dumps(d))  # still a valid plotly figure


def test_compact_figure_keeps_shapes_and_integers():
    d = compact_figure(go.Figure(go.Heatmap(z=np.arange(12.0).reshape(3, 4), x=np.arange(4))))
    z = d["data"][0]["z"]
    assert z["dtype"] == "f4" and z["shape"].replace(" ", "") == "3,4"
    np.testing.assert_array_equal(_decode(z), np.arange(12.0).reshape(3, 4))
    assert d["data"][0]["x"]["dtype"] in ("i4", "i1", "i2", "u1")  # small integers: never widened
    big = compact_figure({"data": [{"type": "scatter", "y": np.arange(9, dtype=np.int64) * 2**40}], "layout": {}})
    assert big["data"][0]["y"].dtype == np.int64  # would overflow int32: kept as it was


def test_compact_figure_leaves_categories_short_lists_and_out_of_range_data_alone():
    cats = ["a", "b", "c"] * 4
    tiny, huge = np.full(9, 1e-300), np.full(9, 1e39)
    d = compact_figure({"data": [{"type": "bar", "x": cats, "y": list(range(12))},
                                 {"type": "scatter", "y": tiny}, {"type": "scatter", "y": huge},
                                 {"type": "scatter", "y": [1.5, 2.5, 3.5]}], "layout": {}})
    assert d["data"][0]["x"] == cats
    assert d["data"][0]["y"]["dtype"] in ("f4", "i4")
    assert d["data"][1]["y"] is tiny and d["data"][2]["y"] is huge  # outside float32's range: untouched
    assert d["data"][3]["y"] == [1.5, 2.5, 3.5]


def test_compact_figure_compacts_nested_attributes_and_frames():
    fig = go.Figure(go.Scatter(y=np.ones(9), marker=dict(color=np.linspace(0, 1, 9)),
                               error_y=dict(array=np.full(9, 0.1))),
                    frames=[go.Frame(data=[go.Scatter(y=np.linspace(0, k, 9))], name=str(k)) for k in range(3)])
    d = compact_figure(fig)
    assert d["data"][0]["marker"]["color"]["dtype"] == "f4" and d["data"][0]["error_y"]["array"]["dtype"] == "f4"
    assert len(d["frames"]) == 3 and all(f["data"][0]["y"]["dtype"] == "f4" for f in d["frames"])
    np.testing.assert_allclose(_decode(d["frames"][2]["data"][0]["y"]), np.linspace(0, 2, 9), rtol=1e-6)
    assert [f["name"] for f in d["frames"]] == ["0", "1", "2"]


def test_compact_figure_trims_the_template_to_the_trace_types_used():
    fig, _ = _wave()
    fig.add_trace(go.Bar(y=[1, 2]))
    full = fig.to_dict()["layout"]["template"]
    d = compact_figure(fig)["layout"]["template"]
    assert len(full["data"]) > 10 and set(d["data"]) == {"scatter", "bar"}
    assert d["layout"] == full["layout"]
    no_template = compact_figure({"data": [{"type": "scatter", "y": [1, 2]}], "layout": {"title": {"text": "t"}}})
    assert no_template["layout"] == {"title": {"text": "t"}}


def test_compact_figure_bad_input():
    with pytest.raises(TypeError, match="`fig`"): compact_figure("figure")
    with pytest.raises(TypeError, match="`fig`"): compact_figure([go.Scatter()])


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
    frames = [("one", [go.Scatter(y=[1], name="p")]),
              ("two", [go.Scatter(y=[2], name="q"), go.Scatter(y=[3], name="r")])]
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


# ---------------------------------------------------------------- slider figure layout

def test_slider_layout_is_applied_last():
    fig = slider_figure(_frames(2), title="from the arguments", height=300,
                        layout=dict(title=dict(text="from layout"), legend=dict(x=0.01, y=0.99), showlegend=True,
                                    annotations=[dict(text="note", x=0, y=0, showarrow=False)]))
    assert fig.layout.title.text == "from layout" and fig.layout.height == 300
    assert fig.layout.legend.x == 0.01 and fig.layout.showlegend is True and fig.layout.annotations[0].text == "note"
    assert fig.layout.sliders[0].active == 0  # the slider itself is kept
    assert slider_figure(_frames(2), layout=dict(yaxis=dict(range=[0, 9]))).layout.yaxis.range == (0, 9)  # beats shared


@pytest.mark.parametrize("layout, exc", [(dict(no_such_key=1), ValueError), ([("title", "t")], TypeError),
                                         ("title", TypeError)])
def test_slider_bad_layout(layout, exc):
    with pytest.raises(exc, match="`layout`"): slider_figure(_frames(2), layout=layout)


def test_slider_without_background_has_only_frame_traces():
    fig = slider_figure(_frames(3), background=())
    assert len(fig.data) == 6 and [len(s.args[0]["visible"]) for s in fig.layout.sliders[0].steps] == [6, 6, 6]


# ---------------------------------------------------------------- controls

@pytest.mark.parametrize("make, kind, value", [
    (lambda: slider(1, 9), "int", 5),
    (lambda: slider(5, 60, 5), "int", 30),
    (lambda: slider(0.0, 1.0), "float", 0.5),
    (lambda: slider(0, 1.0, 0.25), "float", 0.5),
    (lambda: slider(1e-3, 1e1, log=True), "log", pytest.approx(0.1)),
    (lambda: slider(0.0, 2.0, value=0.3, costly=True), "float", 0.3),
    (lambda: dropdown(["sgd", "adam"]), "dropdown", "sgd"),
    (lambda: dropdown([1, 2, 3], value=2), "dropdown", 2),
    (lambda: checkbox(True), "checkbox", True),
    (lambda: checkbox(), "checkbox", False),
])
def test_controls_fill_in_their_defaults(make, kind, value):
    c = make()
    assert isinstance(c, Control) and c.kind == kind and c.value == value
    assert c.validated("controls['p']") == c  # validating again changes nothing


def test_control_options():
    c = slider(0.0, 1.0, 0.1, value=0.2, costly=True, label="η")
    assert (c.min, c.max, c.step, c.costly, c.label) == (0.0, 1.0, 0.1, True, "η")
    assert dropdown(("a", "b"), costly=True, label="opt").options == ("a", "b")
    assert slider(0.01, 0.25).step == 0.002 and slider(0.0, 3.0).step == 0.02  # readable default steps
    assert slider(1, 9).step == 1


@pytest.mark.parametrize("make, exc, match", [
    (lambda: slider(1.0, 0.5), ValueError, "`min` must be < `max`"),
    (lambda: slider("0", 1), TypeError, "`min` must be a real number"),
    (lambda: slider(0, float("inf")), ValueError, "`max` must be finite"),
    (lambda: slider(0, 1, value=3), ValueError, "`value` must be <= 1"),
    (lambda: slider(0.0, 1.0, value="a"), TypeError, "`value`"),
    (lambda: slider(0.0, 1.0, 0.0), ValueError, "`step` must be > 0"),
    (lambda: slider(0.0, 1.0, 2.0), ValueError, "`step` .* is larger than the range"),
    (lambda: slider(0.0, 1.0, log=True), ValueError, "`min` must be > 0 on a logarithmic slider"),
    (lambda: slider(0, 1, log="yes"), TypeError, "`log`"),
    (lambda: slider(0, 1, costly="yes"), TypeError, "`costly`"),
    (lambda: slider(0, 1, label=3), TypeError, "`label`"),
    (lambda: dropdown([]), ValueError, "`options` is empty"),
    (lambda: dropdown(["a"], value="b"), ValueError, r"`value` must be one of \['a'\]"),
    (lambda: dropdown("ab"), TypeError, "`options`"),
    (lambda: dropdown({"a": 1}), TypeError, "`options`"),
    (lambda: dropdown(["a"], costly=1), TypeError, "`costly`"),
    (lambda: checkbox("yes"), TypeError, "`value` must be bool"),
    (lambda: checkbox(True, label=["x"]), TypeError, "`label`"),
])
def test_control_bad_input_names_the_argument(make, exc, match):
    with pytest.raises(exc, match=match): make()


@pytest.mark.parametrize("spec, exc, match", [
    ((0.0, 1.0), TypeError, r"`controls\['p'\]` must be a Control made by slider\(\), dropdown\(\) or checkbox\(\)"),
    ([0.0, 1.0], TypeError, r"`controls\['p'\]` must be a Control"),
    ({"min": 0, "max": 1}, TypeError, r"`controls\['p'\]` must be a Control"),
    (["a", "b"], TypeError, r"`controls\['p'\]` must be a Control"),
    (True, TypeError, r"`controls\['p'\]` must be a Control"),
    (Control("int", min=0, max=10, step=2.5), TypeError, r"`controls\['p'\].step` must be an int"),
    (Control("float", min=1.0, max=0.0), ValueError, r"`controls\['p'\].min` must be < `controls\['p'\].max`"),
    (Control("dropdown"), ValueError, r"`controls\['p'\].options` is empty"),
    (Control("slider", 1), ValueError, r"`controls\['p'\].kind`"),
])
def test_explorer_refuses_anything_but_a_valid_control(spec, exc, match):
    with pytest.raises(exc, match=match): Explorer(lambda p: go.Figure(), {"p": spec})


def test_control_check_and_widgets():
    lr = slider(0.01, 0.25, 0.005)
    assert lr.check("lr", 0.2) == 0.2
    with pytest.raises(ValueError, match="`lr` must be <= 0.25"): lr.check("lr", 0.3)
    with pytest.raises(TypeError, match="`lr`"): lr.check("lr", "big")
    with pytest.raises(ValueError, match="`opt` must be one of"): dropdown(["a"]).check("opt", "b")
    with pytest.raises(TypeError, match="`flag`"): checkbox(True).check("flag", 1)
    w = lr.build("lr")
    assert type(w).__name__ == "FloatSlider" and w.continuous_update and w.readout_format == ".3f"
    costly = slider(1, 9, costly=True).build("n")
    assert type(costly).__name__ == "IntSlider" and costly.continuous_update is False
    assert type(slider(1e-3, 1.0, log=True).build("d")).__name__ == "FloatLogSlider"
    assert type(dropdown(["a", "b"]).build("o")).__name__ == "Dropdown"
    assert type(checkbox(True).build("c")).__name__ == "Checkbox"
    assert slider(0, 1, label="η").build("lr").description == "η"


def test_control_sweep_spans_the_range():
    assert slider(1, 9).sweep(3) == [1, 5, 9]
    assert slider(1e-3, 1e1, log=True).sweep(5) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 1e1])
    assert dropdown(["a", "b"]).sweep(3) == ["a", "b", "a"]
    assert checkbox(True).sweep(2) == [False, True]


# ---------------------------------------------------------------- explorer

def mpl_fn(a: float, n: int = 3, flag: bool = True):
    fig, ax = subplots()
    ax.plot(np.arange(n), a * np.arange(n))
    return fig


def plotly_fn(a: float, kind: str = "line"):
    return go.Figure(go.Scatter(y=[0, a], mode="lines" if kind == "line" else "markers"))


CONTROLS = {"a": slider(0.0, 1.0, 0.1), "n": slider(2, 10), "flag": checkbox(True)}


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
    ex = Explorer(plotly_fn, {"a": slider(0.0, 2.0), "kind": dropdown(["line", "markers"])})
    fig = ex.update(a=1.5, kind="markers")
    assert isinstance(fig, go.Figure) and fig.data[0].mode == "markers" and fig.data[0].y[1] == 1.5


def test_cache_hits_and_lru_eviction():
    calls = []
    def fn(a):
        calls.append(a)
        return plotly_fn(a)
    ex = Explorer(fn, {"a": slider(0, 10)}, cache_size=2)
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
    ex = Explorer(plotly_fn, {"a": slider(0, 10)}, cache_size=0)
    assert ex.update(a=1) is not ex.update(a=1)
    assert ex.cache_info().hits == 0 and ex.cache_info().currsize == 0


def test_unhashable_parameters_skip_the_cache():
    ex = Explorer(lambda a: plotly_fn(len(a)), {"a": dropdown([[1], [1, 2]])})
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
    fig = Explorer(fn, {"a": slider(0.0, 1.0)}).update()
    assert not plt.fignum_exists(fig.number) and plt.get_fignums() == before


def test_fn_must_return_a_figure():
    with pytest.raises(TypeError, match="`fn` must return"): Explorer(lambda a: 3, {"a": slider(0, 1)}).update()


@pytest.mark.parametrize("fn, controls, kw, exc, match", [
    (3, {"a": slider(0, 1)}, {}, TypeError, "`fn`"),
    (mpl_fn, [("a", slider(0, 1))], {}, TypeError, "`controls`"),
    (lambda: None, {}, dict(device=False), ValueError, "`controls` is empty"),
    (mpl_fn, {"a": slider(0, 1), "zz": slider(0, 1)}, {}, ValueError, r"`fn` does not accept \['zz'\]"),
    (lambda a, b: None, {"a": slider(0, 1)}, {}, ValueError, r"`fn` needs \['b'\]"),
    (mpl_fn, {"a": slider(0, 1), "progress": checkbox(True)}, {}, ValueError, "'progress'"),
    (mpl_fn, {"not a name": slider(0, 1)}, {}, ValueError, "identifiers"),
    (mpl_fn, {"a": slider(0, 1)}, dict(cache_size=-1), ValueError, "`cache_size`"),
    (mpl_fn, {"a": slider(0, 1)}, dict(height=10), ValueError, "`height`"),
    (mpl_fn, {"a": slider(0, 1)}, dict(progress_after=-1.0), ValueError, "`progress_after`"),
    (mpl_fn, {"a": slider(0, 1)}, dict(device="cuda"), TypeError, "`device`"),
    (mpl_fn, {"a": Control("float", min=1.0, max=0.0)}, {}, ValueError, r"`controls\['a'\].min`"),
    (mpl_fn, {"a": (0, 1)}, {}, TypeError, r"`controls\['a'\]` must be a Control"),
])
def test_explorer_bad_construction(fn, controls, kw, exc, match):
    with pytest.raises(exc, match=match): Explorer(fn, controls, **kw)


def test_kwargs_functions_take_any_control():
    ex = Explorer(lambda **kw: plotly_fn(kw["x"]), {"x": slider(0.0, 1.0)})
    assert ex.update(x=0.25).data[0].y[1] == 0.25


# ---------------------------------------------------------------- progress

def test_progress_is_passed_only_to_functions_that_ask():
    got = {}
    def with_progress(a, progress):
        got["progress"] = progress
        return plotly_fn(a)
    ex = Explorer(with_progress, {"a": slider(0.0, 1.0)})
    ex.update()
    assert got["progress"] == ex.progress
    Explorer(lambda a, **kw: (got.update(kw=kw), plotly_fn(a))[1], {"a": slider(0.0, 1.0)}).update()
    assert got["kw"] == {}


def _slow_fn(a, progress):
    for _ in progress(range(4), desc="working"):
        time.sleep(0.01)
    return plotly_fn(a)


def test_progress_bar_appears_only_after_the_delay(capsys):
    "Behaviour, not timing: a delay no run reaches shows nothing; no delay shows the bar at once."
    Explorer(_slow_fn, {"a": slider(0.0, 1.0)}, progress_after=3600.0).update()
    assert "working" not in capsys.readouterr().err
    Explorer(_slow_fn, {"a": slider(0.0, 1.0)}, progress_after=0.0).update()
    assert "working" in capsys.readouterr().err


def test_progress_bar_is_tqdm_with_the_delay():
    ex = Explorer(_slow_fn, {"a": slider(0.0, 1.0)}, progress_after=0.7)
    bar = ex.progress(range(3), desc="x")
    assert bar.delay == 0.7 and bar.total == 3 and bar.leave is False
    assert list(bar) == [0, 1, 2]


# ---------------------------------------------------------------- devices

def _fake_gpu(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu", "cuda:0"])


def test_no_device_dropdown_on_cpu_only_machine(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu"])
    assert "device" not in Explorer(lambda a, device=None: plotly_fn(a), {"a": slider(0, 1)}).controls


def test_device_dropdown_appears_with_gpu(monkeypatch):
    _fake_gpu(monkeypatch)
    seen = []
    ex = Explorer(lambda a, device=None: (seen.append(device), plotly_fn(a))[1], {"a": slider(0, 1)})
    c = ex.controls["device"]
    assert c.kind == "dropdown" and c.options == ("cpu", "cuda:0")
    ex.update(device="cpu")
    assert seen == ["cpu"]
    with pytest.raises(ValueError, match="`device` must be one of"): ex.update(device="tpu")
    assert type(ex.widget.children[0].children[-1]).__name__ == "Dropdown"


def test_device_dropdown_only_for_functions_with_a_device_parameter(monkeypatch):
    _fake_gpu(monkeypatch)
    assert "device" not in Explorer(plotly_fn, {"a": slider(0, 1)}).controls
    assert "device" not in Explorer(lambda a, device=None: plotly_fn(a), {"a": slider(0, 1)}, device=False).controls


def test_device_dropdown_forced(monkeypatch):
    monkeypatch.setattr(core, "available_devices", lambda: ["cpu"])
    ex = Explorer(lambda a, device: plotly_fn(a), {"a": slider(0, 1)}, device=True)
    assert ex.controls["device"].options == ("cpu",) and ex.params["device"] == "cpu"
    with pytest.raises(ValueError, match=r"`fn` does not accept \['device'\]"):
        Explorer(plotly_fn, {"a": slider(0, 1)}, device=True)


def test_device_dropdown_with_real_devices():
    ex = Explorer(lambda a, device=None: plotly_fn(a), {"a": slider(0, 1)})
    assert ("device" in ex.controls) == (len(core.available_devices()) > 1)


def test_explorer_computes_on_the_chosen_device(device):
    def fn(a, device=None):
        x = torch.full((3,), float(a), device=device)
        return plotly_fn(float((2 * x).sum().cpu()))
    ex = Explorer(fn, {"a": slider(0.0, 1.0)}, device=True)
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
    assert Explorer(plotly_fn, {"a": slider(0, 1)}, height=333).widget.children[1].layout.height == "333px"
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
    pbundle = Explorer(plotly_fn, {"a": slider(0, 1)})._repr_mimebundle_()
    assert "plotly" in pbundle["text/html"].lower()


# ---------------------------------------------------------------- the book's demo explorer (timed in benchmarks/)

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


def test_demo_explorer_latency_is_measured_uncached():
    ex = Explorer(_explore_gd, {"lr": slider(0.01, 0.25, 0.005, value=0.1), "steps": slider(5, 60, 5)})
    ex.update()
    timing = ex.latency(repeat=7)
    assert len(timing.times) == 7 and all(math.isfinite(t) and t >= 0 for t in timing.times)
    assert ex.cache_info() == viz.CacheInfo(hits=0, misses=1, maxsize=64, currsize=1)  # latency bypasses the cache
    fig = ex.figure
    assert ex.update(lr=0.1) is fig and ex.cache_info().hits == 1
    assert isinstance(ex.update(lr=0.2), Figure) and ex.update(lr=0.2) is not fig


def test_latency_bad_input():
    ex = Explorer(plotly_fn, {"a": slider(0.0, 1.0)})
    with pytest.raises(ValueError, match="`name`"): ex.latency(name="b")
    with pytest.raises(ValueError, match="`repeat`"): ex.latency(repeat=0)
    assert len(ex.latency(repeat=3, name="a").times) == 3



def test_compact_figure_turns_gaps_into_nan():
    "A line with None gaps (streamlines, separated segments) is stored as float32 with NaN where the gaps were."
    ys = [0.0, 1.0, None, 2.0, 3.0, None, 4.0, 5.0, 6.0]
    d = compact_figure(go.Figure(go.Scatter(x=list(range(9)), y=ys)))
    y = viz._as_numeric(d["data"][0]["y"])
    assert d["data"][0]["y"]["dtype"] == "f4" and np.isnan(y[[2, 5]]).all()
    np.testing.assert_allclose(np.delete(y, [2, 5]), [0, 1, 2, 3, 4, 5, 6])
