"""What is graded and for how many points: one table shared by the notebook's test cells and the CLI."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    model: str  # "fcn32s" or "fcn8s"
    points: int
    title: str


RUBRIC = (
    Item("fcn32s_vgg_layers", "fcn32s", 4, "FCN-32s: VGG-16 layers (names, shapes, padding 100, ceil-mode pools)"),
    Item("fcn32s_head", "fcn32s", 4, "FCN-32s: fc6 / fc7 / score and the 32x bilinear upsampling"),
    Item("fcn32s_output_shape", "fcn32s", 4, "FCN-32s: output has the input's height and width"),
    Item("fcn32s_equivalence", "fcn32s", 8, "FCN-32s: same output as the reference with the same weights"),
    Item("fcn32s_copy_params", "fcn32s", 2, "FCN-32s: copy_params_from_vgg16 copies every layer"),
    Item("fcn32s_miou", "fcn32s", 8, "FCN-32s: trained weights reach the mIoU threshold"),
    Item("fcn8s_vgg_layers", "fcn8s", 4, "FCN-8s: VGG-16 layers (names, shapes, padding 100, ceil-mode pools)"),
    Item("fcn8s_head", "fcn8s", 8, "FCN-8s: score layers, skip scorers and the 2x, 2x, 8x upsamplings"),
    Item("fcn8s_output_shape", "fcn8s", 4, "FCN-8s: output has the input's height and width"),
    Item("fcn8s_equivalence", "fcn8s", 14, "FCN-8s: same output as the reference with the same weights"),
    Item("fcn8s_miou", "fcn8s", 10, "FCN-8s: trained weights reach the mIoU threshold"),
)
ITEMS = {item.name: item for item in RUBRIC}
MODEL_CLASSES = {"fcn32s": "FCN32s", "fcn8s": "FCN8s"}

# Test-split mIoU a trained submission must reach. Set from measured numbers: see docs/results.md
# ("Grading thresholds") for the runs and the margin.
MIOU_THRESHOLDS = {"fcn32s": 0.30, "fcn8s": 0.40}
THRESHOLDS_ENV = "FCNKIT_MIOU_THRESHOLDS"


def miou_thresholds() -> dict[str, float]:
    """The thresholds, overridable as ``FCNKIT_MIOU_THRESHOLDS="fcn32s=0.35,fcn8s=0.45"``."""
    thresholds = dict(MIOU_THRESHOLDS)
    for part in filter(None, os.environ.get(THRESHOLDS_ENV, "").split(",")):
        model, _, value = part.partition("=")
        if model.strip() not in thresholds:
            raise ValueError(f"{THRESHOLDS_ENV}: unknown model {model!r} (use fcn32s or fcn8s)")
        thresholds[model.strip()] = float(value)
    return thresholds
