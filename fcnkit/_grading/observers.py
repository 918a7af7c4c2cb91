"""The observations, one table for everyone who makes them: the grading child
(``autograder/isolation/runtime/steps.py``), the grader's in-process path (``autograder.judging.observations``:
nbgrader's hidden tests, the catalogue's tests) and the notebook's checks (:mod:`fcnkit.checks`).

Each observer takes the namespace the submission's definitions ran in, the model's kind and a
:class:`Setup` (the seed of the weights and inputs, the number of classes, and what some observations
need besides) and returns the record the judgements read (:mod:`fcnkit._grading.records`); a model that cannot
be built or run raises :class:`~fcnkit._grading.observe.ObservationError`. A rubric item names its row in
``observes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from torch import nn

from . import observe
from .judges import EQUIVALENCE_SIZE, OUTPUT_SIZES
from .records import CopyParams, Outputs, Predictions, Structure


@dataclass(frozen=True)
class Setup:
    """Where a model is observed.

    Args:
        seed: draws the weights and inputs of the outputs and copy observations.
        n_class: the number of classes the model is built for.
        vgg: a seeded VGG-16 to copy from, kept by the caller (None: one is made for the copy).
        checkpoint: the trained weights, an open file (the predict observation).
        images: the evaluation images (the predict observation), on ``device``.
    """
    seed: int
    n_class: int
    vgg: nn.Module | None = None
    checkpoint: BinaryIO | None = None
    images: list | None = None
    device: str = "cpu"


def _model(namespace: dict, kind: str, setup: Setup) -> nn.Module:
    # no random initialisation: every observation sets the weights it looks at, or only their shapes
    return observe.build(namespace, kind, setup.n_class, default_init=False)


def observe_structure(namespace: dict, kind: str, setup: Setup) -> Structure:
    return observe.observe_structure(_model(namespace, kind, setup), kind, OUTPUT_SIZES,
                                     rebuild=lambda: _model(namespace, kind, setup))


def observe_outputs(namespace: dict, kind: str, setup: Setup) -> Outputs:
    return observe.observe_outputs(_model(namespace, kind, setup), kind, setup.seed, EQUIVALENCE_SIZE, setup.n_class)


def observe_copy(namespace: dict, kind: str, setup: Setup) -> CopyParams:
    return observe.observe_copy(namespace, kind, setup.seed, setup.n_class, vgg=setup.vgg)


def observe_predictions(namespace: dict, kind: str, setup: Setup) -> Predictions:
    from ..train import load_weights
    model = load_weights(_model(namespace, kind, setup), setup.checkpoint)
    return Predictions(kind=kind, maps=observe.predict(model, setup.images, setup.device))


OBSERVERS = {  # what a rubric item names in ``observes`` -> its observer
    "structure": observe_structure,
    "outputs": observe_outputs,
    "copy_params": observe_copy,
    "predict": observe_predictions,
}
