"""The reference benchmark: FCN-32s scratch, FCN-32s ImageNet and FCN-8s ImageNet, each with the original
recipe and with ours, trained at once (six processes sharing one GPU, and two more: the original recipe's
ImageNet runs with a second seed) within a wall-clock budget; then the grading benchmark on the same
machine and the grader's own evaluation of the trained weights.

    python bench/reference_gpu.py --out DIR [--budget-s 500] [--init PATH] [--data DIR] [--scale 0.5]
    python bench/reference_gpu.py --rehearse --out DIR      # the whole pipeline at toy scale, on the CPU
    python bench/reference_gpu.py --pack DIR                # what bench/gpu_session.sh carries to a GPU
    python bench/reference_gpu.py --flops                   # the arithmetic of an epoch, and its time at best

What it does, in order (docs/results.md says how to read it):
1. decodes every split once into DIR/data (memory-mapped .npy files the processes share read-only);
2. starts the eight trainings; each plans its epochs from its first timed epoch so that all end before the
   training deadline (the budget less the time kept for steps 3 and 4), writes DIR/<run>/metrics.json after
   every epoch (so a command cut short still leaves what finished) and its best weights at the end;
3. runs bench/grading_speed.py (100 submissions; --device cuda on a GPU);
4. grades the reference solution with --checkpoints DIR/crosscheck/checkpoints: the grader's own test mIoU of
   the trained weights, beside the one training measured;
5. prints the markdown tables of docs/results.md and writes them to DIR/tables.md, with DIR/summary.json.

On CUDA the runs use what fcnkit.train.fit turns on there (bf16 autocast, channels-last, one host sync per
50 steps), the original recipe included: that is what the notebook's students get. --init takes a VGG-16
state_dict path for offline machines (the features-only file, float16 or float32).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs from a bare checkout (the GPU machine installs nothing)

import torch  # noqa: E402

from fcnkit.data import (CLASS_NAMES, MEAN, N_CLASS, STD, Augment, CMPFacade, DecodedPairs, cmp_splits,  # noqa: E402
                         pad_collate)

RUNS = [  # (model, init, recipe): the six rows of docs/results.md, in its order
    ("fcn32s", "scratch", "original"), ("fcn32s", "imagenet", "original"), ("fcn8s", "imagenet", "original"),
    ("fcn32s", "scratch", "improved"), ("fcn32s", "imagenet", "improved"), ("fcn8s", "imagenet", "improved"),
]
# The original recipe from ImageNet once more, with another seed: the spread the thresholds are set with
# (docs/results.md, "Grading thresholds")
SEED_RUNS = [("fcn32s", "imagenet", "original"), ("fcn8s", "imagenet", "original")]
LEVELS = (0.3, 0.4, 0.5, 0.55, 0.6)  # validation mIoU levels whose training time is recorded
SPLIT_NAMES = ("train", "val", "test")
PACK_QUALITY = 90  # JPEG quality of the packed half-resolution images (docs/results.md: why, and what it changes)


@dataclass
class Settings:
    """How big a benchmark is: the real one, or the rehearsal's toy scale."""
    budget_s: float = 500.0  # the whole run, wall clock
    epochs: int = 25
    scale: float = 0.5
    max_steps: int | None = None  # batches per epoch at most
    subset: tuple[int, int, int] | None = None  # train, val, test images taken from the dataset (the rehearsal's)
    grading_sizes: str = "100"
    grading_reserve_s: float = 90.0  # kept from the budget for the grading benchmark
    crosscheck_reserve_s: float = 75.0  # ... and for the grader's evaluation of the weights
    grace_s: float = 30.0  # a run past its deadline is stopped this long after it
    long_run: str | None = None  # a run given no time beyond its first epoch (the rehearsal's: it must be cut)
    score_only: bool = False  # train only the score layers (the rehearsal: eight VGG-16s in CI's memory)
    second_seeds: bool = True  # SEED_RUNS too (--one-seed: six runs, more GPU time for each)
    only: tuple[str, ...] = ()  # run names (--runs): these alone, the whole GPU shared among fewer
    crop: int | None = None  # crops of the improved recipe at most this size (the rehearsal's tiny inputs)
    floor_repeats: int = 5  # the grading benchmark's timed bare forward passes (its floor: the fastest)


