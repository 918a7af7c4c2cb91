"""Build the small sample of CMP Facade that ships inside fcnkit (demo and CPU tests)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from fcnkit.data import SAMPLE_ROOT, load_pair, original_split
from .split import write_split

# Images taken from each split of the original (evenly spaced), so the sample keeps its structure.
SAMPLE_COUNTS = {"train": 24, "val": 6, "test": 8}

ATTRIBUTION = """\
This folder holds a downscaled sample of the CMP Facade Database:

  R. Tylecek and R. Sara, "Spatial Pattern Templates for Recognition of Objects with Regular
  Structure", GCPR 2013, Saarbrucken. https://cmp.felk.cvut.cz/~tylecr1/facade/

The CMP Facade Database is licensed under Creative Commons Attribution-ShareAlike (CC BY-SA 4.0,
https://creativecommons.org/licenses/by-sa/4.0/); so is this sample. Changes: {count} of the 606
images chosen evenly from the course split, resized to at most {max_side} px on the longer side
(images bilinear, labels nearest neighbour). Built with `python -m dataset_tools sample`.
"""


def _evenly(items: list, count: int) -> list:
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def build_sample(source: str | Path, dest: str | Path = SAMPLE_ROOT, max_side: int = 192,
                 counts: dict[str, int] = SAMPLE_COUNTS, force: bool = False) -> dict[str, list[str]]:
    """Write the sample to ``dest`` (base/, extended/, splits/, ATTRIBUTION.txt); returns its split."""
    dest = Path(dest)
    if dest.exists():
        if not force:
            raise FileExistsError(f"{dest} exists; pass --force to rebuild the sample there.")
        shutil.rmtree(dest)
    split = {name: _evenly(paths, counts[name]) for name, paths in original_split(source).items()}
    for jpg in (p for paths in split.values() for p in paths):
        image, label = load_pair(jpg)  # checks the pair on the way
        scale = min(1.0, max_side / max(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        out = dest / jpg.parent.name
        out.mkdir(parents=True, exist_ok=True)
        image.resize(size, Image.BILINEAR).save(out / jpg.name, quality=85)
        label_img = Image.fromarray((label + 1).astype(np.uint8), mode="P").resize(size, Image.NEAREST)
        label_img.putpalette(Image.open(jpg.with_suffix(".png")).getpalette())
        label_img.save(out / f"{jpg.stem}.png", optimize=True)
    ids = {name: [p.stem for p in paths] for name, paths in split.items()}
    write_split(ids, dest / "splits")
    (dest / "ATTRIBUTION.txt").write_text(ATTRIBUTION.format(count=sum(counts.values()), max_side=max_side))
    return ids
