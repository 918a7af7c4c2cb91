"""Students never get the solution: the wheel they install (fcnkit) holds no reference, catalogue or
hidden check, and the release notebook imports nothing from the grader."""
import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "notebooks" / "release" / "fcn_segmentation" / "fcn_segmentation.ipynb"
# Text that only the solution, the catalogue or the hidden checks contain.
SOLUTION_MARKERS = ("31:31 +", "19:19 +", "5:5 + upscore2", "9:9 + upscore_pool4", "MUTANTS", "check_in_process",
                    "reference.MODELS", "STAGE_HINTS", "MIOU_THRESHOLDS")


@pytest.fixture(scope="module")
def student_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, cwd=out)
    [wheel] = out.glob("fcnkit-*.whl")
    return wheel


def test_student_wheel_holds_no_solution(student_wheel):
    with zipfile.ZipFile(student_wheel) as wheel:
        names = wheel.namelist()
        packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
        assert packages == {"fcnkit", "dataset_tools"}
        for name in names:
            if name.endswith(".py"):
                text = wheel.read(name).decode()
                found = [m for m in SOLUTION_MARKERS if m in text]
                assert not found, f"{name} holds {found}"
                assert "class FCN8s" not in text and "class FCN32s" not in text, name
    assert "fcnkit/checks.py" in names and "fcnkit/observe.py" in names  # the student-side checks are there


def imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_release_notebook_imports_nothing_from_the_grader():
    cells = json.loads(RELEASE.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    modules = set().union(*(imports("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
                            for src in code))
    assert not [m for m in modules if m.split(".")[0] == "autograder"], modules
    assert "fcnkit.checks" in modules


def test_the_childs_runtime_holds_no_solution(tmp_path):
    """What the sandboxed child runs (child.py, confine.py, fcnkit) is all it can read of ours."""
    from autograder import sandbox
    runtime = sandbox.prepare(tmp_path)
    runtime.close()
    files = [p for p in runtime.folder.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"child.py", "confine.py", "observe.py", "records.py"}
    for path in files:
        text = path.read_text()
        assert not [m for m in SOLUTION_MARKERS if m in text], path
    assert str(REPO) not in runtime.sys_path and not any(p.startswith(str(REPO / "autograder")) for p in runtime.read)
