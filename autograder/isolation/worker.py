"""The grader's end of the warm worker (runtime/child.py is the other end): one process per grading run, inside the
namespaces when the run has them, that imports torch and fcnkit once and forks a child per submission."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .procfs import host_pid as pid_seen_here, last_line
from .layers import Runtime, worker_command

MAX_MESSAGE = 16 * 1024  # a control message from the worker


class WorkerError(RuntimeError):
    """The warm worker did not start, or stopped answering."""


class WorkerProxy:
    """The grader's side of the warm worker (the other side is runtime/child.py's ``WorkerServer``).
    The worker runs the grader's code only: the children drop their user, set their limits and
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
        command = worker_command(runtime, [sys.executable, "-I", "-S", str(runtime.folder / "child.py"),
                                           str(config), str(theirs.fileno())])
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
            tail = last_line(self.stderr.fileno())
            self.close()
            raise WorkerError(f"the worker did not start ({tail or 'no message'})")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @staticmethod
    def key_of(layers: list[str]) -> tuple[bool, bool]:
        """What the worker's command depends on."""
        return "namespaces" in layers, "unprivileged-user" in layers

    def _receive(self) -> dict | None:
        data = self.control.recv(MAX_MESSAGE)
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
        return None if pid is None else pid_seen_here(pid, self.proc.pid)

    def close(self) -> None:
        self.control.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
        if hasattr(self, "proc"):
            self.proc.wait()
        self.stderr.close()


def revive(runtime: Runtime, dead: WorkerProxy) -> None:
    """Start a new worker (warmed with the same seed) if ``dead`` is still the run's: the kernel's
    out-of-memory killer, say, costs the children it had, not the rest of the class."""
    with runtime.lock:
        if runtime.worker is dead:
            dead.close()
            runtime.worker = WorkerProxy(runtime, dead.workdir)
            if dead.seed is not None:
                runtime.worker.warm(dead.seed)
