"""The overview's first sections: who needs the instructor (not graded and why, zero or near-zero
scores, predictions flagged for review, integrity pairs strongest first, written answers not scored),
then one table of every student, sorted by total. Static HTML, no script; every list is computed
from the same reports grades.csv is written from."""
from __future__ import annotations

import html
from urllib.parse import quote

from fcnkit._grading.diagnoses import Diagnosis

from ..questions import question_points
from ..results import IntegrityFlag, Report, Status, file_stem
from ..rubric import RUBRIC
from .diagnoses import diagnosis_of, not_graded_cause, whole_cause
from .integrity import KINDS
from .pairs import flagged_pairs, pair_href
from .table import MODELS

NEAR_ZERO = 0.1  # a score at most this share of the graded points
SHOWN_PAIRS = 10  # per tier; the rest folded
IDENTICAL = 0.9995  # an agreement this high is a true copy (pixels, syntax nodes); below it, a near match
STYLE = """table.students{font-size:13px}table.students td,table.students th{padding:2px 5px}
table.students thead{position:sticky;top:0}table.students th{background:#f4f4f4}td.full{background:#e6f4e6}td.zero{background:#fbe3e3}
td.flag{background:#fff0c8}td.pending{color:#888}td.num{text-align:right}ul.attention>li{margin:0.4em 0}
.attention h3{margin:0.8em 0 0.2em}"""


def link(student: str) -> str:
    return f"<a href='feedback/{quote(file_stem(student), errors='surrogateescape')}.html'>{html.escape(student)}</a>"


def questions_of(reports: list[Report]) -> dict[str, float]:
    """The written questions and their points: the assignment's (autograder.questions) and any imported."""
    questions = dict(question_points())
    for r in reports:
        for q, m in (r.manual or {}).items():
            questions.setdefault(q, m.max_score)
    return questions


