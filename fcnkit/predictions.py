"""Test-split predictions: what a student hands in for the mIoU items instead of the weights.

A trained FCN's weights are about 540 MB, over nbgrader's 100 MB file limit and most upload limits;
its predicted class maps on the 76 test images are a few hundred KB. Beside each checkpoint the
notebook saves

- ``<kind>_predictions.npz``: one uint8 class map per test image, keyed by image id
  (``np.savez_compressed``: a zip of ``.npy`` files, no pickle);
- ``<kind>_predictions.json``: :class:`PredictionsMeta` (image ids, scale, epochs, best validation
  mIoU, and the SHA-256 of the weights they came from, so that a grader holding the weights can
  check them).

The grader reads both as hostile input with :func:`read_predictions`: regular files only, every size
bounded before anything is allocated, ``.npy`` headers parsed by hand, nothing unpickled. Numpy
only at import; :func:`save_predictions` imports torch when called.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._grading.verdicts import Status
from .spec import MODEL_CLASSES, MODEL_TITLES, N_CLASS, miou_thresholds

MAPS_FILE = "{kind}_predictions.npz"
META_FILE = "{kind}_predictions.json"

# Bounds on what a submission may hand in (CMP Facade: 606 images, none over 1,100 pixels a side;
# the test split's maps at scale 1 are about 40 MB uncompressed).
MAX_MAPS_BYTES = 64 * 2**20  # the .npz on disk
MAX_META_BYTES = 256 * 2**10
MAX_IMAGES = 1000
MAX_SIDE = 4096
MAX_TOTAL_PIXELS = 256 * 2**20  # all maps together, uncompressed
IMAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PredictionsError(ValueError):
    """Submitted predictions that cannot be read; the message names the file and the problem."""


@dataclass
class PredictionsMeta:
    """What ``<kind>_predictions.json`` holds. Written by the notebook, read by the grader."""
    model: str  # "fcn32s" or "fcn8s"
    image_ids: list[str]  # in the split's order
    scale: float  # the image scale the maps were predicted at
    split: str = "test"
    n_class: int = N_CLASS
    epochs: int | None = None  # epochs trained
    best_epoch: int | None = None
    best_val_miou: float | None = None
    weights_sha256: str = ""  # of the checkpoint the maps came from
    fcnkit_version: str = ""
    notes: list[str] = field(default_factory=list)
    smoke: bool = False  # made by a smoke run (FCNKIT_SMOKE=1: the bundled sample, a few steps)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_predictions(folder: str | os.PathLike, kind: str, model, images, image_ids: list[str], scale: float,
                     device="cpu", weights: str | os.PathLike | None = None, **meta) -> Path:
    """Predict every image (normalised tensors (3, H, W), e.g. :func:`fcnkit.data.eval_split`'s) with
    ``model`` and save the maps and their :class:`PredictionsMeta` to ``folder``. ``weights``: the
    checkpoint they came from (its SHA-256 is recorded); ``meta``: epochs, best_epoch, best_val_miou,
    smoke (True for a smoke run, so that what scores them can say so). Returns the .npz's path."""
    import torch
    from . import __version__
    if len(images) != len(image_ids):
        raise ValueError(f"{len(images)} images for {len(image_ids)} image ids")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    maps = {}
    with torch.no_grad():
        for image_id, x in zip(image_ids, images):
            maps[image_id] = model(x[None].to(device)).argmax(1)[0].to(torch.uint8).cpu().numpy()
    path = folder / MAPS_FILE.format(kind=kind)
    np.savez_compressed(path, **maps)
    record = PredictionsMeta(model=kind, image_ids=list(image_ids), scale=float(scale), fcnkit_version=__version__,
                             weights_sha256=sha256_file(weights) if weights else "", **meta)
    (folder / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(record), indent=1) + "\n")
    return path


# ----------------------------------------------------------------------------------- reading (hostile input)
class UnreadableFile(ValueError):
    """A file handed in that is not read: a link, a device or pipe, too large, missing."""


