"""The observations the grader judges, in one table: what a rubric item ``observes`` names.

For each: the record the grading child writes (:mod:`fcnkit.records`), the step the child runs to
make it (the ``op`` of a step: the child dispatches on it), and the observer that makes the same
record in the calling process (for nbgrader's hidden tests and the catalogue's tests, never for
grades of untrusted code). A new kind of observation is a row here, its record, and its step in
the child.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fcnkit.judges import EQUIVALENCE_SIZE, OUTPUT_SIZES
from fcnkit.records import CopyParams, Outputs, Predictions, Structure

from .context import Context


@dataclass(frozen=True)
class Observation:
    name: str  # what rubric items name in ``observes``
    record: type  # the record the child writes for it
    step: str  # the op of the child's step that makes it
    observe: Callable  # (kind, namespace, Context, **kwargs) -> record, in the calling process
    takes_weights: bool = False  # the child is handed the trained weights (and the evaluation images) as files

    def step_id(self, kind: str) -> str:
        """The id of the step for model ``kind``; the child writes its record to ``<id>.rec``."""
        return f"{self.step}-{kind}"

    def step_for(self, kind: str) -> dict:
        """The step the child is sent for model ``kind``."""
        step = {"id": self.step_id(kind), "op": self.step, "kind": kind}
        if self.takes_weights:
            step["checkpoint"] = f"checkpoint-{kind}"
        return step


def _model(kind: str, namespace: dict, ctx: Context, default_init: bool = False):
    from fcnkit import checks as notebook
    return notebook.build_model(kind, namespace, ctx.n_class, default_init=default_init)


def _structure(kind: str, namespace: dict, ctx: Context, **_) -> Structure:
    from fcnkit import observe
    return observe.observe_structure(_model(kind, namespace, ctx), kind, OUTPUT_SIZES,
                                     rebuild=lambda: _model(kind, namespace, ctx))


def _outputs(kind: str, namespace: dict, ctx: Context, **_) -> Outputs:
    from fcnkit import observe
    return observe.observe_outputs(_model(kind, namespace, ctx), kind, ctx.seed, EQUIVALENCE_SIZE, ctx.n_class)


def _copy_params(kind: str, namespace: dict, ctx: Context, **_) -> CopyParams:
    from fcnkit import observe
    return observe.observe_copy(namespace, kind, ctx.seed, ctx.n_class)


def _predict(kind: str, namespace: dict, ctx: Context, **kwargs) -> Predictions:
    """``checkpoint``: the trained weights, ``images``: the evaluation images (``device``: where)."""
    from fcnkit import observe
    from fcnkit.train import load_weights
    model = load_weights(_model(kind, namespace, ctx, default_init=True), kwargs["checkpoint"])
    return Predictions(kind, observe.predict(model, kwargs["images"], kwargs.get("device", "cpu")))


OBSERVATIONS = {o.name: o for o in (
    Observation("structure", Structure, "structure", _structure),
    Observation("outputs", Outputs, "outputs", _outputs),
    Observation("copy_params", CopyParams, "copy_params", _copy_params),
    Observation("predict", Predictions, "predict", _predict, takes_weights=True),
)}
