"""Figures for the notebook and the feedback pages. Every function returns a matplotlib Figure
(built without pyplot, so it works headless and leaves no global state); Jupyter shows it inline.
torch is imported by the functions that show tensors, so that the grader's feedback pages need none."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .spec import CLASS_NAMES, PALETTE, colorize


def _legend(fig: Figure) -> None:
    """The classes and their colours, in a column to the right of the images (never over them)."""
    handles = [Patch(facecolor=np.array(c) / 255, edgecolor="black", linewidth=0.5, label=n)
               for n, c in zip(CLASS_NAMES, PALETTE)]
    fig.legend(handles=handles, loc="outside right center", ncol=1, fontsize="small", frameon=False)


def _bare(ax, row_title: str | None = None) -> None:
    """An image axis without ticks or frame; ``row_title`` on its left (set_ylabel, which axis("off") would hide)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_title:
        ax.set_ylabel(row_title, fontsize="medium")


def _item_name(dataset, index: int) -> str:
    return dataset.images[index].stem if hasattr(dataset, "images") else str(index)


def show_samples(dataset, n: int = 4) -> Figure:
    """The first ``n`` items: images in the top row, their colour-coded labels below, the classes'
    colours to the right."""
    from .data import revert_input
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    widths = [image.shape[-1] / image.shape[-2] for image, _ in items]  # each column as wide as its image
    height = 2.6
    fig = Figure(figsize=(height * sum(widths) + 1.8, 2 * height + 0.5), layout="constrained")
    axes = fig.subplots(2, len(items), squeeze=False, gridspec_kw={"width_ratios": widths})
    for i, (image, label) in enumerate(items):
        axes[0, i].imshow(revert_input(image))
        axes[1, i].imshow(colorize(label), interpolation="nearest")
        axes[0, i].set_title(_item_name(dataset, i), fontsize="medium")
        _bare(axes[0, i], "image" if i == 0 else None)
        _bare(axes[1, i], "label" if i == 0 else None)
    _legend(fig)
    return fig


def show_predictions(models, dataset, indices=(0, 1, 2), device="cpu") -> Figure:
    """One row per item: the image, its ground truth and each model's prediction. ``models``: one
    model (its column is titled "prediction") or ``{title: model}`` (e.g. FCN-32s and FCN-8s side by
    side on the same images)."""
    import torch
    from .data import revert_input
    models = models if isinstance(models, dict) else {"prediction": models}
    items = [dataset[i] for i in indices]
    heights = [image.shape[-2] / image.shape[-1] for image, _ in items]  # each row as tall as its image
    width = 2.4
    columns = 2 + len(models)
    fig = Figure(figsize=(width * columns + 1.8, width * sum(heights) + 0.4), layout="constrained")
    axes = fig.subplots(len(items), columns, squeeze=False, gridspec_kw={"height_ratios": heights})
    for index, row, (image, label) in zip(indices, axes, items):
        shown = [revert_input(image), colorize(label)]
        for model in models.values():
            model.eval()
            with torch.no_grad():
                shown.append(colorize(model(image[None].to(device)).argmax(1)[0].cpu()))
        for column, (ax, picture) in enumerate(zip(row, shown)):
            ax.imshow(picture, interpolation="nearest")
            _bare(ax, _item_name(dataset, index) if column == 0 else None)
    for ax, title in zip(axes[0], ("image", "truth", *models)):
        ax.set_title(title, fontsize="medium")
    _legend(fig)
    return fig


