"""The notebook's own checks: the student's model observed in the notebook's process and judged by
the grader's functions (:mod:`fcnkit.judges`), so students see the grader's messages without its
hidden checks."""
from __future__ import annotations

from torch import nn

from . import observe
from .data import N_CLASS
from .judges import (OUTPUT_SIZES, CheckFailed, judge_copy_params, judge_determinism, judge_head,
                     judge_output_shape, judge_vgg_layers)
from .observe import ObservationError
from .predictions import report_miou
from .spec import MODEL_CLASSES


def expected_copy(seed: int) -> dict:
    """What a correct copy_params_from_vgg16 leaves in each layer, from the seeded VGG-16."""
    return observe.seeded_copy(seed)


# ----------------------------------------------------------------------------------- trained weights
def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a submitted checkpoint safely: a state_dict (or {"state_dict": ...}), weights only."""
    from .train import load_checkpoint
    try:
        load_checkpoint(path, model)
    except FileNotFoundError:
        raise CheckFailed(f"checkpoint {path} not found; save model.state_dict() there.") from None
    except RuntimeError as err:
        if "state_dict" not in str(err):
            raise
        first = str(err).strip().splitlines()
        raise CheckFailed(f"checkpoint {path} does not fit the model: {' '.join(first[:3])[:400]}") from None
    except Exception as err:  # a pickled object, a corrupt file...
        raise CheckFailed(f"checkpoint {path} is not a plain state_dict ({type(err).__name__}: "
                          f"{str(err)[:200]}); save with torch.save(model.state_dict(), path).") from None
    return model


# ----------------------------------------------------------------------------------- in the notebook
def build_model(kind: str, namespace: dict, n_class: int = N_CLASS, default_init: bool = True) -> nn.Module:
    """Build ``FCN32s`` / ``FCN8s`` (eval mode) as the grader does, with its message when that fails.
    ``default_init=False`` skips torch's random initialisation of convolutions (for checks that
    look at shapes, or overwrite the weights)."""
    try:
        return observe.build(namespace, kind, n_class, default_init)
    except ObservationError as err:
        raise CheckFailed(str(err)) from None


def _student_check(part: str, kind: str, namespace: dict, n_class: int, **kwargs) -> str | None:
    if part in ("vgg_layers", "head", "output_shape"):
        structure = observe.observe_structure(build_model(kind, namespace, n_class, False), kind, OUTPUT_SIZES)
        return {"vgg_layers": judge_vgg_layers, "head": judge_head, "output_shape": judge_output_shape}[part](
            structure, n_class)
    if part == "equivalence":
        outputs = observe.observe_outputs(build_model(kind, namespace, n_class, False), kind, 0, (50, 60), n_class)
        return judge_determinism(outputs) + "; the grader compares it with the reference"
    if part == "copy_params":
        try:
            copied = observe.observe_copy(namespace, kind, 0, n_class)
        except ObservationError as err:
            raise CheckFailed(str(err)) from None
        return judge_copy_params(copied, expected_copy(0))
    return None  # a check of the grader's alone (e.g. one an instructor added to the rubric)


def check(name: str, namespace: dict, n_class: int = N_CLASS, **kwargs) -> None:
    """Run the student-side part of a rubric item (e.g. ``check("fcn8s_head", globals())``): prints
    PASS with what was checked, or raises CheckFailed with what to fix. The grader runs the same
    judgement on its own observation of the model, plus the checks that need the reference. (It
    returns nothing, so that nbgrader reads no output value as partial credit.)"""
    kind, _, part = name.partition("_")
    if kind not in MODEL_CLASSES:
        raise KeyError(f"unknown check {name!r}; names look like fcn32s_head")
    if part == "miou":  # PASS or BELOW THRESHOLD, printed: a run of the whole notebook goes on to FCN-8s
        return report_miou(kind, kwargs["predictions"], kwargs["data"], n_class)
    message = _student_check(part, kind, namespace, n_class, **kwargs)
    print(f"PASS {name}: {message}" if message else f"{name}: checked by the grader only (no student-side check)")
