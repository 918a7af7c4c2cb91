"""The judgements of the activations: the submission's against the reference's, for the seed the
grader drew for the run (students compare with those of fcnkit's public seed), and its dropout in
training and eval mode (from the same observation)."""
from __future__ import annotations

from fcnkit._grading import judges as student
from fcnkit._grading.dropout import judge_dropout
from fcnkit._grading.records import Outputs
from fcnkit._grading.stages import stages_of

from .context import Context
from .registry import judgement


@judgement("fcn32s_equivalence", "fcn8s_equivalence")
def equivalence(o: Outputs, ctx: Context) -> str:
    """The reference's activations for the run's seed, every value of every stage."""
    return student.judge_equivalence(o, stages_of(ctx.reference_outputs(o.kind)))


@judgement("fcn32s_dropout", "fcn8s_dropout")
def dropout(o: Outputs, ctx: Context) -> str:
    """Channels zeroed in training mode, nothing in eval mode, around relu6 and relu7."""
    return judge_dropout(o)