def not_graded_students(reports: list[Report]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(why: students) of the submissions not graded (at all, or some items), and (why: items) of what no
    student graded at all was graded on (a run without trained results, ``--only``): the run's, not a student's."""
    students: dict[str, list[str]] = {}
    pending: dict[Diagnosis, dict[str, set]] = {}
    said: dict[Diagnosis, str] = {}  # each diagnosis in the words of the first check that has it
    everyone = set()  # the students graded at all
    for r in reports:
        if cause := not_graded_cause(r):
            students.setdefault(cause.label, []).append(r.student)
            continue
        everyone.add(r.student)
        for c in r.with_status(Status.NOT_GRADED):
            said.setdefault(diagnosis_of(c), c.message.removeprefix("not graded: "))
            pending.setdefault(diagnosis_of(c), {}).setdefault(c.name, set()).add(r.student)
    pending = {said[diagnosis]: items for diagnosis, items in pending.items()}
    run = {why: sorted(items) for why, items in pending.items() if all(s == everyone for s in items.values())}
    for why, items in pending.items():
        if why not in run:
            for student in sorted(set().union(*items.values())):
                students.setdefault(f"{why} ({', '.join(sorted(i for i, s in items.items() if student in s))})",
                                    []).append(student)
    return students, run


def near_zero(reports: list[Report]) -> list[Report]:
    """Graded students whose automatic score is at most NEAR_ZERO of what was graded, lowest first."""
    low = [r for r in reports if r.graded_max_score and r.score <= NEAR_ZERO * r.graded_max_score]
    return sorted(low, key=lambda r: (r.score, r.student))


def strength(flag: IntegrityFlag) -> float:
    return 1.0 if flag.agreement is None and flag.kind == "weights" else flag.agreement or 0.0


def integrity_pairs(reports: list[Report]) -> list[tuple[str, str, IntegrityFlag]]:
    """Every flagged pair and kind, strongest first (a true copy before a near match)."""
    found = [(a, b, f) for (a, b), flags in flagged_pairs(reports).items() for f in flags]
    return sorted(found, key=lambda p: (-strength(p[2]), p[2].kind, p[0], p[1]))


def unscored(reports: list[Report], questions: dict[str, float]) -> dict[str, list[str]]:
    """Once any written answer is imported: each student with a question not scored, and which."""
    if not any(r.manual for r in reports):
        return {}
    missing = {r.student: [q for q in questions if q not in (r.manual or {})] for r in reports}
    return {s: qs for s, qs in missing.items() if qs}


def _pair_item(a: str, b: str, flag: IntegrityFlag) -> str:
    share = "" if flag.agreement is None else f"{flag.agreement:.1%} the same; "
    return (f"<li class='pair {html.escape(flag.kind)}'>{link(a)} and {link(b)}: <b>{html.escape(KINDS.get(flag.kind, flag.kind))}"
            f"</b>: {share}{html.escape(flag.evidence)} (<a class='pair-page' href='{html.escape(pair_href(a, b))}'>"
            f"side by side</a>)</li>")


def _pairs_html(title: str, cls: str, pairs: list) -> str:
    """A tier of pairs: how many, of how many students, per kind; the first SHOWN_PAIRS, the rest folded."""
    if not pairs:
        return ""
    kinds = {}
    for a, b, f in pairs:
        kinds.setdefault(f.kind, set()).update((a, b))
    numbers = {k: sum(f.kind == k for _, _, f in pairs) for k in kinds}
    counts = "; ".join(f"{KINDS.get(k, k)}: {numbers[k]} pair{'s' if numbers[k] > 1 else ''} among {len(s)} students"
                       for k, s in sorted(kinds.items()))
    shown = "".join(_pair_item(*p) for p in pairs[:SHOWN_PAIRS])
    rest = (f"<details><summary>{len(pairs) - SHOWN_PAIRS} more pairs</summary><ul class='integrity {cls}'>"
            + "".join(_pair_item(*p) for p in pairs[SHOWN_PAIRS:]) + "</ul></details>") if len(pairs) > SHOWN_PAIRS else ""
    return f"<p><b>{title}</b> ({html.escape(counts)}):</p><ul class='integrity {cls}'>{shown}</ul>{rest}"


def attention_html(reports: list[Report]) -> str:
    """The section "Who needs you", each part saying when it is empty."""
    e = html.escape
    students, run = not_graded_students(reports)
    parts = []
    ng = "".join(f"<li>{e(why)}: {', '.join(link(s) for s in sorted(who))} ({len(who)})</li>"
                 for why, who in sorted(students.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    ng += "".join(f"<li class='run'>every student, {', '.join(f'<code>{i}</code>' for i in items)}: {e(why)}</li>"
                  for why, items in run.items())
    parts.append(f"<h3>Not graded</h3><ul class='not-graded'>{ng}</ul>" if ng else
                 "<h3>Not graded</h3><p class='not-graded'>Every student's every item was graded.</p>")
    low = "".join(f"<li>{link(r.student)}: {r.score} of {r.graded_max_score}"
                  f"{f' ({e(c.label)})' if (c := whole_cause(r)) else ''}</li>" for r in near_zero(reports))
    parts.append(f"<h3>Zero or near zero (at most {NEAR_ZERO:.0%} of the graded points)</h3>"
                 + (f"<ul class='near-zero'>{low}</ul>" if low else "<p class='near-zero'>No one.</p>"))
    flagged = "".join(f"<li>{link(r.student)}: <code>{c.name}</code>: {e(c.message.removeprefix('flagged for review: '))}"
                      f"</li>" for r in reports for c in r.with_status(Status.FLAGGED))
    parts.append("<h3>Predictions flagged for review (smoke runs, implausible; not credited)</h3>"
                 + (f"<ul class='flagged'>{flagged}</ul>" if flagged else "<p class='flagged'>Nothing flagged.</p>"))
    pairs = integrity_pairs(reports)
    same = [p for p in pairs if strength(p[2]) >= IDENTICAL]
    near = [p for p in pairs if strength(p[2]) < IDENTICAL]
    integrity = _pairs_html("Identical", "identical", same) + _pairs_html("Near matches", "near", near)
    parts.append("<h3>Integrity: pairs for a person to review, never a penalty</h3><p>Only here and on the pair pages "
                 "(<code>instructor-only/integrity/</code>): no student's feedback page mentions a flag.</p>"
                 + (integrity or "<p class='integrity'>No two students' predictions, recorded weights or code are "
                                 "the same.</p>"))
    missing = unscored(reports, questions_of(reports))
    if any(r.manual for r in reports):
        written = ("<ul class='unscored'>" + "".join(f"<li>{link(s)}: {', '.join(qs)}</li>"
                                                       for s, qs in sorted(missing.items())) + "</ul>"
                   if missing else "<p class='unscored'>Every student's written answers are scored.</p>")
    else:
        written = ("<p class='unscored'>None scored yet: <code>python -m autograder answers</code> writes the pages "
                   "to score them on, <code>answers --import</code> reads the scores back.</p>")
    parts.append(f"<h3>Written answers not scored</h3>{written}")
    return f"<div class='attention'>{''.join(parts)}</div>"


def _cell(report: Report, item) -> str:
    check = next((c for c in report.checks if c.name == item.name), None)
    if check is None or check.status is Status.NOT_GRADED:
        return "<td class='pending'>&ndash;</td>"
    if check.status is Status.FLAGGED:
        return "<td class='flag' title='flagged for review'>?</td>"
    kind = "full" if check.score == check.max_score else "zero" if check.score == 0 else "num"
    return f"<td class='{kind}'>{check.score}</td>"


def students_table(reports: list[Report]) -> str:
    """Every student, lowest total first: each item's mark, the written answers, the total."""
    e = html.escape
    questions = questions_of(reports)
    written_max = sum(questions.values())
    heads = "".join(f"<th colspan='{sum(i.model == m for i in RUBRIC)}'>{label}</th>" for m, label in MODELS.items())
    items = "".join(f"<th title='{e(i.title)} ({i.points} points)'>{e(i.name.split('_', 1)[1])}<br>/{i.points}</th>"
                    for i in RUBRIC)
    rows = []
    for r in sorted(reports, key=lambda r: (r.total, r.student)):
        manual = r.manual or {}
        written = (f"{sum(m.score for m in manual.values()):g} of {written_max:g}" if manual else "&ndash;")
        graded = r.graded_max_score + sum(m.max_score for m in manual.values())
        rows.append(f"<tr><td>{link(r.student)}</td>{''.join(_cell(r, i) for i in RUBRIC)}<td>{written}</td>"
                    f"<td class='total'>{r.total:g} of {graded:g}</td></tr>")
    return (f"<table class='students'><thead><tr><th rowspan='2'>student</th>{heads}<th rowspan='2'>written"
            f"<br>answers</th><th rowspan='2'>total (of graded)</th></tr><tr>{items}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
