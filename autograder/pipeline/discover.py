"""Where the submissions of a run are, and the trained weights and submitted predictions of each."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fcnkit.predictions import META_FILE

from .. import atomic
from ..results import Report, file_stem, short_hash

CHECKPOINT_NAMES = {"fcn32s": "fcn32s.pt", "fcn8s": "fcn8s.pt"}


def student_id(file: Path, base: Path) -> str:
    """The student a file belongs to: in nbgrader's layout (``.../submitted/<student>/<assignment>/``)
    the folder after ``submitted``; elsewhere the first folder under ``base`` (``<student>/<file>``,
    ``<student>/<assignment>/<file>``), else the file's name without its suffix."""
    parts = file.parts
    if "submitted" in parts[:-2]:
        return atomic.name_text(parts[len(parts) - 1 - parts[::-1].index("submitted") + 1])
    rel = file.relative_to(base)
    return atomic.name_text(rel.parts[0] if len(rel.parts) >= 2 else rel.stem)


def unique_ids(found: list[tuple[str, Path]], base: Path) -> list[tuple[str, Path]]:
    """One id per file whose files never meet, even on a file system that ignores case: ids that
    would share a file (:func:`autograder.results.file_stem`, case-folded) become, for each file, its
    path under ``base`` joined with ``__`` (``alice__part1`` and ``alice__part2``); any still shared
    (``a/b.py`` beside ``a__b.py``) get ``+`` and ten hex digits of the SHA-256 of their path under
    ``base``, which depends on that file alone, until none are."""
    def shared(pairs: list[tuple[str, Path]]) -> set[str]:
        keys = [file_stem(s).casefold() for s, _ in pairs]
        return {s for s, _ in pairs if keys.count(file_stem(s).casefold()) > 1}
    rel = {f: f.relative_to(base).with_suffix("") for _, f in found}
    if twice := shared(found):
        found = [(atomic.name_text("__".join(rel[f].parts)) if s in twice else s, f) for s, f in found]
    while twice := shared(found):
        found = [(f"{s}+{short_hash(str(rel[f]))}" if s in twice else s, f) for s, f in found]
    return found


def find_submissions(path: Path) -> list[tuple[str, Path]]:
    """``(student id, file)`` pairs, one per file, the ids unique (:func:`student_id`,
    :func:`unique_ids`). A folder is searched recursively for .ipynb and .py files."""
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
    return unique_ids([(student_id(f, base), f) for f in files], base)


def find_checkpoints(checkpoints: Path, student: str) -> dict[str, Path | None]:
    """Where each model's weights are: DIR/<student>/**/NAME, else DIR/NAME."""
    found = {}
    for model, name in CHECKPOINT_NAMES.items():
        hits = sorted((checkpoints / student).rglob(name)) if (checkpoints / student).is_dir() else []
        hits = hits or ([checkpoints / name] if (checkpoints / name).is_file() else [])
        found[model] = hits[0] if hits else None
    return found


def find_predictions(submission: Path, kind: str, student: str, elsewhere: Path | None = None) -> Path | None:
    """The folder holding ``<kind>_predictions.json`` for this submission: its own folder's
    ``outputs/`` (where the notebook writes it) or that folder itself, when the folder is the
    student's alone; else ``elsewhere/<student>/**`` (e.g. ``--checkpoints``)."""
    name = META_FILE.format(kind=kind)
    folder = submission.parent
    own = len(list(folder.glob(f"*{submission.suffix}"))) == 1  # not a folder of everybody's notebooks
    candidates = [folder / "outputs", folder] if own else []
    if elsewhere is not None and (elsewhere / student).is_dir():
        candidates += sorted(p.parent for p in (elsewhere / student).rglob(name))
    for candidate in candidates:
        if (candidate / name).exists() or (candidate / name).is_symlink():
            return candidate
    return None


def predictions_finder(checkpoints: Path | None = None) -> Callable[[Report, str], Path | None]:
    """``report, kind -> folder`` of a graded student's submitted predictions (:func:`find_predictions`,
    ``checkpoints`` the run's ``--checkpoints``): what the integrity flags read where a report recorded
    no evidence of them."""
    return lambda report, kind: find_predictions(Path(report.submission), kind, report.student, checkpoints)
