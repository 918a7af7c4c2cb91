"""Grade submissions: each in its own sandboxed process, with a wall clock and a memory limit.

Whatever a submission does, the grader returns a report: checks that could not run are failed
with the reason, and the other checks and submissions are graded normally.

torch, fcnkit and the checks are imported only where trained weights are scored: grading the
structure alone leaves the parent process light (the workers import them).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .extract import SubmissionError, extract
from .rubric import ITEMS, RUBRIC

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT_NAMES = {"fcn32s": "fcn32s.pt", "fcn8s": "fcn8s.pt"}


@dataclass
class Limits:
    wall_s: int = 240  # the whole submission
    check_s: int = 30  # one structural check
    miou_s: int = 900  # predicting the evaluation split for one model
    memory_gb: float = 10.0
    threads: int = 1


@dataclass
class EvalSet:
    """The images the trained checkpoints are evaluated on, with labels kept in the grader's process."""
    images_file: Path  # what the sandboxed worker reads
    labels: list  # numpy label maps
    size: int
    hidden: list[Path]  # the dataset folder, which submissions may not read while graded

    @classmethod
    def load(cls, root=None, split: str = "test", scale: float = 0.5, workdir: Path | None = None) -> "EvalSet":
        import torch
        from fcnkit.data import data_root
        from .checks import eval_split
        root = data_root(root)
        images, labels = eval_split(root, split, scale)
        workdir = Path(workdir or tempfile.mkdtemp(prefix="fcnkit-eval-"))
        images_file = workdir / f"{split}_images.pt"
        torch.save(images, images_file)
        return cls(images_file, labels, len(images), hidden=[root])


def find_submissions(path: Path) -> list[tuple[str, Path]]:
    """``(student id, file)`` pairs. A folder is searched recursively for .ipynb and .py files. In
    nbgrader's layout (``.../submitted/<student>/<assignment>/``) the student id is the folder after
    ``submitted``; elsewhere it is the first folder of ``<student>/<assignment>/<file>``, else the
    file's name."""
    path = path.resolve()
    if path.is_file():
        files, base = [path], path.parent
    elif path.is_dir():
        base = path
        files = sorted(p for p in path.rglob("*") if p.suffix in (".ipynb", ".py") and p.is_file()
                       and not any(part.startswith(".") or part == "__pycache__"
                                   for part in p.relative_to(path).parts))
    else:
        raise FileNotFoundError(f"{path} is neither a submission file nor a folder of them.")

    def student(f: Path) -> str:
        parts = f.parts
        if "submitted" in parts[:-2]:
            return parts[len(parts) - 1 - parts[::-1].index("submitted") + 1]
        rel = f.relative_to(base).parts
        return rel[0] if len(rel) >= 3 else "__".join(f.relative_to(base).with_suffix("").parts)
    found = [(student(f), f) for f in files]
    ids = [s for s, _ in found]
    # two files of one student: keep both, named by their paths
    return [(s if ids.count(s) == 1 else "__".join(f.relative_to(base).with_suffix("").parts), f)
            for s, f in found]


def find_checkpoints(checkpoints: Path, student: str) -> dict[str, Path | None]:
    """Where each model's weights are: DIR/<student>/**/NAME, else DIR/NAME."""
    found = {}
    for model, name in CHECKPOINT_NAMES.items():
        hits = sorted((checkpoints / student).rglob(name)) if (checkpoints / student).is_dir() else []
        hits = hits or ([checkpoints / name] if (checkpoints / name).is_file() else [])
        found[model] = hits[0] if hits else None
    return found


def _limit_memory(memory_gb: float):
    def apply():
        os.setsid()  # its own process group, so a timeout kills everything it started
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def _result(name: str, passed: bool, message: str) -> dict:
    item = ITEMS[name]
    return {"name": name, "title": item.title, "model": item.model, "max_score": item.points,
            "score": item.points if passed else 0, "status": "passed" if passed else "failed",
            "message": message}


