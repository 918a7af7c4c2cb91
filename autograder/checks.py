"""The grader's judgements. Each rubric item names one of the functions below; it receives the record
the sandboxed child observed (fcnkit.records) and the run's :class:`Context`, and returns a short
success message or raises CheckFailed with what to fix.

The structural judgements are fcnkit's own (students run them in the notebook, with the same
messages); the ones that need the reference (same outputs with the same weights, the mIoU of trained
weights) live only here, in the grader's process, which never runs student code.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit import judges as student
from fcnkit.judges import OUTPUT_SIZES, CheckFailed
from fcnkit.metrics import confusion, scores
from fcnkit.records import CopyParams, Outputs, Predictions, Structure
from fcnkit.spec import MODEL_CLASSES, N_CLASS, STAGES

EQUIVALENCE_SIZE = (31, 47)  # the smallest inputs cost least; every catalogue mutant is still caught
RELATIVE_TOLERANCE = 1e-4

# Test-split mIoU a trained submission must reach. Set from measured numbers: see docs/results.md
# ("Grading thresholds") for the runs and the margin.
MIOU_THRESHOLDS = {"fcn32s": 0.30, "fcn8s": 0.40}
THRESHOLDS_ENV = "FCNKIT_MIOU_THRESHOLDS"

# What to look at when a stage is the first to depart from the reference's activations.
STAGE_HINTS = {
    "pool3": "check conv1_1 ... conv3_3, the ReLU after each, and pool1 ... pool3 (2x2, stride 2, ceil_mode=True)",
    "pool4": "check conv4_1 ... conv4_3, the ReLU after each, and pool4",
    "pool5": "check conv5_1 ... conv5_3, the ReLU after each, and pool5",
    "fc7 input": "check fc6 and the ReLU and dropout after it (dropout as an nn.Dropout module)",
    "fc7": "check fc7",
    "score input": "check the ReLU and dropout after fc7",
    "score": "check score (a 1x1 convolution on fc7)",
    "upscore2 input": "upscore2 should upsample the score of fc7 alone",
    "upscore2": "check upscore2",
    "score_pool4": "check score_pool4 (a 1x1 convolution on pool4)",
    "sum after upscore2": "check the crop of score_pool4 (expected offset 5) and that it is added to upscore2",
    "upscore_pool4": "check upscore_pool4",
    "score_pool3": "check score_pool3 (a 1x1 convolution on pool3)",
    "sum after upscore_pool4": "check the crop of score_pool3 (expected offset 9) and that it is added to upscore_pool4",
    "upscore8": "upscore8 should upsample that sum",
    "upscore": "check upscore",
}
FINAL_CROP = {"fcn32s": 19, "fcn8s": 31}


def miou_thresholds() -> dict[str, float]:
    """The thresholds, overridable as ``FCNKIT_MIOU_THRESHOLDS="fcn32s=0.35,fcn8s=0.45"``."""
    thresholds = dict(MIOU_THRESHOLDS)
    for part in filter(None, os.environ.get(THRESHOLDS_ENV, "").split(",")):
        model, _, value = part.partition("=")
        if model.strip() not in thresholds:
            raise ValueError(f"{THRESHOLDS_ENV}: unknown model {model!r} (use fcn32s or fcn8s)")
        thresholds[model.strip()] = float(value)
    return thresholds


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class Context:
    """What the judgements of one grading run share: the seed the child's weights and inputs were
    drawn from, and the reference's observations for it: observed once per run by a child of the
    warm worker (:meth:`autograder.grade.GradingRun.start`), else computed here on first use."""
    seed: int
    n_class: int = N_CLASS
    labels: list | None = None  # label maps of the evaluation split, for the mIoU items
    reference: dict = field(default_factory=dict)  # "fcn32s" / "fcn8s": Outputs, "copy": CopyParams
    observed: threading.Event = field(default_factory=lambda: _set(threading.Event()))  # clear while being observed
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reference_outputs(self, kind: str) -> Outputs:
        self.observed.wait()
        with self._lock:
            if kind not in self.reference:
                from .reference.observed import reference_outputs
                self.reference[kind] = reference_outputs(kind, self.seed, self.n_class)
            return self.reference[kind]

    def expected_copy(self) -> dict:
        self.observed.wait()
        with self._lock:
            if "copy" not in self.reference:
                from .reference.observed import expected_copy
                self.reference["copy"] = expected_copy(self.seed)
            return self.reference["copy"].layers


# ----------------------------------------------------------------------------------- the items' checks
def vgg_layers(s: Structure, ctx: Context) -> str:
    return student.judge_vgg_layers(s, ctx.n_class)


def head(s: Structure, ctx: Context) -> str:
    return student.judge_head(s, ctx.n_class)


def output_shape(s: Structure, ctx: Context) -> str:
    return student.judge_output_shape(s, ctx.n_class, OUTPUT_SIZES)


def copy_params(c: CopyParams, ctx: Context) -> str:
    return student.judge_copy_params(c, ctx.expected_copy())


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def equivalence(o: Outputs, ctx: Context) -> str:
    """Same activations as the reference, stage by stage, with the same (seeded) weights: catches
    wrong crop offsets, a missing ReLU, a swapped skip, dropout active in eval mode... and names the
    first stage that departs."""
    if o.error or o.output is None:
        raise CheckFailed(o.error or f"{MODEL_CLASSES[o.kind]} produced no output.")
    if o.repeat is not None:
        student.judge_determinism(o)
    ref, name = ctx.reference_outputs(o.kind), MODEL_CLASSES[o.kind]
    matched: list[str] = []
    for stage, _, _ in STAGES[o.kind]:
        got, want = (o.output, ref.output) if stage == "output" else (o.stages.get(stage), ref.stages.get(stage))
        if got is None or want is None:
            continue
        hint = STAGE_HINTS.get(stage) or f"check the final crop (expected offset {FINAL_CROP[o.kind]})"
        start = f"{name} departs from the reference with the same weights: " + (
            f"it matches up to {matched[-1]}; " if matched else "")
        if got.shape != want.shape:
            raise CheckFailed(f"{start}{stage} is {_dims(got.shape)}, expected {_dims(want.shape)}: {hint}.")
        diff = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
        if not diff < RELATIVE_TOLERANCE:
            raise CheckFailed(f"{start}{stage} differs by {diff:.2g} (relative): {hint}.")
        matched.append(stage)
    return f"matches the reference at every stage ({', '.join(matched)}) with the same weights"


def score_predictions(predictions, labels, n_class: int = N_CLASS) -> dict:
    """fcnkit metrics of predicted maps against label maps (any shape or count mismatch fails)."""
    if len(predictions) != len(labels):
        raise CheckFailed(f"{len(predictions)} predictions for {len(labels)} evaluation images.")
    matrix = np.zeros((n_class, n_class), dtype=np.int64)
    for pred, label in zip(predictions, labels):
        try:
            matrix += confusion(np.asarray(pred), np.asarray(label), n_class)
        except ValueError as err:
            raise CheckFailed(f"a prediction does not fit its label: {err}.") from None
    return scores(matrix)


def judge_miou(kind: str, scores: dict, threshold: float | None = None) -> str:
    threshold = miou_thresholds()[kind] if threshold is None else threshold
    miou = scores["mean_iou"]
    if not miou >= threshold:
        raise CheckFailed(f"{MODEL_CLASSES[kind]} reaches test mIoU {miou:.3f}, below the threshold "
                          f"{threshold:.2f}; train longer or start from ImageNet VGG-16 weights.")
    return f"test mIoU {miou:.3f} >= {threshold:.2f} (pixel accuracy {scores['pixel_acc']:.3f})"


def miou(p: Predictions, ctx: Context) -> str:
    if p.error:
        raise CheckFailed(p.error)
    return judge_miou(p.kind, score_predictions(p.maps, ctx.labels, ctx.n_class))


# ----------------------------------------------------------------------------------- nbgrader's hidden tests
def observe_in_process(item, namespace: dict, ctx: Context, **kwargs):
    """What the grading child would observe for ``item``, observed in this process (for the
    notebook's hidden tests and the catalogue's tests: never for grades of untrusted code)."""
    from fcnkit import checks as notebook, observe
    if item.observes == "copy_params":
        return observe.observe_copy(namespace, item.model, ctx.seed, ctx.n_class)
    model = notebook.build_model(item.model, namespace, ctx.n_class, default_init=item.observes == "predict")
    if item.observes == "structure":
        return observe.observe_structure(model, item.model, OUTPUT_SIZES)
    if item.observes == "outputs":
        return observe.observe_outputs(model, item.model, ctx.seed, EQUIVALENCE_SIZE, ctx.n_class, repeat=False)
    model = notebook.load_weights(model, kwargs["checkpoint"])
    return Predictions(item.model, observe.predict(model, kwargs["images"], kwargs.get("device", "cpu")))


def check_in_process(name: str, namespace: dict, **kwargs) -> None:
    """A rubric item judged in the calling process (the notebook's hidden test cells under
    ``nbgrader autograde``). The student's kernel runs this, so a determined student can tamper
    with it: grades that count come from ``python -m autograder grade``. The mIoU items take the
    folder of the saved predictions and the dataset: ``predictions=..., data=...``."""
    from .rubric import ITEMS
    item, ctx = ITEMS[name], Context(seed=0, labels=kwargs.get("labels"))  # in-process: no helper
    if item.needs_weights and "predictions" in kwargs:
        from . import trained
        _, _, scores = trained.read_and_judge(Path(kwargs["predictions"]), item.model,
                                              trained.LabelSet(Path(kwargs["data"])))
        message = judge_miou(item.model, scores)
    else:
        message = item.check(observe_in_process(item, namespace, ctx, **kwargs), ctx)
    print(f"PASS {item.title} ({item.points} points): {message}")
