"""Write split files (one id a line) that ``fcnkit.data.cmp_splits`` loads from ``ROOT/splits/``."""
from __future__ import annotations

import random
from pathlib import Path

from fcnkit.data import ORIGINAL_SPLIT, DataError, original_split

SPLITS = tuple(ORIGINAL_SPLIT)


def all_ids(root: Path) -> list[str]:
    return [p.stem for sub in ("base", "extended") for p in sorted((Path(root) / sub).glob("*.jpg"))]


def make_split(root: str | Path, seed: int | None = None, test_ids: list[str] | None = None,
               n_val: int = ORIGINAL_SPLIT["val"]) -> dict[str, list[str]]:
    """The original split by default; with ``seed``, a seeded random split of the same proportions;
    with ``test_ids``, those ids held out as test and the rest split (seeded) into train / val."""
    root = Path(root)
    if seed is None and test_ids is None:
        return {name: [p.stem for p in paths] for name, paths in original_split(root).items()}
    ids = all_ids(root)
    rng = random.Random(seed or 0)
    if test_ids is not None:
        unknown = sorted(set(test_ids) - set(ids))
        if unknown:
            raise DataError(f"test ids not in {root}: {', '.join(unknown[:5])}")
        rest = [i for i in ids if i not in set(test_ids)]
        rng.shuffle(rest)
        return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": list(test_ids)}
    rng.shuffle(ids)
    total = sum(ORIGINAL_SPLIT.values())
    n_test = round(len(ids) * ORIGINAL_SPLIT["test"] / total)
    n_val = round(len(ids) * ORIGINAL_SPLIT["val"] / total)
    return {"train": sorted(ids[n_val + n_test:]), "val": sorted(ids[:n_val]),
            "test": sorted(ids[n_val:n_val + n_test])}


def write_split(split: dict[str, list[str]], out_dir: str | Path, force: bool = False) -> list[Path]:
    """Write ``train.txt``, ``val.txt``, ``test.txt``; refuses to replace existing files unless ``force``."""
    out_dir = Path(out_dir)
    targets = [out_dir / f"{name}.txt" for name in SPLITS]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to replace the split files in {out_dir}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, target in zip(SPLITS, targets):
        target.write_text("\n".join(split[name]) + "\n")
    return targets
