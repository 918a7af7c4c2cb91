"""Take the definitions out of a submission without running its training, and run them: what the grader runs
of a notebook, and what the notebook's checks and ``python -m fcnkit check`` run of it, selected by one rule.

From every code cell (or the whole ``.py`` file) we keep, in order:

- the top-level imports, functions, classes, literal constants (``N = 12``) and ``SomeClass.attr = ...``
  patches (classes spread over cells), from every cell;
- the top-level assignments that what is kept reads (its free names: names read in a function's or
  class's body, defaults, decorators and bases, or in a kept assignment's value, and not bound there),
  transitively, e.g. ``N_CLASS = data.N_CLASS``, ``make_relu = lambda: nn.ReLU()``, ``K = 2 * STRIDE``.
  Every top-level assignment of such a name is kept (so the last one in cell order is the one in force,
  as in a run from top to bottom), but never one from a *training cell*: a cell whose top-level code (outside
  functions and classes) has a ``for`` or ``while`` loop, or calls a function of :data:`TRAINING_CALLS`
  (fcnkit's training, evaluation and data loading, ``.backward()``, ``.step()``) or a function of the
  submission that calls one. In a ``.py`` file each top-level statement counts as a cell of its own.
  What such a training function reads is not kept for it (it is kept, as every function is, but
  the grader never calls it).

Everything else (training loops, plots, a stray ``raise``, statements inside ``if`` or ``with``) is
dropped. A kept assignment runs each time the definitions are run (each check in the notebook). A cell
that does not parse is skipped with a note; the rest of the submission is still used. What is read is
bounded (:data:`MAX_STATEMENTS` top-level statements, :data:`MAX_READ_ASSIGNMENTS` assignments kept for what
reads them), with a note past either. Reading the file
(bounded, as untrusted input) is the caller's part.
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


# Bounds on what is read of a submission (hostile input: 2.9 MB of chained assignments read by a class made
# 150,001 chunks and 10 s of extraction): a course notebook has a few hundred top-level statements and reads
# a few dozen assignments.
MAX_STATEMENTS = 10_000  # top-level statements read, over all cells; the rest is skipped with a note
MAX_READ_ASSIGNMENTS = 1_000  # assignments kept because definitions read them, transitively

TRAINING_CALLS = frozenset({"fit", "evaluate", "save_checkpoint", "save_predictions", "score_saved", "make_loaders",
                            "cmp_splits", "eval_split", "CMPFacade", "DataLoader", "backward", "step"})
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


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


def _where(cell: int, name: str) -> str:
    """A cell as notes name it; ``name`` (the file's) for a ``.py`` file."""
    return f"cell {cell}" if cell else name


def _called(node: ast.AST) -> str:
    """The name a call calls (``fit(...)``: fit; ``loss.backward()``: backward), "" for anything else."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
    return ""


def _top_level_code(nodes: list[ast.stmt]):
    """Every node of ``nodes`` that runs when they run, without the bodies of functions, lambdas and classes."""
    todo = [n for n in nodes if not isinstance(n, SCOPES)]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(n for n in ast.iter_child_nodes(node) if not isinstance(n, SCOPES))


def _training_calls(trees: list[ast.Module]) -> set[str]:
    """:data:`TRAINING_CALLS` and the top-level functions of ``trees`` that call one of them, directly or not."""
    callers: dict[str, set[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for called in {_called(n) for n in ast.walk(node)}:
                    callers.setdefault(called, set()).add(node.name)
    training, todo = set(), list(TRAINING_CALLS)
    while todo:
        name = todo.pop()
        if name not in training:
            training.add(name)
            todo.extend(callers.get(name, ()))
    return training


def _trains(nodes: list[ast.stmt], training: set[str]) -> bool:
    """Whether ``nodes`` (a cell) are a training cell: a loop or a training call in their top-level code."""
    return any(isinstance(n, (ast.For, ast.AsyncFor, ast.While)) or _called(n) in training
               for n in _top_level_code(nodes))


def _assigned(node: ast.stmt) -> set[str]:
    """The names a top-level assignment binds (``A = B = ...``, ``H, W = ...``, ``K += 1``); none for others."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
        targets = [node.target]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _free_names(node: ast.stmt) -> set[str]:
    """The names ``node`` reads and does not bind anywhere inside itself (arguments, locals, imports,
    nested functions and classes): what it takes from the module."""
    read, bound = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (read if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not node:
            bound.add(n.name)
        elif isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
    return read - bound


@dataclass
class _Statement:
    cell: int
    node: ast.stmt
    kept: bool  # kept whatever else is kept (an import, a def, a literal constant, a patch)
    names: set[str]  # what it binds, when it is an assignment that may be kept for what reads it
    follow: bool = True  # whether what it reads is kept with it (not for a function that trains)


def _statements(trees: list[tuple[int, ast.Module]], notes: list[str], name: str) -> list[_Statement]:
    """Every top-level statement of ``trees``, with what the rule needs to know of it."""
    total = 0
    for i, (number, tree) in enumerate(trees):
        if total + len(tree.body) > MAX_STATEMENTS:
            notes.append((f"{name}: only its first {MAX_STATEMENTS - total} top-level statements were read"
                          if number == 0 else f"{_where(number, name)} and what follows were skipped")
                         + f": the grader reads at most {MAX_STATEMENTS} top-level statements of a submission, "
                           f"and this one has more.")
            trees = trees[:i] + ([(number, ast.Module(body=tree.body[:MAX_STATEMENTS - total], type_ignores=[]))]
                                 if number == 0 else [])  # a .py file: its first statements
            break
        total += len(tree.body)
    training, classes, out = _training_calls([tree for _, tree in trees]), set(), []
    for number, tree in trees:
        for cell in [[node] for node in tree.body] if number == 0 else [tree.body]:  # a .py file: each statement
            trains = _trains(cell, training)
            for node in cell:
                if isinstance(node, ast.ClassDef):
                    classes.add(node.name)
                try:
                    kept = _keep(node, classes)
                except (RecursionError, MemoryError):
                    notes.append(f"{_where(number, name)}, line {node.lineno} was skipped: nested too deeply to parse.")
                    continue
                out.append(_Statement(number, node, kept, set() if kept or trains else _assigned(node),
                                      getattr(node, "name", None) not in training))
    return out


def _needed(statements: list[_Statement], notes: list[str]) -> list[_Statement]:
    """The statements kept: those kept anyway, and the assignments what is kept reads, transitively
    (at most :data:`MAX_READ_ASSIGNMENTS` of them: a note says when more were read)."""
    binders: dict[str, list[int]] = {}
    for i, s in enumerate(statements):
        for bound in s.names:
            binders.setdefault(bound, []).append(i)
    kept = {i for i, s in enumerate(statements) if s.kept}
    todo, resolved, read = [i for i in kept if statements[i].follow], set(), 0
    while todo:
        for free in _free_names(statements[todo.pop()].node) - resolved:
            resolved.add(free)
            new = [i for i in binders.get(free, ()) if i not in kept]
            if read + len(new) > MAX_READ_ASSIGNMENTS:
                notes.append(f"the definitions read more than {MAX_READ_ASSIGNMENTS} top-level assignments (one "
                             f"reading the next): the grader kept {read} of them and stopped at {free!r}; write "
                             f"constants as literals, or compute them inside the functions and classes that use them.")
                return [statements[i] for i in sorted(kept)]
            read += len(new)
            kept.update(new)
            todo.extend(new)
    return [statements[i] for i in sorted(kept)]


def definitions(cells: list[tuple[int, str]], name: str) -> Extracted:
    """The definitions of ``cells`` (see :func:`notebook_code_cells`; a ``.py`` file is one cell
    numbered 0, and ``name`` is what notes call it), by the rule of this module's docstring."""
    result, trees = Extracted(), []
    for number, source in cells:
        where = _where(number, name)
        try:
            trees.append((number, parse(strip_magics(source))))
        except (SyntaxError, ValueError) as err:
            line = getattr(err, "lineno", None)
            result.notes.append(f"{where} was skipped: syntax error{f' on line {line}' if line else ''} "
                                f"({getattr(err, 'msg', err)}).")
        except (RecursionError, MemoryError):
            result.notes.append(f"{where} was skipped: its code is nested too deeply to parse.")
    for s in _needed(_statements(trees, result.notes, name), result.notes):
        try:
            result.chunks.append(Chunk(s.cell, s.node.lineno, ast.unparse(s.node)))
        except (RecursionError, MemoryError):
            result.notes.append(f"{_where(s.cell, name)}, line {s.node.lineno} was skipped: nested too deeply to parse.")
    return result


# ----------------------------------------------------------------------------------- running them
def described(err: BaseException) -> str:
    """``Type: message`` of what a submission raised; a name it read and nobody defined (a NameError)
    says where definitions must live, on both sides (the notes here, and :func:`fcnkit._grading.observe.raised`)."""
    if type(err) is NameError and err.name:  # not UnboundLocalError: a local read before it is set
        return (f"NameError: name {err.name!r} is not defined in what the grader keeps of your notebook: define it "
                f"at the top level of a cell that does not train (imports, functions, classes and the assignments "
                f"they use are kept)")
    return f"{type(err).__name__}: {err}"


def fcnkit_modules() -> tuple:
    """fcnkit's modules, where a name imported from a course module the grader lacks is looked up."""
    import fcnkit
    from fcnkit import data, metrics, train, vgg, viz
    return fcnkit, vgg, data, metrics, train, viz


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


def build_namespace(extracted: Extracted) -> tuple[dict, list[str]]:
    """The namespace the grader builds of ``extracted``: its definitions run in a fresh one, with
    :func:`fcnkit_modules`; and the notes (``extracted``'s, then the failures running them).

    Args:
        extracted: what :func:`definitions` kept of a submission.
    """
    namespace = {"__name__": "submission"}
    return namespace, extracted.notes + run_definitions([vars(c) for c in extracted.chunks], namespace,
                                                        fcnkit_modules())


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
        return f"{where}: {described(err)}"[:1000]
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
