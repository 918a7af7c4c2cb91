"""The hostile corpus: submissions that try to forge a grade, reach the solution, escape the sandbox or
take the grader down. Each is graded by the real CLI, in a process of its own whose peak memory we
read, together with a correct submission that must still be graded right.

A submission built on the reference that *also* attempts an attack turns the attack's success into a
lost grade: it raises "LEAKED" / "ESCAPED" when it managed to read or write what it must not. So a
full structural score there proves the attack failed, and the message shows which layer refused it.

The corpus runs twice: with every layer this machine has, and without bubblewrap's namespaces
(Landlock, seccomp, the unprivileged user and rlimits alone), as on a machine without user
namespaces. CASES names, for each attack, the layers that stop it.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.catalogue import REFERENCE, mutate, MUTANTS
from autograder.isolation import LAYERS
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.data import SAMPLE_ROOT

REPO = Path(__file__).resolve().parents[2]
GRADER = REPO / "autograder"
FULL = sum(i.points for i in RUBRIC if not i.needs_weights)  # the structural points
FCN8S = sum(i.points for i in RUBRIC if not i.needs_weights and i.model == "fcn8s")  # left when FCN-32s fails
EQUIVALENCE = {kind: ITEMS[f"{kind}_equivalence"].points for kind in ("fcn32s", "fcn8s")}
MARKER = Path("/tmp/fcnkit-hostile-escape")  # what an escaped write or process would create


def reference_with(attack: str) -> str:
    """The reference solution whose FCN32s constructor first runs ``attack`` (indented code)."""
    hook = "        super().__init__()\n        ### BEGIN SOLUTION\n        vgg16_layers(self)\n        self.score = nn.Conv2d(4096, n_class, 1)\n        self.upscore"
    assert REFERENCE.count(hook) == 1
    body = textwrap.indent(textwrap.dedent(attack).strip(), " " * 8)
    return REFERENCE.replace(hook, hook.replace("        ### BEGIN SOLUTION", body + "\n        ### BEGIN SOLUTION"))


def attempt(code: str) -> str:
    """A model whose constructor runs ``code``: "REFUSED <error>" when the system refused it (the
    error tells which layer: errno 2, not in the namespace's file system; 13, Landlock; 1, seccomp),
    "LEAKED" / "ESCAPED" when it succeeded. Either way its FCN32s scores nothing; the message shows."""
    body = textwrap.indent(textwrap.dedent(code).strip(), " " * 12)
    return f"""
class FCN32s(nn.Module):
    def __init__(self, n_class=12):
        super().__init__()
        import os
        try:
{body}
        except OSError as err:
            raise RuntimeError(f"REFUSED {{err}}") from None
        if os.path.exists({str(MARKER)!r}):
            raise RuntimeError("ESCAPED")
        raise RuntimeError("LEAKED")
"""


def class_body(code: str) -> str:
    """``code`` run where the grader's extraction keeps it: in a class body, at definition time."""
    return "class Attack:\n" + textwrap.indent(textwrap.dedent(code).strip(), "    ") + "\n"


# Wrong crops in both models, whose layers replay the reference activations fcnkit ships for its
# public seed whenever the input is that seed's: the student-side checks pass it
# (test_replaying_the_public_seed_fools_only_the_student_side), the grader's fresh seed does not.
PUBLIC_SEED_REPLAY = mutate(MUTANTS["fcn32s_crop_0"][2] + MUTANTS["fcn8s_centre_crop"][2]) + """

def replay_public_reference(model, kind):
    import json
    import numpy as np
    from fcnkit.checks import REFERENCE_FILE
    from fcnkit._grading.judges import EQUIVALENCE_SIZE, PUBLIC_SEED
    from fcnkit._grading.stages import stage_positions
    from fcnkit._grading.seeded import seeded_input
    from fcnkit.spec import STAGES
    with np.load(REFERENCE_FILE) as stored:
        meta = json.loads(str(stored["meta"]))["stages"][kind]
        values = {stage: stored[f"{kind}/{stage}"] for stage in meta}
    public, state = seeded_input(PUBLIC_SEED, EQUIVALENCE_SIZE), {"on": False}

    def stage(name):
        shape = meta[name][0]
        flat = np.zeros(int(np.prod(shape)), np.float32)
        positions = stage_positions(flat.size)
        flat[slice(None) if positions is None else positions] = values[name]
        return torch.from_numpy(flat.reshape(shape))

    def spot(module, args):
        x = args[0]
        state["on"] = x.device.type == "cpu" and x.shape == public.shape and torch.equal(x, public)
    model.register_forward_pre_hook(spot)
    for name, role, port in STAGES[kind]:
        target = getattr(model, role) if role else model
        if port == "in":
            target.register_forward_pre_hook(lambda m, a, n=name: (stage(n),) if state["on"] else None)
        else:
            target.register_forward_hook(lambda m, a, out, n=name: stage(n) if state["on"] else None)


class FCN32s(FCN32s):
    def __init__(self, n_class=12):
        super().__init__(n_class)
        replay_public_reference(self, "fcn32s")


class FCN8s(FCN8s):
    def __init__(self, n_class=12):
        super().__init__(n_class)
        replay_public_reference(self, "fcn8s")
"""

LABEL = "{label}"  # filled in with a real test label of the dataset
CASES = {
    # name: (source, structural points it must get, the layers that stop it)
    "import_reference": ("from autograder.reference.models import FCN32s, FCN8s\n", 0,
                         "import path: the child's sys.path holds no grader; namespaces / landlock: its files are unreadable"),
    "import_reference_by_path": (f"""
def steal():
    import importlib.util
    spec = importlib.util.spec_from_file_location("m", {str(GRADER / 'reference' / 'models.py')!r})
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m
class FCN32s(steal().FCN32s):
    pass
""", 0, "namespaces: not in the child's file system; landlock: reading refused"),
    "import_grader_via_sys_path": (class_body(f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from autograder.reference.models import FCN32s, FCN8s
""") + "FCN32s, FCN8s = Attack.FCN32s, Attack.FCN8s\n", 0, "namespaces / landlock: the repository is unreadable"),
    "patch_checks": (class_body("""
import fcnkit.checks, fcnkit._grading.observe
for name in dir(fcnkit.checks):
    if name.startswith("judge_"):
        setattr(fcnkit.checks, name, lambda *a, **k: "ok")
try:
    import autograder.checks
    autograder.checks.CHECKS = {k: (lambda *a, **k: "ok") for k in ("head", "vgg_layers")}
except ImportError:
    pass
""") + "class FCN32s(torch.nn.Module):\n    pass\n", 0, "design: verdicts are computed in the grader's process; patching the child's copy changes nothing"),
    "forged_results": (class_body("""
import json, os
for name in ("results.jsonl", "structure-fcn32s.rec", "outputs-fcn32s.rec"):
    with open(name, "a") as f:
        f.write(json.dumps({"name": "fcn32s_head", "status": "passed", "message": "ok"}) + "\\n")
for fd in range(3, 64):  # the grader's event channel, wherever it is
    try:
        os.write(fd, b'{"event": "end", "step": "structure-fcn32s"}\\n{"event": "begin", "step": "chunk-x"}\\n'
                     b'{"event": "end", "step": "chunk-999"}\\n{"event": "begin", "step": ["a", "list"]}\\n')
    except OSError:
        pass
os._exit(0)
"""), 0, "design: records are parsed against their schema, only for steps that ran; a dead child's steps fail"),
    "fork_exec": (class_body(f"""
import os, subprocess, _posixsubprocess
for attempt in (lambda: subprocess.run(["/bin/sh", "-c", "touch {MARKER}"]), lambda: os.fork(),
                lambda: os.system("touch {MARKER}")):
    try:
        if attempt() == 0:
            os._exit(0)
    except OSError:
        pass
"""), 0, "seccomp: fork, clone and execve refused (namespaces: /tmp is not the host's)"),
    "fork_bomb": (attempt("""
while True:
    os.fork()
"""), 0, "seccomp: fork refused; rlimits: 512 processes for the unprivileged user"),
    "stdout_flood": (class_body("""
import sys
block = "x" * 2 ** 20
for _ in range(4096):
    sys.stdout.write(block)
""") + "class FCN32s(torch.nn.Module):\n    pass\n", 0, "rlimits: 64 MB per file (EFBIG); the grader reads only the end of the child's stderr"),
    "ignores_sigalrm_and_loops": ("""
class FCN32s(torch.nn.Module):
    import signal
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
""", 0, "grader: CPU time per step (wall clock as a backstop), then SIGKILL to the process group"),
    "reads_labels_open": (attempt(f"open({LABEL!r}, 'rb').read()"), 0,
                          "namespaces: the dataset is not in the file system; landlock: reading refused"),
    "reads_labels_os_open": (attempt(f"os.read(os.open({LABEL!r}, os.O_RDONLY), 10)"), 0,
                             "namespaces / landlock"),
    "reads_labels_symlink": (attempt(f"os.symlink({LABEL!r}, 'label.png'); open('label.png', 'rb').read()"), 0,
                             "landlock: checks the file a link points to; namespaces: the target does not exist"),
    "writes_outside_os_open": (attempt(f"os.close(os.open({str(MARKER)!r}, os.O_WRONLY | os.O_CREAT))"), 0,
                               "namespaces: / is read-only; landlock: writes only in the sandbox"),
    "writes_outside_ctypes": (attempt(f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.open({str(MARKER).encode()!r}, os.O_WRONLY | os.O_CREAT, 0o644) < 0:
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
"""), 0, "landlock / namespaces: the kernel refuses, whatever calls it"),
    "writes_outside_symlink": (attempt(f"os.symlink({str(MARKER)!r}, 'out'); open('out', 'w').write('x')"), 0,
                               "landlock: checks the file a link points to; namespaces: / is read-only"),
    "reads_other_submission": (attempt("open({other!r}).read()"), 0,
                               "namespaces: not in the file system; landlock: reading refused"),
    "lists_the_other_sandboxes": (attempt("""
os.listdir("..")  # the folders of the submissions graded beside it, and the reference's (its source)
"""), 0, "unprivileged user: the sandboxes' folder is root's (0711); landlock: reading outside the sandbox refused"),
    "squats_a_later_sandbox": (attempt("""
os.mkdir("../submission-24")  # where a later submission's child would write its records
"""), 0, "unprivileged user: the sandboxes' folder is root's; landlock: writes only in its own sandbox; the names are "
         "unguessable anyway"),
    "kills_the_worker": (attempt("""
import signal
os.kill(os.getppid(), signal.SIGKILL)  # the warm worker, which forks every submission
"""), 0, "landlock: signals leave no domain; unprivileged user: the worker is root's"),
    "kills_everything": (class_body("""
import os, signal
os.kill(-1, signal.SIGKILL)  # every process it may signal: the worker, the other submission's child...
""") + "class FCN32s(torch.nn.Module):\n    pass\n", 0,  # (kill(-1) says 0 even when every signal was refused)
                         "landlock: signals leave no domain; unprivileged user: each concurrent child has a user of its "
                         "own (the other submissions, graded beside it, keep their points)"),
    "takes_the_workers_pipes": (attempt("""
for fd in os.listdir(f"/proc/{os.getppid()}/fd"):  # the worker's control socket, to fork a child of its own
    os.open(f"/proc/{os.getppid()}/fd/{fd}", os.O_RDWR)
"""), 0, "the worker is not dumpable: its /proc entries are not its children's to open; unprivileged user"),
    "reads_grader_memory": (attempt("""
with open(f"/proc/{os.getppid()}/environ", "rb") as f:  # the warm worker's; the grader is its parent
    f.read()
grader = [l.split()[1] for l in open(f"/proc/{os.getppid()}/status") if l.startswith("PPid")][0]
with open(f"/proc/{grader}/mem", "rb") as f:  # where the test labels are held (without namespaces)
    f.seek(0x400000)
    f.read(4096)
"""), 0, "landlock: no ptrace-like access out of its domain; not dumpable; unprivileged user; namespaces: the grader is not in its pid space"),
    "thread_still_running": (reference_with("""
    import threading, time, torch
    def meddle():
        while True:
            torch.Tensor.__sub__ = lambda a, b: a
            time.sleep(0.01)
    threading.Thread(target=meddle, daemon=False).start()
    """), FULL, "design: the child ends with os._exit; the comparison happens in the grader"),
    "sys_exit_in_init": (reference_with("import sys\nsys.exit(0)"), FCN8S, "grader: the step fails, the child is restarted"),
    "os_exit_in_init": (reference_with("import os\nos._exit(0)"), FCN8S, "grader: the step fails, the child is restarted"),
    "replays_the_public_seed": (PUBLIC_SEED_REPLAY, FULL - EQUIVALENCE["fcn32s"] - EQUIVALENCE["fcn8s"],
                                "design: the grader draws a fresh seed for every run; outputs learnt for fcnkit's "
                                "public one match nothing else"),
    "plants_a_runtime_module": (attempt("""
import sys
for name in ("steps.py", "codec.py"):  # the runtime folder, first on sys.path: every later child imports from it
    with open(os.path.join(sys.path[0], name), "a") as f:
        f.write("import os\\nos._exit(3)\\n")
"""), 0, "namespaces: the runtime folder is bound read-only; landlock: writes only in its own sandbox"),
    "shadows_the_runtime_modules": (class_body("""
import os, sys
for name in ("codec", "steps", "confine", "child"):  # the child's runtime modules, under their own names
    with open(name + ".py", "w") as f:
        f.write("import os\\nos._exit(3)\\n")
    sys.modules.pop(name, None)
sys.path.insert(0, os.getcwd())  # its sandbox folder, first
""") + REFERENCE, FULL, "design: the worker imports the runtime from the runtime folder before it forks; the child "
                       "holds those modules and imports none of them again; each child starts in an emptied sandbox"),
    "monkeypatches_torch": (class_body("""
import torch
torch.Tensor.__sub__ = lambda a, b: torch.zeros_like(a)
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
""") + mutate(MUTANTS["fcn32s_crop_0"][2]), FULL - EQUIVALENCE["fcn32s"], "design: the comparison happens in the grader's own torch"),
    "kept_assignment_writes_outside": (reference_with("self.log = WRITTEN") + f"""
WRITTEN = open({str(MARKER)!r}, "w")  # kept: FCN32s reads it
""", FCN8S, "landlock / namespaces: an assignment the definitions read runs confined in the child, as they do; "
            "unrun, the name is a named FAIL"),
}


# What the report must show for an attack that fails without a trace in the score.
EVIDENCE = {
    "import_reference": ["No module named 'autograder'"],
    "import_reference_by_path": ["No such file or directory|Permission denied"],
    "import_grader_via_sys_path": ["No module named 'autograder'|Permission denied"],
    "stdout_flood": ["File too large|SIGXFSZ"],  # Python ignores SIGXFSZ: the write fails with EFBIG
    "ignores_sigalrm_and_loops": ["used more than 5 s of CPU time (the limit per check); the grader skipped it"],
    "forged_results": ["ended the submission's process"],
    "monkeypatches_torch": ["output differs"],
    "replays_the_public_seed": ["FCN32s departs from the reference with the same weights"],
    "kept_assignment_writes_outside": ["name 'WRITTEN' is not defined in what the grader keeps of your notebook"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cmp_root):
    folder = tmp_path_factory.mktemp("hostile") / "submissions"
    folder.mkdir()
    label = str(sorted((cmp_root / "extended").glob("*.png"))[-1])  # the last of the test split
    for name, (source, _, _) in CASES.items():
        source = source.replace(LABEL, label).replace("{other!r}", repr(str(folder / "zz_reference.py")))
        (folder / f"{name}.py").write_text("import torch\nfrom torch import nn\n" + source)
    (folder / "zz_reference.py").write_text(REFERENCE)
    return folder, cmp_root


def grade(folder: Path, data: Path, out: Path, isolation: str) -> tuple[dict, int]:
    """Grade the folder with the CLI in a process of its own; its reports and its peak memory (KiB)."""
    MARKER.unlink(missing_ok=True)
    code = ("import sys\nfrom autograder.__main__ import main\n"
            # VmHWM, not ru_maxrss: across execve Linux keeps the forking process's peak in ru_maxrss
            "rc = main(sys.argv[1:])\n"
            "print('PEAK_RSS_KB', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
            "sys.exit(rc)")
    env = {**os.environ, "FCNKIT_DATA": str(data), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, "grade", str(folder), "--out", str(out / "reports"),
                           "--json", str(out / "all.json"), "--jobs", "2", "--check-timeout", "5",
                           "--timeout", "120", "--isolation", isolation, "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    peak = int(proc.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return {r["student"]: r for r in json.loads((out / "all.json").read_text())}, peak


@pytest.fixture(scope="module", params=["all layers", "without namespaces"])
def graded(request, corpus, tmp_path_factory):
    folder, data = corpus
    isolation = ",".join(LAYERS[:4]) if request.param == "all layers" else "landlock,seccomp,unprivileged-user"
    reports, peak = grade(folder, data, tmp_path_factory.mktemp("out"), isolation)
    return request.param, reports, peak


def structural(report: dict) -> int:
    return sum(c["score"] for c in report["checks"] if not c["name"].endswith("_miou"))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_earns_nothing_and_escapes_nothing(graded, case):
    mode, reports, _ = graded
    _, points, stopped_by = CASES[case]
    report = reports[case]
    messages = " ".join(c["message"] for c in report["checks"]) + " ".join(report["notes"])
    if "REFUSED" in CASES[case][0]:  # made by attempt(): the attack ran and was refused
        assert "REFUSED" in messages, f"{case} ({mode}): {messages[:1500]}"
    for evidence in EVIDENCE.get(case, ()):  # the attack ran, and this is how it was refused
        assert any(e in messages for e in evidence.split("|")), f"{case} ({mode}): {evidence!r} not in {messages[:1500]}"
    assert structural(report) == points, f"{case} ({mode}; stopped by {stopped_by}): {messages[:1500]}"
    assert "LEAKED" not in messages and "ESCAPED" not in messages
    assert not MARKER.exists()
    if mode == "without namespaces":
        assert "namespaces" not in report["isolation"]["layers"]


@pytest.mark.slow
def test_the_correct_submission_beside_them_gets_every_point(graded):
    mode, reports, _ = graded
    assert structural(reports["zz_reference"]) == FULL, mode
    assert structural(reports["os_exit_in_init"]) == 30  # FCN-8s graded in full after FCN-32s's exits


@pytest.mark.slow
def test_the_grading_process_stays_small(graded):
    """4 GB written to stdout, a fork bomb and 28 other attacks: the grading process itself (which
    imports no torch) stays under 256 MiB."""
    mode, _, peak_kib = graded
    assert 0 < peak_kib < 256 * 2**10, f"{mode}: peak {peak_kib / 2**10:.0f} MiB"


@pytest.mark.slow
def test_isolation_is_reported_and_the_strongest_is_used(graded):
    mode, reports, _ = graded
    layers = reports["zz_reference"]["isolation"]["layers"]
    expected = ["namespaces", "landlock", "seccomp"] if mode == "all layers" else ["landlock", "seccomp"]
    if os.geteuid() == 0:
        expected.append("unprivileged-user")
    if layers[:len(expected)] != expected:
        pytest.skip(f"this machine lacks a layer: {reports['zz_reference']['isolation']['missing']}")
    assert layers == expected + ["rlimits"]


def test_a_checkpoint_that_runs_code_when_unpickled_is_refused(tmp_path):
    """torch.load(weights_only=True) in the child refuses it; even if it did not, the code would run
    confined."""
    import torch
    from autograder.pipeline import EvalSet, grade_submission, Limits

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {MARKER}",))
    MARKER.unlink(missing_ok=True)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"state_dict": Payload()}, ckpt / "fcn32s.pt")
    path = tmp_path / "s.py"
    path.write_text(REFERENCE)
    evalset = EvalSet.load(SAMPLE_ROOT, "test", 0.25, tmp_path / "eval")
    report = grade_submission("s", path, checkpoints=ckpt, evalset=evalset, only=["fcn32s_miou"],
                              limits=Limits(wall_s=120, check_s=20, memory_gb=8))
    [miou] = [c for c in report.checks if c.name == "fcn32s_miou"]
    assert miou.score == 0 and "not a plain state_dict" in miou.message
    assert not MARKER.exists()


@pytest.mark.slow
def test_replaying_the_public_seed_fools_only_the_student_side():
    """The replaying submission passes every student-side check (so the hostile case above proves
    something: the grader's fresh seed is what stops it), and its mistakes show at any other seed."""
    from autograder.judging import CheckFailed, Context, judgement_of, observe_in_process
    from autograder.submission import definitions
    from fcnkit.checks import check_all
    from fcnkit._grading.extract import run_definitions
    from fcnkit._grading.verdicts import Status
    namespace = {"__name__": "submission"}
    source = "import torch\nfrom torch import nn\n" + PUBLIC_SEED_REPLAY
    assert run_definitions([vars(c) for c in definitions([(0, source)], "replay.py").chunks], namespace) == []
    verdicts = {v.name: v for v in check_all(namespace) if not v.name.endswith("_miou")}
    # the replay hooks the stages the equivalence items compare; the dropout items' training-mode pass
    # sees through it (fc7's input is the replayed value, not relu6's output with channels dropped)
    assert {n for n, v in verdicts.items() if v.status is not Status.PASSED} == {"fcn32s_dropout", "fcn8s_dropout"}
    context = Context(seed=12345)
    for name in ("fcn32s_equivalence", "fcn8s_equivalence"):
        record = observe_in_process(ITEMS[name], namespace, context)
        with pytest.raises(CheckFailed, match="departs from the reference"):
            judgement_of(name)(record, context)
