"""VGG-16 weights for FCNs: loading them (online or offline) and copying them into an FCN."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from .spec import VGG_CONV_NAMES, upsampling_weight

WEIGHTS_ENV = "FCNKIT_VGG16_WEIGHTS"



def get_upsampling_weight(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Weight of a ConvTranspose2d that performs bilinear upsampling, channel by channel.

    Shape ``(in_channels, out_channels, k, k)``; channel ``i`` maps to channel ``i`` only.
    """
    return torch.from_numpy(upsampling_weight(in_channels, out_channels, kernel_size)).float()


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
    from torchvision.models import VGG16_Weights, vgg16  # here: importing torchvision takes a second
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
