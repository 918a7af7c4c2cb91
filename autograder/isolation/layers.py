"""Running a submission in a confined child process, as strongly as this machine allows.

One warm worker per grading run (child.py) imports torch and fcnkit once; each submission runs in
a child it forks, which takes its user, limits and confinement after the fork and before any
student code, so that nothing of one submission reaches the next.

Layers, in the order they are given up when unavailable (each report lists the ones it got):

- ``namespaces``: bubblewrap, around the worker. Its children see only the system libraries, the
  interpreter, the runtime folder and the sandbox folders; no network, their own process tree.
  The grader's own files and the dataset are not in their file system at all.
- ``landlock``: the kernel refuses the child any file outside what it may read (the same list) or
  write (its own sandbox folder), any TCP bind or connect, and signals to processes outside it
  (the worker, the other children).
- ``seccomp``: no new processes or programs (fork, execve...), no sockets but Unix ones, no ptrace,
  mounts or namespaces.
- ``unprivileged-user``: a grader running as root runs each child as a user of its own (``nobody``,
  uid 65534, and the uids below it for children running at the same time): their sandbox folders,
  processes and /proc entries are out of each other's reach, and the worker's.
- ``rlimits``: address space, CPU time, file size, open files and process count; always on.

Whatever the layers, the grader keeps: a CPU-time limit per step with a wall-clock backstop (a
child that overruns is killed with its process group, and a new one takes the steps after the one
that hung), stdout and stderr in files it reads only the end of, and the records parsed as
untrusted data (fcnkit.records).
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import re
import select
import socket
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
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
    wall_s: int = 240  # the whole submission, restarts included (wall clock)
    start_s: int = 60  # a child's start: the fork, its limits and confinement (wall clock)
    check_s: int = 30  # one definition chunk or one observation step: CPU seconds of one thread
    check_wall_s: int = 120  # the same, wall clock: a backstop for a check that waits or sleeps
    miou_s: int = 900  # predicting the evaluation split for one model (CPU seconds of one thread)
    memory_gb: float = 10.0
    threads: int = 1


@dataclass
class Runtime:
    """What every child of one grading run shares: its runtime folder, import path, readable paths,
    and the warm worker that forks them."""
    folder: Path
    sys_path: list[str]
    read: list[str]  # what the child may read, with the hidden paths carved out
    hidden: list[str]
    isolation: Isolation
    device: str = "cpu"
    sandboxes: Path | None = None  # where each submission's sandbox folder is made
    worker: "Worker | None" = None
    uids: queue.Queue | None = None  # user ids for concurrent children, when the grader is root
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revive(self, dead: "Worker") -> None:
        """Start a new worker (warmed with the same seed) if ``dead`` is still the run's: the kernel's
        out-of-memory killer, say, costs the children it had, not the rest of the class."""
        with self.lock:
            if self.worker is dead:
                dead.close()
                self.worker = Worker(self, dead.workdir)
                if dead.seed is not None:
                    self.worker.warm(dead.seed)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


@dataclass
class StepOutcome:
    record: object = None  # the decoded record, when the step ended and its record was valid
    failure: str = ""  # why there is no record


@dataclass
class RunResult:
    steps: dict[str, StepOutcome]
    notes: list[str]
    stopped: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # wall time by phase, measured here


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


CHILD_DISTRIBUTIONS = ("torch", "torchvision", "numpy", "pillow", "pyseccomp")  # what child.py imports


def _child_site_dirs(names=CHILD_DISTRIBUTIONS) -> list[str]:
    """The folders the distributions the child imports (and theirs, recursively) are installed in,
    wherever they are: under ``sys.prefix``, or reached through a ``.pth`` outside it (``pip install
    --user``, a layered environment)."""
    from importlib import metadata
    seen, todo, found = set(), list(names), []
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except (metadata.PackageNotFoundError, ValueError):
            continue
        found.append(os.path.realpath(dist.locate_file("")))
        todo += [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
    return list(dict.fromkeys(found))


def _child_sys_path(folder: Path) -> list[str]:
    """The runtime folder, then the interpreter's own import path (standard library and
    site-packages) and the folders the child's packages are installed in; never the current folder
    or a repository the grader was started from."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    sites = set(_child_site_dirs())
    keep = [p for p in sys.path if p and (any(_under(os.path.realpath(p), r) for r in roots)
                                         or os.path.realpath(p) in sites)]
    return [str(folder), *dict.fromkeys(keep)]


