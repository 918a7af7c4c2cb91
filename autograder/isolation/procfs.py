"""What the grader reads of its children from /proc (their CPU time, their pid as this process sees it) and
from their output files (only the end of them)."""
from __future__ import annotations

import os


def status(pid: str) -> dict[str, str]:
    """The fields of ``/proc/PID/status`` (empty when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def descends(pid: str, ancestor: int) -> bool:
    for _ in range(64):
        if pid == str(ancestor):
            return True
        pid = status(pid).get("PPid", "0")
        if pid in ("0", "1"):
            return False
    return False


def host_pid(pid: int, ancestor: int) -> int | None:
    """The pid (here) of the descendant of ``ancestor`` known as ``pid`` in its own pid namespace."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            if status(entry.name).get("NSpid", "").split()[-1:] == [str(pid)] and descends(entry.name, ancestor):
                return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User and system time of a process, all its threads, from /proc (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_line(fd: int, limit: int = 300) -> str:
    """The last non-empty line of an output file (at most ``limit`` characters of it), read from
    its end only: a submission may have written 64 MB there."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, limit * 4, max(0, size - limit * 4)).decode(errors="replace").strip()
    lines = [l for l in data.splitlines() if l.strip()]
    return lines[-1][-limit:] if lines else ""
