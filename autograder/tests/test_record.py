"""The class's gradebook (OUT/gradebook.sqlite) as the one record: SIGKILL at seeded random moments of a
run's record keeping and of an import, each followed by a rerun, leaves the gradebook and every file as an
uninterrupted run leaves them; four shards' gradebooks joined by summarize are one run's; a reports folder
the JSON version wrote (reports, run.journal, manual/scores.json) is read in once, nothing lost.

The kill tests grade by replaying a catalogue run's recorded reports (the golden ones) (the grading itself is covered by
the golden test and test_durable's real kills): what is killed is everything around it, in a forked
copy of this process (no start-up cost), so twenty kills cost seconds."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from autograder.__main__ import main
from autograder.record.gradebook import Gradebook, path_of

GOLDEN = Path(__file__).parent / "golden" / "catalogue_seed7"
CLASS = ("reference", "fcn8s_no_ceil_mode", "upscore_with_bias")  # one flagged with another for code
KILLS = 20
RUN_TIME = re.compile(rb"<tr><th>(?:graded|grading time|answers imported)</th><td>[^<]*</td></tr>")  # the overview's clock lines


def files(out: Path) -> dict[str, bytes]:
    """Every view in the folder (the overview without its clock lines); not the gradebook, lock or log."""
    found = {}
    for path in sorted(out.rglob("*")):
        name = str(path.relative_to(out))
        if path.is_file() and not name.startswith(("gradebook", "run.")):
            data = path.read_bytes()
            found[name] = RUN_TIME.sub(b"", data) if name == "index.html" else data
    return found


def content(out: Path) -> dict:
    book = Gradebook(path_of(out))
    try:
        return book.content()
    finally:
        book.close()


@pytest.fixture(scope="module")
def replay(catalogue, tmp_path_factory):
    """A class of three catalogue submissions and the reports a real run of the catalogue recorded for
    them (the golden reports, seed 7: test_golden.py keeps them equal to a run's)."""
    from autograder.results import read_report
    folder = tmp_path_factory.mktemp("three")
    for student in CLASS:
        shutil.copytree(catalogue / student, folder / student)
    return folder, {s: read_report(GOLDEN / f"{s}.json") for s in CLASS}


def _grade_replaying(folder: Path, out: Path, recorded: dict) -> int:
    """``grade`` as the command line runs it, with the submissions' grading replayed from ``recorded``."""
    from autograder.pipeline import class_grading  # the class run the CLI calls
    assert isinstance(class_grading, ModuleType)  # the module whose names the run looks up, not a function

    def grade_all(todo, checkpoints, evalset, device, jobs, limits, finished, run=None):
        for student, path in todo:
            finished(replace(recorded[student], submission=str(path), integrity=None, manual=None))
    isolation = SimpleNamespace(summary=lambda: "isolation: replayed")
    class_grading.GradingRun = SimpleNamespace(start=lambda *a, **k: SimpleNamespace(
        runtime=SimpleNamespace(isolation=isolation, note=""), context=SimpleNamespace(seed=7), children_kept_apart=True,
        close=lambda: None))
    class_grading.grade_all = grade_all
    return main(["grade", str(folder), "--out", str(out), "--seed", "7", "--jobs", "1"])


def _forked(work, kill_after: float | None = None) -> tuple[int | None, float]:
    """Run ``work()`` in a forked copy of this process (output discarded, but for an exception's traceback,
    written to pytest's captured stderr); SIGKILL it after
    ``kill_after`` seconds. Returns its exit status (None when killed first) and its seconds."""
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 99
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1), os.dup2(devnull, 2)
            status = work()
        except BaseException:  # said where pytest shows a failure's output: os._exit would swallow it
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        finally:
            os._exit(status)
    if kill_after is not None:
        time.sleep(kill_after)
        done, code = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, time.perf_counter() - began
        return os.waitstatus_to_exitcode(code), time.perf_counter() - began
    _, code = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(code), time.perf_counter() - began


def _scores_csv(path: Path) -> Path:
    path.write_text("student,question,score,comment\nreference,question1,12,clear\n"
                    "fcn8s_no_ceil_mode,question2,7,\"thin; see slide 4\"\nupscore_with_bias,question1,3,\n",
                    encoding="utf-8")
    return path


