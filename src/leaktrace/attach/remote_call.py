"""Make a stopped thread of the target call a function, as a debugger's inferior call does:
arguments in registers, strings written below the stack's red zone, a return address of 0,
so the return ends in a SIGSEGV at address 0 that the tracer catches and never delivers."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from leaktrace.attach import ptrace
from leaktrace.attach.ptrace import Registers
from leaktrace.errors import LeaktraceError

RED_ZONE = 128  # bytes below the stack pointer that the interrupted code may still use
NO_SYSCALL = 2**64 - 1  # orig_rax = -1: the kernel must not restart a system call into us
EFLAGS_TF = 1 << 8
EFLAGS_DF = 1 << 10  # the ABI wants the direction flag clear at every call
ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
CALL_TIMEOUT = 60.0  # dlopen from a slow disk, a busy machine: generous


# Held back while an injected call runs: a handler of the program's that allocates, run inside
# the call's malloc (dlopen allocates), corrupted the heap (a program whose main code never
# allocates while its timer's handler does is fine natively). Faults stay deliverable: the
# kernel resets a blocked fault signal's handler to the default when it forces one, and the
# calls end in a fault at address 0 that the tracer catches.
_FAULTS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP,
           signal.SIGSYS)
HELD_DURING_CALLS = ((1 << 64) - 1) & ~sum(1 << (int(s) - 1) for s in _FAULTS)


class ProcessExited(LeaktraceError):
    pass


class CallTimeout(LeaktraceError):
    pass


def call_function(tid: int, memory_file: int, saved: Registers, function: int,
                  arguments: Sequence[int | bytes], pause: ptrace.Pause) -> int:
    """Run function(*arguments) on thread `tid` (stopped, seized) and return RAX. A bytes
    argument is copied into the target (NUL added) and passed by address. Signals that
    arrive meanwhile wait until the call is over (HELD_DURING_CALLS). On return the thread
    is stopped again with its registers still the call's: the caller restores `saved`."""
    regs = saved.copy()
    top = saved.rsp - RED_ZONE
    values = []
    for argument in arguments:
        if isinstance(argument, bytes):
            data = argument + b"\0"
            top = (top - len(data)) & ~15
            _write(memory_file, top, data)
            values.append(top)
        else:
            values.append(argument)
    # At the first instruction of a function, (rsp + 8) is 16-byte aligned (SysV ABI).
    sp = ((top - 256) & ~15) - 8
    _write(memory_file, sp, (0).to_bytes(8, "little"))
    ptrace.set_registers(tid, call_registers(regs, function, sp, values))
    mask = ptrace.get_signal_mask(tid)
    ptrace.set_signal_mask(tid, mask | HELD_DURING_CALLS)
    ptrace.resume(tid)
    result = _wait_for_return(tid, pause)
    ptrace.set_signal_mask(tid, mask)  # what was held is delivered when the thread goes on
    return result


def call_registers(regs: Registers, function: int, sp: int, values: Sequence[int]) -> Registers:
    """`regs` set to enter function(*values) with stack pointer `sp`: integer arguments in
    the SysV registers, no system call to restart, direction and trap flags clear."""
    for name, value in zip(ARGUMENT_REGISTERS, values, strict=False):
        setattr(regs, name, value)
    regs.rax = 0
    regs.rip = function
    regs.rsp = sp
    regs.orig_rax = NO_SYSCALL
    regs.eflags &= ~(EFLAGS_DF | EFLAGS_TF)
    return regs


def next_call_stop(tid: int, pause: ptrace.Pause) -> ptrace.Stop:
    """The next stop of a thread running an injected call; CallTimeout or ProcessExited when
    there is none to come."""
    try:
        stop = ptrace.wait_for_stop(tid, CALL_TIMEOUT, pause)
    except ptrace.WaitTimeout:
        raise CallTimeout(f"the injected call did not return within {CALL_TIMEOUT:g} s "
                          "(is the process deadlocked, or stopped?)") from None
    if stop.exited:
        raise ProcessExited("the process exited during the injected call")
    return stop


def _wait_for_return(tid: int, pause: ptrace.Pause) -> int:
    while True:
        stop = next_call_stop(tid, pause)
        if stop.is_event_stop:  # a group-stop (SIGSTOP...): finish the call first
            ptrace.resume(tid)
            continue
        if stop.signal == signal.SIGSEGV:
            regs = ptrace.get_registers(tid)
            if regs.rip == 0 and ptrace.fault_address(tid) == 0:
                return int(regs.rax)
        ptrace.resume(tid, stop.signal)  # the program's own signal: deliver it


def read_string(memory_file: int, address: int, limit: int = 4096) -> str:
    """A NUL-terminated string of the target, read page by page (the next may be unmapped)."""
    data = b""
    while len(data) < limit:
        chunk_end = (address + len(data) + 4096) & ~4095
        try:
            chunk = os.pread(memory_file, chunk_end - address - len(data), address + len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if b"\0" in chunk:
            break
    return data.split(b"\0", 1)[0][:limit].decode("utf-8", "replace")


def _write(memory_file: int, address: int, data: bytes) -> None:
    written = os.pwrite(memory_file, data, address)
    if written != len(data):
        raise OSError(f"short write into the target at {address:#x}")
