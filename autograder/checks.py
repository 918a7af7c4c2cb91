"""The grader's judgements. Each rubric item names one of the functions below; it receives the record
the sandboxed child observed (fcnkit.records) and the run's :class:`Context`, and returns a short
success message or raises CheckFailed with what to fix.

The structural judgements are fcnkit's own (students run them in the notebook and with
``python -m fcnkit check``, with the same messages); for the equivalence items the grader gives them
the reference's activations for the seed it drew for the run (students compare with those of
fcnkit's public seed). The mIoU judgements live only here, in the grader's process, which never
runs student code.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit import judges as student
from fcnkit.judges import EQUIVALENCE_SIZE, OUTPUT_SIZES, CheckFailed, reference_stages  # noqa: F401
from fcnkit.metrics import confusion, scores
from fcnkit.records import CopyParams, Outputs, Predictions, Structure
from fcnkit.spec import MIOU_THRESHOLDS, MODEL_CLASSES, N_CLASS, THRESHOLDS_ENV, miou_thresholds  # noqa: F401

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


def equivalence(o: Outputs, ctx: Context) -> str:
    """The reference's activations for the run's seed, every value of every stage (the notebook
    compares with those of fcnkit's public seed)."""
    return student.judge_equivalence(o, reference_stages(ctx.reference_outputs(o.kind)))


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
        return observe.observe_structure(model, item.model, OUTPUT_SIZES, rebuild=lambda: notebook.build_model(
            item.model, namespace, ctx.n_class, default_init=False))
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
