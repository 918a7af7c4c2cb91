"""What a student submits for the mIoU items: test-split predictions, saved by fcnkit and read back
(by the grader) as bounded, pickle-free data; and the labels the grader reads without torch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fcnkit.data import eval_split
from fcnkit.metrics import confusion
from fcnkit.predictions import MAPS_FILE, META_FILE, PredictionsError, read_predictions, save_predictions, sha256_file
from fcnkit.splits import SAMPLE_ROOT, cmp_splits, load_label


class Constant(nn.Module):
    """Predicts class ``c`` where the image's first channel is positive, else class 1."""

    def __init__(self, c: int = 2):
        super().__init__()
        self.c = c

    def forward(self, x):
        scores = torch.zeros(x.shape[0], 12, *x.shape[2:])
        scores[:, 1] = 0.5
        scores[:, self.c] = (x[:, 0] > 0).float()
        return scores


@pytest.mark.parametrize("scale", [0.5, 0.37, 1.0])
def test_labels_read_without_torch_equal_the_datasets(scale):
    _, labels = eval_split(SAMPLE_ROOT, "test", scale)
    for jpg, label in zip(cmp_splits(SAMPLE_ROOT)["test"], labels):
        assert np.array_equal(load_label(jpg, scale), label)


def test_confusion_counts_and_refuses_non_classes():
    pred = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    gt = np.array([[0, 1], [0, 255]], dtype=np.uint8)
    assert confusion(pred, gt, 2).tolist() == [[1, 1], [0, 1]]  # the 255 pixel is not counted
    with pytest.raises(ValueError, match="predicted class 13"):
        confusion(np.full((2, 2), 13, np.uint8), gt, 12)  # 13 would land in class 1's row


def test_saved_predictions_read_back(tmp_path):
    images, labels = eval_split(SAMPLE_ROOT, "test", 0.5)
    ids = [p.stem for p in cmp_splits(SAMPLE_ROOT)["test"]]
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    path = save_predictions(tmp_path, "fcn8s", Constant(), images, ids, 0.5, weights=weights, epochs=3, best_epoch=2,
                            best_val_miou=0.4)
    assert path.name == MAPS_FILE.format(kind="fcn8s") and path.stat().st_size < 20_000
    meta, maps = read_predictions(tmp_path, "fcn8s")
    assert meta.image_ids == ids and meta.scale == 0.5 and meta.epochs == 3 and meta.best_val_miou == 0.4
    assert meta.weights_sha256 == sha256_file(weights) == __import__("hashlib").sha256(b"weights").hexdigest()
    for image_id, x, label in zip(ids, images, labels):
        expected = np.where(x[0].numpy() > 0, 2, 1)
        assert maps[image_id].dtype == np.uint8 and np.array_equal(maps[image_id], expected)
        assert maps[image_id].shape == label.shape
    with pytest.raises(PredictionsError, match="fcn32s_predictions.json is missing"):
        read_predictions(tmp_path, "fcn32s")


def test_reading_imports_no_torch():
    code = "import sys, fcnkit.predictions, fcnkit.splits, fcnkit.metrics\nprint([m for m in sys.modules if m == 'torch'])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def write_meta(folder, kind="fcn32s", **changes):
    meta = {"model": kind, "image_ids": ["cmp_b0001"], "scale": 0.5, **changes}
    (folder / META_FILE.format(kind=kind)).write_text(json.dumps(meta))


def test_meta_is_checked_field_by_field(tmp_path):
    np.savez_compressed(tmp_path / MAPS_FILE.format(kind="fcn32s"), cmp_b0001=np.zeros((2, 2), np.uint8))
    for changes, message in (({"scale": "big"}, "scale is 'big', not a number"),
                             ({"scale": float("nan")}, "not JSON|not a number"),
                             ({"image_ids": ["../../etc/passwd"]}, "image_ids must be"),
                             ({"image_ids": "cmp_b0001"}, "image_ids must be"),
                             ({"model": "fcn8s"}, "holds 'fcn8s'"),
                             ({"pickle": "cos\nsystem"}, "unknown field 'pickle'"),
                             ({"epochs": 2.5}, "epochs is '2.5', not a number")):
        write_meta(tmp_path, **changes)
        with pytest.raises(PredictionsError, match=message):
            read_predictions(tmp_path, "fcn32s")
    (tmp_path / META_FILE.format(kind="fcn32s")).write_text("[" * 100_000)
    with pytest.raises(PredictionsError, match="not JSON"):
        read_predictions(tmp_path, "fcn32s")
