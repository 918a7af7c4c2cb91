"""The class's gradebook: ``OUT/gradebook.sqlite`` (``gradebook-K-of-N.sqlite`` for a shard), the one
home of every student's record, through the standard library's :mod:`sqlite3`. Every file in the
reports folder (``<student>.json``, feedback pages, grades.csv, index.html, Gradescope's results)
is a view of it, rewritten from it after every change.

Tables: ``students`` (id, display name, file stem), ``submissions`` (path, content hash, grader
fingerprint, seed, state, the rest of the report as JSON: the integrity evidence the mIoU items
took when they read the predictions among it), ``checks`` (item, status, score,
message), ``manual`` (the written answers' imported scores: grading never writes these),
``integrity`` (flags), ``runs`` (options, seed,
timings, isolation layers) and ``meta``. A student's grading commits in one transaction. The file
uses a rollback journal (``journal_mode=DELETE``, ``synchronous=FULL``), which network file systems
keep safe, and has one writer: the run holding ``run.lock`` (:class:`autograder.record.journal.Lock`).

    sqlite3 grading-reports/gradebook.sqlite "SELECT student, SUM(score) FROM checks GROUP BY student"
"""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
import zlib
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import numpy as np

from fcnkit._grading.diagnoses import Diagnosis

from .. import atomic
from ..results import CheckResult, IntegrityFlag, ManualScore, Report, Status, file_stem

GRADED, NOT_GRADED, QUEUED = "graded", "not graded", "queued"  # a submission's state
OWN_TABLES = {"student", "submission", "seed", "checks", "integrity", "manual"}  # Report fields with a home of their own
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, session INTEGER NOT NULL, started TEXT NOT NULL,
    ended TEXT, pid INTEGER, seed INTEGER NOT NULL, grader TEXT NOT NULL, options TEXT NOT NULL,
    students TEXT NOT NULL DEFAULT '[]', timings TEXT, isolation TEXT);
