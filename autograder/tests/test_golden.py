"""Grades do not drift: on the catalogue, with a fixed seed, the grader writes grades.csv, every
``<student>.json`` and every feedback page byte for byte as the golden files (see golden/README.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autograder.catalogue import sources

GOLDEN = Path(__file__).resolve().parent / "golden" / "catalogue_seed7"
SUBMISSIONS = "{SUBMISSIONS}"  # the golden files' name for the graded folder


def written(out: Path) -> dict[str, str]:
    """The files of a run that must not drift, by path relative to ``out``."""
    files = [out / "grades.csv", *sorted(out.glob("*.json")), *sorted((out / "feedback").glob("*.html"))]
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in files}


@pytest.mark.slow
def test_the_catalogues_reports_are_byte_identical_to_the_golden_ones(graded_catalogue):
    got = {name: text.replace(str(graded_catalogue.submissions), SUBMISSIONS)
           for name, text in written(graded_catalogue.out).items()}
    want = written(GOLDEN)
    assert sorted(graded_catalogue.reports) == sorted(sources())
    assert len(want) == 1 + 2 * len(sources())  # grades.csv, and a report and a page a submission
    assert sorted(got) == sorted(want)
    changed = [name for name in want if got[name] != want[name]]
    assert not changed, (f"{len(changed)} files differ from autograder/tests/golden (first: {changed[0]}); if the "
                         f"change is meant, regenerate them: python autograder/tests/test_golden.py --regenerate")


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:  # run from the repository root
    import shutil
    import tempfile
    from autograder.__main__ import main
    from autograder.tests.conftest import CATALOGUE_SEED, lay_out_catalogue
    root = Path(tempfile.mkdtemp())
    folder = lay_out_catalogue(root / "catalogue", root / "flat")
    main(["grade", str(folder), "--out", str(root / "out"), "--seed", str(CATALOGUE_SEED)])
    shutil.rmtree(GOLDEN)
    for name, text in written(root / "out").items():
        (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
        (GOLDEN / name).write_text(text.replace(str(folder), SUBMISSIONS), encoding="utf-8")
    print(f"wrote {GOLDEN}")
