"""The instructor's page of each flagged pair, ``OUT/instructor-only/integrity/<a>--<b>.html``: what
matched and how much, both students' marks item by item side by side, links to both feedback pages.

Instructor-only: a pair page names both students. Integrity flags reach only this folder, the class
overview (``index.html``), ``<student>.json`` and grades.csv's ``review`` column; never a feedback page,
Gradescope's results or nbgrader's gradebook, which students see.
"""
from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from urllib.parse import quote

from ..atomic import write_text
from ..results import IntegrityFlag, Report, Status, file_stem
from .integrity import KINDS

FOLDER = Path("instructor-only") / "integrity"  # relative to the reports folder
PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]{0,59}")  # a name used as it is in a file name (no '-': '--' joins)
MARKS = {Status.PASSED: "passed", Status.FAILED: "failed", Status.NOT_GRADED: "not graded",
         Status.FLAGGED: "flagged"}
STYLE = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;color:#222}table{border-collapse:collapse;
margin:0.5em 0;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td{overflow-wrap:anywhere}td.student{width:42%}tr.same td{background:#fff3d6}p.private{color:#a00;font-weight:bold}"""


def pair_stem(a: str, b: str) -> str:
    """The file stem of the pair's page: ``a--b`` for plain names; otherwise each name with every
    character but letters, digits, '_' and '.' replaced by '_' (at most 40 kept), and a hash of the
    two names, so that no two pairs share a page and no name can leave the folder.

    Args:
        a: one student (the pair's first, in sorted order).
        b: the other student.
    """
    if PLAIN.fullmatch(a) and PLAIN.fullmatch(b):
        return f"{a}--{b}"
    digest = hashlib.sha256(f"{a}\0{b}".encode("utf-8", "surrogateescape")).hexdigest()[:12]
    safe = [re.sub(r"[^A-Za-z0-9_.]", "_", name)[:40].lstrip(".") or "_" for name in (a, b)]
    return f"{safe[0]}--{safe[1]}-{digest}"


def _quote(text: str) -> str:
    """``text`` in a URL, a name read from the disk under any locale included."""
    return quote(text, errors="surrogateescape")


def pair_href(a: str, b: str) -> str:
    """The pair page's address relative to the reports folder (where ``index.html`` is)."""
    return f"{FOLDER.as_posix()}/{_quote(pair_stem(*sorted((a, b))))}.html"


def flagged_pairs(reports: list[Report]) -> dict[tuple[str, str], list[IntegrityFlag]]:
    """Every flagged pair of the class (the two names sorted) with its flags, each flag once
    (flag_class puts a pair's flag on both students' reports)."""
    pairs: dict[tuple[str, str], list[IntegrityFlag]] = {}
    for r in reports:
        for f in r.integrity or []:
            found = pairs.setdefault(tuple(sorted((r.student, f.other))), [])
            if all((g.kind, g.evidence) != (f.kind, f.evidence) for g in found):
                found.append(f)
    return {pair: sorted(flags, key=lambda f: (f.kind, f.evidence)) for pair, flags in sorted(pairs.items())}


def _feedback_link(student: str) -> str:
    href = f"../../feedback/{_quote(file_stem(student))}.html"
    return f"<a href='{html.escape(href)}'>{html.escape(student)}</a>"


def _column(report: Report, partner: str, others: list[str]) -> str:
    """One student's side: the feedback page, scores, mIoU, submission, and the other pairs they are in."""
    e = html.escape
    miou = "; ".join(f"{e(model)} {scores['mean_iou']:.3f}" for model, scores in (report.metrics or {}).items())
    also = ", ".join(f"<a href='{e(_quote(pair_stem(*sorted((report.student, o)))))}.html'>{e(o)}</a>"
                     for o in others if o != partner)
    return (f"<td class='student'><b>{_feedback_link(report.student)}</b> (feedback page)<br>automatic score "
            f"{report.score} / {report.graded_max_score}{f'<br>submitted mIoU: {miou}' if miou else ''}"
            f"<br>submission: <code>{e(report.submission)}</code>"
            f"{f'<br>also flagged with: {also}' if also else ''}</td>")


def _items(a: Report, b: Report) -> str:
    """The rubric items side by side; a row where both lost points with the same finding is marked."""
    e = html.escape
    theirs = {c.name: c for c in b.checks}
    rows = []
    for mine in a.checks:
        other = theirs.get(mine.name)
        same = other is not None and mine.status is not Status.PASSED and mine.message == other.message
        cells = "".join(f"<td>{MARKS[c.status]} {c.score} / {c.max_score}: {e(c.message)}</td>" if c else "<td></td>"
                        for c in (mine, other))
        rows.append(f"<tr{' class=same' if same else ''}><td>{e(mine.title)}<br><code>{e(mine.name)}</code>"
                    f"{'<br><b>the same finding</b>' if same else ''}</td>{cells}</tr>")
    return "".join(rows)


def pair_html(a: Report, b: Report, flags: list[IntegrityFlag], others: dict[str, list[str]]) -> str:
    """The instructor-only page of one flagged pair.

    Args:
        a: the first student's report (sorted by name).
        b: the second student's report.
        flags: the pair's flags (what matched, with its figures).
        others: per student, everyone they are flagged with (for the links to their other pairs).
    """
    e = html.escape
    evidence = "".join(f"<tr><th>{e(KINDS.get(f.kind, f.kind))}</th><td>{e(f.evidence)}</td></tr>" for f in flags)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Integrity, for review: {e(a.student)} and {e(b.student)}</title>
<style>{STYLE}</style></head><body>
<p class='private'>Instructor-only: this page names two students. Never hand it to a student.</p>
<h1>For review: {e(a.student)} and {e(b.student)}</h1>
<p>Evidence for a person to weigh, never a penalty: it changes no score, and neither student's feedback page mentions
it. <a href='../../index.html'>Class overview</a></p>
<h2>What matched</h2>
<table class='evidence'>{evidence}</table>
<h2>Side by side</h2>
<table class='side-by-side'><tr><th></th><th>{e(a.student)}</th><th>{e(b.student)}</th></tr>
<tr><th>student</th>{_column(a, b.student, others.get(a.student, []))}{_column(b, a.student, others.get(b.student, []))}</tr>
{_items(a, b)}</table>
</body></html>
"""


def write_pair_pages(out: Path, reports: list[Report]) -> list[Path]:
    """Write the page of every flagged pair into ``out/instructor-only/integrity/`` (each whole, UTF-8)
    and remove the pages of pairs no longer flagged. Returns the pages written.

    Args:
        out: the reports folder.
        reports: the class's reports, their ``integrity`` computed (``flag_class``).
    """
    folder = Path(out) / FOLDER
    by_name = {r.student: r for r in reports}
    pairs = {pair: flags for pair, flags in flagged_pairs(reports).items() if pair[0] in by_name and pair[1] in by_name}
    others: dict[str, list[str]] = {}
    for a, b in pairs:
        others.setdefault(a, []).append(b)
        others.setdefault(b, []).append(a)
    written = []
    if pairs:
        folder.mkdir(parents=True, exist_ok=True)
    for (a, b), flags in pairs.items():
        path = folder / f"{pair_stem(a, b)}.html"
        write_text(path, pair_html(by_name[a], by_name[b], flags, others))
        written.append(path)
    if folder.is_dir():
        for stale in set(folder.glob("*.html")) - set(written):
            stale.unlink()
    return written
