"""The reference benchmark (GPU): FCN-32s scratch, FCN-32s ImageNet and FCN-8s ImageNet, each with the
original recipe and with ours, on the original split at half resolution.

    python bench/reference_gpu.py [--epochs 25] [--out runs/reference] [--init imagenet]

Prints a markdown table (paste it into docs/results.md with the device it ran on) and keeps every
checkpoint and metrics JSON under --out. --init may be a VGG-16 state_dict path for offline machines.
"""
import argparse
import os
from pathlib import Path

from autograder.reference.train import train_reference
from fcnkit.data import CLASS_NAMES

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [("fcn32s", "scratch"), ("fcn32s", "imagenet"), ("fcn8s", "imagenet")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "reference")
    parser.add_argument("--init", default="imagenet", help="imagenet, or a VGG-16 state_dict path")
    parser.add_argument("--data", default=os.environ.get("FCNKIT_DATA"))
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()
    rows = []
    for recipe in ("original", "improved"):
        for model, init in CONFIGS:
            init = args.init if init == "imagenet" else init
            out = args.out / f"{model}_{Path(init).stem}_{recipe}"
            m = train_reference(model, init, args.epochs, out, recipe, args.data, args.scale, "auto")
            rows.append((model, "scratch" if init == "scratch" else "ImageNet", recipe, m))
    print(f"device: {rows[0][3]['device']}, {args.epochs} epochs, image scale {args.scale}\n")
    print("| model | init | recipe | test pixel acc | test mIoU | best val mIoU | s / epoch | to val mIoU 0.50 | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, init, recipe, m in rows:
        print(f"| {model} | {init} | {recipe} | {m['test']['pixel_acc']:.3f} | {m['test']['mean_iou']:.3f} | "
              f"{m['best_val_miou']:.3f} | {m['seconds_per_epoch']:.0f} | {m['seconds_to_val_miou'].get('0.5', '-')} | "
              f"{(m['peak_gpu_memory_mb'] or 0):.0f} |")
    print("\n| model | init | recipe | " + " | ".join(CLASS_NAMES) + " |")
    print("|---|---|---|" + "---|" * len(CLASS_NAMES))
    for model, init, recipe, m in rows:
        ious = " | ".join("-" if v is None else f"{v:.2f}" for v in m["test"]["per_class_iou"])
        print(f"| {model} | {init} | {recipe} | {ious} |")


if __name__ == "__main__":
    main()
