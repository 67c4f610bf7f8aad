"""Write README.md from nbs/index.ipynb (what `nbdev-readme` does with Quarto, which is not always available).

The README is the home page's prose and tables in order, plus its figure, saved from the notebook's output
as `nbs/images/index_figure.png`. `python tools/readme.py` rewrites both; `python tools/readme.py --check`
exits non-zero when they are out of step (the tests run the check).
"""
import base64
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX, README, FIGURE = ROOT / "nbs/index.ipynb", ROOT / "README.md", ROOT / "nbs/images/index_figure.png"
HEADER = "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, then run the script. -->\n\n"


def _link(text: str) -> str:
    "Notebook links on the home page are relative to nbs/; in the README they are relative to the root."
    return re.sub(r"\]\((\d\d_)", r"](nbs/\1", text)


def render() -> tuple[str, bytes | None]:
    "README text and the figure's PNG bytes, from the index notebook."
    cells = json.loads(INDEX.read_text())["cells"]
    parts, png = [], None
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown":
            parts.append(_link(src.strip()))
        elif png is None:
            for o in c.get("outputs", []):
                if "image/png" in o.get("data", {}):
                    png = base64.b64decode(o["data"]["image/png"])
                    parts.append(f"![{'figure'}]({FIGURE.relative_to(ROOT).as_posix()})")
                    break
    return HEADER + "\n\n".join(parts) + "\n", png


def main(check: bool = False) -> int:
    text, png = render()
    stale = README.read_text() != text if README.exists() else True
    stale |= png is not None and (not FIGURE.exists() or FIGURE.read_bytes() != png)
    if check:
        if stale: print("README.md or its figure is out of step with nbs/index.ipynb: run `python tools/readme.py`")
        return int(stale)
    README.write_text(text)
    if png is not None:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        FIGURE.write_bytes(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
