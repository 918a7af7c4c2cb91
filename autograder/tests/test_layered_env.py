"""torch and pillow reached through a ``.pth`` outside ``sys.prefix`` (``pip install --user``, a
layered environment) still reach the grading child: the reference gets its full marks, not a 0
for a worker that cannot import torch. Where the worker really cannot (a torch without its
package metadata, which the grader cannot locate), the run says "not graded" and exits 1: a
grader fault is never scored as the student's 0."""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path


import pytest

from autograder.catalogue import REFERENCE
from autograder.rubric import RUBRIC

STRUCTURAL = sum(i.points for i in RUBRIC if not i.needs_weights)  # what a run without trained results grades

REPO = Path(__file__).resolve().parents[2]


def _layer(target: Path, leave_out=lambda name: False) -> None:
    """A folder outside every prefix holding links to what the running interpreter has installed
    (the editable installs of this repository left out: PYTHONPATH gives the grader its code)."""
    target.mkdir()
    sites = [Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    for site in sites:
        for entry in site.iterdir():
            name = entry.name
            if name.startswith("__editable__") or name.endswith(".pth") or (target / name).exists() or leave_out(name):
                continue
            (target / name).symlink_to(entry)


def _layered_python(tmp_path: Path, layers: list[Path]) -> Path:
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=False, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "layer.pth").write_text("".join(f"{layer}\n" for layer in layers))
    return python


def _grade(python: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "reference.py").write_text(REFERENCE)
    return subprocess.run([str(python), "-m", "autograder", "grade", str(tmp_path / "reference.py"), "--out",
                           str(tmp_path / "r"), "--seed", "3", "--timeout", "120"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path,
                          timeout=600)


@pytest.mark.slow
def test_packages_through_a_pth_outside_the_prefix_reach_the_child(tmp_path):
    layer = tmp_path / "layer"
    _layer(layer)
    python = _layered_python(tmp_path, [layer])
    found = subprocess.run([str(python), "-c", "import torch, PIL, sys; print(torch.__file__, sys.prefix)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert found[0].startswith(str(layer)) and not found[0].startswith(found[1])  # really outside the prefix
    out = _grade(python, tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "reference.json").read_text(encoding="utf-8"))
    assert report["score"] == STRUCTURAL, [c["message"] for c in report["checks"] if c["status"] != "passed"]


def test_a_worker_that_cannot_import_torch_is_not_graded_never_a_zero(tmp_path):
    # torch alone in a folder of its own, without its metadata: the grader cannot tell the child where it is
    everything, bare = tmp_path / "layer", tmp_path / "bare-torch"
    _layer(everything, leave_out=lambda name: name == "torch" or name.startswith("torch-"))
    bare.mkdir()
    (bare / "torch").symlink_to(Path(subprocess.run([sys.executable, "-c", "import torch, os; "
                                                     "print(os.path.dirname(torch.__file__))"],
                                                    check=True, capture_output=True, text=True).stdout.strip()))
    out = _grade(_layered_python(tmp_path, [everything, bare]), tmp_path)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "reference.json").read_text(encoding="utf-8"))
    assert report["not_graded"].startswith("grader error while starting the grading child"), report["not_graded"]
    assert {c["status"] for c in report["checks"]} == {"not graded"} and report["graded_max_score"] == 0
    row = (tmp_path / "r" / "grades.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    assert row[3:14] == [""] * 11  # no points at all rather than a 0
    assert "1 not graded" in out.stdout and str(tmp_path / "r" / "run.log") in out.stdout
    log = (tmp_path / "r" / "run.log").read_text(encoding="utf-8")
    assert "reference: grader error while starting the grading child" in log and "Traceback" in log
