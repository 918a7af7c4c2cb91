"""Wall time of the grading CLI on this machine, process start included.

    python bench/grading_speed.py [--jobs 2]

1. one submission (the reference), no checkpoints;
2. ten submissions (reference and nine mutants) graded in parallel with --jobs.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.catalogue import MUTANTS, write_submissions

REPO = Path(__file__).resolve().parent.parent


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        [reference] = write_submissions(tmp / "one", ["reference"])
        one = timed([str(reference), "--out", str(tmp / "one-reports")])
        write_submissions(tmp / "class", ["reference", *sorted(MUTANTS)[:9]])
        ten = timed([str(tmp / "class"), "--jobs", str(args.jobs), "--out", str(tmp / "ten-reports")])
    print(f"one submission, no checkpoints:        {one:6.1f} s")
    print(f"ten submissions, --jobs {args.jobs}:            {ten:6.1f} s ({ten / 10:.1f} s per submission)")


if __name__ == "__main__":
    main()
