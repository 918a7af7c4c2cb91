"""Integrity flags, for a person to review and never a penalty: students whose submitted
predictions are the same or nearly so, who record the same weights' SHA-256, or whose own code
(the cells students write, the template's given code left out) is the same after normalising names
and formatting.

Cheap for a class: each student's predictions become per-image hashes and a small sketch (the same
few pixels of every test map); pairs are compared on sketches only, and the pixels of a pair are
read again only when its sketch already says the two agree beyond what independent trainings do.
"""
from __future__ import annotations

import ast
import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit._grading.extract import parse, strip_magics
from fcnkit.predictions import PredictionsError, read_predictions
from fcnkit.spec import MODEL_CLASSES

from ..results import IntegrityFlag, Report
from ..submission import SubmissionError, code_cells
from .evidence import MISSING, SKETCH_PIXELS, image_hashes, sketch, sketch_agreement  # noqa: F401

TEMPLATE = Path(__file__).resolve().parents[2] / "notebooks" / "release" / "fcn_segmentation" / "fcn_segmentation.ipynb"

# the predictions' evidence is computed where they are read, for the mIoU item (judging/evidence.py)
# ----------------------------------------------------------------------------------- code students write
# Units smaller than this (in AST nodes) are left out: `return h`, `super().__init__()` are everyone's.
MIN_UNIT_NODES = 12


IDENTIFIERS = {"id", "arg", "name"}  # Name.id, arg.arg, def / class / except names; and Attribute.attr, apart
SKIPPED = {"ctx", "type_comment", "annotation", "returns", "type_params"}  # no part of what the code does


