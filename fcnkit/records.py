"""The records a grading child reports to the grader: plain observations of a submission (its layers,
output shapes, activations for inputs and weights the grader chose), never verdicts.

They are defined once here and used by both sides: the child (and the notebook's own checks) write
them, the grader reads them. What crosses the process boundary is untrusted on the reading side, so
:func:`decode` accepts exactly one record of the expected type, checks every field's type, and
bounds sizes; it never unpickles anything.

Wire format: 8 bytes (header length, little endian), a JSON header, then the arrays' raw bytes.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import types
import typing
from dataclasses import dataclass, field

import numpy as np

MAX_RECORD_BYTES = 96 * 2**20
MAX_HEADER_BYTES = 4 * 2**20
MAX_TEXT = 4000
MAX_ITEMS = 4096
DTYPES = {"float32": np.float32, "uint8": np.uint8}


class RecordError(ValueError):
    """What the child wrote is not the record the grader asked for; the message says what is wrong."""


@dataclass
class Layer:
    """One module of a submitted model, as ``named_modules`` lists it."""
    name: str
    type: str  # class name; "torch.nn." prefix when it is torch's own class
    in_channels: int = 0
    out_channels: int = 0
    kernel_size: list[int] = field(default_factory=list)
    stride: list[int] = field(default_factory=list)
    padding: list[int] = field(default_factory=list)
    bias: bool = False
    ceil_mode: bool = False
    called: bool = False  # ran during the forward passes of the structure step


@dataclass
class Structure:
    """A freshly built model: its layers, its transposed convolutions' weights as the constructor
    left them, and the output shape for each probe input (empty where forward raised)."""
    kind: str
    layers: list[Layer]
    upsampling_weights: dict[str, np.ndarray]
    output_shapes: list[list[int]]
    forward_error: str = ""
    forward_device: str = "meta"  # "cpu" when forward could not run on the meta device
    unregistered: list[str] = field(default_factory=list)  # modules kept where PyTorch does not see them


@dataclass
class Outputs:
    """Activations of a model holding the grader's seeded weights, at the grader's input, by role
    (pool3, score, the input of upscore8...), and the final output of a second pass when one was made."""
    kind: str
    roles: dict[str, str]  # role -> layer name in the submission
    called: list[str]  # layers in the order forward called them
    stages: dict[str, np.ndarray]
    output: np.ndarray | None = None
    repeat: np.ndarray | None = None
    error: str = ""
    layers: list[Layer] = field(default_factory=list)  # the model's modules, as Structure lists them
    unregistered: list[str] = field(default_factory=list)


@dataclass
class CopiedLayer:
    """Values of one layer after the submission's copy_params_from_vgg16, at seeded positions."""
    numel: int
    weight_samples: np.ndarray
    weight_sum: float
    bias: np.ndarray


@dataclass
class CopyParams:
    own: bool  # False: the submission uses fcnkit's copy_params_from_vgg16
    layers: dict[str, CopiedLayer] = field(default_factory=dict)
    error: str = ""


@dataclass
class Predictions:
    """Class-index maps (uint8) of trained weights on the evaluation images."""
    kind: str
    maps: list[np.ndarray] = field(default_factory=list)
    error: str = ""


@dataclass
class Failure:
    """The step could not observe anything (e.g. the class could not be built); what to fix."""
    message: str


RECORDS = {cls.__name__: cls for cls in (Structure, Outputs, CopyParams, Predictions, Failure)}


# ----------------------------------------------------------------------------------- writing
def encode(record) -> bytes:
    arrays: list[np.ndarray] = []

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, np.ndarray):
            arrays.append(np.ascontiguousarray(value))
            return {"__array__": len(arrays) - 1, "dtype": str(value.dtype), "shape": list(value.shape)}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    header = json.dumps({"type": type(record).__name__, "body": plain(record)}).encode()
    return struct.pack("<Q", len(header)) + header + b"".join(a.tobytes() for a in arrays)


def write(path, record) -> None:
    with open(path, "wb") as f:
        f.write(encode(record))


