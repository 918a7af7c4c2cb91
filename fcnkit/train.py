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


def fit(model: nn.Module, train_loader, val_loader, *, n_class: int, epochs: int,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-4, scheduler=None,
        test_loader=None, device: str | torch.device = "auto", amp: bool = False,
        max_steps: int | None = None, progress: bool = True) -> FitResult:
    """Train with cross-entropy (ignoring IGNORE_INDEX), validate after every epoch, keep the best.

    Args:
        optimizer: defaults to Adam(lr), the original course recipe.
        scheduler: stepped once per optimisation step (e.g. OneCycleLR), if given.
        test_loader: evaluated once, with the best model, after training.
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        max_steps: stop each epoch after this many batches (for quick checks).

    Each history entry holds epoch, train loss, validation pixel accuracy and mIoU, and seconds.
    """
    device = resolve_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    use_amp = amp and device.type == "cuda"
    result = FitResult(model=model)
    best_state = None
    for epoch in range(1, epochs + 1):
        model.train()
        start, total, count = time.perf_counter(), 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress,
                   total=min(len(train_loader), max_steps or len(train_loader)))
        for step, (images, labels) in enumerate(bar):
            if max_steps is not None and step >= max_steps:
                break
            images, labels = images.to(device), labels.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = criterion(model(images).float(), labels)
            if not math.isfinite(loss.item()):
                raise NonFiniteLoss(
                    f"loss is {loss.item()} at epoch {epoch}, step {step}: lower the learning rate, "
                    f"check the weight initialisation (e.g. the bilinear upsampling), or turn amp off."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.3f}")
        val = evaluate(model, val_loader, n_class, device)
        entry = {"epoch": epoch, "loss": total / max(count, 1), "val_pixel_acc": val["pixel_acc"],
                 "val_miou": val["mean_iou"], "seconds": time.perf_counter() - start}
        result.history.append(entry)
        if progress:
            print(f"epoch {epoch}: loss {entry['loss']:.4f}  val acc {val['pixel_acc']:.4f}  "
                  f"val mIoU {val['mean_iou']:.4f}  ({entry['seconds']:.0f} s)")
        if best_state is None or val["mean_iou"] > result.best_val_miou:
            result.best_epoch, result.best_val_miou = epoch, val["mean_iou"]
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    if best_state is not None:
        model.load_state_dict(best_state)
    if test_loader is not None:
        result.test = evaluate(model, test_loader, n_class, device)
    return result


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
