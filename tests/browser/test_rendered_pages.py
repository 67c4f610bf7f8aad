"""Each notebook's saved outputs, rendered to HTML by nbconvert, show every figure in Chromium.

No kernel runs: this is what a reader of a static page gets from the outputs saved in the
notebook. A figure output is a code cell output holding `image/png`, `image/jpeg`,
`image/svg+xml` (nbconvert shows it as an <img>) or a plotly figure (`application/vnd.plotly.v1+json`). Each one is found in
the page at its own place (code cell k, output j) and must show a loaded, visible figure.
Widget views are not figure outputs (the widget manager may be stubbed, see conftest.py).
"""
import re

import nbformat
import pytest

pytestmark = pytest.mark.browser
PlaywrightTimeout = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").TimeoutError
HTMLExporter = pytest.importorskip("nbconvert", reason="nbconvert is not installed").HTMLExporter
from nbconvert.filters.strings import clean_html  # noqa: E402 (after the skip above)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")
TIMEOUT_MS = 90_000  # a loaded 2-core machine parses the 5 MB plotly.js slowly
DRAW_MS = 30_000     # after the page has loaded everything, figures still drawing

# For each expected figure [code cell k, output j, kind]: is it drawn, loaded and visible?
# Outputs are looked up by position, so figures drawn inside widget views never count.
FIGURES_JS = """expected => {
  const visible = el => { const r = el?.getBoundingClientRect(); return !!r && r.width > 0 && r.height > 0; };
  const cells = [...document.querySelectorAll('.jp-CodeCell')].filter(c => !c.parentElement.closest('.jp-CodeCell'));
  const drawn = ([k, j, kind]) => {
    const out = cells[k]?.querySelectorAll(
      ':scope > .jp-Cell-outputWrapper > .jp-Cell-outputArea > .jp-OutputArea-child')[j];
    if (!out) return false;
    if (kind === 'plotly') return visible(out.querySelector('.js-plotly-plot .main-svg'));
    const img = out.querySelector(kind === 'svg' ? '.jp-RenderedSVG img, .jp-RenderedSVG svg' : 'img');
    if (img?.tagName.toLowerCase() === 'svg') return visible(img);  // inline svg
    return !!img && img.complete && img.naturalWidth > 0 && visible(img);
  };
  return {code_cells: cells.length, drawn: expected.map(drawn)};
}"""


def figure_outputs(nb) -> tuple[list, int, list[str]]:
    "Saved figure outputs as [code cell k, output j, kind], the code cell count, and known problems."
    found, problems = [], []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for k, cell in enumerate(code):
        for j, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {}) if out.output_type in ("display_data", "execute_result") else {}
            if PLOTLY_MIME in data:
                found.append([k, j, "plotly"])
                if "text/html" not in data:
                    problems.append(f"code cell {k} (id {cell.get('id')}): plotly output saved without text/html, so "
                                    "a static page cannot draw it (renderer 'plotly_mimetype+notebook_connected' "
                                    "saves both)")
            elif any(m in data for m in IMAGE_MIMES):
                found.append([k, j, "image"])
            elif "image/svg+xml" in data:
                found.append([k, j, "svg"])
    return found, len(code), problems


HIGHLIGHTED = re.compile(r'<div class="\s*highlight\b')  # pygments' markup of a code cell's input


def _clean_html(element) -> str:
    """nbconvert's `clean_html`, except on pygments' highlighted input, which it writes (escaped) itself.

    nbconvert 7.17 runs every input through bleach's HTML parser, most of the export's time; on that markup bleach
    changes nothing (the pages come out byte for byte the same), so the check skips it there."""
    text = element.decode() if isinstance(element, bytes) else str(element)
    return text if HIGHLIGHTED.match(text) else clean_html(text)


def export_html(nb, name: str, dest) -> str:
    "The page nbconvert makes from the saved outputs (no execution); returns its file:// URL."
    exporter = HTMLExporter()
    exporter.register_filter("clean_html", _clean_html)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    out = dest / f"{name}.html"
    out.write_text(html, encoding="utf-8")
    return out.as_uri()


def test_rendered_page_shows_saved_figures(nb_path, tmp_path, page):
    "nb_path: one item per notebook under nbs/ (parametrised in conftest.py)."
    pg, log = page
    nb = nbformat.read(nb_path, as_version=4)
    expected, n_code, problems = figure_outputs(nb)
    pg.goto(export_html(nb, nb_path.stem, tmp_path), wait_until="load")
    # scripts load late (plotly.js, the widget manager, figures inside widget views)
    if not log.wait_quiet(pg, quiet_s=2.0, timeout_s=TIMEOUT_MS / 1000):
        problems.append(f"the page kept loading for {TIMEOUT_MS // 1000} s; open requests: {sorted(log.pending)}")
    try:  # plotly draws asynchronously once its script has run
        pg.wait_for_function(f"e => ({FIGURES_JS})(e).drawn.every(Boolean)", arg=expected, timeout=DRAW_MS)
    except PlaywrightTimeout:
        pass  # the comparison below names each missing figure
    seen = pg.evaluate(FIGURES_JS, expected)
    if seen["code_cells"] != n_code:
        problems.append(f"the page has {seen['code_cells']} code cells, the notebook {n_code}")
    missing = [f"code cell {k} output {j}: {kind} figure not drawn or not visible"
               for (k, j, kind), ok in zip(expected, seen["drawn"]) if not ok]
    if missing:
        problems.append(f"{len(expected)} figure outputs saved, {len(expected) - len(missing)} rendered")
    problems += missing + log.problems()
    assert not problems, f"{nb_path.name}:\n" + "\n".join(problems)
