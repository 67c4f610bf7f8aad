"""Test helper for real-process tests: which spawned workers are still alive below this process."""
import multiprocessing

try:
    import psutil
except ImportError:  # the check falls back on multiprocessing's own list of children
    psutil = None


def leftover_workers() -> list:
    "Spawned worker processes still alive below this one (zombies, already dead, do not count)."
    alive = list(multiprocessing.active_children())
    if psutil is not None:
        for p in psutil.Process().children(recursive=True):
            try:
                if "spawn_main" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE: alive.append(p)
            except psutil.NoSuchProcess:
                pass
    return alive
