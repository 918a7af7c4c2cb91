"""The CMP Facade Database as a PyTorch dataset, with the course's split (files and split:
:mod:`fcnkit.splits`).

Labels are stored as indexed PNGs with values 1..12; models train on ``label - 1`` (0..11).
Pixels that must not count (padding added by :func:`pad_collate`, or by random crops) carry
:data:`IGNORE_INDEX`.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from .spec import CLASS_NAMES, IGNORE_INDEX, N_CLASS, PALETTE, colorize  # noqa: F401 (re-exported)
from .splits import (DATA_ENV, ORIGINAL_SPLIT, SAMPLE_ROOT, DataError, cmp_splits, data_root,  # noqa: F401
                     label_path, load_pair, original_split, scaled_size)

# torchvision's ImageNet statistics: the VGG-16 weights expect inputs normalised this way.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


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
            x, y = _resize(x, y, scaled_size(*y.shape, self.scale))
        if self.augment is not None:
            x, y = self.augment(x, y)
        return x, y


class DecodedPairs(Dataset):
    """A split decoded once: the items of a :class:`CMPFacade` (without augmentation) kept as arrays,
    so that no epoch decodes or resizes an image again; ``augment`` still runs on every item.

    Build one with :meth:`from_dataset` (in this process's memory) or :meth:`save` then :meth:`open`
    (a file of memory-mapped arrays that every process reading it shares, read-only). Items are those
    of the CMPFacade, value for value: float32 images, labels 0..11.

    Args:
        images: flat float32 array of every image, one after the other (3 x H x W each).
        labels: flat uint8 array of every label map (H x W each).
        shapes: (H, W) of each pair.
        paths: the jpg each pair came from (its ``stem`` names it).
        augment: an :class:`Augment` (or any callable on ``(image, label)``), for training only.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, shapes: Sequence[tuple[int, int]],
                 paths: Sequence[str | os.PathLike] = (), augment=None):
        self._images, self._labels = images, labels
        self.shapes = [tuple(map(int, s)) for s in shapes]
        self.images = [Path(p) for p in paths]  # as CMPFacade.images (figures title samples by it)
        self.augment = augment
        areas = np.array([h * w for h, w in self.shapes], dtype=np.int64)
        self._label_at = np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64)
        self._image_at = 3 * self._label_at
        self._files: tuple[Path, Path] | None = None  # set by open(): the memory maps are reopened, not pickled

    @classmethod
    def from_dataset(cls, dataset: "CMPFacade", augment=None) -> "DecodedPairs":
        """Decode every pair of ``dataset`` into memory, at its scale (its augmentation is not kept:
        give ``augment`` here)."""
        plain = CMPFacade(dataset.images, scale=dataset.scale)
        pairs = [plain[i] for i in range(len(plain))]
        images = np.concatenate([x.numpy().ravel() for x, _ in pairs]) if pairs else np.zeros(0, np.float32)
        labels = np.concatenate([y.numpy().astype(np.uint8).ravel() for _, y in pairs]) if pairs \
            else np.zeros(0, np.uint8)
        return cls(images, labels, [tuple(y.shape) for _, y in pairs], dataset.images, augment)

    def save(self, folder: str | os.PathLike, name: str) -> Path:
        """Write ``folder/NAME_images.npy``, ``NAME_labels.npy`` and ``NAME_index.json`` (each written
        whole: a temporary file, then renamed); :meth:`open` reads them back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, array in (("images", self._images), ("labels", self._labels)):
            tmp = folder / f".{name}_{suffix}.npy.tmp"
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(array))
            os.replace(tmp, folder / f"{name}_{suffix}.npy")
        index = {"shapes": self.shapes, "paths": [str(p) for p in self.images]}
        tmp = folder / f".{name}_index.json.tmp"
        tmp.write_text(json.dumps(index), encoding="utf-8")
        os.replace(tmp, folder / f"{name}_index.json")
        return folder

    @classmethod
    def open(cls, folder: str | os.PathLike, name: str, augment=None) -> "DecodedPairs":
        """The split :meth:`save` wrote, memory-mapped read-only (one copy in memory for every process)."""
        folder = Path(folder)
        index_file = folder / f"{name}_index.json"
        if not index_file.is_file():
            raise DataError(f"{index_file} is missing: decode the split first (DecodedPairs.save).")
        index = json.loads(index_file.read_text(encoding="utf-8"))
        files = (folder / f"{name}_images.npy", folder / f"{name}_labels.npy")
        pairs = cls(np.load(files[0], mmap_mode="r"), np.load(files[1], mmap_mode="r"), index["shapes"],
                    index["paths"], augment)
        pairs._files = files
        return pairs

    def __getstate__(self):  # a DataLoader worker reopens the memory maps rather than copying them
        state = dict(self.__dict__)
        if self._files is not None:
            state["_images"] = state["_labels"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._files is not None:
            self._images, self._labels = (np.load(f, mmap_mode="r") for f in self._files)

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.shapes[index]
        at, label_at = self._image_at[index], self._label_at[index]
        x = torch.from_numpy(np.array(self._images[at:at + 3 * h * w])).view(3, h, w)  # a copy: maps are read-only
        y = torch.from_numpy(self._labels[label_at:label_at + h * w].astype(np.int64)).view(h, w)
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
                 augment=None, num_workers: int = 0, limit: int | None = None,
                 in_memory: bool = False) -> dict[str, DataLoader]:
    """DataLoaders for each split: training shuffled (and augmented, if ``augment`` is given),
    validation and test in order one image at a time; ``limit`` keeps the first images of each split
    (for quick runs). ``in_memory`` decodes every image once, here (:class:`DecodedPairs`: about
    1.2 GB for the whole dataset at half resolution), instead of in every epoch."""
    out = {}
    for name, images in splits.items():
        train = name == "train"
        dataset = CMPFacade(list(images)[:limit], scale=scale, augment=augment if train else None)
        if in_memory:
            dataset = DecodedPairs.from_dataset(dataset, augment=dataset.augment)
        out[name] = DataLoader(dataset, batch_size=batch_size if train else 1, shuffle=train,
                               collate_fn=pad_collate, num_workers=num_workers)
    return out