CREATE TABLE IF NOT EXISTS students (id TEXT PRIMARY KEY, display TEXT NOT NULL, stem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (student TEXT PRIMARY KEY REFERENCES students(id), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, grader TEXT NOT NULL, seed INTEGER, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    session INTEGER, flags_computed INTEGER NOT NULL DEFAULT 0, report TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS checks (student TEXT NOT NULL REFERENCES students(id), position INTEGER NOT NULL,
    item TEXT NOT NULL, title TEXT NOT NULL, model TEXT NOT NULL, max_score INTEGER NOT NULL, score INTEGER NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL, diagnosis TEXT NOT NULL DEFAULT '', PRIMARY KEY (student, position));
CREATE TABLE IF NOT EXISTS manual (student TEXT NOT NULL, question TEXT NOT NULL, title TEXT NOT NULL,
    score REAL NOT NULL, max_score REAL NOT NULL, comment TEXT NOT NULL, imported TEXT NOT NULL,
    PRIMARY KEY (student, question));
CREATE TABLE IF NOT EXISTS integrity (student TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT NOT NULL,
    other TEXT NOT NULL, evidence TEXT NOT NULL, agreement REAL, PRIMARY KEY (student, position));
"""
OWN = object()  # Gradebook.report's default: the gradebook's own imported answers
CONTENT = ("students", "submissions", "checks", "manual", "integrity")  # what two runs that agree hold alike


class GradebookError(RuntimeError):
    """A gradebook that cannot be used (the message names the file and the fix)."""


def path_of(out: Path, shard: tuple[int, int] | None = None) -> Path:
    """``OUT/gradebook.sqlite``, or a shard's ``OUT/gradebook-K-of-N.sqlite``."""
    return Path(out) / (f"gradebook-{shard[0]}-of-{shard[1]}.sqlite" if shard else "gradebook.sqlite")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _encode(value):
    """JSON for a report's other fields; arrays (the first predicted maps) as compressed bytes."""
    if isinstance(value, np.ndarray):
        return {"__array__": str(value.dtype), "shape": list(value.shape),
                "data": base64.b64encode(zlib.compress(np.ascontiguousarray(value).tobytes())).decode()}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not stored in the gradebook")


def _number(value: float) -> int | float:
    """A score as it was imported: SQLite's REAL gives 15.0 back for 15 (the pages would show "15.0")."""
    return int(value) if float(value).is_integer() else value


def _decode(data: dict):
    if "__array__" in data:
        return np.frombuffer(zlib.decompress(base64.b64decode(data["data"])),
                             dtype=np.dtype(data["__array__"])).reshape(data["shape"]).copy()
    return data


def other_fields(report: Report) -> str:
    """Every Report field without a table of its own, as JSON (so a field added later is kept too)."""
    return json.dumps({f.name: getattr(report, f.name) for f in fields(Report) if f.name not in OWN_TABLES},
                      default=_encode, sort_keys=True, ensure_ascii=False)


def _param(value):
    """Text as SQLite takes it: a name read from the disk under any locale (Python keeps bytes that are
    not UTF-8 as surrogates, which SQLite's text cannot hold) goes in as its bytes, a BLOB."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _value(value):
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


class _Rows(list):
    """A statement's rows (text given back as Python wrote it) and the id of the row it inserted."""
    lastrowid: int | None = None

    def fetchone(self):
        return self[0] if self else None

    def fetchall(self):
        return list(self)


class _Connection:
    """sqlite3's connection, passing any Python text in and out whole (:func:`_param`)."""

    def __init__(self, db: sqlite3.Connection):
        self.raw = db

    def execute(self, sql: str, params=()) -> _Rows:
        cursor = self.raw.execute(sql, tuple(_param(v) for v in params))
        rows = _Rows(tuple(_value(v) for v in row) for row in cursor)
        rows.lastrowid = cursor.lastrowid
        return rows

    def executemany(self, sql: str, rows) -> None:
        self.raw.executemany(sql, [tuple(_param(v) for v in row) for row in rows])

    def executescript(self, sql: str) -> None:
        self.raw.executescript(sql)

    def close(self) -> None:
        self.raw.close()


class Gradebook:
    """One gradebook file, opened for reading and (by the run holding the lock) writing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.db = _Connection(sqlite3.connect(atomic.fs_path(self.path), isolation_level=None, timeout=30,
                                                  check_same_thread=False))
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise GradebookError(f"{self.path} is not a gradebook the grader can use ({err}); move it aside and "
                                 f"rerun (a reports folder's JSON reports are read into a new one)") from None

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """A gradebook written before a column existed gets it (its rows the column's default)."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(checks)")}
        if "diagnosis" not in columns:  # before diagnoses were data (2026-12-04)
            self.db.execute("ALTER TABLE checks ADD COLUMN diagnosis TEXT NOT NULL DEFAULT ''")

    @contextmanager
    def transaction(self):
        """One transaction: everything in it is in the file, or none of it is."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ meta and runs
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, db, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def set_facts(self, facts: dict[str, str]) -> None:
        """The last run's facts the overview shows (an import rewrites the overview with them)."""
        with self.transaction() as db:
            self.set_meta(db, "overview facts", json.dumps(facts, sort_keys=True, ensure_ascii=False))

    def facts(self, run_facts: dict[str, str] | None = None) -> dict[str, str] | None:
        """The facts the overview shows: ``run_facts`` (a run writing its pages) or else the last run's as
        recorded, and when written answers were last imported, so that a run and an import show the same.

        Args:
            run_facts: the facts of the run now writing the overview, before :meth:`set_facts` records them.
        """
        if run_facts is None:
            text = self.meta("overview facts")
            run_facts = json.loads(text) if text else None
        imported = self.meta("answers imported")
        return {**(run_facts or {}), "answers imported": imported} if imported else run_facts

    def last_run(self) -> dict | None:
        row = self.db.execute("SELECT id, session, seed, grader, options, students FROM runs "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"id": row[0], "session": row[1], "seed": row[2], "grader": row[3], "options": json.loads(row[4]),
                "students": json.loads(row[5])}

    def start_run(self, seed: int, grader: str, options: dict, students: list[str], session: int | None) -> dict:
        """A run's row (its session: its own id when it grades afresh, the resumed run's otherwise)."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (session, started, pid, seed, grader, options, students) "
                                "VALUES (0, ?, ?, ?, ?, ?, ?)", (now(), os.getpid(), seed, grader,
                                                                  json.dumps(options, sort_keys=True),
                                                                  json.dumps(students, ensure_ascii=False)))
            run = cursor.lastrowid
            db.execute("UPDATE runs SET session = ? WHERE id = ?", (session or run, run))
        return {"id": run, "session": session or run, "seed": seed, "grader": grader, "options": options,
                "students": students}

    def end_run(self, run: dict, timings: dict, isolation: dict) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET ended = ?, timings = ?, isolation = ? WHERE id = ?",
                       (now(), json.dumps(timings, sort_keys=True), json.dumps(isolation, sort_keys=True),
                        run["id"]))

    # ------------------------------------------------------------------ a student's record
    def record(self, report: Report, sha256: str, grader: str, session: int | None, state: str | None = None) -> None:
        """A submission's grading, in one transaction (its imported answers are left as they are)."""
        state = state or (NOT_GRADED if report.not_graded else GRADED)
        with self.transaction() as db:
            self._put(db, report, sha256, grader, session, state)

    def _put(self, db, report: Report, sha256: str, grader: str, session: int | None, state: str) -> None:
        report.refuse_notebook_statuses()
        s = report.student
        db.execute("INSERT OR REPLACE INTO students VALUES (?, ?, ?)", (s, atomic.name_text(s), file_stem(s)))
        db.execute("INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (s, report.submission, sha256, grader, report.seed, state, report.not_graded or "", session,
                    int(report.integrity is not None), other_fields(report)))
        db.execute("DELETE FROM checks WHERE student = ?", (s,))
        db.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(s, i, c.name, c.title, c.model, c.max_score, c.score, c.status.value, c.message,
                         json.dumps(c.diagnosis.to_json(), ensure_ascii=False) if c.diagnosis else "")
                        for i, c in enumerate(report.checks)])
        self._put_flags(db, s, report.integrity or [])

    def _put_flags(self, db, student: str, flags: list[IntegrityFlag]) -> None:
        db.execute("DELETE FROM integrity WHERE student = ?", (student,))
        db.executemany("INSERT INTO integrity VALUES (?, ?, ?, ?, ?, ?)",
                       [(student, i, f.kind, f.other, f.evidence, f.agreement) for i, f in enumerate(flags)])

    def set_flags(self, reports: list[Report]) -> None:
        """The class's integrity flags (``report.integrity``), in one transaction."""
        with self.transaction() as db:
            for r in reports:
                if r.integrity is not None:
                    self._put_flags(db, r.student, r.integrity)
                    db.execute("UPDATE submissions SET flags_computed = 1 WHERE student = ?", (r.student,))

    def state(self, student: str) -> tuple[str, str, int | None] | None:
        """(state, sha256, session) of a student's submission, or None."""
        return self.db.execute("SELECT state, sha256, session FROM submissions WHERE student = ?",
                               (student,)).fetchone()

    def students(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT student FROM submissions ORDER BY student")]

    def report(self, student: str, answers=OWN) -> Report | None:
        """The student's report as the files show it; ``answers``: the imported scores to attach
        (default: this gradebook's own; None: none were imported)."""
        row = self.db.execute("SELECT path, seed, flags_computed, report FROM submissions WHERE student = ?",
                              (student,)).fetchone()
        if row is None:
            return None
        known = {f.name for f in fields(Report)}
        other = {k: v for k, v in json.loads(row[3], object_hook=_decode).items() if k in known}
        report = Report(student=student, submission=row[0], seed=row[1], **other)
        report.checks = [CheckResult(name=r[0], title=r[1], model=r[2], max_score=r[3], score=r[4],
                                     status=Status(r[5]), message=r[6],
                                     diagnosis=Diagnosis.from_json(json.loads(r[7])) if r[7] else None)
                         for r in self.db.execute("SELECT item, title, model, max_score, score, status, message, "
                                                  "diagnosis FROM checks WHERE student = ? ORDER BY position", (student,))]
        if row[2]:
            report.integrity = [IntegrityFlag(*r) for r in self.db.execute(
                "SELECT kind, other, evidence, agreement FROM integrity WHERE student = ? ORDER BY position", (student,))]
        answers = self.answers() if answers is OWN else answers
        if answers is not None:
            report.manual = dict(answers.get(student, {}))
        return report

    def reports(self, students: list[str] | None = None, answers=OWN) -> list[Report]:
        """The reports of ``students`` (default: everyone's), in that order; those without a record left out."""
        answers = self.answers() if answers is OWN else answers
        found = [self.report(s, answers) for s in (self.students() if students is None else students)]
        return [r for r in found if r is not None]

    # ------------------------------------------------------------------ imported written answers
    def answers(self) -> dict[str, dict[str, ManualScore]] | None:
        """The imported scores per student (None: none were ever imported into this class)."""
        if self.meta("answers imported") is None:
            return None
        found: dict[str, dict[str, ManualScore]] = {}
        for student, question, title, score, max_score, comment in self.db.execute(
                "SELECT student, question, title, score, max_score, comment FROM manual ORDER BY student, question"):
            found.setdefault(student, {})[question] = ManualScore(title, _number(score), _number(max_score), comment)
        return found

    def import_answers(self, scores: dict[str, dict[str, ManualScore]], when: str | None = None) -> int:
        """Imported scores, in one transaction (replacing those of the same student and question);
        those already recorded as they are leave the file as it is. Returns how many changed."""
        had = self.answers()
        changed = {s: {q: m for q, m in by_q.items() if (had or {}).get(s, {}).get(q) != m}
                   for s, by_q in scores.items()}
        changed = {s: by_q for s, by_q in changed.items() if by_q}
        if changed or had is None:
            with self.transaction() as db:
                self._put_answers(db, changed, when or now())
        return sum(map(len, changed.values()))

    def _put_answers(self, db, scores: dict, when: str) -> None:
        db.executemany("INSERT OR REPLACE INTO manual VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(s, q, m.title, float(m.score), float(m.max_score), m.comment, when)
                        for s, by_q in scores.items() for q, m in by_q.items()])
        self.set_meta(db, "answers imported", when)

    # ------------------------------------------------------------------ comparison
    def content(self) -> dict[str, list[tuple]]:
        """What the class's record holds, run-independent (no sessions, timings or import times):
        two gradebooks of the same grading have the same content."""
        drop = {"submissions": "session", "manual": "imported"}
        found = {}
        for table in CONTENT:
            columns = [r[1] for r in self.db.execute(f"PRAGMA table_info({table})") if r[1] != drop.get(table)]
            rows = self.db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1, 2").fetchall()
            if table == "submissions":  # timings are the run's, not the record's
                at = columns.index("report")
                rows = [(*r[:at], _timeless(r[at]), *r[at + 1:]) for r in rows]
            found[table] = rows
        return found


def _timeless(text: str) -> str:
    data = json.loads(text)
    data.pop("seconds", None), data.pop("phases", None)
    return json.dumps(data, sort_keys=True)
