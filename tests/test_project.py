"""The project keeps its promises: README and home page in step, sidebar and chapter table honest, API documented."""
import ast
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"


def _notebooks():
    return sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))


def test_readme_is_generated_from_the_home_page():
    res = subprocess.run([sys.executable, str(ROOT / "tools/readme.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_ci_runs_the_readme_commands():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci/run").read_text()
    install = 'python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[dev]"'
    assert install + " && .venv/bin/jupyter lab nbs/index.ipynb" in readme
    assert install in ci
    assert ".venv/bin/python -m pytest" in readme and ci.rstrip().endswith(".venv/bin/python -m pytest")


def test_sidebar_lists_every_notebook_once():
    sidebar = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    listed = []
    def walk(items):
        for it in items:
            if isinstance(it, str): listed.append(it)
            else: walk(it.get("contents", []))
    walk(sidebar)
    assert sorted(listed) == _notebooks()
    sections = [it["section"] for it in sidebar if isinstance(it, dict)]
    assert len(sections) == len({Path(n).parent for n in _notebooks() if "/" in n})


def test_home_page_chapter_table_matches_the_notebooks_present():
    res = subprocess.run([sys.executable, str(ROOT / "tools/chapters.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_chapter_table_is_honest():
    readme = (ROOT / "README.md").read_text()
    rows = [r for r in readme.splitlines() if re.match(r"\| \d+ \|", r)]
    assert len(rows) == 30
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        link = re.search(r"\]\((nbs/[^)]+\.ipynb)\)", cells[1])
        status = cells[-1]
        assert status in ("ready", "coming")
        if status == "ready": assert link and (ROOT / link.group(1)).exists(), row
        else: assert link is None, f"a 'coming' chapter must not link anywhere: {row}"


def test_pyproject_config():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(cfg["tool"]["nbdev"]["tst_flags"].split()) == {"notest", "slow", "gpu"}
    torch_req = next(d for d in cfg["project"]["dependencies"] if d.startswith("torch"))
    assert "2.13.0" in SpecifierSet(torch_req[len("torch"):])
    assert not (ROOT / "settings.ini").exists()


MODULES = ["gradviz.core", "gradviz.autodiff", "gradviz.linalg", "gradviz.viz", "gradviz.data", "gradviz.parallel",
           "gradviz.report"]


@pytest.mark.parametrize("name", MODULES)
def test_public_api_is_documented(name):
    mod = importlib.import_module(name)
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("path", sorted((ROOT / "gradviz").rglob("*.py")), ids=lambda p: p.name)
def test_library_never_hard_codes_a_device(path):
    src = path.read_text()
    assert ".cuda()" not in src
    assert not re.search(r"device\s*=\s*['\"]cuda", src)
    assert "torch.manual_seed(" not in src, "library code must not touch the global RNG"


def _exporting_notebooks():
    "(module name, notebook path) for every notebook with a `#| default_exp`."
    import json
    out = []
    for nb in NBS.rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts: continue
        for cell in json.loads(nb.read_text())["cells"]:
            m = re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
            if m: out.append((f"gradviz.{m.group(1)}", nb)); break
    return sorted(out)


@pytest.mark.parametrize("name, nb", _exporting_notebooks(), ids=lambda x: str(x).split("/")[-1])
def test_every_public_definition_is_shown_with_its_docs(name, nb):
    "Each exported function and class has a `show_doc` cell in the notebook that defines it."
    import json
    mod = importlib.import_module(name)
    src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
    missing = [a for a in mod.__all__ if (inspect.isfunction(getattr(mod, a)) or inspect.isclass(getattr(mod, a)))
               and getattr(getattr(mod, a), "__module__", name) == name and f"show_doc({a}" not in src]
    assert not missing, f"{nb.name}: no show_doc for {missing}"


@pytest.mark.parametrize("name, nb", _exporting_notebooks(), ids=lambda x: str(x).split("/")[-1])
def test_the_summary_is_one_line_so_the_package_docstring_stays_bare(name, nb):
    "A wrapped `>` summary makes the module docstring long enough for nbdev to list it in `gradviz/__init__.py`."
    import json
    title = "".join(json.loads(nb.read_text())["cells"][0]["source"]).splitlines()
    assert sum(line.startswith(">") for line in title) == 1, f"{nb.name}: the `>` summary must be exactly one line"
    init = ast.get_docstring(ast.parse((ROOT / "gradviz/__init__.py").read_text()))
    assert init is None or "Modules:" not in init


# ---------------------------------------------------------------- one convention each (CONTRIBUTING.md)
def _exported_modules() -> list[str]:
    return [name for name, _ in _exporting_notebooks()]


def _public_callables(name: str):
    "(qualified name, callable) for every exported function and class, and the public methods of those classes."
    mod = importlib.import_module(name)
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if getattr(obj, "__module__", None) != name: continue
        if inspect.isfunction(obj): yield f"{name}.{attr}", obj
        elif inspect.isclass(obj):
            yield f"{name}.{attr}", obj
            for m, f in vars(obj).items():
                if isinstance(f, (staticmethod, classmethod)): f = f.__func__
                if inspect.isfunction(f) and not m.startswith("_"): yield f"{name}.{attr}.{m}", f


def _signature(fn):
    try: return inspect.signature(fn)
    except (TypeError, ValueError): return None


def _top_level_args(s: str) -> list[str]:
    "The comma-separated arguments of a type's brackets, nested brackets kept whole: 'a,b[c,d]' -> ['a', 'b[c,d]']."
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0: out, cur = out + [cur], ""
        else: cur += ch
    return out + [cur]


TUPLE_RETURNS_OK = {  # tuples kept where torch has them: (eigenvalues, eigenvectors), (U, S, Vh), (value, grad)
}


@pytest.mark.parametrize("name", _exported_modules())
def test_signatures_follow_the_conventions(name):
    "Randomness through one `seed` (int or torch.Generator), `device=None`, `progress=False`, no bare tuples of 3+."
    problems = []
    for qual, fn in _public_callables(name):
        sig = _signature(fn)
        if sig is None: continue
        for p in sig.parameters.values():
            ann = str(p.annotation)
            if p.name in ("generator", "rng", "gen") or "np.random.Generator" in ann or "numpy.random" in ann:
                problems.append(f"{qual}: parameter `{p.name}`: randomness comes through `seed` (an int or a torch.Generator)")
            if p.name == "seed" and "Generator" not in ann:
                problems.append(f"{qual}: `seed` must accept a torch.Generator (annotation `int | torch.Generator`), got {ann!r}")
            if p.name == "device" and p.default is not None and p.default is not p.empty:
                problems.append(f"{qual}: `device` must default to None (follow the inputs), got {p.default!r}")
            if p.name == "progress" and (p.default is not False or "Callable" not in ann):
                problems.append(f"{qual}: `progress` must be `bool | Callable = False`, got {ann!r} = {p.default!r}")
        ret = str(sig.return_annotation)
        m = re.match(r"tuple\[(.*)\]$", ret.replace(" ", ""))
        if m and qual not in TUPLE_RETURNS_OK and len(_top_level_args(m.group(1))) >= 3:
            problems.append(f"{qual}: returns a bare tuple {ret}; return a frozen dataclass with named fields")
        m = re.match(r"dict\[(.*)\]$", ret.replace(" ", ""))
        if m and any(v.startswith(("tuple[", "Tuple[")) for v in _top_level_args(m.group(1))[1:]):
            problems.append(f"{qual}: returns a dict of tuples {ret}; return a frozen dataclass")
    assert not problems, "\n".join(problems)


def test_gpu_cell_runner_reports_each_gpu_cell(tmp_path):
    "tools/run_gpu_cells.py runs a notebook top to bottom, skips `notest` cells and reports the gpu cells' results."
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 2"),
        nbformat.v4.new_code_cell("#| notest\nraise SystemExit('a notest cell must not run')"),
        nbformat.v4.new_code_cell("#| gpu\nfrom gradviz.core import gpu_cell_size\nprint(gpu_cell_size(), x * 21)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    res = subprocess.run([sys.executable, str(ROOT / "tools/run_gpu_cells.py"), str(path), "--size", "tiny",
                          "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    import json
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["cell"] for c in report["cells"]] == [2] and report["cells"][0]["output"] == "tiny 42"
    assert "tiny 42" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- what the notebooks save (CONTRIBUTING.md, "Weight")
MAX_NOTEBOOK_BYTES = 1_000_000
MAX_MEAN_NOTEBOOK_BYTES = 500_000  # the book grows by chapters; its weight per notebook stays bounded


def test_notebooks_are_light():
    "No notebook over 1 MB with its saved outputs, and 0.5 MB per notebook on average over the book."
    sizes = {nb: (NBS / nb).stat().st_size for nb in _notebooks()}
    heavy = {nb: f"{s / 1e6:.2f} MB" for nb, s in sizes.items() if s > MAX_NOTEBOOK_BYTES}
    assert not heavy, f"notebooks over {MAX_NOTEBOOK_BYTES / 1e6:g} MB: {heavy}"
    mean = sum(sizes.values()) / len(sizes)
    assert mean < MAX_MEAN_NOTEBOOK_BYTES, f"the book averages {mean / 1e6:.2f} MB per notebook"


def test_notebooks_save_no_widget_state():
    "Widget state and bare widget outputs (finished progress bars) are not saved; an Explorer keeps its snapshot."
    import json
    problems = []
    for name in _notebooks():
        nb = json.loads((NBS / name).read_text())
        if "widgets" in nb.get("metadata", {}): problems.append(f"{name}: saved widget state")
        for i, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                    problems.append(f"{name}: cell {i} saved a widget view (run it with tools/run_notebooks.py)")
    assert not problems, "\n".join(problems)


def test_github_workflows_run_the_ci_job_and_publish_the_book():
    "A fork gets CI (the same job as .ci/run) and a published book (Quarto from the saved outputs)."
    wf = ROOT / ".github" / "workflows"
    test, deploy = yaml.safe_load((wf / "test.yaml").read_text()), yaml.safe_load((wf / "deploy.yaml").read_text())
    steps = [s.get("run", "") for s in test["jobs"]["test"]["steps"]]
    assert any(s.strip() == "bash .ci/run" for s in steps)
    assert "download.pytorch.org/whl/cpu" in test["jobs"]["test"]["env"]["PIP_INDEX_URL"]
    build = [s.get("run", "") + s.get("uses", "") for s in deploy["jobs"]["build"]["steps"]]
    assert any("quarto-actions/setup" in s for s in build) and any(s.strip() == "nbdev-docs" for s in build)
    assert any("torch==2.13.0" in s and '".[dev]"' in s for s in build)


def test_every_notebook_opens_in_colab():
    "Each notebook but the home page has an 'Open in Colab' badge and a guarded install cell (tools/colab.py)."
    res = subprocess.run([sys.executable, str(ROOT / "tools/colab.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


FOUNDATIONS = {"gradviz.core", "gradviz.autodiff", "gradviz.linalg", "gradviz.viz", "gradviz.data", "gradviz.parallel",
               "gradviz.report"}
CHAPTERS = [name for name in _exported_modules() if name not in FOUNDATIONS]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_exports_its_figures_and_explorer_and_tests_them(name):
    "A chapter's figures (`plot_*`, `*_figure`) and its `explore_*()` are exported, and its test file calls each one."
    mod = importlib.import_module(name)
    functions = [a for a in mod.__all__ if inspect.isfunction(getattr(mod, a))]
    figures = [a for a in functions if a.startswith("plot_") or a.endswith("_figure")]
    explorers = [a for a in functions if a.startswith("explore_")]
    assert figures, f"{name} exports no plot_* or *_figure function"
    assert explorers, f"{name} exports no explore_* function"
    test_file = ROOT / "tests" / f"test_{name.split('.', 1)[1].replace('.', '_')}.py"
    assert test_file.exists(), f"{name} has no test file {test_file.name}"
    src = test_file.read_text()
    untested = [f for f in figures + explorers if not re.search(rf"\b{f}\(", src)]
    assert not untested, f"{test_file.name} never calls {untested}"


# ---------------------------------------------------------------- code and notebooks read the same way everywhere
def _package_files() -> list[Path]:
    return sorted(p for p in (ROOT / "gradviz").rglob("*.py") if p.name != "_modidx.py")


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: p.relative_to(ROOT / "gradviz").as_posix())
def test_package_lines_are_short_and_one_statement_each(path):
    "At most 120 characters a line (the generated docstring and `__all__` aside), and no `;`-joined statements."
    import io
    import tokenize
    text = path.read_text(encoding="utf-8")
    long = [i for i, line in enumerate(text.split("\n"), 1) if i > 2 and "__all__" not in line and len(line) > 120]
    semis = [t.start[0] for t in tokenize.generate_tokens(io.StringIO(text).readline)
             if t.type == tokenize.OP and t.string == ";"]
    assert not long and not semis, f"lines over 120 characters: {long}; ';' on lines {semis}"


@pytest.mark.parametrize("nb", [n for n in _notebooks() if n != "index.ipynb"])
def test_notebook_cells_follow_the_lesson_rhythm(nb):
    "At most two public definitions per exported cell, each soon shown with its docs: never three show_doc cells in a row."
    import ast
    import json
    cells, problems, run = json.loads((NBS / nb).read_text())["cells"], [], set()
    for i, cell in enumerate(cells):
        src = "".join(cell["source"])
        shown = re.fullmatch(r"show_doc\(([\w]+)[^\n]*\)\s*", src) if cell["cell_type"] == "code" else None
        run = run | {shown.group(1)} if shown else set()  # a class and its methods count once
        if len(run) == 3 and shown: problems.append(f"cell {i}: three show_doc cells in a row")
        if cell["cell_type"] == "code" and src.startswith("#| export"):
            body = "\n".join(l for l in src.splitlines() if not l.startswith("#|"))
            defs = [n.name for n in ast.parse(body).body
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
            if len(defs) > 2: problems.append(f"cell {i}: {len(defs)} public definitions {defs}")
    assert not problems, "\n".join(problems)


def test_no_wall_clock_assertions():
    "Timings live in benchmarks/: no test or notebook asserts a duration (they fail on a busy machine)."
    pattern = re.compile(r"assert[^\n]*\b(latency|elapsed|secs?|seconds|wall\w*|(lat|timing|t)\.median)\b[^\n,]*?\s<=?\s*[0-9]")
    files = [p for p in (ROOT / "tests").rglob("*.py") if p.name != "test_project.py"] + list(NBS.rglob("*.ipynb"))
    timed = [str(p.relative_to(ROOT)) for p in files if ".ipynb_checkpoints" not in p.parts
             and pattern.search(p.read_text(errors="ignore"))]
    assert not timed, f"wall-clock assertions in {timed}"


def test_the_readme_library_examples_run():
    "The README's library section runs as written (its code blocks, in order, in one namespace)."
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## As a library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    namespace = {}
    for block in blocks: exec(compile(block.replace("progress=True", "progress=False"), "README.md", "exec"), namespace)
    assert namespace["report"].num_data == 400 and len(namespace["rows"]) == 4  # 3 layers and the whole
    np_top = namespace["top"].cpu().numpy()
    assert abs(np_top - namespace["eigenvalues"].cpu().numpy()).max() < 1e-4 * abs(np_top).max()