# The rehearsal's budget is a ceiling (each step takes what it needs: under a minute on 2 free cores), set
# high so that a busy CI machine does not cut what the test checks.
REHEARSAL = Settings(budget_s=1200.0, epochs=2, scale=0.125, max_steps=1, subset=(2, 1, 1), grading_sizes="1", floor_repeats=1,
                     grading_reserve_s=300.0, crosscheck_reserve_s=300.0, grace_s=30.0, crop=32,
                     long_run="fcn8s_imagenet_improved", score_only=True, second_seeds=False,
                     # three of the six runs, each model, init and recipe among them (the others, and the second
                     # seeds, are the same paths with other values), through --runs' selection
                     only=("fcn32s_scratch_original", "fcn8s_imagenet_original", "fcn8s_imagenet_improved"))


@dataclass
class RunSpec:
    """What one training process does (written as JSON for it)."""
    name: str
    model: str
    init: str
    recipe: str
    epochs: int
    data: str  # the decoded splits (DecodedPairs.save)
    out: str
    deadline: float  # time.time() by which the run must have finished, test evaluation included
    device: str
    scale: float
    max_steps: int | None
    threads: int
    loader_workers: int
    score_only: bool
    crop: int | None = None  # smaller crops than the recipe's (the rehearsal)
    seed: int = 0


def run_name(model: str, init: str, recipe: str, seed: int = 0) -> str:
    return f"{model}_{'scratch' if init == 'scratch' else 'imagenet'}_{recipe}" + (f"_seed{seed}" if seed else "")


def all_runs(second_seeds: bool = True, only: tuple[str, ...] = ()) -> list[tuple[str, str, str, int]]:
    """(model, init, recipe, seed) of every training process: the six, then the second seeds; those
    named in ``only`` alone when it names any."""
    runs = [(*run, 0) for run in RUNS] + ([(*run, 1) for run in SEED_RUNS] if second_seeds else [])
    return [run for run in runs if not only or run_name(*run) in only]


