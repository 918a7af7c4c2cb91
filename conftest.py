"""Shared test fixtures. Real data and weights are found through one setting:
FCNKIT_SHARED (default: the `shared` folder beside this repository), holding
data/cmp_facade/ and weights/vgg16_features_tvnorm.pth."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def cmp_root() -> Path:
    root = SHARED / "data" / "cmp_facade"
    if not root.is_dir():
        pytest.skip(f"real CMP Facade data not found at {root}; set FCNKIT_SHARED")
    return root


@pytest.fixture(scope="session")
def vgg_features_file() -> Path:
    path = SHARED / "weights" / "vgg16_features_tvnorm.pth"
    if not path.is_file():
        pytest.skip(f"VGG-16 conv weights not found at {path}; set FCNKIT_SHARED")
    return path


def write_label_with_value(src: Path, dst: Path, value: int) -> None:
    """Copy a label PNG (keeping its palette) with one pixel set to ``value``."""
    import numpy as np
    from PIL import Image
    label = Image.open(src)
    arr = np.asarray(label).copy()
    arr[5, 5] = value
    out = Image.fromarray(arr, mode="P")
    out.putpalette(label.getpalette())
    out.save(dst)



# Two workers on two cores: ``python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder`` (pytest-xdist).
# - One thread per worker, and for what it starts (kernels, trainings): two workers each running torch's
#   two-thread pool spin on each other's cores (the CPU time doubled when they did).
# - Each test file is one group, run by one worker, so that its module fixtures are built once; the tests
#   that read the graded catalogue share one group, so that it is graded once, with test_catalogue.py, whose
#   in-process observations (cached in the process) the sandbox comparison of test_grading.py reads again.
# - The groups go out heaviest first (HEAVY, a hint measured with --durations=0: a stale one costs time,
#   never a result); a worker takes the next group when it has finished one.
CATALOGUE_READERS = ("test_golden.py", "test_frontends.py", "test_record.py", "test_catalogue.py")
HEAVY = ("test_reference_gpu.py", "catalogue", "test_notebook.py", "test_slurm.py",
         "test_class_view.py", "test_grading.py", "test_hostile.py", "test_durable.py")


def pytest_configure(config):
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch
        torch.set_num_threads(1)


def group(item) -> str:
    if item.path.name in CATALOGUE_READERS or "graded_catalogue" in getattr(item, "fixturenames", ()):
        return "catalogue"
    return item.path.name


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY)}
    items.sort(key=lambda item: rank.get(group(item), len(HEAVY)))  # stable: a file's tests keep their order
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
