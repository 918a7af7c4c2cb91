import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from fcnkit.data import IGNORE_INDEX
from fcnkit.metrics import ConfusionMatrix, scores


def random_batch(rng, n_class=12, shape=(3, 20, 30), ignore_fraction=0.2):
    gt = rng.integers(0, n_class, size=shape)
    # make predictions agree with the truth on most pixels, so scores are neither 0 nor 1
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, n_class, size=shape))
    gt[rng.random(shape) < ignore_fraction] = IGNORE_INDEX
    return pred, gt


def direct_scores(pred, gt, n_class):
    """Per-class counting, independent of the confusion matrix."""
    valid = gt != IGNORE_INDEX
    p, g = pred[valid], gt[valid]
    ious = []
    for c in range(n_class):
        inter = np.sum((p == c) & (g == c))
        union = np.sum((p == c) | (g == c))
        ious.append(inter / union if union else np.nan)
    return {"pixel_acc": np.mean(p == g), "ious": np.array(ious)}


def test_streaming_matrix_matches_sklearn_and_direct_counts():
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix(12)
    preds, gts = [], []
    for _ in range(4):
        pred, gt = random_batch(rng)
        cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
        preds.append(pred)
        gts.append(gt)
    pred, gt = np.concatenate(preds), np.concatenate(gts)
    valid = gt != IGNORE_INDEX
    expected = confusion_matrix(gt[valid], pred[valid], labels=list(range(12)))
    np.testing.assert_array_equal(cm.matrix.numpy(), expected)

    result = cm.compute()
    direct = direct_scores(pred, gt, 12)
    assert result["pixel_acc"] == pytest.approx(direct["pixel_acc"])
    assert result["mean_iou"] == pytest.approx(np.nanmean(direct["ious"]))
    np.testing.assert_allclose(result["per_class_iou"], direct["ious"])
    freq = np.bincount(gt[valid], minlength=12) / valid.sum()
    assert result["fw_iou"] == pytest.approx(np.sum(freq * direct["ious"]))


def test_absent_classes_do_not_count():
    gt = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 0]])
    cm = ConfusionMatrix(5)
    cm.update(pred, gt)
    r = cm.compute()
    assert r["per_class_iou"][2:] == [None, None, None]
    assert r["mean_iou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_ignore_index_and_out_of_range_truth_are_masked():
    # Without the (gt >= 0) & (gt < n) mask, 255 would be folded into the matrix.
    gt = torch.tensor([[0, 255, 1, -1]])
    pred = torch.tensor([[0, 1, 1, 0]])
    cm = ConfusionMatrix(2)
    cm.update(pred, gt)
    assert cm.matrix.tolist() == [[1, 0], [0, 1]]
    assert cm.compute()["pixel_acc"] == 1.0


def test_logits_are_argmaxed_and_shapes_checked():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 1.0
    cm = ConfusionMatrix(3)
    cm.update(logits, torch.full((1, 2, 2), 2))
    assert cm.compute()["pixel_acc"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 2]).cuda(), torch.tensor([0, 1, 1]).cuda())
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_scores_of_empty_matrix_are_nan():
    r = scores(np.zeros((3, 3)))
    assert np.isnan(r["pixel_acc"]) and np.isnan(r["mean_iou"])
