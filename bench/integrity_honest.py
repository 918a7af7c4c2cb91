"""What two honest runs agree on: the same short CPU training of FCN-32s with two seeds, each
predicting the test split, then the share of pixels on which their maps agree (all pixels, and the
sketch autograder.judging.integrity compares). The integrity threshold is set far above it.

    python bench/integrity_honest.py [--out runs/integrity_honest]

Trains on FCNKIT_DATA (default ../shared/data/cmp_facade) with the VGG-16
conv weights of FCNKIT_VGG16_WEIGHTS (default ../shared/weights/vgg16_features_tvnorm.pth); only the
score layer learns (the probe recipe of bench/pretraining_cpu.py, 40 batches), fc6 / fc7 random per
seed. About 10 minutes on 2 busy CPU cores.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from autograder.judging.evidence import sketch, sketch_agreement
from autograder.reference.train import _optimizer, build
from fcnkit.data import N_CLASS, Augment, cmp_splits, eval_split, make_loaders
from fcnkit.predictions import read_predictions, save_predictions
from fcnkit.train import fit, seed_everything
from pretraining_cpu import DATA, RECIPE, REPO, WEIGHTS  # the same probe recipe, data and weights

SCALE, STEPS, TRAIN_IMAGES = 0.25, 40, 60


def train(seed: int):
    """FCN-32s from the ImageNet conv weights, its score layer trained for STEPS batches (4 crops of
    96 pixels, 60 training images at scale 0.25); validated on 8 images only, to save CPU time."""
    seed_everything(seed)
    splits = cmp_splits(DATA)
    splits = {"train": splits["train"][:TRAIN_IMAGES], "val": splits["val"][:8], "test": []}
    loaders = make_loaders(splits, scale=SCALE, batch_size=RECIPE.batch_size, augment=Augment(crop=RECIPE.crop))
    net = build("fcn32s", WEIGHTS)
    fit(net, loaders["train"], loaders["val"], n_class=N_CLASS, epochs=1, optimizer=_optimizer(net, RECIPE),
        device="cpu", max_steps=STEPS, progress=False)
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "integrity_honest")
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 1])
    parser.add_argument("--images", type=int, default=76,
                        help="predict only the first N test images (the agreement is a share of pixels: fewer "
                             "images estimate it at a fraction of the CPU time)")
    args = parser.parse_args()
    images, labels = eval_split(DATA, "test", SCALE)
    images, labels = images[:args.images], labels[:args.images]
    ids = [p.stem for p in cmp_splits(DATA)["test"]][:args.images]
    folders = []
    for seed in args.seeds:
        start = time.perf_counter()
        net = train(seed)
        folder = args.out / f"seed{seed}"
        save_predictions(folder, "fcn32s", net, images, ids, SCALE)
        _, maps = read_predictions(folder, "fcn32s")
        accuracy = sum(int((maps[i] == l).sum()) for i, l in zip(ids, labels)) / sum(int((l < N_CLASS).sum())
                                                                                     for l in labels)
        folders.append(folder)
        print(f"seed {seed}: test pixel accuracy {accuracy:.3f} ({time.perf_counter() - start:.0f} s)")
    (_, a), (_, b) = (read_predictions(f, "fcn32s") for f in folders)
    same = sum(int((a[i] == b[i]).sum()) for i in ids)
    total = sum(a[i].size for i in ids)
    identical = sum(np.array_equal(a[i], b[i]) for i in ids)
    print(f"{len(ids)} test images of {DATA} at scale {SCALE}: the two seeds agree on "
          f"{same / total:.1%} of all pixels, {sketch_agreement(sketch(a, ids), sketch(b, ids)):.1%} of the sketch; "
          f"{identical} identical maps")


if __name__ == "__main__":
    main()
