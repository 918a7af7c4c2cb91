"""Figures for the notebook and the feedback pages. Every function returns a matplotlib Figure
(built without pyplot, so it works headless and leaves no global state); Jupyter shows it inline.
torch is imported by the functions that show tensors, so that the grader's feedback pages need none."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .spec import CLASS_NAMES, PALETTE, colorize


def _legend(fig: Figure) -> None:
    handles = [Patch(color=np.array(c) / 255, label=n) for n, c in zip(CLASS_NAMES, PALETTE)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize="small", frameon=False)


def show_samples(dataset, n: int = 4) -> Figure:
    """Images (top row) and their colour-coded labels (bottom row) of the first ``n`` items."""
    from .data import revert_input
    n = min(n, len(dataset))
    fig = Figure(figsize=(3 * n, 7), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        image, label = dataset[i]
        axes[0, i].imshow(revert_input(image))
        axes[1, i].imshow(colorize(label))
        axes[0, i].set_title(dataset.images[i].stem if hasattr(dataset, "images") else str(i))
    for ax in axes.flat:
        ax.axis("off")
    _legend(fig)
    return fig


def show_predictions(model, dataset, indices=(0, 1, 2), device="cpu") -> Figure:
    """One row per item: image, ground truth and the model's prediction."""
    import torch
    from .data import revert_input
    model.eval()
    fig = Figure(figsize=(9, 3.2 * len(indices) + 0.6), layout="constrained")
    axes = fig.subplots(len(indices), 3, squeeze=False)
    for row, index in zip(axes, indices):
        image, label = dataset[index]
        with torch.no_grad():
            pred = model(image[None].to(device)).argmax(1)[0].cpu()
        for ax, shown, title in zip(row, (revert_input(image), colorize(label), colorize(pred)),
                                    ("image", "truth", "prediction")):
            ax.imshow(shown)
            ax.set_title(title)
            ax.axis("off")
    _legend(fig)
    return fig


def plot_class_iou(per_class_iou, title: str = "IoU per class") -> Figure:
    """Horizontal bars of per-class IoU (classes absent from truth and prediction are left empty)."""
    values = [np.nan if v is None else v for v in per_class_iou]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.barh(CLASS_NAMES, values, color=np.array(PALETTE) / 255, edgecolor="black")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    ax.set_title(title)
    return fig


def plot_confusion(confusion, normalize: bool = True) -> Figure:
    """Heat map of a confusion matrix (rows: truth, columns: prediction), row-normalised by default."""
    cm = np.asarray(confusion, dtype=np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="viridis")
    ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=90)
    ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    fig.colorbar(im, ax=ax)
    return fig


def plot_history(history: list[dict]) -> Figure:
    """Training loss and validation pixel accuracy / mIoU per epoch (``FitResult.history``)."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    score_ax.plot(epochs, [h["val_pixel_acc"] for h in history], marker="o", label="pixel accuracy")
    score_ax.plot(epochs, [h["val_miou"] for h in history], marker="o", label="mean IoU")
    score_ax.set(xlabel="epoch", ylabel="validation", ylim=(0, 1))
    score_ax.legend()
    return fig
