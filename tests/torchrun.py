"""Run a script that a notebook shows, copied as a reader would copy it, under `torchrun` with two local ranks."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook_script(notebook: str, name: str) -> str:
    "The ```python block of `notebook` (under nbs/) that starts with the comment `# name`."
    cells = json.loads((ROOT / "nbs" / notebook).read_text())["cells"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return re.search(rf"```python\n(# {re.escape(name)}\n.*?)```", text, re.S).group(1)


def run_under_torchrun(notebook: str, name: str, tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    "Write the script to `tmp_path` and run it with `torchrun --standalone --nproc_per_node=2`, one thread per rank."
    (tmp_path / name).write_text(notebook_script(notebook, name))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", name],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
