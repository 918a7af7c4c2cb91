"""The GPU benchmark (bench/reference_gpu.py) rehearsed on the CPU, and the parts of it and of fcnkit.train
that only a GPU runs in earnest, on their CPU analogues."""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fcnkit.data import SAMPLE_ROOT, CMPFacade, DecodedPairs, cmp_splits, make_loaders, pad_collate
from fcnkit.train import fit, seed_everything, speedups

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import reference_gpu  # noqa: E402


def test_speedups_on_cuda_and_nothing_elsewhere():
    on_gpu = speedups("cuda")
    assert on_gpu.autocast == torch.bfloat16 and on_gpu.memory_format == torch.channels_last
    assert on_gpu.sync_every > 1
    assert speedups("cuda:1") == on_gpu
    for device in ("cpu", "mps"):
        plain = speedups(device)
        assert plain.autocast is None and plain.memory_format == torch.contiguous_format and plain.sync_every == 1
    assert speedups("cuda", amp=False).autocast is None
    assert speedups("cuda", channels_last=False).memory_format == torch.contiguous_format


@pytest.mark.parametrize("asked, done, epoch_s, remaining_s, planned", [
    (25, 1, 10.0, 1000.0, 25),   # time enough: all
    (25, 1, 10.0, 95.0, 10),     # 9 more whole epochs fit
    (25, 1, 10.0, 5.0, 1),       # none more
    (25, 1, 10.0, -30.0, 1),     # already late: never fewer than done
    (25, 3, 10.0, 1e9, 25),      # never more than asked
    (2, 1, 0.0, 10.0, 2),        # no timing: as asked
])
def test_plan_epochs(asked, done, epoch_s, remaining_s, planned):
    assert reference_gpu.plan_epochs(asked, done, epoch_s, remaining_s) == planned


def test_a_replanned_one_cycle_ends_where_the_run_ends():
    net = nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1.0)
    schedule = reference_gpu.Replannable(optimizer, [1.0], total_steps=100)
    for _ in range(10):
        optimizer.step()
        schedule.step()
    schedule.replan(20)
    lrs = []
    for _ in range(10):
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    # one-cycle over 20 steps: its last step anneals to max_lr / (div_factor * final_div_factor)
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4, rel=1e-6)
    assert lrs == sorted(lrs, reverse=True)  # past the peak (10% of 20 steps): going down
    schedule.step()  # a step past the end does not raise
    assert schedule.done == 21


def test_decoded_pairs_give_the_datasets_items(tmp_path):
    images = cmp_splits(SAMPLE_ROOT)["val"]
    dataset = CMPFacade(images, scale=0.25)
    in_memory = DecodedPairs.from_dataset(dataset)
    in_memory.save(tmp_path, "val")
    mapped = DecodedPairs.open(tmp_path, "val")
    assert isinstance(mapped._images, np.memmap) and not mapped._images.flags.writeable
    assert len(mapped) == len(dataset) and [p.name for p in mapped.images] == [p.name for p in images]
    unpickled = pickle.loads(pickle.dumps(mapped))  # what a DataLoader worker gets: the maps reopened
    assert len(pickle.dumps(mapped)) < 10_000
    for i in range(len(dataset)):
        x, y = dataset[i]
        for copy in (in_memory, mapped, unpickled):
            cx, cy = copy[i]
            assert torch.equal(cx, x) and torch.equal(cy, y) and cy.dtype == torch.int64
    x, _ = mapped[0]
    x.add_(1.0)  # items are copies: the shared file is not written through them
    assert torch.equal(mapped[0][0], dataset[0][0])
    with pytest.raises(Exception, match="decode the split first"):
        DecodedPairs.open(tmp_path, "test")


def test_decoded_pairs_through_loader_workers_and_augmentation(tmp_path):
    from fcnkit.data import Augment
    DecodedPairs.from_dataset(CMPFacade(cmp_splits(SAMPLE_ROOT)["train"][:4], scale=0.25)).save(tmp_path, "train")
    mapped = DecodedPairs.open(tmp_path, "train", augment=Augment(crop=32))
    loader = DataLoader(mapped, batch_size=2, collate_fn=pad_collate, num_workers=1)
    shapes = [tuple(x.shape) for x, _ in loader]
    assert shapes == [(2, 3, 32, 32), (2, 3, 32, 32)]


