"""Canvas export round trip: a roster in the format of Canvas's gradebook export in, the CSV its
gradebook import takes out, read back as Canvas reads it (the identity columns, the Points Possible
row, the assignment's column), with the written answers in the total once imported, unmatched
students listed, and cells that would run as spreadsheet formulas escaped."""
import csv
import io
import json
from pathlib import Path

import pytest

from autograder.__main__ import main
from autograder.answers import SOURCE, merge, questions_from
from autograder.reports.canvas import IDENTITY, unmatched_path
from autograder.reports.files import write_json
from autograder.results import CheckResult, Report, Status
from autograder.rubric import RUBRIC

# As Canvas writes it (Grades > Export): identity columns, other assignments, read-only totals, a
# "Points Possible" row with leading spaces, the Test Student, and a name a spreadsheet would run.
ROSTER = """\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Homework 1 (111),FCN segmentation (12345),Current Score,Final Score
    Points Possible,,,,,10.00,100.00,(read only),(read only)
"Lovelace, Ada",101,S001,ada,Section A,9.00,,90.00,90.00
"=HYPERLINK(""http://x.example"";""Eve"")",102,S002,Eve,Section A,7.00,,70.00,70.00
"Hopper, Grace",103,S003,grace,Section B,10.00,,100.00,100.00
"Student, Test",999,,,Section A,,,,
"""


def report(student: str, passed: set[str]) -> Report:
    checks = [CheckResult(i.name, i.title, i.model, i.points, i.points if i.name in passed else 0,
                          Status.PASSED if i.name in passed else Status.FAILED, "") for i in RUBRIC]
    return Report(student, f"/nowhere/{student}.ipynb", checks=checks)


@pytest.fixture
def reports(tmp_path) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    items = [i.name for i in RUBRIC]
    klass = [report("ada", set(items)), report("eve", set(items[:5])), report("bob", set(items[:2]))]
    questions = {q.id: q for q in questions_from(SOURCE)}
    first, second = list(questions)[:2]
    merge(klass, {("ada", first): (12.0, ""), ("ada", second): (14.5, ""), ("eve", first): (3.0, "")}, questions)
    for r in klass:
        write_json([r], folder / f"{r.student}.json")
    return folder


def read_back(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")  # plain UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def test_a_canvas_roster_in_the_import_file_out(tmp_path, reports, capsys):
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "canvas-import.csv"
    assert main(["export", "canvas", str(reports), "--roster", str(tmp_path / "roster.csv"), "--out", str(out),
                 "--missing-answers-zero"]) == 0  # Eve has no score for the second question: 0
    rows = read_back(out)
    assert rows[0] == [*IDENTITY, "FCN segmentation (12345)"]  # the roster's own column for the assignment
    saved = {json.loads(p.read_text())["student"]: json.loads(p.read_text()) for p in reports.glob("*.json")}
    possible = saved["ada"]["max_score"] + sum(m["max_score"] for m in saved["ada"]["manual"].values())
    assert rows[1] == ["Points Possible", "", "", "", "", f"{possible:g}"]
    by_login = {r[3]: r for r in rows[2:]}
    assert set(by_login) == {"ada", "Eve"}  # matched case-insensitively; nobody without a report
    assert by_login["ada"][:5] == ["Lovelace, Ada", "101", "S001", "ada", "Section A"]
    assert float(by_login["ada"][5]) == saved["ada"]["score"] + 12.0 + 14.5  # the written answers included
    assert float(by_login["Eve"][5]) == saved["eve"]["score"] + 3.0
    assert by_login["Eve"][0].startswith("'=HYPERLINK(")  # shown as text, never run as a formula
    err = capsys.readouterr().err
    assert "1 graded but not in the roster: bob" in err
    assert "2 in the roster without a report: Hopper, Grace, Student, Test" in err
    listing = list(csv.reader(io.StringIO(unmatched_path(out).read_text(encoding="utf-8"))))
    assert listing[1:] == [["graded, not in the roster", "bob"], ["in the roster, no report", "Hopper, Grace"],
                           ["in the roster, no report", "Student, Test"]]
    assert not list(tmp_path.glob(".canvas-import*"))  # no temporary file left behind


def test_matching_on_another_column_and_a_new_assignment(tmp_path, reports):
    # Ada's SIS User ID is her grader id now, her login something else
    roster = ROSTER.replace(",S001,ada,", ",ada,x1,")
    (tmp_path / "roster.csv").write_text(roster, encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["export", "canvas", str(reports), "--roster", str(tmp_path / "roster.csv"), "--out", str(out),
                 "--match", "SIS User ID", "--assignment", "FCN (graded by fcnkit)"]) == 0
    rows = read_back(out)
    assert rows[0][-1] == "FCN (graded by fcnkit)"
    assert [(r[2], r[3]) for r in rows[2:]] == [("ada", "x1")]


def test_a_roster_that_is_not_canvass_is_refused_with_the_fix(tmp_path, reports, capsys):
    (tmp_path / "roster.csv").write_text("name,email\nada,ada@example.org\n", encoding="utf-8")
    assert main(["export", "canvas", str(reports), "--roster", str(tmp_path / "roster.csv"),
                 "--out", str(tmp_path / "out.csv")]) == 2
    assert "not a Canvas gradebook export (Grades > Export" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    assert main(["export", "canvas", str(reports), "--roster", str(tmp_path / "roster.csv"),
                 "--out", str(tmp_path / "out.csv"), "--match", "Email"]) == 2
    assert "no 'Email' column to match students on" in capsys.readouterr().err


def test_partial_totals_are_refused_unless_told_what_to_send(tmp_path, reports, capsys):
    """Ada's two answers are imported, Eve's second is not: the total would be partial, so the
    export is refused naming her, unless told to send the automatic score only or to count it as 0."""
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "canvas-import.csv"
    command = ["export", "canvas", str(reports), "--roster", str(tmp_path / "roster.csv"), "--out", str(out)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "1 students have no imported score for written answers others have: eve (question2)" in err
    assert "--automatic-only" in err and "--missing-answers-zero" in err and not out.exists()
    saved = {json.loads(p.read_text())["student"]: json.loads(p.read_text()) for p in reports.glob("*.json")}
    assert main([*command, "--automatic-only"]) == 0
    rows = read_back(out)
    assert rows[1][-1] == f"{saved['ada']['max_score']:g}"
    assert {r[3]: float(r[5]) for r in rows[2:]} == {"ada": saved["ada"]["score"], "Eve": saved["eve"]["score"]}
    assert main([*command, "--missing-answers-zero"]) == 0
    assert {r[3]: float(r[5]) for r in read_back(out)[2:]} == {"ada": saved["ada"]["total"],
                                                              "Eve": saved["eve"]["score"] + 3.0}
    assert "--missing-answers-zero: 1 students' missing written answers count as 0: eve" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # one or the other
        main([*command, "--automatic-only", "--missing-answers-zero"])
