"""The rubric as pytest tests (see autograder.pytest_plugin):

    pytest --pyargs autograder --submission PATH
"""
from __future__ import annotations

import os

import pytest

from autograder.rubric import FLAGGED, NOT_GRADED, RUBRIC


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
def graded(pytestconfig) -> dict:
    """Every submission graded once, as ``python -m autograder grade`` grades them."""
    from autograder.__main__ import default_jobs
    from autograder.judging.miou import LabelSet
    from autograder.pipeline import find_submissions, grade_all, grading_run
    from autograder.pipeline.legacy import legacy_dict  # SHIM issue 22
    path = pytestconfig.getoption("submission").resolve()
    data = pytestconfig.getoption("grading_data") or os.environ.get("FCNKIT_DATA")
    submissions = find_submissions(path)
    jobs = max(1, min(default_jobs(), len(submissions)))
    with grading_run(seed=pytestconfig.getoption("grading_seed"), hidden=[path], jobs=jobs,
                     labels=LabelSet(data) if data else None) as run:
        reports = [legacy_dict(r) for r in grade_all(submissions, jobs=jobs, run=run)]  # SHIM issue 22
    return {report["student"]: report for report in reports}


def test_rubric_item(graded, student, item, record_property):
    check = next(c for c in graded[student]["checks"] if c["name"] == item.name)
    for key in ("points", "score", "status"):
        record_property(key, item.points if key == "points" else check[key])
    if check["status"] == NOT_GRADED:
        pytest.skip(check["message"])
    if check["status"] != "passed":
        pytest.fail(("flagged for review: " if check["status"] == FLAGGED else "") + check["message"], pytrace=False)

