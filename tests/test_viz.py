"""The figures show what their captions say: titles, axes, one legend entry per class in the
dataset's own palette, bars and images coloured with it; and they are laid out as a student needs
them: the legend beside the images (never over them), row titles, no wide gaps between images, the
model named."""
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from fcnkit import viz
from fcnkit.data import CLASS_NAMES, PALETTE, CMPFacade, cmp_splits, colorize

PALETTE_RGB = [tuple(np.array(c) / 255) for c in PALETTE]


def legend_entries(fig: Figure) -> list[tuple[str, tuple]]:
    [legend] = fig.legends
    return [(text.get_text(), to_rgb(handle.get_facecolor())) for text, handle in zip(legend.get_texts(),
                                                                                    legend.legend_handles)]


def drawn(fig: Figure) -> Figure:
    """The figure laid out and drawn (constrained layout places the axes when drawn)."""
    FigureCanvasAgg(fig).draw()
    return fig


def image_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.images]


def gaps(boxes, axis: int) -> list[float]:
    """The empty space between neighbouring boxes along ``axis`` (0: x, 1: y), over their size."""
    ordered = sorted(boxes, key=lambda b: b.get_points()[0][axis])
    return [(b.get_points()[0][axis] - a.get_points()[1][axis]) / (a.get_points()[1][axis] - a.get_points()[0][axis])
            for a, b in zip(ordered, ordered[1:])]


def test_samples_and_predictions_show_images_with_the_palette(cmp_root, tmp_path):
    ds = CMPFacade(cmp_splits(cmp_root)["val"][:2], scale=0.125)
    samples = viz.show_samples(ds, n=2)
    assert len(samples.axes) == 4 and [ax.get_title() for ax in samples.axes[:2]] == [p.stem for p in ds.images]
    assert legend_entries(samples) == list(zip(CLASS_NAMES, PALETTE_RGB))
    shown_label = samples.axes[2].images[0].get_array()
    assert np.array_equal(np.asarray(shown_label), colorize(ds[0][1]))  # the label, in the palette's colours

    model = torch.nn.Conv2d(3, 12, 1)
    predictions = viz.show_predictions(model, ds, indices=[0, 1])
    assert len(predictions.axes) == 6
    assert [ax.get_title() for ax in predictions.axes[:3]] == ["image", "truth", "prediction"]
    with torch.no_grad():
        expected = model(ds[1][0][None]).argmax(1)[0]
    assert np.array_equal(np.asarray(predictions.axes[5].images[0].get_array()), colorize(expected))
    assert legend_entries(predictions) == list(zip(CLASS_NAMES, PALETTE_RGB))
    for fig, name in ((samples, "samples"), (predictions, "predictions")):
        fig.savefig(tmp_path / f"{name}.png")  # renders headless


def test_class_iou_bars_follow_the_classes_and_their_colours():
    values = [0.1 * i for i in range(11)] + [None]  # the last class absent: no bar
    fig = viz.plot_class_iou(values, title="FCN-8s: test IoU per class")
    [ax] = fig.axes
    assert ax.get_title() == "FCN-8s: test IoU per class" and ax.get_xlabel() == "IoU" and ax.get_xlim() == (0, 1)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASS_NAMES)
    bars = ax.patches
    assert [round(b.get_width(), 6) for b in bars[:11]] == [round(v, 6) for v in values[:11]]
    assert np.isnan(bars[11].get_width())
    assert [to_rgb(b.get_facecolor()) for b in bars] == PALETTE_RGB


def test_confusion_rows_are_normalised_and_labelled():
    confusion = np.eye(12) * 9 + 1
    fig = viz.plot_confusion(confusion)
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    assert np.allclose(shown.sum(1), 1) and np.isclose(shown[0, 0], 10 / 21)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("prediction", "truth")
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASS_NAMES)
    assert len(fig.axes) == 2  # the matrix and its colour bar


def test_history_plots_loss_and_both_validation_scores():
    history = [{"epoch": 1, "loss": 2.0, "val_pixel_acc": 0.3, "val_miou": 0.1},
               {"epoch": 2, "loss": 1.0, "val_pixel_acc": 0.5, "val_miou": 0.2}]
    loss_ax, score_ax = viz.plot_history(history).axes
    assert loss_ax.get_ylabel() == "training loss" and list(loss_ax.lines[0].get_ydata()) == [2.0, 1.0]
    assert [t.get_text() for t in score_ax.get_legend().get_texts()] == ["pixel accuracy", "mean IoU"]
    assert list(score_ax.lines[1].get_ydata()) == [0.1, 0.2] and score_ax.get_ylim() == (0, 1)


def test_samples_legend_is_beside_the_images_and_rows_are_titled(cmp_root):
    ds = CMPFacade(cmp_splits(cmp_root)["train"][:4], scale=0.125)
    fig = drawn(viz.show_samples(ds, n=4))
    legend = fig.legends[0].get_window_extent()
    images = [ax.get_window_extent() for ax in image_axes(fig)]
    assert len(images) == 8 and not any(legend.overlaps(box) for box in images)
    assert legend.x0 >= max(box.x1 for box in images)  # to the right of every image
    assert fig.axes[0].get_ylabel() == "image" and fig.axes[4].get_ylabel() == "label"
    assert all(0 <= gap < 0.15 for gap in gaps(images[:4], 0))  # images of one row side by side


