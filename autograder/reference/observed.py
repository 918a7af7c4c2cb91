"""The reference's observations for a seed, computed in the calling process: what the grader falls
back on when the run's child could not observe the reference (autograder.pipeline.run.GradingRun), and
what the notebook's hidden tests and the catalogue's tests use."""
from __future__ import annotations

import torch

from fcnkit._grading import records
from fcnkit._grading.observe import observe_outputs
from fcnkit._grading.judges import EQUIVALENCE_SIZE

from . import models


def reference_model(kind: str, n_class: int) -> torch.nn.Module:
    """The reference model, allocated without paying for its default initialisation (every
    convolution is overwritten by the seeded weights before use)."""
    with torch.device("meta"):
        model = models.MODELS[kind](n_class)
    return model.to_empty(device="cpu").eval()


def reference_outputs(kind: str, seed: int, n_class: int) -> records.Outputs:
    return observe_outputs(reference_model(kind, n_class), kind, seed, EQUIVALENCE_SIZE, n_class)
