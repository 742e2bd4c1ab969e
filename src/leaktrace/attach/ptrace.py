"""The few ptrace requests attach needs, through ctypes: seize and interrupt one thread, read
and write its registers and extended FP state, resume it, wait for its stops, detach."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

PTRACE_CONT = 7
PTRACE_SYSCALL = 24
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_GETSIGINFO = 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GETSIGMASK = 0x420A
PTRACE_SETSIGMASK = 0x420B
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_O_TRACESYSGOOD = 1  # syscall stops report SIGTRAP | 0x80: never taken for a signal
SYSCALL_STOP = 0x80 | 5  # SIGTRAP | 0x80
SYSCALL_INFO_ENTRY, SYSCALL_INFO_EXIT = 1, 2
PTRACE_EVENT_STOP = 128  # status >> 16 of an interrupt stop or (seized) group-stop
NT_X86_XSTATE = 0x202
WALL = 0x40000000  # __WALL: wait for threads too, not only for children
# Larger than any x86 XSAVE area (AMX's is about 11 KiB); the kernel says how much it used.
XSTATE_BUFFER_SIZE = 64 << 10


class PtraceError(OSError):
    """A ptrace request failed; errno says why (EPERM, ESRCH...)."""


class Registers(ctypes.Structure):
    """struct user_regs_struct of x86-64 (sys/user.h), in the kernel's order."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]

    def copy(self) -> Registers:
        return Registers.from_buffer_copy(self)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long


def _request(request: int, tid: int, addr: int | None = None,
             data: int | ctypes.c_void_p | None = None) -> None:
    if _ptrace(request, tid, addr, data) == -1:
        code = ctypes.get_errno()
        raise PtraceError(code, os.strerror(code))


def seize(tid: int) -> None:
    _request(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)


def interrupt(tid: int) -> None:
    _request(PTRACE_INTERRUPT, tid, 0, 0)


def resume(tid: int, deliver_signal: int = 0) -> None:
    _request(PTRACE_CONT, tid, 0, deliver_signal)


def resume_to_syscall(tid: int, deliver_signal: int = 0) -> None:
    """Resume, stopping at the next system call's entry or exit (a syscall stop)."""
    _request(PTRACE_SYSCALL, tid, 0, deliver_signal)


def get_signal_mask(tid: int) -> int:
    mask = ctypes.c_uint64(0)
    _request(PTRACE_GETSIGMASK, tid, ctypes.sizeof(mask), ctypes.addressof(mask))
    return mask.value


def set_signal_mask(tid: int, mask: int) -> None:
    value = ctypes.c_uint64(mask)
    _request(PTRACE_SETSIGMASK, tid, ctypes.sizeof(value), ctypes.addressof(value))


@dataclass(frozen=True)
class SyscallInfo:
    """PTRACE_GET_SYSCALL_INFO at a syscall stop: entry or exit, and at an entry the
    system call's number, the instruction and the stack pointer."""

    op: int
    number: int
    instruction_pointer: int
    stack_pointer: int


def syscall_info(tid: int) -> SyscallInfo:
    buffer = ctypes.create_string_buffer(88)  # struct ptrace_syscall_info
    _request(PTRACE_GET_SYSCALL_INFO, tid, ctypes.sizeof(buffer), ctypes.addressof(buffer))
    raw = buffer.raw
    return SyscallInfo(raw[0], int.from_bytes(raw[24:32], "little"),
                       int.from_bytes(raw[8:16], "little"), int.from_bytes(raw[16:24], "little"))


def detach(tid: int, deliver_signal: int = 0) -> None:
    _request(PTRACE_DETACH, tid, 0, deliver_signal)


def get_registers(tid: int) -> Registers:
    regs = Registers()
    _request(PTRACE_GETREGS, tid, 0, ctypes.addressof(regs))
    return regs


def set_registers(tid: int, regs: Registers) -> None:
    _request(PTRACE_SETREGS, tid, 0, ctypes.addressof(regs))


def get_fp_state(tid: int) -> bytes:
    """The XSAVE area (x87, SSE, AVX, AVX-512...) exactly as the kernel keeps it."""
    buffer = ctypes.create_string_buffer(XSTATE_BUFFER_SIZE)
    iov = _IoVec(ctypes.addressof(buffer), XSTATE_BUFFER_SIZE)
    _request(PTRACE_GETREGSET, tid, NT_X86_XSTATE, ctypes.addressof(iov))
    return buffer.raw[: iov.length]


def set_fp_state(tid: int, state: bytes) -> None:
    buffer = ctypes.create_string_buffer(state, len(state))
    iov = _IoVec(ctypes.addressof(buffer), len(state))
    _request(PTRACE_SETREGSET, tid, NT_X86_XSTATE, ctypes.addressof(iov))


def fault_address(tid: int) -> int:
    """si_addr of the signal the thread is stopped for (a SIGSEGV's faulting address)."""
    info = ctypes.create_string_buffer(128)  # siginfo_t
    _request(PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(info))
    return int.from_bytes(info.raw[16:24], "little")


@dataclass(frozen=True)
class Stop:
    """What waitpid reported for a traced thread."""

    status: int

    @property
    def exited(self) -> bool:
        return os.WIFEXITED(self.status) or os.WIFSIGNALED(self.status)

    @property
    def signal(self) -> int:
        return os.WSTOPSIG(self.status) if os.WIFSTOPPED(self.status) else 0

    @property
    def is_syscall_stop(self) -> bool:
        return os.WIFSTOPPED(self.status) and os.WSTOPSIG(self.status) == SYSCALL_STOP

    @property
    def is_event_stop(self) -> bool:
        """An interrupt stop or a group-stop (never a signal to deliver)."""
        return os.WIFSTOPPED(self.status) and self.status >> 16 == PTRACE_EVENT_STOP


class WaitTimeout(Exception):
    pass


Pause = Callable[[float], None]


def wait_for_stop(tid: int, timeout: float, pause: Pause) -> Stop:
    """The next stop (or the end) of `tid`. `pause(seconds)` sleeps until SIGCHLD (which a
    tracee's stop sends) or the time passes: a SignalWatch's wait, so stops are seen at once;
    its short timeout here is only a safety net."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            waited, status = os.waitpid(tid, os.WNOHANG | WALL)
        except ChildProcessError:
            raise PtraceError(errno.ESRCH, "the thread is gone") from None
        if waited == tid:
            return Stop(status)
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout
        pause(min(left, 0.05))
