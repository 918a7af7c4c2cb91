"""Observing a submitted FCN: what the grading child reports, and what the notebook's own checks look at.

Everything here describes a model (its layers, output shapes, activations for given inputs and
weights) and judges nothing: the verdicts are computed from these records elsewhere (the structural
ones in :mod:`fcnkit.checks`, the rest by the grader, which holds the reference). The grader also
calls :func:`observe_outputs` on its reference model, so both sides are observed the same way.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import ctypes
import functools
import math
import mmap
import os
import weakref
import zlib

import numpy as np
import torch
from torch import nn

from .records import CopiedLayer, CopyParams, Layer, Outputs, Predictions, Structure
from .spec import MODEL_CLASSES, STAGES, VGG16_SOURCES, VGG_CONV_NAMES

NAMED = (*VGG_CONV_NAMES, "fc6", "fc7")  # layers the assignment names; the others are found by structure
MAX_UPSAMPLING_NUMEL = 2**22  # larger transposed convolutions are listed without their weights

class ObservationError(Exception):
    """The submission could not be observed (no such class, its constructor raised...): the message
    is what the student must fix."""


def raised(what: str, err: BaseException) -> str:
    hint = " Finish the parts marked YOUR CODE HERE." if isinstance(err, NotImplementedError) else ""
    return f"{what} raised {type(err).__name__}: {err}.{hint}".replace(": .", ".")[:1000]


# ----------------------------------------------------------------------------------- definitions
def run_definitions(chunks: list[dict], namespace: dict, fallback_modules=()) -> list[str]:
    """Execute extracted definitions (``{"cell", "line", "source"}``) one by one; failures become
    notes. ``from course_utils import get_upsampling_weight`` (a course module the grader lacks)
    takes the names from ``fallback_modules`` instead."""
    notes = []
    for chunk in chunks:
        note = run_chunk(chunk, namespace, fallback_modules)
        if note:
            notes.append(note)
    return notes


def run_chunk(chunk: dict, namespace: dict, fallback_modules=()) -> str:
    """Execute one chunk; return a note when it failed ("" when it ran)."""
    where = f"cell {chunk['cell']}" if chunk["cell"] else f"line {chunk['line']}"
    tree = ast.parse(chunk["source"])
    ast.increment_lineno(tree, chunk["line"] - 1)
    try:
        exec(compile(tree, f"<submission {where}>", "exec"), namespace)
    except ImportError as err:
        if not _import_from(tree.body[0], namespace, fallback_modules):
            return (f"{where}: {type(err).__name__}: {err} (the grader has torch, torchvision, numpy and "
                    f"fcnkit; helpers from other course modules are looked up in fcnkit)")
    except Exception as err:
        return f"{where}: {type(err).__name__}: {err}"[:1000]
    return ""


def _import_from(node: ast.stmt, namespace: dict, modules) -> bool:
    if not isinstance(node, ast.ImportFrom):
        return False
    for alias in node.names:
        module = next((m for m in modules if hasattr(m, alias.name)), None)
        if module is None:
            return False
        namespace[alias.asname or alias.name] = getattr(module, alias.name)
    return True


# ----------------------------------------------------------------------------------- building
INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
                  "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextlib.contextmanager
def no_default_init():
    """Skip the random initialisation of convolution weights, for models whose convolutions are
    overwritten anyway (seeded weights, a copied VGG-16): torch's default one, and ``nn.init`` calls
    on the 4-D weights of Conv2d layers (other parameters are initialised as usual). What the
    constructor copies in itself (the bilinear kernels) still happens. Transposed convolutions
    (small) start as NaN instead, and ``nn.init`` works on them: weights the constructor never
    wrote stay NaN, which tells "init_weights was not called" from "initialised the wrong way"."""
    conv = nn.modules.conv._ConvNd
    saved = {"reset_parameters": conv.reset_parameters, **{n: getattr(nn.init, n) for n in INIT_FUNCTIONS}}
    transposed: set[int] = set()  # data pointers of the transposed convolutions' weights

    def reset(module) -> None:
        if isinstance(module, nn.ConvTranspose2d) and module.weight.numel() <= MAX_UPSAMPLING_NUMEL:
            with torch.no_grad():
                module.weight.fill_(float("nan"))
            transposed.add(module.weight.data_ptr())

    def skipping(init):
        return lambda tensor, *args, **kwargs: tensor if tensor.dim() == 4 and tensor.data_ptr() not in transposed \
            else init(tensor, *args, **kwargs)
    conv.reset_parameters = reset
    for name in INIT_FUNCTIONS:
        setattr(nn.init, name, skipping(saved[name]))
    try:
        yield
    finally:
        conv.reset_parameters = saved["reset_parameters"]
        for name in INIT_FUNCTIONS:
            setattr(nn.init, name, saved[name])


def build(namespace: dict, kind: str, n_class: int, default_init: bool = True) -> nn.Module:
    """A fresh ``FCN32s`` / ``FCN8s`` from the namespace, in eval mode, built as
    ``cls(n_class=n)``, else ``cls(n)``, else ``cls()``."""
    name = MODEL_CLASSES[kind]
    cls = namespace.get(name)
    if cls is None:
        raise ObservationError(f"No class named {name} was found; define `class {name}(nn.Module)`.")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ObservationError(f"{name} must be a class deriving from torch.nn.Module.")
    errors = []
    with contextlib.nullcontext() if default_init else no_default_init():
        for args, kwargs in (((), {"n_class": n_class}), ((n_class,), {}), ((), {})):
            try:
                model = cls(*args, **kwargs)
            except TypeError as err:  # a different signature: try the next one
                errors.append(err)
                continue
            except Exception as err:
                raise ObservationError(raised(f"{name}(n_class={n_class})", err)) from None
            if not isinstance(model, nn.Module):
                raise ObservationError(f"{name}(n_class={n_class}) did not return an nn.Module.")
            return model.eval()
    raise ObservationError(f"{name} could not be built as {name}(n_class={n_class}): {errors[0]}"[:1000])


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


@contextlib.contextmanager
def large_weights_in_place(model: nn.Module):
    """While in this context, convolutions with large weights (fc6: 411 MB, fc7) run without oneDNN,
    which would copy their weights into a layout of its own on every call; torch's own convolution
    reads them where they are. The others keep oneDNN (torch's own would unfold their inputs:
    130 MB for conv1_2 behind a padding of 100)."""
    def off(module, args):
        module._fcnkit_mkldnn = torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled()
        torch._C._set_mkldnn_enabled(False)

    def back(module, args, output):
        torch._C._set_mkldnn_enabled(getattr(module, "_fcnkit_mkldnn", True))
    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.numel() >= SEED_BLOCK:
            hooks += [m.register_forward_pre_hook(off), m.register_forward_hook(back)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def forward(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    try:
        with torch.no_grad(), large_weights_in_place(model):
            out = model(x.clone())
    except Exception as err:
        raise ObservationError(raised(f"{what} on an input of shape {tuple(x.shape)}", err)) from None
    if not isinstance(out, torch.Tensor):
        raise ObservationError(f"{what} returned {type(out).__name__}; it must return a tensor of scores.")
    return out


# ----------------------------------------------------------------------------------- structure
def observe_structure(model: nn.Module, kind: str, sizes, rebuild=None) -> Structure:
    """Layers, transposed-convolution weights and output shapes of a model fresh from its constructor.
    The shapes come from the model moved to the meta device (no arithmetic), or from real tensors
    when its forward cannot run there (numpy in forward, say): ``forward_device`` says which.
    ``rebuild`` makes another fresh model for that case; without it the meta run uses a copy."""
    weights = {name: m.weight.detach().float().cpu().numpy() for name, m in model.named_modules()
               if isinstance(m, nn.ConvTranspose2d) and m.weight.numel() <= MAX_UPSAMPLING_NUMEL}
    modules = {name: m for name, m in model.named_modules() if name}
    unregistered = unregistered_modules(model)
    device = "meta"
    try:
        meta = model.to("meta") if rebuild else copy.deepcopy(model).to("meta")
        shapes, error, called = _output_shapes(meta, kind, sizes, "meta")
    except Exception:
        error = "the meta device"
    if error:  # a real error, or one of the meta device's own: ask a real model
        device = "cpu"
        shapes, error, called = _output_shapes(rebuild() if rebuild else model, kind, sizes, "cpu")
    layers = [describe(name, m, name in called) for name, m in modules.items()]
    return Structure(kind=kind, layers=layers, upsampling_weights=weights, output_shapes=shapes,
                     forward_error=error, forward_device=device, unregistered=unregistered)


def warm_up_meta() -> None:
    """Run each kind of layer an FCN has once on the meta device: torch loads what the meta device
    needs on first use (about a second), so a process that forks children pays it once for all."""
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2, ceil_mode=True),
                         nn.Dropout2d(), nn.Conv2d(4, 4, 1), nn.ConvTranspose2d(4, 4, 4, 2, bias=False)).eval()
    with torch.no_grad():
        x = tiny.to("meta")(torch.empty(1, 3, 9, 9, device="meta"))
        (x[:, :, 1:3, 1:3] + x[:, :, 0:2, 0:2]).contiguous()


def _output_shapes(model: nn.Module, kind: str, sizes, device: str):
    calls = CallRecorder(model)
    shapes, error = [], ""
    try:
        for h, w in sizes:
            x = torch.empty(1, 3, h, w, device=device) if device == "meta" else torch.randn(1, 3, h, w)
            shapes.append(list(forward(model, x, f"{MODEL_CLASSES[kind]}.forward").shape))
    except ObservationError as err:
        error = str(err)
    finally:
        calls.remove()
    return shapes, error, calls.order


# ----------------------------------------------------------------------------------- outputs
def _generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed ^ zlib.crc32(key.encode())) & 0xFFFFFFFF)


SEED_BLOCK = 2**20


def seeded_block(seed: int, key: str, bound: float, numel: int) -> torch.Tensor:
    """The values a seeded tensor repeats: at most SEED_BLOCK uniform values in [-bound, bound],
    drawn from ``seed`` and ``key``. Repeating them (fc6 alone holds 10**8 weights) tells two
    networks apart as well as fresh ones would, at a fraction of the cost."""
    return torch.empty(min(numel, SEED_BLOCK)).uniform_(-bound, bound, generator=_generator(seed, key))


def fill_seeded_(tensor: torch.Tensor, seed: int, key: str, bound: float) -> None:
    """Fill ``tensor`` in place with its seeded block, repeated."""
    flat = tensor.view(-1)
    block = seeded_block(seed, key, bound, flat.numel())
    for start in range(0, flat.numel(), block.numel()):
        part = flat[start:start + block.numel()]
        part.copy_(block[:part.numel()])


def seed_parameter_(param: torch.Tensor, seed: int, key: str, bound: float) -> None:
    """Give ``param`` its seeded values (those of :func:`fill_seeded_`). A large one (fc6: 411 MB)
    gets new storage in which the block's pages are mapped one after another, so that it takes the
    block's 4 MB of memory; the others are filled in place."""
    if param.numel() >= SEED_BLOCK and param.dtype == torch.float32 and param.device.type == "cpu":
        repeated = _repeated(seeded_block(seed, key, bound, param.numel()), tuple(param.shape))
        if repeated is not None:
            param.data = repeated
            return
    fill_seeded_(param, seed, key, bound)


