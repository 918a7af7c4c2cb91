"""The CMP Facade Database as a PyTorch dataset, with the course's split.

Labels are stored as indexed PNGs with values 1..12; models train on ``label - 1`` (0..11).
Pixels that must not count (padding added by :func:`pad_collate`, or by random crops) carry
:data:`IGNORE_INDEX`.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from .spec import CLASS_NAMES, N_CLASS

IGNORE_INDEX = 255

# The label PNGs' own palette (entries 1..12), so our colours match every other CMP Facade figure.
PALETTE = (
    (0, 0, 170), (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255), (85, 255, 170),
    (170, 255, 85), (255, 255, 0), (255, 170, 0), (255, 85, 0), (255, 0, 0), (170, 0, 0),
)

# torchvision's ImageNet statistics: the VGG-16 weights expect inputs normalised this way.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

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


class Augment:
    """Training augmentation: random horizontal flip, random rescale, random crop (pads with ignore)."""

    def __init__(self, flip: bool = True, scale_range: tuple[float, float] = (0.75, 1.25),
                 crop: int | None = None):
        self.flip, self.scale_range, self.crop = flip, scale_range, crop

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flip and random.random() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        if self.scale_range != (1.0, 1.0):
            s = random.uniform(*self.scale_range)
            size = [max(1, round(d * s)) for d in image.shape[-2:]]
            image, label = _resize(image, label, size)
        if self.crop:
            image, label = random_crop(image, label, self.crop)
        return image, label


def random_crop(image: torch.Tensor, label: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop a ``size`` x ``size`` window; smaller images are padded (label with IGNORE_INDEX)."""
    h, w = image.shape[-2:]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        image = torch.nn.functional.pad(image, (0, pad_w, 0, pad_h))
        label = torch.nn.functional.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        h, w = image.shape[-2:]
    top, left = random.randint(0, h - size), random.randint(0, w - size)
    return image[..., top:top + size, left:left + size], label[..., top:top + size, left:left + size]


def _resize(image: torch.Tensor, label: torch.Tensor, size: Sequence[int]):
    image = TF.resize(image, list(size), antialias=True)
    label = TF.resize(label[None], list(size), interpolation=TF.InterpolationMode.NEAREST)[0]
    return image, label


class CMPFacade(Dataset):
    """Images and labels of CMP Facade.

    Args:
        images: jpg paths (each with its label png beside it), e.g. ``cmp_splits()["train"]``.
        scale: resize factor applied to every pair (0.5 halves the resolution to fit small GPUs).
        augment: an :class:`Augment` (or any callable on ``(image, label)``), for training only.

    Items are ``(image, label)``: a float tensor (3, H, W) normalised with ImageNet mean/std and a
    long tensor (H, W) with values 0..11 (IGNORE_INDEX where augmentation padded).
    """

    def __init__(self, images: Sequence[str | os.PathLike], scale: float = 1.0, augment=None):
        self.images = [Path(p) for p in images]
        for jpg in self.images:
            if not jpg.is_file():
                raise DataError(f"Image {jpg} does not exist; check the dataset folder or split file.")
            if not label_path(jpg).is_file():
                raise DataError(f"{jpg.name} has no label: {label_path(jpg)} is missing.")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale, self.augment = scale, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = load_pair(self.images[index])
        x = TF.normalize(TF.to_tensor(image), MEAN, STD)
        y = torch.from_numpy(label)
        if self.scale != 1.0:
            size = [max(1, round(d * self.scale)) for d in y.shape]
            x, y = _resize(x, y, size)
        if self.augment is not None:
            x, y = self.augment(x, y)
        return x, y


def eval_split(root, split: str = "test", scale: float = 0.5) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Images (normalised tensors) and label maps of one split, as the grader evaluates trained weights."""
    dataset = CMPFacade(cmp_splits(root)[split], scale=scale)
    pairs = [dataset[i] for i in range(len(dataset))]
    return [x for x, _ in pairs], [y.numpy() for _, y in pairs]


def revert_input(image: torch.Tensor) -> np.ndarray:
    """Undo the normalisation of one image tensor (3, H, W): returns an HxWx3 float array in [0, 1]."""
    mean = torch.tensor(MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(STD, device=image.device).view(3, 1, 1)
    return (image.detach() * std + mean).clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def colorize(label: np.ndarray | torch.Tensor) -> np.ndarray:
    """Colour a label map (values 0..11) with the dataset palette; ignored pixels are black."""
    label = np.asarray(label.cpu() if isinstance(label, torch.Tensor) else label)
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:N_CLASS] = PALETTE
    return table[label.clip(0, 255).astype(np.int64)]


def pad_collate(batch, ignore_index: int = IGNORE_INDEX):
    """Collate images of different sizes: pad to the largest (images with 0, labels with ignore_index)."""
    h = max(x.shape[-2] for x, _ in batch)
    w = max(x.shape[-1] for x, _ in batch)
    images = torch.zeros(len(batch), 3, h, w)
    labels = torch.full((len(batch), h, w), ignore_index, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        images[i, :, :x.shape[-2], :x.shape[-1]] = x
        labels[i, :y.shape[-2], :y.shape[-1]] = y
    return images, labels


def make_loaders(splits: dict[str, Sequence], scale: float = 1.0, batch_size: int = 1,
                 augment=None, num_workers: int = 0, limit: int | None = None) -> dict[str, DataLoader]:
    """DataLoaders for each split: training shuffled (and augmented, if ``augment`` is given),
    validation and test in order one image at a time; ``limit`` keeps the first images of each split
    (for quick runs)."""
    out = {}
    for name, images in splits.items():
        train = name == "train"
        dataset = CMPFacade(list(images)[:limit], scale=scale, augment=augment if train else None)
        out[name] = DataLoader(dataset, batch_size=batch_size if train else 1, shuffle=train,
                               collate_fn=pad_collate, num_workers=num_workers)
    return out
