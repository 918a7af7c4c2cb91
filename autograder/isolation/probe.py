"""Preparing a grading run's isolation: the runtime folder the children import from, the warm worker, and the
strongest set of layers this machine gives, found by starting a probe child with each."""
from __future__ import annotations

import os
import queue
import shutil
from pathlib import Path

import fcnkit

from .layers import LAYERS, NOBODY, Isolation, Runtime, child_sys_path, confinement, readable, unavailable
from .supervise import Limits, make_sandbox, start_child
from .worker import WorkerError, WorkerProxy

HERE = Path(__file__).resolve().parent
GRADER = HERE.parent  # the grader's own files: never in what a child may read
RUNTIME_MODULES = (HERE / "confine.py", *(HERE / "runtime" / n for n in ("child.py", "codec.py", "steps.py")))
GIVE_UP_ORDER = ("namespaces", "unprivileged-user", "landlock", "seccomp")  # when a probe child cannot start


def make_runtime_folder(folder: Path) -> None:
    """The read-only folder the worker and its children import from, first on their path: the
    child's runtime modules (side by side, as top-level modules) and a copy of fcnkit."""
    folder.mkdir(parents=True)
    for module in RUNTIME_MODULES:
        shutil.copy(module, folder)
    shutil.copytree(Path(fcnkit.__file__).parent, folder / "fcnkit",
                    ignore=shutil.ignore_patterns("sample_data", "__pycache__"))
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def prepare(workdir: Path, hidden=(), device: str = "cpu", want=LAYERS, jobs: int = 1) -> Runtime:
    """Make the runtime folder, start the warm worker and find the strongest isolation this machine
    gives: a probe child is forked with each candidate set of layers, in the order they are given
    up, until one starts with all it was given."""
    folder = workdir / "runtime"
    make_runtime_folder(folder)
    sandboxes = workdir / "sandboxes"
    sandboxes.mkdir(mode=0o711)
    os.chmod(workdir, 0o755)
    os.chmod(sandboxes, 0o711)  # children may pass through to their own folder, not list the others
    hidden = sorted({os.path.realpath(h) for h in (GRADER, *hidden)})
    runtime = Runtime(folder, child_sys_path(folder), readable(folder, hidden), hidden, Isolation(["rlimits"]),
                      device, sandboxes)
    missing = unavailable(want)
    candidates = [layer for layer in LAYERS[:4] if layer not in missing]
    runtime.isolation = Isolation(candidates + ["rlimits"])
    why, cuda_failed = _probe(runtime, workdir)
    if cuda_failed:  # the isolation is kept, not the GPU (on a lent H200, Landlock kept CUDA from starting)
        runtime.device = "cpu"
        runtime.note = (f"the weights are evaluated on the CPU: CUDA does not start in a child confined so ({why}); "
                        f"--isolation without landlock may let it, with a weaker confinement")
        why, _ = _probe(runtime, workdir)
    while why:
        give_up = next((layer for layer in GIVE_UP_ORDER if layer in candidates), None)
        if give_up is None:
            if runtime.worker is not None:
                runtime.worker.close()
            raise RuntimeError(f"the grading child cannot start even with rlimits only: {why}")
        candidates.remove(give_up)
        missing[give_up] = f"the probe child failed with it: {why}"
        runtime.isolation = Isolation(candidates + ["rlimits"])
        why, _ = _probe(runtime, workdir)
    if os.geteuid() != 0 and "unprivileged-user" in missing and "not needed" in missing["unprivileged-user"]:
        runtime.isolation.layers.insert(-1, "unprivileged-user")
        del missing["unprivileged-user"]
    runtime.isolation.missing = {k: missing[k] for k in LAYERS if k in missing}
    if os.geteuid() == 0 and "unprivileged-user" in runtime.isolation.layers:
        runtime.uids = queue.Queue()
        for k in range(max(1, jobs) + 1):  # a user of its own for each child running at the same time (and the reference's)
            runtime.uids.put(NOBODY - k)
    return runtime


def _probe(runtime: Runtime, workdir: Path) -> tuple[str, bool]:
    """(Re)start the worker for ``runtime.isolation`` and fork a child that only confines itself (and,
    when the run evaluates on CUDA, starts CUDA): ("", False) when it did both; else why not, and whether
    it was CUDA that failed."""
    layers = runtime.isolation.layers
    if runtime.worker is not None and runtime.worker.key != WorkerProxy.key_of(layers):
        runtime.worker.close()
        runtime.worker = None
    try:
        if runtime.worker is None:
            runtime.worker = WorkerProxy(runtime, workdir)
    except (OSError, WorkerError) as err:
        runtime.worker = None
        return f"{type(err).__name__}: {err}", False
    sandbox = make_sandbox(runtime.sandboxes / "probe", NOBODY if "unprivileged-user" in layers else None)
    cuda = runtime.device == "cuda"
    try:
        child = start_child(runtime, 30, sandbox, {"probe": True, "cuda": cuda, **confinement(runtime, sandbox)},
                            Limits(), NOBODY if os.geteuid() == 0 and "unprivileged-user" in layers else None, {})
        ending = child.finish()
        child.close()
        return ending, bool(ending) and cuda
    except WorkerError as err:
        return str(err), False
    except OSError as err:
        return f"{type(err).__name__}: {err}", False
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