def prepare(workdir: Path, hidden=(), device: str = "cpu", want=LAYERS, jobs: int = 1) -> Runtime:
    """Make the runtime folder (child.py, confine.py, a copy of fcnkit), start the warm worker and
    find the strongest isolation this machine gives: a probe child is forked with each candidate
    set of layers, in the order they are given up, until one starts with all it was given."""
    folder = workdir / "runtime"
    folder.mkdir(parents=True)
    shutil.copy(HERE / "child.py", folder)
    shutil.copy(HERE / "confine.py", folder)
    shutil.copytree(Path(fcnkit.__file__).parent, folder / "fcnkit",
                    ignore=shutil.ignore_patterns("sample_data", "__pycache__"))
    sandboxes = workdir / "sandboxes"
    sandboxes.mkdir(mode=0o711)
    os.chmod(workdir, 0o755)
    os.chmod(sandboxes, 0o711)  # children may pass through to their own folder, not list the others
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    hidden = sorted({os.path.realpath(h) for h in (HERE, *hidden)})
    roots = _python_roots()
    roots += [d for d in _child_site_dirs() if not any(_under(d, r) for r in roots)]  # e.g. pip install --user
    read = grant_except([*SYSTEM_READ, *roots], hidden) + [str(folder)]
    runtime = Runtime(folder, _child_sys_path(folder), read, hidden, Isolation(["rlimits"]), device, sandboxes)
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
    if os.geteuid() == 0 and "unprivileged-user" in runtime.isolation.layers:
        runtime.uids = queue.Queue()
        for k in range(max(1, jobs) + 1):  # a user of its own for each child running at the same time (and the reference's)
            runtime.uids.put(NOBODY - k)
    return runtime


def _probe(runtime: Runtime, workdir: Path) -> str:
    """(Re)start the worker for ``runtime.isolation`` and fork a child that only confines itself;
    return "" when it reported every layer asked of it."""
    layers = runtime.isolation.layers
    if runtime.worker is not None and runtime.worker.key != Worker.key_of(layers):
        runtime.worker.close()
        runtime.worker = None
    try:
        if runtime.worker is None:
            runtime.worker = Worker(runtime, workdir)
    except (OSError, WorkerError) as err:
        runtime.worker = None
        return f"{type(err).__name__}: {err}"
    sandbox = make_sandbox(runtime.sandboxes / "probe", NOBODY if "unprivileged-user" in layers else None)
    try:
        child = _start(runtime, 30, sandbox, {"probe": True, **_confinement(runtime, sandbox)}, Limits(),
                       NOBODY if os.geteuid() == 0 and "unprivileged-user" in layers else None, {})
        child.finish()
        child.close()
        return ""
    except WorkerError as err:
        return str(err)
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def make_sandbox(path: Path, uid: int | None = NOBODY) -> Path:
    path.mkdir(mode=0o700)
    if os.geteuid() == 0 and uid is not None:
        os.chown(path, uid, uid)
    return path


def _confinement(runtime: Runtime, sandbox: Path) -> dict:
    layers = runtime.isolation.layers
    landlock = None
    if "landlock" in layers:
        landlock = {"read": runtime.read + list(DEVICES) + ["/proc"],
                    "write": [str(sandbox), "/dev/null"] + (_gpu_devices() if runtime.device == "cuda" else [])}
    return {"landlock": landlock, "seccomp": "seccomp" in layers, "sandbox": str(sandbox)}


def _ancestors(paths: list[str]) -> list[str]:
    """The folders above ``paths`` that none of them contains, shallowest first."""
    above = {str(parent) for p in paths for parent in Path(p).parents if str(parent) != "/"}
    return sorted((a for a in above if not any(_under(a, p) for p in paths)), key=lambda a: (a.count("/"), a))


