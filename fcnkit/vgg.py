"""VGG-16 weights for FCNs: loading them (online or offline) and copying them into an FCN."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.models import VGG16_Weights, vgg16

WEIGHTS_ENV = "FCNKIT_VGG16_WEIGHTS"

# The 13 conv layers of VGG-16 in the order of ``vgg16().features``; FCNs use these attribute names.
VGG_CONV_NAMES = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
)


def get_upsampling_weight(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Weight of a ConvTranspose2d that performs bilinear upsampling, channel by channel.

    Shape ``(in_channels, out_channels, k, k)``; channel ``i`` maps to channel ``i`` only.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.ogrid[:kernel_size, :kernel_size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    weight = np.zeros((in_channels, out_channels, kernel_size, kernel_size), dtype=np.float64)
    for i in range(min(in_channels, out_channels)):
        weight[i, i] = filt
    return torch.from_numpy(weight).float()


class WeightsUnavailable(RuntimeError):
    """ImageNet VGG-16 weights could not be had; the message says which setting to use."""


def load_vgg16(weights: str | os.PathLike = "imagenet") -> torch.nn.Module:
    """A torchvision VGG-16 holding ImageNet weights.

    Args:
        weights: ``"imagenet"`` for torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (taken from
            ``$FCNKIT_VGG16_WEIGHTS`` if set, else the torch hub cache, else downloaded), or the
            path of a local state_dict: either a full VGG-16 one (``features.*`` and
            ``classifier.*``) or a features-only one (``0.weight`` ... ``28.bias``). A
            features-only file leaves the classifier (fc6 / fc7 of an FCN) freshly initialised,
            and a warning says so.
    """
    if str(weights) == "imagenet":
        local = os.environ.get(WEIGHTS_ENV)
        if local:
            return load_vgg16(local)
        model = vgg16()
        try:
            model.load_state_dict(VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True))
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a partial download a RuntimeError
            raise WeightsUnavailable(
                f"Could not download torchvision's VGG-16 ImageNet weights ({err}). Offline, set "
                f"{WEIGHTS_ENV} to a local state_dict (e.g. vgg16-397923af.pth, or the features-only "
                f"vgg16_features_tvnorm.pth) or pass its path as weights=."
            ) from None
        return model
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(f"VGG-16 weights file {path} does not exist; check {WEIGHTS_ENV} or weights=.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = vgg16()
    if any(key.startswith("features.") for key in state):
        model.load_state_dict(state, strict=True)
    else:
        model.features.load_state_dict(state, strict=True)
        warnings.warn(
            f"{path.name} holds the conv layers only: the VGG-16 classifier (fc6 / fc7 of an FCN) keeps "
            f"torchvision's fresh initialisation.", stacklevel=2,
        )
    return model


@torch.no_grad()
def copy_params_from_vgg16(fcn: torch.nn.Module, vgg: torch.nn.Module) -> None:
    """Copy VGG-16's conv layers into ``fcn.conv1_1`` ... ``fcn.conv5_3`` and its first two
    fully connected layers into the convolutions ``fcn.fc6`` (7x7) and ``fcn.fc7`` (1x1)."""
    convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    for name, src in zip(VGG_CONV_NAMES, convs, strict=True):
        dst = getattr(fcn, name)
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)
    for name, src in (("fc6", vgg.classifier[0]), ("fc7", vgg.classifier[3])):
        dst = getattr(fcn, name)
        dst.weight.copy_(src.weight.view(dst.weight.shape))
        dst.bias.copy_(src.bias.view(dst.bias.shape))
