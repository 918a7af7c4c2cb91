"""The figures show what their captions say: titles, axes, one legend entry per class in the
dataset's own palette, bars and images coloured with it."""
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from fcnkit import viz
from fcnkit.data import CLASS_NAMES, PALETTE, CMPFacade, cmp_splits, colorize

PALETTE_RGB = [tuple(np.array(c) / 255) for c in PALETTE]


def legend_entries(fig: Figure) -> list[tuple[str, tuple]]:
    [legend] = fig.legends
    return [(text.get_text(), to_rgb(handle.get_facecolor())) for text, handle in zip(legend.get_texts(),
                                                                                    legend.legend_handles)]


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
