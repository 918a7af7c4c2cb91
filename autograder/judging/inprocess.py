"""Rubric items observed and judged in the calling process: nbgrader's hidden test cells (through
``autograder.checks.check_in_process``) and the catalogue's tests. Never for grades of untrusted code:
those come from ``python -m autograder grade``, whose child observes."""
from __future__ import annotations

from pathlib import Path

from ..rubric import ITEMS, Item
from .context import Context
from .miou import LabelSet, judge_miou, read_and_judge
from .observations import OBSERVATIONS
from .registry import judgement_of


def observe_in_process(item: Item, namespace: dict, ctx: Context, **kwargs):
    """What the grading child would observe for ``item``, observed in this process. The mIoU items
    take the weights and the images: ``checkpoint=..., images=...``."""
    from fcnkit._grading.judges import CheckFailed  # torch: never in the grading process
    from fcnkit._grading.observe import ObservationError
    try:
        return OBSERVATIONS[item.observes].observe(item.model, namespace, ctx, **kwargs)
    except ObservationError as err:  # a hidden test cell fails as the notebook's check does
        raise CheckFailed(str(err), err.diagnosis) from None


def check_in_process(name: str, namespace: dict, **kwargs) -> None:
    """A rubric item judged in the calling process (the notebook's hidden test cells under
    ``nbgrader autograde``). The student's kernel runs this, so a determined student can tamper
    with it: grades that count come from ``python -m autograder grade``. The mIoU items take the
    folder of the saved predictions and the dataset: ``predictions=..., data=...``."""
    item, ctx = ITEMS[name], Context(seed=0, labels=kwargs.get("labels"))  # in-process: no helper
    if item.needs_weights and "predictions" in kwargs:
        _, _, scores = read_and_judge(Path(kwargs["predictions"]), item.model, LabelSet(Path(kwargs["data"])))
        message = judge_miou(item.model, scores)
    else:  # in a notebook, what the grader would see of it, as the notebook's own checks judge
        from fcnkit.checks import graded_namespace  # torch: never in the grading process
        message = judgement_of(name)(observe_in_process(item, graded_namespace(namespace)[0], ctx, **kwargs), ctx)
    print(f"PASS {item.title} ({item.points} points): {message}")
