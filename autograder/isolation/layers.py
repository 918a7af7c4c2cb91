"""The isolation layers: what this machine's kernel allows, what the child may read, and the bubblewrap command.

Layers, in the order they are given up when unavailable (each report lists the ones it got):

- ``namespaces``: bubblewrap, around the worker. Its children see only the system libraries, the
  interpreter, the runtime folder and the sandbox folders; no network, their own process tree.
  The grader's own files and the dataset are not in their file system at all.
- ``landlock``: the kernel refuses the child any file outside what it may read (the same list) or
  write (its own sandbox folder), any TCP bind or connect, and signals to processes outside it
  (the worker, the other children).
- ``seccomp``: no new processes or programs (fork, execve...), no sockets but Unix ones, no ptrace,
  mounts or namespaces.
- ``unprivileged-user``: a grader running as root runs each child as a user of its own (``nobody``,
  uid 65534, and the uids below it for children running at the same time): their sandbox folders,
  processes and /proc entries are out of each other's reach, and the worker's.
- ``rlimits``: address space, CPU time, file size, open files and process count; always on.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .confine import landlock_abi

LAYERS = ("namespaces", "landlock", "seccomp", "unprivileged-user", "rlimits")
NOBODY = 65534
SYSTEM_READ = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
CHILD_DISTRIBUTIONS = ("torch", "torchvision", "numpy", "pillow", "pyseccomp")  # what the child's runtime imports


@dataclass
class Isolation:
    """The layers a grading run got, and why each missing one is missing."""
    layers: list[str]
    missing: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"isolation: {', '.join(self.layers)}"
        if self.missing:
            text += "; missing: " + "; ".join(f"{k} ({v})" for k, v in self.missing.items())
        return text


@dataclass
class Runtime:
    """What every child of one grading run shares: its runtime folder, import path, readable paths,
    and the warm worker that forks them (an :class:`~autograder.isolation.worker.WorkerProxy`)."""
    folder: Path
    sys_path: list[str]
    read: list[str]  # what the child may read, with the hidden paths carved out
    hidden: list[str]
    isolation: Isolation
    device: str = "cpu"
    sandboxes: Path | None = None  # where each submission's sandbox folder is made
    note: str = ""  # what the run gave up to keep its isolation (the GPU, where CUDA does not start confined)
    worker: object = None
    uids: queue.Queue | None = None  # user ids for concurrent children, when the grader is root
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


# ----------------------------------------------------------------------------------- what the child may read
def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def grant_except(roots, hidden) -> list[str]:
    """``roots`` with every path in ``hidden`` carved out: a root holding a hidden path is replaced
    by its entries (recursively), leaving out the hidden ones."""
    granted = []
    for root in roots:
        root = os.path.realpath(root)
        if not os.path.exists(root) or any(under(root, h) for h in hidden):
            continue
        if not any(under(h, root) for h in hidden):
            granted.append(root)
        elif os.path.isdir(root):
            granted += grant_except([os.path.join(root, e) for e in sorted(os.listdir(root))], hidden)
    return granted


def python_roots() -> list[str]:
    paths = {sys.base_prefix, sys.prefix, *sysconfig.get_paths().values()}
    roots = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    return [r for r in roots if not any(under(r, o) and r != o for o in roots)]


def child_site_dirs(names=CHILD_DISTRIBUTIONS) -> list[str]:
    """The folders the distributions the child imports (and theirs, recursively) are installed in,
    wherever they are: under ``sys.prefix``, or reached through a ``.pth`` outside it (``pip install
    --user``, a layered environment)."""
    from importlib import metadata
    seen, todo, found = set(), list(names), []
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except (metadata.PackageNotFoundError, ValueError):
            continue
        found.append(os.path.realpath(dist.locate_file("")))
        todo += [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
    return list(dict.fromkeys(found))


def child_sys_path(folder: Path) -> list[str]:
    """The runtime folder, then the interpreter's own import path (standard library and
    site-packages) and the folders the child's packages are installed in; never the current folder
    or a repository the grader was started from."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    sites = set(child_site_dirs())
    keep = [p for p in sys.path if p and (any(under(os.path.realpath(p), r) for r in roots)
                                         or os.path.realpath(p) in sites)]
    return [str(folder), *dict.fromkeys(keep)]


