"""A model's modules as records: each layer's type and shape (:class:`~fcnkit._grading.records.Layer`), the modules it
keeps where PyTorch does not see them, which of them ran in forward, with what (:class:`CallRecorder`), and
which maps an operation that raised was given (:class:`Operands`)."""
from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .records import Layer


def _torch_type(module: nn.Module) -> str:
    """The torch.nn class a module is (or derives from): a subclass of Conv2d counts as Conv2d."""
    for klass in type(module).__mro__:
        if klass.__module__.startswith("torch.nn.modules"):
            return klass.__name__
    return type(module).__name__


def _pair(value) -> list[int]:
    value = value if isinstance(value, (tuple, list)) else (value, value)
    return [int(v) if isinstance(v, (int, np.integer)) else -1 for v in value]


def unregistered_modules(model: nn.Module, limit: int = 20) -> list[str]:
    """Modules kept in plain lists, tuples or dicts of the model or its submodules, where PyTorch
    does not see them (``model.modules()``, ``.eval()``, ``.to()``, ``state_dict()`` skip them)."""
    registered = {id(m) for m in model.modules()}
    found = []
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            items = value.items() if isinstance(value, dict) else enumerate(value) \
                if isinstance(value, (list, tuple)) else ()
            for key, item in items:
                if isinstance(item, nn.Module) and id(item) not in registered:
                    found.append(f"{prefix + '.' if prefix else ''}{attr}[{key!r}]")
    return found[:limit]


def describe(name: str, module: nn.Module, called: bool) -> Layer:
    layer = Layer(name=name, type=_torch_type(module), called=called)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        layer.in_channels, layer.out_channels = int(module.in_channels), int(module.out_channels)
        layer.kernel_size, layer.stride = _pair(module.kernel_size), _pair(module.stride)
        layer.padding = _pair(module.padding) if not isinstance(module.padding, str) else [-1, -1]
        layer.bias = module.bias is not None
    elif isinstance(module, nn.MaxPool2d):
        layer.kernel_size, layer.stride = _pair(module.kernel_size), _pair(module.stride)
        layer.padding, layer.ceil_mode = _pair(module.padding), bool(module.ceil_mode)
    return layer


class CallRecorder:
    """Forward hooks on every module: which ran, in what order, and (for ``keep``) a copy of the
    first input and output of each (copies, because the in-place ReLU that follows rewrites them)."""

    def __init__(self, model: nn.Module, keep=lambda name, module: False):
        self.order: list[str] = []
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = []
        for name, module in model.named_modules():
            if name:
                self.handles.append(module.register_forward_hook(self._hook(name, keep(name, module))))

    def _hook(self, name: str, keep: bool):
        def hook(module, inputs, output):
            if name in self.order:
                return
            self.order.append(name)
            if keep and inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                self.inputs[name], self.outputs[name] = inputs[0].detach().clone(), output.detach().clone()
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class Operands(TorchFunctionMode):
    """While active, remembers which maps an addition (or product, concatenation...) that raised was
    given: the outputs of which layers, or crops of them, their sizes and the rule they broke
    (``failed``, in words; ``what``: the same without the sizes, e.g. "adding upscore2 and score_pool4")."""
    BINARY = {"add", "__add__", "__radd__", "add_", "__iadd__", "sub", "__sub__", "__rsub__", "sub_", "__isub__",
              "mul", "__mul__", "__rmul__", "mul_", "__imul__", "cat", "stack"}

    def __init__(self, model: nn.Module):
        super().__init__()
        self.made: dict[int, tuple[str, weakref.ref]] = {}  # id of a layer's output -> (layer, the output)
        self.failed = self.what = ""
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules() if n]

    def _hook(self, name: str):
        def hook(module, args, output):
            known = self.made.get(id(output))
            if isinstance(output, torch.Tensor) and (known is None or known[1]() is not output):
                self.made[id(output)] = (name, weakref.ref(output))  # weakly: maps are not kept alive for this;
                # the layer that made it, not the in-place ReLU after it
        return hook

    def name(self, t: torch.Tensor, sizes: bool = True) -> str:
        dims = "x".join(map(str, t.shape[2:] if t.dim() == 4 else t.shape))
        for candidate, crop in ((t, False), (t._base, True)):
            layer, made = self.made.get(id(candidate), (None, lambda: None))
            if layer is not None and made() is candidate:
                if not sizes:
                    return layer
                return f"{layer} cropped to {dims}" if crop and candidate.shape != t.shape else f"{layer}'s {dims}"
        return f"a {dims} map" if sizes else "a map"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except RuntimeError:
            what = getattr(func, "__name__", "")
            given = args[0] if what in ("cat", "stack") and args and isinstance(args[0], (list, tuple)) else args
            tensors = [a for a in given if isinstance(a, torch.Tensor)]
            if not self.failed and what in self.BINARY and len(tensors) >= 2:
                verb = ("adding" if "add" in what else "concatenating" if what == "cat" else "stacking"
                        if what == "stack" else "combining")
                rule = ("maps concatenated must have the same height and width" if what in ("cat", "stack")
                        else "maps combined element by element must have the same size")
                self.failed = f"{verb} " + " and ".join(self.name(t) for t in tensors[:3]) + f": {rule}"
                self.what = f"{verb} " + " and ".join(self.name(t, sizes=False) for t in tensors[:3])
            raise

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.made.clear()
