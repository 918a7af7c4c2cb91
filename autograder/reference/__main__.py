"""``python -m autograder.reference train --model fcn32s|fcn8s --init scratch|imagenet|PATH ...``"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fcnkit.data import DATA_ENV, DataError
from fcnkit.vgg import WEIGHTS_ENV, WeightsUnavailable
from .train import RECIPES, train_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.reference", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train a reference model and save its checkpoint and metrics")
    t.add_argument("--model", required=True, choices=["fcn32s", "fcn8s"])
    t.add_argument("--init", default="imagenet",
                   help=f"scratch, imagenet (torchvision's weights, or ${WEIGHTS_ENV}) or a VGG-16 state_dict path")
    t.add_argument("--recipe", default="original", choices=sorted(RECIPES))
    t.add_argument("--epochs", type=int, default=25)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1...")
    t.add_argument("--out", type=Path, required=True, help="folder for <model>.pt and <model>_metrics.json")
    t.add_argument("--data", help=f"dataset root (default ${DATA_ENV})")
    t.add_argument("--scale", type=float, default=0.5, help="image scale (0.5: half resolution)")
    t.add_argument("--limit", type=int, help="use only the first N images of each split (quick runs)")
    t.add_argument("--max-steps", type=int, help="batches per epoch at most (quick runs)")
    t.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        metrics = train_reference(args.model, args.init, args.epochs, args.out, args.recipe, args.data, args.scale,
                                  args.device, args.limit, args.max_steps, args.seed)
    except (DataError, WeightsUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    test = metrics["test"]
    print(f"{args.model} ({args.init}, {args.recipe}): test pixel accuracy {test['pixel_acc']:.3f}, "
          f"mIoU {test['mean_iou']:.3f}; {metrics['seconds_per_epoch']:.1f} s/epoch; saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
