"""Where each feature map sits on the input image: the arithmetic behind the FCNs' crop offsets.

Index ``i`` of a feature map is centred on input pixel ``stride * i + start`` (a :class:`Grid`). A
convolution or pool with kernel ``k``, stride ``s`` and padding ``p`` centres its output ``i`` on its
input ``s * i + (k - 1) / 2 - p``; a transposed convolution inverts that. Two maps of the same stride
line up when one is cropped at ``(start of the other - its own start) / stride``. Computed from the
layers a model holds (their kernel, stride and padding), so a layer defined differently gives other
offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .spec import MODEL_CLASSES, MODEL_TITLES, VGG_CONV_NAMES

# The VGG-16 part in forward order: the 13 convolutions with a pool after each block, then fc6, fc7.
VGG_PATH = (*VGG_CONV_NAMES[:2], "pool1", *VGG_CONV_NAMES[2:4], "pool2", *VGG_CONV_NAMES[4:7], "pool3",
            *VGG_CONV_NAMES[7:10], "pool4", *VGG_CONV_NAMES[10:], "pool5", "fc6", "fc7")


@dataclass(frozen=True)
class Grid:
    """Index ``i`` of a map is centred on input pixel ``stride * i + start``."""
    stride: float = 1.0
    start: float = 0.0

    def after(self, layer: nn.Module, name: str = "the layer") -> "Grid":
        """The grid of ``layer``'s output, given that its input lies on this grid."""
        if not all(hasattr(layer, a) for a in ("kernel_size", "stride", "padding")):
            raise ValueError(f"{name} is a {type(layer).__name__}, which has no kernel, stride and padding to follow")
        k, s, p = (_first(getattr(layer, a)) for a in ("kernel_size", "stride", "padding"))
        if isinstance(layer, nn.ConvTranspose2d):
            return Grid(self.stride / s, self.start - self.stride / s * ((k - 1) / 2 - p))
        return Grid(self.stride * s, self.start + self.stride * ((k - 1) / 2 - p))

    def offset_in(self, larger: "Grid") -> float:
        """Where to start cropping ``larger`` (same stride) so that its index 0 lines up with this grid's."""
        if larger.stride != self.stride:
            raise ValueError(f"maps of strides {larger.stride:g} and {self.stride:g} do not line up (a crop cannot "
                             f"align maps of different strides: check the upsamplings' strides)")
        return (self.start - larger.start) / self.stride


def _first(value) -> float:
    return float(value[0] if isinstance(value, tuple) else value)


def trace(model: nn.Module, names=VGG_PATH) -> dict[str, Grid]:
    """The grid of each named layer's output, in order, from the input image (stride 1, start 0)."""
    grids, grid = {}, Grid()
    for name in names:
        layer = getattr(model, name, None)
        if layer is None:
            raise AttributeError(f"the model has no layer {name!r}; the FCNs need VGG-16's layers under its names")
        grid = grids[name] = grid.after(layer, name)
    return grids


def crop_offsets(model: nn.Module) -> dict[str, float]:
    """The crop offsets a model's layers call for: ``{"upscore": 19.0}`` for FCN-32s's layers,
    ``{"score_pool4": 5.0, "score_pool3": 9.0, "upscore8": 31.0}`` for FCN-8s's (the map named is
    the one cropped; the final crop is of the upsampled output, against the input image)."""
    grids = trace(model)
    image = Grid()
    if hasattr(model, "upscore8"):  # FCN-8s: fc7's scores up 2x, + pool4's; up 2x, + pool3's; up 8x
        fused16 = grids["fc7"].after(_layer(model, "upscore2"), "upscore2")
        fused8 = fused16.after(_layer(model, "upscore_pool4"), "upscore_pool4")
        return {"score_pool4": fused16.offset_in(grids["pool4"]), "score_pool3": fused8.offset_in(grids["pool3"]),
                "upscore8": image.offset_in(fused8.after(model.upscore8, "upscore8"))}
    return {"upscore": image.offset_in(grids["fc7"].after(_layer(model, "upscore"), "upscore"))}


def _layer(model: nn.Module, name: str) -> nn.Module:
    layer = getattr(model, name, None)
    if layer is None:
        raise AttributeError(f"the model has no layer {name!r}, which the derivation follows")
    return layer


def show_offsets(kind: str, build, grids: bool = True) -> None:
    """Print the grid of each pool and fc layer (``grids``) and the crop offsets of the model
    ``build()`` makes; on a model that cannot be built or followed, why, and which check reports it.
    Never raises: this is the notebook's derivation, not a check.

    Args:
        kind: "fcn32s" or "fcn8s".
        build: makes the model (e.g. ``lambda: build_model("fcn32s", globals(), default_init=False)``).
    """
    try:
        model = build()
        traced = trace(model)
        offsets = crop_offsets(model)
    except Exception as err:  # noqa: BLE001 (the student's model: anything may go wrong)
        words = str(err).replace("'", " ").split()
        followed = isinstance(err, (AttributeError, ValueError))
        check = (f"{kind}_vgg_layers" if followed and any(n in words for n in VGG_PATH[:-2])
                 else f"{kind}_head" if followed else "")
        where = f"{check} (its check cell above) reports" if check else "The check cells above report"
        print(f"The crop offsets of your {MODEL_CLASSES[kind]} cannot be derived: {type(err).__name__}: "
              f"{str(err).rstrip('.')}. "
              f"{where} what to fix; then run this cell again.")
        return
    if grids:
        for name, grid in traced.items():
            if name.startswith(("pool", "fc")) or name == "conv1_1":
                print(f"{name:8s} stride {grid.stride:3g}: index 0 is centred on input pixel {grid.start:g}")
    print(f"{MODEL_TITLES[kind]}'s crop offsets, from your layers: {offsets}")
    fractional = [name for name, offset in offsets.items() if offset != int(offset)]
    if fractional:
        print(f"{', '.join(fractional)}: not a whole number of pixels, so no crop lines the maps up (their grids are a "
              f"fraction of a pixel apart): a layer before it strides, pads or pools otherwise than the text "
              f"says (the layer checks above compare each with the text).")
