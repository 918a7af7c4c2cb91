"""What the integrity flags compare of a student's submitted predictions (autograder/judging/integrity.py):
per-image hashes and a small sketch (the same few pixels of every test map), and the weights' SHA-256
the predictions record. Computed once, when the predictions are read for the mIoU item, and kept in
the student's record (``Report.evidence``), so that the class's flags never read them again."""
from __future__ import annotations

import hashlib

import numpy as np

SKETCH_PIXELS = 64  # per image: the sketch of 76 test maps is 4,864 bytes
MISSING = 255  # a sketch value no class takes (12 classes): the image is not in the predictions


def _positions(n: int = SKETCH_PIXELS, seed: int = 0) -> np.ndarray:
    """Fractional (y, x) positions, the same for every student and image."""
    return np.random.default_rng(seed).random((2, n))


POSITIONS = _positions()


def sketch(maps: dict[str, np.ndarray], ids: list[str]) -> np.ndarray:
    """The class of SKETCH_PIXELS fixed (fractional) positions of each map, image after image."""
    out = np.full((len(ids), SKETCH_PIXELS), MISSING, np.uint8)
    for row, image_id in enumerate(ids):
        m = maps.get(image_id)
        if m is not None and m.ndim == 2 and m.size:
            ys = (POSITIONS[0] * m.shape[0]).astype(np.intp)
            xs = (POSITIONS[1] * m.shape[1]).astype(np.intp)
            out[row] = m[ys, xs]
    return out.ravel()


def sketch_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the sketch's pixels (present in both) on which two students' maps agree."""
    present = (a != MISSING) & (b != MISSING)
    return float((a == b)[present].mean()) if present.any() else 0.0


def image_hashes(maps: dict[str, np.ndarray], ids: list[str]) -> list[str]:
    """A short SHA-256 of each map (shape and pixels), '' where the image is missing."""
    out = []
    for image_id in ids:
        m = maps.get(image_id)
        out.append("" if m is None else hashlib.sha256(repr(m.shape).encode() + m.tobytes()).hexdigest()[:16])
    return out


def predictions_evidence(maps: dict[str, np.ndarray], ids: list[str], weights_sha256: str) -> dict:
    """A model's evidence: the image ids it is taken over, their hashes and sketch, the recorded weights."""
    return {"ids": list(ids), "hashes": image_hashes(maps, ids), "sketch": sketch(maps, ids),
            "weights": weights_sha256}
