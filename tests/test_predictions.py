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


# ----------------------------------------------------------------------------------- the mIoU cells' verdict
def saved_constant(folder, kind="fcn8s", smoke=False):
    """A Constant model's predictions on the sample's test split, and their mIoU computed here."""
    from fcnkit.metrics import scores
    images, labels = eval_split(SAMPLE_ROOT, "test", 0.5)
    ids = [p.stem for p in cmp_splits(SAMPLE_ROOT)["test"]]
    save_predictions(folder, kind, Constant(), images, ids, 0.5, smoke=smoke)
    with torch.no_grad():
        matrix = sum(confusion(Constant()(x[None]).argmax(1)[0].numpy(), y, 12) for x, y in zip(images, labels))
    return scores(matrix)["mean_iou"], len(ids)


def test_the_miou_cell_says_below_threshold_with_the_number_and_names_a_smoke_run(tmp_path, capsys, monkeypatch):
    from fcnkit.checks import check
    monkeypatch.delenv("FCNKIT_MIOU_THRESHOLDS", raising=False)
    miou, n = saved_constant(tmp_path, smoke=True)
    assert 0 < miou < 0.40
    check("fcn8s_miou", {}, predictions=tmp_path, data=SAMPLE_ROOT)
    line = capsys.readouterr().out
    assert line.startswith(f"BELOW THRESHOLD fcn8s_miou: test mIoU {miou:.3f} < 0.40 (the threshold) on {n} test "
                           f"images, pixel accuracy ")
    assert "the grader gives this item no points" in line and "This is a smoke run (FCNKIT_SMOKE=1" in line
    assert "PASS" not in line
    assert json.loads((tmp_path / META_FILE.format(kind="fcn8s")).read_text())["smoke"] is True

    monkeypatch.setenv("FCNKIT_MIOU_THRESHOLDS", f"fcn8s={miou - 0.01:.3f}")  # an instructor's lower threshold
    saved_constant(tmp_path)
    check("fcn8s_miou", {}, predictions=tmp_path, data=SAMPLE_ROOT)
    line = capsys.readouterr().out
    assert line.startswith(f"PASS fcn8s_miou: test mIoU {miou:.3f} >= {miou - 0.01:.2f} (the threshold) on {n}")
    assert "smoke" not in line


def test_the_miou_cell_names_the_model_without_predictions_and_what_to_run(tmp_path, capsys):
    """In the notebook, a verdict (NOT CHECKED, as check_all says) and what to run, not a traceback."""
    from fcnkit.checks import check
    from fcnkit.predictions import score_saved
    check("fcn32s_miou", {}, predictions=tmp_path, data=SAMPLE_ROOT)
    assert capsys.readouterr().out == (f"NOT CHECKED fcn32s_miou: no FCN-32s predictions to score: "
                                       f"fcn32s_predictions.json is missing. Run FCN-32s's training cell above: it "
                                       f"saves them to {tmp_path}/.\n")
    with pytest.raises(PredictionsError, match=r"no FCN-32s predictions to score: fcn32s_predictions.json is "
                                               r"missing\. Run FCN-32s's training cell above"):
        score_saved(tmp_path, "fcn32s", SAMPLE_ROOT)


def test_smoke_predictions_on_the_full_data_are_named_a_smoke_run(tmp_path, cmp_root):
    """The grader (and the notebook, on the full data) says why 68 of 76 test images are missing."""
    from autograder.judging.miou import Flagged, LabelSet, read_and_judge
    from fcnkit.predictions import score_saved
    saved_constant(tmp_path, "fcn32s", smoke=True)
    with pytest.raises(Flagged) as flagged:
        read_and_judge(tmp_path, "fcn32s", LabelSet(cmp_root))
    assert "68 of the 76 test images are missing" in str(flagged.value)
    assert "They come from a smoke run (FCNKIT_SMOKE=1: a few training steps on the bundled sample's 8 test " \
           "images)" in str(flagged.value)
    with pytest.raises(PredictionsError, match=r"cover 8 images, the test split of .* has 76 .* They come from a "
                                               r"smoke run \(FCNKIT_SMOKE=1"):
        score_saved(tmp_path, "fcn32s", cmp_root)
    saved_constant(tmp_path, "fcn32s", smoke=False)
    with pytest.raises(Flagged) as flagged:
        read_and_judge(tmp_path, "fcn32s", LabelSet(cmp_root))
    assert "68 of the 76" in str(flagged.value) and "smoke" not in str(flagged.value)


def test_smoke_must_be_a_boolean(tmp_path):
    np.savez_compressed(tmp_path / MAPS_FILE.format(kind="fcn32s"), cmp_b0001=np.zeros((2, 2), np.uint8))
    write_meta(tmp_path, smoke="yes")
    with pytest.raises(PredictionsError, match="smoke must be true or false"):
        read_predictions(tmp_path, "fcn32s")
    write_meta(tmp_path)  # written before the field existed: not a smoke run
    assert read_predictions(tmp_path, "fcn32s")[0].smoke is False


def test_the_student_side_and_the_grader_use_the_same_thresholds(monkeypatch):
    from autograder.judging import miou as grader
    from fcnkit._grading.judges import CheckFailed
    from fcnkit.spec import MIOU_THRESHOLDS, miou_thresholds
    monkeypatch.delenv("FCNKIT_MIOU_THRESHOLDS", raising=False)
    assert MIOU_THRESHOLDS == grader.miou_thresholds() == {"fcn32s": 0.30, "fcn8s": 0.40}
    monkeypatch.setenv("FCNKIT_MIOU_THRESHOLDS", "fcn8s=0.45")
    assert miou_thresholds() == grader.miou_thresholds() == {"fcn32s": 0.30, "fcn8s": 0.45}
    with pytest.raises(CheckFailed, match="below the threshold 0.45"):
        grader.judge_miou("fcn8s", {"mean_iou": 0.44, "pixel_acc": 0.9})


def test_the_feedback_page_states_the_thresholds(monkeypatch):
    from autograder.reports.html import feedback_html
    from autograder.results import Report
    monkeypatch.delenv("FCNKIT_MIOU_THRESHOLDS", raising=False)
    report = Report("alice", "", metrics={"fcn8s": {"mean_iou": 0.044, "per_class_iou": [0.1] * 12}})
    page = feedback_html(report)
    assert "The mIoU items need a test mIoU of at least 0.30 (FCN-32s) and 0.40 (FCN-8s)" in page
    assert "FCN-8s: test mIoU 0.044 (threshold 0.40)" in page