def plot_upsampling(kernels: dict, images: dict) -> Figure:
    """Upsampling kernels (top row, as heat maps with their values' scale) and images before and
    after upsampling (bottom row), each titled by its key."""
    fig = Figure(figsize=(3 * max(len(kernels), len(images)), 6.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    for ax, (title, kernel) in zip(np.atleast_1d(top.subplots(1, len(kernels))), kernels.items()):
        shown = ax.imshow(np.asarray(kernel), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize="medium")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # pixel indices
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.colorbar(shown, ax=ax, shrink=0.8)
    for ax, (title, image) in zip(np.atleast_1d(bottom.subplots(1, len(images))), images.items()):
        ax.imshow(np.asarray(image), interpolation="nearest")
        ax.set_title(title, fontsize="medium")
        _bare(ax)
    return fig


def plot_class_iou(per_class_iou, title: str = "IoU per class", median=None, threshold: float | None = None,
                   figsize=(6, 4)) -> Figure:
    """Horizontal bars of per-class IoU (classes absent from truth and prediction are left empty).

    Args:
        per_class_iou: one IoU (or None) per class, in CLASS_NAMES's order.
        title: the figure's title.
        median: the class's median IoU per class (e.g. across a course), marked by a black tick on each bar.
        threshold: the mIoU to reach, a dashed red line; the model's own mIoU a dotted one beside it.
    """
    values = np.array([np.nan if v is None else v for v in per_class_iou], dtype=float)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.barh(CLASS_NAMES, values, color=np.array(PALETTE) / 255, edgecolor="black")
    if median is not None:
        rows = [i for i, m in enumerate(median) if m is not None]
        ax.scatter([median[i] for i in rows], rows, marker="|", s=260, linewidths=2.5, color="black", zorder=3,
                   label="class median")
    if threshold is not None:
        ax.axvline(threshold, color="#c00", linestyle="--", label=f"mIoU threshold {threshold:.2f}")
        if not np.isnan(values).all():
            ax.axvline(np.nanmean(values), color="#333", linestyle=":", label=f"your mIoU {np.nanmean(values):.2f}")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    ax.set_title(title)
    if median is not None or threshold is not None:
        ax.legend(loc="lower right", fontsize="small", framealpha=0.9)
    return fig


def show_examples(examples: list[dict], title: str = "") -> Figure:
    """One row per example: the image, its ground truth and the prediction, side by side; each row
    captioned with its ``which`` (best, median, worst), image id and IoU; the classes' colours to the
    right. ``examples``: ``{"which", "image_id", "iou", "image", "truth", "prediction"}`` (``image``
    may be None: the column is left empty)."""
    heights = [np.asarray(e["truth"]).shape[0] / np.asarray(e["truth"]).shape[1] for e in examples]
    width = 2.0
    fig = Figure(figsize=(width * 3 + 1.5, width * sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(examples), 3, squeeze=False, gridspec_kw={"height_ratios": heights})
    for row, e in zip(axes, examples):
        shown = [e.get("image"), colorize(e["truth"]), colorize(e["prediction"])]
        for column, (ax, picture) in enumerate(zip(row, shown)):
            if picture is not None:
                ax.imshow(picture, interpolation="nearest")
            _bare(ax, f"{e.get('which', '')}: {e['image_id']}\nIoU {e['iou']:.2f}" if column == 0 else None)
    for ax, heading in zip(axes[0], ("image", "truth", "prediction")):
        ax.set_title(heading, fontsize="medium")
    if title:
        fig.suptitle(title)
    _legend(fig)
    return fig


def compare_class_iou(per_model: dict, title: str = "test IoU per class") -> Figure:
    """Per-class IoU of several models side by side: one group of bars per class, one bar per model
    (``{"FCN-32s": per_class_iou, "FCN-8s": ...}``); the mIoU of each model in the legend."""
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(CLASS_NAMES))
    height = 0.8 / max(len(per_model), 1)
    for i, (name, values) in enumerate(per_model.items()):
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.barh(rows + (i - (len(per_model) - 1) / 2) * height, values, height=height, edgecolor="black",
                linewidth=0.5, label=f"{name} (mIoU {np.nanmean(values):.3f})")
    ax.set_yticks(rows, CLASS_NAMES)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
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


def plot_history(history: list[dict], model: str = "") -> Figure:
    """Training loss and validation pixel accuracy / mIoU per epoch (``FitResult.history``), titled
    with the model's name (e.g. "FCN-8s")."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    fig.suptitle(f"{model}: training loss and validation scores" if model else "training loss and validation scores")
    loss_ax, score_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    score_ax.plot(epochs, [h["val_pixel_acc"] for h in history], marker="o", label="pixel accuracy")
    score_ax.plot(epochs, [h["val_miou"] for h in history], marker="o", label="mean IoU")
    score_ax.set(xlabel="epoch", ylabel="validation", ylim=(0, 1))
    score_ax.legend()
    for ax in (loss_ax, score_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs are whole numbers
    return fig
