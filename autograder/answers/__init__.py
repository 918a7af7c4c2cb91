"""The written answers, graded a question at a time across the class: the pages (:mod:`.pages`)
and the import of the scores they save (:mod:`.scores`)."""
from ..questions import SOURCE, AnswersError, Question, questions_from  # noqa: F401
from .pages import collect, write_pages  # noqa: F401
from .scores import import_scores, merge, read_scores  # noqa: F401
