"""Shared test fixtures. Real data and weights are found through one setting:
FCNKIT_SHARED (default: the `shared` folder beside this repository), holding
data/cmp_facade/ and weights/vgg16_features_tvnorm.pth."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def cmp_root() -> Path:
    root = SHARED / "data" / "cmp_facade"
    if not root.is_dir():
        pytest.skip(f"real CMP Facade data not found at {root}; set FCNKIT_SHARED")
    return root


@pytest.fixture(scope="session")
def vgg_features_file() -> Path:
    path = SHARED / "weights" / "vgg16_features_tvnorm.pth"
    if not path.is_file():
        pytest.skip(f"VGG-16 conv weights not found at {path}; set FCNKIT_SHARED")
    return path


def write_label_with_value(src: Path, dst: Path, value: int) -> None:
    """Copy a label PNG (keeping its palette) with one pixel set to ``value``."""
    import numpy as np
    from PIL import Image
    label = Image.open(src)
    arr = np.asarray(label).copy()
    arr[5, 5] = value
    out = Image.fromarray(arr, mode="P")
    out.putpalette(label.getpalette())
    out.save(dst)

