"""Local copies of the CDN scripts that no installed Python package ships, for the browser tests.

The pages under test ask CDNs for scripts. plotly.js comes from the plotly package; require.js
and the Jupyter widgets HTML manager exist only on the npm registry (MathJax is always
stubbed, see conftest.py).
Run this once, like `pip install`, where the npm registry is reachable:

    python tests/browser/vendor_js.py            # into $GRADVIZ_BROWSER_JS or ~/.cache/gradviz/browser-js

The tests then read the copies offline. Without them the tests still run: each missing
script is answered with an empty one, and the pytest summary lists which (see conftest.py).
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# folder name -> npm spec. Versions match what the pages request: nbconvert's lab template
# asks for require.js 2.1.10 and `@jupyter-widgets/html-manager@*` (1.x serves ipywidgets 8).
PACKAGES = {
    "requirejs": "requirejs@2.1.10",
    "html-manager": "@jupyter-widgets/html-manager@1.0.15",
}


def vendor_dir() -> Path:
    "Where the copies live: $GRADVIZ_BROWSER_JS, else ~/.cache/gradviz/browser-js."
    env = os.environ.get("GRADVIZ_BROWSER_JS")
    return Path(env) if env else Path.home() / ".cache" / "gradviz" / "browser-js"


def fetch(name: str, spec: str, dest: Path, npm: str) -> Path:
    "Download one npm package with `npm pack` and unpack its `package/` folder into dest/name."
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", tmp],
                             check=True, capture_output=True, text=True).stdout.split()
        with tarfile.open(Path(tmp) / out[-1]) as tar:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
            tar.extractall(tmp, **safe)
        target = dest / name
        if target.exists(): shutil.rmtree(target)
        shutil.move(str(Path(tmp) / "package"), target)
    return target


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = Path(argv[0]) if argv else vendor_dir()
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: install Node.js/npm (apt-get install npm) or let the tests stub these scripts")
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    for name, spec in PACKAGES.items():
        print(f"{spec} -> {fetch(name, spec, dest, npm)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
