"""The mIoU judgements: trained models graded from the test-split predictions a student submits
(fcnkit.predictions), or from those their weights give in the grading child, scored here against
the labels only the grader holds.

Predictions are the student's word, so they are checked before they are credited: the right image
ids, the labels' sizes, classes only, and an mIoU an FCN can reach. What fails those is not credited
and is flagged for a person to review, with the reason. Where the grader also has the weights
(``--checkpoints``), their predictions are recomputed in the sandbox and compared with the submitted
ones (:func:`cross_check`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit._grading.diagnoses import Diagnosis, words
from fcnkit._grading.judges import CheckFailed
from fcnkit.metrics import PairMismatch, confusion, confusion_sum, scores
from fcnkit.predictions import PredictionsError, PredictionsMeta, read_predictions, sha256_file
from fcnkit._grading.records import Predictions
from fcnkit.spec import MODEL_CLASSES, N_CLASS, miou_thresholds
from fcnkit.splits import cmp_splits, load_label, load_pair

from .context import Context
from .registry import judgement

# No FCN-32s / FCN-8s on VGG-16 comes near this test mIoU on CMP Facade (the original course: 0.48 and
# 0.50; published facade parsers with far stronger backbones stay below 0.70). Above it, predictions
# are more likely the labels than a network's: flagged, not credited.
MIOU_CEILING = 0.75
SCALES = (0.25, 1.0)  # the image scales a submission may predict at (the notebook's default is 0.5)
MIN_AGREEMENT = 0.99  # share of pixels the weights must reproduce (GPU and CPU argmax may differ on ties)


class Flagged(CheckFailed):
    """Not credited, and to be looked at by a person: the message says why."""


@dataclass
class LabelSet:
    """The evaluation split's label maps, read on first use at each scale a submission predicts at."""
    root: Path
    split: str = "test"
    ids: list[str] = field(init=False)
    _images: dict = field(init=False)
    _by_scale: dict = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self):
        self.root = Path(self.root)
        self._images = {p.stem: p for p in cmp_splits(self.root)[self.split]}
        self.ids = list(self._images)

    def labels(self, scale: float) -> dict[str, np.ndarray]:
        with self._lock:
            if scale not in self._by_scale:
                self._by_scale[scale] = {i: load_label(p, scale) for i, p in self._images.items()}
            return self._by_scale[scale]

    def image(self, image_id: str, shape: tuple[int, int]) -> np.ndarray:
        """The test image ``image_id`` (RGB, uint8) resized to ``shape`` (its label map's at the predicted scale)."""
        from PIL import Image
        picture, _ = load_pair(self._images[image_id])
        return np.asarray(picture.resize((shape[1], shape[0]), Image.BILINEAR))


def image_iou(ids: list[str], maps, truth) -> dict[str, float | None]:
    """Each test image's own mIoU (over the classes in its truth or prediction): ``{image id: mIoU}``."""
    found = {}
    for image_id, pred, label in zip(ids, maps, truth):
        value = scores(confusion(pred, label, N_CLASS))["mean_iou"]
        found[image_id] = None if np.isnan(value) else round(value, 4)
    return found


