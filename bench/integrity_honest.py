"""What two honest runs agree on: the same short CPU training of FCN-32s with two seeds, each
predicting the test split, then the share of pixels on which their maps agree (all pixels, and the
sketch autograder.integrity compares). The integrity threshold is set far above it.

    python bench/integrity_honest.py [--out runs/integrity_honest]

Trains on FCNKIT_DATA (default ../shared/data/cmp_facade) with the VGG-16
conv weights of FCNKIT_VGG16_WEIGHTS (default ../shared/weights/vgg16_features_tvnorm.pth); only the
score layer learns (the probe recipe of bench/pretraining_cpu.py), fc6 / fc7 random per seed.
About 6 minutes on 2 CPU cores.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from autograder.integrity import sketch, sketch_agreement
from autograder.reference.train import build, train_reference
from fcnkit.data import cmp_splits, eval_split
from fcnkit.predictions import read_predictions, save_predictions
from fcnkit.train import load_checkpoint
from pretraining_cpu import DATA, RECIPE, REPO, WEIGHTS  # the same probe recipe, data and weights

SETTINGS = dict(model="fcn32s", epochs=2, max_steps=30, limit=60, scale=0.25, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "integrity_honest")
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 1])
    args = parser.parse_args()
    images, _ = eval_split(DATA, "test", SETTINGS["scale"])
    ids = [p.stem for p in cmp_splits(DATA)["test"]]
    folders = []
    for seed in args.seeds:
        start = time.perf_counter()
        out = args.out / f"seed{seed}"
        m = train_reference(init=WEIGHTS, out=out, recipe=RECIPE, data_root=DATA, progress=False, seed=seed,
                            **SETTINGS)
        net = build("fcn32s", "scratch")
        load_checkpoint(out / "fcn32s.pt", net)
        save_predictions(out / "outputs", "fcn32s", net, images, ids, SETTINGS["scale"], weights=out / "fcn32s.pt")
        folders.append(out / "outputs")
        print(f"seed {seed}: test mIoU {m['test']['mean_iou']:.3f}, pixel acc {m['test']['pixel_acc']:.3f} "
              f"({time.perf_counter() - start:.0f} s)")
    (_, a), (_, b) = (read_predictions(f, "fcn32s") for f in folders)
    same = sum(int((a[i] == b[i]).sum()) for i in ids)
    total = sum(a[i].size for i in ids)
    identical = sum(np.array_equal(a[i], b[i]) for i in ids)
    print(f"{len(ids)} test images of {DATA} at scale {SETTINGS['scale']}: the two seeds agree on "
          f"{same / total:.1%} of all pixels, {sketch_agreement(sketch(a, ids), sketch(b, ids)):.1%} of the sketch; "
          f"{identical} identical maps")


if __name__ == "__main__":
    main()
