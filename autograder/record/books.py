"""Gradebooks from elsewhere: a reports folder an earlier version wrote (JSON reports, ``run.journal``,
``manual/scores.json``) read into the gradebook once (:func:`migrate`), and the gradebooks of a
sharded run's shards joined into ``OUT/gradebook.sqlite`` (:func:`merge`, through ``ATTACH``)."""
from __future__ import annotations

import json
from pathlib import Path

from ..results import ManualScore, ReportError, read_report, read_reports, report_path
from .gradebook import GRADED, Gradebook, GradebookError, path_of

MIGRATED = "migrated from JSON"  # the meta key saying the folder's earlier files were read in
STORE = Path("manual") / "scores.json"  # where the previous version kept the imported scores


class ShardConflict(GradebookError):
    """Two shards graded one student differently."""


def _journal(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {"seed": int(data["seed"]), "options": dict(data["options"]), "grader": str(data["grader"]),
                "students": list(data.get("students", [])), "submissions": dict(data["submissions"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(out: Path, reports) -> dict | None:
    """The imported scores of the previous version: its store, else those its reports hold."""
    try:
        data = json.loads((Path(out) / STORE).read_text(encoding="utf-8"))
        return {s: {q: ManualScore(**m) for q, m in by_q.items()} for s, by_q in data.items()}
    except FileNotFoundError:
        found = {r.student: dict(r.manual) for r in reports if r.manual is not None}
        return found or None
    except (ValueError, TypeError, AttributeError) as err:
        raise GradebookError(f"{Path(out) / STORE} is not the store of imported scores the answers import wrote "
                             f"({err}); restore it from a backup, or remove it and import the scores CSVs "
                             f"again.") from None


def migrate(out: Path, book: Gradebook, shard: tuple[int, int] | None = None) -> list[str]:
    """Read what an earlier version wrote into ``out`` into ``book``, once, in one transaction:
    the journal (``run.journal``, a shard's ``run-K-of-N.journal``), the reports it names (all
    ``<student>.json`` for the class's gradebook) and the imported scores (class only). The files
    stay where they are. Returns what was read, as lines."""
    if book.meta(MIGRATED) is not None:
        return []
    stem = f"run-{shard[0]}-of-{shard[1]}" if shard else "run"
    journal = _journal(Path(out) / f"{stem}.journal")
    if shard:
        reports = []
        for student in (journal or {}).get("students", []):
            try:
                reports.append(read_report(report_path(out, student)))
            except ReportError:
                pass
    else:
        reports = read_reports(out)[0]
    answers = None if shard else _store(out, reports)
    with book.transaction() as db:
        session = None
        if journal is not None:
            session = db.execute("INSERT INTO runs (session, started, seed, grader, options, students) VALUES "
                                 "(0, 'before the gradebook', ?, ?, ?, ?)",
                                 (journal["seed"], journal["grader"], json.dumps(journal["options"], sort_keys=True),
                                  json.dumps(journal["students"], ensure_ascii=False))).lastrowid
            db.execute("UPDATE runs SET session = id WHERE id = ?", (session,))
        for report in reports:
            entry = (journal or {}).get("submissions", {}).get(report.student)
            if entry is not None:
                book._put(db, report, entry["sha256"], journal["grader"], session, entry["state"])
            else:  # kept for its views; a resumed run grades it again (its files' hash is unknown)
                book._put(db, report, "", "", None, GRADED if not report.not_graded else "not graded")
        if answers is not None:
            book._put_answers(db, answers, "before the gradebook")
        book.set_meta(db, MIGRATED, "yes" if reports or journal else "nothing to read")
    if not (reports or journal):
        return []
    return [f"read {len(reports)} reports{', the run journal' if journal else ''}"
            f"{' and the imported answers' if answers else ''} of {out} into {book.path}"]


def open_class(out: Path, shard: tuple[int, int] | None = None) -> Gradebook:
    """The gradebook of the reports folder ``out`` (a shard's with ``shard``), with what an
    earlier version wrote there read in."""
    Path(out).mkdir(parents=True, exist_ok=True)
    book = Gradebook(path_of(out, shard))
    for line in migrate(out, book, shard):
        print(line)
    return book


def shard_books(out: Path) -> list[Path]:
    return sorted(Path(out).glob("gradebook-*-of-*.sqlite"))


def _signatures(db, schema: str) -> dict[str, tuple]:
    """What one graded a student as: files' hash, state, seed, grader and every check."""
    found = {}
    for student, sha, state, seed, grader in db.execute(
            f"SELECT student, sha256, state, seed, grader FROM {schema}.submissions"):
        checks = tuple(db.execute(f"SELECT item, model, status, score, message FROM {schema}.checks "
                                  f"WHERE student = ? ORDER BY position", (student,)))
        found[student] = (sha, state, seed, grader, checks)
    return found


def unfinished(path: Path) -> dict[str, str]:
    """The submissions a gradebook's last run lists without a graded record of that session, with why."""
    book = Gradebook(path)
    try:
        run = book.last_run()
        missing = {}
        for student in (run or {}).get("students", []):
            row = book.db.execute("SELECT state, session, reason FROM submissions WHERE student = ?",
                                  (student,)).fetchone()
            if row is None or row[0] != GRADED or row[1] != run["session"]:
                missing[student] = (row[2] if row and row[2] and row[1] == run["session"] else
                                    "unfinished: the run stopped before it was graded")
        return missing
    finally:
        book.close()


def merge(main: Gradebook, shards: list[Path]) -> list[str]:
    """Join the shards' gradebooks into ``main`` (``ATTACH``, a transaction per shard): each
    student's record replaces the class's; ShardConflict, naming the student and both files, when
    two shards graded one student differently (checked first: nothing is written then)."""
    seen: dict[str, tuple[Path, tuple]] = {}
    for path in shards:
        Gradebook(path).close()  # opened once as a gradebook: one of an older version gets today's columns
    for path in shards:
        main.db.raw.execute("ATTACH DATABASE ? AS shard", (str(path),))
        try:
            for student, signature in _signatures(main.db, "shard").items():
                if student in seen and seen[student][1] != signature:
                    raise ShardConflict(f"{seen[student][0].name} and {path.name} graded {student!r} differently "
                                        f"(another submission, seed, grader or result); remove the shard that "
                                        f"should not count, or rerun it, then summarize again")
                seen[student] = (path, signature)
        finally:
            main.db.raw.execute("DETACH DATABASE shard")
    for path in shards:  # ATTACH cannot be inside a transaction: one transaction per shard
        main.db.raw.execute("ATTACH DATABASE ? AS shard", (str(path),))
        try:
            with main.transaction() as db:
                for table in ("checks", "integrity", "submissions", "students"):
                    db.execute(f"DELETE FROM main.{table} WHERE {'id' if table == 'students' else 'student'} IN "
                               f"(SELECT student FROM shard.submissions)")
                for table in ("students", "submissions", "checks", "integrity"):
                    db.execute(f"INSERT OR REPLACE INTO main.{table} SELECT * FROM shard.{table}")
        finally:
            main.db.raw.execute("DETACH DATABASE shard")
    return [f"joined {len(seen)} students of {len(shards)} shards into {main.path}"]