# ----------------------------------------------------------------------------------- reading
def decode(data: bytes, expected: tuple[type, ...]):
    """The record in ``data``, which must be one of ``expected`` (Failure is always accepted)."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"the record is {len(data)} bytes, over the limit of {MAX_RECORD_BYTES}")
    if len(data) < 8:
        raise RecordError("the record is truncated")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise RecordError("the record's header is too large or truncated")
    try:
        header = json.loads(data[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"the record's header is not JSON ({err})") from None
    cls = RECORDS.get(header.get("type")) if isinstance(header, dict) else None
    if cls is None or cls not in (*expected, Failure):
        names = ", ".join(c.__name__ for c in expected)
        raise RecordError(f"expected a {names} record, got {str(header.get('type') if isinstance(header, dict) else header)[:80]!r}")
    reader = _Reader(memoryview(data)[8 + size:])
    record = reader.value(header.get("body"), cls, cls.__name__)
    if reader.used != len(reader.blob):
        raise RecordError("the record carries bytes that no field refers to")
    return record


class _Reader:
    def __init__(self, blob: memoryview):
        self.blob, self.used, self.seen = blob, 0, set()

    def value(self, raw, kind, where: str):
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin in (typing.Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            [kind] = [a for a in args if a is not type(None)]
            return self.value(raw, kind, where)
        if dataclasses.is_dataclass(kind):
            return self.record(raw, kind, where)
        if kind is np.ndarray:
            return self.array(raw, where)
        if origin is list:
            self.expect(isinstance(raw, list) and len(raw) <= MAX_ITEMS, raw, f"a list of at most {MAX_ITEMS}", where)
            return [self.value(v, args[0], f"{where}[{i}]") for i, v in enumerate(raw)]
        if origin is dict:
            self.expect(isinstance(raw, dict) and len(raw) <= MAX_ITEMS, raw, f"a mapping of at most {MAX_ITEMS}", where)
            return {self.value(k, str, where): self.value(v, args[1], f"{where}.{k}") for k, v in raw.items()}
        if kind is str:
            self.expect(isinstance(raw, str) and len(raw) <= MAX_TEXT, raw, f"text of at most {MAX_TEXT} characters", where)
            return raw
        if kind is bool:
            self.expect(isinstance(raw, bool), raw, "true or false", where)
            return raw
        if kind is int:
            self.expect(isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2**53, raw, "an integer", where)
            return raw
        if kind is float:
            self.expect(isinstance(raw, (int, float)) and not isinstance(raw, bool), raw, "a number", where)
            return float(raw)
        raise TypeError(f"records cannot hold {kind}")

    def record(self, raw, cls, where: str):
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]  # in the order encode wrote their arrays
        self.expect(isinstance(raw, dict) and set(raw) == set(names), raw, f"the fields {names}", where)
        return cls(**{name: self.value(raw[name], hints[name], f"{where}.{name}") for name in names})

    def array(self, raw, where: str) -> np.ndarray:
        ok = (isinstance(raw, dict) and set(raw) == {"__array__", "dtype", "shape"} and raw["dtype"] in DTYPES
              and isinstance(raw["shape"], list) and len(raw["shape"]) <= 6
              and all(isinstance(n, int) and 0 <= n < 2**31 for n in raw["shape"])
              and isinstance(raw["__array__"], int) and raw["__array__"] == len(self.seen))
        self.expect(ok, raw, "an array reference (float32 or uint8, in order)", where)
        dtype = np.dtype(DTYPES[raw["dtype"]])
        count = int(np.prod(raw["shape"], dtype=np.int64))
        nbytes = count * dtype.itemsize
        if self.used + nbytes > len(self.blob):
            raise RecordError(f"{where}: the array's bytes are missing or truncated")
        array = np.frombuffer(self.blob[self.used:self.used + nbytes], dtype=dtype).reshape(raw["shape"]).copy()
        self.used += nbytes
        self.seen.add(raw["__array__"])
        return array

    @staticmethod
    def expect(ok: bool, raw, what: str, where: str) -> None:
        if not ok:
            raise RecordError(f"{where} should be {what}, got {str(raw)[:80]!r}")
