"""How fast the grading CLI is on this machine, against the floor: the arithmetic the checks need.

    python bench/grading_speed.py [--jobs N] [--sizes 1,10,100] [--device cpu|cuda] [--json FILE]

Grades 1, 10 and 100 submissions (the reference, the catalogue's mutants and variants, repeated)
with ``python -m autograder grade``, each run a cold start (a new interpreter, a new worker), and
prints for each: wall time, submissions per minute, seconds per submission, the peak memory of the
whole run (the proportional set size of the CLI and every process under it, sampled every 0.1 s)
and where the time went (from the CLI's ``--timings``). The floor is measured in the same run: one
bare forward pass of the reference FCN-32s and FCN-8s at the checks' input size, with the weights
already in place, the fastest of five, using every core (and with one thread, as each of ``--jobs``
children gets when there are as many children as cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs from a bare checkout too (the GPU machine installs nothing)
from autograder.catalogue import sources  # noqa: E402

PHASES = {  # name in --timings: what it is
    "start": "CLI start, probe and worker start (once)",
    "child start": "fork and confinement (the first waits for the worker's imports)",
    "extraction": "extracting definitions from the file",
    "definitions": "running the definitions",
    "structure": "construction and output shapes (meta device)",
    "outputs": "construction, seeded weights and the forward passes",
    "copy_params": "construction and copy_params_from_vgg16",
    "judging": "judging (in the grading process)",
    "reporting": "reports, feedback pages, grades.csv (once)",
}


def tree_pss_kib(root: int) -> int:
    """Proportional set size of ``root`` and all its descendants (shared pages counted once)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    parents[int(entry.name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total


def grade(folder: Path, jobs: int, device: str, out: Path) -> dict:
    """One cold run of the CLI; its wall time, peak memory and --timings."""
    timings = out / "timings.json"
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--jobs", str(jobs), "--device", device,
               "--out", str(out / "reports"), "--timings", str(timings), "--force"]  # cold: never resume
    peak, done = 0, threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_pss_kib(proc.pid))
            time.sleep(0.1)
    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        sys.exit(f"grading failed: {err[-2000:]}")
    return {"wall": wall, "peak_gib": peak / 2**20, **json.loads(timings.read_text())}


def floor(device: str, repeats: int = 5) -> dict[str, float]:
    """The bare forward passes, in a fresh process: {threads: seconds for both models}, the fastest of
    ``repeats`` timed passes each."""
    code = """
import json, sys, time, torch
from fcnkit._grading.judges import EQUIVALENCE_SIZE
from autograder.reference.observed import reference_model
from fcnkit._grading.seeded import fill_seeded, seeded_input
device, repeats, out = sys.argv[1], int(sys.argv[2]), {}
threads_here = torch.get_num_threads()
models = {}
for kind in ("fcn32s", "fcn8s"):  # built and filled once: the threads change only the arithmetic's speed
    models[kind] = reference_model(kind, 12)
    fill_seeded(models[kind], 0)
    models[kind].to(device)
x = seeded_input(0, EQUIVALENCE_SIZE).to(device)
for threads in sorted({1, threads_here}):
    torch.set_num_threads(threads)
    total = 0.0
    for kind, model in models.items():
        with torch.no_grad():
            model(x)  # the first pass pays for allocations: the checks' first pass does too, but be fair
            best = float("inf")
            for _ in range(repeats):  # the fastest: the floor is what the arithmetic needs at best
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(x)
                if device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            total += best
    out[threads] = total
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", code, device, str(repeats)], cwd=REPO, capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(result.stdout).items()}


def write_class(folder: Path, count: int) -> None:
    """``count`` submissions: the reference, then the catalogue's mutants and variants, repeated."""
    everything = sources()
    names = ["reference", *sorted(n for n in everything if n != "reference")]
    folder.mkdir(parents=True)
    for i in range(count):
        name = names[i % len(names)]
        (folder / f"s{i:03d}_{name}.py").write_text(everything[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, help="submissions graded at once (default: the CLI's default)")
    parser.add_argument("--sizes", default="1,10,100", help="class sizes to grade")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--floor-repeats", type=int, default=5,
                        help="timed bare forward passes per model; the floor is the fastest (default: 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/reference_gpu.py reads them)")
    args = parser.parse_args()
    from autograder.pipeline import default_jobs
    jobs = args.jobs or default_jobs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            folder = Path(tmp) / f"class-{size}"
            write_class(folder, size)
            rows.append((size, grade(folder, jobs, args.device, Path(tmp) / f"out-{size}")))
    bare = floor(args.device, args.floor_repeats)
    cores = max(bare)
    print(f"floor: both bare forward passes {bare[cores]:.2f} s with {cores} thread(s)"
          + (f", {bare[1]:.2f} s with 1 thread" if 1 in bare and cores != 1 else "") + f" ({args.device})")
    print(f"\n{'submissions':>11} {'jobs':>4} {'wall s':>7} {'per min':>8} {'s each':>7} {'x floor':>8} {'peak GiB':>9}")
    for size, r in rows:
        each = r["wall"] / size
        print(f"{size:>11} {r['jobs']:>4} {r['wall']:>7.1f} {60 * size / r['wall']:>8.1f} {each:>7.2f} "
              f"{each / bare[cores]:>8.1f} {r['peak_gib']:>9.2f}")
    print("\nwhere the time went (seconds; per-submission phases summed over the class, children run "
          f"{jobs} at a time):")
    print(f"{'phase':<14}" + "".join(f"{size:>9}" for size, _ in rows) + "  what")
    for phase, what in PHASES.items():
        key = "start" if phase == "child start" else phase
        cells = []
        for _, r in rows:
            if phase in ("start", "reporting"):
                cells.append(r[phase])
            else:
                cells.append(sum(s["phases"].get(key, 0.0) for s in r["submissions"]))
        print(f"{phase:<14}" + "".join(f"{c:>9.2f}" for c in cells) + f"  {what}")
    if args.json:
        figures = {"device": args.device, "floor_s": bare[cores], "floor_threads": cores, "rows": [
            {"submissions": size, "jobs": r["jobs"], "wall_s": r["wall"], "per_minute": 60 * size / r["wall"],
             "each_s": r["wall"] / size, "x_floor": r["wall"] / size / bare[cores], "peak_gib": r["peak_gib"]}
            for size, r in rows]}
        tmp = args.json.with_name(f".{args.json.name}.tmp")  # written whole: a temporary file, then renamed
        tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
