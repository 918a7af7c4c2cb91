"""``python -m fcnkit check``: the student's pre-submission check, outside Jupyter, in the student's
own process, needing nothing of the grader and nothing Linux-only; and the reference activations it
compares with, regenerated from the reference solution."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "notebooks" / "source" / "fcn_segmentation" / "fcn_segmentation.ipynb"
sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402

# As on macOS (no memfd) and Windows (no C library by CDLL(None)): both are removed before fcnkit is
# imported. The autograder is not importable either: the student wheel has none.
NOT_LINUX = """
import ctypes, os, sys
del os.memfd_create
real_cdll = ctypes.CDLL
class NoProcessLibrary(real_cdll):
    def __init__(self, name, *args, **kwargs):
        if name is None:
            raise TypeError("LoadLibrary() argument 1 must be str, not None")  # Windows' own error
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = NoProcessLibrary
sys.modules["autograder"] = None
from fcnkit.__main__ import main
from fcnkit import seeded
rc = main(sys.argv[1:])
assert not seeded.maps_repeated_weights(), "the Linux-only path was used"
sys.exit(rc)
"""


def fcnkit_check(home: Path, *args, code=None):
    """``python -m fcnkit ARGS`` (or ``code`` with ARGS) from ``home``, as a student runs it."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "fcnkit", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "MPLCONFIGDIR": str(home)}
    env.pop("FCNKIT_DATA", None)
    return subprocess.run(command, capture_output=True, text=True, cwd=home, timeout=900, env=env)


def lines(output: str) -> dict:
    return {line.split(":")[0]: line for line in output.splitlines() if line.startswith(("PASS", "FAIL", "NOT"))}


def test_the_reference_notebook_passes_without_linux_only_apis(tmp_path):
    """The source notebook (its solutions in place), as a student on macOS or Windows checks it:
    every structural item passes, the mIoU items are named as not checked (no predictions)."""
    result = fcnkit_check(tmp_path, "check", str(SOURCE), code=NOT_LINUX)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result.stdout)
    structural = [i.name for i in build.RUBRIC if not i.needs_weights]
    assert sorted(found) == sorted([f"PASS {n}" for n in structural] +
                                   [f"NOT CHECKED {i.name}" for i in build.RUBRIC if i.needs_weights]), result.stdout
    assert "training cells are not run" in result.stdout
    points = sum(i.points for i in build.RUBRIC if not i.needs_weights)
    trained = [i for i in build.RUBRIC if i.needs_weights]
    assert (f"{points} of the {points} points checked here pass; not checked: {', '.join(i.name for i in trained)} "
            f"({sum(i.points for i in trained)} points") in result.stdout


def test_a_mistake_fails_its_item_with_the_graders_message(tmp_path):
    from autograder.catalogue import write_submissions
    [path] = write_submissions(tmp_path, ["fcn8s_score_pool4_crop_9"])
    result = fcnkit_check(tmp_path, "check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines(result.stdout)
    assert [k for k in found if k.startswith("FAIL")] == ["FAIL fcn8s_equivalence"], result.stdout
    assert ("it matches up to score_pool4; sum after upscore2 differs by" in found["FAIL fcn8s_equivalence"]
            and "check the crop of score_pool4 (expected offset 5)" in found["FAIL fcn8s_equivalence"])


def test_a_file_that_is_not_a_notebook_is_named(tmp_path):
    bad = tmp_path / "fcn_segmentation.ipynb"
    bad.write_text("{not json")
    result = fcnkit_check(tmp_path, "check", str(bad))
    assert result.returncode == 2 and "fcn_segmentation.ipynb is not a valid notebook" in result.stderr


def test_the_shipped_reference_activations_are_the_references():
    """Regenerated from autograder/reference/models.py, they match what fcnkit ships (what
    ``build.py --check`` also checks); a changed reference would not."""
    arrays = build.reference_stages()
    assert build.stages_differ(build.REFERENCE_STAGES, arrays) == ""
    assert build.REFERENCE_STAGES.stat().st_size < 2**20
    changed = dict(arrays)
    changed["fcn8s/sum after upscore2"] = arrays["fcn8s/sum after upscore2"] + np.float32(0.01)
    assert build.stages_differ(build.REFERENCE_STAGES, changed) == "fcn8s sum after upscore2: other values"
    assert build.RUBRIC_JSON.read_text(encoding="utf-8") == build.rubric_json()


@pytest.mark.parametrize("kind", ["fcn32s", "fcn8s"])
def test_the_shipped_activations_hold_no_code(kind):
    """Numbers only: npz of float32 arrays and a JSON header, read without pickle."""
    with np.load(build.REFERENCE_STAGES, allow_pickle=False) as stored:
        assert all(stored[k].dtype == np.float32 for k in stored.files if k != "meta")
        assert any(k.startswith(f"{kind}/") for k in stored.files)
