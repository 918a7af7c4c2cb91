"""The grader as an instructor installs it: both wheels in a fresh virtual environment, where the
grader's files sit in site-packages beside torch. A submission that knows exactly where they are
still cannot read them, and the installed `fcnkit-grade` grades the reference in full."""
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from autograder.catalogue import REFERENCE
from autograder.rubric import RUBRIC

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_installed_grader_hides_its_own_files(tmp_path):
    wheels = tmp_path / "wheels"
    for project in (REPO, REPO / "autograder"):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheels), str(project)], check=True, cwd=tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    python = env_dir / "bin" / "python"
    # torch and the rest come from the environment the tests run in (a virtual environment, or not),
    # through a .pth: system_site_packages would give the base interpreter's, which a venv does not use
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    sites = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (Path(purelib) / "tests-environment.pth").write_text("".join(f"{p}\n" for p in sites))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
                   check=True, cwd=tmp_path)
    site = Path(subprocess.run([str(python), "-c", "import autograder, os; print(os.path.dirname(autograder.__file__))"],
                               check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip())
    assert site.is_relative_to(env_dir), site  # the installed copy, not the repository's
    target = site / "reference" / "models.py"
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "thief.py").write_text(f"""
def steal():
    import importlib.util
    spec = importlib.util.spec_from_file_location("m", {str(target)!r})
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m
class FCN32s(steal().FCN32s):
    pass
""")
    (subs / "reference.py").write_text(REFERENCE)
    out = subprocess.run([str(env_dir / "bin" / "fcnkit-grade"), "grade", str(subs), "--out", str(tmp_path / "r"),
                          "--json", str(tmp_path / "all.json"), "--device", "cpu"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    reports = {r["student"]: r for r in json.loads((tmp_path / "all.json").read_text())}
    assert reports["reference"]["score"] == sum(i.points for i in RUBRIC if not i.needs_weights)
    assert reports["thief"]["score"] == 0
    assert any("No such file" in n or "Permission denied" in n for n in reports["thief"]["notes"]), reports["thief"]["notes"]
