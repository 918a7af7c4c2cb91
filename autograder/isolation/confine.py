"""Confinement the grading child applies to itself before any student code runs: Landlock (which
files it may read and write, no TCP, no signals out of its domain) and seccomp (no new processes,
no sockets but Unix ones, no ptrace, mounts or namespaces). Both are kernel features: once on, they
hold for the rest of the process and nothing in Python can lift them.

This module runs inside the warm worker and its children (the grader's own process never calls it). It imports
only the standard library and pyseccomp, and holds nothing of the solution: the grader copies it
into the child's read-only runtime folder.
"""
from __future__ import annotations

import ctypes
import errno
import os

# Landlock (linux/landlock.h). Syscall numbers are the same on x86-64 and arm64.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ALL_V1 = (1 << 13) - 1  # execute ... make_sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # what a file rule may grant

# Denied whatever their arguments: new programs, other processes' memory, mounts, namespaces,
# kernel modules and the kernel's own sandboxes.
DENIED_SYSCALLS = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
    "reboot", "swapon", "swapoff", "userfaultfd", "io_uring_setup", "open_by_handle_at", "name_to_handle_at",
)
CLONE_THREAD = 0x00010000
AF_UNIX = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class ConfineError(OSError):
    """A layer that was asked for could not be applied; the child stops before any student code."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    abi = _libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(0, abi)


def _fs_rights(abi: int) -> int:
    rights = FS_ALL_V1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def apply_landlock(read: list[str], write: list[str]) -> int:
    """Allow reading (and listing) ``read`` and everything in ``write``; deny every other file
    access, execve, TCP bind / connect (ABI 4+) and signals or abstract sockets leaving the domain
    (ABI 6+). Returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise ConfineError(errno.ENOSYS, "Landlock is not available in this kernel")
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled,
                        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
                        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise ConfineError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        reading = FS_READ_FILE | FS_READ_DIR
        for paths, rights in ((read, reading), (write, handled & ~FS_EXECUTE)):
            for path in paths:
                _allow(ruleset, path, rights)
        no_new_privileges()
        if _libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise ConfineError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def no_new_privileges() -> None:
    """No program this process could start gains privileges (setuid bits, file capabilities)."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfineError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def not_dumpable() -> None:
    """Other processes of the same user may not read this one's memory, open files or environment
    through /proc (the warm worker, whose children are students' submissions, holds its pipes)."""
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise ConfineError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # e.g. /lib64 on a distribution without it
    try:
        if not os.path.isdir(path):
            rights &= FILE_ONLY
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        if _libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise ConfineError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def apply_seccomp() -> None:
    """No new processes (threads are fine), no programs, no sockets but AF_UNIX, none of
    DENIED_SYSCALLS. clone3 answers ENOSYS, so that the C library falls back to clone, whose flags
    seccomp can see."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as err:  # OSError: libseccomp.so itself is missing
        raise ConfineError(errno.ENOSYS, f"libseccomp's Python bindings are not available ({err})") from None
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    rules.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    rules.load()