def _gpu_devices() -> list[str]:
    return [str(p) for p in Path("/dev").glob("nvidia*")]


# ----------------------------------------------------------------------------------- the warm worker
class WorkerError(RuntimeError):
    """The warm worker did not start, or stopped answering."""


class Worker:
    """The grader's side of the warm worker (child.py): one process per grading run, inside the
    namespaces when the run has them, that imports torch and fcnkit once and forks a child per
    submission. It runs the grader's code only: the children drop their user, set their limits and
    confine themselves after the fork, before any student code."""

    def __init__(self, runtime: Runtime, workdir: Path):
        self.runtime = runtime
        self.key = self.key_of(runtime.isolation.layers)
        self.lock = threading.Condition()
        self.pids: dict[str, int] = {}  # job: pid in the worker's namespace
        self.exits: dict[str, int] = {}  # job: exit code
        self.alive = True
        self.workdir, self.seed = workdir, None  # the seed it is warmed with
        config = runtime.folder / "worker.json"  # the runtime folder is what the worker can read
        config.write_text(json.dumps({"sys_path": runtime.sys_path}))
        os.chmod(config, 0o644)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.stderr = open(workdir / "worker-stderr.txt", "w+b")
        command = self._command([sys.executable, "-I", "-S", str(runtime.folder / "child.py"), str(config),
                                 str(theirs.fileno())])
        env = {"PATH": "/usr/bin:/bin", "HOME": str(runtime.sandboxes), "TMPDIR": str(runtime.sandboxes),
               "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "NBGRADER_EXECUTION": "autograde",
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        try:
            self.proc = subprocess.Popen(command, cwd=runtime.sandboxes, env=env, stdin=subprocess.DEVNULL,
                                         stdout=self.stderr, stderr=self.stderr, pass_fds=(theirs.fileno(),),
                                         start_new_session=True)
        finally:
            theirs.close()
        ready = select.select([self.control], [], [], 60)[0]
        message = self._receive() if ready else None
        if not message or message.get("op") != "ready":
            tail = _last_line(self.stderr.fileno())
            self.close()
            raise WorkerError(f"the worker did not start ({tail or 'no message'})")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @staticmethod
    def key_of(layers: list[str]) -> tuple[bool, bool]:
        """What the worker's command depends on."""
        return "namespaces" in layers, "unprivileged-user" in layers

    def _command(self, python: list[str]) -> list[str]:
        if "namespaces" not in self.runtime.isolation.layers:
            return python
        root = os.geteuid() == 0
        command = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                   "--unshare-uts", "--unshare-cgroup-try", *([] if root else ["--unshare-user"])]
        if root and "unprivileged-user" in self.runtime.isolation.layers:  # to give each child its user
            command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        read = self.runtime.read
        binds = [p for p in SYSTEM_READ + tuple(read) if os.path.exists(p)]
        sandboxes = str(self.runtime.sandboxes)
        for folder in _ancestors([*binds, sandboxes]):  # bwrap would make them 0700: nobody could pass
            command += ["--perms", "0755", "--dir", folder]
        for path in binds:
            command += ["--ro-bind", path, path]
        for path in self.runtime.hidden:  # a hidden path inside a bound folder is covered up
            if any(_under(path, p) for p in SYSTEM_READ + tuple(read)) and os.path.exists(path):
                command += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
        command += ["--proc", "/proc", "--dev", "/dev", "--bind", sandboxes, sandboxes, "--chdir", sandboxes]
        if self.runtime.device == "cuda":
            for dev in _gpu_devices():
                command += ["--dev-bind", dev, dev]
        return command + python

    def _receive(self) -> dict | None:
        data = self.control.recv(MAX_EVENT_LINE)
        return json.loads(data) if data else None

    def _read(self) -> None:
        """Messages from the worker: a child's pid, a child's exit code."""
        try:
            while True:
                message = self._receive()
                if message is None:
                    break
                with self.lock:
                    if message.get("op") == "pid":
                        self.pids[message["job"]] = int(message["pid"])
                    elif message.get("op") == "exit":
                        self.exits[message["job"]] = int(message["code"])
                    self.lock.notify_all()
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with self.lock:
            self.alive = False
            self.lock.notify_all()

    def warm(self, seed: int) -> None:
        """Import torch and fcnkit and build the seeded VGG-16 in the worker, once for the run
        (asynchronously: children forked later start from there)."""
        self.seed = seed
        self.control.send(json.dumps({"op": "warm", "seed": seed}).encode())

    def fork(self, job: str, sandbox: Path, uid: int | None, limits: dict, fds: dict[str, int]) -> None:
        message = {"op": "run", "job": job, "sandbox": str(sandbox), "uid": uid, "limits": limits,
                   "fds": list(fds)}
        try:
            socket.send_fds(self.control, [json.dumps(message).encode()], list(fds.values()))
        except OSError as err:
            raise WorkerError(f"the worker stopped answering ({err})") from None

    def _wait_until(self, done, timeout: float) -> None:
        """Wait (up to ``timeout``) until ``done()`` holds or the worker is gone."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not done() and self.alive and time.monotonic() < deadline:
                self.lock.wait(max(0.0, deadline - time.monotonic()))

    def exit_code(self, job: str, timeout: float) -> int | None:
        """A child's exit code, once the worker has reaped it (None if not within ``timeout``)."""
        self._wait_until(lambda: job in self.exits, timeout)
        return self.exits.get(job)

    def gone(self, timeout: float) -> bool:
        """Whether the worker has exited (waiting up to ``timeout`` for its socket to say so)."""
        self._wait_until(lambda: False, timeout)
        return not self.alive

    def kill(self, job: str) -> None:
        try:
            self.control.send(json.dumps({"op": "kill", "job": job}).encode())
        except OSError:
            pass

    def host_pid(self, job: str) -> int | None:
        """The pid of a job's child as this process sees it (the worker may be in a pid namespace)."""
        pid = self.pids.get(job)
        if pid is None:
            return None
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                status = _status(entry.name)
                if status.get("NSpid", "").split()[-1:] == [str(pid)] and _descends(entry.name, self.proc.pid):
                    return int(entry.name)
        return None

    def close(self) -> None:
        self.control.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
        if hasattr(self, "proc"):
            self.proc.wait()
        self.stderr.close()


