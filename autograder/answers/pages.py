"""The written answers' grading pages: a page per question with every student's answer.

    python -m autograder answers SUBMISSIONS --out answers/ [--anonymous]     # a page per question

Each page holds the question, the instructor's key (from the source notebook), then every student's
answer with the numbers the same student's notebook reports where the question refers to them, hints
(which terms of the key the answer mentions) and near-duplicate flags, and a score and a comment box.
The page saves the scores as a CSV (a button; it works opened from disk), which
:mod:`autograder.answers.scores` imports.
"""
from __future__ import annotations

import html
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.predictions import UnreadableFile, read_bounded
from fcnkit.spec import CLASS_NAMES

from .. import atomic
from ..questions import SOURCE, Question, cell_source, cells_of, questions_from
from ..reports.markup import STYLE as MARKUP_STYLE, as_text, render
from ..submission import MAX_SUBMISSION_BYTES

BOILERPLATE = re.compile(r"YOUR ANSWER HERE|\*{0,2}your answers?:?\*{0,2}:?", re.IGNORECASE)



@dataclass
class Answer:
    student: str
    text: str
    numbers: str = ""  # what the student's own notebook reports, where the question refers to it
    hints: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    comments: bool = False  # written as comments in a code cell: shown as text, not as markdown

    def html(self) -> str:
        """The answer as the page shows it: markdown and formulas rendered (safely), comments as text."""
        return as_text(self.text) if self.comments else render(self.text)


def _script(path: Path) -> list[dict]:
    """A .py submission as one code cell (its comments can hold answers)."""
    try:
        return [{"cell_type": "code", "source": read_bounded(path, MAX_SUBMISSION_BYTES).decode("utf-8", "replace")}]
    except UnreadableFile:
        return []


def _clean(text: str) -> str:
    return BOILERPLATE.sub("", text).strip()


def _as_text(cell) -> str:
    """A markdown cell as written; a code cell's comments (answers written as ``# ...``)."""
    if cell.get("cell_type") == "code":
        return "\n".join(line.strip().lstrip("#").strip() for line in cell_source(cell).splitlines()
                         if line.strip().startswith("#"))
    return cell_source(cell)


def find_answer(cells: list[dict], question: Question) -> tuple[str, bool]:
    """A student's answer to ``question``: the cell with its grade_id (our release), else the cells
    after the one that states it, up to the next question or heading ('' when there is none); and
    whether any of it was written as comments in a code cell (then it is shown as text).

    Args:
        cells: the notebook's cells.
        question: the question, as the source notebook states it.
    """
    for cell in cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == question.id:
            return _clean(_as_text(cell)), cell.get("cell_type") == "code"
    marker = re.compile(rf"\bquestion\s*{question.number}\b|\bq{question.number}\b", re.IGNORECASE)
    stop = re.compile(r"\bquestion\s*(\d+)\b|^\s*#{1,6}\s", re.IGNORECASE | re.MULTILINE)
    for i, cell in enumerate(cells):
        own = _as_text(cell)
        if not marker.search(own):
            continue
        parts, comments = [], cell.get("cell_type") == "code"
        inline = re.split(r"your answers?\s*:?\**", own, maxsplit=1, flags=re.IGNORECASE)
        if len(inline) == 2:  # "Your Answer:" in the question's own cell
            parts.append(inline[1])
        elif cell.get("cell_type") == "code":  # the question quoted in a comment, the answer below it
            parts.append(own[marker.search(own).end():].lstrip(" .:)*"))
        for follower in cells[i + 1:]:
            text = _as_text(follower)
            found = stop.search(text)
            if found and (found.group(1) is None or found.group(1) != str(question.number)):
                break
            parts.append(text)
            comments = comments or (follower.get("cell_type") == "code" and bool(text.strip()))
        return _clean("\n\n".join(p for p in parts if p.strip())), comments
    return "", False


