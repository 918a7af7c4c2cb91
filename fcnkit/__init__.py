"""fcnkit: data, metrics, VGG-16 weights, training loop and figures for the FCN assignment.

The names below are imported on first use (PEP 562), so that ``import fcnkit.records`` or
``fcnkit.judges`` does not pay for torch and torchvision."""
import importlib

_HOMES = {
    "data": ("CLASS_NAMES", "IGNORE_INDEX", "N_CLASS", "CMPFacade", "cmp_splits", "make_loaders", "pad_collate",
             "revert_input"),
    "metrics": ("ConfusionMatrix",),
    "train": ("evaluate", "fit", "load_checkpoint", "save_checkpoint", "seed_everything"),
    "vgg": ("copy_params_from_vgg16", "get_upsampling_weight", "load_vgg16"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__version__ = "0.2.0"
__all__ = list(_HOME_OF)


def __getattr__(name: str):
    if name in _HOME_OF:
        return getattr(importlib.import_module(f".{_HOME_OF[name]}", __name__), name)
    raise AttributeError(f"module 'fcnkit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