def open_regular(path: Path) -> int:
    """A file descriptor of a regular file, refusing links (which could point at the grader's own
    files, or the labels), devices and pipes (which could block or never end)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # not on Windows
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise UnreadableFile(f"{path.name} is missing.") from None
    except OSError as err:
        raise UnreadableFile(f"{path.name} cannot be opened ({err.strerror}; a link is not accepted).") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnreadableFile(f"{path.name} is not a regular file.")
    return fd


def read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes (see :func:`open_regular`), refusing anything over ``limit`` bytes."""
    path = Path(path)
    with os.fdopen(open_regular(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise UnreadableFile(f"{path.name} is {size / 2**20:.1f} MB, over the {limit / 2**20:.2f} MB allowed.")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"{path.name} grew while it was read.")
    return data


def _meta(data: bytes, name: str) -> PredictionsMeta:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise PredictionsError(f"{name} is not JSON ({str(err)[:100]}).") from None
    if not isinstance(raw, dict):
        raise PredictionsError(f"{name} holds a {type(raw).__name__}, not an object.")
    kinds = {f.name: f for f in dataclasses.fields(PredictionsMeta)}
    unknown = sorted(set(raw) - set(kinds))
    if unknown:
        raise PredictionsError(f"{name}: unknown field {unknown[0][:40]!r}.")
    missing = [n for n, f in kinds.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in raw]
    if missing:
        raise PredictionsError(f"{name}: the field {missing[0]!r} is missing.")

    def number(value, what, integer=False):
        if value is None and what not in ("scale", "n_class"):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) \
                or not math.isfinite(value):
            raise PredictionsError(f"{name}: {what} is {str(value)[:40]!r}, not a number.")
        return value
    ids = raw["image_ids"]
    if not isinstance(ids, list) or len(ids) > MAX_IMAGES or not all(isinstance(i, str) and IMAGE_ID.fullmatch(i)
                                                                       for i in ids):
        raise PredictionsError(f"{name}: image_ids must be a list of at most {MAX_IMAGES} image ids such as "
                               f"cmp_b0001.")
    texts = {k: raw.get(k, "") for k in ("model", "split", "weights_sha256", "fcnkit_version")}
    if not all(isinstance(v, str) and len(v) <= 100 for v in texts.values()):
        raise PredictionsError(f"{name}: model, split, weights_sha256 and fcnkit_version must be short strings.")
    notes = raw.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise PredictionsError(f"{name}: notes must be a list of strings.")
    if not isinstance(raw.get("smoke", False), bool):
        raise PredictionsError(f"{name}: smoke must be true or false.")
    return PredictionsMeta(
        image_ids=ids, scale=number(raw["scale"], "scale"), n_class=number(raw.get("n_class", N_CLASS), "n_class", True),
        epochs=number(raw.get("epochs"), "epochs", True), best_epoch=number(raw.get("best_epoch"), "best_epoch", True),
        best_val_miou=number(raw.get("best_val_miou"), "best_val_miou"), notes=[n[:500] for n in notes[:20]],
        smoke=raw.get("smoke", False), **texts)


