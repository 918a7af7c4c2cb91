"""The CLI under ``LC_ALL=C`` (with ``PYTHONUTF8=0``: Python would otherwise switch itself to UTF-8
under the C locale, as many real setups do not): non-ASCII file names, a student's error message
and written answers and an imported comment that is not ASCII all reach whole UTF-8 files; a file
named like a spreadsheet formula is text in grades.csv."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import nbformat

from autograder.catalogue import REFERENCE
from autograder.rubric import RUBRIC

STRUCTURAL = sum(i.points for i in RUBRIC if not i.needs_weights)  # what a run without trained results grades

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "notebooks" / "release" / "fcn_segmentation" / "fcn_segmentation.ipynb"
ANSWER = "Très bien : le modèle pré-entraîné généralise (mIoU ≤ 0.5)."


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONUTF8="0")
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=REPO, env=env, capture_output=True,
                          timeout=600)


@pytest.mark.slow
def test_the_cli_under_the_c_locale_writes_utf8_and_formula_cells_as_text(tmp_path):
    assert subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"], capture_output=True,
                          env={"LC_ALL": "C", "PYTHONUTF8": "0", "PATH": os.environ["PATH"]},
                          text=True).stdout.strip() == "ascii"  # the locale really is ASCII-only
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "josé.py").write_text(REFERENCE, encoding="utf-8")
    (folder / "raiser.py").write_text("import torch\nclass FCN32s(torch.nn.Module):\n    def __init__(self, n_class=12):\n"
                                      "        raise ValueError('taille ≤ 0')\n", encoding="utf-8")
    (folder / '=HYPERLINK(1+1).py').write_text("x = 1\n", encoding="utf-8")
    release = nbformat.read(RELEASE, as_version=4)
    for cell in release.cells:
        if cell.get("id") == "question1":
            cell.source = f"**Your answer:**\n\n{ANSWER}"
    (folder / "zoé" / "hw").mkdir(parents=True)
    nbformat.write(release, folder / "zoé" / "hw" / "fcn_segmentation.ipynb")
    out = tmp_path / "out"
    done = _cli("grade", str(folder), "--out", str(out), "--seed", "4", "--jobs", "2", "--timeout", "120")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    reports = {p.name: json.loads(p.read_bytes().decode("utf-8")) for p in out.glob("*.json")}
    assert set(reports) == {"josé.json", "raiser.json", '=HYPERLINK(1+1).json', "zoé.json"}
    assert reports["josé.json"]["student"] == "josé" and reports["josé.json"]["score"] == STRUCTURAL
    assert any("taille ≤ 0" in c["message"] for c in reports["raiser.json"]["checks"])
    for page in (out / "feedback").glob("*.html"):
        assert page.read_bytes().decode("utf-8").endswith("</html>\n"), page
    assert "taille ≤ 0" in (out / "feedback" / "raiser.html").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_bytes().decode("utf-8"))))
    students = [r[0] for r in rows[1:]]
    assert "josé" in students and "zoé" in students
    assert "'=HYPERLINK(1+1)" in students  # text in a spreadsheet, not a formula
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)

    done = _cli("answers", str(folder), "--out", str(tmp_path / "pages"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    page = (tmp_path / "pages" / "question1.html").read_bytes().decode("utf-8")
    assert ANSWER in page and page.rstrip().endswith("</html>")
    scores = tmp_path / "scores-question1.csv"
    scores.write_text("student,question,score,comment\nzoé,question1,12,\"'=très bien, ≤ rien à redire\"\n",
                      encoding="utf-8")
    done = _cli("answers", "--import", str(scores), "--reports", str(out))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    zoe = json.loads((out / "zoé.json").read_bytes().decode("utf-8"))
    assert zoe["manual"]["question1"]["comment"] == "=très bien, ≤ rien à redire"  # the page's quote taken off
    assert "=très bien, ≤ rien à redire" in (out / "feedback" / "zoé.html").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_bytes().decode("utf-8"))))
    assert rows[[r[0] for r in rows].index("zoé")][rows[0].index("question1")] == "12"