def _docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def normal_form(node: ast.AST) -> tuple[str, int]:
    """(text, size in nodes) of a piece of code with docstrings, comments, annotations and formatting
    left out and every identifier renamed by order of first appearance (variables, arguments,
    functions, classes, attributes), so renaming and reformatting change nothing; constants and
    structure stay. Made in one walk, without copying the tree."""
    names: dict[str, str] = {}
    attributes: dict[str, str] = {}  # a layer self.score_pool4 and a variable score_pool4 are renamed apart
    out: list[str] = []
    size = 0

    def walk(value, field_name: str = "") -> None:
        nonlocal size
        if isinstance(value, ast.AST):
            size += 1
            out.append(type(value).__name__ + "(")
            for name, child in ast.iter_fields(value):
                if name in SKIPPED:
                    continue
                if name == "body" and isinstance(value, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                        and child and _docstring(child[0]):
                    child = child[1:]
                walk(child, name)
                out.append(",")
            out.append(")")
        elif isinstance(value, list):
            out.append("[")
            for child in value:
                walk(child, field_name)
                out.append(",")
            out.append("]")
        elif isinstance(value, str) and field_name in IDENTIFIERS:
            out.append(names.setdefault(value, f"v{len(names)}"))
        elif isinstance(value, str) and field_name == "attr":
            out.append(attributes.setdefault(value, f"a{len(attributes)}"))
        else:
            out.append(repr(value))
    walk(node)
    return "".join(out), size


def code_units(cells: list[str]) -> dict[str, int]:
    """``{hash: size}`` of a submission's code: every function and method (at any depth) and every
    other top-level statement but imports, each in its normal form (:func:`normal_form`)."""
    units = {}
    for source in cells:
        try:
            tree = parse(strip_magics(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nodes += [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                                             ast.AsyncFunctionDef, ast.ClassDef))]
        for node in nodes:
            try:
                dumped, size = normal_form(node)
            except RecursionError:
                continue
            if size >= MIN_UNIT_NODES:
                units[hashlib.sha256(dumped.encode()).hexdigest()[:16]] = size
    return units


def written_code(submission: Path, template: dict[str, int]) -> dict[str, int]:
    """The units of a submission that the template does not give."""
    try:
        cells = [source for _, source in code_cells(Path(submission))]
    except SubmissionError:
        return {}
    return {h: size for h, size in code_units(cells).items() if h not in template}


def template_units(template: Path | None = TEMPLATE) -> dict[str, int]:
    """The units of the notebook students start from (the release: no solutions in it)."""
    if template is None or not Path(template).is_file():
        return {}
    return code_units([source for _, source in code_cells(Path(template))])


# ----------------------------------------------------------------------------------- the class
# Two independent trainings agree on far fewer pixels than this (docs/results.md, "Integrity flags",
# bench/integrity_honest.py: two seeds of the same short CPU training).
PREDICTIONS_AGREEMENT = 0.97
CODE_SIMILARITY = 0.9  # share of the written code (in AST nodes) two students have in common
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Student:
    """What a student's flags are computed from: per model, the predictions' hashes and sketch and
    the recorded weights' SHA-256; their written code's units."""
    name: str
    hashes: dict[str, list[str]] = field(default_factory=dict)
    sketches: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    code: dict[str, int] = field(default_factory=dict)


def student_evidence(report: Report, ids: list[str] | None, template: dict[str, int],
                     predictions: Callable[[Report, str], Path | None] | None = None) -> Student:
    """One student's evidence: per model, what the mIoU item recorded when it read the predictions
    (``report.evidence``, over the same image ids), else the predictions read now from the folder
    ``predictions(report, kind)`` finds (bounded, fcnkit.predictions); and their code. ``ids``: the test
    split's image ids (default: the recorded ones, else those the student's own predictions list)."""
    student = Student(report.student)
    submission = Path(report.submission)
    for kind in MODEL_CLASSES:
        recorded = (report.evidence or {}).get(kind)
        if recorded is not None and (ids is None or list(ids) == recorded["ids"]):
            hashes, sketched, weights = recorded["hashes"], np.asarray(recorded["sketch"], np.uint8), recorded["weights"]
        else:
            folder = predictions(report, kind) if predictions and submission.exists() else None
            if folder is None or folder.is_symlink():
                continue
            try:
                meta, maps = read_predictions(folder, kind)
            except PredictionsError:
                continue  # the mIoU item already flags what cannot be read
            order = ids or meta.image_ids
            hashes, sketched, weights = image_hashes(maps, order), sketch(maps, order), meta.weights_sha256
        student.hashes[kind], student.sketches[kind] = hashes, sketched
        if SHA256.fullmatch(weights):
            student.weights[kind] = weights
    if submission.is_file() and template:  # without the template every student shares its given code
        student.code = written_code(submission, template)
    return student


def _flag(flags: dict, a: str, b: str, kind: str, evidence: str, agreement: float) -> None:
    flags.setdefault(a, []).append(IntegrityFlag(kind, b, evidence, round(float(agreement), 4)))
    flags.setdefault(b, []).append(IntegrityFlag(kind, a, evidence, round(float(agreement), 4)))


def compare(students: list[Student]) -> dict[str, list[IntegrityFlag]]:
    """The flags of a class: ``{student: [IntegrityFlag, ...]}``, each pair on both
    students. Predictions: sketches compared pair by pair (vectorised, one student against all
    later ones); weights and code: grouped by hash, so only students sharing one are paired."""
    flags: dict[str, list[IntegrityFlag]] = {}
    for kind, title in MODEL_CLASSES.items():
        have = [s for s in students if kind in s.sketches]
        if not have:
            continue
        # the students whose predictions cover the most common list of images (a smoke run's few are left out)
        common = Counter(len(s.sketches[kind]) for s in have).most_common(1)[0][0]
        have = [s for s in have if len(s.sketches[kind]) == common]
        if len(have) < 2:
            continue
        matrix = np.stack([s.sketches[kind] for s in have])
        present = matrix != MISSING
        for i in range(len(have) - 1):
            both = present[i] & present[i + 1:]
            agree = ((matrix[i + 1:] == matrix[i]) & both).sum(1) / np.maximum(both.sum(1), 1)
            for j in np.flatnonzero(agree >= PREDICTIONS_AGREEMENT) + i + 1:
                a, b = have[i], have[j]
                same = sum(x == y != "" for x, y in zip(a.hashes[kind], b.hashes[kind]))
                _flag(flags, a.name, b.name, "predictions",
                      f"{title} test predictions: {same} of {len(a.hashes[kind])} maps identical, "
                      f"{agree[j - i - 1]:.1%} of {int(both[j - i - 1].sum())} sampled pixels agree "
                      f"(independent trainings agree on far fewer; threshold {PREDICTIONS_AGREEMENT:.0%})", agree[j - i - 1])
    by_sha: dict[str, list[tuple[str, str]]] = {}
    for s in students:
        for kind, digest in s.weights.items():
            by_sha.setdefault(digest, []).append((s.name, kind))
    for digest, owners in by_sha.items():
        for (a, kind_a), (b, kind_b) in itertools.combinations(owners, 2):
            if a != b:
                _flag(flags, a, b, "weights", f"the same weights' SHA-256 ({digest[:16]}...) recorded in "
                                              f"{MODEL_CLASSES[kind_a]} and {MODEL_CLASSES[kind_b]} predictions", 1.0)
    by_unit: dict[str, list[int]] = {}
    for index, s in enumerate(students):
        for unit in s.code:
            by_unit.setdefault(unit, []).append(index)
    pairs = {pair for owners in by_unit.values() for pair in itertools.combinations(owners, 2)}
    for i, j in sorted(pairs):
        a, b = students[i], students[j]
        shared = sum(size for unit, size in a.code.items() if unit in b.code)
        union = sum(a.code.values()) + sum(b.code.values()) - shared
        if union and shared / union >= CODE_SIMILARITY:
            _flag(flags, a.name, b.name, "code",
                  f"the same code in the cells students write, after normalising names and formatting: "
                  f"{shared / union:.0%} of {union} syntax nodes in common ({sum(u in b.code for u in a.code)} of "
                  f"{len(a.code)} functions and statements)", shared / union)
    return flags


def flag_class(reports: list[Report], predictions: Callable[[Report, str], Path | None] | None = None,
               labels_ids: list[str] | None = None, template: Path | None = TEMPLATE) -> dict[str, list[IntegrityFlag]]:
    """Compute the flags of a class and put them into each report (``report.integrity``, a list,
    empty when nothing is flagged). Never changes a score.

    Args:
        reports: the class's reports (``<student>.json``), each with its ``submission`` path.
        predictions: finds the folder of a student's predictions of a model (``report, kind -> folder``), for
            a report that recorded no evidence of them (None: only what the reports recorded).
        labels_ids: the test split's image ids (default: each student's own list).
        template: the notebook students start from, whose code is left out.
    """
    given = template_units(template)
    students = []
    for report in reports:
        try:
            students.append(student_evidence(report, labels_ids, given, predictions))
        except Exception:  # a submission that cannot be read gives no evidence; it never stops the run
            students.append(Student(report.student))
    flags = compare(students)
    for report in reports:
        report.integrity = flags.get(report.student, [])
    return flags
