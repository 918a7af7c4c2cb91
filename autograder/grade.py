"""Grade submissions. Each runs in its own confined child (autograder.sandbox), which only observes;
every verdict is computed here, from those observations, by the functions the rubric names.

Whatever a submission does, the grader returns a report: checks that could not run are failed with
the reason, and the other checks and submissions are graded normally.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fcnkit.predictions import UnreadableFile, open_regular
from fcnkit.records import RECORDS, CopyParams, Failure, Outputs, Predictions
from fcnkit.spec import MODEL_CLASSES

from . import atomic, checks, trained
from . import isolation as sandbox  # SHIM issue 22: the pipeline's call sites keep their name until it moves
from .isolation import tempdirs
from .extract import SubmissionError, extract
from .rubric import FLAGGED, ITEMS, NOT_GRADED, RUBRIC
from .isolation import Limits

REFERENCE_SOURCE = Path(__file__).resolve().parent / "reference" / "models.py"
CHECKPOINT_NAMES = {"fcn32s": "fcn32s.pt", "fcn8s": "fcn8s.pt"}
RECORD_TYPES = {"structure": "Structure", "outputs": "Outputs", "copy_params": "CopyParams", "predict": "Predictions"}


class GraderError(RuntimeError):
    """The grader itself failed on a submission (a bug, a worker that cannot start): the submission is
    not graded, never scored 0. ``phase`` says where; the cause is chained."""

    def __init__(self, phase: str, reason: str):
        super().__init__(f"grader error while {phase}: {reason}")
        self.phase, self.reason = phase, reason


@contextmanager
def phase(name: str, students: tuple[type[Exception], ...] = ()):
    """Whatever escapes this block is the grader's failure in phase ``name``, but the exceptions in
    ``students``: those say what is wrong with the submission."""
    try:
        yield
    except (GraderError, *students):
        raise
    except Exception as err:
        raise GraderError(name, f"{type(err).__name__}: {err}") from err


def not_graded(student: str, path: Path, err: BaseException, seed: int | None = None,
               isolation: dict | None = None) -> dict:
    """The report of a submission the grader failed on: every item not graded, with the reason; the
    traceback under the private key ``_traceback`` (for the run log, never in the report)."""
    reason = str(err) if isinstance(err, GraderError) else f"grader error: {type(err).__name__}: {err}"
    checks_ = [_result(i.name, False, f"not graded: {reason}", NOT_GRADED) for i in RUBRIC]
    return {"student": student, "submission": str(path), "notes": [f"not graded: {reason}"], "checks": checks_,
            "seed": seed, "isolation": isolation or {}, "score": 0, "max_score": sum(i.points for i in RUBRIC),
            "graded_max_score": 0, "not_graded": reason, "_seconds": 0.0, "_phases": {},
            "_traceback": "".join(traceback.format_exception(err))}


@dataclass
class EvalSet:
    """The images the trained checkpoints are evaluated on, with labels kept in the grader's process."""
    images_file: Path  # what the sandboxed child reads
    labels: list  # numpy label maps
    size: int
    hidden: list[Path]  # the dataset folder, which submissions may not read while graded
    ids: list[str] = field(default_factory=list)  # the images' ids, in order
    scale: float = 0.5

    @classmethod
    def load(cls, root=None, split: str = "test", scale: float = 0.5, workdir: Path | None = None) -> "EvalSet":
        import torch
        from fcnkit.data import cmp_splits, data_root, eval_split
        root = data_root(root)
        images, labels = eval_split(root, split, scale)
        ids = [p.stem for p in cmp_splits(root)[split]]
        workdir = Path(workdir or tempdirs.make("fcnkit-eval-"))
        workdir.mkdir(parents=True, exist_ok=True)
        images_file = workdir / f"{split}_images.pt"
        torch.save(images, images_file)
        os.chmod(workdir, 0o755)
        os.chmod(images_file, 0o644)
        return cls(images_file, labels, len(images), hidden=[root], ids=ids, scale=scale)


