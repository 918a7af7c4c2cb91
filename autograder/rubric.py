"""What is graded and for how many points: one table shared by the notebook's test cells and the CLI.

Each item names the observation the grading child makes (``observes``: a row of
autograder.judging.observations) and the judgement students run on it too (``judged_by``: a key of
fcnkit.checks.JUDGEMENTS, the same messages); the grader's judgement is the function registered under the
item's name in autograder.judging (``@judgement("fcn32s_head", ...)``)."""
from __future__ import annotations

from dataclasses import dataclass

from .results import Status

NOT_GRADED = Status.NOT_GRADED  # a check's status when the run did not grade it (no trained results given)
FLAGGED = Status.FLAGGED  # not credited, for a person to review (e.g. implausible submitted predictions)


@dataclass(frozen=True)
class Item:
    name: str
    model: str  # "fcn32s" or "fcn8s"
    points: int
    title: str
    observes: str  # an observation of autograder.judging.observations: "structure", "outputs", "copy_params", "predict"
    judged_by: str  # the judgement students run too (a key of fcnkit.checks.JUDGEMENTS); "" for the grader's alone
    needs_weights: bool = False  # graded from trained results (submitted predictions, or weights)
    hidden: bool = False  # the notebook's test cell hides this check (Gradescope shows it after publication)


RUBRIC = (
    Item("fcn32s_vgg_layers", "fcn32s", 4, "FCN-32s: VGG-16 layers (names, shapes, padding 100, ceil-mode pools)",
         "structure", "vgg_layers"),
    Item("fcn32s_head", "fcn32s", 4, "FCN-32s: fc6 / fc7 / score and the 32x bilinear upsampling",
         "structure", "head"),
    Item("fcn32s_output_shape", "fcn32s", 4, "FCN-32s: output has the input's height and width",
         "structure", "output_shape"),
    Item("fcn32s_equivalence", "fcn32s", 6, "FCN-32s: same output as the reference with the same weights",
         "outputs", "equivalence", hidden=True),
    Item("fcn32s_dropout", "fcn32s", 2, "FCN-32s: Dropout2d(p=0.5) after relu6 and relu7, inert in eval mode",
         "outputs", "dropout"),
    Item("fcn32s_copy_params", "fcn32s", 2, "FCN-32s: copy_params_from_vgg16 copies every layer",
         "copy_params", "copy_params"),
    Item("fcn32s_miou", "fcn32s", 8, "FCN-32s: the trained model's test predictions reach the mIoU threshold",
         "predict", "miou", needs_weights=True),
    Item("fcn8s_vgg_layers", "fcn8s", 4, "FCN-8s: VGG-16 layers (names, shapes, padding 100, ceil-mode pools)",
         "structure", "vgg_layers"),
    Item("fcn8s_head", "fcn8s", 8, "FCN-8s: score layers, skip scorers and the 2x, 2x, 8x upsamplings",
         "structure", "head"),
    Item("fcn8s_output_shape", "fcn8s", 4, "FCN-8s: output has the input's height and width",
         "structure", "output_shape"),
    Item("fcn8s_equivalence", "fcn8s", 12, "FCN-8s: same output as the reference with the same weights",
         "outputs", "equivalence", hidden=True),
    Item("fcn8s_dropout", "fcn8s", 2, "FCN-8s: Dropout2d(p=0.5) after relu6 and relu7, inert in eval mode",
         "outputs", "dropout"),
    Item("fcn8s_miou", "fcn8s", 10, "FCN-8s: the trained model's test predictions reach the mIoU threshold",
         "predict", "miou", needs_weights=True),
)
ITEMS = {item.name: item for item in RUBRIC}
