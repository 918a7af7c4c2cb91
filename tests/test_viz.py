import numpy as np
import torch
from matplotlib.figure import Figure

from fcnkit import viz
from fcnkit.data import CMPFacade, cmp_splits


def _drawn(fig: Figure, path):
    fig.savefig(path)
    return path.stat().st_size > 1000


def test_figures_render_headless(cmp_root, tmp_path):
    ds = CMPFacade(cmp_splits(cmp_root)["val"][:2], scale=0.125)
    model = torch.nn.Conv2d(3, 12, 1)
    figures = {
        "samples": viz.show_samples(ds, n=2),
        "predictions": viz.show_predictions(model, ds, indices=[0, 1]),
        "iou": viz.plot_class_iou([0.5] * 11 + [None]),
        "confusion": viz.plot_confusion(np.eye(12) * 10 + 1),
        "history": viz.plot_history([{"epoch": 1, "loss": 2.0, "val_pixel_acc": 0.3, "val_miou": 0.1},
                                     {"epoch": 2, "loss": 1.0, "val_pixel_acc": 0.5, "val_miou": 0.2}]),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        assert _drawn(fig, tmp_path / f"{name}.png"), name
    assert len(figures["predictions"].axes) == 6
