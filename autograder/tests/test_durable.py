"""A class run killed (SIGKILL to its process group) at start-up, after a few students and while it
writes: every file it leaves is whole, each rerun of the same command grades only what was
unfinished, and the final grades.csv is byte for byte an uninterrupted run's with the same seed.
A second run on the same output folder is refused, naming the first one's pid."""
import csv
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.catalogue import sources
from autograder.record.journal import Lock

REPO = Path(__file__).resolve().parents[2]
CLASS = ("reference", "fcn32s_crop_0", "no_padding_100", "upscore_with_bias", "fcn8s_no_ceil_mode")


def _command(folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out), "--seed", "11",
            "--jobs", "2", "--timeout", "120"]


def _graded(out: Path) -> set[str]:
    """The students the gradebook records as graded (read-only: the run may be writing it)."""
    if not (out / "gradebook.sqlite").exists():
        return set()
    try:
        with sqlite3.connect(f"file:{out / 'gradebook.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return {s for (s,) in db.execute("SELECT student FROM submissions WHERE state = 'graded'")}
    except sqlite3.Error:  # not created whole yet
        return set()


def _seed(out: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{out / 'gradebook.sqlite'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT seed FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:  # killed before its tables were created: the rerun creates them
        return None
    return row[0] if row else None


def _temporaries(out: Path) -> list[Path]:
    return [p for folder in (out, out / "feedback") if folder.is_dir() for p in folder.iterdir()
            if p.name.startswith(".tmp-")]


def _kill_when(command: list[str], moment, log: Path) -> tuple[bool, int]:
    """Run ``command`` (its output into ``log``) and SIGKILL its process group as soon as ``moment()``
    holds (polled every few milliseconds); whether it was killed (not finished first), and its pid."""
    with open(log, "w") as f:
        proc = subprocess.Popen(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if moment():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True, proc.pid
            time.sleep(0.003)
        proc.wait()
    return False, proc.pid


def _graded_by(output: str) -> set[str]:
    return set(re.findall(r"^graded (\S+):", output, re.M))


def _assert_whole(out: Path) -> None:
    for path in out.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["student"] == path.stem
    for path in (out / "feedback").glob("*.html"):
        assert path.read_text(encoding="utf-8").endswith("</html>\n"), path
    if (out / "gradebook.sqlite").exists():
        assert _seed(out) in (11, None)
    if (out / "grades.csv").exists():  # a run's (every student), or summarize's (those with a report)
        rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8"))))
        assert rows[0][0] == "student" and len({len(r) for r in rows}) == 1
        assert rows[1:] and {r[0] for r in rows[1:]} <= {p.stem for p in out.glob("*.json")}


def _kept(out: Path) -> set[str]:
    """What a rerun must keep: graded in the gradebook (its files are rewritten from it)."""
    return _graded(out)


@pytest.mark.slow
def test_a_killed_class_run_resumes_to_the_same_grades(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in CLASS:
        (folder / f"{name}.py").write_text(sources()[name])
    whole, out = tmp_path / "uninterrupted", tmp_path / "killed"
    done = subprocess.run(_command(folder, whole), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and _graded_by(done.stdout) == set(CLASS), done.stdout[-2000:] + done.stderr[-2000:]
    command = _command(folder, out)
    moments = {  # each run after the first is the rerun of the one killed before it
        "start-up": lambda kept: (out / "gradebook.sqlite").exists(),
        "after a few students": lambda kept: len(_graded(out)) >= 2,
        # a file being written, or a student just committed to the gradebook
        "while writing": lambda kept: bool(_temporaries(out)) or bool(_graded(out) - kept),
    }
    for name, moment in moments.items():
        kept = _kept(out)
        killed, pid = _kill_when(command, lambda: moment(kept), tmp_path / "output.txt")
        output = (tmp_path / "output.txt").read_text()
        assert not _graded_by(output) & kept, (name, output)  # it graded only what was unfinished
        assert killed, f"the run ended before the moment {name!r}: {output[-2000:]}"
        _assert_whole(out)
        if name == "after a few students":  # summarize names who has no report yet
            missing = set(CLASS) - _graded(out)
            said = subprocess.run([sys.executable, "-m", "autograder", "summarize", str(out)], cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
            assert said.returncode == (1 if missing else 0), said.stdout[-2000:] + said.stderr[-2000:]
            assert all(f"{s} (unfinished" in said.stdout for s in missing), said.stdout[-2000:]
    kept = _kept(out)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert _graded_by(done.stdout) == set(CLASS) - kept
    assert f"resuming the run recorded in {out / 'gradebook.sqlite'} (seed 11" in done.stdout
    _assert_whole(out)
    assert not _temporaries(out)
    assert (out / "grades.csv").read_bytes() == (whole / "grades.csv").read_bytes()
    assert not [p for p in Path(tempfile.gettempdir()).glob("fcnkit-grade-*")  # the killed runs' are removed
                if (p / "owner.pid").is_file() and (p / "owner.pid").read_text() == str(pid)]
    # once everything is recorded, a rerun grades nobody and writes the same grades.csv
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and not _graded_by(done.stdout), done.stdout[-2000:]
    assert (out / "grades.csv").read_bytes() == (whole / "grades.csv").read_bytes()


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from autograder.record.journal import Lock; "
                               f"Lock(__import__('pathlib').Path({str(out / 'run.lock')!r})); print('held', flush=True); "
                               "time.sleep(60)"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "a.py").write_text("x = 1\n")
        done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "a.py"), "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and f"pid {holder.pid}" in done.stderr, done.stderr
        assert not (out / "a.json").exists()
    finally:
        holder.kill()
        holder.wait()
    Lock(out / "run.lock").release()  # free again once the first run is gone
    grade = [sys.executable, "-m", "autograder", "grade", str(tmp_path / "a.py"), "--out", str(out), "--timeout", "60"]
    assert _graded_by(subprocess.run(grade, cwd=REPO, capture_output=True, text=True, timeout=300).stdout) == {"a"}
    assert _graded_by(subprocess.run(grade, cwd=REPO, capture_output=True, text=True, timeout=300).stdout) == set()
    forced = subprocess.run([*grade, "--force"], cwd=REPO, capture_output=True, text=True, timeout=300).stdout
    assert _graded_by(forced) == {"a"} and "resuming" not in forced
    with sqlite3.connect(out / "gradebook.sqlite") as db:  # as if an earlier grader (another rubric) had graded
        db.execute("UPDATE runs SET grader = 'an older grader'")
    changed = subprocess.run(grade, cwd=REPO, capture_output=True, text=True, timeout=300).stdout
    assert _graded_by(changed) == {"a"} and "the grader changed since the recorded run" in changed
