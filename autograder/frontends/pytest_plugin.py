"""The pytest front-end: the rubric as pytest tests, for GitHub Classroom and CI systems.

    pytest --pyargs autograder --submission PATH [--grading-data DIR] [--junitxml results.xml]

One test per rubric item and student (``test_rubric_item[<student>-<item>]``, marked
``points(n)``), judged by the same isolated worker and the same verdicts as ``python -m autograder
grade`` (the submissions are graded once, then each test reports its item): passed, failed with the
grader's message, or skipped when the run could not grade it (the mIoU items without the dataset).
``--junitxml`` records each item's points, score and status as properties. Registered as a pytest
plugin by the fcnkit-grader distribution (entry point ``pytest11``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

AUTOGRADER = Path(__file__).resolve().parents[1]
CHECKS = Path(__file__).resolve().with_name("pytest_checks.py")  # the rubric's tests (not named test_*)


def pytest_addoption(parser):
    group = parser.getgroup("fcnkit-grader", "grading FCN assignment submissions")
    group.addoption("--submission", type=Path, help="a submission (.ipynb / .py) or a folder of them: runs the "
                                                    "rubric's tests on it (with --pyargs autograder)")
    group.addoption("--grading-data", type=Path, help="dataset folder whose labels the submitted predictions are "
                                                      "scored against (default $FCNKIT_DATA)")
    group.addoption("--grading-seed", type=int, help="seed of the checks' weights and inputs (default: a fresh one)")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): the rubric item's points")


def pytest_ignore_collect(collection_path, config):
    """Grading a submission runs the rubric's tests only, not the grader's own test suite."""
    if config.getoption("submission") is not None and "tests" in Path(collection_path).parts \
            and AUTOGRADER in Path(collection_path).resolve().parents:
        return True
    return None


def pytest_collect_file(file_path, parent):
    """Grading a submission collects the rubric's tests, :mod:`autograder.frontends.pytest_checks`."""
    if parent.config.getoption("submission") is not None and Path(file_path).resolve() == CHECKS:
        return pytest.Module.from_parent(parent, path=Path(file_path))
    return None
