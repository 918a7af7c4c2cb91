"""The instructor's view of a class: ``OUT/index.html``, one self-contained page (inline SVG, no
script, nothing fetched) rebuilt after every run and by ``summarize``: the score distribution, each
rubric item with how many passed it, the diagnoses that cost most points with links to the
students' feedback pages, what is flagged for review or not graded and why, integrity flags (each
pair linking to its instructor-only page, reports/pairs.py), and the run's facts (seed, isolation
layers, time). Instructor-only: it names students."""
from __future__ import annotations

import html
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..results import Report, Status, dumps, file_stem, read_report, report_path
from ..rubric import RUBRIC
from .files import feedback_path
from .integrity import KINDS, flag_class, remove_feedback_note, write_text
from .pairs import pair_href, write_pair_pages

HINT = re.compile(r": check (?:the )?(.+?)(?: \(|\.$| and that|$)")
DEPARTS = re.compile(r"it matches up to (.+?); (.+?) (?:differs|is) ")
RAISED = re.compile(r"^(\S+) on an input of shape \([^)]*\) raised (\w+)")
# the student's own numbers (shapes, sizes, differences), not layer names (conv1_1), VGG-16 or 1x1
NUMBER = re.compile(r"(?<![A-Za-z_\d-])(?:\d+x\d+x\d+(?:x\d+)*|\d+(?:\.\d+)?)(?![A-Za-z_\d])")


@dataclass
class Diagnosis:
    """One reason for lost points, shared by ``students``."""
    item: str
    label: str
    points: int  # the item's, lost by each student
    students: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.points * len(self.students)


def diagnosis(message: str) -> str:
    """What a failed check's message says went wrong, without the student's own numbers: the stage
    its hint names (``crop of score_pool4``), the exception a forward raised, else its first clause."""
    if hint := HINT.search(message):
        return hint.group(1)
    if departs := DEPARTS.search(message):
        return f"{departs.group(2)} (matches up to {departs.group(1)})"
    if raised := RAISED.match(message):
        return f"{raised.group(1)} raises {raised.group(2)}"
    label = NUMBER.sub("#", message.split("; ")[0].rstrip("."))
    return label if len(label) <= 100 else label[:100].rsplit(" ", 1)[0] + " ..."


def diagnoses(reports: list[Report]) -> list[Diagnosis]:
    """Failed checks grouped by item and diagnosis, the costliest first."""
    found: dict[tuple[str, str], Diagnosis] = {}
    for r in reports:
        for c in r.with_status(Status.FAILED):
            if c.score < c.max_score:
                key = (c.name, diagnosis(c.message))
                found.setdefault(key, Diagnosis(c.name, key[1], c.max_score - c.score)).students.append(r.student)
    return sorted(found.values(), key=lambda d: (-d.lost, d.item, d.label))


def item_counts(reports: list[Report]) -> dict[str, Counter]:
    """Per rubric item: how many students passed, failed, were flagged, were not graded (by Status)."""
    counts = {i.name: Counter() for i in RUBRIC}
    for r in reports:
        for c in r.checks:
            if c.name in counts:
                counts[c.name][c.status] += 1
    return counts


def integrity_groups(reports: list[Report]) -> list[tuple[str, list[str], list[tuple[str, str, str]]]]:
    """The integrity flags as groups: per kind, the students linked by flagged pairs (a class
    where seven hand in one notebook has one group of seven, not 21 lines), with their pairs."""
    pairs: dict[str, set] = {}
    for r in reports:
        for f in r.integrity or []:
            pairs.setdefault(f.kind, set()).add((*sorted((r.student, f.other)), f.evidence))
    groups = []
    for kind, found in sorted(pairs.items()):
        group_of: dict[str, set] = {}
        for a, b, _ in found:
            merged = group_of.get(a, {a}) | group_of.get(b, {b})
            for student in merged:
                group_of[student] = merged
        for group in {frozenset(g) for g in group_of.values()}:
            groups.append((kind, sorted(group), sorted(p for p in found if p[0] in group)))
    return sorted(groups, key=lambda g: (g[0], -len(g[1]), g[1]))


