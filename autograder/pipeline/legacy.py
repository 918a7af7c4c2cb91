"""SHIM issue 22: reports as the dicts that the consumers not yet converted to
:class:`autograder.results.Report` read (report.py, overview.py, integrity.py, canvas.py,
gradescope.py, gradebook.py, answers.py, __main__.py). The lead deletes this module at merge."""
from __future__ import annotations

from ..results import Report


def legacy_dict(report: Report) -> dict:  # SHIM issue 22
    """``report`` as the dict the grader made before issue 22: its JSON form and the private keys."""
    return {**report.to_json(), "_seconds": report.seconds, "_phases": report.phases,
            "_traceback": report.traceback, "_predictions": report.first_predictions}
