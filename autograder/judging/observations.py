"""The observations the grader judges, in one table: what a rubric item ``observes`` names.

For each: the record the grading child writes (:mod:`fcnkit._grading.records`) and whether the child is handed
the trained weights. The child makes it with fcnkit's observer of the same name
(:data:`fcnkit._grading.observers.OBSERVERS`, the one table the notebook's checks use too), sent as the ``op`` of
a step; :meth:`Observation.observe` makes the same record in the calling process (nbgrader's hidden
tests and the catalogue's tests, never grades of untrusted code). A new kind of observation is a row
here, its record, and its observer in fcnkit.
"""
from __future__ import annotations

from dataclasses import dataclass

from fcnkit._grading.records import CopyParams, Outputs, Predictions, Structure

from .context import Context


@dataclass(frozen=True)
class Observation:
    name: str  # what rubric items name in ``observes``, and the op of the child's step
    record: type  # the record the child writes for it
    takes_weights: bool = False  # the child is handed the trained weights (and the evaluation images) as files

    def step_id(self, kind: str) -> str:
        """The id of the step for model ``kind``; the child writes its record to ``<id>.rec``."""
        return f"{self.name}-{kind}"

    def step_for(self, kind: str) -> dict:
        """The step the child is sent for model ``kind``."""
        step = {"id": self.step_id(kind), "op": self.name, "kind": kind}
        if self.takes_weights:
            step["checkpoint"] = f"checkpoint-{kind}"
        return step

    def observe(self, kind: str, namespace: dict, ctx: Context, **kwargs):
        """The record, made in this process (``checkpoint``, ``images`` and ``device`` for the weights);
        raises fcnkit's ObservationError when the model cannot be built or run."""
        from fcnkit._grading.observers import OBSERVERS, Setup  # torch: never in the grading process
        return OBSERVERS[self.name](namespace, kind, Setup(seed=ctx.seed, n_class=ctx.n_class, **kwargs))


OBSERVATIONS = {o.name: o for o in (
    Observation("structure", Structure),
    Observation("outputs", Outputs),
    Observation("copy_params", CopyParams),
    Observation("predict", Predictions, takes_weights=True),
)}
