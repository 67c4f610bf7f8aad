"""Give every notebook of the book an "Open in Colab" badge and a first cell that installs gradviz there.

    python tools/colab.py           # add or refresh the badge and the install cell in every notebook under nbs/
    python tools/colab.py --check   # exit 1 (and say which) if any notebook lacks them or has a stale link

The badge goes at the end of the title cell and links to the notebook on the main branch. The install
cell is hidden from the website (`#| hide`) and does nothing outside Colab, so the book's own runs and
tests are unaffected; in Colab it installs gradviz from the repository before the chapter's imports.
The home page (index.ipynb) gets neither: it has no code to run.
"""
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
REPO = "gradviz/gradviz"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
MARK = "# In Google Colab, install gradviz first"
INSTALL = f"""#| hide
{MARK} (this cell does nothing anywhere else).
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/{REPO}"], check=True)"""


def badge(path: Path) -> str:
    "The badge line linking to `path` on the main branch."
    return f"{BADGE}(https://colab.research.google.com/github/{REPO}/blob/main/{path.relative_to(ROOT).as_posix()})"


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def notebooks() -> list[Path]:
    return sorted(p for p in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
                  and not p.name.startswith("_") and p.name != "index.ipynb")


def problems(nb: dict, path: Path) -> list[str]:
    "What is missing or stale in one notebook."
    cells, out = nb["cells"], []
    title = "".join(cells[0]["source"]) if cells and cells[0]["cell_type"] == "markdown" else ""
    if badge(path) not in title: out.append("no up-to-date Colab badge in the title cell")
    install = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and MARK in "".join(c["source"])]
    if install != [1]: out.append("the Colab install cell is missing or not right after the title")
    elif "".join(cells[1]["source"]) != INSTALL: out.append("the Colab install cell is stale")
    return out


def fix(nb: dict, path: Path) -> dict:
    "The notebook with the badge and install cell in place (idempotent)."
    cells = nb["cells"]
    title = "".join(cells[0]["source"])
    lines = [l for l in title.split("\n") if not l.startswith(BADGE)]
    cells[0]["source"] = _lines("\n".join(lines).rstrip("\n") + "\n\n" + badge(path))
    cells[:] = [c for c in cells if not (c["cell_type"] == "code" and MARK in "".join(c["source"]))]
    cells.insert(1, {"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8], "metadata": {},
                     "outputs": [], "source": _lines(INSTALL)})
    return nb


def main(argv=None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    bad = {}
    for path in notebooks():
        nb = json.loads(path.read_text())
        if check:
            if p := problems(nb, path): bad[path.relative_to(ROOT).as_posix()] = p
        elif problems(nb, path):
            path.write_text(json.dumps(fix(nb, path), indent=1, ensure_ascii=False) + "\n")
            print(f"updated {path.relative_to(ROOT)}")
    for name, p in bad.items(): print(f"{name}: {'; '.join(p)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
