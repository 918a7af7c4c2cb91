"""The structural judgements: fcnkit's own (students run them in the notebook and with
``python -m fcnkit check``, with the same messages), registered here for the rubric items judged by
them (``judged_by``: ``fcn8s_head`` is judged by ``head``), given the run's context."""
from __future__ import annotations

from fcnkit._grading import judges as student
from fcnkit._grading.records import CopyParams, Structure

from ..rubric import RUBRIC
from .context import Context
from .registry import judgement


def _register(part: str) -> None:
    judge = student.STRUCTURAL[part]

    def structural(s: Structure, ctx: Context) -> str:
        return judge(s, ctx.n_class)
    structural.__name__ = structural.__qualname__ = part
    judgement(*[item.name for item in RUBRIC if item.judged_by == part])(structural)


for _part in student.STRUCTURAL:
    _register(_part)


@judgement("fcn32s_copy_params")
def copy_params(c: CopyParams, ctx: Context) -> str:
    return student.judge_copy_params(c, ctx.expected_copy())
