"""Build the assignment from its source notebook, which instructors edit in Jupyter.

    python notebooks/build.py --release  # refresh the source's generated cells, then the release (nbgrader)
    python notebooks/build.py            # refresh the source's generated cells only
    python notebooks/build.py --check    # fail if the source or the release is out of date (CI)
    python notebooks/build.py --release --install git+https://github.com/ORG/fcnkit@v0.3.0  # Colab-friendly

The source notebook (``source/fcn_segmentation/fcn_segmentation.ipynb``) holds the text, the setup and
training cells, the questions, the answer keys and the points of the written answers. The build
rewrites only what has one home elsewhere, finding the cells by their nbgrader ``grade_id`` or tag:

- the solution cells (``SOLUTIONS``): the code between ``# BEGIN`` / ``# END`` markers in
  ``autograder/reference/models.py``, the one source of the reference solution;
- each autograded test cell (``grade_id`` = a rubric item of ``autograder/rubric.py``): its first line
  (title and points), its points, its hidden part (the grader's check, with the arguments of the
  cell's visible ``check(...)`` call) and a ``check(...)`` call where it has none. The lines in
  between are the instructor's. A rubric item without a cell gets one, after its model's last test;
  a test cell for an item the rubric no longer has stops the build;
- the markdown cell tagged ``points``: the points per part, from the rubric and the answer cells;
- the setup cell's ``FCNKIT_INSTALL = "..."`` line: where the notebook installs fcnkit from when it is
  missing (``--install``: the student wheel, which ``--release`` builds beside the notebook; a git or
  https URL; or a pinned name on a package index, ``NAME==VERSION``). Never a bare name: that installs
  whatever the index holds under it, perhaps somebody else's package.

It also writes what the student package needs of the grader, generated so that it has one source:
``fcnkit/rubric.json`` (the items' names, titles and points, from the rubric) and
``fcnkit/reference_stages.npz`` (the reference's activations at every stage the equivalence items
compare, for fcnkit's public seed and the checks' input: sampled values, no code), which the
notebook's checks and ``python -m fcnkit check`` compare with. ``--check`` fails when either is stale.

It also checks that each question's text states its answer cell's points, gives graded cells their
``grade_id`` as cell id, and drops outputs, execution counts and editor metadata, so that a diff of
the source shows what an instructor changed.
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ASSIGNMENT = "fcn_segmentation"
SOURCE = HERE / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = HERE / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
REFERENCE = REPO / "autograder" / "reference" / "models.py"
sys.path.insert(0, str(REPO))

from autograder.reports.nbgrader import run_nbgrader  # noqa: E402
from autograder.rubric import ITEMS, RUBRIC  # noqa: E402

# Solution cell (grade_id) -> the blocks of the reference models it holds, in order.
SOLUTIONS = {"vgg16_layers": ("imports", "vgg16_layers"), "fcn32s_solution": ("FCN32s",),
             "fcn8s_solution": ("FCN8s",)}
MODEL_NAMES = {"fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}
HIDDEN = "### BEGIN HIDDEN TESTS\nfrom autograder.checks import check_in_process\ncheck_in_process({args})\n### END HIDDEN TESTS"
KEPT_METADATA = ("nbgrader", "tags")
INSTALL_LINE = re.compile(r'^FCNKIT_INSTALL = "([^"\n]*)"', re.M)


RUBRIC_JSON = REPO / "fcnkit" / "rubric.json"
README = REPO / "README.md"
TABLE_START = "<!-- the rubric table: written by notebooks/build.py from autograder/rubric.py -->\n"
TABLE_END = "<!-- end of the rubric table -->\n"
REFERENCE_STAGES = REPO / "fcnkit" / "reference_stages.npz"
STAGES_TOLERANCE = 1e-5  # relative to a stage's scale: ten times finer than the check's own tolerance


class BuildError(Exception):
    """The source notebook cannot be built as it is; the message says what to change."""


def reference_block(name: str, reference: str | None = None) -> str:
    """The code between ``# BEGIN name`` and ``# END name`` in the reference models."""
    reference = REFERENCE.read_text() if reference is None else reference
    begin, end = f"# BEGIN {name}\n", f"# END {name}\n"
    if begin not in reference or end not in reference:
        raise BuildError(f"{REFERENCE.relative_to(REPO)} has no '# BEGIN {name}' / '# END {name}' block")
    return reference[reference.index(begin) + len(begin):reference.index(end)].strip("\n")


