"""What grading the mIoU items from submitted predictions costs, on the real test split.

    FCNKIT_DATA=../shared/data/cmp_facade python bench/predictions_cost.py [--students 30] [--scale 0.5]

Makes a class of reference submissions, each with ``outputs/fcn32s_predictions.*`` and
``fcn8s_predictions.*`` for the 76 test images (the labels with a share of pixels changed, as a
stand-in for a trained model's maps), and grades it twice with ``python -m autograder grade``: without
the dataset (the mIoU items not graded) and with ``--data`` (scored from the predictions). Prints the
size of the files a student submits and the wall time of both runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autograder.catalogue import REFERENCE
from fcnkit.predictions import MAPS_FILE, META_FILE, PredictionsMeta
from fcnkit.splits import cmp_splits, load_label


def maps_for(root: Path, scale: float, noise: float, seed: int) -> dict[str, np.ndarray]:
    """The test labels with blocks of 8x8 pixels set to a random class (a stand-in for a model's
    errors, which come in regions, not single pixels)."""
    rng = np.random.default_rng(seed)
    maps = {}
    for jpg in cmp_splits(root)["test"]:
        label = load_label(jpg, scale)
        blocks = rng.random(((label.shape[0] + 7) // 8, (label.shape[1] + 7) // 8)) < noise
        wrong = np.kron(blocks, np.ones((8, 8), bool))[:label.shape[0], :label.shape[1]]
        maps[jpg.stem] = np.where(wrong, rng.integers(0, 12), label).astype(np.uint8)
    return maps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()
    root = Path(os.environ["FCNKIT_DATA"])
    ids = [p.stem for p in cmp_splits(root)["test"]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(args.students):
            folder = tmp / "class" / f"student{i:03d}" / "fcn_segmentation"
            (folder / "outputs").mkdir(parents=True)
            (folder / "fcn_segmentation.py").write_text(REFERENCE)
            for kind, noise in (("fcn32s", 0.35), ("fcn8s", 0.3)):
                maps = maps_for(root, args.scale, noise, i)
                np.savez_compressed(folder / "outputs" / MAPS_FILE.format(kind=kind), **maps)
                meta = PredictionsMeta(kind, ids, args.scale)
                (folder / "outputs" / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(meta)))
        sizes = [p.stat().st_size for p in (tmp / "class").rglob("*_predictions.*")]
        print(f"{args.students} students, test split of {len(ids)} images at scale {args.scale}: "
              f"{sum(sizes) / args.students / 1e3:.0f} KB submitted per student (both models, .npz + .json)")
        env = {**os.environ}
        for label, extra in (("without the dataset (mIoU not graded)", []), ("with --data (mIoU from predictions)",
                                                                              ["--data", str(root)])):
            env.pop("FCNKIT_DATA", None)
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp / "class"), "--out",
                                     str(tmp / "reports"), *extra], capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
            if result.returncode:
                print(result.stdout[-2000:], result.stderr[-2000:])
                return 1
            scores = sorted({json.loads(p.read_text())["score"] for p in (tmp / "reports").glob("*.json")})
            print(f"{label:40s} {seconds:6.1f} s  ({seconds / args.students:.2f} s a student; scores {scores})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
