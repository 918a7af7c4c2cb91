"""Temporary folders of a grading run that do not outlive it, even when it is killed.

Each folder holds the pid of the process that made it; a later run removes the folders whose
process is gone (a run killed with SIGKILL cannot remove its own).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

OWNER = "owner.pid"


def make(prefix: str) -> Path:
    """A new temporary folder owned by this process; stale ones of the same prefix are removed first."""
    sweep(prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER).write_text(str(os.getpid()))
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep(prefix: str) -> list[Path]:
    """Remove the folders ``prefix*`` (in the temporary folder) whose owning process is gone;
    returns them. Folders without an owner file, or another user's, are left alone."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.geteuid():
                continue
            pid = int((folder / OWNER).read_text().strip())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
