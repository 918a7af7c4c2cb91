"""Observing a submitted FCN: what the notebook's own checks look at, and what the grading child reports.

Everything here describes a model (its layers, output shapes, activations for given inputs and
weights) and judges nothing: the verdicts are computed from these records elsewhere (the structural
ones in :mod:`fcnkit._grading.judges`, the rest by the grader, which holds the reference). The grader also
calls :func:`observe_outputs` on its reference model, so both sides are observed the same way. The
seeded weights come from :mod:`fcnkit._grading.seeded`; what only the grader's child runs is the grader's.
"""
from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch
from torch import nn

from .describe import CallRecorder, Operands, describe, unregistered_modules
from .diagnoses import Diagnosis
from .extract import described
from .records import CopiedLayer, CopyParams, Outputs, Structure
from .seeded import SEED_BLOCK, alias_large_weight, fill_seeded, weight_positions, seeded_input, seeded_vgg16
from ..spec import DROPOUT, MODEL_CLASSES, NAMED, STAGES, VGG16_SOURCES

MAX_UPSAMPLING_NUMEL = 2**22  # larger transposed convolutions are listed without their weights

class ObservationError(Exception):
    """The submission could not be observed (no such class, its constructor raised...): the diagnosis
    (:mod:`fcnkit._grading.diagnoses`) is what was found, its sentence the message (what to fix)."""

    def __init__(self, diagnosis: Diagnosis):
        super().__init__(diagnosis.sentence[:1000])
        self.diagnosis = diagnosis


def raised(err: BaseException) -> dict:
    """The values of a ``*_raises`` diagnosis: what ``err`` says, and whether it is a part left unfinished."""
    return {"error": described(err).removesuffix(": "), "unfinished": isinstance(err, NotImplementedError)}


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
        raise ObservationError(Diagnosis("no_class", name))
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ObservationError(Diagnosis("not_a_module", name))
    errors = []
    with contextlib.nullcontext() if default_init else no_default_init():
        for args, kwargs in (((), {"n_class": n_class}), ((n_class,), {}), ((), {})):
            try:
                model = cls(*args, **kwargs)
            except TypeError as err:  # a different signature: try the next one
                errors.append(err)
                continue
            except Exception as err:
                raise ObservationError(Diagnosis("construction_raises", type(err).__name__,
                                                 {"model": name, "n_class": n_class, **raised(err)})) from None
            if not isinstance(model, nn.Module):
                raise ObservationError(Diagnosis("built_not_module", name, {"n_class": n_class}))
            return model.eval()
    raise ObservationError(Diagnosis("construction_signature", name, {"n_class": n_class, "error": errors[0]}))


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
    operands = Operands(model)
    try:
        with torch.no_grad(), large_weights_in_place(model), operands:
            out = model(x.clone())
    except Exception as err:
        where = {"call": what, "shape": tuple(x.shape)}
        if operands.failed:  # what it was combining says more than torch's "size of tensor a (10)"
            raise ObservationError(Diagnosis("forward_combines", operands.what, {
                **where, "combining": operands.failed, "error": described(err)})) from None
        raise ObservationError(Diagnosis("forward_raises", type(err).__name__, {**where, **raised(err)})) from None
    finally:
        operands.remove()
    if not isinstance(out, torch.Tensor):
        raise ObservationError(Diagnosis("forward_returns", type(out).__name__, {"call": what}))
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
    device, error = "meta", None
    try:
        meta = model.to("meta") if rebuild else copy.deepcopy(model).to("meta")
        shapes, error, called = _output_shapes(meta, kind, sizes, "meta")
    except Exception:
        device = "cpu"
    if error or device == "cpu":  # a real error, or one of the meta device's own: ask a real model
        device = "cpu"
        shapes, error, called = _output_shapes(rebuild() if rebuild else model, kind, sizes, "cpu")
    layers = [describe(name, m, name in called) for name, m in modules.items()]
    return Structure(kind=kind, layers=layers, upsampling_weights=weights, output_shapes=shapes,
                     forward_error=str(error or ""), forward_device=device, unregistered=unregistered,
                     forward_diagnosis=error.diagnosis.to_json() if error else [])


