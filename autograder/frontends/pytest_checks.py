"""The pytest front-end's tests: one per rubric item and student, collected by
:mod:`autograder.frontends.pytest_plugin` when it grades a submission:

    pytest --pyargs autograder --submission PATH
"""
from __future__ import annotations

import os

import pytest

from autograder.results import Report, Status
from autograder.rubric import RUBRIC


def pytest_generate_tests(metafunc):
    path = metafunc.config.getoption("submission")
    if "student" not in metafunc.fixturenames:
        return
    if path is None:
        metafunc.parametrize(("student", "item"), [pytest.param(None, None, marks=pytest.mark.skip(
            reason="grades a submission: pytest --pyargs autograder --submission PATH"))])
        return
    from autograder.pipeline import find_submissions
    params = [pytest.param(student, item, id=f"{student}-{item.name}", marks=pytest.mark.points(item.points))
              for student, _ in find_submissions(path) for item in RUBRIC]
    metafunc.parametrize(("student", "item"), params)


@pytest.fixture(scope="session")
def graded(pytestconfig) -> dict[str, Report]:
    """Every submission graded once, as ``python -m autograder grade`` grades them."""
    from autograder.judging.miou import LabelSet
    from autograder.pipeline import Limits, default_jobs, find_submissions, grade_all, grading_run
    path = pytestconfig.getoption("submission").resolve()
    data = pytestconfig.getoption("grading_data") or os.environ.get("FCNKIT_DATA")
    submissions = find_submissions(path)
    jobs = max(1, min(default_jobs(), len(submissions)))
    limits = Limits.sharing_cores(jobs)
    with grading_run(limits=limits, seed=pytestconfig.getoption("grading_seed"), hidden=[path], jobs=jobs,
                     labels=LabelSet(data) if data else None) as run:
        reports = grade_all(submissions, jobs=jobs, limits=limits, run=run)
    return {report.student: report for report in reports}


def test_rubric_item(graded, student, item, record_property):
    check = next(c for c in graded[student].checks if c.name == item.name)
    record_property("points", item.points)
    record_property("score", check.score)
    record_property("status", check.status.value)
    if check.status is Status.NOT_GRADED:
        pytest.skip(check.message)
    if check.status is not Status.PASSED:
        pytest.fail(("flagged for review: " if check.status is Status.FLAGGED else "") + check.message, pytrace=False)

