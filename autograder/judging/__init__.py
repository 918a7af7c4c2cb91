"""The grader's judgements of what the child observed: a registry of judgements by rubric item
(:mod:`.registry`), the table of observations (:mod:`.observations`), the run's context, and the
judging modules, which register their judgements when imported here.

    judgement_of(item.name)(record, context) -> message   (raises CheckFailed)
"""
from fcnkit._grading.judges import CheckFailed

from . import equivalence, miou, structural  # noqa: F401  (their judgements register on import)
from .context import Context
from .inprocess import check_in_process, observe_in_process
from .observations import OBSERVATIONS, Observation
from .registry import JUDGEMENTS, judgement, judgement_of

__all__ = ["CheckFailed", "Context", "JUDGEMENTS", "OBSERVATIONS", "Observation", "check_in_process", "judgement",
           "judgement_of", "observe_in_process"]