PROT_NONE, PROT_READ_WRITE = 0, 3
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x01, 0x02, 0x10, 0x20, 0x4000


@functools.cache
def _libc():
    """The C library's mmap and munmap, where there are memory files to map (Linux: the grader's
    child); None elsewhere (macOS, Windows), where seeded weights are plain tensors."""
    if not hasattr(os, "memfd_create"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def maps_repeated_weights() -> bool:
    """Whether large seeded weights take the memory of one block (Linux), not their full size."""
    return _libc() is not None


def _repeated(block: torch.Tensor, shape: tuple[int, ...], aliased: bool = False) -> torch.Tensor | None:
    """A contiguous float32 tensor of ``shape`` whose values repeat ``block``: one memory file
    holding the block, mapped as many times as it takes, end to end (None where the system will
    not). Copy-on-write: writes stay private to the process that makes them; ``aliased``: every
    mapping is the same memory, so a write to one value writes every value ``block.numel()`` apart."""
    numel, size = math.prod(shape), block.numel() * block.element_size()
    libc = _libc()
    if libc is None or size % mmap.PAGESIZE:
        return None
    count = -(-numel // block.numel())
    fd = os.memfd_create("fcnkit-seeded", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        data = block.contiguous().numpy().tobytes()
        written = 0
        while written < size:
            written += os.pwrite(fd, data[written:], written)
        base = libc.mmap(None, count * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            return None
        for i in range(count):
            flags = (MAP_SHARED if aliased else MAP_PRIVATE) | MAP_FIXED
            if libc.mmap(base + i * size, size, PROT_READ_WRITE, flags, fd, 0) != base + i * size:
                libc.munmap(base, count * size)
                return None
    except OSError:
        return None
    finally:
        os.close(fd)
    array = (ctypes.c_float * numel).from_address(base)
    weakref.finalize(array, libc.munmap, base, count * size)  # unmapped with the last tensor using it
    return torch.frombuffer(array, dtype=torch.float32).view(shape)


def fill_seeded(model: nn.Module, seed: int) -> None:
    """Overwrite every convolution with weights drawn from ``seed``: the named layers (conv1_1 ...
    fc7) by name, the others by their shape, so that any names work for the extra layers. Transposed
    convolutions get no bias (the reference has none: a stray bias costs the head item only)."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                continue
            key = name if name in NAMED else f"{type(m).__name__}{tuple(m.weight.shape)}"
            fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
            seed_parameter_(m.weight, seed, key, (6 / max(fan_in, 1)) ** 0.5)
            if m.bias is not None:
                if isinstance(m, nn.ConvTranspose2d):
                    m.bias.zero_()
                else:
                    fill_seeded_(m.bias, seed, key + ".bias", 0.1)


def seeded_input(seed: int, size) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=_generator(seed, "input"))


def find_roles(model: nn.Module, kind: str, called: list[str], n_class: int) -> dict[str, str]:
    """Which called layer plays which part of the reference: named layers by name, the score layers
    and upsamplings by their shapes, the two 2x upsamplings of FCN-8s by the order they ran in."""
    modules = dict(model.named_modules())
    roles = {}
    for name in ("pool3", "pool4", "pool5", "fc7"):
        if name not in called:
            raise ObservationError(f"cannot compare: no layer named {name} runs in forward.")
        roles[name] = name

    def called_where(test, what: str, count: int = 1) -> list[str]:
        found = [n for n in called if n not in NAMED and test(modules[n])]
        if len(found) != count:
            raise ObservationError(f"cannot compare: expected {'exactly one' if count == 1 else count} {what} "
                                   f"running in forward, found {len(found)}.")
        return found

    def scorer(in_ch):
        return lambda m: (type(m) is nn.Conv2d and m.kernel_size == (1, 1)
                          and (m.in_channels, m.out_channels) == (in_ch, n_class))

    def upsampling(k):
        return lambda m: isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (k, k)

    [roles["score"]] = called_where(scorer(4096), f"1x1 Conv2d(4096, {n_class}) (score)")
    if kind == "fcn32s":
        [roles["upscore"]] = called_where(upsampling(64), "ConvTranspose2d with kernel 64")
        return roles
    [roles["score_pool4"]] = called_where(scorer(512), f"1x1 Conv2d(512, {n_class}) (score_pool4)")
    [roles["score_pool3"]] = called_where(scorer(256), f"1x1 Conv2d(256, {n_class}) (score_pool3)")
    [roles["upscore8"]] = called_where(upsampling(16), "ConvTranspose2d with kernel 16")
    roles["upscore2"], roles["upscore_pool4"] = called_where(upsampling(4), "ConvTranspose2d layers with kernel 4", 2)
    return roles


def observe_outputs(model: nn.Module, kind: str, seed: int, size, n_class: int, repeat: bool = True) -> Outputs:
    """Fill the model with the seeded weights, run it on the seeded input and report the
    activations of every stage (see STAGES), and (``repeat``) the output of a second identical pass.
    The grader does without the second pass: randomness in forward departs from the reference
    anyway, and the first stage that departs names dropout as what to check."""
    layers = [describe(name, m, False) for name, m in model.named_modules() if name][:4096]
    unregistered = unregistered_modules(model)
    fill_seeded(model, seed)
    model.eval()
    x = seeded_input(seed, size)
    keep = lambda name, m: isinstance(m, (nn.ConvTranspose2d, nn.MaxPool2d)) or (
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    calls = CallRecorder(model, keep)
    what = f"{MODEL_CLASSES[kind]}.forward"
    result = Outputs(kind=kind, roles={}, called=[], stages={}, layers=layers, unregistered=unregistered)
    try:
        output = forward(model, x, what)
        calls.remove()
        result.called = calls.order[:4096]
        result.output = output.float().cpu().numpy()
        result.repeat = forward(model, x, what).float().cpu().numpy() if repeat else None
        result.roles = find_roles(model, kind, calls.order, n_class)
    except ObservationError as err:
        result.error = str(err)
        return result
    finally:
        calls.remove()
    for stage, role, port in STAGES[kind]:
        if role:
            tensors = calls.inputs if port == "in" else calls.outputs
            if result.roles[role] in tensors:
                result.stages[stage] = tensors[result.roles[role]].float().cpu().numpy()
    return result


# ----------------------------------------------------------------------------------- copy_params
def own_copy_function(namespace: dict, kind: str):
    """The submission's own ``copy_params_from_vgg16`` (a method of the model class or a function),
    as ``f(model, vgg)``; None when it uses fcnkit's."""
    cls = namespace.get(MODEL_CLASSES[kind])
    for klass in getattr(cls, "__mro__", ()):
        if klass is not nn.Module and "copy_params_from_vgg16" in vars(klass):
            return lambda model, vgg: model.copy_params_from_vgg16(vgg)
    fn = namespace.get("copy_params_from_vgg16")
    if callable(fn) and not str(getattr(fn, "__module__", "")).startswith("fcnkit"):
        return fn
    return None


def seeded_vgg16(seed: int) -> nn.Module:
    """torchvision's VGG-16 holding weights drawn from ``seed`` (no download, no default init)."""
    from torchvision.models import vgg16
    with torch.device("meta"):
        vgg = vgg16()
    vgg = vgg.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in vgg.named_parameters():
            seed_parameter_(p, seed, f"vgg16.{name}", 1.0)
    return vgg


class PristineVGG:
    """A seeded VGG-16 built once and handed to every copy_params observation: a fingerprint of its
    parameters (their storage, shape and sum) tells whether a submission's copy function changed it,
    and then the next observation gets a fresh one. The warm worker builds it before forking, so
    every submission starts from the same pages, shared copy-on-write."""

    def __init__(self, seed: int):
        self.seed, self.vgg = seed, seeded_vgg16(seed)
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> list:
        with torch.no_grad():
            return [(name, p.data_ptr(), tuple(p.shape), tuple(p.stride()), float(p.sum()))
                    for name, p in self.vgg.named_parameters()]

    def get(self) -> nn.Module:
        if self._fingerprint() != self.fingerprint:
            self.vgg = seeded_vgg16(self.seed)
            self.fingerprint = self._fingerprint()
        return self.vgg


def copy_targets(vgg: nn.Module):
    """``(fcn layer name, vgg layer's parameter prefix, vgg layer)`` for what copy_params_from_vgg16
    must fill."""
    return [(name, prefix, vgg.get_submodule(prefix)) for name, prefix, _ in VGG16_SOURCES]


def sample_positions(seed: int, name: str, numel: int, count: int = 256) -> torch.Tensor:
    return torch.randint(max(numel, 1), (count,), generator=_generator(seed, f"positions.{name}"))


def copied_layer(seed: int, name: str, weight: torch.Tensor, bias: torch.Tensor | None) -> CopiedLayer:
    flat = weight.detach().reshape(-1).float()
    positions = sample_positions(seed, name, flat.numel())
    return CopiedLayer(numel=flat.numel(), weight_samples=flat[positions].numpy(),
                       weight_sum=sum(float(part.sum(dtype=torch.float64)) for part in flat.split(SEED_BLOCK)),
                       bias=(bias.detach().float().reshape(-1)[:8192].numpy() if bias is not None
                             else np.zeros(0, np.float32)))


def seeded_copy(seed: int) -> dict[str, CopiedLayer]:
    """What a correct copy from :func:`seeded_vgg16` leaves in each layer, computed from the seeded
    blocks alone (the 138 M weights are never allocated)."""
    expected = {}
    for name, prefix, shape in VGG16_SOURCES:
        numel = math.prod(shape)
        block = seeded_block(seed, f"vgg16.{prefix}.weight", 1.0, numel).double()
        repeats, rest = divmod(numel, block.numel())
        positions = sample_positions(seed, name, numel)
        bias = seeded_block(seed, f"vgg16.{prefix}.bias", 1.0, shape[0])
        expected[name] = CopiedLayer(numel=numel, weight_samples=block[positions % block.numel()].float().numpy(),
                                     weight_sum=float(block.sum() * repeats + block[:rest].sum()),
                                     bias=bias[:8192].numpy())
    return expected


def _alias_large_weight(layer) -> None:
    """Give a large weight (fc6: 411 MB, fc7: 67 MB) the storage of :func:`_repeated` with
    ``aliased=True``: SEED_BLOCK values, NaN until written, seen over and over. The seeded VGG-16
    repeats its values with that same period, so a correct copy writes the same value into every
    alias and leaves what a full-size copy would, for 4 MB; a wrong one (another layer, another
    order, nothing) leaves values that are not the expected ones, which is all the judge compares."""
    weight = getattr(layer, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dtype == torch.float32 and weight.device.type == "cpu" \
            and weight.numel() >= SEED_BLOCK and weight.numel() % SEED_BLOCK == 0:
        sink = _repeated(torch.full((SEED_BLOCK,), float("nan")), tuple(weight.shape), aliased=True)
        if sink is not None:
            weight.data = sink


def observe_copy(namespace: dict, kind: str, seed: int, n_class: int, vgg: nn.Module | None = None) -> CopyParams:
    """Copy a seeded VGG-16 (``vgg``, else a new :func:`seeded_vgg16`) into a fresh model with the
    submission's own copy_params_from_vgg16, or fcnkit's when it has none (then the layers' names
    and shapes are what is checked), and report the copied layers at seeded positions."""
    from .vgg import copy_params_from_vgg16
    own = own_copy_function(namespace, kind)
    model = build(namespace, kind, n_class, default_init=False)
    vgg = seeded_vgg16(seed) if vgg is None else vgg
    result = CopyParams(own=own is not None)
    for name, _, _ in copy_targets(vgg):
        _alias_large_weight(getattr(model, name, None))
    try:
        with torch.no_grad():
            (own or copy_params_from_vgg16)(model, vgg)
    except Exception as err:
        result.error = raised("copy_params_from_vgg16(model, vgg16)", err)
        return result
    for name, _, _ in copy_targets(vgg):
        layer = getattr(model, name, None)
        if isinstance(getattr(layer, "weight", None), torch.Tensor):
            result.layers[name] = copied_layer(seed, name, layer.weight, getattr(layer, "bias", None))
    return result


# ----------------------------------------------------------------------------------- trained weights
@torch.no_grad()
def predict(model: nn.Module, images, device="cpu") -> list[np.ndarray]:
    """Class index maps (uint8) of ``model`` for each image tensor (3, H, W)."""
    model.eval().to(device)
    return [model(x[None].to(device)).argmax(1)[0].to(torch.uint8).cpu().numpy() for x in images]


def observe_predictions(namespace: dict, kind: str, n_class: int, checkpoint, images, device="cpu") -> Predictions:
    from .checks import load_weights
    model = load_weights(build(namespace, kind, n_class, default_init=False), checkpoint)
    return Predictions(kind=kind, maps=predict(model, images, device))