def _output_shapes(model: nn.Module, kind: str, sizes, device: str):
    """(output shapes, the ObservationError forward raised or None, the layers called)."""
    calls = CallRecorder(model)
    shapes, error = [], None
    try:
        for h, w in sizes:
            x = torch.empty(1, 3, h, w, device=device) if device == "meta" else torch.randn(1, 3, h, w)
            shapes.append(list(forward(model, x, f"{MODEL_CLASSES[kind]}.forward").shape))
    except ObservationError as err:
        error = err
    finally:
        calls.remove()
    return shapes, error, calls.order


# ----------------------------------------------------------------------------------- outputs
def _conv(m: nn.Module) -> str:
    return f"{'1x1 ' if m.kernel_size == (1, 1) else ''}{type(m).__name__}({m.in_channels}, {m.out_channels})"


def find_roles(model: nn.Module, kind: str, called: list[str], n_class: int) -> dict[str, str]:
    """Which called layer plays which part of the reference: named layers by name, the score layers
    and upsamplings by their shapes, the two 2x upsamplings of FCN-8s by the order they ran in."""
    modules = dict(model.named_modules())
    roles = {}
    for name in ("pool3", "pool4", "pool5", "fc7"):
        if name not in called:
            raise ObservationError(Diagnosis("missing_in_forward", name))
        roles[name] = name

    def called_where(test, what: str, role: str, count: int = 1) -> list[str]:
        found = [n for n in called if n not in NAMED and test(modules[n])]
        if len(found) != count:
            # the same layer for another number of classes, when that is what forward has
            near = sorted({_conv(modules[n]) for n in called if n not in NAMED and test(modules[n], any_class=True)})
            raise ObservationError(Diagnosis("role_count", role, {
                "count": count, "layer": what, "found": len(found), "near": [] if found else near,
                "n_class": n_class}))
        return found

    def scorer(in_ch):
        return lambda m, any_class=False: (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.in_channels == in_ch
                                           and (any_class or m.out_channels == n_class))

    def upsampling(k):
        return lambda m, any_class=False: isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (k, k)

    [roles["score"]] = called_where(scorer(4096), f"1x1 Conv2d(4096, {n_class}) (score)", "score")
    if kind == "fcn32s":
        [roles["upscore"]] = called_where(upsampling(64), "ConvTranspose2d with kernel 64", "upscore")
        return roles
    [roles["score_pool4"]] = called_where(scorer(512), f"1x1 Conv2d(512, {n_class}) (score_pool4)", "score_pool4")
    [roles["score_pool3"]] = called_where(scorer(256), f"1x1 Conv2d(256, {n_class}) (score_pool3)", "score_pool3")
    [roles["upscore8"]] = called_where(upsampling(16), "ConvTranspose2d with kernel 16", "upscore8")
    roles["upscore2"], roles["upscore_pool4"] = called_where(upsampling(4), "ConvTranspose2d layers with kernel 4",
                                                                "upscore2 and upscore_pool4", 2)
    return roles


def _kept(name: str, m: nn.Module) -> bool:
    """The layers whose input and output the outputs observation keeps: the stages, and around dropout."""
    return name in ("fc6", "fc7") or isinstance(m, (nn.ConvTranspose2d, nn.MaxPool2d)) or (
        isinstance(m, nn.Conv2d) and (m.kernel_size == (1, 1) or m.in_channels == 4096))


def observe_outputs(model: nn.Module, kind: str, seed: int, size, n_class: int) -> Outputs:
    """Fill the model with the seeded weights, run it on the seeded input and report the
    activations of every stage (see STAGES), and around dropout in training and eval mode
    (:func:`observe_dropout`). Randomness in eval mode (dropout left active) departs from the
    reference, and the first stage that departs names dropout as what to check."""
    layers = [describe(name, m, False) for name, m in model.named_modules() if name][:4096]
    unregistered = unregistered_modules(model)
    fill_seeded(model, seed)
    model.eval()
    x = seeded_input(seed, size)
    calls = CallRecorder(model, _kept)
    what = f"{MODEL_CLASSES[kind]}.forward"
    result = Outputs(kind=kind, roles={}, called=[], stages={}, layers=layers, unregistered=unregistered)
    try:
        try:
            with torch.random.fork_rng(devices=[]):  # randomness left on in eval mode: the same each run
                torch.manual_seed(seed)
                output = forward(model, x, what)
        finally:  # what ran before an error still shows dropout
            calls.remove()
            result.dropout, result.dropout_error = observe_dropout(model, x, calls, seed, what)
        result.called = calls.order[:4096]
        result.output = output.float().cpu().numpy()
        result.roles = find_roles(model, kind, calls.order, n_class)
    except ObservationError as err:
        result.error, result.error_diagnosis = str(err), err.diagnosis.to_json()
        return result
    for stage, role, port in STAGES[kind]:
        if role:
            tensors = calls.inputs if port == "in" else calls.outputs
            if result.roles[role] in tensors:
                result.stages[stage] = tensors[result.roles[role]].float().cpu().numpy()
    return result


