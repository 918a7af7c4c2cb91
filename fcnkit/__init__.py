"""fcnkit: what the FCN assignment's notebook uses around the parts students write.

Its face, ``__all__``, is exactly what the release notebook imports (``tests/test_packaging.py`` reads the
notebook to keep it so): the modules ``data`` and ``viz``, and the names below, each from the module that
defines it, imported on first use (PEP 562) so that ``import fcnkit.spec`` does not pay for torch and
torchvision. Around the face, the library it stands on (``metrics``, ``splits``); and, internal, the
machinery of the checks that the grader shares (``fcnkit._grading``: observing a model, judging it,
diagnoses), with no stable API (``docs/fcnkit.md``)."""
import importlib

_MODULES = ("data", "viz")
_HOMES = {
    "checks": ("build_model", "check"),
    "offsets": ("crop_offsets", "show_offsets", "trace"),
    "predictions": ("save_predictions", "score_saved"),
    "spec": ("MODEL_TITLES", "miou_thresholds"),
    "train": ("evaluate", "fit", "resolve_device", "save_checkpoint", "seed_everything"),
    "vgg": ("WeightsUnavailable", "copy_params_from_vgg16", "get_upsampling_weight", "load_vgg16"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__version__ = "0.3.0"
__all__ = [*_MODULES, *_HOME_OF]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _HOME_OF:
        return getattr(importlib.import_module(f".{_HOME_OF[name]}", __name__), name)
    raise AttributeError(f"module 'fcnkit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