def _last_line(fd: int, limit: int = 300) -> str:
    """The last non-empty line of an output file (at most ``limit`` characters of it), read from
    its end only: a submission may have written 64 MB there."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, limit * 4, max(0, size - limit * 4)).decode(errors="replace").strip()
    lines = [l for l in data.splitlines() if l.strip()]
    return lines[-1][-limit:] if lines else ""


def _status(pid: str) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def _descends(pid: str, ancestor: int) -> bool:
    for _ in range(64):
        if pid == str(ancestor):
            return True
        pid = _status(pid).get("PPid", "0")
        if pid in ("0", "1"):
            return False
    return False


def _cpu_seconds(pid: int | None) -> float:
    """User and system time of a process, all its threads, from /proc (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------- one child
class _Child:
    """One forked child: its events pipe, output files and CPU time, read until it exits or is killed."""

    def __init__(self, runtime: Runtime, sandbox: Path, job: dict, limits: Limits, uid: int | None,
                 files: dict[str, int], cpu_s: int | None = None):
        self.runtime, self.sandbox, self.limits, self.worker = runtime, sandbox, limits, runtime.worker
        self.id = f"{sandbox.name}-{next(_COUNTER)}"
        job_path = sandbox / "job.json"
        job_path.write_text(json.dumps(job))
        os.chmod(job_path, 0o644)
        self.dir_fd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
        self.out_fds = [os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
                        for name in ("stdout.txt", "stderr.txt")]
        read_end, write_end = os.pipe()
        self.events, self.buffer, self.error, self.pid = read_end, b"", "", None
        memory = int(limits.memory_gb * 2**30) if runtime.device == "cpu" else 0
        cpu = cpu_s or (limits.wall_s + limits.start_s) * limits.threads
        child_limits = {"cpu_s": cpu, "file_bytes": OUTPUT_LIMIT_BYTES, "memory_bytes": memory}
        try:
            self.worker.fork(self.id, sandbox, uid, child_limits,
                             {"events": write_end, "stdout": self.out_fds[0], "stderr": self.out_fds[1], **files})
        except WorkerError:
            for fd in (read_end, self.dir_fd, *self.out_fds):
                os.close(fd)
            raise
        finally:
            os.close(write_end)

    def cpu_seconds(self) -> float:
        if self.pid is None:
            self.pid = self.worker.host_pid(self.id)
        return _cpu_seconds(self.pid)

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
        self.worker.kill(self.id)

    def finish(self) -> str:
        """Wait for the exit; close everything; a description of an abnormal end ("" if none)."""
        code = self.worker.exit_code(self.id, 10)
        if code is None:
            self.kill()
            code = self.worker.exit_code(self.id, 10)
        tail = self.stderr_tail()
        for fd in (self.events, *self.out_fds):
            os.close(fd)
        if code == 0:
            return ""
        if code is None:
            return "the worker lost track of it" + (f"; last output: {tail}" if tail else "")
        how = (f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
               else f"exit code {code}")
        hints = {"SIGXCPU": ": its CPU time ran out", "SIGXFSZ": f": it wrote a file over {OUTPUT_LIMIT_BYTES >> 20} MB",
                 "SIGKILL": ": stopped by the grader, or out of memory", "SIGSEGV": ": a crash, often out of memory"}
        return how + hints.get(how.removeprefix("signal "), "") + (f"; last output: {tail}" if tail else "")

    def stderr_tail(self) -> str:
        return _last_line(self.out_fds[1])

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


_COUNTER = itertools.count()


# ----------------------------------------------------------------------------------- a submission
def run(runtime: Runtime, sandbox: Path, chunks: list[dict], steps: list[dict], limits: Limits,
        job: dict, expected: dict[str, tuple[type, ...]], files: dict[str, int] | None = None) -> RunResult:
    """Run ``steps`` (after the definitions in ``chunks``) in children forked by the warm worker. A
    child that hangs or dies is killed; the step it was in fails (a definition chunk is skipped) and
    a new child takes the remaining steps, until they are done or the budget (``limits.wall_s``,
    plus ``limits.miou_s`` per model to predict with) is spent. ``files`` are open files the child
    gets by name (it may not be able to open them itself)."""
    budget = limits.wall_s + limits.miou_s * sum(s["op"] == "predict" for s in steps)  # trained weights get their own
    deadline = time.monotonic() + budget
    outcomes: dict[str, StepOutcome] = {}
    notes: dict[int, str] = {}
    seconds: dict[str, float] = {}
    skip: set[int] = set()
    stopped = ""
    cpu_limit = {s["id"]: (limits.miou_s if s["op"] == "predict" else limits.check_s) for s in steps}
    wall_limit = {s["id"]: (limits.miou_s * 2 if s["op"] == "predict" else limits.check_wall_s) for s in steps}
    uid = runtime.uids.get() if runtime.uids is not None else None
    try:
        make_sandbox(sandbox, uid)
        while True:
            pending = [s for s in steps if s["id"] not in outcomes]
            if not pending:
                break
            if time.monotonic() >= deadline:
                stopped = f"the grader stopped the submission after {budget} s"
                break
            child_job = {**job, "threads": limits.threads, **_confinement(runtime, sandbox),
                         "chunks": [c for c in chunks if c["index"] not in skip], "steps": pending}
            forked = time.monotonic()
            try:
                child = _start(runtime, min(limits.start_s, max(1.0, deadline - time.monotonic())), sandbox,
                               child_job, limits, uid, files or {}, (budget + limits.start_s) * limits.threads)
            except (OSError, WorkerError) as err:
                stopped = f"the grading child could not start: {err}"
                break
            seconds["start"] = seconds.get("start", 0.0) + time.monotonic() - forked
            current, ended, why = _follow(child, pending, child_job, cpu_limit, wall_limit, limits, deadline, budget,
                                          notes, seconds)
            ending = child.finish()
            for step in ended:
                if not step.startswith("chunk-"):
                    try:
                        outcomes[step] = StepOutcome(record=child.read_record(step, expected[step]))
                    except records.RecordError as err:
                        outcomes[step] = StepOutcome(failure=f"the grader could not read what this check observed: {err}")
            child.close()
            if current is None and not why and not ending:
                for step in [s["id"] for s in pending if s["id"] not in outcomes]:  # finished without them
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
    finally:
        if uid is not None:
            runtime.uids.put(uid)
    for s in steps:
        outcomes.setdefault(s["id"], StepOutcome(failure=stopped or "the check did not run"))
    return RunResult(outcomes, [notes[i] for i in sorted(notes)], stopped, seconds)


def _start(runtime: Runtime, timeout: float, sandbox: Path, *args) -> _Child:
    """A confined child from the run's worker, started in an emptied ``sandbox``; a worker found
    dead is replaced once (see Runtime.revive). Raises WorkerError when no child starts."""
    for attempt in range(2):
        worker = runtime.worker
        if not worker.alive:
            runtime.revive(worker)
            continue
        for name in os.listdir(sandbox):  # what a previous child left
            path = sandbox / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        child = _Child(runtime, sandbox, *args)
        child.wait_start(timeout)
        if not child.error:
            return child
        ending = child.finish()
        child.close()
        if worker.gone(0.5):  # the worker died meanwhile, not the child's confinement
            runtime.revive(worker)
            continue
        raise WorkerError(child.error + (f" ({ending})" if ending else ""))
    raise WorkerError("the worker died twice in a row")


def _follow(child: _Child, pending, child_job, cpu_limit, wall_limit, limits: Limits, deadline: float, budget: int,
            notes: dict[int, str], seconds: dict[str, float]):
    """Read a child's events until it ends. Each step may use its CPU limit (times the threads it
    was given: a busy machine slows it down but does not fail it) and, as a backstop for a step
    that waits or sleeps, its wall-clock limit. Returns the step it was in when it stopped, the
    steps that ended, and why it was stopped ("" when it ended by itself). Definitions' notes go
    to ``notes``, the wall time of each kind of step to ``seconds``."""
    known = {s["id"] for s in pending} | {f"chunk-{c['index']}" for c in child_job["chunks"]}
    phase = {**{s["id"]: s["op"] for s in pending}, **{f"chunk-{c['index']}": "definitions" for c in child_job["chunks"]}}
    current, ended = None, []
    began, cpu_began = time.monotonic(), child.cpu_seconds()
    try:
        while True:
            try:
                event = child.next_event(min(0.5, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                now, cpu = time.monotonic(), child.cpu_seconds() - cpu_began
                cpu_s, wall_s = cpu_limit.get(current, limits.check_s), wall_limit.get(current, limits.check_wall_s)
                if now >= deadline:
                    child.kill()
                    return current, ended, f"was stopped when the submission's {budget} s ran out"
                if cpu > cpu_s * limits.threads:
                    child.kill()
                    return current, ended, f"used more than {cpu_s} s of CPU time (the limit per check)"
                if now - began > wall_s:
                    child.kill()
                    return current, ended, (f"did not finish within {wall_s} s of wall-clock time (the backstop "
                                            f"per check; it used {cpu:.0f} s of CPU time: waiting or sleeping?)")
                continue
            if event is None:
                return current, ended, ""
            step = event.get("step")
            if not isinstance(step, str) or step not in known:  # written by the submission: worth nothing
                continue
            if event.get("event") == "begin":
                current, began, cpu_began = step, time.monotonic(), child.cpu_seconds()
            elif event.get("event") == "end" and step == current:
                ended.append(step)
                seconds[phase[step]] = seconds.get(phase[step], 0.0) + time.monotonic() - began
                note = event.get("note")
                if step.startswith("chunk-") and isinstance(note, str) and note:
                    notes.setdefault(int(step[6:]), note[:1000])
                current, began, cpu_began = None, time.monotonic(), child.cpu_seconds()
    except (ValueError, UnicodeDecodeError) as err:
        child.kill()
        return current, ended, f"broke the grader's event channel ({str(err)[:100]})"
