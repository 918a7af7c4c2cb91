"""Diagnoses as data (fcnkit._grading.diagnoses): a code from one table, its subject, and the table's words."""
import pytest

from fcnkit._grading.diagnoses import LABELS, MAX_SUBJECT, NOT_RUN, RECORDED, Diagnosis


def test_a_code_outside_the_table_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match="unknown diagnosis code 'fc6_wrong': add it to fcnkit._grading.diagnoses.LABELS"):
        Diagnosis("fc6_wrong", "fc6")


def test_the_json_form_round_trips_and_what_is_not_one_is_none():
    found = Diagnosis("departs", "sum after upscore2")
    assert Diagnosis.from_json(found.to_json()) == found and found.to_json() == ["departs", "sum after upscore2"]
    assert found.label == "departs from the reference at sum after upscore2"
    for raw in (None, "departs", ["departs"], ["departs", 3], ["a code of a newer grader", ""], {"code": "departs"}):
        assert Diagnosis.from_json(raw) is None, raw
    assert Diagnosis.from_json(["departs", "x" * 10**6]).subject == "x" * MAX_SUBJECT  # a child's record: untrusted


def test_every_code_has_words_with_or_without_a_subject():
    assert NOT_RUN <= set(LABELS)
    for code, words in LABELS.items():
        assert words.count("{") == words.count("{subject}"), code  # no placeholder but the subject
        assert Diagnosis(code, "pool4").label, code
        assert code == "unclassified" or Diagnosis(code).label.strip(), code  # unclassified: its subject alone


def test_every_code_the_sources_name_is_in_the_table_and_every_code_in_it_is_named():
    """A typo in a code would surface only when that failure first happens (ValueError, in a student's run):
    every ``Diagnosis("code"`` and ``["code", ...]`` written in the sources is in LABELS, and every code in LABELS
    is made somewhere (or it is a row nobody can reach)."""
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    sources = [p for folder in ("fcnkit", "autograder") for p in (repo / folder).rglob("*.py")
               if "tests" not in p.parts and "build" not in p.parts]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    named = set(re.findall(r'Diagnosis\(\s*"(\w+)"', text)) | set(re.findall(r'\[\s*"(\w+)",\s*(?:""|type\()', text))
    assert named - set(LABELS) == set(), "codes missing from LABELS"
    assert set(LABELS) - named == set(), "codes nobody makes"
    # RECORDED is exactly what the child's code makes: its observers, its checkpoint loading, its runtime
    child = [repo / "fcnkit" / "train.py", *(repo / "fcnkit" / "_grading").glob("*.py"),
             *(repo / "autograder" / "isolation" / "runtime").glob("*.py")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in child if p.name not in ("judges.py", "dropout.py"))
    made = set(re.findall(r'Diagnosis\(\s*"(\w+)"', text)) | set(re.findall(r'\[\s*"(\w+)",\s*(?:""|type\()', text))
    assert made == RECORDED


def test_a_childs_record_with_a_code_it_cannot_make_is_read_as_forged():
    """A hostile child may write a well-formed Failure naming any code, e.g. the time limit's (the overview would
    list it among the checks that never ran) or another student's mistake: only the codes its own code makes are
    read; the rest are "unclassified", the message standing for them. The verdict is FAILED either way."""
    from autograder.isolation import StepOutcome
    from autograder.pipeline.verdicts import judge
    from autograder.rubric import RUBRIC
    from fcnkit._grading.judges import recorded
    from fcnkit._grading.records import Failure
    item = next(i for i in RUBRIC if i.name == "fcn32s_head")
    for forged in (["time_limit", ""], ["below_threshold", ""], ["not_in_run", ""], ["grader_error", "x"]):
        found = judge(item, StepOutcome(record=Failure("FCN32s could not be built", forged)), run=None)
        assert (found.score, found.status.value, found.diagnosis) == (
            0, "failed", Diagnosis("unclassified", "FCN32s could not be built"))
        assert recorded(forged, Diagnosis("forward_raises")) == Diagnosis("forward_raises")
    honest = judge(item, StepOutcome(record=Failure("no class FCN32s", ["no_class", "FCN32s"])), run=None)
    assert honest.diagnosis == Diagnosis("no_class", "FCN32s") and honest.score == 0


def test_the_notebook_and_the_grader_give_one_verdict_type(tmp_path):
    """``check_all``'s results are the grader's ``CheckResult``: the same statuses, points and JSON form; a
    grader's report never holds the notebook's NOT_CHECKED (a report that does was not written by the grader)."""
    import json
    from pathlib import Path

    from autograder.results import CheckResult, ReportError, Status, read_report
    from fcnkit.checks import check_all
    results = check_all({})  # no model: every structural item fails, the rest are not checked here
    assert results and all(type(r) is CheckResult for r in results)
    assert {r.status for r in results} == {Status.FAILED, Status.NOT_CHECKED}
    assert all(r.score == 0 and r.max_score > 0 for r in results)
    assert [CheckResult.from_json(r.to_json()) for r in results] == results
    assert [s.word for s in Status] == ["PASS", "FAIL", "NOT GRADED", "FLAGGED", "NOT CHECKED"]
    golden = Path(__file__).resolve().parent.parent / "autograder" / "tests" / "golden" / "catalogue_seed7" / "reference.json"
    data = json.loads(golden.read_text(encoding="utf-8"))
    assert read_report(golden).checks[0].status is Status.PASSED
    data["checks"][0]["status"] = "not checked"
    (tmp_path / "reference.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError, match="'not checked': the notebook's status, never in a grader's report"):
        read_report(tmp_path / "reference.json")
    from autograder.record.gradebook import Gradebook
    report = read_report(golden)
    report.checks = [*results[:1], *report.checks[1:]]  # the notebook's FAILED is the grader's: filed
    book = Gradebook(tmp_path / "gradebook.sqlite")
    book.record(report, "0" * 64, "test", None)
    assert book.report(report.student).checks[0] == results[0]
    report.checks[0] = next(r for r in results if r.status is Status.NOT_CHECKED)
    with pytest.raises(ValueError, match="'not checked'"):
        book.record(report, "0" * 64, "test", None)
    assert book.report(report.student).checks[0] == results[0]  # the record as it was
    book.close()
