"""The checks made before touching a process, each failure one line that says what to do:
no such process, another user's, ptrace forbidden (Yama, missing CAP_SYS_PTRACE), already
traced, stopped, not x86-64, statically linked, or living in another root (a container)."""

from __future__ import annotations

import os
import platform
import re

from leaktrace.attach.process_info import (
    ELF_MACHINES,
    EM_X86_64,
    MemoryMap,
    command_name,
    elf_machine,
    real_uid,
    same_file,
    status_fields,
    thread_ids,
)
from leaktrace.attach.target_libraries import LIBC
from leaktrace.errors import LeaktraceError
from leaktrace.proc_view import proc_dir

YAMA_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"
CAP_SYS_PTRACE = 19
MUSL = re.compile(r"^ld-musl-.*\.so\.1$|^libc\.musl-.*\.so\.1$")
# Allocators whose blocks glibc's free and realloc cannot take: attached, the shim hands the
# program's blocks made before the attach to glibc's (Debian's redis-server, with libjemalloc,
# aborted in realloc at once). tcmalloc exports __libc_malloc & co., which the shim calls.
OTHER_ALLOCATOR = re.compile(r"^lib(jemalloc|mimalloc|snmalloc|hoard)[-.]")


def describe(pid: int) -> str:
    return f"process {pid} ({command_name(pid)})"


