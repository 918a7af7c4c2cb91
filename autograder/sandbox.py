"""Running a submission in a confined child process, as strongly as this machine allows.

Layers, in the order they are given up when unavailable (each report lists the ones it got):

- ``namespaces``: bubblewrap. The child sees only the system libraries, the interpreter, its
  runtime folder and its sandbox folder; no network, its own process tree. The grader's own files,
  the dataset and other students' work are not in its file system at all.
- ``landlock``: the kernel refuses the child any file outside what it may read (the same list) or
  write (the sandbox folder), any TCP bind or connect, and signals to processes outside it.
- ``seccomp``: no new processes or programs (fork, execve...), no sockets but Unix ones, no ptrace,
  mounts or namespaces.
- ``unprivileged-user``: a grader running as root runs the child as ``nobody`` (uid 65534).
- ``rlimits``: address space, CPU time, file size, open files and process count; always on.

Whatever the layers, the grader keeps: a wall clock per step (a child that overruns is killed
with its process group, and started again without the step that hung), stdout and stderr in files
it reads only the end of, and the records parsed as untrusted data (fcnkit.records).
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import fcnkit
from fcnkit import records

from . import confine

LAYERS = ("namespaces", "landlock", "seccomp", "unprivileged-user", "rlimits")
NOBODY = 65534
SYSTEM_READ = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
MAX_EVENT_LINE = 16 * 1024
OUTPUT_LIMIT_BYTES = 64 * 2**20  # any file the child writes, stdout and stderr included
HERE = Path(__file__).resolve().parent


@dataclass
class Isolation:
    """The layers a grading run got, and why each missing one is missing."""
    layers: list[str]
    missing: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"isolation: {', '.join(self.layers)}"
        if self.missing:
            text += "; missing: " + "; ".join(f"{k} ({v})" for k, v in self.missing.items())
        return text


@dataclass
class Limits:
    wall_s: int = 240  # the whole submission, restarts included
    start_s: int = 60  # interpreter start, imports and confinement
    check_s: int = 30  # one definition chunk or one observation step
    miou_s: int = 900  # predicting the evaluation split for one model
    memory_gb: float = 10.0
    threads: int = 1


@dataclass
class Runtime:
    """What every child of one grading run shares: its runtime folder, import path, readable paths."""
    folder: Path
    sys_path: list[str]
    read: list[str]  # what the child may read, with the hidden paths carved out
    hidden: list[str]
    isolation: Isolation
    device: str = "cpu"


@dataclass
class StepOutcome:
    record: object = None  # the decoded record, when the step ended and its record was valid
    failure: str = ""  # why there is no record


@dataclass
class RunResult:
    steps: dict[str, StepOutcome]
    notes: list[str]
    stopped: str = ""


# ----------------------------------------------------------------------------------- preparing
def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def grant_except(roots, hidden) -> list[str]:
    """``roots`` with every path in ``hidden`` carved out: a root holding a hidden path is replaced
    by its entries (recursively), leaving out the hidden ones."""
    granted = []
    for root in roots:
        root = os.path.realpath(root)
        if not os.path.exists(root) or any(_under(root, h) for h in hidden):
            continue
        if not any(_under(h, root) for h in hidden):
            granted.append(root)
        elif os.path.isdir(root):
            granted += grant_except([os.path.join(root, e) for e in sorted(os.listdir(root))], hidden)
    return granted


def _python_roots() -> list[str]:
    paths = {sys.base_prefix, sys.prefix, *sysconfig.get_paths().values()}
    roots = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    return [r for r in roots if not any(_under(r, o) and r != o for o in roots)]


def _child_sys_path(folder: Path) -> list[str]:
    """The runtime folder, then the interpreter's own import path (standard library and
    site-packages); never the current folder or a repository the grader was started from."""
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    keep = [p for p in sys.path if p and any(_under(os.path.realpath(p), r) for r in prefixes)]
    return [str(folder), *dict.fromkeys(keep)]


def prepare(workdir: Path, hidden=(), device: str = "cpu", want=LAYERS) -> Runtime:
    """Make the runtime folder (child.py, confine.py, a copy of fcnkit) and find the strongest
    isolation this machine gives, by starting a probe child with each candidate set of layers."""
    folder = workdir / "runtime"
    folder.mkdir(parents=True)
    shutil.copy(HERE / "child.py", folder)
    shutil.copy(HERE / "confine.py", folder)
    shutil.copytree(Path(fcnkit.__file__).parent, folder / "fcnkit",
                    ignore=shutil.ignore_patterns("sample_data", "__pycache__"))
    os.chmod(workdir, 0o755)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    hidden = sorted({os.path.realpath(h) for h in (HERE, *hidden)})
    read = grant_except([*SYSTEM_READ, *_python_roots()], hidden) + [str(folder)]
    runtime = Runtime(folder, _child_sys_path(folder), read, hidden, Isolation(["rlimits"]), device)
    missing = {layer: "not requested" for layer in LAYERS if layer not in want and layer != "rlimits"}
    if "namespaces" in want and not shutil.which("bwrap"):
        missing["namespaces"] = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if "landlock" in want and confine.landlock_abi() < 1:
        missing["landlock"] = "the kernel has no Landlock (Linux 5.13+ with landlock in the lsm= list)"
    if "seccomp" in want:
        try:
            import pyseccomp  # noqa: F401
        except (ImportError, OSError) as err:
            missing["seccomp"] = f"libseccomp's Python bindings are missing ({err}): pip install pyseccomp"
    if "unprivileged-user" in want and os.geteuid() != 0:
        missing["unprivileged-user"] = "not needed: the grader itself is not root"
    candidates = [layer for layer in LAYERS[:4] if layer not in missing]
    why = ""
    for give_up in (None, "namespaces", "unprivileged-user", "landlock", "seccomp"):  # the stated order
        if give_up is not None:
            if give_up not in candidates:
                continue
            candidates.remove(give_up)
            missing[give_up] = f"the probe child failed with it: {why}"
        runtime.isolation = Isolation(candidates + ["rlimits"])
        why = _probe(runtime, workdir)
        if not why:
            break
    else:
        raise RuntimeError(f"the grading child cannot start even with rlimits only: {why}")
    if os.geteuid() != 0 and "unprivileged-user" in missing and "not needed" in missing["unprivileged-user"]:
        runtime.isolation.layers.insert(-1, "unprivileged-user")
        del missing["unprivileged-user"]
    runtime.isolation.missing = {k: missing[k] for k in LAYERS if k in missing}
    return runtime


def _probe(runtime: Runtime, workdir: Path) -> str:
    """Start a child that only confines itself; return "" when it reported every layer asked of it."""
    sandbox = workdir / "probe"
    shutil.rmtree(sandbox, ignore_errors=True)
    make_sandbox(sandbox)
    job = {"probe": True, "sys_path": runtime.sys_path, **_confinement(runtime, sandbox, [])}
    try:
        child = _Child(runtime, sandbox, job, Limits(), [])
        child.wait_start(30)
        child.finish()
        child.close()
        return child.error
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def make_sandbox(path: Path) -> Path:
    path.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path


def _confinement(runtime: Runtime, sandbox: Path, extra_read: list[str]) -> dict:
    layers = runtime.isolation.layers
    landlock = None
    if "landlock" in layers:
        landlock = {"read": runtime.read + list(DEVICES) + ["/proc"] + extra_read,
                    "write": [str(sandbox), "/dev/null"] + (_gpu_devices() if runtime.device == "cuda" else [])}
    return {"landlock": landlock, "seccomp": "seccomp" in layers, "sandbox": str(sandbox)}


def _ancestors(paths: list[str]) -> list[str]:
    """The folders above ``paths`` that none of them contains, shallowest first."""
    above = {str(parent) for p in paths for parent in Path(p).parents if str(parent) != "/"}
    return sorted((a for a in above if not any(_under(a, p) for p in paths)), key=lambda a: (a.count("/"), a))


def _gpu_devices() -> list[str]:
    return [str(p) for p in Path("/dev").glob("nvidia*")]


# ----------------------------------------------------------------------------------- one child
class _Child:
    """One child process: started, then read event by event until it exits or is killed."""

    def __init__(self, runtime: Runtime, sandbox: Path, job: dict, limits: Limits, extra_read: list[str],
                 cpu_s: int | None = None):
        self.runtime, self.sandbox, self.limits = runtime, sandbox, limits
        self.cpu_s = cpu_s or limits.wall_s + limits.start_s  # CPU seconds, all threads together
        job_path = sandbox / "job.json"
        job_path.write_text(json.dumps(job))
        self.dir_fd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
        self.out_fds = [os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
                        for name in ("stdout.txt", "stderr.txt")]
        if os.geteuid() == 0:
            for fd in self.out_fds:
                os.fchown(fd, NOBODY, NOBODY)
        read_end, write_end = os.pipe()
        self.events, self.buffer, self.error = read_end, b"", ""
        command = self._command(job_path, write_end, extra_read)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox), "TMPDIR": str(sandbox), "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": str(sandbox), "OMP_NUM_THREADS": str(limits.threads), "NBGRADER_EXECUTION": "autograde",
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        try:
            self.proc = subprocess.Popen(command, cwd=sandbox, env=env, stdin=subprocess.DEVNULL,
                                         stdout=self.out_fds[0], stderr=self.out_fds[1], pass_fds=(write_end,),
                                         start_new_session=True, preexec_fn=self._limits_and_user())
        except OSError:
            for fd in (read_end, self.dir_fd, *self.out_fds):
                os.close(fd)
            raise
        finally:
            os.close(write_end)

    def _command(self, job_path: Path, fd: int, extra_read: list[str]) -> list[str]:
        python = [sys.executable, "-I", "-S", str(self.runtime.folder / "child.py"), str(job_path), str(fd)]
        layers = self.runtime.isolation.layers
        if "namespaces" not in layers:
            return python
        root = os.geteuid() == 0
        command = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                   "--unshare-uts", "--unshare-cgroup-try", *([] if root else ["--unshare-user"])]
        binds = [p for p in SYSTEM_READ + tuple(self.runtime.read) + tuple(extra_read) if os.path.exists(p)]
        for folder in _ancestors([*binds, str(self.sandbox)]):  # bwrap would make them 0700: nobody could pass
            command += ["--perms", "0755", "--dir", folder]
        for path in binds:
            command += ["--ro-bind", path, path]
        for path in self.runtime.hidden:  # a hidden path inside a bound folder is covered up
            if any(_under(path, p) for p in SYSTEM_READ + tuple(self.runtime.read)) and os.path.exists(path):
                command += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
        command += ["--proc", "/proc", "--dev", "/dev", "--bind", str(self.sandbox), str(self.sandbox),
                    "--chdir", str(self.sandbox)]
        if self.runtime.device == "cuda":
            for dev in _gpu_devices():
                command += ["--dev-bind", dev, dev]
        if root and "unprivileged-user" in layers:
            command += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        "--inh-caps=-all", "--bounding-set=-all", "--"]
        return command + python

    def _limits_and_user(self):
        limits, layers = self.limits, self.runtime.isolation.layers
        drop_here = os.geteuid() == 0 and "unprivileged-user" in layers and "namespaces" not in layers
        memory = int(limits.memory_gb * 2**30) if self.runtime.device == "cpu" else resource.RLIM_INFINITY
        cpu = self.cpu_s

        def apply():  # runs in the forked child before exec: plain system calls only
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
            resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT_BYTES, OUTPUT_LIMIT_BYTES))
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if os.geteuid() == 0 and "unprivileged-user" in layers:
                resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
            if drop_here:
                os.setgroups([])
                os.setresgid(NOBODY, NOBODY, NOBODY)
                os.setresuid(NOBODY, NOBODY, NOBODY)
        return apply

    # -- events
    def next_event(self, timeout: float) -> dict | None:
        """The next event, None at end of output; raises TimeoutError when none came in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.events], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.events, 65536)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > MAX_EVENT_LINE and b"\n" not in self.buffer[:MAX_EVENT_LINE]:
                raise ValueError("an event line longer than the limit")
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > MAX_EVENT_LINE:
            raise ValueError("an event line longer than the limit")
        event = json.loads(line)
        if not isinstance(event, dict):
            raise ValueError("an event that is not a JSON object")
        return event

    def wait_start(self, timeout: float) -> None:
        """Read the start event; set ``error`` when it is missing or lacks a layer asked for."""
        try:
            event = self.next_event(timeout)
        except TimeoutError:
            self.kill()
            self.error = f"the child did not start within {timeout:.0f} s"
            return
        except ValueError as err:
            event, self.error = None, str(err)
        wanted = [layer for layer in ("landlock", "seccomp") if layer in self.runtime.isolation.layers]
        if not self.error and (event is None or event.get("event") != "start" or event.get("layers") != wanted):
            self.kill()
            self.error = f"the child did not confine itself as asked ({self.stderr_tail() or 'no message'})"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self) -> str:
        """Wait for the exit; close everything; a description of an abnormal end ("" if none)."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        tail = self.stderr_tail()
        for fd in (self.events, *self.out_fds):
            os.close(fd)
        if code == 0:
            return ""
        how = (f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
               else f"exit code {code}")
        hints = {"SIGXCPU": ": its CPU time ran out", "SIGXFSZ": f": it wrote a file over {OUTPUT_LIMIT_BYTES >> 20} MB",
                 "SIGKILL": ": stopped by the grader, or out of memory", "SIGSEGV": ": a crash, often out of memory"}
        return how + hints.get(how.removeprefix("signal "), "") + (f"; last output: {tail}" if tail else "")

    def stderr_tail(self, limit: int = 300) -> str:
        fd = self.out_fds[1]
        size = os.fstat(fd).st_size
        data = os.pread(fd, limit * 4, max(0, size - limit * 4)).decode(errors="replace").strip()
        lines = [l for l in data.splitlines() if l.strip()]
        return lines[-1][-limit:] if lines else ""

    def close(self) -> None:
        os.close(self.dir_fd)

    def read_record(self, step: str, expected: tuple[type, ...]):
        try:
            fd = os.open(f"{step}.rec", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.dir_fd)
        except OSError as err:
            raise records.RecordError(f"its record is missing ({err.strerror})") from None
        try:
            info = os.fstat(fd)
            if not (info.st_mode & 0o170000 == 0o100000) or info.st_size > records.MAX_RECORD_BYTES:
                raise records.RecordError("its record is not a regular file under the size limit")
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(records.MAX_RECORD_BYTES + 1)
        finally:
            os.close(fd)
        return records.decode(data, expected)


# ----------------------------------------------------------------------------------- a submission
def run(runtime: Runtime, sandbox: Path, chunks: list[dict], steps: list[dict], limits: Limits,
        job: dict, expected: dict[str, tuple[type, ...]], extra_read=()) -> RunResult:
    """Run ``steps`` (after the definitions in ``chunks``) in confined children. A child that hangs
    or dies is killed; the step it was in fails (a definition chunk is skipped) and a new child
    takes the remaining steps, until they are done or the budget (``limits.wall_s``, plus
    ``limits.miou_s`` per model to predict with) is spent."""
    budget = limits.wall_s + limits.miou_s * sum(s["op"] == "predict" for s in steps)  # trained weights get their own
    deadline = time.monotonic() + budget
    outcomes: dict[str, StepOutcome] = {}
    notes: dict[int, str] = {}
    skip: set[int] = set()
    stopped = ""
    extra_read = list(extra_read)
    step_limit = {s["id"]: (limits.miou_s if s["op"] == "predict" else limits.check_s) for s in steps}
    while True:
        pending = [s for s in steps if s["id"] not in outcomes]
        if not pending:
            break
        if time.monotonic() >= deadline:
            stopped = f"the grader stopped the submission after {budget} s"
            break
        for name in os.listdir(sandbox):  # what a previous child left
            path = sandbox / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        child_job = {**job, "sys_path": runtime.sys_path, "threads": limits.threads,
                     **_confinement(runtime, sandbox, extra_read),
                     "chunks": [c for c in chunks if c["index"] not in skip], "steps": pending}
        child = _Child(runtime, sandbox, child_job, limits, extra_read, (budget + limits.start_s) * limits.threads)
        child.wait_start(min(limits.start_s, max(1.0, deadline - time.monotonic())))
        if child.error:
            child.finish()
            child.close()
            stopped = f"the grading child could not start: {child.error}"
            break
        current, ended = None, []
        known = {s["id"] for s in pending} | {f"chunk-{c['index']}" for c in child_job["chunks"]}
        try:
            while True:
                limit = step_limit.get(current, limits.check_s) if current else limits.check_s
                event = child.next_event(min(limit, max(0.0, deadline - time.monotonic())))
                if event is None:
                    break
                step = event.get("step")
                if not isinstance(step, str) or step not in known:  # written by the submission: worth nothing
                    continue
                if event.get("event") == "begin":
                    current = step
                elif event.get("event") == "end" and step == current:
                    ended.append(step)
                    note = event.get("note")
                    if step.startswith("chunk-") and isinstance(note, str) and note:
                        notes.setdefault(int(step[6:]), note[:1000])
                    current = None
        except TimeoutError:
            child.kill()
            why = f"did not finish within {step_limit.get(current, limits.check_s)} s"
            if time.monotonic() >= deadline:
                why = f"was stopped when the submission's {budget} s ran out"
        except (ValueError, UnicodeDecodeError) as err:
            child.kill()
            why = f"broke the grader's event channel ({str(err)[:100]})"
        else:
            why = ""
        ending = child.finish()
        for step in ended:
            if not step.startswith("chunk-"):
                try:
                    outcomes[step] = StepOutcome(record=child.read_record(step, expected[step]))
                except records.RecordError as err:
                    outcomes[step] = StepOutcome(failure=f"the grader could not read what this check observed: {err}")
        child.close()
        if current is None and not why and not ending:
            stray = [s["id"] for s in pending if s["id"] not in outcomes]
            for step in stray:  # the child finished without running them: nothing more to wait for
                outcomes[step] = StepOutcome(failure="the check did not run")
            continue
        why = why or f"ended the submission's process ({ending or 'it exited'})"
        if current is None:  # died between steps
            current = next((s["id"] for s in pending if s["id"] not in outcomes), None)
            if current is None:
                continue
        if current.startswith("chunk-"):
            index = int(current[6:])
            skip.add(index)
            chunk = next(c for c in chunks if c["index"] == index)
            where = f"cell {chunk['cell']}" if chunk["cell"] else f"line {chunk['line']}"
            notes[index] = f"{where} {why}; the grader skipped it (code running when a class or function is defined?)"
        else:
            outcomes[current] = StepOutcome(failure=f"this check {why}")
    for s in steps:
        outcomes.setdefault(s["id"], StepOutcome(failure=stopped or "the check did not run"))
    return RunResult(outcomes, [notes[i] for i in sorted(notes)], stopped)
