"""Take the definitions out of a submission without running its training, and run them: what the grader runs
of a notebook, and what ``python -m fcnkit check`` runs of it, selected by the same rules.

From every code cell (or the whole ``.py`` file) we keep the top-level imports, functions, classes,
constant assignments and ``SomeClass.attr = ...`` patches (classes spread over cells), in order.
Everything else (training loops, plots, a stray ``raise``) is dropped. A cell that does not parse is
skipped with a note; the rest of the submission is still used. Reading the file (bounded, as
untrusted input) is the caller's part.
"""
from __future__ import annotations

import ast
import json
import re
import threading
from dataclasses import dataclass, field

MAGIC = re.compile(r"^\s*([%!].*|[\w.]+\?{1,2})\s*$")  # %magic, !shell, obj? help
# CPython 3.11 before 3.11.8 keeps the AST constructor's recursion depth in state the threads share: two
# threads parsing at once can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905). The grader extracts submissions on several threads, so they parse one at a time.
_PARSING = threading.Lock()


def parse(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time (see ``_PARSING``)."""
    with _PARSING:
        return ast.parse(source)


class NotANotebook(ValueError):
    """The text is not a notebook's JSON; the message says why."""


@dataclass
class Chunk:
    cell: int  # notebook cell number (1-based), 0 for a .py file
    line: int
    source: str


def location(cell: int, line: int) -> str:
    """Where a chunk comes from, as notes name it: its notebook cell, else its line in a ``.py`` file."""
    return f"cell {cell}" if cell else f"line {line}"


@dataclass
class Extracted:
    chunks: list[Chunk] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def notebook_cells(text: str) -> list:
    """The cells of a notebook's JSON text, as they are there. The text is hostile input: its nesting
    (the interpreter's recursion limit) and its numbers (Python's digit limit) are checked, and either
    failing, or no list of cells, is a NotANotebook naming it."""
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError, MemoryError) as err:  # ValueError: bad JSON, a number over the digit limit
        raise NotANotebook("nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]) from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise NotANotebook("it has no list of cells")
    return cells


def notebook_code_cells(text: str) -> list[tuple[int, str]]:
    """``(cell number, source)`` of every code cell of a notebook's JSON text (hostile input: see
    :func:`notebook_cells`; the types of what the cells hold are checked too)."""
    out = []
    for number, cell in enumerate(notebook_cells(text), start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if isinstance(source, list) and all(isinstance(line, str) for line in source):
                source = "".join(source)
            if not isinstance(source, str):
                raise NotANotebook(f"cell {number}'s source is not text (a {type(source).__name__})")
            out.append((number, source))
    return out


def strip_magics(source: str) -> str:
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


def definitions(cells: list[tuple[int, str]], name: str) -> Extracted:
    """The definitions of ``cells`` (see :func:`notebook_code_cells`; a ``.py`` file is one cell
    numbered 0, and ``name`` is what notes call it)."""
    result = Extracted()
    classes: set[str] = set()
    for number, source in cells:
        where = f"cell {number}" if number else name
        try:
            tree = parse(strip_magics(source))
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


# ----------------------------------------------------------------------------------- running them
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
    where = location(chunk["cell"], chunk["line"])
    tree = parse(chunk["source"])
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