@dataclass
class GradingRun:
    """What the submissions of one run share: the sandbox runtime and its isolation, the seed of
    the weights and inputs the children observe with, and the reference's observations."""
    runtime: sandbox.Runtime
    context: checks.Context
    workdir: Path
    limits: Limits = field(default_factory=Limits)
    evalset: EvalSet | None = None
    labels: trained.LabelSet | None = None  # what submitted predictions are scored against
    low_memory: bool = False  # one child at a time
    counter: itertools.count = field(default_factory=itertools.count)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(2))  # children at once

    @classmethod
    def start(cls, evalset: EvalSet | None = None, device: str = "cpu", limits: Limits = Limits(),
              seed: int | None = None, hidden=(), want=sandbox.LAYERS, jobs: int = 1,
              labels: trained.LabelSet | None = None, low_memory: bool = False) -> "GradingRun":
        """Start a run: its worker, warmed, and the reference's child. ``low_memory``: one child at a
        time, the reference's included (Gradescope's 768 MB)."""
        workdir = tempdirs.make("fcnkit-grade-")  # also removes those of runs that were killed
        data = [os.environ["FCNKIT_DATA"]] if os.environ.get("FCNKIT_DATA") else []
        context = checks.Context(seed=secrets.randbits(31) if seed is None else seed,
                                 labels=evalset.labels if evalset else None)
        hidden = [*hidden, *data, *(evalset.hidden if evalset else []), *([labels.root] if labels else [])]
        try:
            runtime = sandbox.prepare(workdir, hidden, device, want, jobs)
            runtime.worker.warm(context.seed)
        except BaseException:
            tempdirs.remove(workdir)
            raise
        run = cls(runtime, context, workdir, limits, evalset, labels, low_memory=low_memory,
                  slots=threading.Semaphore(1 if low_memory else max(2, jobs)))
        context.observed.clear()
        threading.Thread(target=run._observe_reference, daemon=True).start()
        return run

    @property
    def children_kept_apart(self) -> bool:
        """Whether children running at the same time are kept out of each other's sandbox folder by
        the kernel (Landlock, or a user of their own). Where they are not, submissions run one at a
        time, and not beside the reference's child."""
        return "landlock" in self.runtime.isolation.layers or self.runtime.uids is not None

    def _observe_reference(self) -> None:
        try:
            with self.slots:  # the reference's child counts as one of the run's jobs (two at least)
                self.context.reference.update(self.observe_reference())
        except (OSError, sandbox.WorkerError):  # the run was closed meanwhile: judging, if any, computes it here
            pass
        finally:
            self.context.observed.set()

    def job(self) -> dict:
        """What every child of this run is told, besides its definitions and steps."""
        return {"n_class": self.context.n_class, "seed": self.context.seed, "device": self.runtime.device,
                "output_sizes": checks.OUTPUT_SIZES, "equivalence_size": checks.EQUIVALENCE_SIZE}

    def observe_reference(self) -> dict:
        """The reference's observations for this run's seed, made once by a child of the warm worker
        as a submission's are (the grading process never imports torch); submissions wait for it
        unless :attr:`children_kept_apart`. What it could not observe is computed in this
        process when first needed."""
        steps = [{"id": f"outputs-{kind}", "op": "outputs", "kind": kind} for kind in MODEL_CLASSES]
        steps.append({"id": "copy", "op": "expected_copy", "kind": "fcn32s"})
        expected = {"copy": (CopyParams,), **{f"outputs-{kind}": (Outputs,) for kind in MODEL_CLASSES}}
        chunks = [{**vars(c), "index": i} for i, c in enumerate(extract(REFERENCE_SOURCE).chunks)]
        cores = len(os.sched_getaffinity(0))
        limits = Limits(threads=max(1, cores // 2) if self.children_kept_apart else cores,
                        memory_gb=self.limits.memory_gb)
        folder = self.runtime.sandboxes / f"reference-{secrets.token_hex(8)}"  # unguessable, as every sandbox's
        try:
            result = sandbox.run(self.runtime, folder, chunks, steps, limits, self.job(), expected)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        observed = {step.removeprefix("outputs-"): outcome.record for step, outcome in result.steps.items()
                    if outcome.record is not None and not isinstance(outcome.record, Failure)}
        return {kind: record for kind, record in observed.items() if not getattr(record, "error", "")}

    def close(self) -> None:
        self.runtime.close()
        tempdirs.remove(self.workdir)


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
        files = []
        # links are not followed: a linked folder is not searched, a linked file is refused when read
        # (it could point at the grader's own files: the reference solution)
        for folder, subfolders, names in os.walk(path, followlinks=False):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__")
            files += [Path(folder) / n for n in names if n.endswith((".ipynb", ".py")) and not n.startswith(".")]
        files.sort()
    else:
        raise FileNotFoundError(f"{path} is neither a submission file nor a folder of them.")

    def student(f: Path) -> str:
        parts = f.parts
        if "submitted" in parts[:-2]:
            return parts[len(parts) - 1 - parts[::-1].index("submitted") + 1]
        rel = f.relative_to(base).parts
        return rel[0] if len(rel) >= 3 else "__".join(f.relative_to(base).with_suffix("").parts)
    found = [(atomic.name_text(student(f)), f) for f in files]
    ids = [s for s, _ in found]
    # two files of one student: keep both, named by their paths
    return [(s if ids.count(s) == 1 else atomic.name_text("__".join(f.relative_to(base).with_suffix("").parts)), f)
            for s, f in found]


def find_checkpoints(checkpoints: Path, student: str) -> dict[str, Path | None]:
    """Where each model's weights are: DIR/<student>/**/NAME, else DIR/NAME."""
    found = {}
    for model, name in CHECKPOINT_NAMES.items():
        hits = sorted((checkpoints / student).rglob(name)) if (checkpoints / student).is_dir() else []
        hits = hits or ([checkpoints / name] if (checkpoints / name).is_file() else [])
        found[model] = hits[0] if hits else None
    return found


def _result(name: str, passed: bool, message: str, status: str | None = None) -> dict:
    item = ITEMS[name]
    return {"name": name, "title": item.title, "model": item.model, "max_score": item.points,
            "score": item.points if passed else 0, "status": status or ("passed" if passed else "failed"),
            "message": message}


def _judge(item, outcome: sandbox.StepOutcome, run: GradingRun) -> dict:
    record = outcome.record
    if record is None:
        return _result(item.name, False, outcome.failure)
    if isinstance(record, Failure):
        return _result(item.name, False, record.message)
    try:
        message = item.check(record, run.context)
    except checks.CheckFailed as err:
        return _result(item.name, False, str(err))
    except Exception as err:  # a well-formed record that makes no sense
        return _result(item.name, False, f"the grader could not judge what was observed ({type(err).__name__}: {err}).")
    return _result(item.name, True, message)


def _keep_scores(report: dict, kind: str, scores: dict, first_maps: list) -> None:
    report.setdefault("metrics", {})[kind] = scores
    report.setdefault("_predictions", {})[kind] = first_maps[:3]  # for the feedback page


def _judge_trained(item, run: GradingRun, report: dict, folder: Path | None, weights: Path | None,
                   outcome: sandbox.StepOutcome | None, checkpoints: Path | None, stopped: str) -> dict:
    """An mIoU item: from the submitted predictions when there are any (cross-checked against the
    weights' when the child evaluated them), else from the weights alone."""
    kind = item.model
    recomputed = outcome.record.maps if outcome is not None and isinstance(outcome.record, Predictions) \
        and not outcome.record.error else None
    if folder is not None and run.labels is not None:
        try:
            meta, maps, scores = trained.read_and_judge(folder, kind, run.labels)
            _keep_scores(report, kind, scores, [maps[i] for i in run.labels.ids])
            if recomputed is not None:
                report["notes"].append(trained.cross_check(kind, meta, maps, recomputed, run.evalset.ids,
                                                           run.evalset.scale, weights))
            return _result(item.name, True, "from the submitted predictions: " + checks.judge_miou(kind, scores))
        except trained.Flagged as err:
            return _result(item.name, False, f"flagged for review: {err}", FLAGGED)
        except checks.CheckFailed as err:
            return _result(item.name, False, f"from the submitted predictions: {err}")
    if outcome is not None:
        if recomputed is not None:
            try:
                _keep_scores(report, kind, checks.score_predictions(recomputed, run.context.labels), recomputed)
            except checks.CheckFailed:
                pass
        return _judge(item, outcome, run)
    if weights is not None and run.evalset is not None:  # the child stopped before it evaluated them
        return _result(item.name, False, f"not graded: {stopped or 'the check did not run'}")
    files = f"outputs/{kind}_predictions.npz and .json"
    if folder is not None:
        return _result(item.name, False, "not graded: predictions submitted, but the run has no labels to score them "
                                         "(--data DIR or FCNKIT_DATA).", NOT_GRADED)
    if run.labels is not None:
        return _result(item.name, False, f"no {files} submitted (the notebook writes them when it trains "
                                         f"{MODEL_CLASSES[kind]}).")
    if checkpoints is not None:
        return _result(item.name, False, f"no {CHECKPOINT_NAMES[kind]} found for {report['student']} in {checkpoints}.")
    return _result(item.name, False, "not graded: no trained results given (submitted predictions are scored with "
                                     "--data DIR or FCNKIT_DATA; weights with --checkpoints DIR).", NOT_GRADED)


def grade_submission(student: str, path: Path, checkpoints: Path | None = None, evalset: EvalSet | None = None,
                     device: str = "cpu", limits: Limits = Limits(), only: list[str] | None = None,
                     run: GradingRun | None = None) -> dict:
    """Grade one submission file; never raises for anything the submission does. Raises GraderError
    when the grader fails on it (the caller reports it as not graded, see :func:`not_graded`).

    ``only`` restricts grading to some rubric items (the others are reported as not graded). Without
    ``run``, a grading run is started for this submission alone."""
    if run is None:
        run = GradingRun.start(evalset, device, limits)
        try:
            return grade_submission(student, path, checkpoints, evalset, device, limits, only, run)
        finally:
            run.close()
    start = time.perf_counter()
    report = {"student": student, "submission": str(path), "notes": [], "checks": [], "seed": run.context.seed,
              "isolation": asdict(run.runtime.isolation)}
    weights = find_checkpoints(checkpoints, student) if checkpoints is not None else {}
    predictions = {kind: trained.find_predictions(Path(path), kind, student, checkpoints) for kind in MODEL_CLASSES}
    items = [i for i in RUBRIC if (not i.needs_weights or (weights.get(i.model) and run.evalset))
             and (only is None or i.name in only)]
    steps = {}
    for item in items:
        step = {"id": f"{item.observes}-{item.model}", "op": item.observes, "kind": item.model}
        if item.observes == "predict":
            step["checkpoint"] = f"checkpoint-{item.model}"
        steps[step["id"]] = step
    outcomes: dict[str, sandbox.StepOutcome] = {}
    stopped = ""
    phases = report["_phases"] = {}  # wall time by phase, for bench/grading_speed.py
    try:
        with phase("reading the notebook", students=(SubmissionError,)):
            extracted = extract(path)
        report["notes"] += extracted.notes
    except SubmissionError as err:  # the student's file: a 0 with the reason
        extracted, stopped = None, str(err)
        report["notes"].append(stopped)
    phases["extraction"] = time.perf_counter() - start
    if extracted is not None and steps:
        # an unguessable name: where the kernel cannot keep children apart, none can make a later one's first
        folder = run.runtime.sandboxes / f"submission-{next(run.counter)}-{secrets.token_hex(8)}"
        files = {}
        try:
            job = run.job()
            chunks = [{**vars(c), "index": i} for i, c in enumerate(extracted.chunks)]
            for sid, s in list(steps.items()):  # the child gets these open, not their paths
                if "checkpoint" in s:
                    try:  # a pipe would block this process; a link could hand the child any file (the labels)
                        files[s["checkpoint"]] = open_regular(weights[s["kind"]])
                    except UnreadableFile as err:
                        outcomes[sid] = sandbox.StepOutcome(failure=f"{CHECKPOINT_NAMES[s['kind']]} not read: {err}")
                        del steps[sid]
                        continue
                    if "images" not in files:
                        files["images"] = os.open(run.evalset.images_file, os.O_RDONLY)
            expected = {sid: (RECORDS[RECORD_TYPES[s["op"]]],) for sid, s in steps.items()}
            if not run.children_kept_apart:
                run.context.observed.wait()
            with phase("running the submission's child"), run.slots:
                result = sandbox.run(run.runtime, folder, chunks, list(steps.values()), run.limits, job, expected,
                                     files)
            if result.stopped and "start" not in result.seconds:  # no child of it ever started: nothing it did
                raise GraderError("starting the grading child", result.stopped)
            outcomes, stopped = {**outcomes, **result.steps}, result.stopped
            report["notes"] += result.notes
            phases.update(result.seconds)
        finally:
            for fd in files.values():
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
    judging = time.perf_counter()
    with phase("judging"):
        _judge_all(report, run, items, outcomes, predictions, weights, checkpoints, stopped, only)
    phases["judging"] = time.perf_counter() - judging
    report["_seconds"] = round(time.perf_counter() - start, 1)  # keys with _ stay out of the JSON
    return report


def _judge_all(report: dict, run: GradingRun, items, outcomes, predictions, weights, checkpoints, stopped, only):
    for item in RUBRIC:
        step = f"{item.observes}-{item.model}"
        if item.needs_weights:
            report["checks"].append(_judge_trained(item, run, report, predictions[item.model], weights.get(item.model),
                                                   outcomes.get(step) if item in items else None, checkpoints, stopped))
        elif only is not None and item.name not in only:
            report["checks"].append(_result(item.name, False, "not graded in this run.", NOT_GRADED))
        elif step in outcomes and item in items:
            report["checks"].append(_judge(item, outcomes[step], run))
        else:
            report["checks"].append(_result(item.name, False, f"not graded: {stopped or 'the check did not run'}"))
    report["score"] = sum(c["score"] for c in report["checks"])
    report["max_score"] = sum(i.points for i in RUBRIC)
    report["graded_max_score"] = sum(c["max_score"] for c in report["checks"] if c["status"] != NOT_GRADED)


def grade_all(submissions: list[tuple[str, Path]], checkpoints: Path | None = None, evalset: EvalSet | None = None,
              device: str = "cpu", jobs: int = 1, limits: Limits = Limits(), progress=None,
              run: GradingRun | None = None) -> list[dict]:
    """Grade ``(student, file)`` pairs (see find_submissions) with ``jobs`` children at a time (one
    where the machine cannot keep children apart: :attr:`GradingRun.children_kept_apart`)."""
    owned = run is None
    run = run or GradingRun.start(evalset, device, limits, jobs=jobs)
    jobs = jobs if run.children_kept_apart else 1

    def one(entry):
        try:  # each submission is its own failure boundary: a grader error costs it, not the class
            report = grade_submission(*entry, checkpoints=checkpoints, evalset=evalset, device=device, limits=limits,
                                      run=run)
        except Exception as err:
            report = not_graded(*entry, err, run.context.seed, asdict(run.runtime.isolation))
        if progress:
            progress(report)
        return report
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, submissions))
    finally:
        if owned:
            run.close()