def solution_source(grade_id: str) -> str:
    return "\n\n\n".join(reference_block(name) for name in SOLUTIONS[grade_id])


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_source(name: str, current: str) -> str:
    """A test cell's source: the generated title line, the instructor's lines, a visible
    ``check(...)`` call, and the hidden check with the same arguments."""
    item = ITEMS[name]
    lines = current.split("### BEGIN HIDDEN TESTS")[0].strip("\n").splitlines()
    if lines and lines[0].startswith("# ") and lines[0].endswith("points)"):
        lines = lines[1:]
    calls = [line for line in lines if re.match(rf'check\("{name}"', line)]
    if not calls:
        lines.append(f'check("{name}", globals())')
        calls = lines[-1:]
    args = calls[-1][len("check("):].rstrip().removesuffix(")")
    body = "\n".join([f"# {item.title} ({item.points} points)", *lines])
    return body + "\n" + HIDDEN.format(args=args)


def test_cell(name: str, source: str = ""):
    item = ITEMS[name]
    cell = nbformat.v4.new_code_cell(test_source(name, source))
    cell.metadata = {"nbgrader": {"schema_version": 3, "grade": True, "solution": False, "locked": True,
                                  "points": item.points, "grade_id": name}}
    return cell


def points_text(nb) -> str:
    answers = [_nbgrader(c)["points"] for c in nb.cells if _nbgrader(c).get("grade") and _nbgrader(c).get("solution")]
    parts = [f"{MODEL_NAMES[model]} {sum(i.points for i in RUBRIC if i.model == model)}" for model in MODEL_NAMES]
    total = sum(i.points for i in RUBRIC) + sum(answers)
    return (f"**Points: {total}.** {', '.join(parts)} (checked automatically); {len(answers)} written "
            f"question{'s' if len(answers) != 1 else ''}, {sum(answers)} (graded by hand).")


def wheel_name() -> str:
    """The student wheel's file name, for the fcnkit version of this repository."""
    version = re.search(r'^__version__ = "([^"]+)"', (REPO / "fcnkit" / "__init__.py").read_text(), re.M)[1]
    return f"fcnkit-{version}-py3-none-any.whl"


def install_spec(spec: str) -> str:
    """What the release installs fcnkit from: a wheel (always the current version's), a URL, or
    ``NAME==VERSION``; refuses a bare name, or anything pip would read as an option."""
    if spec.endswith(".whl"):
        return wheel_name()
    if re.fullmatch(r"(git\+)?https://[^\s\"']+", spec) or re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9._+!-]+", spec):
        return spec
    raise BuildError(f"--install {spec!r}: give the student wheel ({wheel_name()}), a git+https:// or https:// URL, "
                     f"or a pinned name on a package index (NAME==VERSION); a bare name installs whatever the index "
                     f"holds under it")


def set_install(nb, spec: str | None) -> str:
    """Rewrite the setup cell's FCNKIT_INSTALL line (to ``spec``, else to its own value, checked)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and INSTALL_LINE.search(c.source)]
    if len(cells) != 1:
        raise BuildError(f"the source needs one setup cell with a line FCNKIT_INSTALL = \"...\" (where the notebook "
                         f"installs fcnkit from); it has {len(cells)}")
    spec = install_spec(spec or INSTALL_LINE.search(cells[0].source)[1])
    cells[0].source = INSTALL_LINE.sub(f'FCNKIT_INSTALL = "{spec}"', cells[0].source)
    return spec


def installs_from(notebook: Path) -> str:
    """The FCNKIT_INSTALL value of a built notebook."""
    sources = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    return next((m[1] for m in map(INSTALL_LINE.search, sources) if m), "")


def build_wheel(folder: Path) -> Path:
    """The student wheel (fcnkit, no grader), written into ``folder``."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder),
                    str(REPO)], check=True)
    return folder / wheel_name()


