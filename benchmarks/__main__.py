"`python -m benchmarks [--quick] [--threads N] [--repeat R] [--device D]` runs every benchmark module."
from . import run_all

if __name__ == "__main__":
    for name, path in run_all().items(): print(f"{name}: wrote {path}")
