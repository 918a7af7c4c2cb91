"""The warm worker and its children: they run submissions and observe them, judge nothing, and hold
nothing of the solution.

    python -I -S child.py CONFIG CONTROL_FD

The grader copies this file, codec.py and steps.py (beside it in autograder/isolation/runtime), confine.py and
fcnkit into a read-only runtime folder, as top-level modules first on the worker's import path, and starts one
worker per grading run there (see autograder.isolation.probe). The worker imports torch and fcnkit once,
then forks one child per submission. Each child, after the fork and before any student code, takes
its own user id, limits and confinement, runs the submission's definitions and writes one record
per step to ``<sandbox>/<step>.rec``; its events (one JSON line each: start, begin STEP, end STEP)
go to a pipe of its own. Anything after "start" may have been written by student code, and the
grader reads it as such.

Control messages (one JSON object per packet on the CONTROL_FD socket, file descriptors attached):
grader to worker: ``warm`` (import, build the seeded VGG-16), ``run`` (fork a child), ``kill``;
worker to grader: ``ready``, then the ``pid`` and the ``exit`` code of each child.
"""
import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import traceback

MAX_MESSAGE = 65536
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


def main() -> None:
    config_path, control_fd = sys.argv[1], int(sys.argv[2])
    libc = ctypes.CDLL(None)  # blocks over 1 MB come from the kernel and go back to it when freed: what
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 26)  # one step's model leaves is not counted in the next
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 20)
    with open(config_path) as f:
        config = json.load(f)
    sys.path[:] = config["sys_path"]
    control = socket.socket(fileno=control_fd)
    import confine
    confine.not_dumpable()  # children run as this user when the grader is not root
    try:
        import pyseccomp  # noqa: F401  (now: finding libseccomp runs ldconfig, which Landlock would refuse)
    except (ImportError, OSError):
        pass
    send(control, op="ready")
    WorkerServer(control, confine).serve()


def send(control: socket.socket, **message) -> None:
    control.send(json.dumps(message).encode())


class WorkerServer:
    """The worker's end of the control socket (the grader's is autograder.isolation.worker.WorkerProxy):
    it warms up, forks a child per ``run`` message, kills on ``kill`` and reports pids and exit codes."""

    def __init__(self, control: socket.socket, confine):
        self.control, self.confine = control, confine
        self.children: dict[int, str] = {}  # pid: job id
        self.modules = None  # torch and fcnkit, once warm
        self.vgg = None  # the seeded VGG-16 that copy_params steps copy from (copy-on-write in children)
        self.exited, self.wakeup = os.pipe()  # a byte arrives here when a child exits
        os.set_blocking(self.wakeup, False)
        signal.set_wakeup_fd(self.wakeup)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> None:
        while True:
            ready = select.select([self.control, self.exited], [], [])[0]
            if self.exited in ready:
                os.read(self.exited, 4096)
                self.reap()
            if self.control not in ready:
                continue
            data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 64)
            if not data:  # the grader is gone
                for pid in self.children:
                    kill(pid)
                os._exit(0)
            message = json.loads(data)
            if message["op"] == "warm":
                self.warm(message)
            elif message["op"] == "run":
                self.fork(message, dict(zip(message["fds"], fds)))
            elif message["op"] == "kill":
                for pid, job in self.children.items():
                    if job == message["job"]:
                        kill(pid)
            for fd in fds if message["op"] != "run" else ():
                os.close(fd)

    def reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            send(self.control, op="exit", job=self.children.pop(pid), code=code)

    def warm(self, message: dict) -> None:
        import numpy  # noqa: F401
        import torch
        import torchvision  # noqa: F401
        from fcnkit import checks
        from fcnkit._grading import diagnoses, extract, observe, records
        import codec  # the runtime folder's (first on the path): the grader's process has them as
        import steps  # autograder.isolation.runtime.codec and .steps
        self.modules = {"torch": torch, "observe": observe, "checks": checks, "codec": codec, "steps": steps,
                        "records": records, "extract": extract, "words": diagnoses.words,
                        "fallback": extract.fcnkit_modules()}
        torch.set_num_threads(1)  # no thread pool is started before the forks
        self.vgg = steps.PristineVGG(message["seed"])
        steps.warm_up_meta()
        gc.collect()
        gc.freeze()  # what is here now is never collected: children's collections skip it (and share its pages)

    def fork(self, message: dict, fds: dict[str, int]) -> None:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                self.control.close()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(self.exited)  # the worker's own: a child writing there could keep it busy
                os.close(self.wakeup)
                code = run_child(message, fds, self.confine, self.modules, self.vgg)
            except BaseException:
                os.write(2, traceback.format_exc().encode())  # into the child's stderr file, once it has it
            finally:
                os._exit(code)
        for fd in fds.values():
            os.close(fd)
        self.children[pid] = message["job"]
        send(self.control, op="pid", job=message["job"], pid=pid)


def kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_child(message: dict, fds: dict[str, int], confine, modules, vgg) -> int:
    """One submission, in a forked child: identity, limits and confinement first, then its code."""
    import resource
    os.setsid()  # its own process group: the worker kills the whole group
    os.dup2(fds["stdout"], 1)
    os.dup2(fds["stderr"], 2)
    sandbox, limits = message["sandbox"], message["limits"]
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits["memory_bytes"]:
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    uid = message["uid"]
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    os.chdir(sandbox)
    os.environ.update(HOME=sandbox, TMPDIR=sandbox, MPLCONFIGDIR=sandbox)
    with open(os.path.join(sandbox, "job.json")) as f:
        job = json.load(f)
    events = os.fdopen(fds["events"], "w", buffering=1)

    def emit(**event) -> None:
        events.write(json.dumps(event) + "\n")

    confine.no_new_privileges()
    applied = []
    if job["landlock"]:
        confine.apply_landlock(job["landlock"]["read"], job["landlock"]["write"])
        applied.append("landlock")
    if job["seccomp"]:
        confine.apply_seccomp()
        applied.append("seccomp")
    if modules is not None:
        modules["torch"].set_num_threads(job["threads"])
    emit(event="start", layers=applied, uid=os.getuid())
    if job.get("probe"):
        return probe_cuda() if job.get("cuda") else 0

    # From here on, student code runs in this process.
    observe_steps(job, sandbox, emit, modules, vgg, fds)
    events.close()
    return 0  # os._exit: threads the submission left running end here


def probe_cuda() -> int:
    """Start CUDA as a child evaluating weights on the GPU will (on one lent H200, Landlock kept
    cudaGetDeviceCount from starting: docs/results.md); exit code 3 and the error's line on stderr if not."""
    import torch
    try:
        torch.zeros(1, device="cuda").add_(1).item()
    except Exception as err:  # noqa: BLE001 - whatever CUDA raises is the probe's answer
        line = " ".join(f"{type(err).__name__}: {err}".split())
        os.write(2, f"CUDA did not start: {line}\n".encode())
        return 3
    return 0


def observe_steps(job: dict, sandbox: str, emit, modules: dict, vgg, fds: dict[str, int]) -> None:
    """Run the submission's definitions, then each step, writing its record to ``<sandbox>/<step>.rec``."""
    observe, checks, codec, steps = modules["observe"], modules["checks"], modules["codec"], modules["steps"]
    failure, words = modules["records"].Failure, modules["words"]
    namespace = {"__name__": "submission"}
    for chunk in job["chunks"]:
        step = f"chunk-{chunk['index']}"
        emit(event="begin", step=step)
        emit(event="end", step=step, note=modules["extract"].run_chunk(chunk, namespace, modules["fallback"]))
    for step in job["steps"]:
        emit(event="begin", step=step["id"])
        try:
            record = steps.run_step(step, job, namespace, vgg, fds)
        except (observe.ObservationError, checks.CheckFailed) as err:
            record = failure(str(err)[:codec.MAX_TEXT], err.diagnosis.to_json() if err.diagnosis else [])
        except MemoryError:
            record = failure(words("out_of_memory"), ["out_of_memory", ""])
        except Exception as err:
            where = err.__traceback__
            while where.tb_next:
                where = where.tb_next
            record = failure(words("observer_error", error=f"{type(err).__name__}: {err}", line=where.tb_lineno,
                                   file=where.tb_frame.f_code.co_filename)[:codec.MAX_TEXT],
                             ["observer_error", type(err).__name__])
        codec.write(os.path.join(sandbox, step["id"] + ".rec"), record)
        record = None
        gc.collect()  # the step's model, even in a reference cycle, before the next step builds one
        emit(event="end", step=step["id"])


if __name__ == "__main__":
    main()
