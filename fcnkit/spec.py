"""What the assignment fixes, as plain data (numpy only, so that the grader's own process never
imports torch): the classes and their colours, the model classes, VGG-16's layer names and channels, the upsamplings of each FCN,
the bilinear filter they start from, and the stages at which activations are compared."""
from __future__ import annotations

import os

import numpy as np

# The CMP Facade labels 1..12, trained on as label - 1.
CLASS_NAMES = (
    "background", "facade", "window", "door", "cornice", "sill",
    "balcony", "blind", "deco", "molding", "pillar", "shop",
)
N_CLASS = len(CLASS_NAMES)
IGNORE_INDEX = 255  # the label of pixels that count for nothing (padding)
# The label PNGs' own palette (entries 1..12), so our colours match every other CMP Facade figure.
PALETTE = (
    (0, 0, 170), (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255), (85, 255, 170),
    (170, 255, 85), (255, 255, 0), (255, 170, 0), (255, 85, 0), (255, 0, 0), (170, 0, 0),
)
MODEL_CLASSES = {"fcn32s": "FCN32s", "fcn8s": "FCN8s"}
MODEL_TITLES = {"fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}

# Test-split mIoU each trained model must reach for its mIoU item: the grader's thresholds (set from
# measured runs, docs/results.md "Grading thresholds"), stated in the notebook; an instructor may
# change them with FCNKIT_MIOU_THRESHOLDS="fcn32s=0.35,fcn8s=0.45".
MIOU_THRESHOLDS = {"fcn32s": 0.30, "fcn8s": 0.40}
THRESHOLDS_ENV = "FCNKIT_MIOU_THRESHOLDS"


def miou_thresholds() -> dict[str, float]:
    """The thresholds in force: :data:`MIOU_THRESHOLDS`, with FCNKIT_MIOU_THRESHOLDS's overrides."""
    thresholds = dict(MIOU_THRESHOLDS)
    for part in filter(None, os.environ.get(THRESHOLDS_ENV, "").split(",")):
        model, _, value = part.partition("=")
        if model.strip() not in thresholds:
            raise ValueError(f"{THRESHOLDS_ENV}: unknown model {model!r} (use fcn32s or fcn8s)")
        thresholds[model.strip()] = float(value)
    return thresholds

# The 13 conv layers of VGG-16 in the order of ``vgg16().features``; FCNs use these attribute names.
VGG_CONV_NAMES = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
)
NAMED = (*VGG_CONV_NAMES, "fc6", "fc7")  # layers the assignment names; the others are found by structure
VGG_CHANNELS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))
# Where copy_params_from_vgg16 takes each layer from in torchvision's vgg16(): (FCN layer, VGG-16
# module, its weight's shape); fc6 and fc7 come from the classifier's linear layers, reshaped.
VGG16_SOURCES = (
    *((name, f"features.{index}", (out_ch, in_ch, 3, 3)) for name, index, (in_ch, out_ch) in
      zip(VGG_CONV_NAMES, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), VGG_CHANNELS)),
    ("fc6", "classifier.0", (4096, 25088)), ("fc7", "classifier.3", (4096, 4096)),
)
UPSAMPLINGS = {"fcn32s": [(64, 32)], "fcn8s": [(4, 2), (4, 2), (16, 8)]}  # (kernel, stride) of each
# Where dropout goes: place -> (the layer before its ReLU, the dropout, the layer after it). "score" stands for
# the first convolution of fc7's 4096 channels that runs after fc7 (FCN-8s's may be named otherwise).
DROPOUT = {"relu6": ("fc6", "drop6", "fc7"), "relu7": ("fc7", "drop7", "score")}


def bilinear_filter(kernel_size: int) -> np.ndarray:
    """The ``k x k`` bilinear interpolation kernel a transposed convolution of stride ``(k + 1) // 2``
    starts from."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.ogrid[:kernel_size, :kernel_size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def upsampling_weight(in_channels: int, out_channels: int, kernel_size: int) -> np.ndarray:
    """``(in_channels, out_channels, k, k)``: channel ``i`` upsampled bilinearly into channel ``i`` only."""
    weight = np.zeros((in_channels, out_channels, kernel_size, kernel_size), dtype=np.float64)
    for i in range(min(in_channels, out_channels)):
        weight[i, i] = bilinear_filter(kernel_size)
    return weight


# What is compared with the reference, in forward order: (stage, role, "in" or "out" of that layer).
STAGES = {
    "fcn32s": (("pool3", "pool3", "out"), ("pool4", "pool4", "out"), ("pool5", "pool5", "out"),
               ("fc7 input", "fc7", "in"), ("fc7", "fc7", "out"), ("score input", "score", "in"),
               ("score", "score", "out"), ("upscore", "upscore", "out"), ("output", "", "out")),
    "fcn8s": (("pool3", "pool3", "out"), ("pool4", "pool4", "out"), ("pool5", "pool5", "out"),
              ("fc7 input", "fc7", "in"), ("fc7", "fc7", "out"), ("score input", "score", "in"),
              ("score", "score", "out"), ("upscore2 input", "upscore2", "in"), ("upscore2", "upscore2", "out"),
              ("score_pool4", "score_pool4", "out"),
              ("sum after upscore2", "upscore_pool4", "in"), ("upscore_pool4", "upscore_pool4", "out"),
              ("score_pool3", "score_pool3", "out"), ("sum after upscore_pool4", "upscore8", "in"),
              ("upscore8", "upscore8", "out"), ("output", "", "out")),
}


def colorize(label) -> np.ndarray:
    """Colour a label map (values 0..11) with the dataset palette; ignored pixels are black."""
    label = np.asarray(label.cpu() if hasattr(label, "cpu") else label)  # a numpy array or a torch tensor
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:N_CLASS] = PALETTE
    return table[label.clip(0, 255).astype(np.int64)]