def grade_submission(student: str, path: Path, checkpoints: Path | None = None, evalset: EvalSet | None = None,
                     device: str = "cpu", limits: Limits = Limits(), only: list[str] | None = None) -> dict:
    """Grade one submission file; never raises for anything the submission does.

    ``only`` restricts grading to some rubric items (the others are reported as not graded).
    """
    start = time.perf_counter()
    report = {"student": student, "submission": str(path), "notes": [], "checks": []}
    weights = find_checkpoints(checkpoints, student) if checkpoints is not None else {}
    names = [i.name for i in RUBRIC if (not i.name.endswith("_miou") or weights.get(i.model))
             and (only is None or i.name in only)]
    outcome: dict[str, dict] = {}
    try:
        extracted = extract(path)
        report["notes"] += extracted.notes
    except SubmissionError as err:
        extracted = None
        report["notes"].append(str(err))
    if extracted is not None:
        with tempfile.TemporaryDirectory(prefix="fcnkit-grade-") as sandbox:
            outcome = _run_worker(Path(sandbox), extracted, names, weights, evalset, device, limits, report)
    for item in RUBRIC:
        if item.name in outcome:
            report["checks"].append(outcome[item.name])
        elif item.name.endswith("_miou") and not weights.get(item.model):
            why = ("no checkpoints given (--checkpoints DIR)" if checkpoints is None
                   else f"no {CHECKPOINT_NAMES[item.model]} found for {student} in {checkpoints}")
            report["checks"].append(_result(item.name, False, f"not graded: {why}."))
        elif only is not None and item.name not in only:
            report["checks"].append(_result(item.name, False, "not graded in this run."))
        else:
            why = report.get("stopped") or (report["notes"][-1] if report["notes"] else "the check did not run")
            report["checks"].append(_result(item.name, False, f"not graded: {why}"))
    report["score"] = sum(c["score"] for c in report["checks"])
    report["max_score"] = sum(i.points for i in RUBRIC)
    report["_seconds"] = round(time.perf_counter() - start, 1)  # keys with _ stay out of the JSON
    return report


def _run_worker(sandbox: Path, extracted, names, weights, evalset, device, limits, report) -> dict:
    results = sandbox / "results.jsonl"
    job = {
        "chunks": [vars(c) for c in extracted.chunks], "checks": names, "results": str(results),
        "sandbox": str(sandbox), "device": device, "threads": limits.threads,
        "check_timeout": limits.check_s, "miou_timeout": limits.miou_s,
        "checkpoints": {k: str(v) for k, v in weights.items() if v},
        "images": str(evalset.images_file) if evalset and any(weights.values()) else None,
        "hidden": [str(h) for h in evalset.hidden] if evalset else [],
    }
    (sandbox / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NBGRADER_EXECUTION="autograde", OMP_NUM_THREADS=str(limits.threads),
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", HOME=str(sandbox),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "autograder.worker", str(sandbox / "job.json")], cwd=sandbox,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_limit_memory(limits.memory_gb if device == "cpu" else 1e4))
    try:
        log, _ = proc.communicate(timeout=limits.wall_s + (limits.miou_s * 2 if job["images"] else 0))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        report["stopped"] = f"the grader stopped the submission after {limits.wall_s} s."
    if proc.returncode and "stopped" not in report:
        tail = log.decode(errors="replace").strip().splitlines()[-1:] if log else []
        report["stopped"] = (f"the submission's process ended abnormally (exit code {proc.returncode}"
                             f"{'; ' + tail[0][:300] if tail else ''}); it may have used too much memory.")
    outcome = {}
    for line in results.read_text().splitlines() if results.exists() else []:
        record = json.loads(line)
        if "note" in record:
            report["notes"].append(record["note"])
        elif record["status"] == "predicted":
            outcome[record["name"]] = _score_miou(record, evalset, report)
        else:
            outcome[record["name"]] = _result(record["name"], record["status"] == "passed", record["message"])
    return outcome


def _score_miou(record: dict, evalset: EvalSet, report: dict) -> dict:
    """Scores are computed here, in the grader's process, from the predicted label maps only."""
    import numpy as np
    from .checks import CheckFailed, judge_miou, score_predictions
    name, model = record["name"], ITEMS[record["name"]].model
    try:
        with np.load(record["predictions"], allow_pickle=False) as npz:
            preds = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        scores = score_predictions(preds, evalset.labels)
        report.setdefault("metrics", {})[model] = scores
        report.setdefault("_predictions", {})[model] = preds[:3]  # for the feedback page, not the JSON
        return _result(name, True, judge_miou(model, scores))
    except CheckFailed as err:
        return _result(name, False, str(err))
    except Exception as err:
        return _result(name, False, f"its predictions could not be scored ({type(err).__name__}: {err}).")


def grade_all(submissions: list[tuple[str, Path]], checkpoints: Path | None = None, evalset: EvalSet | None = None,
              device: str = "cpu", jobs: int = 1, limits: Limits = Limits(), progress=None) -> list[dict]:
    """Grade ``(student, file)`` pairs (see find_submissions) with ``jobs`` processes at a time."""
    def one(entry):
        report = grade_submission(*entry, checkpoints=checkpoints, evalset=evalset, device=device, limits=limits)
        if progress:
            progress(report)
        return report
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, submissions))
