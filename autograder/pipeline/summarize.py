"""``python -m autograder summarize OUT``: the shards of a sharded run joined into the class's one record,
and every file rewritten from it."""
from __future__ import annotations

import sys
from pathlib import Path

from ..judging.integrity import flag_class
from ..record import books, gradebook
from ..reports.csv import write_csv
from ..reports.overview import class_pages
from ..reports.table import score_table
from . import classrun
from .discover import predictions_finder


def summarize(out: Path) -> int:
    """Join the shards' gradebooks into ``OUT/gradebook.sqlite`` (refusing two shards that graded a
    student differently), then rewrite every view from it: the students' files, grades.csv, the
    integrity flags and the overview; names the submissions a run lists without a graded record
    (exit 1 when there are any)."""
    try:
        book = books.open_class(out)
        try:
            shards = books.shard_books(out)
            for line in books.merge(book, shards) if shards else []:
                print(line)
            reports = book.reports()
            if not reports:
                print(f"error: no graded submissions in {out} (its gradebook and <student>.json reports)",
                      file=sys.stderr)
                return 2
            flag_class(reports, predictions_finder())  # across the shards
            overview, problems = class_pages(out, reports)
            book.set_flags(reports)
            problems += classrun.write_views(out, reports)
        finally:
            book.close()
    except gradebook.GradebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_csv(reports, out / "grades.csv")
    print(score_table(reports))
    print(f"\nwrote {out / 'grades.csv'} ({len(reports)} students)")
    missing = {}
    for path in [*shards, *([gradebook.path_of(out)] if not shards else [])]:
        missing.update(books.unfinished(path))
    if missing:
        print(f"\n{len(missing)} submissions have no report: " + "; ".join(f"{s} ({why})" for s, why in
                                                                          sorted(missing.items()))
              + ". Rerun the grade command (it resumes) to grade them.")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"class overview: {overview}")
    return 1 if missing or problems else 0
