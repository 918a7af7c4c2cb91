"""The record codec: how a grading child's records (fcnkit._grading.records) cross the process boundary.

The child writes them; the grader reads them as untrusted data, so :func:`decode` accepts exactly one
record of the expected type, checks every field's type, and bounds sizes; it never unpickles anything.
This module runs on both sides: in the grader's process (as autograder.isolation.runtime.codec) and
in the child, from the runtime folder (as ``codec``); it imports only numpy and fcnkit._grading.records.

Wire format: 8 bytes (header length, little endian), a JSON header, then the arrays' raw bytes.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import types
import typing

import numpy as np

from fcnkit._grading.records import RECORDS, Failure

MAX_RECORD_BYTES = 96 * 2**20
MAX_HEADER_BYTES = 4 * 2**20
MAX_TEXT = 4000
MAX_ITEMS = 4096
DTYPES = {"float32": np.float32, "uint8": np.uint8}


class RecordError(ValueError):
    """What the child wrote is not the record the grader asked for; the message says what is wrong."""


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