def _metrics(submission: Path) -> dict:
    """The test scores the student's notebook saved (outputs/metrics.json): untrusted, bounded."""
    for folder in (submission.parent / "outputs", submission.parent):
        try:
            data = json.loads(read_bounded(folder / "metrics.json", 2**20).decode("utf-8"))
            return data["test"] if isinstance(data, dict) and isinstance(data.get("test"), dict) else {}
        except (UnreadableFile, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
    return {}


def _number(scores: dict, key: str):
    value = scores.get(key) if isinstance(scores, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def numbers_for(question: Question, metrics: dict) -> str:
    """What the question refers to, from the student's own run: scratch vs ImageNet FCN-32s (question
    1), per-class IoU of FCN-32s and FCN-8s (question 2)."""
    def miou(name):
        value = _number(metrics.get(name, {}), "mean_iou")
        return "-" if value is None else f"{value:.3f}"
    if question.number == 1:
        return f"their test mIoU: FCN-32s from scratch {miou('fcn32s_scratch')}, from ImageNet {miou('fcn32s')}"
    if question.number == 2:
        per = {}
        for model in ("fcn32s", "fcn8s"):
            values = metrics.get(model, {}).get("per_class_iou") if isinstance(metrics.get(model), dict) else None
            per[model] = values if isinstance(values, list) and len(values) == len(CLASS_NAMES) else [None] * 12
        cells = ", ".join(f"{name} {_fmt(a)}->{_fmt(b)}" for name, a, b in zip(CLASS_NAMES, per["fcn32s"], per["fcn8s"]))
        return f"their test mIoU: FCN-32s {miou('fcn32s')}, FCN-8s {miou('fcn8s')}; IoU per class (32s->8s): {cells}"
    return ""


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def hints(question: Question, text: str) -> list[str]:
    """The key's terms the answer mentions (by their first six letters: overfit / overfitting)."""
    words = {w[:6] for w in re.findall(r"[a-z][a-z-]+", text.lower())}
    return [term for term in question.terms if term[:6] in words]


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(answers: list[Answer], threshold: float = 0.5) -> None:
    """Flag pairs of answers sharing most of their word 5-grams (Jaccard >= ``threshold``)."""
    shingles = [_shingles(a.text) for a in answers]
    for i, a in enumerate(answers):
        for j in range(i + 1, len(answers)):
            union = shingles[i] | shingles[j]
            if len(union) >= 4 and len(shingles[i] & shingles[j]) / len(union) >= threshold:
                a.duplicates.append(answers[j].student)
                answers[j].duplicates.append(a.student)


def collect(submissions: list[tuple[str, Path]], questions: list[Question]) -> dict[str, list[Answer]]:
    """Every student's answer to every question."""
    found = {q.id: [] for q in questions}
    for student, path in submissions:
        cells = cells_of(path) if path.suffix == ".ipynb" else _script(path)
        metrics = _metrics(path)
        for q in questions:
            text, comments = find_answer(cells, q)
            found[q.id].append(Answer(student, text, numbers_for(q, metrics), hints(q, text), comments=comments))
    for answers in found.values():
        near_duplicates([a for a in answers if a.text])
    return found


PAGE_SCRIPT = """
const QUESTION = document.body.dataset.question, STORE = 'fcnkit-answers-' + QUESTION;
const saved = JSON.parse(localStorage.getItem(STORE) || '{}');
document.querySelectorAll('tr.answer').forEach(tr => {
  const who = tr.dataset.student, score = tr.querySelector('.score'), comment = tr.querySelector('.comment');
  if (saved[who]) { score.value = saved[who][0]; comment.value = saved[who][1]; }
  const keep = () => { saved[who] = [score.value, comment.value]; localStorage.setItem(STORE, JSON.stringify(saved)); };
  score.addEventListener('input', keep); comment.addEventListener('input', keep);
});
document.getElementById('download').addEventListener('click', () => {
  // a cell that starts like a formula (=, +, -, @, tab, CR) gets a leading quote: spreadsheets show it as text
  const quote = v => { v = String(v); if (/^[=+\\-@\\t\\r]/.test(v)) v = "'" + v; return '"' + v.replace(/"/g, '""') + '"'; };
  const rows = [['student', 'question', 'score', 'comment']];
  document.querySelectorAll('tr.answer').forEach(tr => {
    const score = tr.querySelector('.score').value;
    if (score !== '') rows.push([tr.dataset.student, QUESTION, score, tr.querySelector('.comment').value]);
  });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([rows.map(r => r.map(quote).join(',')).join('\\r\\n') + '\\r\\n'],
                                           {type: 'text/csv'}));
  link.download = 'scores-' + QUESTION + '.csv';
  document.body.appendChild(link);
  link.click();
  link.remove();
});
"""


def page(question: Question, answers: list[Answer], names: dict[str, str]) -> str:
    """One question's grading page; ``names``: how each student is shown (anonymised or not)."""
    e = html.escape
    blank = [a for a in answers if not a.text]

    def row(a: Answer, default: str = "") -> str:
        notes = []
        if a.hints:
            notes.append(f"mentions the key's: {e(', '.join(a.hints))}")
        if a.duplicates:
            notes.append("<b>near-duplicate of " + e(", ".join(names[d] for d in a.duplicates)) + "</b>")
        return (f"<tr class='answer' data-student='{e(names[a.student])}'><td>{e(names[a.student])}</td>"
                f"<td><div class='text'>{a.html() if a.text else '<i>(no answer)</i>'}</div>"
                f"<div class='numbers'>{e(a.numbers)}</div><div class='hints'>{'; '.join(notes)}</div></td>"
                f"<td><input class='score' type='number' min='0' max='{question.points:g}' step='0.5' value='{default}'>"
                f" / {question.points:g}<br><textarea class='comment' rows='3' cols='28'></textarea></td></tr>")
    answered = "".join(row(a) for a in answers if a.text)
    missing = "".join(row(a, "0") for a in blank)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(question.id)}: written answers</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:6px;vertical-align:top}}.text{{overflow-wrap:anywhere}}