def _around(calls: CallRecorder, model: nn.Module, layer: str, after: str):
    """(``layer``'s output, the input of ``after``) as (channels, positions), or None."""
    if after == "score":
        modules = dict(model.named_modules())
        following = calls.order[calls.order.index("fc7") + 1:] if "fc7" in calls.order else []
        after = next((n for n in following if n not in NAMED and isinstance(modules.get(n), nn.Conv2d)
                      and modules[n].in_channels == 4096), "")
    if layer not in calls.outputs or after not in calls.inputs:
        return None
    before, got = calls.outputs[layer], calls.inputs[after]
    if before.shape != got.shape or before.dim() != 4 or before.shape[0] != 1:
        return None
    return before.float().reshape(before.shape[1], -1), got.float().reshape(got.shape[1], -1)


def observe_dropout(model: nn.Module, x: torch.Tensor, evaluated: CallRecorder, seed: int, what: str):
    """``({place: (4, channels, positions)}, error)``: around each place of :data:`fcnkit.spec.DROPOUT`, the
    output of the layer before the ReLU and the next layer's input in a forward pass in training mode (torch's generator
    seeded with ``seed``; the caller's own generator is left as it was), then the same two from the
    eval pass ``evaluated`` recorded. What ran before forward raised counts. The model is back in
    eval mode after."""
    calls = CallRecorder(model, _kept)
    error = ""
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            forward(model.train(), x, f"{what} in training mode")
    except ObservationError as err:
        error = str(err)
    finally:
        calls.remove()
        model.eval()
    found = {}
    for place, (layer, _, after) in DROPOUT.items():
        train, kept = _around(calls, model, layer, after), _around(evaluated, model, layer, after)
        if train is None or kept is None:
            return {}, error or (f"forward does not give {after} a map of the shape {layer} makes, so dropout after "
                                 f"{place} cannot be observed")
        found[place] = torch.stack([*train, *kept]).cpu().numpy()
    return found, ""


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


def copy_targets(vgg: nn.Module):
    """``(fcn layer name, vgg layer's parameter prefix, vgg layer)`` for what copy_params_from_vgg16
    must fill."""
    return [(name, prefix, vgg.get_submodule(prefix)) for name, prefix, _ in VGG16_SOURCES]


def copied_layer(seed: int, name: str, weight: torch.Tensor, bias: torch.Tensor | None) -> CopiedLayer:
    flat = weight.detach().reshape(-1).float()
    positions = weight_positions(seed, name, flat.numel())
    return CopiedLayer(numel=flat.numel(), weight_samples=flat[positions].numpy(),
                       weight_sum=sum(float(part.sum(dtype=torch.float64)) for part in flat.split(SEED_BLOCK)),
                       bias=(bias.detach().float().reshape(-1)[:8192].numpy() if bias is not None
                             else np.zeros(0, np.float32)))


def observe_copy(namespace: dict, kind: str, seed: int, n_class: int, vgg: nn.Module | None = None) -> CopyParams:
    """Copy a seeded VGG-16 (``vgg``, else a new :func:`seeded_vgg16`) into a fresh model with the
    submission's own copy_params_from_vgg16, or fcnkit's when it has none (then the layers' names
    and shapes are what is checked), and report the copied layers at seeded positions."""
    from ..vgg import copy_params_from_vgg16
    own = own_copy_function(namespace, kind)
    model = build(namespace, kind, n_class, default_init=False)
    vgg = seeded_vgg16(seed) if vgg is None else vgg
    result = CopyParams(own=own is not None)
    for name, _, _ in copy_targets(vgg):
        alias_large_weight(getattr(model, name, None))
    try:
        with torch.no_grad():
            (own or copy_params_from_vgg16)(model, vgg)
    except Exception as err:
        raises = Diagnosis("copy_raises", type(err).__name__, raised(err))
        result.error, result.error_diagnosis = raises.sentence[:1000], raises.to_json()
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