@pytest.mark.slow
def test_sigkill_at_random_moments_of_grading_and_of_an_import_then_a_rerun_is_an_uninterrupted_run(
        replay, tmp_path):
    folder, recorded = replay
    whole = tmp_path / "whole"
    status, seconds = _forked(lambda: _grade_replaying(folder, whole, recorded))
    assert status == 0
    graded, graded_content = files(whole), content(whole)
    assert sorted(n for n in graded if n.endswith(".json")) == sorted(f"{s}.json" for s in CLASS)
    scores = _scores_csv(tmp_path / "scores.csv")
    imported_dir = tmp_path / "imported"
    shutil.copytree(whole, imported_dir)
    status, import_seconds = _forked(lambda: main(["answers", "--import", str(scores), "--reports",
                                                   str(imported_dir)]))
    assert status == 0
    imported, imported_content = files(imported_dir), content(imported_dir)
    assert imported_content["manual"] and imported != graded
    rng = random.Random(28)
    killed = 0
    for i in range(KILLS):
        out = tmp_path / f"grade{i}"
        status, _ = _forked(lambda: _grade_replaying(folder, out, recorded), kill_after=rng.uniform(0, seconds))
        killed += status is None
        assert _forked(lambda: _grade_replaying(folder, out, recorded))[0] == 0, i
        assert content(out) == graded_content and files(out) == graded, f"grading killed at moment {i}"
        shutil.rmtree(out)
        out = tmp_path / f"import{i}"
        shutil.copytree(whole, out)
        command = ["answers", "--import", str(scores), "--reports", str(out)]
        status, _ = _forked(lambda: main(command), kill_after=rng.uniform(0, import_seconds))
        killed += status is None
        assert _forked(lambda: main(command))[0] == 0, i
        assert content(out) == imported_content and files(out) == imported, f"import killed at moment {i}"
        shutil.rmtree(out)
    # a moment drawn over the first run's length falls after a rerun's end about half the time (a rerun is
    # often quicker): about KILLS of the 2 * KILLS are killed, so asking for KILLS failed half the time (19 once)
    assert killed >= KILLS // 2, f"only {killed} of {2 * KILLS} runs were killed before they ended"


def test_a_checks_diagnosis_is_kept_and_a_gradebook_of_before_gets_its_column(tmp_path):
    """The record keeps each check's diagnosis (what the overview groups by); a gradebook written before
    diagnoses were data is opened with the column added, its checks without one, and records new ones."""
    from autograder.results import CheckResult, Report, Status
    from fcnkit._grading.diagnoses import Diagnosis
    failed = CheckResult("fcn32s_head", "head", "fcn32s", 4, 0, Status.FAILED, "fc6 is Conv2d(512, 4096, 3)",
                         Diagnosis("wrong_layer", "fc6"))
    passed = CheckResult("fcn32s_vgg_layers", "layers", "fcn32s", 4, 4, Status.PASSED, "all match")
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.executescript(  # the checks table as the gradebook of the first SQLite round wrote it
        "CREATE TABLE checks (student TEXT NOT NULL, position INTEGER NOT NULL, item TEXT NOT NULL, title TEXT NOT "
        "NULL, model TEXT NOT NULL, max_score INTEGER NOT NULL, score INTEGER NOT NULL, status TEXT NOT NULL, "
        "message TEXT NOT NULL, PRIMARY KEY (student, position));"
        "INSERT INTO checks VALUES ('ann', 0, 'fcn32s_head', 'head', 'fcn32s', 4, 0, 'failed', 'fc6 is wrong');")
    db.close()
    book = Gradebook(old)
    try:
        book.record(Report("ben", "b.py", checks=[failed, passed]), "", "", 1)
        ben = book.report("ben")
        assert ben.checks == [failed, passed] and ben.checks[0].diagnosis == Diagnosis("wrong_layer", "fc6")
        assert book.db.execute("SELECT diagnosis FROM checks WHERE student = 'ann'").fetchone() == ("",)
    finally:
        book.close()


@pytest.mark.slow
def test_four_shards_joined_by_summarize_are_one_run_and_a_conflict_is_refused(graded_catalogue, tmp_path, capsys):
    """Each shard's gradebook holds its students as the run recorded them; summarize joins them
    (ATTACH) into the class's gradebook and files equal to the one run's; a fifth gradebook that
    graded a student otherwise is refused, naming the student."""
    one = Gradebook(path_of(graded_catalogue.out))
    students = one.students()
    out = tmp_path / "sharded"
    out.mkdir()
    for k in range(4):
        shard = Gradebook(path_of(out, (k, 4)))
        for student in students[k::4]:
            state, sha, _ = one.state(student)
            shard.record(one.report(student, None), sha, graded_catalogue_grader(one, student), 1, state)
        shard.close()
    want = one.content()
    one.close()
    assert main(["summarize", str(out)]) == 0
    assert content(out) == want
    same = files(graded_catalogue.out)
    assert {n: v for n, v in files(out).items() if n != "index.html"} == \
        {n: v for n, v in same.items() if n != "index.html"}
    conflicting = Gradebook(path_of(out, (4, 5)))
    report = Gradebook(path_of(out)).report(students[0], None)
    report.checks[0] = replace(report.checks[0], score=0, status=report.checks[0].status)
    conflicting.record(report, "another hash", "another grader", 1)
    conflicting.close()
    capsys.readouterr()
    assert main(["summarize", str(out)]) == 2
    assert f"graded {students[0]!r} differently" in capsys.readouterr().err
    assert content(out) == want  # nothing joined


