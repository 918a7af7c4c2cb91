"""Where the submissions of a run are, and the trained weights of each."""
from __future__ import annotations

import os
from pathlib import Path

from .. import atomic

CHECKPOINT_NAMES = {"fcn32s": "fcn32s.pt", "fcn8s": "fcn8s.pt"}


def find_submissions(path: Path) -> list[tuple[str, Path]]:
    """``(student id, file)`` pairs. A folder is searched recursively for .ipynb and .py files. In
    nbgrader's layout (``.../submitted/<student>/<assignment>/``) the student id is the folder after
    ``submitted``; elsewhere it is the first folder of ``<student>/<assignment>/<file>``, else the
    file's name."""
    path = path.resolve()
    if path.is_file():
        files, base = [path], path.parent
    elif path.is_dir():
        base = path
        files = []
        # links are not followed: a linked folder is not searched, a linked file is refused when read
        # (it could point at the grader's own files: the reference solution)
        for folder, subfolders, names in os.walk(path, followlinks=False):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__")
            files += [Path(folder) / n for n in names if n.endswith((".ipynb", ".py")) and not n.startswith(".")]
        files.sort()
    else:
        raise FileNotFoundError(f"{path} is neither a submission file nor a folder of them.")

    def student(f: Path) -> str:
        parts = f.parts
        if "submitted" in parts[:-2]:
            return parts[len(parts) - 1 - parts[::-1].index("submitted") + 1]
        rel = f.relative_to(base).parts
        return rel[0] if len(rel) >= 3 else "__".join(f.relative_to(base).with_suffix("").parts)
    found = [(atomic.name_text(student(f)), f) for f in files]
    ids = [s for s, _ in found]
    # two files of one student: keep both, named by their paths
    return [(s if ids.count(s) == 1 else atomic.name_text("__".join(f.relative_to(base).with_suffix("").parts)), f)
            for s, f in found]


def find_checkpoints(checkpoints: Path, student: str) -> dict[str, Path | None]:
    """Where each model's weights are: DIR/<student>/**/NAME, else DIR/NAME."""
    found = {}
    for model, name in CHECKPOINT_NAMES.items():
        hits = sorted((checkpoints / student).rglob(name)) if (checkpoints / student).is_dir() else []
        hits = hits or ([checkpoints / name] if (checkpoints / name).is_file() else [])
        found[model] = hits[0] if hits else None
    return found
