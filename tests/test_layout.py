"""The code's shape, as the contributing notes promise it: no import cycles (imports inside functions
count: they run too), no module over 400 lines and no function over 60, in the two packages."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("fcnkit", "autograder")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages but their tests."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            if "tests" in rel.parts or "build" in rel.parts:
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports, wherever in the file the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the submodule pkg.mod; `from pkg import name`, pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\ndef f():\n    from ..other import thing\n    import pkg.deep.leaf\n")
    known = {"pkg.sub.mod", "pkg.sub.sibling", "pkg.other", "pkg.deep.leaf"}
    assert imports("pkg.sub.mod", source, known) == {"pkg.sub.sibling", "pkg.other", "pkg.deep.leaf"}


def test_no_import_cycles():
    graph = import_graph()
    assert "autograder.results" in graph and graph["fcnkit.checks"], "the graph must cover both packages"
    found = cycles(graph)
    assert not found, "import cycles (break each by moving what both sides need into a module of its own):\n" + \
        "\n".join(" <-> ".join(c) for c in found)


# The stages, lowest first: a module may import its own stage's modules and lower stages' only. fcnkit is what
# students install; the grader's base modules say what an item, a result and a submission are; then the
# reference solution, the confined child, the judgements, the one record (the gradebook), the views of it,
# one grading run and a class's folder, the written answers, and the ways in.
STAGES = (
    ("fcnkit",),
    ("autograder.results", "autograder.atomic", "autograder.rubric", "autograder.submission", "autograder.questions"),
    ("autograder.reference", "autograder.catalogue"),
    ("autograder.isolation",),
    ("autograder.judging",),
    ("autograder.record",),
    ("autograder.reports",),
    ("autograder.pipeline",),
    ("autograder.answers",),
    ("autograder.checks", "autograder.frontends", "autograder.__main__", "autograder"),
)


def stage_of(module: str) -> int:
    """The index in STAGES of the stage ``module`` belongs to (its package, or itself for a base module)."""
    for index, stage in enumerate(STAGES):
        if any(module == s or module.startswith(s + ".") for s in stage if s != "autograder") or module in stage:
            return index
    raise KeyError(f"{module} is in no stage: add it to STAGES in tests/test_layout.py")


def test_stage_of_places_a_module_by_its_package():
    assert stage_of("fcnkit.checks") == 0
    assert stage_of("autograder.record.gradebook") < stage_of("autograder.reports.csv") < stage_of("autograder.pipeline.run")
    assert stage_of("autograder") == stage_of("autograder.frontends.cli") == len(STAGES) - 1
    with pytest.raises(KeyError, match="autograder.newstage.mod is in no stage"):
        stage_of("autograder.newstage.mod")


def test_no_module_imports_a_higher_stage():
    upward = [f"{a} (stage {stage_of(a)}) imports {b} (stage {stage_of(b)})"
              for a, imported in sorted(import_graph().items()) for b in sorted(imported) if stage_of(b) > stage_of(a)]
    assert not upward, "dependencies run one way, down the stages (STAGES); move what both need down:\n" + \
        "\n".join(upward)


def test_modules_and_functions_are_small():
    too_long = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines "
                                    f"(at most {MAX_FUNCTION_LINES})")
    assert not too_long, "split these:\n" + "\n".join(too_long)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_folder_of_modules_is_a_package_the_wheel_lists(package):
    """A folder without __init__.py, or missing from pyproject's package list, would not be installed."""
    import tomllib
    folders = {p.parent for p in (REPO / package).rglob("*.py") if "tests" not in p.parts and "build" not in p.parts}
    assert all((f / "__init__.py").is_file() for f in folders), sorted(str(f) for f in folders)
    if package == "autograder":
        listed = set(tomllib.loads((REPO / "autograder" / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
        wanted = {".".join(f.relative_to(REPO).parts) for f in folders}
        assert wanted == listed, f"autograder/pyproject.toml packages: add {wanted - listed}, drop {listed - wanted}"
