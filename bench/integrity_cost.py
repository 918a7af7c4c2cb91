"""What the integrity flags cost for a class: a synthetic class of 300 students (default), each with
both models' test predictions (the real test split's 76 labels with blocks changed, as
bench/predictions_cost.py makes them, at scale 0.5) and their own code (the reference with some
numbers changed, so that students differ), three pairs of copies among them. Times
:func:`autograder.judging.integrity.flag_class` by phase and prints the figures: before (the flags
read every student's predictions after grading) and after (the mIoU item records the evidence when
it reads them; the flags read the code only).

    FCNKIT_DATA=../shared/data/cmp_facade python bench/integrity_cost.py [--students 300]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from autograder.judging.evidence import predictions_evidence
from autograder.judging.miou import read_submitted
from autograder.judging import integrity
from autograder.pipeline.discover import predictions_finder
from autograder.results import Report
from autograder.catalogue import REFERENCE
from fcnkit.predictions import MAPS_FILE, META_FILE, PredictionsMeta
from fcnkit.splits import cmp_splits, load_label

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))


def maps_for(labels: dict[str, np.ndarray], noise: float, rng) -> dict[str, np.ndarray]:
    """The labels with blocks of 8x8 pixels set to a random class (a model's errors come in regions)."""
    maps = {}
    for image_id, label in labels.items():
        grid = ((label.shape[0] + 7) // 8, (label.shape[1] + 7) // 8)
        block = np.ones((8, 8), np.uint8)
        wrong = np.kron(rng.random(grid) < noise, block)[:label.shape[0], :label.shape[1]].astype(bool)
        classes = np.kron(rng.integers(0, 12, grid, dtype=np.uint8), block)[:label.shape[0], :label.shape[1]]
        maps[image_id] = np.where(wrong, classes, label).astype(np.uint8)
    return maps


def own_code(rng) -> str:
    """The reference with about a third of its integer literals changed: code of its own."""
    return re.sub(r"(?<![\w.])\d+(?![\w.])", lambda m: str(int(m[0]) + 1) if rng.random() < 0.3 else m[0], REFERENCE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()
    root = Path(os.environ.get("FCNKIT_DATA", SHARED / "data" / "cmp_facade"))
    labels = {p.stem: load_label(p, args.scale) for p in cmp_splits(root)["test"]}
    folder = Path(tempfile.mkdtemp(prefix="fcnkit-integrity-"))
    rng = np.random.default_rng(0)
    reports, start = [], time.perf_counter()
    for n in range(args.students):
        student = f"s{n:03d}"
        sub = folder / student / "fcn_segmentation"
        (sub / "outputs").mkdir(parents=True)
        copy_of = n - 1 if n % 100 == 1 else None  # s001 copies s000, s101 copies s100, ...
        source = folder / f"s{copy_of:03d}" / "fcn_segmentation" if copy_of is not None else None
        (sub / "fcn_segmentation.py").write_text((source / "fcn_segmentation.py").read_text() if source
                                                 else own_code(rng))
        for kind in ("fcn32s", "fcn8s"):
            if source:
                for name in (MAPS_FILE, META_FILE):
                    shutil.copy(source / "outputs" / name.format(kind=kind), sub / "outputs")
                continue
            np.savez_compressed(sub / "outputs" / MAPS_FILE.format(kind=kind), **maps_for(labels, 0.3, rng))
            meta = PredictionsMeta(kind, list(labels), args.scale, weights_sha256=f"{rng.integers(2**63):064x}")
            (sub / "outputs" / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(meta)))
        reports.append(Report(student, str(sub / "fcn_segmentation.py")))
    made = time.perf_counter() - start
    given = integrity.template_units()
    t0 = time.perf_counter()  # before: the flags read every student's predictions again after grading
    found = predictions_finder()
    students = [integrity.student_evidence(r, list(labels), given, found) for r in reports]
    t1 = time.perf_counter()
    flags = integrity.compare(students)
    t2 = time.perf_counter()
    evidence_s = 0.0  # after: the mIoU item takes the evidence from the maps it has read anyway
    for r in reports:
        for kind in ("fcn32s", "fcn8s"):
            meta, maps = read_submitted(Path(r.submission).parent / "outputs", kind)
            t = time.perf_counter()
            r.evidence[kind] = predictions_evidence(maps, list(labels), meta.weights_sha256)
            evidence_s += time.perf_counter() - t
    t3 = time.perf_counter()
    recorded = [integrity.student_evidence(r, list(labels), given) for r in reports]
    t4 = time.perf_counter()
    assert [(s.hashes, s.weights) for s in recorded] == [(s.hashes, s.weights) for s in students]
    assert all((a.sketches[k] == b.sketches[k]).all() for a, b in zip(recorded, students) for k in a.sketches)
    sketch_bytes = sum(s.nbytes for st in students for s in st.sketches.values())
    pairs = {tuple(sorted((a, f.other))) + (f.kind,) for a, fs in flags.items() for f in fs}
    print(f"class of {args.students} (made in {made:.0f} s; {len(labels)} test maps per model at scale {args.scale}, "
          f"{sum((folder / r.student / 'fcn_segmentation' / 'outputs' / MAPS_FILE.format(kind='fcn8s')).stat().st_size for r in reports) / len(reports) / 1e3:.0f} KB per .npz)")
    print(f"before: the flags read predictions and code (hashes, sketches, code units): {t1 - t0:.1f} s "
          f"({(t1 - t0) / args.students * 1e3:.0f} ms per student)")
    print(f"after: the mIoU items take hashes and sketches from the maps they read: {evidence_s:.1f} s in all "
          f"({evidence_s / args.students * 1e3:.1f} ms per student, spread over grading); the flags read code only: "
          f"{t4 - t3:.1f} s ({(t4 - t3) / args.students * 1e3:.0f} ms per student)")
    print(f"comparing {args.students * (args.students - 1) // 2} pairs per model: {t2 - t1:.2f} s; sketches "
          f"{sketch_bytes / 1e6:.1f} MB in all")
    print(f"flagged pairs: {sorted(pairs)}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