def _npy(data: bytes, name: str) -> np.ndarray:
    """One .npy member: a 2-D uint8 array, its header checked before any array is made."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"npy format version {version}")
        shape, fortran, dtype = read_header(stream, max_header_size=1024)
    except (ValueError, SyntaxError, TypeError) as err:
        raise PredictionsError(f"{name} is not a plain .npy array ({str(err)[:100]}).") from None
    if dtype != np.uint8 or len(shape) != 2 or not all(0 < d <= MAX_SIDE for d in shape):
        raise PredictionsError(f"{name} is a {dtype} array of shape {shape}; class maps are 2-D uint8 arrays of at "
                               f"most {MAX_SIDE} pixels a side.")
    body = data[stream.tell():]
    if len(body) != shape[0] * shape[1]:
        raise PredictionsError(f"{name}: {len(body)} bytes of data for a {shape[0]}x{shape[1]} map.")
    return np.frombuffer(body, np.uint8).reshape(shape, order="F" if fortran else "C").copy()


def read_maps(data: bytes, name: str) -> dict[str, np.ndarray]:
    """The class maps of a ``<kind>_predictions.npz``'s bytes, bounded: member names, count, sizes."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise PredictionsError(f"{name} is not an .npz (zip) file ({err}).") from None
    if len(members) > MAX_IMAGES:
        raise PredictionsError(f"{name} holds {len(members)} arrays, more than the {MAX_IMAGES} allowed.")
    total, maps = 0, {}
    for info in members:
        image_id = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy") or not IMAGE_ID.fullmatch(image_id) or image_id in maps:
            raise PredictionsError(f"{name}: member {info.filename[:80]!r} is not <image id>.npy.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PredictionsError(f"{name}: {info.filename} uses a compression other than deflate.")
        limit = MAX_SIDE * MAX_SIDE + 1024
        total += info.file_size
        if info.file_size > limit or total > MAX_TOTAL_PIXELS + 1024 * len(members):
            raise PredictionsError(f"{name}: {info.filename} unpacks to more than a class map can hold.")
        try:
            with archive.open(info) as member:
                raw = member.read(info.file_size + 1)  # never more than the header declared, plus one
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise PredictionsError(f"{name}: {info.filename} cannot be unpacked ({err}).") from None
        if len(raw) != info.file_size:
            raise PredictionsError(f"{name}: {info.filename} is not the size its header declares.")
        maps[image_id] = _npy(raw, f"{name}: {info.filename}")
    return maps


def read_predictions(folder: str | os.PathLike, kind: str) -> tuple[PredictionsMeta, dict[str, np.ndarray]]:
    """The meta and maps a submission handed in for ``kind`` (raises :class:`PredictionsError`)."""
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model {kind!r}")
    folder = Path(folder)
    meta_name, maps_name = META_FILE.format(kind=kind), MAPS_FILE.format(kind=kind)
    try:
        meta = _meta(read_bounded(folder / meta_name, MAX_META_BYTES), meta_name)
        if meta.model != kind:
            raise PredictionsError(f"{meta_name} says it holds {meta.model!r}'s predictions, not {kind!r}'s.")
        return meta, read_maps(read_bounded(folder / maps_name, MAX_MAPS_BYTES), maps_name)
    except UnreadableFile as err:
        raise PredictionsError(str(err)) from None


# ----------------------------------------------------------------------------------- scoring (the student's side)
SMOKE_NOTE = ("a smoke run (FCNKIT_SMOKE=1: a few training steps on the bundled sample's {n} test images); the "
              "grader scores the full test split: run the notebook without FCNKIT_SMOKE")


@dataclass
class SavedScores:
    """One model's saved test predictions scored against the labels of ``root``'s test split."""
    kind: str
    mean_iou: float
    pixel_acc: float
    per_class_iou: list
    n_images: int
    smoke: bool
    threshold: float

    @property
    def passed(self) -> bool:
        return self.mean_iou >= self.threshold

    def summary(self) -> str:
        """'test mIoU 0.452 on 76 test images, pixel accuracy 0.871' (plus the smoke run's note)."""
        text = f"test mIoU {self.mean_iou:.3f} on {self.n_images} test images, pixel accuracy {self.pixel_acc:.3f}"
        return text + (f"; {SMOKE_NOTE.format(n=self.n_images)}" if self.smoke else "")


def score_saved(folder: str | os.PathLike, kind: str, root: str | os.PathLike, n_class: int = N_CLASS) -> SavedScores:
    """Score the predictions saved for ``kind`` in ``folder`` against the test labels of the dataset
    at ``root``, as the grader does (raises :class:`PredictionsError` naming what is wrong)."""
    from .metrics import confusion_sum, scores
    from .splits import cmp_splits, load_label
    title = MODEL_TITLES[kind]
    try:
        meta, maps = read_predictions(folder, kind)
    except PredictionsError as err:
        raise PredictionsError(f"no {title} predictions to score: {err} Run {title}'s training cell above: it saves "
                               f"them to {folder}/.") from None
    images = cmp_splits(root)["test"]
    missing = [p.stem for p in images if p.stem not in maps]
    if missing or len(maps) != len(images):
        smoke = f" They come from {SMOKE_NOTE.format(n=len(maps))}." if meta.smoke else ""
        raise PredictionsError(f"the saved {title} predictions cover {len(maps)} images, the test split of {root} has "
                               f"{len(images)} (e.g. {(missing or ['?'])[0]} has none).{smoke} Train again with "
                               f"this notebook's data.")
    try:
        matrix = confusion_sum(((maps[p.stem], load_label(p, meta.scale)) for p in images), n_class)
    except ValueError as err:  # a map of the wrong size, a class that does not exist
        raise PredictionsError(f"the saved {title} predictions do not fit the test labels at scale {meta.scale}: "
                               f"{err}.") from None
    result = scores(matrix)
    return SavedScores(kind, result["mean_iou"], result["pixel_acc"], result["per_class_iou"], len(images), meta.smoke,
                       miou_thresholds()[kind])


def miou_verdict(result: SavedScores) -> str:
    """What the mIoU item's verdict says of ``result``, after ``PASS`` / ``BELOW THRESHOLD``: the
    number, the threshold and, below it, what that costs."""
    compare = ">=" if result.passed else "<"
    line = (f"test mIoU {result.mean_iou:.3f} {compare} {result.threshold:.2f} (the threshold) on {result.n_images} "
            f"test images, pixel accuracy {result.pixel_acc:.3f}")
    if not result.passed:
        line += ": the grader gives this item no points" + (
            "" if result.smoke else "; train longer, or check the model and that it starts from ImageNet VGG-16")
    return line + (f". This is {SMOKE_NOTE.format(n=result.n_images)}." if result.smoke else "")


def report_miou(kind: str, folder: str | os.PathLike, root: str | os.PathLike, n_class: int = N_CLASS) -> None:
    """Print the mIoU item's verdict on the saved predictions: PASS or BELOW THRESHOLD, with the
    number and the threshold (the grader's hidden test gives the points). Prints rather than raises
    below the threshold, so that a run of the whole notebook goes on to FCN-8s; returns nothing, so
    that nbgrader reads no output value as partial credit. Predictions it cannot score (none saved, another
    split's) are NOT CHECKED, with what to run, as :func:`fcnkit.checks.check_all` says."""
    try:
        result = score_saved(folder, kind, root, n_class)
    except PredictionsError as err:
        print(f"{Status.NOT_CHECKED.word} {kind}_miou: {err}")
        return
    print(f"{Status.PASSED.word if result.passed else 'BELOW THRESHOLD'} {kind}_miou: {miou_verdict(result)}")