def test_make_loaders_in_memory_matches_from_disk():
    splits = {name: images[:3] for name, images in cmp_splits(SAMPLE_ROOT).items()}
    disk, memory = make_loaders(splits, scale=0.25), make_loaders(splits, scale=0.25, in_memory=True)
    for (x, y), (mx, my) in zip(disk["val"], memory["val"]):
        assert torch.equal(x, mx) and torch.equal(y, my)


def test_fit_stops_when_after_epoch_says_so():
    splits = cmp_splits(SAMPLE_ROOT)
    train = DataLoader(CMPFacade(splits["train"][:2], scale=0.125), batch_size=2, collate_fn=pad_collate)
    val = DataLoader(CMPFacade(splits["val"][:1], scale=0.125), collate_fn=pad_collate)
    seen = []
    seed_everything(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 1))
    result = fit(model, train, val, n_class=12, epochs=10, device="cpu", progress=False,
                 after_epoch=lambda entry: seen.append(entry) or len(seen) == 3)
    assert [e["epoch"] for e in result.history] == [1, 2, 3] and seen == result.history
    assert all(0 < e["train_seconds"] <= e["seconds"] for e in result.history)


def test_pack_keeps_labels_exact_and_images_close(tmp_path):
    from fcnkit.vgg import load_vgg16
    from torchvision.models import vgg16
    weights = tmp_path / "features.pth"
    torch.save(vgg16().features.state_dict(), weights)
    root = reference_gpu.subset_root(SAMPLE_ROOT, (2, 1, 2), tmp_path / "sample")
    folder = reference_gpu.pack(tmp_path / "pack", root, weights, scale=0.5)
    original = {name: CMPFacade(images, scale=0.5) for name, images in cmp_splits(root).items()}
    packed = {name: CMPFacade(images, scale=1.0) for name, images in cmp_splits(folder / "data").items()}
    for name in original:
        assert [p.name for p in packed[name].images] == [p.name for p in original[name].images]
        for (x, y), (px, py) in zip(original[name], packed[name]):
            assert torch.equal(py, y)
            rms = ((px - x) * torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)).pow(2).mean().sqrt() * 255
            assert rms < 4  # JPEG at quality 90, in 0..255 pixel values
    meta = json.loads((folder / "data" / "PACK.json").read_text())
    assert meta["image_scale"] == 0.5 and meta["images"] == 5
    state = torch.load(folder / "vgg16_features_fp16.pth", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    with pytest.warns(UserWarning, match="conv layers only"):
        model = load_vgg16(folder / "vgg16_features_fp16.pth")
    reference = torch.load(weights, weights_only=True)["0.weight"]
    assert model.features[0].weight.dtype == torch.float32
    assert torch.allclose(model.features[0].weight, reference, rtol=1e-3, atol=1e-6)


def test_runs_picks_a_subset_and_names_an_unknown_run():
    both = ("fcn8s_imagenet_original", "fcn8s_imagenet_original_seed1")
    assert reference_gpu.all_runs(True, both) == [("fcn8s", "imagenet", "original", 0),
                                                  ("fcn8s", "imagenet", "original", 1)]
    assert len(reference_gpu.all_runs(True)) == 8 and len(reference_gpu.all_runs(False)) == 6
    with pytest.raises(SystemExit, match="--runs: no run named 'fcn8s_scratch_original'; the runs: fcn32s_scratch_original"):
        reference_gpu.main(["--runs", "fcn8s_scratch_original", "--out", "/nonexistent/never-written"])


def test_tables_of_a_subset_with_one_graded_report():
    """Two runs (--runs), and the grader's --json for one student: an object, not a list; its failed
    mIoU item is quoted under the cross-check table (the first GPU slot's grader column was only '-')."""
    def metrics(miou):
        return {"epochs_done": 25, "epochs_asked": 25, "shortened": False, "finished": True,
                "test": {"pixel_acc": 0.7, "mean_iou": miou, "per_class_iou": [0.5] * 12},
                "best_val_miou": miou + 0.1, "seconds_per_epoch": 5.5, "seconds_to_val_miou": {},
                "peak_gpu_memory_mb": 2846}
    names = ["fcn8s_imagenet_original", "fcn8s_imagenet_original_seed1"]
    report = {"student": "imagenet_original", "metrics": {},
              "checks": [{"name": "fcn8s_miou", "model": "fcn8s", "message": "RuntimeError: Error 304"}]}
    summary = {"device": "NVIDIA H200", "mode": "benchmark", "image_scale": "0.5", "budget_s": 500, "wall_s": 480,
               "decode_s": 4, "train_wall_s": 300, "runs": {names[0]: metrics(0.41), names[1]: metrics(0.39)},
               "fates": dict.fromkeys(names, "finished"), "grading": {"note": "not run"},
               "crosscheck": {"seconds": 20, "result": report}}
    text = reference_gpu.tables(summary)
    rows = [line for line in text.splitlines() if line.startswith("| fcn")]
    assert rows[0].startswith("| fcn8s | ImageNet | original | 25 of 25 | 0.700 | 0.410 | 0.510 | 5.5 |")
    assert "| fcn8s | 0.410 | 0.390 | 0.020 | 25 of 25 |" in rows
    assert "| fcn8s_imagenet_original | 0.4100 | - | - |" in rows
    assert len(rows) == 4  # the main row, its per-class row, the seed row, the cross-check row: nothing else
    assert "- fcn8s_imagenet_original: the grader said: RuntimeError: Error 304" in text


@pytest.mark.slow
def test_the_rehearsal_runs_the_whole_pipeline(tmp_path):
    """The rehearsal's trainings at once (three: each model, init and recipe), the grading benchmark, the
    cross-check."""
    out = tmp_path / "rehearsal"
    result = subprocess.run([sys.executable, str(REPO / "bench" / "reference_gpu.py"), "--rehearse", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=1500,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tables = (out / "tables.md").read_text()
    assert tables in result.stdout
    rows = [line for line in tables.splitlines()
            if re.match(r"\| fcn(32|8)s \| (scratch|ImageNet) \| (original|improved) \| \d+ of \d+", line)]
    rehearsed = reference_gpu.all_runs(False, reference_gpu.REHEARSAL.only)
    assert {(model, init, recipe) for model, init, recipe, _ in rehearsed} >= {  # every model, init and recipe
        ("fcn32s", "scratch", "original"), ("fcn8s", "imagenet", "original"), ("fcn8s", "imagenet", "improved")}
    assert len(rows) == len(rehearsed), tables
    assert not (out / "fcn32s_imagenet_original").exists()  # a run left out is not started
    for run in rehearsed:
        metrics = json.loads((out / reference_gpu.run_name(*run) / "metrics.json").read_text())
        assert metrics["finished"] and metrics["test"] is not None
        assert len(metrics["history"]) == metrics["epochs_done"] >= 1
        assert all(set(e) >= {"epoch", "loss", "val_miou", "seconds"} for e in metrics["history"])
        assert metrics["shortened"] == (metrics["epochs_done"] < metrics["epochs_asked"])
    cut = json.loads((out / "fcn8s_imagenet_improved" / "metrics.json").read_text())
    assert cut["shortened"] and cut["epochs_done"] == 1 < cut["epochs_asked"] == 2
    assert any(r.startswith("| fcn8s | ImageNet | improved | 1 of 2 (shortened)") for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert "result" in summary["grading"], summary["grading"]
    assert [r["submissions"] for r in summary["grading"]["result"]["rows"]] == [1]
    assert "result" in summary["crosscheck"], summary["crosscheck"]
    checks = [line for line in tables.splitlines() if re.match(r"\| fcn(32|8)s_\w+ \| [\d.]+ \| [\d.]+ \| [-+][\d.]+ \|", line)]
    assert len(checks) == len(rehearsed), tables  # every checkpoint scored by the grader
    for line in checks:  # the same weights on the same images: the same mIoU
        assert abs(float(line.split("|")[4])) < 1e-3, line
