"""The mIoU items graded from submitted predictions: scored against the grader's labels, implausible
ones flagged for review, hostile files refused without harm, and cross-checked against the weights
when the grader has them."""
import dataclasses
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from autograder.__main__ import main
from autograder.catalogue import REFERENCE
from autograder.judging.miou import LabelSet
from autograder.pipeline import EvalSet, GradingRun, Limits, grade_submission
from autograder.reference.models import FCN32s
from autograder.rubric import FLAGGED, ITEMS, RUBRIC
from fcnkit.data import eval_split
from fcnkit.predictions import MAPS_FILE, META_FILE, PredictionsError, PredictionsMeta, read_predictions, save_predictions
from fcnkit.splits import SAMPLE_ROOT, cmp_splits, load_label

FAST = Limits(wall_s=90, check_s=10, check_wall_s=60, memory_gb=8)  # the backstop far above: a busy machine
IDS = [p.stem for p in cmp_splits(SAMPLE_ROOT)["test"]]
MIOU = ["fcn32s_miou", "fcn8s_miou"]


def write_predictions(folder, kind, maps: dict, scale=0.5, ids=None, **meta):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / MAPS_FILE.format(kind=kind), **maps)
    record = PredictionsMeta(kind, list(maps) if ids is None else ids, scale, **meta)
    (folder / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(record)))


def noisy_labels(noise: float, scale=0.5, seed=0) -> dict:
    """The true labels with a share ``noise`` of pixels set to random classes."""
    rng = np.random.default_rng(seed)
    maps = {}
    for jpg in cmp_splits(SAMPLE_ROOT)["test"]:
        label = load_label(jpg, scale)
        maps[jpg.stem] = np.where(rng.random(label.shape) < noise, rng.integers(0, 12, label.shape), label).astype(np.uint8)
    return maps


def independent_miou(maps: dict, scale=0.5) -> float:
    """Per-class IoU counted directly over the test split, then averaged over present classes."""
    preds = np.concatenate([maps[i].ravel() for i in IDS])
    truth = np.concatenate([load_label(p, scale).ravel() for p in cmp_splits(SAMPLE_ROOT)["test"]])
    ious = [((preds == c) & (truth == c)).sum() / ((preds == c) | (truth == c)).sum()
            for c in range(12) if ((preds == c) | (truth == c)).any()]
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def run():
    run = GradingRun.start(limits=FAST, labels=LabelSet(SAMPLE_ROOT))
    yield run
    run.close()


def student(tmp_path, name="s"):
    folder = tmp_path / name / "fcn_segmentation"
    folder.mkdir(parents=True)
    (folder / "fcn_segmentation.py").write_text(REFERENCE)
    return folder


def graded(folder, run, **kwargs) -> dict:
    report = grade_submission(folder.parent.name, folder / "fcn_segmentation.py", run=run, only=MIOU, limits=FAST,
                              **kwargs).to_json()  # what <student>.json holds
    return {c["name"]: c for c in report["checks"]} | {"_report": report}


def test_predictions_are_scored_against_the_graders_labels(tmp_path, run, monkeypatch):
    folder = student(tmp_path)
    good, poor = noisy_labels(0.3), noisy_labels(0.85, seed=1)
    write_predictions(folder / "outputs", "fcn32s", good)
    write_predictions(folder / "outputs", "fcn8s", poor)
    got = graded(folder, run)
    report = got["_report"]
    assert report["metrics"]["fcn32s"]["mean_iou"] == pytest.approx(independent_miou(good))
    assert report["metrics"]["fcn8s"]["mean_iou"] == pytest.approx(independent_miou(poor))
    assert 0.30 < independent_miou(good) < 0.75 and independent_miou(poor) < 0.40
    assert got["fcn32s_miou"]["status"] == "passed" and got["fcn32s_miou"]["score"] == ITEMS["fcn32s_miou"].points
    assert got["fcn8s_miou"]["status"] == "failed" and "below the threshold 0.40" in got["fcn8s_miou"]["message"]
    monkeypatch.setenv("FCNKIT_MIOU_THRESHOLDS", "fcn8s=0.05")
    assert graded(folder, run)["fcn8s_miou"]["score"] == ITEMS["fcn8s_miou"].points


