"""What people read of the integrity flags (computed by :mod:`autograder.judging.integrity`): grades.csv's
review entry; the overview's and the pair pages' wording of each kind."""
from __future__ import annotations

from ..results import Report

# Flags are for instructors only (the overview, reports/pairs.py's pair pages): a feedback page never
# mentions them. Pages written before that carry a note between these markers; the page rewritten from
# the record (pipeline/classrun.write_views) has none.
BEGIN, END = "<!-- integrity -->", "<!-- /integrity -->"
KINDS = {"predictions": "submitted predictions", "weights": "recorded weights", "code": "code"}


def integrity_review(report: Report) -> str:
    """grades.csv's ``review`` entry for a student with flags (how many students, which kinds, no
    names: those are on the instructor's pages); '' without flags."""
    flags = report.integrity or []
    if not flags:
        return ""
    others = len({f.other for f in flags})
    kinds = ", ".join(sorted({f.kind for f in flags}))
    return (f"integrity: flagged with {others} other student{'s' if others > 1 else ''} ({kinds}), "
            f"see index.html")