def test_predictions_have_no_wide_gaps_and_name_the_models(cmp_root):
    ds = CMPFacade(cmp_splits(cmp_root)["test"][:3], scale=0.125)
    models = {"FCN-32s": torch.nn.Conv2d(3, 12, 1), "FCN-8s": torch.nn.Conv2d(3, 12, 3, padding=1)}
    fig = drawn(viz.show_predictions(models, ds, indices=[0, 1, 2]))
    axes = image_axes(fig)
    assert len(axes) == 12 and [ax.get_title() for ax in axes[:4]] == ["image", "truth", "FCN-32s", "FCN-8s"]
    assert [axes[4 * row].get_ylabel() for row in range(3)] == [p.stem for p in ds.images]
    boxes = [ax.get_window_extent() for ax in axes]
    for row in range(3):
        assert all(0 <= gap < 0.15 for gap in gaps(boxes[4 * row:4 * row + 4], 0))
    column = boxes[0::4]
    assert all(0 <= gap < 0.25 for gap in gaps(column, 1))
    covered = sum(b.width * b.height for b in boxes) / (fig.bbox.width * fig.bbox.height)
    assert covered > 0.55, f"the images cover {covered:.0%} of the figure"
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(box) for box in boxes)


def test_history_names_the_model_and_class_iou_compares_models():
    history = [{"epoch": 1, "loss": 2.0, "val_pixel_acc": 0.3, "val_miou": 0.1},
               {"epoch": 2, "loss": 1.0, "val_pixel_acc": 0.5, "val_miou": 0.2}]
    fig = viz.plot_history(history, "FCN-8s")
    assert fig.get_suptitle().startswith("FCN-8s: ")
    for ax in drawn(viz.plot_history(history[:1])).axes:  # one epoch: a tick at 1, none at 0.95 or 1.05
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == [1.0]
    a, b = [0.2] * 11 + [None], [0.4] * 12
    fig = viz.compare_class_iou({"FCN-32s": a, "FCN-8s": b})
    [ax] = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["FCN-32s (mIoU 0.200)", "FCN-8s (mIoU 0.400)"]
    widths = [round(p.get_width(), 6) for p in ax.patches]
    assert widths[:11] == [0.2] * 11 and np.isnan(widths[11]) and widths[12:] == [0.4] * 12
    first, second = ax.patches[0].get_y(), ax.patches[12].get_y()
    assert 0 < second - first < 0.8  # the two models' bars of one class side by side
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASS_NAMES)


def test_upsampling_figure_shows_the_kernels_and_images():
    from fcnkit.vgg import get_upsampling_weight
    kernels = {"4 x 4": get_upsampling_weight(1, 1, 4)[0, 0], "64 x 64": get_upsampling_weight(1, 1, 64)[0, 0]}
    images = {"small": np.zeros((3, 2, 3)), "upsampled": np.ones((6, 4, 3))}
    fig = drawn(viz.plot_upsampling(kernels, images))
    shown = {ax.get_title(): np.asarray(ax.images[0].get_array()) for ax in image_axes(fig)}
    assert list(shown) == ["4 x 4", "64 x 64", "small", "upsampled"]
    assert np.allclose(shown["4 x 4"], np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    assert shown["64 x 64"].shape == (64, 64) and shown["upsampled"].shape == (6, 4, 3)


def test_class_iou_bars_mark_the_class_median_and_the_threshold():
    values = [0.5] * 11 + [None]
    median = [0.1 * i for i in range(11)] + [None]
    [ax] = drawn(viz.plot_class_iou(values, median=median, threshold=0.4)).axes
    [ticks] = ax.collections  # one black tick per class with a median, on its row
    assert [tuple(p) for p in ticks.get_offsets()] == [(0.1 * i, i) for i in range(11)]
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.lines}
    assert lines == {"mIoU threshold 0.40": 0.4, "your mIoU 0.50": 0.5}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class median", "mIoU threshold 0.40",
                                                                   "your mIoU 0.50"]


def test_examples_show_image_truth_and_prediction_per_row_captioned_with_the_legend():
    rng = np.random.default_rng(0)
    examples = [{"which": which, "image_id": f"cmp_x{i}", "iou": iou, "image": rng.integers(0, 255, (30, 20, 3), np.uint8),
                 "truth": rng.integers(0, 12, (30, 20)), "prediction": rng.integers(0, 12, (30, 20))}
                for i, (which, iou) in enumerate((("best", 0.61), ("median", 0.42), ("worst", 0.1)))]
    fig = drawn(viz.show_examples(examples))
    axes = image_axes(fig)
    assert len(axes) == 9 and [ax.get_title() for ax in axes[:3]] == ["image", "truth", "prediction"]
    assert [ax.get_ylabel() for ax in axes[::3]] == ["best: cmp_x0\nIoU 0.61", "median: cmp_x1\nIoU 0.42",
                                                     "worst: cmp_x2\nIoU 0.10"]
    np.testing.assert_array_equal(axes[1].images[0].get_array(), colorize(examples[0]["truth"]))
    np.testing.assert_array_equal(axes[2].images[0].get_array(), colorize(examples[0]["prediction"]))
    assert legend_entries(fig) == list(zip(CLASS_NAMES, PALETTE_RGB))
    legend = fig.legends[0].get_window_extent()
    assert all(legend.x0 >= ax.get_window_extent().x1 for ax in axes)  # beside the images, never over them