def readable(folder: Path, hidden: list[str]) -> list[str]:
    """What a child may read: the system, the interpreter and the child's packages, and the runtime
    ``folder``, less ``hidden``."""
    roots = python_roots()
    roots += [d for d in child_site_dirs() if not any(under(d, r) for r in roots)]  # e.g. pip install --user
    return grant_except([*SYSTEM_READ, *roots], hidden) + [str(folder)]


# ----------------------------------------------------------------------------------- what the kernel allows
def unavailable(want=LAYERS) -> dict[str, str]:
    """The layers this machine cannot give (or that were not asked for), each with the reason and the fix."""
    missing = {layer: "not requested" for layer in LAYERS if layer not in want and layer != "rlimits"}
    if "namespaces" in want and not shutil.which("bwrap"):
        missing["namespaces"] = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if "landlock" in want and landlock_abi() < 1:
        missing["landlock"] = "the kernel has no Landlock (Linux 5.13+ with landlock in the lsm= list)"
    if "seccomp" in want:
        try:
            import pyseccomp  # noqa: F401
        except (ImportError, OSError) as err:
            missing["seccomp"] = f"libseccomp's Python bindings are missing ({err}): pip install pyseccomp"
    if "unprivileged-user" in want and os.geteuid() != 0:
        missing["unprivileged-user"] = "not needed: the grader itself is not root"
    return missing


def gpu_devices() -> list[str]:
    return [str(p) for p in Path("/dev").glob("nvidia*")]


def confinement(runtime: Runtime, sandbox: Path) -> dict:
    """The part of a child's job that says how it confines itself."""
    layers = runtime.isolation.layers
    landlock = None
    if "landlock" in layers:
        landlock = {"read": runtime.read + list(DEVICES) + ["/proc"],
                    "write": [str(sandbox), "/dev/null"] + (gpu_devices() if runtime.device == "cuda" else [])}
    return {"landlock": landlock, "seccomp": "seccomp" in layers, "sandbox": str(sandbox)}


# ----------------------------------------------------------------------------------- bubblewrap
def _ancestors(paths: list[str]) -> list[str]:
    """The folders above ``paths`` that none of them contains, shallowest first."""
    above = {str(parent) for p in paths for parent in Path(p).parents if str(parent) != "/"}
    return sorted((a for a in above if not any(under(a, p) for p in paths)), key=lambda a: (a.count("/"), a))


def worker_command(runtime: Runtime, python: list[str]) -> list[str]:
    """``python`` (the worker's command line), inside bubblewrap's namespaces when the run has them."""
    if "namespaces" not in runtime.isolation.layers:
        return python
    root = os.geteuid() == 0
    command = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
               "--unshare-uts", "--unshare-cgroup-try", *([] if root else ["--unshare-user"])]
    if root and "unprivileged-user" in runtime.isolation.layers:  # to give each child its user
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    read = runtime.read
    binds = [p for p in SYSTEM_READ + tuple(read) if os.path.exists(p)]
    sandboxes = str(runtime.sandboxes)
    for folder in _ancestors([*binds, sandboxes]):  # bwrap would make them 0700: nobody could pass
        command += ["--perms", "0755", "--dir", folder]
    for path in binds:
        command += ["--ro-bind", path, path]
    for path in runtime.hidden:  # a hidden path inside a bound folder is covered up
        if any(under(path, p) for p in SYSTEM_READ + tuple(read)) and os.path.exists(path):
            command += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    command += ["--proc", "/proc", "--dev", "/dev", "--bind", sandboxes, sandboxes, "--chdir", sandboxes]
    if runtime.device == "cuda":
        for dev in gpu_devices():
            command += ["--dev-bind", dev, dev]
    return command + python
