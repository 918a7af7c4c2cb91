"""Take the definitions out of a submission without running its training.

From every code cell (or the whole ``.py`` file) we keep the top-level imports, functions, classes,
constant assignments and ``SomeClass.attr = ...`` patches (classes spread over cells), in order.
Everything else (training loops, plots, a stray ``raise``) is dropped. A cell that does not parse is
skipped with a note; the rest of the submission is still graded.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.predictions import UnreadableFile, read_bounded

MAX_SUBMISSION_BYTES = 100 * 2**20  # a notebook with its figures; a file larger than this is refused unread
MAX_CODE_BYTES = 4 * 2**20  # all code cells together: bounds the time and memory parsing them takes
MAGIC = re.compile(r"^\s*([%!].*|[\w.]+\?{1,2})\s*$")  # %magic, !shell, obj? help


class SubmissionError(ValueError):
    """The submission file cannot be read at all."""


@dataclass
class Chunk:
    cell: int  # notebook cell number (1-based), 0 for a .py file
    line: int
    source: str

    @property
    def where(self) -> str:
        return f"cell {self.cell}, line {self.line}" if self.cell else f"line {self.line}"


@dataclass
class Extracted:
    chunks: list[Chunk] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def code_cells(path: Path) -> list[tuple[int, str]]:
    """``(cell number, source)`` of every code cell; a ``.py`` file is one cell numbered 0. The file
    is hostile input: its size, the JSON's nesting (the interpreter's recursion limit), its numbers
    (Python's digit limit), the types of what it holds and the size of its code are all checked,
    and any of them failing is a SubmissionError naming it."""
    try:
        text = read_bounded(path, MAX_SUBMISSION_BYTES).decode("utf-8")
    except UnreadableFile as err:
        raise SubmissionError(f"{err} Submit the notebook itself.") from None
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{path.name} is not UTF-8 text ({err}); save it again from Jupyter or your "
                              f"editor as UTF-8.") from None
    if path.suffix == ".py":
        cells = [(0, text)]
    else:
        cells = _notebook_code_cells(path, text)
    size = sum(len(source) for _, source in cells)
    if size > MAX_CODE_BYTES:
        raise SubmissionError(f"{path.name} holds {size / 2**20:.1f} MB of code, more than the "
                              f"{MAX_CODE_BYTES >> 20} MB the grader reads; submit the assignment's notebook.")
    return cells


def _notebook_code_cells(path: Path, text: str) -> list[tuple[int, str]]:
    fix = "re-download it from Jupyter with File > Download"
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError, MemoryError) as err:  # ValueError: bad JSON, a number over the digit limit
        what = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]
        raise SubmissionError(f"{path.name} is not a valid notebook ({what}); {fix}.") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise SubmissionError(f"{path.name} is not a valid notebook (it has no list of cells); {fix}.")
    out = []
    for number, cell in enumerate(cells, start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if isinstance(source, list) and all(isinstance(line, str) for line in source):
                source = "".join(source)
            if not isinstance(source, str):
                raise SubmissionError(f"{path.name}: cell {number}'s source is not text (a {type(source).__name__}); "
                                      f"{fix}.")
            out.append((number, source))
    return out


def _strip_magics(source: str) -> str:
    # IPython magics and shell escapes are not Python; blank them so line numbers stay right.
    return "\n".join("" if MAGIC.match(line) else line for line in source.splitlines())


def _keep(node: ast.stmt, classes: set[str]) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if all(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in classes
               for t in targets):
            return True  # FCN32s.forward = forward
        try:
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return all(isinstance(t, ast.Name) for t in targets)  # N_CLASS = 12
    return False


def extract(path: str | Path) -> Extracted:
    path = Path(path)
    result = Extracted()
    classes: set[str] = set()
    for number, source in code_cells(path):
        where = f"cell {number}" if number else path.name
        try:
            tree = ast.parse(_strip_magics(source))
        except (SyntaxError, ValueError) as err:
            line = getattr(err, "lineno", None)
            result.notes.append(f"{where} was skipped: syntax error{f' on line {line}' if line else ''} "
                                f"({getattr(err, 'msg', err)}).")
            continue
        except (RecursionError, MemoryError):
            result.notes.append(f"{where} was skipped: its code is nested too deeply to parse.")
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
            try:
                if _keep(node, classes):
                    result.chunks.append(Chunk(number, node.lineno, ast.unparse(node)))
            except (RecursionError, MemoryError):
                result.notes.append(f"{where}, line {node.lineno} was skipped: nested too deeply to parse.")
    return result
