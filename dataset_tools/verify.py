"""Check a copy of CMP Facade: every pair present, readable, consistent, and identical to the original.

Nothing here writes to the data folder.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fcnkit.data import DataError, load_pair

MANIFEST = Path(__file__).resolve().parent / "manifest.json"
SUBSETS = ("base", "extended")


def load_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """``{"base/cmp_b0001.jpg": md5, ...}`` for every file of the two official zips."""
    return json.loads(path.read_text())


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(root: str | Path, manifest: dict[str, str] | None = None) -> list[str]:
    """Return the list of problems found in ``root`` (empty when the copy is complete and intact).

    Files whose MD5 matches the manifest are the originals, so only the others are decoded and
    checked pair by pair (image readable, label of the same size, values in 1..12).
    """
    root = Path(root)
    manifest = load_manifest() if manifest is None else manifest
    if not root.is_dir():
        return [f"{root}: folder does not exist"]
    problems = [f"{root / sub}: folder is missing" for sub in SUBSETS if not (root / sub).is_dir()]
    if problems:
        return problems
    changed = set()
    for rel, expected in manifest.items():
        path = root / rel
        required = rel.endswith((".jpg", ".png"))
        if not path.is_file():
            if required:
                problems.append(f"{rel}: missing")
        elif md5(path) != expected:
            problems.append(f"{rel}: checksum differs from the original")
            changed.add(rel)
    for sub in SUBSETS:
        for path in sorted((root / sub).iterdir()):
            rel = f"{sub}/{path.name}"
            if path.suffix in (".jpg", ".png") and rel not in manifest:
                problems.append(f"{rel}: not part of CMP Facade")
                changed.add(rel)
    for rel in sorted({r[:-4] for r in changed}):
        jpg = root / f"{rel}.jpg"
        if jpg.is_file() and jpg.with_suffix(".png").is_file():
            try:
                load_pair(jpg)
            except DataError as err:
                problems.append(f"{rel}: {err}")
    pairs = sum(1 for sub in SUBSETS for jpg in (root / sub).glob("*.jpg") if jpg.with_suffix(".png").is_file())
    n_expected = sum(1 for rel in manifest if rel.endswith(".jpg"))
    if pairs != n_expected:
        problems.append(f"{root}: {pairs} complete jpg/png pairs, expected {n_expected}")
    return problems
