"""The assignment's written questions: each one's id, number, text, the instructor's key and its points,
read from the source notebook (its markdown answer cells that nbgrader grades by hand). The answers pages
(:mod:`autograder.answers.pages`), the score import and the reports read them from here."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from fcnkit._grading.extract import NotANotebook, notebook_cells
from fcnkit.predictions import UnreadableFile, read_bounded

from .submission import MAX_SUBMISSION_BYTES

SOURCE = Path(__file__).resolve().parents[1] / "notebooks" / "source" / "fcn_segmentation" / "fcn_segmentation.ipynb"
STOPWORDS = set("""about above after again against because before being below between both could does doing
during each every further having here itself just more most other ought should same some such than that their
theirs them then there these they this those through under until very what when where which while whom with
would your yours""".split())


class AnswersError(ValueError):
    """A CSV or a source that cannot be used; the message names the line and the fix."""


@dataclass
class Question:
    id: str  # the answer cell's grade_id, e.g. "question1"
    number: int
    text: str  # the question, as the notebook states it
    key: str  # the instructor's key
    points: float

    @cached_property
    def terms(self) -> list[str]:
        """The key's content words: what the hints look for."""
        seen = []
        for word in re.findall(r"[a-z][a-z-]{4,}", self.key.lower()):
            if word not in STOPWORDS and word not in seen and not word.startswith(("expect", "instruct", "answer")):
                seen.append(word)
        return seen


def cell_source(cell) -> str:
    """A notebook cell's source as one string (nbformat stores it as a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cells_of(path: Path) -> list[dict]:
    """The cells of the notebook at ``path``, read bounded; [] when it is no readable notebook."""
    try:
        cells = notebook_cells(read_bounded(path, MAX_SUBMISSION_BYTES).decode("utf-8"))
    except (UnreadableFile, UnicodeDecodeError, NotANotebook):
        return []
    return [c for c in cells if isinstance(c, dict)]


def questions_from(source: Path) -> list[Question]:
    """The written questions of the source notebook: answer cells (nbgrader grade cells with a
    solution, markdown) with their key, and the question text in the markdown cell before each."""
    cells = cells_of(Path(source))
    if not cells:
        raise AnswersError(f"{source} is not a notebook with cells: give the source notebook with --source.")
    questions = []
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "markdown" and meta.get("grade") and meta.get("solution"):
            body = cell_source(cell)
            key = body.split("### BEGIN SOLUTION")[-1].split("### END SOLUTION")[0].strip()
            text = next((cell_source(c) for c in reversed(cells[:i]) if c.get("cell_type") == "markdown"), "")
            number = re.search(r"question\s*(\d+)", text, re.IGNORECASE)
            questions.append(Question(meta["grade_id"], int(number[1]) if number else len(questions) + 1,
                                      text.strip(), key, float(meta.get("points", 0))))
    if not questions:
        raise AnswersError(f"{source} has no written questions (markdown answer cells graded by nbgrader).")
    return questions


@cache
def question_points(source: Path = SOURCE) -> dict[str, float]:
    """The written questions' points by id (``{"question1": 15.0, ...}``); {} where the source
    notebook is not at hand (an installed grader).

    Args:
        source: the source notebook.
    """
    try:
        return {q.id: q.points for q in questions_from(source)}
    except AnswersError:
        return {}
