"""The training loop: train, keep the best model by validation mIoU, report on the test split."""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import IGNORE_INDEX
from ._grading.diagnoses import Diagnosis
from ._grading.judges import CheckFailed
from .metrics import ConfusionMatrix


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite; the message suggests what to change."""


@torch.no_grad()
def evaluate(model: nn.Module, loader, n_class: int, device: str | torch.device = "auto",
             progress: bool = False) -> dict:
    """Evaluate ``model`` on ``loader``: pixel accuracy, mean IoU, per-class IoU (see fcnkit.metrics)."""
    device = resolve_device(device)
    model.eval()
    cm = ConfusionMatrix(n_class)
    for images, labels in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        logits = model(images.to(device))
        cm.update(logits.argmax(1), labels.to(device))
    return cm.compute()


@dataclass
class FitResult:
    """What :func:`fit` returns: the best model (by validation mIoU), its history and test scores."""
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_miou: float = float("nan")
    test: dict | None = None


@dataclass(frozen=True)
class Speedups:
    """What :func:`fit` turns on for a device: bfloat16 autocast (``autocast`` is its dtype, or None),
    the channels-last memory format (``memory_format``), and how often the loss is read back to the
    host (``sync_every`` steps: reading it waits for the GPU to finish)."""
    autocast: torch.dtype | None
    memory_format: torch.memory_format
    sync_every: int


def speedups(device: str | torch.device, amp: bool = True, channels_last: bool = True) -> Speedups:
    """What helps training on ``device`` (bench/reference_gpu.py measures it): on CUDA, bf16 autocast
    (tensor cores, no loss scaling needed) and channels-last (what cuDNN's tensor-core kernels read),
    with the loss read back every 50 steps only; on any other device nothing changes: the loss is read
    after every step (which costs nothing on the CPU), in full precision, in the default layout."""
    cuda = torch.device(device).type == "cuda"
    return Speedups(autocast=torch.bfloat16 if amp and cuda else None,
                    memory_format=torch.channels_last if channels_last and cuda else torch.contiguous_format,
                    sync_every=50 if cuda else 1)


def fit(model: nn.Module, train_loader, val_loader, *, n_class: int, epochs: int,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-4, scheduler=None,
        test_loader=None, device: str | torch.device = "auto", amp: bool = True,
        channels_last: bool = True, max_steps: int | None = None, progress: bool = True,
        after_epoch=None) -> FitResult:
    """Train with cross-entropy (ignoring IGNORE_INDEX), validate after every epoch, keep the best.

    Args:
        optimizer: defaults to Adam(lr), the original course recipe.
        scheduler: stepped once per optimisation step (e.g. OneCycleLR), if given.
        test_loader: evaluated once, with the best model, after training.
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        channels_last: the channels-last memory format on CUDA (ignored on the CPU).
        max_steps: stop each epoch after this many batches (for quick checks).
        after_epoch: called with each history entry once the epoch is validated; training stops
            after that epoch if it returns True (e.g. a time budget).

    Each history entry holds epoch, train loss, validation pixel accuracy and mIoU, and seconds
    (``train_seconds`` of them training, the rest validating). With ``progress`` it prints one line
    per epoch, with those seconds.
    """
    device = resolve_device(device)
    fast = speedups(device, amp, channels_last)
    model.to(device, memory_format=fast.memory_format)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    epoch_of = _EpochTrainer(model, train_loader, optimizer, scheduler, device, fast, max_steps, progress, epochs)
    result = FitResult(model=model)
    best_state = None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        mean_loss = epoch_of.train(epoch)
        train_seconds = time.perf_counter() - start
        val = evaluate(model, val_loader, n_class, device)
        entry = {"epoch": epoch, "loss": mean_loss, "val_pixel_acc": val["pixel_acc"],
                 "val_miou": val["mean_iou"], "seconds": time.perf_counter() - start,
                 "train_seconds": train_seconds}
        result.history.append(entry)
        if progress:
            print(f"epoch {epoch}: loss {entry['loss']:.4f}  val acc {val['pixel_acc']:.4f}  "
                  f"val mIoU {val['mean_iou']:.4f}  ({entry['seconds']:.1f} s per epoch: "
                  f"{train_seconds:.1f} s training, {entry['seconds'] - train_seconds:.1f} s validation)")
        if best_state is None or val["mean_iou"] > result.best_val_miou:
            result.best_epoch, result.best_val_miou = epoch, val["mean_iou"]
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        if after_epoch is not None and after_epoch(entry):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    if test_loader is not None:
        result.test = evaluate(model, test_loader, n_class, device)
    return result


@dataclass
class _EpochTrainer:
    """One epoch of :func:`fit`'s optimisation, with cross-entropy ignoring IGNORE_INDEX."""
    model: nn.Module
    loader: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    device: torch.device
    fast: Speedups
    max_steps: int | None
    progress: bool
    epochs: int

    def train(self, epoch: int) -> float:
        """Train one epoch; its mean loss (NonFiniteLoss when it is not finite)."""
        model, fast, device, max_steps = self.model, self.fast, self.device, self.max_steps
        criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        # the loss is summed where it is computed (a float64 sum of float32 losses: the same as summing
        # them on the host), so the GPU never waits for the host between steps
        sum_dtype = torch.float32 if device.type == "mps" else torch.float64
        model.train()
        count = 0
        total = torch.zeros((), dtype=sum_dtype, device=device)
        bar = tqdm(self.loader, desc=f"epoch {epoch}/{self.epochs}", leave=False, disable=not self.progress,
                   total=min(len(self.loader), max_steps or len(self.loader)))
        for step, (images, labels) in enumerate(bar):
            if max_steps is not None and step >= max_steps:
                break
            images = images.to(device, non_blocking=True, memory_format=fast.memory_format)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=fast.autocast or torch.bfloat16, enabled=fast.autocast is not None):
                loss = criterion(model(images).float(), labels)
            total, count = total + loss.detach().to(sum_dtype), count + 1
            if step % fast.sync_every == 0:
                seen = total.item()  # on the CPU this is every step's loss, checked before its update
                if not math.isfinite(seen):
                    raise NonFiniteLoss(
                        f"loss is {loss.item()} at epoch {epoch}, step {step}: lower the learning rate, "
                        f"check the weight initialisation (e.g. the bilinear upsampling), or turn amp off."
                    )
                bar.set_postfix(loss=f"{seen / count:.3f}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
        mean_loss = total.item() / max(count, 1)  # the one wait for the GPU in an epoch
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(
                f"the training loss became {mean_loss} during epoch {epoch}: lower the learning rate, "
                f"check the weight initialisation (e.g. the bilinear upsampling), or turn amp off."
            )
        return mean_loss


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **meta) -> Path:
    """Save ``{"state_dict", "meta"}``; ``meta`` (model class, n_class, epoch, val mIoU...) must be
    JSON-able so the file loads with ``weights_only=True``."""
    meta = {"model_class": type(model).__name__, **meta}
    json.dumps(meta)  # fails early, with the offending value, if meta is not JSON-able
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Load a checkpoint safely (``weights_only=True``); returns ``(state_dict, meta)``.

    A bare state_dict (what ``torch.save(model.state_dict())`` writes) is accepted too, with empty
    meta. If ``model`` is given the weights are loaded into it (strictly).
    """
    obj = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], obj.get("meta", {})
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, meta = obj, {}
    else:
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict; save model.state_dict().")
    if model is not None:
        model.load_state_dict(state)
    return state, meta


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a submitted checkpoint safely: a state_dict (or {"state_dict": ...}), weights only; a
    CheckFailed naming the fix when the file is missing, does not fit ``model`` or is not a state_dict."""
    try:
        load_checkpoint(path, model)
    except FileNotFoundError:
        raise CheckFailed(Diagnosis("checkpoint_missing", values={"path": path})) from None
    except RuntimeError as err:
        if "state_dict" not in str(err):
            raise
        first = str(err).strip().splitlines()
        raise CheckFailed(Diagnosis("checkpoint_fit", values={"path": path, "error": " ".join(first[:3])[:400]})) \
            from None
    except Exception as err:  # a pickled object, a corrupt file...
        raise CheckFailed(Diagnosis("checkpoint_not_state_dict", values={
            "path": path, "error": f"{type(err).__name__}: {str(err)[:200]}"})) from None
    return model
