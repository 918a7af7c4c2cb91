"""The CMP Facade Database on disk: where it is, the course's split, and an image with its labels.

Plain files, numpy and Pillow only (no torch), so that the grader's own process can read the labels
it scores submitted predictions against; :mod:`fcnkit.data` builds the PyTorch dataset on top.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .spec import N_CLASS

DATA_ENV = "FCNKIT_DATA"
ORIGINAL_SPLIT = {"train": 500, "val": 30, "test": 76}
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample_data"


class DataError(ValueError):
    """A problem with the dataset on disk; the message names the file and the fix."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the dataset folder: the argument, else ``$FCNKIT_DATA``, else an error that says so."""
    if root is None:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise DataError(
                f"No dataset folder given. Pass root=... or set {DATA_ENV} to the folder holding "
                f"base/ and extended/ (get it with `python -m dataset_tools fetch --dest DIR`; "
                f"the small bundled sample is at {SAMPLE_ROOT})."
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"Dataset folder {path} does not exist. Point {DATA_ENV} (or root=) at the folder holding "
            f"base/ and extended/, or fetch it with `python -m dataset_tools fetch --dest {path}`."
        )
    return path


def cmp_splits(root: str | os.PathLike | None = None) -> dict[str, list[Path]]:
    """Return ``{"train", "val", "test"}`` lists of jpg paths.

    If ``root/splits/{train,val,test}.txt`` exist (written by ``python -m dataset_tools split`` or
    shipped with the sample), their ids are used. Otherwise the original notebook's rule applies:
    sorted ``base/*.jpg`` then sorted ``extended/*.jpg``; the first 500 train, the next 30
    validation, the last 76 test.
    """
    root = data_root(root)
    split_dir = root / "splits"
    if split_dir.is_dir():
        return {name: _ids_to_paths(root, split_dir / f"{name}.txt") for name in ORIGINAL_SPLIT}
    return original_split(root)


def original_split(root: str | os.PathLike) -> dict[str, list[Path]]:
    """The original notebook's split of the folders ``root/base`` and ``root/extended``
    (any split files are ignored)."""
    root = Path(root)
    images = []
    for sub in ("base", "extended"):
        folder = root / sub
        if not folder.is_dir():
            raise DataError(
                f"{folder} is missing. The dataset folder must hold base/ and extended/ as extracted "
                f"from CMP_facade_DB_base.zip and CMP_facade_DB_extended.zip "
                f"(`python -m dataset_tools fetch --dest {root}`)."
            )
        images += sorted(folder.glob("*.jpg"))
    expected = sum(ORIGINAL_SPLIT.values())
    if len(images) != expected:
        raise DataError(
            f"{root} holds {len(images)} jpg images, the original split needs {expected}. "
            f"Check the copy with `python -m dataset_tools verify {root}`, or write your own split "
            f"with `python -m dataset_tools split {root} --seed 0`."
        )
    n_train, n_val = ORIGINAL_SPLIT["train"], ORIGINAL_SPLIT["val"]
    return {"train": images[:n_train], "val": images[n_train:n_train + n_val],
            "test": images[n_train + n_val:]}


def _ids_to_paths(root: Path, list_file: Path) -> list[Path]:
    if not list_file.is_file():
        raise DataError(f"Split file {list_file} is missing; rewrite it with `python -m dataset_tools split {root}`.")
    paths = []
    for line in list_file.read_text().split():
        sub = "base" if line.startswith("cmp_b") else "extended"
        paths.append(root / sub / f"{line}.jpg")
    return paths


def label_path(jpg: Path) -> Path:
    """The label PNG that belongs to an image."""
    return Path(jpg).with_suffix(".png")


def _open(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode) if mode == "RGB" else img.copy()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; re-extract the dataset or run `python -m dataset_tools verify`.") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path} cannot be read ({err}); replace the file from the original zip.") from None


def load_pair(jpg: str | os.PathLike) -> tuple[Image.Image, np.ndarray]:
    """Load an image and its label map (values 0..11), checking that they belong together."""
    jpg = Path(jpg)
    image = _open(jpg, "RGB")
    label_img = _open(label_path(jpg), "P")
    if label_img.size != image.size:
        raise DataError(
            f"{label_path(jpg)} is {label_img.size[0]}x{label_img.size[1]} but {jpg.name} is "
            f"{image.size[0]}x{image.size[1]}; labels must have the image's size."
        )
    label = np.asarray(label_img, dtype=np.int64)
    bad = (label < 1) | (label > N_CLASS)
    if bad.any():
        raise DataError(
            f"{label_path(jpg)} holds label value {int(label[bad][0])}; CMP Facade labels are 1..{N_CLASS}."
        )
    return image, label - 1


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """The source row (or column) of each output row in a nearest-neighbour resize, exactly as
    torch's ``interpolate(mode="nearest")`` picks it (float32 scale, floor, clamped), so that labels
    resized here equal the ones :class:`fcnkit.data.CMPFacade` yields."""
    if size_in == size_out:
        return np.arange(size_out)
    scale = np.float32(size_in) / np.float32(size_out)
    return np.minimum(np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64), size_in - 1)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The (height, width) an image of this size has at ``scale``, as the course's datasets resize it."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def load_label(jpg: str | os.PathLike, scale: float = 1.0) -> np.ndarray:
    """The label map (uint8, values 0..11) of an image at ``scale``, as the course's datasets give it."""
    _, label = load_pair(jpg)
    if scale != 1.0:
        height, width = scaled_size(*label.shape, scale)
        label = label[nearest_indices(label.shape[0], height)][:, nearest_indices(label.shape[1], width)]
    return label.astype(np.uint8)
