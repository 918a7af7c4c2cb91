"""The assignment's lesson at CPU scale: FCN-32s from ImageNet conv weights vs from scratch.

    python bench/pretraining_cpu.py [--out runs/pretraining_cpu]

Same subset, crops, steps and recipe for both; only the initialisation of the (frozen) conv layers
differs, and only the score layer trains. Prints a markdown table of validation / test scores. Needs the full dataset (FCNKIT_DATA, default ../shared/data/cmp_facade)
and the VGG-16 conv weights (FCNKIT_VGG16_WEIGHTS, default ../shared/weights/vgg16_features_tvnorm.pth).
About 14 minutes on 2 CPU cores.
"""
import argparse
import dataclasses
import os
import time
from pathlib import Path

from autograder.reference.train import RECIPES, train_reference

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))
DATA = os.environ.get("FCNKIT_DATA", str(SHARED / "data" / "cmp_facade"))
WEIGHTS = os.environ.get("FCNKIT_VGG16_WEIGHTS", str(SHARED / "weights" / "vgg16_features_tvnorm.pth"))
SETTINGS = dict(model="fcn32s", epochs=3, max_steps=45, limit=120, scale=0.25, device="cpu")
# To fit 15 CPU minutes only the score layer learns (a probe): everything below it stays as initialised,
# conv layers from ImageNet or random, fc6 / fc7 random in both (the shared weights have no classifier).
# The experiment isolates what ImageNet conv features bring.
RECIPE = dataclasses.replace(RECIPES["improved"], name="score-probe-cpu", lr=1e-3, head_lr=1e-3, crop=96,
                             schedule="constant", trainable=("score",), amp=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "pretraining_cpu")
    args = parser.parse_args()
    rows = []
    for init in ("scratch", WEIGHTS):
        start = time.perf_counter()
        m = train_reference(init=init, out=args.out / Path(init).stem, recipe=RECIPE, data_root=DATA,
                            progress=False, **SETTINGS)
        rows.append(("scratch" if init == "scratch" else "ImageNet conv", m, time.perf_counter() - start))
    print(f"FCN-32s, {SETTINGS['limit']} training images at scale {SETTINGS['scale']}, crops {RECIPE.crop}, "
          f"batch {RECIPE.batch_size}, {SETTINGS['epochs']} x {SETTINGS['max_steps']} steps, recipe {RECIPE.name}\n")
    print("| init | val mIoU (best) | test pixel acc | test mIoU | wall time |")
    print("|---|---|---|---|---|")
    for name, m, seconds in rows:
        print(f"| {name} | {m['best_val_miou']:.3f} | {m['test']['pixel_acc']:.3f} | {m['test']['mean_iou']:.3f} "
              f"| {seconds / 60:.1f} min |")


if __name__ == "__main__":
    main()
