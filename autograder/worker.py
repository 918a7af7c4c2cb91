"""Runs inside the grading sandbox (a child process): executes a submission's definitions, then the
checks, writing one JSON line per check as soon as it is known. ``python -m autograder.worker JOB``.

The parent (autograder.grade) sets the memory limit and the wall clock; here an audit hook refuses
network access, new processes, and writes outside the sandbox folder, and each check gets an alarm.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import numpy as np
import torch

import fcnkit
from fcnkit import data, metrics, train, vgg, viz  # noqa: F401  (importable by submissions offline)
from autograder import checks
from autograder.rubric import ITEMS

FCNKIT_MODULES = (fcnkit, vgg, data, metrics, train, viz)
BLOCKED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork",
                  "os.forkpty", "pty.spawn", "ctypes.dlopen", "urllib.Request")
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod",
               "os.chown", "os.link", "os.symlink", "shutil.rmtree", "shutil.copyfile", "shutil.move")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class CheckTimeout(BaseException):
    """Raised by the alarm; a BaseException so that a submission's `except Exception` can't swallow it."""


def install_guard(sandbox: Path, hidden: list[Path]) -> None:
    """Refuse, from now on, what a submission must not do while it is graded."""
    sandbox = Path(os.path.realpath(sandbox))
    hidden = [Path(os.path.realpath(h)) for h in hidden]
    busy = threading.local()

    def inside(path, folder: Path) -> bool:
        p = Path(os.path.realpath(os.fsdecode(path)))
        return p == folder or folder in p.parents

    def hook(event: str, args: tuple) -> None:
        if getattr(busy, "on", False):
            return
        busy.on = True
        try:
            if event.startswith(BLOCKED_EVENTS):
                raise PermissionError(f"{event} is not allowed while grading (no network, no processes)")
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                path, mode, flags = args
                writing = (mode and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS
                if writing and not inside(path, sandbox):
                    raise PermissionError(f"writing {os.fsdecode(path)} is not allowed while grading")
                if any(inside(path, h) for h in hidden):
                    raise PermissionError(f"reading {os.fsdecode(path)} is not allowed while grading")
            elif event in PATH_EVENTS:
                for path in args:
                    if isinstance(path, (str, bytes, os.PathLike)) and not inside(path, sandbox):
                        raise PermissionError(f"{event} on {os.fsdecode(path)} is not allowed while grading")
        finally:
            busy.on = False

    sys.addaudithook(hook)


def run_definitions(chunks: list[dict], namespace: dict) -> list[str]:
    """Execute the extracted definitions one by one; failures become notes, not crashes."""
    notes = []
    for chunk in chunks:
        where = f"cell {chunk['cell']}" if chunk["cell"] else f"line {chunk['line']}"
        tree = ast.parse(chunk["source"])
        ast.increment_lineno(tree, chunk["line"] - 1)
        try:
            exec(compile(tree, f"<submission {where}>", "exec"), namespace)
        except ImportError as err:
            if not _import_from_fcnkit(tree.body[0], namespace):
                notes.append(f"{where}: {type(err).__name__}: {err} (the grader has torch, torchvision, "
                             f"numpy and fcnkit; helpers from other course modules are looked up in fcnkit)")
        except Exception as err:
            notes.append(f"{where}: {type(err).__name__}: {err}")
    return notes


def _import_from_fcnkit(node: ast.stmt, namespace: dict) -> bool:
    """``from course_utils import get_upsampling_weight``: find the names in fcnkit instead."""
    if not isinstance(node, ast.ImportFrom):
        return False
    for alias in node.names:
        for module in FCNKIT_MODULES:
            if hasattr(module, alias.name):
                namespace[alias.asname or alias.name] = getattr(module, alias.name)
                break
        else:
            return False
    return True


def _alarm(signum, frame):
    raise CheckTimeout()


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(job.get("threads", 1))
    sandbox = Path(job["sandbox"])
    device = job.get("device", "cpu")
    images = torch.load(job["images"], weights_only=True) if job.get("images") else None
    results = open(job["results"], "a", buffering=1)

    def emit(**record):
        results.write(json.dumps(record) + "\n")

    install_guard(sandbox, [Path(p) for p in job.get("hidden", [])])
    namespace = {"__name__": "submission"}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(job["check_timeout"])
    try:
        for note in run_definitions(job["chunks"], namespace):
            emit(note=note)
    except CheckTimeout:
        emit(note=f"the submission's definitions did not finish within {job['check_timeout']} s "
                  f"(code running at class or function definition time?)")
    finally:
        signal.alarm(0)
    sub = checks.Submission(namespace)
    for name in job["checks"]:
        item = ITEMS[name]
        limit = job["miou_timeout"] if name.endswith("_miou") else job["check_timeout"]
        signal.alarm(limit)
        try:
            if name.endswith("_miou"):
                model = checks.load_weights(sub.model(item.model), job["checkpoints"][item.model])
                preds = checks.predict(model, images, device)
                out = sandbox / f"{item.model}_predictions.npz"
                np.savez_compressed(out, *preds)
                emit(name=name, status="predicted", predictions=str(out))
            else:
                message = checks.CHECKS[name.split("_", 1)[1]](sub, item.model)
                emit(name=name, status="passed", message=message)
        except checks.CheckFailed as err:
            emit(name=name, status="failed", message=str(err))
        except CheckTimeout:
            message = f"did not finish within {limit} s (an endless loop in __init__ or forward?)"
            sub._models.setdefault(item.model, checks.CheckFailed(f"{checks.MODEL_CLASSES[item.model]} {message}"))
            emit(name=name, status="failed", message=message)
        except MemoryError:
            emit(name=name, status="failed", message="ran out of memory (MemoryError)")
        except Exception as err:
            last = traceback.extract_tb(err.__traceback__)[-1]
            emit(name=name, status="failed",
                 message=f"{type(err).__name__}: {err} (at {last.filename}:{last.lineno})")
        finally:
            signal.alarm(0)
    results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
