"""A class folder of notebooks crafted against the grader's reader (broken, truncated, not UTF-8,
oversized, nested too deeply, numbers over the digit limit, wrong types) beside correct ones: each
gets its report with its reason, the correct ones their full marks, and nothing stops the run."""
import json
import os

import pytest
import nbformat

from autograder.__main__ import main
from autograder.catalogue import REFERENCE
from autograder.rubric import RUBRIC

STRUCTURAL = sum(i.points for i in RUBRIC if not i.needs_weights)  # what a run without trained results grades


def _notebook(code: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]))


@pytest.mark.slow
def test_every_hostile_notebook_gets_its_reason_and_the_correct_ones_full_marks(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    good = _notebook(REFERENCE)
    files = {  # name: (content, what its report must say)
        "broken.ipynb": ("{not json", "is not a valid notebook"),
        "truncated.ipynb": (good[: len(good) // 2], "is not a valid notebook"),
        "deep.ipynb": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "bignum.ipynb": ('{"cells": [], "nbformat": 1' + "0" * 5000 + "}", "Exceeds the limit"),
        "cells_a_dict.ipynb": (json.dumps({"cells": {"cell_type": "code"}}), "has no list of cells"),
        "a_list.ipynb": ("[1, 2, 3]", "has no list of cells"),
        "source_numbers.ipynb": (json.dumps({"cells": [{"cell_type": "code", "source": [1, 2]}]}),
                                 "cell 1's source is not text"),
        "source_object.ipynb": (json.dumps({"cells": [{"cell_type": "code", "source": {"a": "b"}}]}),
                                "cell 1's source is not text"),
        "much_code.py": ("#" * (5 * 2**20), "MB of code"),
        "deep_code.py": ("x = " + "-" * 100_000 + "1\n", "nested too deeply to parse"),
        "null_bytes.py": ("class FCN32s:\x00\n", "syntax error"),
        # 2.9 MB of assignments, each reading the one before, read by a class: 150,001 chunks unbounded
        "chained_statements.py": ("A0 = 1\n" + "".join(f"A{i} = A{i - 1} + 0\n" for i in range(1, 150_001))
                                  + "class FCN32s:\n    n = A150000\n", "reads at most 10000 top-level statements"),
        "chained_reads.ipynb": (_notebook("A0 = 1\n" + "".join(f"A{i} = A{i - 1} + 0\n" for i in range(1, 5001))
                                          + "class FCN32s:\n    n = A5000\n"),
                                "the definitions read more than 1000 top-level assignments"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    (folder / "latin1.ipynb").write_bytes(_notebook("# café\n").encode("latin-1"))
    files["latin1.ipynb"] = (None, "is not UTF-8")
    with open(folder / "oversized.ipynb", "wb") as f:  # sparse: 101 MB on paper, nothing on disk
        f.truncate(101 * 2**20)
    files["oversized.ipynb"] = (None, "over the 100.00 MB allowed")
    (folder / "reference.ipynb").write_text(good, encoding="utf-8")
    (folder / "reference_py.py").write_text(REFERENCE, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["grade", str(folder), "--out", str(out), "--seed", "2", "--jobs", "2", "--timeout", "120"]) == 0
    for name, (_, reason) in files.items():
        report = json.loads((out / f"{os.path.splitext(name)[0]}.json").read_text(encoding="utf-8"))
        said = " ".join(report["notes"] + [c["message"] for c in report["checks"]])
        assert reason in said, (name, said[:500])
        assert report["score"] == 0 and not report.get("not_graded"), name  # the student's file, not the grader
    for name in ("reference", "reference_py"):
        assert json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["score"] == STRUCTURAL, name
    rows = (out / "grades.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(files) + 3


def test_ids_never_collide_and_files_are_named_by_a_safe_stem(tmp_path):
    """Student ids from every layout, unique even where paths would meet; the stems of hostile names
    are bounded, without separators or control characters, and never another student's."""
    from autograder.pipeline import find_submissions
    from autograder.results import STEM_BYTES, file_stem
    for name in ["a/b.py", "a__b.py", "bob/fcn_segmentation.ipynb", "carl/hw/fcn_segmentation.ipynb",
                 "dan/part1.py", "dan/part2.py", "Eve.py", "eve.py", "submitted/fay/hw/fcn_segmentation.ipynb"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = {str(f.relative_to(tmp_path)): s for s, f in find_submissions(tmp_path)}
    assert len(set(found.values())) == len(found) == 9
    assert found["bob/fcn_segmentation.ipynb"] == "bob" and found["carl/hw/fcn_segmentation.ipynb"] == "carl"
    assert found["dan/part1.py"] == "dan__part1" and found["submitted/fay/hw/fcn_segmentation.ipynb"] == "fay"
    assert found["a__b.py"] != found["a/b.py"] and found["eve.py"].casefold() != found["Eve.py"].casefold()
    assert find_submissions(tmp_path) == find_submissions(tmp_path)  # stable
    hostile = ["x" * 251, "é" * 200, "a\nb", "a/b", ".tmp-x", "..", "", "tab\there", "a~0123456789", "x\udcc3"]
    stems = [file_stem(n) for n in hostile]
    assert len(set(stems)) == len(stems) and "a~0123456789" not in stems
    for stem in stems:
        assert 0 < len(stem.encode("utf-8")) <= STEM_BYTES and stem.isprintable() and "/" not in stem
        assert not stem.startswith(".")
    assert [file_stem(n) for n in ("josé", "all", "copier_bob")] == ["josé", "all", "copier_bob"]


@pytest.mark.slow
def test_a_class_of_odd_names_gets_one_honest_row_each_and_its_overview(tmp_path):
    """``a/b.py`` (buggy) beside ``a__b.py`` (correct), a 251-character name, a name with a newline
    and markup, and names like the run's own files (``grades``, ``index``, ``run.lock``,
    ``gradebook.sqlite``): a record each in the gradebook, a row each with their own files and
    scores, a finished overview whose links open the right pages, exit 0."""
    from autograder.catalogue import sources
    folder = tmp_path / "class"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "b.py").write_text(sources()["fcn8s_no_ceil_mode"], encoding="utf-8")
    names = ["a__b", "y" * 251, "new\nline <b>bold", "grades", "index", "run.lock", "gradebook.sqlite"]
    for name in names:
        (folder / f"{name}.py").write_text(REFERENCE, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["grade", str(folder), "--out", str(out), "--seed", "2", "--jobs", "2"]) == 0
    from autograder.reports.files import feedback_path
    from autograder.results import read_reports
    reports, skipped = read_reports(out)
    assert not skipped
    by_file = {os.path.relpath(r.submission, folder): r for r in reports}
    assert sorted(by_file) == sorted(["a/b.py", *(f"{n}.py" for n in names)])
    assert by_file["a/b.py"].student == "a" and by_file["a/b.py"].score < STRUCTURAL
    assert all(by_file[f"{n}.py"].score == STRUCTURAL and by_file[f"{n}.py"].student == n for n in names)
    import csv
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert sorted((r["student"], r["score"]) for r in rows) == sorted((r.student, str(r.score)) for r in reports)
    overview = (out / "index.html").read_text(encoding="utf-8")
    assert "new\nline &lt;b&gt;bold" in overview and "<b>bold" not in overview
    for r in reports:
        assert feedback_path(out, r.student).is_file(), r.student
    import sqlite3
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        rows = db.execute("SELECT s.id, s.stem, b.path, b.state FROM students s JOIN submissions b ON b.student = s.id")
        recorded = {os.path.relpath(path, folder): (student, stem, state) for student, stem, path, state in rows}
    assert {f: v[0] for f, v in recorded.items()} == {f: r.student for f, r in by_file.items()}
    assert len({v[1] for v in recorded.values()}) == len(recorded) and {v[2] for v in recorded.values()} == {"graded"}
    assert (out / "grades.csv").is_file() and (out / "gradebook.sqlite").is_file()  # not overwritten by a student


def test_the_runs_own_files_never_take_a_students_name(tmp_path, capsys):
    """``--json OUT/all.json`` (or --gradescope, --timings inside --out) would overwrite the report of
    a student called ``all``: refused before anything is graded, naming the flag and the fix."""
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "all.py").write_text(REFERENCE, encoding="utf-8")
    out = tmp_path / "out"
    for flag, name in (("--json", "all.json"), ("--timings", "feedback/all.html"), ("--gradescope", "all.json")):
        assert main(["grade", str(tmp_path / "class"), "--out", str(out), flag, str(out / name)]) == 2
        assert f"{flag} {out / name} is inside --out" in capsys.readouterr().err
    assert not (out / "all.json").exists()