def check_attachable(pid: int, shim: str, config_dir: str) -> MemoryMap:
    """Raise LeaktraceError unless `pid` can be attached to; return its memory map."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise LeaktraceError("leaktrace attach works on x86-64 Linux only")
    if pid == os.getpid():
        raise LeaktraceError("leaktrace cannot attach to itself")
    try:
        status = status_fields(pid)
    except FileNotFoundError:
        raise LeaktraceError(f"no process with pid {pid}") from None
    if int(status.get("Tgid", pid)) != pid:
        raise LeaktraceError(f"{pid} is a thread of process {status['Tgid']}: attach to "
                             f"{status['Tgid']}")
    # "Kthread" since Linux 6.x; before, every kernel thread is kthreadd (2) or its child.
    if status.get("Kthread") == "1" or pid == 2 or _ppid(status) == 2:
        raise LeaktraceError(f"{describe(pid)} is a kernel thread: it has no user-space "
                             "heap to trace")
    state = status.get("State", "?")[:1]
    view = proc_dir(pid)  # a live thread's, when the main thread has ended
    if state in ("Z", "X") and view == f"/proc/{pid}":
        raise LeaktraceError(f"{describe(pid)} has exited (it is a zombie)")
    _check_permission(pid)
    _check_pid_namespace(pid, status)
    _check_not_traced(pid)
    if state in ("T", "t"):
        raise LeaktraceError(f"{describe(pid)} is stopped: resume it first (kill -CONT {pid})")
    _check_machine(pid, view)
    memory = MemoryMap.read(pid)
    if not memory.of_file(LIBC):
        if memory.of_file(MUSL):
            raise LeaktraceError(f"{describe(pid)} uses musl libc: leaktrace attach needs "
                                 "glibc's dlopen")
        raise LeaktraceError(f"{describe(pid)} is statically linked (no libc.so.6 in its "
                             "memory map): leaktrace attach needs the C library's dlopen; "
                             "rebuild it dynamically linked, or start it with leaktrace run")
    other = memory.of_file(OTHER_ALLOCATOR)
    if other:
        raise LeaktraceError(f"{describe(pid)} allocates with {other[0].file_name}, whose "
                             "blocks glibc cannot free or resize: an attach would crash it; "
                             "start it with leaktrace run (the shim then serves its "
                             "allocations from glibc's heap)")
    for path in (shim, config_dir):
        if not same_file(path, f"{view}/root{path}"):
            raise LeaktraceError(f"{describe(pid)} lives in another root or mount namespace "
                                 f"(a container?), where {path} is not the same file: run "
                                 "leaktrace attach inside it")
    return memory


def _check_pid_namespace(pid: int, status: dict[str, str]) -> None:
    """A process in a PID namespace below ours (`unshare --pid --fork --mount-proc`, a
    container) knows itself by another pid: its shim names its control socket and capture by
    that pid and finds our settings file through a /proc that does not show us. Refused
    before anything is touched (it said it could not read the settings file, or was left
    collecting with a socket nobody could find)."""
    ours = status_fields(os.getpid()).get("NSpid", "").split()
    theirs = status.get("NSpid", "").split()
    if ours and len(theirs) > len(ours):
        raise LeaktraceError(f"{describe(pid)} lives in another PID namespace (a container?), "
                             f"where its pid is {theirs[-1]}: run leaktrace attach inside it")


def _ppid(status: dict[str, str]) -> int:
    try:
        return int(status.get("PPid", "-1"))
    except ValueError:
        return -1


def may_trace_anyone() -> bool:
    """CAP_SYS_PTRACE in our effective set (root normally has it; a container may not)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def yama_scope() -> int | None:
    try:
        with open(YAMA_SCOPE, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None  # no Yama: classic ptrace rules


def _check_permission(pid: int) -> None:
    privileged = may_trace_anyone()
    scope = yama_scope()
    if scope == 3:
        raise LeaktraceError(f"ptrace is disabled on this system ({YAMA_SCOPE} is 3, which "
                             "only a reboot undoes): leaktrace attach cannot work here; start "
                             "the program with leaktrace run instead")
    owner = real_uid(pid)
    if not privileged and owner != os.getuid():
        raise LeaktraceError(f"{describe(pid)} belongs to uid {owner}: only that user or root "
                             "may attach to it")
    if scope == 2 and not privileged:
        raise LeaktraceError(f"only a process with CAP_SYS_PTRACE may attach here ({YAMA_SCOPE} "
                             "is 2): run leaktrace attach as root")


def permission_refused(pid: int) -> LeaktraceError:
    """The error for EPERM from PTRACE_SEIZE, with the likeliest reason on this system."""
    if yama_scope() == 1 and not may_trace_anyone():
        return LeaktraceError(
            f"ptrace refused for {describe(pid)}: {YAMA_SCOPE} is 1, so only its parent "
            "process may trace it; run leaktrace attach as root, or allow it with `sysctl "
            "kernel.yama.ptrace_scope=0`")
    if not may_trace_anyone():
        return LeaktraceError(
            f"ptrace refused for {describe(pid)}: it is not dumpable (setuid, file "
            "capabilities, or prctl(PR_SET_DUMPABLE, 0)); only root may attach to it")
    return LeaktraceError(
        f"ptrace refused for {describe(pid)} although leaktrace has CAP_SYS_PTRACE: a "
        "seccomp filter or security module forbids it (in a container, allow ptrace, e.g. "
        "docker run --cap-add=SYS_PTRACE --security-opt seccomp=unconfined)")


def _check_not_traced(pid: int) -> None:
    for tid in thread_ids(pid):
        try:
            tracer = int(status_fields(pid, tid).get("TracerPid", "0"))
        except (OSError, ValueError):
            continue  # a thread that just ended
        if tracer:
            raise LeaktraceError(f"{describe(pid)} is already being traced by process {tracer} "
                                 f"({command_name(tracer)}), a debugger or strace: detach it "
                                 "first (only one tracer at a time)")


def _check_machine(pid: int, view: str) -> None:
    try:
        machine = elf_machine(f"{view}/exe")
    except PermissionError:
        raise permission_refused(pid) from None
    except OSError:
        return  # the executable vanished: the memory map check decides
    if machine is None:
        return
    elf_class, number = machine
    if elf_class != 2 or number != EM_X86_64:
        name = "32-bit x86" if number == 3 else ELF_MACHINES.get(number, f"machine {number}")
        raise LeaktraceError(f"{describe(pid)} is a {name} program: leaktrace attach only "
                             "enters x86-64 programs")