def plan_epochs(asked: int, done: int, epoch_s: float, remaining_s: float) -> int:
    """How many epochs a run can finish: ``done`` took ``epoch_s`` each (the first timed epoch: the
    slowest, as it pays for warm-up and shares the GPU with every other run), ``remaining_s`` are
    left. Never fewer than ``done``, never more than ``asked``."""
    if epoch_s <= 0:
        return asked
    return max(done, min(asked, done + int(max(remaining_s, 0.0) // epoch_s)))


class Replannable:
    """A learning-rate schedule that can be re-planned for fewer steps part-way (a one-cycle schedule
    over the epochs a run will really have); ``fit`` only calls ``step``."""

    def __init__(self, optimizer, max_lrs: list[float], total_steps: int):
        self.optimizer, self.max_lrs, self.done = optimizer, max_lrs, 0
        self.inner = self._one_cycle(total_steps)

    def _one_cycle(self, total_steps: int):
        return torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=self.max_lrs,
                                                   total_steps=max(total_steps, 1), pct_start=0.1)

    def step(self) -> None:
        self.done += 1
        if self.done < self.inner.total_steps:  # OneCycleLR refuses a step past its last
            self.inner.step()

    def replan(self, total_steps: int) -> None:
        """The same one-cycle shape over ``total_steps``, continued from the steps already taken."""
        self.inner = self._one_cycle(total_steps)
        for _ in range(min(self.done, total_steps - 1)):
            self.inner.step()


def write_json(path: Path, data) -> None:
    """Written whole (a temporary file, then renamed): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- one training (a process of its own) -------------------------------------------------------------

def train_run(spec: RunSpec) -> dict:
    """Train one configuration until it is done or its deadline comes; metrics after every epoch."""
    from torch.utils.data import DataLoader

    from autograder.reference.train import RECIPES, _optimizer, build
    from fcnkit.train import fit, resolve_device, save_checkpoint, seed_everything

    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    device = resolve_device(spec.device)
    # amp=True: fit's default, what a student's notebook gets on a GPU; the reference recipes predate it
    recipe = dataclasses.replace(RECIPES[spec.recipe], amp=True)
    if spec.score_only:
        recipe = dataclasses.replace(recipe, trainable=("score",))
    if spec.crop and recipe.crop:
        recipe = dataclasses.replace(recipe, crop=min(recipe.crop, spec.crop))
    # cuDNN's autotuner stays off (torch's default): it pays again for every input shape, and the original
    # recipe's 500 training images and every validation and test image come in about 350 shapes
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    augment = Augment(crop=recipe.crop) if recipe.augment else None
    splits = {name: DecodedPairs.open(spec.data, name, augment if name == "train" else None) for name in SPLIT_NAMES}
    cuda = device.type == "cuda"
    loaders = {name: DataLoader(data, batch_size=recipe.batch_size if name == "train" else 1, shuffle=name == "train",
                                collate_fn=pad_collate, num_workers=spec.loader_workers if name == "train" else 0,
                                pin_memory=cuda, persistent_workers=spec.loader_workers > 0 and name == "train")
               for name, data in splits.items()}
    net = build(spec.model, spec.init)
    optimizer = _optimizer(net, recipe)
    steps_per_epoch = min(len(loaders["train"]), spec.max_steps or len(loaders["train"]))
    scheduler = None
    if recipe.schedule == "onecycle":
        scheduler = Replannable(optimizer, [g["lr"] for g in optimizer.param_groups], spec.epochs * steps_per_epoch)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    # the test split, evaluated once at the end, and saving the weights take about this long
    final_reserve = lambda val_s: val_s * len(splits["test"]) / max(len(splits["val"]), 1) + 10.0  # noqa: E731
    state = {"name": spec.name, "model": spec.model, "init": spec.init, "recipe": asdict(recipe),
             "epochs_asked": spec.epochs, "epochs_planned": spec.epochs, "shortened": False, "finished": False,
             "image_scale": spec.scale, "train_images": len(splits["train"]), "steps_per_epoch": steps_per_epoch,
             "device": torch.cuda.get_device_name(device) if cuda else "cpu", "history": [],
             "deadline": spec.deadline}

    def after_epoch(entry: dict) -> bool:
        history = state["history"]
        history.append(entry)
        done = len(history)
        remaining = spec.deadline - time.time() - final_reserve(entry["seconds"] - entry["train_seconds"])
        if done == 1:
            state["first_epoch_s"] = entry["seconds"]
            state["epochs_planned"] = plan_epochs(spec.epochs, 1, entry["seconds"], remaining)
            if state["epochs_planned"] < spec.epochs and scheduler is not None:
                scheduler.replan(state["epochs_planned"] * steps_per_epoch)
        elif done < state["epochs_planned"] and remaining < entry["seconds"]:  # slower than planned
            state["epochs_planned"] = done
        state["shortened"] = state["epochs_planned"] < spec.epochs
        _summarise(state, device)
        write_json(out / "metrics.json", state)
        return done >= state["epochs_planned"]

    start = time.perf_counter()
    result = fit(net, loaders["train"], loaders["val"], n_class=N_CLASS, epochs=spec.epochs, optimizer=optimizer,
                 scheduler=scheduler, test_loader=loaders["test"], device=device, max_steps=spec.max_steps,
                 progress=False, after_epoch=after_epoch)
    state["train_seconds"] = time.perf_counter() - start
    checkpoint = save_checkpoint(out / f"{spec.model}.pt", result.model, n_class=N_CLASS, epoch=result.best_epoch,
                                 val_miou=result.best_val_miou, scale=spec.scale, recipe=recipe.name, init=spec.init)
    state.update(test=result.test, best_epoch=result.best_epoch, best_val_miou=result.best_val_miou,
                 checkpoint=str(checkpoint), finished=True)
    _summarise(state, device)
    write_json(out / "metrics.json", state)
    return state


def _summarise(state: dict, device: torch.device) -> None:
    history = state["history"]
    state["epochs_done"] = len(history)
    state["seconds_per_epoch"] = sum(e["seconds"] for e in history) / max(len(history), 1)
    if "best_val_miou" not in state or not state["finished"]:
        best = max(history, key=lambda e: e["val_miou"])
        state["best_val_miou"], state["best_epoch"] = best["val_miou"], best["epoch"]
    seconds, reached = 0.0, {}
    for entry in history:  # training time until the validation mIoU first reaches each level
        seconds += entry["seconds"]
        for level in LEVELS:
            if entry["val_miou"] >= level:
                reached.setdefault(str(level), round(seconds, 1))
    state["seconds_to_val_miou"] = reached
    state["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


# --- the whole benchmark ------------------------------------------------------------------------------

def decode(data_root, scale: float, folder: Path) -> dict[str, int]:
    """Decode each split once (at ``scale``) into ``folder``; the number of images of each."""
    splits = cmp_splits(data_root)
    for name in SPLIT_NAMES:
        DecodedPairs.from_dataset(CMPFacade(splits[name], scale=scale)).save(folder, name)
    return {name: len(splits[name]) for name in SPLIT_NAMES}


def subset_root(data_root, sizes: tuple[int, int, int], folder: Path) -> Path:
    """A dataset folder holding the first images of each split of ``data_root`` (copies, and split
    files naming them): what the rehearsal trains on, and what the grader evaluates it on."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "splits").mkdir(parents=True)
    for name, size in zip(SPLIT_NAMES, sizes):
        images = cmp_splits(data_root)[name][:size]
        for jpg in images:
            (folder / jpg.parent.name).mkdir(exist_ok=True)
            for source in (jpg, jpg.with_suffix(".png")):
                shutil.copyfile(source, folder / jpg.parent.name / source.name)
        (folder / "splits" / f"{name}.txt").write_text("".join(f"{p.stem}\n" for p in images), encoding="utf-8")
    return folder


def stand_in_weights(path: Path) -> Path:
    """A features-only VGG-16 state_dict of seeded random values, in float16 like the packed ImageNet file:
    the rehearsal loads it through the same code path (the ImageNet weights are not bundled)."""
    from torchvision.models import vgg16
    torch.manual_seed(0)
    features = vgg16().features
    torch.save({k: v.half() for k, v in features.state_dict().items()}, path)
    return path


def start_runs(args, settings: Settings, data: Path, deadline: float, device: str) -> list[tuple[RunSpec, subprocess.Popen]]:
    cores = len(os.sched_getaffinity(0))
    cuda = device == "cuda"
    started = []
    runs = all_runs(settings.second_seeds, settings.only)
    for model, init, recipe, seed in runs:
        name = run_name(model, init, recipe, seed)
        spec = RunSpec(name=name, model=model, init="scratch" if init == "scratch" else args.init, recipe=recipe,
                       epochs=settings.epochs, data=str(data), out=str(args.out / name),
                       deadline=time.time() if name == settings.long_run else deadline, device=device,
                       scale=settings.scale, max_steps=settings.max_steps,
                       # on a GPU each process needs a core for itself and a loader process for augmentation
                       threads=max(1, cores // (2 * len(runs))) if cuda else max(1, cores // len(runs)),
                       loader_workers=1 if cuda and recipe == "improved" else 0, score_only=settings.score_only,
                       crop=settings.crop, seed=seed)
        Path(spec.out).mkdir(parents=True, exist_ok=True)
        spec_file = Path(spec.out) / "spec.json"
        write_json(spec_file, asdict(spec))
        log = open(Path(spec.out) / "log.txt", "w", encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(spec.threads)}
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_file)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        started.append((spec, proc))
    return started


def wait_runs(started, until: float) -> dict[str, str]:
    """Wait for every run until ``until``; stop those still going. Each run's fate."""
    fate = {}
    for spec, proc in started:
        try:
            code = proc.wait(timeout=max(until - time.time(), 0.1))
            fate[spec.name] = "finished" if code == 0 else f"failed (exit {code}): see {spec.out}/log.txt"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group: the run and its loader processes
            proc.wait()
            fate[spec.name] = "stopped at the deadline"
    return fate


def grading_benchmark(sizes: str, device: str, out: Path, timeout: float, floor_repeats: int = 5) -> dict:
    """bench/grading_speed.py, its figures as JSON; a note instead if it could not finish."""
    command = [sys.executable, str(REPO / "bench" / "grading_speed.py"), "--device", device, "--sizes", sizes,
               "--floor-repeats", str(floor_repeats), "--json", str(out / "grading_speed.json")]
    return _bounded(command, out / "grading_speed.txt", timeout, out / "grading_speed.json")


def crosscheck(started, data_root, scale: float, device: str, out: Path, timeout: float) -> dict:
    """Grade the reference solution with the trained weights (--checkpoints): the grader's test mIoU of
    each checkpoint, to set beside what training measured. Students: one per init and recipe."""
    from autograder.catalogue import sources
    folder = out / "crosscheck"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "submissions").mkdir(parents=True)
    for spec, _ in started:
        checkpoint = Path(spec.out) / f"{spec.model}.pt"
        if spec.seed or not checkpoint.is_file():  # the second seeds: the same code path, twice
            continue
        student = spec.name.replace(f"{spec.model}_", "")  # e.g. imagenet_original: its fcn32s and fcn8s
        (folder / "submissions" / f"{student}.py").write_text(sources()["reference"], encoding="utf-8")
        target = folder / "checkpoints" / student / checkpoint.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(checkpoint, target)  # a second name, not a copy of 540 MB (the grader refuses symlinks)
        except OSError:
            shutil.copyfile(checkpoint, target)
    if not any((folder / "submissions").iterdir()):
        return {"note": "no run saved its weights"}
    command = [sys.executable, "-m", "autograder", "grade", str(folder / "submissions"), "--checkpoints",
               str(folder / "checkpoints"), "--data", str(data_root), "--scale", str(scale), "--device", device,
               "--out", str(folder / "reports"), "--json", str(out / "crosscheck.json")]
    return _bounded(command, out / "crosscheck.txt", timeout, out / "crosscheck.json")


def _bounded(command: list[str], log: Path, timeout: float, result: Path) -> dict:
    if timeout < 5:
        return {"note": "not run: no time left in the budget"}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"note": f"stopped after {timeout:.0f} s (the budget): see {log.name}"}
    seconds = time.perf_counter() - start
    if code or not result.is_file():
        return {"note": f"failed (exit {code}) after {seconds:.0f} s: see {log.name}"}
    return {"seconds": seconds, "result": json.loads(result.read_text(encoding="utf-8"))}


