"""Files written whole, as UTF-8, whatever the locale; CSV cells a spreadsheet shows as text.

A reader (a person, ``summarize``, a rerun after a kill) sees either the old file or the new one,
never half of one: the text goes to a temporary file in the same folder, is flushed to disk, and
replaces the target with one rename.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP "CSV injection": what spreadsheets run as formulas


def fs_path(path: str | Path) -> bytes:
    """``path`` as the bytes the file system gets: UTF-8 for names made here (``josé.json``), the
    original bytes for names read from the disk under any locale (Python keeps those as surrogates)."""
    return str(path).encode("utf-8", "surrogateescape")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    target = fs_path(path)
    folder = os.path.dirname(target) or b"."
    fd, temporary = tempfile.mkstemp(prefix=b".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a power cut once the folder is flushed too
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8, atomically. Characters that are not valid Unicode (surrogates from a
    file name read under a non-UTF-8 locale) are written as their original bytes."""
    write_bytes(path, text.encode("utf-8", "surrogateescape"))


def update_text(path: str | Path, text: str) -> bool:
    """:func:`write_text`, unless the file holds exactly ``text`` already (a view rewritten from the
    gradebook after every change is mostly unchanged). Returns whether it wrote."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        with open(fs_path(path), "rb") as f:
            if f.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    write_bytes(path, data)
    return True


def remove_stale_temporaries(folder: Path) -> None:
    """The temporary files a killed writer left in ``folder`` (never a finished file)."""
    try:
        names = os.listdir(fs_path(folder))
    except OSError:
        return
    for name in names:
        if name.startswith(b".tmp-"):
            try:
                os.unlink(os.path.join(fs_path(folder), name))
            except OSError:
                pass


def text_cell(value) -> str:
    """A CSV cell that spreadsheets show as text: one beginning like a formula gets a leading quote."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def untext_cell(value: str) -> str:
    """The value :func:`text_cell` (or the answers page's script) protected, as it was."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def csv_text(rows: list[list]) -> str:
    """Rows as CSV text; strings are protected with :func:`text_cell` (numbers are left as numbers,
    so a negative score stays a number)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([text_cell(c) if isinstance(c, str) else c for c in row])
    return buffer.getvalue()


def name_text(name: str) -> str:
    """A name read from the file system as text to show and to write into reports: ``josé`` under any
    locale (under ``LC_ALL=C`` Python hands it over as ``jos\\udcc3\\udca9``); bytes that are not
    UTF-8 become U+FFFD."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
