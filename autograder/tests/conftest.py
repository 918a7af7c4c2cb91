"""The catalogue graded once for the whole test session (it takes a minute or two): the golden test,
the sandbox-against-in-process comparison and the front-ends' comparisons all read this one run."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.catalogue import sources, write_submissions

CATALOGUE_SEED = 7  # the seed of the in-process comparisons (test_catalogue.CONTEXT) and of the golden reports


@dataclass(frozen=True)
class GradedCatalogue:
    submissions: Path  # <student>/fcn_segmentation/fcn_segmentation.py for every catalogue submission
    out: Path  # the run's --out folder: grades.csv, <student>.json, feedback/<student>.html
    reports: dict  # student: the report's JSON object (from --json)


def lay_out_catalogue(folder: Path, scratch: Path) -> Path:
    """Every catalogue submission as a student's folder (``<name>/fcn_segmentation/fcn_segmentation.py``)."""
    for path in write_submissions(scratch, list(sources())):
        (folder / path.stem / "fcn_segmentation").mkdir(parents=True)
        shutil.copy(path, folder / path.stem / "fcn_segmentation" / "fcn_segmentation.py")
    return folder


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory) -> Path:
    return lay_out_catalogue(tmp_path_factory.mktemp("catalogue"), tmp_path_factory.mktemp("flat"))


@pytest.fixture(scope="session")
def graded_catalogue(catalogue, tmp_path_factory) -> GradedCatalogue:
    """``python -m autograder grade`` on the catalogue, two children at a time, with a fixed seed."""
    from autograder.__main__ import main
    out = tmp_path_factory.mktemp("graded")
    every = tmp_path_factory.mktemp("json") / "all.json"  # outside --out, which holds the students' files
    assert main(["grade", str(catalogue), "--out", str(out), "--json", str(every), "--jobs", "2",
                 "--device", "cpu", "--seed", str(CATALOGUE_SEED)]) == 0
    reports = {r["student"]: r for r in json.loads(every.read_text(encoding="utf-8"))}
    return GradedCatalogue(catalogue, out, reports)