.numbers{{color:#555;font-size:90%;margin-top:6px}}.hints{{color:#06c;font-size:90%}}.key{{background:#f4f4f4;padding:8px;margin:6px 0}}
{MARKUP_STYLE}</style></head><body data-question="{e(question.id)}">
<h1>{e(question.id)} ({question.points:g} points): {len(answers) - len(blank)} answers, {len(blank)} blank</h1>
<div class="key"><b>Question.</b> {render(question.text)}</div>
<div class="key"><b>Key and rubric.</b> {render(question.key)}</div>
<p>Hints list the key's terms each answer mentions; they are help, not a grade. Scores stay in this browser
until you download them: <button id="download">Download scores (CSV)</button></p>
<table><tr><th>student</th><th>answer</th><th>score, comment</th></tr>{answered}</table>
<h2>No answer ({len(blank)})</h2>
<table>{missing or '<tr><td>none</td></tr>'}</table>
<script>{PAGE_SCRIPT}</script>
</body></html>
"""


def write_pages(submissions: list[tuple[str, Path]], out: Path, source: Path = SOURCE, anonymous: bool = False,
                seed: int = 0) -> list[Path]:
    """A page per question in ``out``; with ``anonymous`` students are shown as "student 01"... in
    a shuffled order, and ``out/anonymous.json`` (never shown) maps the names back for the import."""
    questions = questions_from(source)
    found = collect(submissions, questions)
    students = [s for s, _ in submissions]
    names = {s: s for s in students}
    if anonymous:
        order = students[:]
        random.Random(seed).shuffle(order)
        names = {s: f"student {i + 1:02d}" for i, s in enumerate(order)}
        (out / "anonymous.json").parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out / "anonymous.json", json.dumps({v: k for k, v in names.items()}, indent=1,
                                                             ensure_ascii=False) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for q in questions:
        answers = sorted(found[q.id], key=lambda a: names[a.student])
        path = out / f"{q.id}.html"
        atomic.write_text(path, page(q, answers, names))
        written.append(path)
    return written
