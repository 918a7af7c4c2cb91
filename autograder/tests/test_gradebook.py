"""nbgrader student by student, on real nbgrader: a course of three, two of them mangled (a pasted copy
of a test cell, so a grade_id twice; a renamed notebook). The good one's scores reach the gradebook,
each mangled one is named with nbgrader's cause and the fix, and has no automatic score at all (not
the full marks nbgrader computes from outputs without errors)."""
import os
import re
import sys
from pathlib import Path

import pytest
import nbformat
import pytest

from autograder.__main__ import main
from autograder.frontends.nbgrader import nbgrader_cause
from autograder.rubric import RUBRIC

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402

ASSIGNMENT = build.ASSIGNMENT
STRUCTURE = sum(i.points for i in RUBRIC if not i.needs_weights)  # what a run without --data grades


def _solved(release: Path):
    """The release with the source's solutions pasted in, as a student would hand it in."""
    source = {c.id: c for c in nbformat.read(build.SOURCE, as_version=4).cells}
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            cell.source = source[cell.id].source
    return nb


@pytest.mark.slow
def test_each_student_is_filed_on_their_own(tmp_path, capsys):
    from nbgrader.api import Gradebook, MissingEntry
    course = tmp_path / "course"
    release = build.generate_release(course) / f"{ASSIGNMENT}.ipynb"
    solved = _solved(release)
    for student in ("alice", "bob", "carol"):  # nbgrader autograde adds them to the gradebook
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(solved, course / "submitted" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    pasted = nbformat.read(release, as_version=4)  # the untouched release, with a test cell pasted twice
    test_cell = next(c for c in pasted.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "fcn32s_vgg_layers")
    copy = nbformat.from_dict(test_cell)
    copy.id = "pasted-copy"
    pasted.cells.insert(pasted.cells.index(test_cell) + 1, copy)
    nbformat.write(pasted, course / "submitted" / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbformat.write(solved, course / "submitted" / "carol" / ASSIGNMENT / f"{ASSIGNMENT} (1).ipynb")

    status = main(["grade", str(course / "submitted"), "--out", str(tmp_path / "reports"), "--gradebook", str(course),
                   "--seed", "1", "--jobs", "2", "--timeout", "120"])
    printed = capsys.readouterr()
    assert status == 1, printed.out[-3000:] + printed.err[-3000:]
    assert f"alice: {STRUCTURE} / {STRUCTURE} into nbgrader's gradebook" in printed.out
    [bob] = [line for line in printed.err.splitlines() if line.startswith("error: bob:")]
    assert "Cell with id 'fcn32s_vgg_layers' exists multiple times" in bob, bob  # nbgrader's cause, quoted
    assert "fix the notebook in submitted/bob/" in bob
    [carol] = [line for line in printed.err.splitlines() if line.startswith("error: carol:")]
    assert f"the notebook is {ASSIGNMENT} (1).ipynb, nbgrader expects {ASSIGNMENT}.ipynb: rename it" in carol
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        alice = gb.find_submission(ASSIGNMENT, "alice")
        assert alice.code_score == STRUCTURE
        assert gb.find_grade("fcn8s_head", ASSIGNMENT, ASSIGNMENT, "alice").auto_score == 8
        for student in ("bob", "carol"):  # no automatic score at all, rather than nbgrader's output-based one
            try:
                filed = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            except MissingEntry:
                continue
            assert all(g.auto_score is None for g in filed.grades), student


def test_nbgrader_cause_is_the_exception_line_not_a_tail():
    output = ("[AutogradeApp | WARNING] something\nTraceback (most recent call last):\n  File \"x.py\", line 3\n"
              "    raise RuntimeError(...)\nRuntimeError: Cell with id 'a' exists multiple times!\n"
              "[AutogradeApp | ERROR] There was an error processing assignment: /x/submitted/bob/a\n" + "x" * 3000)
    assert nbgrader_cause(output) == "RuntimeError: Cell with id 'a' exists multiple times!"
    output = ("[AutogradeApp | WARNING] Cell with id 'a' exists multiple times!\n"
              "[AutogradeApp | WARNING] Attribute 'checksum' for cell a has changed! (should be: 3e, got: c6)\n"
              "[AutogradeApp | ERROR] One or more notebooks in the assignment use an old version \n"
              "    of the nbgrader metadata format. Please **back up your class files\n")
    assert nbgrader_cause(output) == ("Cell with id 'a' exists multiple times!; nbgrader then stopped: One or more "
                                      "notebooks in the assignment use an old version")


@pytest.mark.slow
def test_the_builds_release_is_in_the_courses_gradebook(tmp_path, monkeypatch, capsys):
    """``python notebooks/build.py --release`` (its main, on a course of our own) records the assignment
    in the course's gradebook.db, as nbgrader generate_assignment does, so that ``grade --gradebook``
    files the scores of a course that never ran generate_assignment itself."""
    import shutil
    from nbgrader.api import Gradebook
    course = tmp_path / "course"
    shutil.copytree(build.HERE / "source", course / "source")
    shutil.copy(build.HERE / "nbgrader_config.py", course)
    monkeypatch.setattr(build, "write_public_files", lambda check=False: [])  # the repository's files: not here
    monkeypatch.setattr(build, "build_wheel", lambda folder: folder / "fcnkit.whl")  # no pip wheel
    assert build.main(["--release", "--course", str(course)]) == 0
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    for student, nb in (("ann", _solved(release)), ("ben", nbformat.read(release, as_version=4))):
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    capsys.readouterr()
    status = main(["grade", str(course / "submitted"), "--out", str(tmp_path / "reports"), "--gradebook", str(course),
                   "--seed", "1", "--jobs", "2", "--timeout", "120"])
    printed = capsys.readouterr()
    assert status == 0, printed.out[-3000:] + printed.err[-3000:]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, "ann").code_score == STRUCTURE
        assert gb.find_submission(ASSIGNMENT, "ben").code_score == 0


def _readme_commands() -> tuple[str, list[str], str]:
    """The README's build command, its nbgrader course block (comments and blank lines dropped) and
    the students' comment line, as written there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    build_line = re.search(r"^(python notebooks/build\.py --release)\s", readme, re.M).group(1)
    block = readme.split("**An nbgrader course**", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
    students = re.search(r"#\s+students: (nbgrader fetch_assignment .+?), then submit", block).group(1)
    return build_line, commands, students


@pytest.mark.slow
def test_the_readmes_nbgrader_commands_as_written_file_every_student(tmp_path):
    """The README's commands, read from it, run in a copy of the repository: the build, release,
    fetch and submit by four students (one hands in a notebook with a test cell pasted twice),
    collect, grade into the course's gradebook, feedback. The three others are filed, the mangled
    one is named with nbgrader's cause (exit 1), nobody gets 'no assignment'."""
    import shlex
    import shutil
    import subprocess
    from nbgrader.api import Gradebook
    build_line, commands, fetch = _readme_commands()
    assert commands[0] == "cd notebooks" and any(c.startswith("python -m autograder grade") for c in commands)
    repo, exchange = tmp_path / "repo", tmp_path / "exchange"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build"))
    exchange.mkdir()
    (repo / "notebooks" / "data").mkdir()
    from fcnkit.data import SAMPLE_ROOT
    (repo / "notebooks" / "data" / "cmp_facade").symlink_to(SAMPLE_ROOT)  # the README's data/cmp_facade
    env = {**os.environ, "PYTHONPATH": str(repo),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}

    def run(command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        argv = shlex.split(command.replace("EXCHANGE", str(exchange)))
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", *argv]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert not check or done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        return done
    run(build_line, repo)
    course = repo / "notebooks"
    cwd, graded = repo, None
    for command in commands:
        if command == "cd notebooks":
            cwd = course
        elif command.startswith("nbgrader collect"):
            _students_submit(run, fetch, exchange, tmp_path)
            run(command, cwd)
        elif command.startswith("python -m autograder grade"):
            graded = run(command, cwd, check=False)
        else:
            run(command, cwd)
    assert graded is not None and graded.returncode == 1, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert "no assignment" not in graded.stderr
    [dan] = [line for line in graded.stderr.splitlines() if line.startswith("error: dan:")]
    assert "exists multiple times" in dan, dan
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(ASSIGNMENT, s).code_score for s in ("ann", "ben", "cat")}
    assert scores == {"ann": STRUCTURE, "ben": STRUCTURE, "cat": 0}
    assert (course / "feedback" / "ann" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()


def _students_submit(run, fetch: str, exchange: Path, tmp_path: Path) -> None:
    """Four students fetch the release as the README says, do their work, and submit."""
    for student in ("ann", "ben", "cat", "dan"):
        home = tmp_path / "homes" / student
        home.mkdir(parents=True)
        run(f"{fetch} --Exchange.root=EXCHANGE", home)
        notebook = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        nb = _solved(notebook) if student in ("ann", "ben") else nbformat.read(notebook, as_version=4)
        if student == "dan":  # a test cell pasted twice: nbgrader refuses the notebook
            cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "fcn32s_vgg_layers")
            copy = nbformat.from_dict(cell)
            copy.id = "pasted-copy"
            nb.cells.insert(nb.cells.index(cell) + 1, copy)
        nbformat.write(nb, notebook)
        run(f"nbgrader submit {ASSIGNMENT} --course fcn-segmentation --Exchange.root=EXCHANGE --student={student}",
            home)
