"""torch and pillow reached through a ``.pth`` outside ``sys.prefix`` (``pip install --user``, a
layered environment) still reach the grading child: the reference gets its full marks, not a 0
for a worker that cannot import torch."""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path


from autograder.catalogue import REFERENCE

REPO = Path(__file__).resolve().parents[2]


def _layer(target: Path) -> None:
    """A folder outside every prefix holding links to what the running interpreter has installed
    (the editable installs of this repository left out: PYTHONPATH gives the grader its code)."""
    target.mkdir()
    sites = [Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    for site in sites:
        for entry in site.iterdir():
            name = entry.name
            if name.startswith("__editable__") or name.endswith(".pth") or (target / name).exists():
                continue
            (target / name).symlink_to(entry)


def test_packages_through_a_pth_outside_the_prefix_reach_the_child(tmp_path):
    layer = tmp_path / "layer"
    _layer(layer)
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=False, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "layer.pth").write_text(f"{layer}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    found = subprocess.run([str(python), "-c", "import torch, PIL, sys; print(torch.__file__, sys.prefix)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.split()
    assert found[0].startswith(str(layer)) and not found[0].startswith(found[1])  # really outside the prefix
    (tmp_path / "reference.py").write_text(REFERENCE)
    out = subprocess.run([str(python), "-m", "autograder", "grade", str(tmp_path / "reference.py"), "--out",
                          str(tmp_path / "r"), "--seed", "3", "--timeout", "120"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "reference.json").read_text(encoding="utf-8"))
    assert report["score"] == 52, [c["message"] for c in report["checks"] if c["status"] != "passed"]
