"""Take the definitions out of a submission without running its training. The file is read here,
bounded, as untrusted input; which statements are kept is fcnkit's rule (:mod:`fcnkit._grading.extract`),
so that a student's ``python -m fcnkit check`` runs what the grader runs.
"""
from __future__ import annotations

from pathlib import Path

from fcnkit._grading.extract import Chunk, Extracted, NotANotebook, definitions, notebook_code_cells  # noqa: F401
from fcnkit.predictions import UnreadableFile, read_bounded

MAX_SUBMISSION_BYTES = 100 * 2**20  # a notebook with its figures; a file larger than this is refused unread
MAX_CODE_BYTES = 4 * 2**20  # all code cells together: bounds the time and memory parsing them takes


class SubmissionError(ValueError):
    """The submission file cannot be read at all: the message says why and what to do, ``why`` the same
    in a few words (the subject of the checks' diagnosis, :mod:`fcnkit._grading.diagnoses`)."""

    def __init__(self, message: str, why: str = ""):
        super().__init__(message)
        self.why = why


def code_cells(path: Path) -> list[tuple[int, str]]:
    """``(cell number, source)`` of every code cell; a ``.py`` file is one cell numbered 0. The file
    is hostile input: its size, the notebook's structure (:func:`fcnkit._grading.extract.notebook_code_cells`)
    and the size of its code are checked, and any of them failing is a SubmissionError naming it."""
    try:
        text = read_bounded(path, MAX_SUBMISSION_BYTES).decode("utf-8")
    except UnreadableFile as err:
        raise SubmissionError(f"{err} Submit the notebook itself.", "it is not a file the grader reads") from None
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{path.name} is not UTF-8 text ({err}); save it again from Jupyter or your "
                              f"editor as UTF-8.", "it is not UTF-8 text") from None
    if path.suffix == ".py":
        cells = [(0, text)]
    else:
        try:
            cells = notebook_code_cells(text)
        except NotANotebook as err:
            raise SubmissionError(f"{path.name} is not a valid notebook ({err}); re-download it from Jupyter "
                                  f"with File > Download.", "it is not a valid notebook") from None
    size = sum(len(source) for _, source in cells)
    if size > MAX_CODE_BYTES:
        raise SubmissionError(f"{path.name} holds {size / 2**20:.1f} MB of code, more than the "
                              f"{MAX_CODE_BYTES >> 20} MB the grader reads; submit the assignment's notebook.",
                              "it holds too much code")
    return cells


def extract(path: str | Path) -> Extracted:
    path = Path(path)
    return definitions(code_cells(path), path.name)