def graded_catalogue_grader(book: Gradebook, student: str) -> str:
    return book.db.execute("SELECT grader FROM submissions WHERE student = ?", (student,)).fetchone()[0]


@pytest.mark.slow
def test_a_reports_folder_of_the_json_version_is_read_in_once(graded_catalogue, tmp_path, capsys):
    """The JSON reports, run.journal and manual/scores.json of the previous version: read into a new
    gradebook; a rerun of the same command keeps everyone (nothing to grade: no worker starts) and
    every file shows the imported scores."""
    out = tmp_path / "old"
    shutil.copytree(graded_catalogue.out, out, ignore=shutil.ignore_patterns("gradebook*", "run.*"))
    book = Gradebook(path_of(graded_catalogue.out))
    run = book.last_run()
    entries = {s: {"file": book.report(s, None).submission, "sha256": book.state(s)[1], "state": book.state(s)[0],
                   "reason": ""} for s in book.students()}
    want = book.content()
    book.close()
    (out / "run.journal").write_text(json.dumps({"seed": run["seed"], "options": run["options"],
                                                 "grader": run["grader"], "students": run["students"],
                                                 "submissions": entries}), encoding="utf-8")
    (out / "manual").mkdir()
    manual = {"reference": {"question1": {"title": "Question 1 (graded by hand)", "score": 12.0, "max_score": 15.0,
                                          "comment": "clear"}}}
    (out / "manual" / "scores.json").write_text(json.dumps(manual), encoding="utf-8")
    capsys.readouterr()
    assert main(["grade", str(graded_catalogue.submissions), "--out", str(out), "--seed", "7", "--jobs", "2",
                 "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert f"into {out / 'gradebook.sqlite'}" in said and "resuming the run recorded" in said
    assert f"0 graded, {len(entries)} kept from the recorded run" in said
    got = content(out)
    assert [r[:2] + r[3:6] for r in got["manual"]] == [("reference", "question1", 12.0, 15.0, "clear")]
    assert {t: v for t, v in got.items() if t != "manual"} == {t: v for t, v in want.items() if t != "manual"}
    assert json.loads((out / "reference.json").read_text(encoding="utf-8"))["manual"]["question1"]["score"] == 12
    assert json.loads((out / "gradescope" / "reference" / "results.json").read_text(encoding="utf-8"))["score"] == \
        json.loads((out / "reference.json").read_text(encoding="utf-8"))["total"]
    with sqlite3.connect(out / "gradebook.sqlite") as db:  # the same folder again: read in once
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_the_flags_use_the_evidence_the_miou_item_recorded_without_reading_predictions_again(tmp_path):
    """Two students whose recorded evidence (taken when the mIoU item read their maps) is the same
    are flagged although their predictions are gone from the disk; the evidence survives the
    gradebook (its sketch is an array)."""
    import numpy as np
    from autograder.judging.evidence import predictions_evidence
    from autograder.judging.integrity import flag_class
    from autograder.results import Report
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(8)]
    maps = {i: rng.integers(0, 12, (40, 30), dtype=np.uint8) for i in ids}
    other = {i: rng.integers(0, 12, (40, 30), dtype=np.uint8) for i in ids}
    reports = [Report(name, str(tmp_path / f"{name}.py")) for name in ("ann", "ben", "cat")]
    for report, m in zip(reports, (maps, maps, other)):
        report.evidence["fcn8s"] = predictions_evidence(m, ids, "")
    book = Gradebook(tmp_path / "gradebook.sqlite")
    for report in reports:
        book.record(report, "", "", 1)
    stored = book.reports()
    book.close()
    assert isinstance(stored[0].evidence["fcn8s"]["sketch"], np.ndarray)
    flags = flag_class(stored, labels_ids=ids, template=None)
    assert {f.other for f in flags["ann"]} == {"ben"} and {f.other for f in flags["ben"]} == {"ann"}
    assert "cat" not in flags and "8 of 8 maps identical" in flags["ann"][0].evidence