def check_question_points(nb) -> None:
    """``**Question N (P points).**`` in a question's text must match its answer cell's points."""
    for i, cell in enumerate(nb.cells):
        grade_id = _nbgrader(cell).get("grade_id", "")
        if not (grade_id.startswith("question") and _nbgrader(cell).get("grade")):
            continue
        text = next((c.source for c in reversed(nb.cells[:i]) if c.cell_type == "markdown"
                     and _nbgrader(c).get("grade_id") != grade_id), "")
        stated = re.findall(r"\((\d+) points?\)", text)
        if stated and int(stated[-1]) != _nbgrader(cell)["points"]:
            raise BuildError(f"the text before answer cell {grade_id} says {stated[-1]} points, the cell gives "
                             f"{_nbgrader(cell)['points']}: make them agree (the cell's points are what nbgrader uses)")


def rubric_json() -> str:
    """The public part of the rubric (no judgements), as fcnkit reads it."""
    items = [{"name": i.name, "model": i.model, "points": i.points, "title": i.title, "observes": i.observes,
              "judged_by": i.judged_by, "needs_weights": i.needs_weights} for i in RUBRIC]
    return json.dumps({"generated_by": "notebooks/build.py from autograder/rubric.py", "items": items}, indent=1) + "\n"


def reference_stage_arrays() -> dict:
    """``{"meta": json, "<kind>/<stage>": values}``: the reference's activations for fcnkit's public
    seed, every stage the equivalence items compare (sampled where large)."""
    import numpy as np
    from autograder.reference.observed import reference_outputs
    from fcnkit._grading.judges import EQUIVALENCE_SIZE, PUBLIC_SEED
    from fcnkit._grading.stages import StageValues, stages_of
    from fcnkit.spec import MODEL_CLASSES, N_CLASS
    arrays, meta = {}, {"seed": PUBLIC_SEED, "size": list(EQUIVALENCE_SIZE), "n_class": N_CLASS, "stages": {}}
    for kind in MODEL_CLASSES:
        meta["stages"][kind] = {}
        for stage, full in stages_of(reference_outputs(kind, PUBLIC_SEED, N_CLASS)).items():
            sampled = StageValues.of(full.values.reshape(full.shape), sampled=True)
            arrays[f"{kind}/{stage}"] = sampled.values
            meta["stages"][kind][stage] = [list(sampled.shape), sampled.scale]
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def stages_differ(path: Path, arrays: dict) -> str:
    """Why the stored reference stages are not ``arrays`` (beyond float noise); "" when they are."""
    import numpy as np
    if not path.is_file():
        return "missing"
    with np.load(path, allow_pickle=False) as stored:
        if set(stored.files) != set(arrays):
            return "other stages"
        old, new = json.loads(str(stored["meta"])), json.loads(str(arrays["meta"]))
        for kind, stages in new["stages"].items():
            for stage, (shape, scale) in stages.items():
                was_shape, was_scale = old["stages"].get(kind, {}).get(stage, (None, None))
                if was_shape != shape or not abs(was_scale - scale) <= STAGES_TOLERANCE * scale:
                    return f"{kind} {stage}: another shape or scale"
                if not np.abs(stored[f"{kind}/{stage}"] - arrays[f"{kind}/{stage}"]).max() <= STAGES_TOLERANCE * scale:
                    return f"{kind} {stage}: other values"
        if {k: v for k, v in old.items() if k != "stages"} != {k: v for k, v in new.items() if k != "stages"}:
            return "another seed, size or class count"
    return ""