def read_metrics(started) -> dict[str, dict | None]:
    """Each run's last metrics.json (None if it wrote none), by run name."""
    rows = {}
    for spec, _ in started:
        path = Path(spec.out) / "metrics.json"
        rows[spec.name] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return rows


def tables(summary: dict) -> str:
    """The markdown tables of docs/results.md."""
    lines = [f"device: {summary['device']}; {summary['mode']}; image scale {summary['image_scale']}; "
             f"budget {summary['budget_s']:.0f} s, whole run {summary['wall_s']:.0f} s "
             f"(decoding {summary['decode_s']:.0f} s, training {summary['train_wall_s']:.0f} s, grading "
             f"benchmark {summary['grading'].get('seconds', 0):.0f} s, cross-check "
             f"{summary['crosscheck'].get('seconds', 0):.0f} s)", ""]
    lines += ["| model | init | recipe | epochs | test pixel acc | test mIoU | best val mIoU | s / epoch | "
              "to val mIoU 0.50 | peak GPU MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    ran = [run for run in RUNS if run_name(*run) in summary["runs"]]  # all six, or those --runs named
    for model, init, recipe in ran:
        m, fate = summary["runs"][run_name(model, init, recipe)], summary["fates"][run_name(model, init, recipe)]
        label = "scratch" if init == "scratch" else "ImageNet"
        if m is None:
            lines.append(f"| {model} | {label} | {recipe} | none: {fate} | - | - | - | - | - | - |")
            continue
        epochs = f"{m['epochs_done']} of {m['epochs_asked']}" + (" (shortened)" if m["shortened"] else "")
        if not m["finished"]:
            epochs += f" ({fate}; no test score)"
        test = m.get("test") or {}
        lines.append(f"| {model} | {label} | {recipe} | {epochs} | {_f(test.get('pixel_acc'))} | "
                     f"{_f(test.get('mean_iou'))} | {_f(m.get('best_val_miou'))} | {m['seconds_per_epoch']:.1f} | "
                     f"{m['seconds_to_val_miou'].get('0.5', '-')} | {_f(m.get('peak_gpu_memory_mb'), '.0f')} |")
    lines += ["", "| model | init | recipe | " + " | ".join(CLASS_NAMES) + " |",
              "|---|---|---|" + "---|" * len(CLASS_NAMES)]
    for model, init, recipe in ran:
        m = summary["runs"][run_name(model, init, recipe)]
        ious = (m or {}).get("test", {}) or {}
        cells = " | ".join(_f(v, ".2f") for v in ious.get("per_class_iou", [None] * len(CLASS_NAMES)))
        lines.append(f"| {model} | {'scratch' if init == 'scratch' else 'ImageNet'} | {recipe} | {cells} |")
    lines += ["", "seed spread (the original recipe from ImageNet, seeds 0 and 1):", "",
              "| model | test mIoU, seed 0 | seed 1 | spread | epochs, seed 1 |", "|---|---|---|---|---|"]
    for model, init, recipe in [run for run in SEED_RUNS if run_name(*run, 1) in summary["runs"]]:
        first, second = (summary["runs"].get(run_name(model, init, recipe, seed)) for seed in (0, 1))
        scores = [((m or {}).get("test") or {}).get("mean_iou") for m in (first, second)]
        spread = abs(scores[0] - scores[1]) if None not in scores else None
        epochs = "-" if second is None else f"{second['epochs_done']} of {second['epochs_asked']}" + \
            (" (shortened)" if second["shortened"] else "")
        lines.append(f"| {model} | {_f(scores[0])} | {_f(scores[1])} | {_f(spread)} | {epochs} |")
    grading = summary["grading"]
    lines.append("")
    if "result" in grading:
        g = grading["result"]
        lines += [f"grading benchmark (`bench/grading_speed.py --device {g['device']} --sizes {summary['grading_sizes']}`); "
                  f"floor: both bare forward passes {g['floor_s']:.2f} s",
                  "", "| submissions | jobs | wall time | per minute | per submission | x floor | peak memory (PSS) |",
                  "|---|---|---|---|---|---|---|"]
        for r in g["rows"]:
            lines.append(f"| {r['submissions']} | {r['jobs']} | {r['wall_s']:.1f} s | {r['per_minute']:.1f} | "
                         f"{r['each_s']:.2f} s | {r['x_floor']:.1f} | {r['peak_gib']:.2f} GiB |")
    else:
        lines.append(f"grading benchmark: {grading['note']}")
    lines.append("")
    check = summary["crosscheck"]
    if "result" in check:
        lines += ["the grader's test mIoU of the trained weights (`--checkpoints`) beside training's own:", "",
                  "| checkpoint | test mIoU (training) | test mIoU (grader) | difference |", "|---|---|---|---|"]
        reports = check["result"] if isinstance(check["result"], list) else [check["result"]]  # one: an object
        graded = {r["student"]: r.get("metrics", {}) for r in reports}
        unscored = {(r["student"], c["model"]): c["message"] for r in reports for c in r["checks"]
                    if c["name"].endswith("_miou")}
        notes = []
        for spec_name in [run_name(*r) for r in RUNS if run_name(*r) in summary["runs"]]:
            m = summary["runs"][spec_name]
            model, student = spec_name.split("_", 1)
            ours = ((m or {}).get("test") or {}).get("mean_iou")
            theirs = graded.get(student, {}).get(model, {}).get("mean_iou")
            diff = f"{theirs - ours:+.4f}" if ours is not None and theirs is not None else "-"
            lines.append(f"| {spec_name} | {_f(ours, '.4f')} | {_f(theirs, '.4f')} | {diff} |")
            if theirs is None and (student, model) in unscored:
                notes.append(f"- {spec_name}: the grader said: {unscored[student, model]}")
        lines += ["", *notes] if notes else []
    else:
        lines.append(f"cross-check of the trained weights: {check['note']}")
    return "\n".join(lines) + "\n"


def _f(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def pack(folder: Path, data_root, weights, scale: float = 0.5) -> Path:
    """What a GPU session carries (under the device tool's 64 MiB): the course split at ``scale``,
    images re-encoded as JPEG (quality PACK_QUALITY, no chroma subsampling), labels as exact PNGs, and
    the VGG-16 conv weights in float16 (bf16 autocast rounds them further on every forward pass)."""
    from PIL import Image
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    splits = cmp_splits(data_root)
    (folder / "data" / "splits").mkdir(parents=True)
    for name, images in splits.items():
        dataset = CMPFacade(images, scale=scale)
        for jpg, (x, y) in zip(images, (dataset[i] for i in range(len(dataset)))):
            target = folder / "data" / jpg.parent.name / jpg.name
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = ((x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(target, quality=PACK_QUALITY, subsampling=0)
            Image.fromarray((y.numpy() + 1).astype("uint8")).save(target.with_suffix(".png"))
        (folder / "data" / "splits" / f"{name}.txt").write_text("".join(f"{p.stem}\n" for p in images))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    torch.save({k: v.half() for k, v in state.items()}, folder / "vgg16_features_fp16.pth")
    write_json(folder / "data" / "PACK.json", {"image_scale": scale, "jpeg_quality": PACK_QUALITY, "source": str(data_root),
                                      "weights": str(weights), "images": sum(len(v) for v in splits.values())})
    return folder


def flops(data_root, scale: float, rate_tflops: float = 790.0) -> str:
    """FLOPs of one epoch of each recipe (forward and backward of every training batch, forward of the
    validation split), counted by torch on the meta device at the dataset's own image sizes, and the
    seconds they take at ``rate_tflops`` (the H200's bf16 matrix rate measured on the device machine)."""
    from collections import Counter

    from torch.utils.flop_counter import FlopCounterMode

    from autograder.reference.models import MODELS
    from autograder.reference.train import RECIPES
    from fcnkit.splits import scaled_size
    from PIL import Image

    @functools.lru_cache(maxsize=None)  # FCN-32s from scratch and from ImageNet: the same arithmetic
    def count(model: str, batch: int, size: tuple[int, int], train: bool) -> float:
        with torch.device("meta"):
            net, x = MODELS[model](N_CLASS), torch.empty(batch, 3, *size)
        with FlopCounterMode(display=False) as counter:
            if train:
                net(x).float().sum().backward()
            else:
                with torch.no_grad():
                    net(x)
        return counter.get_total_flops()

    splits = cmp_splits(data_root)
    sizes = {name: Counter(scaled_size(*Image.open(p).size[::-1], scale) for p in splits[name]) for name in ("train", "val")}
    lines = [f"one epoch at image scale {scale} ({len(splits['train'])} training, {len(splits['val'])} validation "
             f"images, {len(sizes['train'])} training sizes); seconds at {rate_tflops:.0f} TFLOP/s", "",
             "| model | recipe | TFLOP / epoch (train + val) | TFLOP per step | s / epoch at that rate | 25 epochs |",
             "|---|---|---|---|---|---|"]
    total = 0.0
    for model, init, recipe, seed in all_runs():
        r = RECIPES[recipe]
        if r.crop:  # batches of fixed-size crops
            steps = -(-len(splits["train"]) // r.batch_size)
            train = steps * count(model, r.batch_size, (r.crop, r.crop), True)
        else:
            steps = len(splits["train"])
            train = sum(n * count(model, 1, size, True) for size, n in sizes["train"].items())
        val = sum(n * count(model, 1, size, False) for size, n in sizes["val"].items())
        epoch = (train + val) / 1e12
        total += epoch
        lines.append(f"| {model} ({init}{', seed 1' if seed else ''}) | {recipe} | {epoch:.0f} | {train / steps / 1e12:.2f} | "
                     f"{epoch / rate_tflops:.2f} | {25 * epoch / rate_tflops:.0f} s |")
    lines.append(f"| all {len(RUNS) + len(SEED_RUNS)} | | {total:.0f} | | {total / rate_tflops:.2f} | "
                 f"{25 * total / rate_tflops:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "reference")
    parser.add_argument("--budget-s", type=float, help="wall-clock budget of the whole run, in seconds (default "
                                                        "500; the rehearsal's 1200, a ceiling: it takes what it needs)")
    parser.add_argument("--init", help="VGG-16 state_dict path, or imagenet (torchvision's; needs a download "
                                       "or $FCNKIT_VGG16_WEIGHTS); the rehearsal makes a seeded stand-in")
    parser.add_argument("--data", default=os.environ.get("FCNKIT_DATA"), help="dataset root (default $FCNKIT_DATA)")
    parser.add_argument("--scale", type=float, help="image scale (default 0.5; 1.0 for a --pack folder, already halved)")
    parser.add_argument("--epochs", type=int, help="epochs asked of each run (default 25)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--rehearse", action="store_true", help="the whole pipeline at toy scale on the CPU "
                                                                "(the bundled sample, a few steps, tiny images)")
    parser.add_argument("--pack", type=Path, metavar="DIR", help="write the data and weights a GPU session carries")
    parser.add_argument("--one-seed", action="store_true", help="no second seed of the original ImageNet runs "
                                                                  "(six runs: more of the GPU for each)")
    parser.add_argument("--runs", help="comma-separated run names to train, the others left out (e.g. "
                                           "fcn8s_imagenet_original,fcn8s_imagenet_original_seed1)")
    parser.add_argument("--flops", action="store_true", help="print the FLOPs of an epoch of each run and exit")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        train_run(RunSpec(**json.loads(args.worker.read_text(encoding="utf-8"))))
        return 0
    if args.flops:
        shared = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))
        print(flops(args.data or shared / "data" / "cmp_facade", args.scale or 0.5))
        return 0
    if args.pack:
        shared = Path(os.environ.get("FCNKIT_SHARED", REPO.parent / "shared"))
        folder = pack(args.pack, args.data or shared / "data" / "cmp_facade",
                      args.init or shared / "weights" / "vgg16_features_tvnorm.pth", args.scale or 0.5)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"packed {folder}: {size / 2**20:.1f} MiB")
        return 0
    return benchmark(args)


def benchmark(args) -> int:
    start = time.time()
    settings = dataclasses.replace(REHEARSAL if args.rehearse else Settings())
    for field, value in (("budget_s", args.budget_s), ("epochs", args.epochs), ("scale", args.scale)):
        if value:
            setattr(settings, field, value)
    settings.second_seeds = settings.second_seeds and not args.one_seed
    if args.runs:
        settings.only = tuple(name.strip() for name in args.runs.split(",") if name.strip())
        names = [run_name(*run) for run in all_runs(settings.second_seeds)]
        if unknown := [name for name in settings.only if name not in names]:
            raise SystemExit(f"--runs: no run named {unknown[0]!r}; the runs: {', '.join(names)}")
    budget = settings.budget_s
    device = "cpu" if args.rehearse else ("cuda" if torch.cuda.is_available() else "cpu") \
        if args.device == "auto" else args.device
    out = args.out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root = args.data
    if args.rehearse:
        from fcnkit.data import SAMPLE_ROOT
        data_root = subset_root(data_root or SAMPLE_ROOT, settings.subset, out / "sample")
        args.init = args.init or str(stand_in_weights(out / "vgg16_standin_fp16.pth"))
    args.init = args.init or "imagenet"
    print(f"decoding the splits of {data_root} at scale {settings.scale} into {out / 'data'}", flush=True)
    sizes = decode(data_root, settings.scale, out / "data")
    decoded = time.time()
    train_end = start + budget - settings.grading_reserve_s - settings.crosscheck_reserve_s - settings.grace_s
    print(f"decoded {sizes} in {decoded - start:.0f} s; training {len(all_runs(settings.second_seeds, settings.only))} runs on {device}, to end "
          f"{train_end - start:.0f} s into the budget of {budget:.0f} s", flush=True)
    started = start_runs(args, settings, out / "data", train_end, device)
    fates = wait_runs(started, train_end + settings.grace_s)
    trained = time.time()
    for name, fate in fates.items():
        print(f"{name}: {fate}", flush=True)
    print(f"training took {trained - decoded:.0f} s; grading benchmark", flush=True)
    grading = grading_benchmark(settings.grading_sizes, device, out,
                                start + budget - settings.crosscheck_reserve_s - time.time(), settings.floor_repeats)
    print("cross-check of the trained weights", flush=True)
    check = crosscheck(started, data_root, settings.scale, device, out, start + budget - time.time())
    packed = Path(data_root) / "PACK.json"  # a --pack folder: its images are already scaled
    packed = json.loads(packed.read_text(encoding="utf-8")) if packed.is_file() else None
    scale = f"{settings.scale * packed['image_scale']:g} (packed at {packed['image_scale']:g}, JPEG quality " \
            f"{packed['jpeg_quality']})" if packed else f"{settings.scale:g}"
    summary = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "mode": "rehearsal (toy scale)" if args.rehearse else "benchmark", "image_scale": scale,
               "budget_s": budget, "decode_s": decoded - start, "train_wall_s": trained - decoded,
               "wall_s": time.time() - start, "split_sizes": sizes, "grading_sizes": settings.grading_sizes,
               "settings": asdict(settings), "init": args.init, "data": str(data_root),
               "runs": read_metrics(started), "fates": fates,
               "grading": grading, "crosscheck": check}
    text = tables(summary)
    write_json(out / "summary.json", summary)
    write_text(out / "tables.md", text)
    print("\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