@pytest.mark.parametrize("case, expected", [
    ("labels copied", "above the 0.75"),
    ("an image missing", "1 of the 8 test images"),
    ("an extra image", "are not test images (e.g. cmp_b9999)"),
    ("wrong size", "the image is 47x96 at scale 0.5"),
    ("a class that does not exist", "predicted class 40"),
    ("scale outside the range", "made at scale 3.0"),
    ("another split", "for the 'val' split"),
])
def test_implausible_predictions_are_flagged_not_credited(tmp_path, run, case, expected):
    folder = student(tmp_path)
    maps, kwargs = noisy_labels(0.3), {}
    if case == "labels copied":
        maps = noisy_labels(0.0)
    elif case == "an image missing":
        maps.pop(IDS[-1])
    elif case == "an extra image":
        maps["cmp_b9999"] = maps[IDS[0]]
    elif case == "wrong size":
        maps[IDS[0]] = maps[IDS[0]][:-1]
    elif case == "a class that does not exist":
        maps[IDS[1]][0, 0] = 40
    elif case == "scale outside the range":
        kwargs["scale"] = 3.0
    elif case == "another split":
        kwargs["split"] = "val"
    write_predictions(folder / "outputs", "fcn32s", maps, **kwargs)
    check = graded(folder, run)["fcn32s_miou"]
    assert check["status"] == FLAGGED and check["score"] == 0 and expected in check["message"], check["message"]


def test_what_a_run_without_labels_or_predictions_says(tmp_path, run):
    folder = student(tmp_path)
    got = graded(folder, run)
    assert got["fcn32s_miou"]["status"] == "failed"
    assert "no outputs/fcn32s_predictions.npz and .json submitted" in got["fcn32s_miou"]["message"]
    write_predictions(folder / "outputs", "fcn32s", noisy_labels(0.3))
    unlabelled = GradingRun.start(limits=FAST)
    try:
        got = graded(folder, unlabelled)
    finally:
        unlabelled.close()
    assert got["fcn32s_miou"]["status"] == "not graded" and "no labels to score them" in got["fcn32s_miou"]["message"]
    assert got["fcn8s_miou"]["status"] == "not graded" and "no trained results given" in got["fcn8s_miou"]["message"]


# ----------------------------------------------------------------------------------- hostile files
def _npy_bytes(array) -> bytes:
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def hostile(folder, case):
    npz = folder / MAPS_FILE.format(kind="fcn32s")
    if case == "a link to a secret":
        npz.symlink_to("/etc/shadow")
    elif case == "a pipe that never ends":
        os.mkfifo(npz)
    elif case == "over the size limit":
        with open(npz, "wb") as f:
            f.truncate(65 * 2**20)
    elif case == "not a zip":
        npz.write_bytes(b"\x93NUMPY" + b"\0" * 100)
    elif case == "a zip bomb":
        with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{IDS[0]}.npy", _npy_bytes(np.zeros((4100, 4100), np.uint8)))
    elif case == "a pickled object":
        with zipfile.ZipFile(npz, "w") as z:
            z.writestr(f"{IDS[0]}.npy", _npy_bytes(np.array([{"os": "system"}], dtype=object)))
    elif case == "a header that lies about its shape":
        data = _npy_bytes(np.zeros((3000, 3000), np.uint8))[:200]
        with zipfile.ZipFile(npz, "w") as z:
            z.writestr(f"{IDS[0]}.npy", data)
    elif case == "a path in a member's name":
        with zipfile.ZipFile(npz, "w") as z:
            z.writestr("../../outside.npy", _npy_bytes(np.zeros((2, 2), np.uint8)))
    elif case == "too many members":
        with zipfile.ZipFile(npz, "w") as z:
            for i in range(1001):
                z.writestr(f"m{i}.npy", b"")


HOSTILE = {"a link to a secret": "a link is not accepted", "a pipe that never ends": "not a regular file",
           "over the size limit": "over the 64.00 MB", "not a zip": "not an .npz (zip) file",
           "a zip bomb": "unpacks to more than a class map can hold", "a pickled object": "is a object array",
           "a header that lies about its shape": "bytes of data for a 3000x3000 map",
           "a path in a member's name": "is not <image id>.npy", "too many members": "more than the 1000 allowed"}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_prediction_files_are_refused(tmp_path, case):
    write_predictions(tmp_path, "fcn32s", {IDS[0]: np.zeros((2, 2), np.uint8)})
    (tmp_path / MAPS_FILE.format(kind="fcn32s")).unlink()
    hostile(tmp_path, case)
    with pytest.raises(PredictionsError, match=re.escape(HOSTILE[case])):
        read_predictions(tmp_path, "fcn32s")