def rubric_table(questions: list[int]) -> str:
    """The README's table of the rubric: each item's part, title and points (the mIoU items with their
    thresholds), then the written questions' points."""
    from fcnkit.spec import MIOU_THRESHOLDS
    rows, part = ["| part | check | points |", "|---|---|---|"], None
    for item in RUBRIC:
        title = item.title.removeprefix(f"{MODEL_NAMES[item.model]}: ")
        if item.needs_weights:
            title += f" (>= {MIOU_THRESHOLDS[item.model]:.2f})"
        rows.append(f"| {MODEL_NAMES[item.model] if item.model != part else ''} | {title} | {item.points} |")
        part = item.model
    rows.append(f"| questions | two written answers, graded by hand in nbgrader | {' + '.join(map(str, questions))} |")
    return "\n".join(rows) + "\n"


def readme_with_table(text: str, questions: list[int]) -> str:
    """``text`` (the README) with its rubric table rewritten between the two markers."""
    if TABLE_START not in text or TABLE_END not in text:
        raise BuildError(f"{README} has lost its rubric table's markers: put back the lines {TABLE_START.strip()} "
                         f"and {TABLE_END.strip()} around the table")
    head, rest = text.split(TABLE_START, 1)
    return head + TABLE_START + rubric_table(questions) + TABLE_END + rest.split(TABLE_END, 1)[1]


def question_points(source: Path) -> list[int]:
    nb = nbformat.read(source, as_version=4)
    return [_nbgrader(c)["points"] for c in nb.cells
            if _nbgrader(c).get("grade_id", "").startswith("question") and "points" in _nbgrader(c)]


def write_public_files(check: bool = False) -> list[Path]:
    """Write fcnkit's rubric.json and reference_stages.npz, and the README's rubric table, where they
    are out of date (``check``: only say which are); return those."""
    import numpy as np
    stale = []
    readme = README.read_text(encoding="utf-8")
    wanted = readme_with_table(readme, question_points(SOURCE))
    if readme != wanted:
        stale.append(README)
        if not check:
            write_whole(README, wanted.encode("utf-8"))
    if not RUBRIC_JSON.is_file() or RUBRIC_JSON.read_text(encoding="utf-8") != rubric_json():
        stale.append(RUBRIC_JSON)
        if not check:
            write_whole(RUBRIC_JSON, rubric_json().encode())
    arrays = reference_stage_arrays()
    if stages_differ(REFERENCE_STAGES, arrays):
        stale.append(REFERENCE_STAGES)
        if not check:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            write_whole(REFERENCE_STAGES, buffer.getvalue())
    return stale


