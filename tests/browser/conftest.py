"""Fixtures for the real-browser tests: headless Chromium, CDN requests answered from local
copies (nothing leaves 127.0.0.1), and a throwaway JupyterLab server.

What the pages ask the network for, and where the answer comes from:

| request | answered with |
|---|---|
| `https://cdn.plot.ly/plotly-*` (plotly figure HTML, plotly's notebook init) | `plotly.min.js` from the installed plotly package (its SRI hash matches) |
| `cdnjs .../require.js/*/require.min.js` (nbconvert's page head) | npm copy made by `vendor_js.py`, else an empty script |
| `unpkg .../@jupyter-widgets/html-manager@*/...` (pages with saved widget state) | npm copy made by `vendor_js.py` when require.js is real too, else an empty script |
| `cdnjs .../mathjax/2.*` (nbconvert's page head), `.../mathjax/3.*` (plotly figure HTML) | always an empty script, see below |
| `colab.research.google.com/assets/colab-badge.svg` (each chapter's "Open in Colab" badge) | `tests/browser/colab-badge.svg`, a local stand-in |
| anything else off this machine | aborted and recorded: the test that asked fails |

Stubs, honestly: an empty script switches off what it powers in that page, and nothing more.
Without MathJax, maths stays as TeX source and plotly draws label text as written; without
the widget manager, saved widget views stay blank. Neither hides a saved figure, and widget
views are not counted as figures. MathJax is always stubbed, because these
pages cannot run any single MathJax cleanly: nbconvert's template loads MathJax 2, plotly's
figure HTML loads MathJax 3 once per figure (a second start of MathJax 3 throws), and the
widget manager typesets with the MathJax 2 API (which throws against MathJax 3). Those are
page errors of the tools' templates, not of the notebooks; the site itself is built by Quarto.
"""
import importlib.util
import mimetypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NBS_DIR = ROOT / "nbs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
TIMEOUT_MS = 90_000  # generous: a loaded 2-core machine is slow to parse a 5 MB plotly.js


def notebooks() -> list[Path]:
    "Chapter notebooks, by the rule tests/test_notebooks.py uses."
    return sorted(p for p in NBS_DIR.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))


def pytest_generate_tests(metafunc):
    "A test taking `nb_path` runs once per chapter notebook, with ids relative to nbs/."
    if "nb_path" in metafunc.fixturenames:
        nbs = notebooks()
        metafunc.parametrize("nb_path", nbs, ids=[str(p.relative_to(NBS_DIR)) for p in nbs])


def _load_vendor_js():
    spec = importlib.util.spec_from_file_location("gradviz_browser_vendor_js", HERE / "vendor_js.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vendor_js = _load_vendor_js()


# --- CDN assets -------------------------------------------------------------------------

def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.exists() else None


def _in_package(pkg: Path | None, rel: str) -> Path | None:
    "A file inside an unpacked npm package; `x.min.js` falls back to `x.js` (CDNs add `.min`)."
    if pkg is None or not rel: return None
    pkg = pkg.resolve()
    for cand in (rel, rel.replace(".min.js", ".js")):
        path = (pkg / cand).resolve()
        if path.is_file() and path.is_relative_to(pkg): return path
    return None


class Assets:
    "Maps a CDN URL to a local file, or to a recorded stub; None means: not ours, block it."

    def __init__(self, vendor: Path):
        self.vendor = vendor
        self.served: dict[str, str] = {}   # asset name -> where it came from
        self.stubbed: dict[str, str] = {}  # asset name -> why an empty script was sent

    def _pkg(self, name: str) -> Path | None:
        path = self.vendor / name
        return path if path.is_dir() else None

    def has_real_requirejs(self) -> bool:
        return _in_package(self._pkg("requirejs"), "require.js") is not None

    def resolve(self, url: str):
        "(name, local path or None for a stub), or None for a URL no rule covers."
        u = urlsplit(url)
        host, path = u.hostname or "", u.path
        if host == "cdn.plot.ly" and re.fullmatch(r"/plotly[-\w.]*?(\.min)?(\.js)?", path):
            return "plotly.js", _plotly_js()
        if host == "cdnjs.cloudflare.com":
            if re.fullmatch(r"/ajax/libs/require\.js/[^/]+/require(\.min)?\.js", path):
                return "require.js", _in_package(self._pkg("requirejs"), "require.js")
            if re.fullmatch(r"/ajax/libs/mathjax/[23]\.[^/]+/.+", path):
                return "MathJax", None
        if host == "colab.research.google.com" and path == "/assets/colab-badge.svg":
            return "Colab badge", HERE / "colab-badge.svg"  # a local stand-in for the chapters' "Open in Colab" image
        if host == "unpkg.com" and (m := re.fullmatch(r"/@jupyter-widgets/html-manager@[^/]*/(.+)", path)):
            real = self.has_real_requirejs()
            return "widget manager", _in_package(self._pkg("html-manager"), m[1]) if real else None
        return None

    def note(self, name: str, path: Path | None):
        if path is not None:
            self.served.setdefault(name, str(path.parent))
        elif name == "MathJax":
            self.stubbed.setdefault(name, "never served: its versions clash on these pages, see conftest.py")
        elif name == "widget manager" and not self.has_real_requirejs():
            self.stubbed.setdefault(name, "needs a real require.js")
        else:
            self.stubbed.setdefault(name, f"no local copy: run python {HERE.relative_to(ROOT)}/vendor_js.py")


@pytest.fixture(scope="session")
def cdn_assets() -> Assets:
    "The session's CDN answers; what was stubbed is listed in the pytest summary."
    return Assets(vendor_js.vendor_dir())


_SUMMARY: list[Assets] = []


def pytest_terminal_summary(terminalreporter):
    for assets in _SUMMARY:
        if not (assets.served or assets.stubbed): continue
        terminalreporter.section("browser tests: CDN assets")
        for name, where in sorted(assets.served.items()):
            terminalreporter.write_line(f"served  {name}: {where}")
        for name, why in sorted(assets.stubbed.items()):
            terminalreporter.write_line(f"stubbed {name}: empty script ({why})")


# --- the browser --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    "Headless Debian Chromium through playwright; skips when either is missing."
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (Python) is not installed: pip install playwright "
                    "(no `playwright install`: the tests use the system Chromium)")
    exe = os.environ.get("GRADVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("Chromium not found on PATH: apt-get install chromium")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
    finally:
        pw.stop()


@dataclass
class PageLog:
    "What a page did wrong: console errors, uncaught exceptions, requests that tried to leave."
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)  # requests sent and not yet answered
    last_activity: float = field(default_factory=time.monotonic)

    def activity(self, url: str, done: bool):
        (self.pending.discard if done else self.pending.add)(url)
        self.last_activity = time.monotonic()

    def wait_quiet(self, pg, quiet_s: float = 1.0, timeout_s: float = 90) -> bool:
        "Wait until no request has been open or started for `quiet_s`; False after `timeout_s`."
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.pending and time.monotonic() - self.last_activity >= quiet_s: return True
            pg.wait_for_timeout(100)  # lets the page and its event handlers run
        return False

    def problems(self) -> list[str]:
        return ([f"console error: {m}" for m in self.console_errors]
                + [f"page error: {m}" for m in self.page_errors]
                + [f"request to a non-local host (not routed, aborted): {u}" for u in self.blocked])