@pytest.mark.slow
def test_a_hostile_file_costs_its_item_only(tmp_path):
    """Through the CLI: the item is flagged with the reason, the other items are graded as usual, and the
    grading process, which reads the file, never imports torch for it."""
    folder = student(tmp_path, "mallory")
    write_predictions(folder / "outputs", "fcn8s", noisy_labels(0.2))  # mIoU 0.47
    write_predictions(folder / "outputs", "fcn32s", {IDS[0]: np.zeros((2, 2), np.uint8)})
    (folder / "outputs" / MAPS_FILE.format(kind="fcn32s")).unlink()
    hostile(folder / "outputs", "a pipe that never ends")
    out = tmp_path / "reports"
    code = ("import sys\nfrom autograder.__main__ import main\nmain(sys.argv[1:])\n"
            "print('torch imported:', 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, "grade", str(tmp_path), "--data", str(SAMPLE_ROOT),
                             "--out", str(out), "--jobs", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "mallory.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["fcn32s_miou"]["status"] == FLAGGED and "not a regular file" in checks["fcn32s_miou"]["message"]
    structural = sum(i.points for i in RUBRIC if not i.needs_weights)
    assert checks["fcn8s_miou"]["status"] == "passed" and report["score"] == structural + ITEMS["fcn8s_miou"].points
    assert "flagged for review (not credited; 1)" in result.stdout and "mallory: fcn32s_miou" in result.stdout
    assert "fcn32s_miou: submitted predictions unreadable" in (out / "grades.csv").read_text()
    assert "under review" in (out / "feedback" / "mallory.html").read_text()
    assert "torch imported: False" in result.stdout


# ----------------------------------------------------------------------------------- with the weights
@pytest.mark.slow
def test_checkpoints_cross_check_the_submitted_predictions(tmp_path):
    torch.manual_seed(0)
    model = FCN32s().eval()
    scale = 0.25  # the smallest the grader accepts: a quarter of the forward passes' arithmetic at 0.5
    evalset = EvalSet.load(SAMPLE_ROOT, "test", scale, tmp_path / "eval")
    images, _ = eval_split(SAMPLE_ROOT, "test", scale)
    honest, cheat = student(tmp_path, "honest"), student(tmp_path, "cheat")
    for folder in (honest, cheat):
        (folder / "outputs").mkdir()
        torch.save(model.state_dict(), folder / "outputs" / "fcn32s.pt")
    save_predictions(honest / "outputs", "fcn32s", model, images, IDS, scale, weights=honest / "outputs" / "fcn32s.pt")
    write_predictions(cheat / "outputs", "fcn32s", noisy_labels(0.3, scale), scale)
    run = GradingRun.start(evalset, limits=FAST, labels=LabelSet(SAMPLE_ROOT))
    try:
        fair = graded(honest, run, checkpoints=tmp_path, evalset=evalset)
        caught = graded(cheat, run, checkpoints=tmp_path, evalset=evalset)
    finally:
        run.close()
    assert "the submitted predictions are what its weights produce (100.00% of the pixels; the same weights" \
        in " ".join(fair["_report"]["notes"])
    assert fair["fcn32s_miou"]["status"] == "failed"  # an untrained model: scored, below the threshold
    assert caught["fcn32s_miou"]["status"] == FLAGGED
    assert "differ from what its weights produce" in caught["fcn32s_miou"]["message"]
    assert "SHA-256 is not the one recorded" in caught["fcn32s_miou"]["message"]


def test_links_to_the_graders_files_are_not_followed(tmp_path):
    """A submission that is a link to the reference solution, or outputs/ linked elsewhere: refused,
    with the reason; a folder of links is not searched."""
    from autograder.pipeline.run import REFERENCE_SOURCE as reference
    linked = tmp_path / "class" / "mallory" / "fcn_segmentation"
    linked.mkdir(parents=True)
    (linked / "fcn_segmentation.py").symlink_to(reference)
    (linked / "outputs").symlink_to(tmp_path / "elsewhere")
    write_predictions(tmp_path / "elsewhere", "fcn32s", noisy_labels(0.2))
    (tmp_path / "class" / "trudy").symlink_to(reference.parent, target_is_directory=True)
    out = tmp_path / "reports"
    assert main(["grade", str(tmp_path / "class"), "--data", str(SAMPLE_ROOT), "--out", str(out), "--jobs", "1"]) == 0
    assert [p.stem for p in out.glob("*.json")] == ["mallory"]  # trudy's linked folder was not searched
    report = json.loads((out / "mallory.json").read_text())
    assert report["score"] == 0 and "a link is not accepted" in " ".join(report["notes"])
    miou = {c["name"]: c for c in report["checks"]}["fcn32s_miou"]
    assert miou["status"] == FLAGGED and "outputs/ is a link" in miou["message"]