def examples(per_image: dict[str, float | None], maps: dict, truth: dict, labels: LabelSet | None = None) -> list[dict]:
    """The student's best, median and worst test image by IoU, for the feedback page: each
    ``{"which", "image_id", "iou", "prediction", "truth", "image"}`` (``image`` None without ``labels``)."""
    ranked = sorted((v, i) for i, v in per_image.items() if v is not None)
    if not ranked:
        return []
    chosen = {"best": ranked[-1], "median": ranked[(len(ranked) - 1) // 2], "worst": ranked[0]}
    found = []
    for which, (value, image_id) in chosen.items():
        if any(e["image_id"] == image_id for e in found):  # fewer than three images
            continue
        label = truth[image_id]
        found.append({"which": which, "image_id": image_id, "iou": value, "prediction": maps[image_id],
                      "truth": label, "image": labels.image(image_id, label.shape) if labels else None})
    return found


def judge_predictions(kind: str, meta: PredictionsMeta, maps: dict[str, np.ndarray], labels: LabelSet) -> dict:
    """Scores of submitted maps against the labels; raises Flagged when they are not plausible."""
    name = MODEL_CLASSES[kind]
    if meta.split != labels.split or meta.n_class != N_CLASS:
        raise Flagged(Diagnosis("predictions_split", values={
            "model": name, "split": meta.split, "n_class": meta.n_class, "graded_split": labels.split,
            "graded_n_class": N_CLASS}))
    if not SCALES[0] <= meta.scale <= SCALES[1]:
        raise Flagged(Diagnosis("predictions_scale", values={"model": name, "scale": meta.scale, "low": SCALES[0],
                                                             "high": SCALES[1]}))
    missing = [i for i in labels.ids if i not in maps]
    extra = [i for i in maps if i not in labels.ids]
    if missing or extra or meta.image_ids != labels.ids:
        raise Flagged(Diagnosis("predictions_cover", "a smoke run's" if meta.smoke else "", {
            "model": name, "split": labels.split, "count": len(labels.ids), "missing": len(missing) or None,
            "extra": None if missing else len(extra) or None, "order": not (missing or extra),
            "first": (missing or extra or [""])[0], "smoke": meta.smoke, "maps": len(maps)}))
    truth = labels.labels(meta.scale)

    def pairs():  # a map of another size is flagged with the sizes, when it comes
        for image_id in labels.ids:
            pred, label = maps[image_id], truth[image_id]
            if pred.shape != label.shape:
                raise Flagged(Diagnosis("predictions_size", values={
                    "model": name, "image": image_id, "got": f"{pred.shape[0]}x{pred.shape[1]}",
                    "expected": f"{label.shape[0]}x{label.shape[1]}", "scale": meta.scale}))
            yield pred, label
    try:
        result = scores(confusion_sum(pairs(), N_CLASS))
    except PairMismatch as err:
        raise Flagged(Diagnosis("predictions_map", values={"model": name, "image": labels.ids[err.index],
                                                           "error": str(err)})) from None
    if result["mean_iou"] > MIOU_CEILING:
        raise Flagged(Diagnosis("predictions_ceiling", values={"model": name, "miou": result["mean_iou"],
                                                               "ceiling": MIOU_CEILING}))
    return result


def read_and_judge(folder: Path, kind: str, labels: LabelSet) -> tuple[PredictionsMeta, dict, dict]:
    """(meta, maps, scores) of the predictions in ``folder``; raises Flagged (unreadable or implausible)."""
    meta, maps = read_submitted(folder, kind)
    return meta, maps, judge_predictions(kind, meta, maps, labels)


def read_submitted(folder: Path, kind: str) -> tuple[PredictionsMeta, dict]:
    """(meta, maps) of the predictions in ``folder``; raises Flagged when they cannot be read."""
    if folder.is_symlink():  # it could lead anywhere
        raise Flagged(Diagnosis("predictions_unreadable", values={"link": folder.name}))
    try:
        meta, maps = read_predictions(folder, kind)
    except PredictionsError as err:
        raise Flagged(Diagnosis("predictions_unreadable", values={"error": str(err)})) from None
    return meta, maps


def cross_check(kind: str, meta: PredictionsMeta, submitted: dict[str, np.ndarray], recomputed: list[np.ndarray],
                ids: list[str], scale: float, weights: Path) -> str:
    """Compare the submitted maps with the ones the student's own weights give (recomputed at
    ``scale`` on images ``ids``). Raises Flagged when they disagree; returns a note otherwise."""
    name = MODEL_CLASSES[kind]
    digest = sha256_file(weights)
    if meta.scale != scale:
        return (f"{name}: the weights were evaluated at scale {scale}, the predictions submitted at {meta.scale}: "
                f"not compared (run with --scale {meta.scale}).")
    same = total = 0
    for image_id, pred in zip(ids, recomputed):
        mine = submitted.get(image_id)
        total += pred.size
        if mine is not None and mine.shape == pred.shape:
            same += int((mine == pred).sum())
    agreement = same / max(total, 1)
    weights = ({"same_weights": True} if digest == meta.weights_sha256 else
               {"other_weights": meta.weights_sha256[:12] or "none", "digest": digest[:12]})
    if agreement < MIN_AGREEMENT:
        raise Flagged(Diagnosis("predictions_disagree", values={"model": name, "agreement": agreement, **weights}))
    sha = words("?same_weights") if "same_weights" in weights else words("?other_weights", **weights)
    return f"{name}: the submitted predictions are what its weights produce ({agreement:.2%} of the pixels; {sha})."



def score_predictions(predictions, labels, n_class: int = N_CLASS) -> dict:
    """fcnkit metrics of predicted maps against label maps (any shape or count mismatch fails)."""
    if len(predictions) != len(labels):
        raise CheckFailed(Diagnosis("predictions_count", values={"count": len(predictions), "expected": len(labels)}))
    try:
        return scores(confusion_sum(((np.asarray(p), np.asarray(t)) for p, t in zip(predictions, labels)), n_class))
    except PairMismatch as err:
        raise CheckFailed(Diagnosis("predictions_fit", values={"error": str(err)})) from None


def judge_miou(kind: str, scores: dict, threshold: float | None = None) -> str:
    threshold = miou_thresholds()[kind] if threshold is None else threshold
    miou = scores["mean_iou"]
    if not miou >= threshold:
        raise CheckFailed(Diagnosis("below_threshold", values={"model": MODEL_CLASSES[kind], "miou": miou,
                                                               "threshold": threshold}))
    return f"test mIoU {miou:.3f} >= {threshold:.2f} (pixel accuracy {scores['pixel_acc']:.3f})"


@judgement("fcn32s_miou", "fcn8s_miou")
def miou(p: Predictions, ctx: Context) -> str:
    """The predictions the submission's weights gave in the grading child."""
    return judge_miou(p.kind, score_predictions(p.maps, ctx.labels, ctx.n_class))