def histogram_svg(scores: list[float], max_score: float, bin_width: float = 5, width: int = 640,
                  height: int = 220) -> str:
    """Inline SVG bar chart of scores in bins of ``bin_width`` points (the last bin holds full marks)."""
    bins = max(1, int(-(-max_score // bin_width)))
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, int(s // bin_width))] += 1
    top = max(counts) or 1
    left, bottom, bar = 36, 30, (width - 46) / bins
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='score distribution'>",
             f"<line x1='{left}' y1='{height - bottom}' x2='{width - 10}' y2='{height - bottom}' stroke='#333'/>"]
    for i, n in enumerate(counts):
        h = (height - bottom - 20) * n / top
        x, y = left + i * bar, height - bottom - h
        low, high = i * bin_width, min(max_score, (i + 1) * bin_width)
        parts.append(f"<rect x='{x + 1:.1f}' y='{y:.1f}' width='{bar - 2:.1f}' height='{h:.1f}' fill='#4a7ab5'>"
                     f"<title>{low:g}-{high:g} points: {n} students</title></rect>")
        if n:
            parts.append(f"<text x='{x + bar / 2:.1f}' y='{y - 4:.1f}' font-size='11' text-anchor='middle'>{n}</text>")
        parts.append(f"<text x='{x + bar / 2:.1f}' y='{height - bottom + 14}' font-size='10' "
                     f"text-anchor='middle'>{low:g}</text>")
    parts.append(f"<text x='{width - 10}' y='{height - 4}' font-size='11' text-anchor='end'>points (of "
                 f"{max_score:g})</text><text x='4' y='14' font-size='11'>students</text></svg>")
    return "".join(parts)


def _bar(share: float, colour: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='120' height='12'><rect width='120' height='12' "
            f"fill='#eee'/><rect width='{120 * share:.1f}' height='12' fill='{colour}'/></svg>")


def _link(student: str) -> str:
    return f"<a href='feedback/{quote(file_stem(student))}.html'>{html.escape(student)}</a>"


def _items_html(reports: list[Report]) -> str:
    """The rubric table's rows: per item, how many passed, failed, were flagged, not graded."""
    e = html.escape
    counts = item_counts(reports)
    rows = []
    for item in RUBRIC:
        c = counts[item.name]
        graded = len(reports) - c[Status.NOT_GRADED]
        rows.append(
            f"<tr><td>{e(item.title)}<br><code>{item.name}</code></td><td>{item.points}</td>"
            f"<td class='passed' data-item='{item.name}'>{c[Status.PASSED]}</td><td>{c[Status.FAILED]}</td>"
            f"<td>{c[Status.FLAGGED]}</td><td>{c[Status.NOT_GRADED]}</td>"
            f"<td>{_bar(c[Status.PASSED] / graded, '#3a3') if graded else 'not graded'}</td></tr>")
    return "".join(rows)


def _diagnoses_html(reports: list[Report]) -> str:
    e = html.escape
    return "".join(
        f"<tr><td><code>{d.item}</code></td><td>{e(d.label)}</td><td class='count'>&times; {len(d.students)}</td>"
        f"<td>{d.lost}</td><td>{', '.join(_link(s) for s in sorted(d.students))}</td></tr>" for d in diagnoses(reports))


def _review_html(reports: list[Report]) -> tuple[str, str, str]:
    """The list items of what is flagged for review, what is not graded (and why), and the integrity groups."""
    e = html.escape
    flagged = "".join(
        f"<li>{_link(r.student)}: <code>{c.name}</code>: {e(c.message.removeprefix('flagged for review: '))}"
        f"</li>" for r in reports for c in r.with_status(Status.FLAGGED))
    pending: dict[str, list[str]] = {}
    for r in reports:
        for message in {c.message for c in r.with_status(Status.NOT_GRADED)}:
            pending.setdefault(message, []).append(r.student)
    not_graded = "".join(
        f"<li>{len(students)} students: {e(message.removeprefix('not graded: '))} "
        f"<details><summary>who</summary>{', '.join(_link(s) for s in sorted(students))}</details></li>"
        for message, students in sorted(pending.items(), key=lambda kv: -len(kv[1])))
    integrity = "".join(
        f"<li><b>{e(KINDS.get(kind, kind))}</b>: {', '.join(_link(s) for s in group)} ({len(group)} students)"
        f"<details><summary>evidence, pair by pair ({len(pairs)})</summary><ul>"
        + "".join(f"<li class='pair {kind}'>{_link(a)} and {_link(b)}: {e(evidence)} (<a class='pair-page' "
                  f"href='{e(pair_href(a, b))}'>side by side</a>)</li>" for a, b, evidence in pairs)
        + "</ul></details></li>" for kind, group, pairs in integrity_groups(reports))
    return flagged, not_graded, integrity


def _facts_html(reports: list[Report], facts: dict[str, str] | None) -> str:
    e = html.escape
    seeds = sorted({str(r.seed) for r in reports})
    layers = sorted({", ".join(r.isolation.get("layers", [])) or "unknown" for r in reports})
    all_facts = {"students": str(len(reports)), "seed": ", ".join(seeds), "isolation layers": "; ".join(layers),
                 "page built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **(facts or {})}
    return "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in all_facts.items())


def _written_html(reports: list[Report], max_score: int) -> str:
    """Once written-answer scores are imported: per question, how many students have a score, their
    mean and who has none yet; then the mean total of the students with every question scored.
    '' before any import."""
    from ..answers.pages import question_points  # not at import time: answers imports the reports
    if not any(r.manual for r in reports):
        return ""
    e = html.escape
    questions = {q: (f"Question {q.removeprefix('question')}", p) for q, p in question_points().items()}
    for r in reports:
        for q, m in r.manual.items() if r.manual else ():
            questions.setdefault(q, (m.title.removesuffix(" (graded by hand)"), m.max_score))
    rows = []
    for q, (title, points) in sorted(questions.items()):
        scored = [r.manual[q].score for r in reports if q in (r.manual or {})]
        missing = [r.student for r in reports if q not in (r.manual or {})]
        mean = f"{sum(scored) / len(scored):.1f} of {points:g}" if scored else "&ndash;"
        rows.append(f"<tr><td>{e(title)} <code>{e(q)}</code></td><td>{points:g}</td>"
                    f"<td class='scored' data-question='{e(q)}'>{len(scored)} of {len(reports)}</td><td>{mean}</td>"
                    f"<td>{', '.join(_link(s) for s in missing) or '&ndash;'}</td></tr>")
    complete = [r.total for r in reports if all(q in (r.manual or {}) for q in questions)]
    full = max_score + sum(p for _, p in questions.values())
    totals = (f"mean total {sum(complete) / len(complete):.1f} of {full:g}, written answers included "
              f"(students with every question scored: {len(complete)})" if complete
              else "no student has every question scored yet")
    return (f"<h3>Written answers (graded by hand)</h3><table class='written'><tr><th>question</th><th>points</th>"
            f"<th>scored</th><th>mean</th><th>not scored yet</th></tr>{''.join(rows)}</table><p>{totals}.</p>")


def _scores_html(reports: list[Report]) -> str:
    max_score = max((r.max_score for r in reports), default=0)
    scores = [r.score for r in reports]
    mean = sum(scores) / len(scores) if scores else 0
    return f"""<p>Automatic score: mean {mean:.1f} of {max_score}, {sum(s == max_score for s in scores)} with full marks
(the written answers are graded by hand).</p>
{histogram_svg(scores, max_score)}{_written_html(reports, max_score)}"""


def overview_html(reports: list[Report], facts: dict[str, str] | None = None) -> str:
    """The class overview page.

    Args:
        reports: every student's report (as in ``<student>.json``).
        facts: extra lines for the run's facts (e.g. ``{"grading time": "41 s"}``).
    """
    diag = _diagnoses_html(reports)
    flagged, not_graded, integrity = _review_html(reports)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FCN assignment: class overview</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}td.passed,td.count{{font-weight:bold}}
code{{font-size:90%}}h2{{margin-top:1.6em}}</style></head><body>
<h1>FCN assignment: class overview</h1>
<table class='facts'>{_facts_html(reports, facts)}</table>
<h2>Scores</h2>
{_scores_html(reports)}
<h2>Rubric items</h2>
<table class='items'><tr><th>item</th><th>points</th><th>passed</th><th>failed</th><th>flagged</th><th>not graded</th>
<th>share passed (of graded)</th></tr>{_items_html(reports)}</table>
<h2>What cost most points</h2>
<p>Failed checks grouped by what the grader found (for the equivalence checks, the first stage that departs from the
reference); each name links to the student's feedback page.</p>
{f"<table class='diagnoses'><tr><th>item</th><th>diagnosis</th><th>students</th><th>points lost</th><th>who</th></tr>{diag}</table>" if diag else "<p>Nothing failed.</p>"}
<h2>Flagged for review (not credited)</h2>
{f"<ul class='flagged'>{flagged}</ul>" if flagged else "<p>Nothing flagged.</p>"}
<h2>Not graded</h2>
{f"<ul class='not-graded'>{not_graded}</ul>" if not_graded else "<p>Every item was graded.</p>"}
<h2>Integrity: for a person to review, never a penalty</h2>
<p>Only here and on the pair pages (<code>instructor-only/integrity/</code>): no student's feedback page mentions a flag.</p>
{f"<ul class='integrity'>{integrity}</ul>" if integrity else "<p>No two students' predictions, recorded weights or code are the same.</p>"}
</body></html>
"""


def write_overview(out: Path, reports: list[Report], facts: dict[str, str] | None = None) -> Path:
    """Write ``out/index.html`` whole (temp + rename, UTF-8) and return its path."""
    path = Path(out) / "index.html"
    write_text(path, overview_html(sorted(reports, key=lambda r: r.student), facts))
    return path


def class_pages(out: Path, reports: list[Report], checkpoints: Path | None = None,
                image_ids: list[str] | None = None, facts: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """After a run's (or ``summarize``'s) reports are written: compute the class's integrity flags,
    put them into each ``<student>.json`` whose flags changed, write the instructor-only page of
    each flagged pair and the overview, and take any integrity note an earlier version wrote out
    of the feedback pages. Each student's files are their own failure boundary: one that cannot be
    updated is named, never stops the overview. Returns the overview's path and a line per student
    whose files could not be updated.

    Args:
        out: the reports folder (``<student>.json``, ``feedback/<student>.html``).
        reports: the reports of the class (or of a shard, until ``summarize`` joins them).
        checkpoints: the run's ``--checkpoints`` folder, where predictions may also be.
        image_ids: the test split's image ids, when the run has labels.
        facts: extra lines for the page's run facts.
    """
    out = Path(out)
    before = {r.student: r.integrity or [] for r in reports}
    flag_class(reports, checkpoints, image_ids)
    problems = []
    for r in reports:
        path = report_path(out, r.student)
        try:
            remove_feedback_note(feedback_path(out, r.student))
            if r.integrity != before[r.student] and path.is_file():  # only the integrity changes
                saved = read_report(path)
                saved.integrity = r.integrity
                write_text(path, dumps(saved))
        except (OSError, ValueError) as err:  # ReportError is a ValueError
            problems.append(f"{r.student}: the integrity flags could not be written into {path} ({err}); they are "
                            f"on the overview")
    try:
        write_pair_pages(out, reports)
    except OSError as err:
        problems.append(f"the integrity pair pages could not be written into {out / 'instructor-only'} ({err}); the "
                        f"flags are on the overview")
    return write_overview(out, reports, facts), problems
