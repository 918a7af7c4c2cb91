"""Segmentation metrics from a confusion matrix.

The matrix is built with the classic bincount trick, ``bincount(n * gt + pred)``, *after* masking the
pixels whose ground truth is not a class (``0 <= gt < n_class``): without the mask an ignore value
such as 255 lands in some other cell and silently corrupts every score.

numpy only at import (torch is imported by :class:`ConfusionMatrix` when used), so that the grader's
own process scores submitted predictions without torch.
"""
from __future__ import annotations

import numpy as np

from .spec import IGNORE_INDEX


def confusion(pred: np.ndarray, target: np.ndarray, n_class: int) -> np.ndarray:
    """The confusion matrix (int64, rows: truth) of one class-index map against its labels, over the
    pixels whose label is a class (``0 <= target < n_class``)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    mask = (target >= 0) & (target < n_class)
    pred = pred[mask].astype(np.int64)
    if pred.size and not 0 <= pred.min() <= pred.max() < n_class:  # it would land in another class's cell
        raise ValueError(f"predicted class {int(pred.max() if pred.max() >= n_class else pred.min())} is not "
                         f"one of 0..{n_class - 1}")
    index = n_class * target[mask].astype(np.int64) + pred
    return np.bincount(index, minlength=n_class * n_class).reshape(n_class, n_class)


class PairMismatch(ValueError):
    """A prediction that does not fit its label (``index``: which pair); the message is :func:`confusion`'s."""

    def __init__(self, index: int, err: ValueError):
        super().__init__(str(err))
        self.index = index


def confusion_sum(pairs, n_class: int) -> np.ndarray:
    """The confusion matrix of ``(prediction, label)`` pairs of maps, summed; PairMismatch names the
    first pair :func:`confusion` refuses."""
    matrix = np.zeros((n_class, n_class), dtype=np.int64)
    for index, (pred, target) in enumerate(pairs):
        try:
            matrix += confusion(pred, target, n_class)
        except ValueError as err:
            raise PairMismatch(index, err) from None
    return matrix


class ConfusionMatrix:
    """A streaming ``n_class`` x ``n_class`` confusion matrix (rows: truth, columns: prediction).

    ``update`` takes predicted class indices (or logits of shape (N, C, H, W)) and targets, on any
    device; pixels whose target is outside ``0..n_class-1`` (e.g. ``ignore_index``) are skipped.
    """

    def __init__(self, n_class: int, ignore_index: int = IGNORE_INDEX):
        import torch
        self.n_class, self.ignore_index = n_class, ignore_index
        self.matrix = torch.zeros(n_class, n_class, dtype=torch.int64)

    def update(self, pred, target) -> None:
        import torch
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        n = self.n_class
        mask = (target >= 0) & (target < n) & (target != self.ignore_index)
        index = n * target[mask].long() + pred[mask].long()
        counts = torch.bincount(index, minlength=n * n).reshape(n, n)
        self.matrix += counts.cpu()

    def reset(self) -> None:
        self.matrix.zero_()

    def compute(self) -> dict:
        """Pixel accuracy, mean class accuracy, mean IoU, frequency-weighted IoU and per-class IoU."""
        return scores(self.matrix.numpy())


def scores(confusion: np.ndarray) -> dict:
    """Metrics of a confusion matrix. Classes absent from both truth and prediction do not count
    towards the means (their IoU is reported as NaN)."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    gt_count, pred_count = cm.sum(1), cm.sum(0)
    union = gt_count + pred_count - tp
    total = cm.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(gt_count > 0, tp / gt_count, np.nan)
    present = ~np.isnan(iou)
    freq = gt_count / total if total else np.zeros_like(gt_count)
    return {
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "mean_acc": float(np.nanmean(class_acc)) if (gt_count > 0).any() else float("nan"),
        "mean_iou": float(iou[present].mean()) if present.any() else float("nan"),
        "fw_iou": float((freq[present] * iou[present]).sum()),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
    }

