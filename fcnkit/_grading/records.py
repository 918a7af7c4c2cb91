"""The records a grading child reports to the grader: plain observations of a submission (its layers,
output shapes, activations for inputs and weights the grader chose), never verdicts.

They are defined once here and used by both sides: the child and the notebook's own checks make
them, the grader judges them. How they cross the process boundary (and are read back as untrusted
data) is the grader's: autograder.isolation.runtime.codec, which is not in this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

@dataclass
class Layer:
    """One module of a submitted model, as ``named_modules`` lists it."""
    name: str
    type: str  # class name; "torch.nn." prefix when it is torch's own class
    in_channels: int = 0
    out_channels: int = 0
    kernel_size: list[int] = field(default_factory=list)
    stride: list[int] = field(default_factory=list)
    padding: list[int] = field(default_factory=list)
    bias: bool = False
    ceil_mode: bool = False
    called: bool = False  # ran during the forward passes of the structure step


@dataclass
class Structure:
    """A freshly built model: its layers, its transposed convolutions' weights as the constructor
    left them, and the output shape for each probe input (empty where forward raised)."""
    kind: str
    layers: list[Layer]
    upsampling_weights: dict[str, np.ndarray]
    output_shapes: list[list[int]]
    forward_error: str = ""
    forward_device: str = "meta"  # "cpu" when forward could not run on the meta device
    unregistered: list[str] = field(default_factory=list)  # modules kept where PyTorch does not see them
    forward_diagnosis: list[str] = field(default_factory=list)  # [code, subject] of forward_error (fcnkit._grading.diagnoses)


@dataclass
class Outputs:
    """Activations of a model holding the grader's seeded weights, at the grader's input, by role
    (pool3, score, the input of upscore8...)."""
    kind: str
    roles: dict[str, str]  # role -> layer name in the submission
    called: list[str]  # layers in the order forward called them
    stages: dict[str, np.ndarray]
    output: np.ndarray | None = None
    error: str = ""
    layers: list[Layer] = field(default_factory=list)  # the model's modules, as Structure lists them
    unregistered: list[str] = field(default_factory=list)
    # where dropout belongs ("relu6": between relu6 and fc7, "relu7": between relu7 and score), float32
    # (4, channels, positions): fc6's (fc7's) output and the next layer's input in training mode (under a
    # fixed generator), then the same two in eval mode; dropout_error: why it could not be observed
    dropout: dict[str, np.ndarray] = field(default_factory=dict)
    dropout_error: str = ""
    error_diagnosis: list[str] = field(default_factory=list)  # [code, subject] of error (fcnkit._grading.diagnoses)


@dataclass
class CopiedLayer:
    """Values of one layer after the submission's copy_params_from_vgg16, at seeded positions."""
    numel: int
    weight_samples: np.ndarray
    weight_sum: float
    bias: np.ndarray


@dataclass
class CopyParams:
    own: bool  # False: the submission uses fcnkit's copy_params_from_vgg16
    layers: dict[str, CopiedLayer] = field(default_factory=dict)
    error: str = ""
    error_diagnosis: list[str] = field(default_factory=list)  # [code, subject] of error (fcnkit._grading.diagnoses)


@dataclass
class Predictions:
    """Class-index maps (uint8) of trained weights on the evaluation images."""
    kind: str
    maps: list[np.ndarray] = field(default_factory=list)


@dataclass
class Failure:
    """The step could not observe anything (e.g. the class could not be built); what to fix."""
    message: str
    diagnosis: list[str] = field(default_factory=list)  # [code, subject] (fcnkit._grading.diagnoses)


RECORDS = {cls.__name__: cls for cls in (Structure, Outputs, CopyParams, Predictions, Failure)}