def _route_offline(route, assets: Assets, log: PageLog):
    url = route.request.url
    u = urlsplit(url)
    if u.scheme in LOCAL_SCHEMES or (u.hostname or "") in LOCAL_HOSTS:
        return route.continue_()
    hit = assets.resolve(url)
    if hit is None:
        log.blocked.append(url)
        return route.abort("blockedbyclient")
    name, path = hit
    assets.note(name, path)
    headers = {"Access-Control-Allow-Origin": "*"}  # figure scripts load with crossorigin=anonymous
    if path is None:
        return route.fulfill(status=200, headers=headers, content_type="text/javascript",
                             body=f"/* {name}: stubbed, no local copy */")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js": ctype = "text/javascript"  # also for module imports of `plotly-x.min`
    return route.fulfill(status=200, headers=headers, content_type=ctype, path=str(path))


@pytest.fixture
def page(browser, cdn_assets):
    "A fresh page whose CDN requests are answered locally; yields (page, PageLog)."
    if cdn_assets not in _SUMMARY: _SUMMARY.append(cdn_assets)
    log = PageLog()
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.route("**/*", lambda route: _route_offline(route, cdn_assets, log))
    pg = ctx.new_page()
    pg.on("console", lambda m: m.type == "error" and log.console_errors.append(
        f"{m.text} ({m.location.get('url', '')}:{m.location.get('lineNumber', '')})"))
    pg.on("pageerror", lambda e: log.page_errors.append(str(e)))
    pg.on("request", lambda r: log.activity(r.url, done=False))
    pg.on("requestfinished", lambda r: log.activity(r.url, done=True))
    pg.on("requestfailed", lambda r: log.activity(r.url, done=True))
    yield pg, log
    ctx.close()


# --- JupyterLab -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    "A running JupyterLab: its URL, token and root dir (a temp dir: `add` copies notebooks in)."
    url: str
    token: str
    root: Path
    log_file: Path

    def add(self, nb: Path) -> str:
        """Copy a notebook into the server's root at its place in the project (never open the
        original) and return its path there. pyproject.toml comes along, so a closing
        `nbdev_export()` cell finds its project and writes into the copy, not into gradviz/."""
        try:
            rel = nb.resolve().relative_to(ROOT)
        except ValueError:  # a notebook from elsewhere goes to the top
            rel = Path(nb.name)
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, self.root / rel)
        shutil.copy2(ROOT / "pyproject.toml", self.root / "pyproject.toml")
        return rel.as_posix()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])


def _wait_ready(proc, url: str, token: str, log_file: Path, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                if r.status == 200: return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"JupyterLab not ready after {timeout} s:\n{log_file.read_text()[-3000:]}")


def _stop(proc, url: str, token: str):
    "Ask the server to stop (it shuts its kernels down), then signal its process group by PID."
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{url}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=10).close()
            proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None: break
        os.killpg(proc.pid, sig)  # the group is the server's own: started below with a new session
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:  # a kernel the server left behind is still in that group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory, browser):
    """JupyterLab on a free localhost port with a random token and throwaway config dirs.

    Asks for `browser` first so that a machine without Chromium skips before starting a server.

    The kernel imports `gradviz` from this checkout through PYTHONPATH; after
    `pip install -e .` that is not needed (and does no harm).
    """
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed: pip install -e '.[dev]'")
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    root.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        (base / var.lower()).mkdir()
        env[var] = str(base / var.lower())
    port, token = _free_port(), secrets.token_hex(24)
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log_file = base / "jupyterlab.log"
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(proc, url, token, log_file)
        yield Lab(url=url, token=token, root=root, log_file=log_file)
    finally:
        _stop(proc, url, token)
