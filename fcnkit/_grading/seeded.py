"""Weights and inputs drawn from a seed: what the grader (with a fresh seed per run) and the notebook's checks
(with the public one) fill a submitted model with, and what a correct copy of a seeded VGG-16 leaves.

Large weights repeat one block of seeded values; on Linux the block is one memory file mapped over and over
(the C library's mmap, below), so that fc6's 411 MB take 4 MB. Elsewhere they are plain tensors.
"""
from __future__ import annotations

import ctypes
import functools
import math
import mmap
import os
import weakref
import zlib

import torch
from torch import nn

from .records import CopiedLayer
from ..spec import NAMED, VGG16_SOURCES


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
        mapped = repeated(seeded_block(seed, key, bound, param.numel()), tuple(param.shape))
        if mapped is not None:
            param.data = mapped
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


def repeated(block: torch.Tensor, shape: tuple[int, ...], aliased: bool = False) -> torch.Tensor | None:
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


def weight_positions(seed: int, name: str, numel: int, count: int = 256) -> torch.Tensor:
    """``count`` seeded positions in a weight of ``numel`` values (named ``name``): where a copy is compared."""
    return torch.randint(max(numel, 1), (count,), generator=_generator(seed, f"positions.{name}"))


def seeded_copy(seed: int) -> dict[str, CopiedLayer]:
    """What a correct copy from :func:`seeded_vgg16` leaves in each layer, computed from the seeded
    blocks alone (the 138 M weights are never allocated)."""
    expected = {}
    for name, prefix, shape in VGG16_SOURCES:
        numel = math.prod(shape)
        block = seeded_block(seed, f"vgg16.{prefix}.weight", 1.0, numel).double()
        repeats, rest = divmod(numel, block.numel())
        positions = weight_positions(seed, name, numel)
        bias = seeded_block(seed, f"vgg16.{prefix}.bias", 1.0, shape[0])
        expected[name] = CopiedLayer(numel=numel, weight_samples=block[positions % block.numel()].float().numpy(),
                                     weight_sum=float(block.sum() * repeats + block[:rest].sum()),
                                     bias=bias[:8192].numpy())
    return expected


def alias_large_weight(layer) -> None:
    """Give a large weight (fc6: 411 MB, fc7: 67 MB) the storage of :func:`repeated` with
    ``aliased=True``: SEED_BLOCK values, NaN until written, seen over and over. The seeded VGG-16
    repeats its values with that same period, so a correct copy writes the same value into every
    alias and leaves what a full-size copy would, for 4 MB; a wrong one (another layer, another
    order, nothing) leaves values that are not the expected ones, which is all the judge compares."""
    weight = getattr(layer, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dtype == torch.float32 and weight.device.type == "cpu" \
            and weight.numel() >= SEED_BLOCK and weight.numel() % SEED_BLOCK == 0:
        sink = repeated(torch.full((SEED_BLOCK,), float("nan")), tuple(weight.shape), aliased=True)
        if sink is not None:
            weight.data = sink