def write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` whole: a temporary file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def place_for(nb, item) -> int:
    """Where a new item's test cell goes: after the last test cell of its kind for its model (the structural
    checks before training, the trained ones after it), else after its model's last, else at the end."""
    def cells(same):
        return [i for i, c in enumerate(nb.cells) if (other := ITEMS.get(_nbgrader(c).get("grade_id"))) and same(other)]
    kind = cells(lambda other: other.model == item.model and other.needs_weights == item.needs_weights)
    model = cells(lambda other: other.model == item.model)
    return (kind or model or [len(nb.cells) - 1])[-1] + 1


def build(nb, install: str | None = None) -> list[str]:
    """Refresh the generated cells of ``nb`` in place (``install``: see :func:`install_spec`); return
    what was added."""
    added = []
    set_install(nb, install)
    ids = {_nbgrader(c).get("grade_id"): c for c in nb.cells if _nbgrader(c).get("grade_id")}
    stale = [g for g, c in ids.items() if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")
             and g not in ITEMS]
    if stale:
        raise BuildError(f"test cell(s) {', '.join(stale)} check(s) nothing in autograder/rubric.py: delete the "
                         f"cell(s), or add the item(s) to the rubric")
    for grade_id in SOLUTIONS:
        if grade_id not in ids:
            raise BuildError(f"no solution cell with grade_id {grade_id}: its code comes from "
                             f"{REFERENCE.relative_to(REPO)} ({', '.join(SOLUTIONS[grade_id])})")
        ids[grade_id].source = solution_source(grade_id)
    for item in RUBRIC:
        if item.name in ids:
            cell = ids[item.name]
            cell.source = test_source(item.name, cell.source)
            cell.metadata["nbgrader"].update(points=item.points, grade=True, solution=False, locked=True)
            continue
        nb.cells.insert(place_for(nb, item), test_cell(item.name))
        added.append(item.name)
    check_question_points(nb)
    tagged = [c for c in nb.cells if "points" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise BuildError("the source needs one markdown cell tagged 'points' (where the points per part are "
                         f"written); it has {len(tagged)}")
    tagged[0].source = points_text(nb)
    normalise(nb)
    return added


def normalise(nb) -> None:
    """No outputs, no editor state; graded cells' ids are their grade_ids, others keep theirs."""
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen = set()
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEPT_METADATA and v}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        cell.id = _nbgrader(cell).get("grade_id") or cell.get("id") or \
            "cell-" + hashlib.sha1(cell.source.encode()).hexdigest()[:8]
        while cell.id in seen:
            cell.id = "cell-" + hashlib.sha1(cell.id.encode()).hexdigest()[:8]
        seen.add(cell.id)


def build_source(source: Path = SOURCE, out: Path | None = None, install: str | None = None) -> list[str]:
    """Read the source notebook, refresh it, write it to ``out`` (default: in place)."""
    try:
        nb = nbformat.read(source, as_version=4)
    except (OSError, ValueError) as err:
        raise BuildError(f"cannot read {source}: {err}") from None
    added = build(nb, install)
    nbformat.validate(nb)
    (out or source).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out or source)
    return added


def generate_release(course: Path, source: Path = SOURCE, gradebook: Path | None = None) -> Path:
    """Run ``nbgrader generate_assignment`` on a scratch copy of the course (works from a virtual
    environment that is not activated: :func:`autograder.reports.nbgrader.run_nbgrader`); return the
    release folder.

    Args:
        course: the scratch course folder (made here).
        source: the source notebook.
        gradebook: the real course's ``gradebook.db``, where the assignment, its notebook and its
            cells are recorded as ``nbgrader generate_assignment`` run in that course records them
            (created when missing); by default the scratch course's own.
    """
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    shutil.copy(source, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    database = [f"--CourseDirectory.db_url=sqlite:///{Path(gradebook).resolve()}"] if gradebook else []
    run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force", *database, check=True)
    return course / "release" / ASSIGNMENT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", action="store_true", help="also regenerate the student release")
    parser.add_argument("--check", action="store_true", help="fail if the committed notebooks are out of date")
    parser.add_argument("--install", help="where the release installs fcnkit from when it is missing: the student "
                        f"wheel ({wheel_name()}, built beside the notebook by --release; the default), a git+https:// "
                        "URL, or NAME==VERSION on a package index (kept in the source until changed)")
    parser.add_argument("--course", type=Path, default=HERE,
                        help="the course folder holding source/ and release/ (default: notebooks/)")
    args = parser.parse_args(argv)
    source = args.course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = args.course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            if args.check:
                added = build_source(source, tmp / "source.ipynb")
                stale = [] if filecmp.cmp(tmp / "source.ipynb", source, shallow=False) else [source]
                built = generate_release(tmp / "course", tmp / "source.ipynb")
                stale += [] if release.is_file() and filecmp.cmp(built / release.name, release, shallow=False) \
                    else [release]
                stale += write_public_files(check=True)
                for path in stale:
                    print(f"{path} is out of date: run python notebooks/build.py --release"
                          + (f" (it adds test cells for {', '.join(added)})" if added and path == source else ""))
                return 1 if stale else 0
            added = build_source(source, install=args.install)
        except BuildError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {source}" + (f" (added test cells: {', '.join(added)})" if added else ""))
        for path in write_public_files():
            print(f"wrote {path}")
        if args.release:  # nbgrader's release_assignment and autograde need the assignment in the course's gradebook
            built = generate_release(tmp / "course", source, gradebook=args.course / "gradebook.db")
            if release.parent.exists():
                shutil.rmtree(release.parent)
            shutil.copytree(built, release.parent)
            print(f"wrote {release}; {ASSIGNMENT} recorded in {args.course / 'gradebook.db'}")
            if installs_from(release).endswith(".whl"):
                print(f"wrote {build_wheel(release.parent)} (the notebook installs it when fcnkit is missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
