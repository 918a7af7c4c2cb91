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


def test_a_layer_named_with_bidi_controls_cannot_reorder_the_overviews_row():
    """A student may name a layer with U+202E (right-to-left override) and the like; the name becomes the subject
    of "forward fails adding ...", which the class overview shows: the subject keeps only printable characters,
    whether it was observed here or read back from a record."""
    import torch
    from torch import nn

    from fcnkit._grading.observe import ObservationError, forward

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module("up\u202escore\u200b2", nn.Conv2d(3, 2, 1))
            self.add_module("score_pool4", nn.Conv2d(3, 2, 2))

        def forward(self, x):
            return getattr(self, "up\u202escore\u200b2")(x) + self.score_pool4(x)

    with pytest.raises(ObservationError) as raised:
        forward(Net(), torch.zeros(1, 3, 5, 5), "Net.forward")
    found = raised.value.diagnosis
    assert found.code == "forward_combines", found
    assert found.label == "forward fails adding upscore2 and score_pool4", found.label
    read = Diagnosis.from_json(["forward_combines", "adding \u202eevil\u2066 and \n\x1b[2Jx"])
    assert read.subject == "adding evil and [2Jx" and read.label.isprintable()


def test_every_code_has_a_sentence_and_every_clause_is_reachable():
    """The student's words come from SENTENCES (or HINTS, for a cause a later check names): every code has
    them, every {?clause} a template names exists, and every clause in the tables is named somewhere."""
    import string

    from fcnkit._grading.diagnoses import HINTS, SENTENCES
    import re
    from pathlib import Path
    assert [c for c in LABELS if c not in SENTENCES and c not in HINTS] == []
    sources = "\n".join(p.read_text(encoding="utf-8") for folder in ("fcnkit", "autograder")
                        for p in (Path(__file__).resolve().parent.parent / folder).rglob("*.py") if "tests" not in p.parts)
    alone = set(re.findall(r'words\(\s*"(\?\w+)"', sources))  # a clause said on its own: words("?size", ...)
    for table in (SENTENCES, HINTS):
        named = set()
        for key, template in table.items():
            code = key.split("?")[0]
            for _, field, _, _ in string.Formatter().parse(template):
                if field and field.startswith("?"):
                    clause = f"{code}?{field[1:]}" if f"{code}?{field[1:]}" in table else field
                    assert clause in table, (key, field)
                    named.add(clause)
        assert {k for k in table if "?" in k} - named - alone == set(), "clauses nobody names"


def test_a_sentence_reads_the_students_values():
    """Lists, the form for how many, clauses present only with a value (0 is a value), numbers formatted."""
    pools = Diagnosis("ceil_mode", "pool4, pool5", {"pools": ["pool4", "pool5"]})
    assert pools.sentence.startswith("pool4, pool5 need ceil_mode=True") and pools == Diagnosis("ceil_mode", "pool4, pool5")
    assert Diagnosis("ceil_mode", "pool4", {"pools": ["pool4"]}).sentence.startswith("pool4 needs ")
    layer = dict(found="Conv2d(512, 4096, kernel_size=3, stride=1, padding=0, bias=True)", type="Conv2d",
                 in_channels=512, out_channels=4096, kernel_size=7, stride=1, bias=True)
    assert Diagnosis("wrong_layer", "fc6", {**layer, "padding": 0}).sentence.endswith(
        "expected Conv2d(512, 4096, kernel_size=7, stride=1, padding=0, bias=True)")
    assert Diagnosis("wrong_layer", "fc6", {**layer, "padding": None}).sentence.endswith(
        "expected Conv2d(512, 4096, kernel_size=7, stride=1, bias=True)")
    none = Diagnosis("upsampling_kernels", values={"expected": ["kernel 64 stride 32"], "found": []})
    assert none.sentence.endswith("found none") and none.hint.startswith("check the upsamplings: forward uses none,")
    two = Diagnosis("role_count", "upscore2 and upscore_pool4", {"count": 2, "layer": "ConvTranspose2d layers",
                                                                 "found": 0, "near": [], "n_class": 12})
    assert two.sentence == "cannot compare: expected 2 ConvTranspose2d layers running in forward, found 0."
    assert Diagnosis("departs", "fc7", {"model": "FCN32s", "matched": "pool5", "difference": 0.01234, "hint": "h"}
                     ).sentence == ("FCN32s departs from the reference with the same weights: it matches up to pool5; "
                                    "fc7 differs by 0.012 (relative): h.")
