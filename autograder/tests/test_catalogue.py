"""The reference gets full marks; every known-buggy submission loses points on the check named for
its bug; correct variants (other names, their own copy_params) get full marks."""
import pytest

from autograder.checks import CHECKS, CheckFailed, Submission
from autograder.extract import extract
from autograder.rubric import ITEMS, RUBRIC
from autograder.catalogue import MUTANTS, VARIANTS, write_submissions
from autograder.worker import run_definitions

STRUCTURAL = [i.name for i in RUBRIC if not i.name.endswith("_miou")]


def load(name: str, folder) -> Submission:
    namespace = {"__name__": "submission"}
    [path] = write_submissions(folder, [name])
    notes = run_definitions([vars(c) for c in extract(path).chunks], namespace)
    assert notes == []
    return Submission(namespace)


def run(sub: Submission, name: str):
    try:
        return True, CHECKS[name.split("_", 1)[1]](sub, ITEMS[name].model)
    except CheckFailed as err:
        return False, str(err)


def test_catalogue_is_large_enough_and_writes_every_submission(tmp_path):
    assert len(MUTANTS) >= 15
    paths = write_submissions(tmp_path)
    assert len(paths) == 1 + len(MUTANTS) + len(VARIANTS)
    assert all(p.read_text().count("class FCN8s") == 1 for p in paths)


@pytest.mark.parametrize("name", ["reference", *[f"variant_{v}" for v in VARIANTS]])
def test_correct_solutions_get_every_structural_point(name, tmp_path):
    sub = load(name, tmp_path)
    for check in STRUCTURAL:
        passed, message = run(sub, check)
        assert passed, f"{name}: {check}: {message}"


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_each_mutant_loses_the_named_check(name, tmp_path):
    why, check, _ = MUTANTS[name]
    sub = load(name, tmp_path)
    passed, message = run(sub, check)
    assert not passed, f"{name} ({why}) passed {check}"
    assert message.strip()
    # the other model's structure is untouched by single-model mistakes
    other = "fcn8s" if ITEMS[check].model == "fcn32s" else "fcn32s"
    if name.startswith(("fcn8s_", "score_pool4", "upscore8", "skip_")) or name.startswith("fcn32s_"):
        assert run(sub, f"{other}_vgg_layers")[0] and run(sub, f"{other}_head")[0]
