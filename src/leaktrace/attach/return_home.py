"""Injected calls that bring the thread back by themselves: the SIGKILL window.

A call made the usual way (remote_call.call_function) returns to address 0 and faults, and
only leaktrace puts the thread back: if leaktrace dies (SIGKILL, which cannot be held back)
while the thread runs the call, the kernel lets the thread go, it returns to 0 and the whole
process dies of SIGSEGV. Here the call returns into libc's signal-return trampoline
(`__restore_rt`: `mov $15, %rax; syscall`, rt_sigreturn) over a signal frame that leaktrace
wrote below the thread's stack: the thread's own registers, its extended FP state and its
signal mask, as they were when it was stopped. Whether leaktrace is there or not, the call's
end puts the thread back exactly where it was, as the return from a signal handler does.
leaktrace, if alive, watches the system calls of the thread (PTRACE_SYSCALL) to see it arrive
there, reads what the call left in memory, and lets rt_sigreturn run.

rt_sigreturn never restarts an interrupted system call, which a ptrace stop in a blocking
call leaves pending (-ERESTARTSYS and the call's number in orig_rax): the frame holds what
the kernel would have done, the instruction pointer back on the `syscall` instruction and the
call's number in RAX. One difference: a sleep with a timeout (nanosleep, clock_nanosleep,
poll: -ERESTART_RESTARTBLOCK) would go on for the time left through restart_syscall, whose
state rt_sigreturn clears; the frame issues the call again, with its whole timeout. That
happens only when leaktrace died; alive, it keeps the kernel's own restart for such a thread
(it ends the call at a fault it catches, as remote_call does, instead of rt_sigreturn). The
alternate signal stack in the frame has invalid flags, so the kernel keeps the thread's own
(it ignores such a value on return).
"""

from __future__ import annotations

import os
import signal
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from leaktrace.attach import ptrace
from leaktrace.attach.ptrace import Registers
from leaktrace.attach.remote_call import (
    HELD_DURING_CALLS,
    NO_SYSCALL,
    RED_ZONE,
    call_registers,
    next_call_stop,
)
from leaktrace.attach.target_libraries import LoadedLibrary
from leaktrace.attach.xsave_layout import LEGACY_AND_HEADER, user_components

RESTORE_RT = bytes.fromhex("48c7c00f000000" "0f05")  # mov $15, %rax; syscall
SYS_RT_SIGRETURN = 15
RESTARTED = {512, 513, 514}  # -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND
RESTART_RESTARTBLOCK = 516
UC_FLAGS = 1 | 2 | 4  # UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
INVALID_SS_FLAGS = 7  # neither 0, SS_ONSTACK nor SS_DISABLE: the kernel keeps the altstack
FP_XSTATE_MAGIC1 = 0x46505853
FP_XSTATE_MAGIC2 = 0x46505845
ALL_FEATURES = (1 << 64) - 1  # the kernel keeps those it supports
XSAVE_HEADER_END = 576  # legacy area (512) and XSAVE header (64)
UCONTEXT_SIZE = 304  # flags, link, stack_t (24), sigcontext (256), sigset (8)
SIGINFO_SIZE = 128


@dataclass(frozen=True)
class Home:
    """What the signal frame restores: libc's trampoline in the target, the thread's
    extended FP state (XSAVE layout, as PTRACE_GETREGSET gives it) and its signal mask."""

    restorer: int
    fp_state: bytes
    signal_mask: int

    def signal_frame_fp_state(self) -> bytes:
        """The XSAVE image as a signal frame holds it: the software bytes of the legacy
        area say it is an XSAVE image (the kernel then restores every component its header
        marks, and initialises the others), and a second magic word ends it, at each size
        the thread's state may have (frame_state_sizes)."""
        state = bytearray(self.fp_state)
        sizes = frame_state_sizes(len(state), int.from_bytes(state[512:520], "little"))
        magic2 = FP_XSTATE_MAGIC2.to_bytes(4, "little")
        for size in sizes[:-1]:
            state[size:size + 4] = magic2
        # Older kernels take the size given here (if not above the thread's) and look for
        # the end marker there: the smallest, which covers every component in use.
        state[464:512] = struct.pack("<IIQI", FP_XSTATE_MAGIC1, sizes[0] + 4, ALL_FEATURES,
                                     sizes[0]).ljust(48, b"\0")
        return bytes(state) + magic2


def frame_state_sizes(image_size: int, xstate_bv: int) -> list[int]:
    """The sizes, smallest first, that the kernel may take for the thread's XSAVE state in a
    signal frame (rt_sigreturn looks for the end marker there; without it, it restores x87
    and SSE only, and the upper halves of the vector registers come back zeroed). It is the
    end of the last component the thread may use, which ptrace does not tell: ptrace's image
    always has the size of every component (AMX's 8 KiB of tile data included), a thread's
    state only those it asked for (ARCH_REQ_XCOMP_PERM). So: the end of every component that
    lies past the components in use, whose bytes XRSTOR never reads, and the image's size.
    Only the image's size when the layout is unknown (CPUID could not be run here)."""
    components = user_components()
    in_use = [number for number in range(2, 64) if xstate_bv >> number & 1]
    if not components or any(number not in components for number in in_use):
        return [image_size]
    used_end = max([LEGACY_AND_HEADER] + [sum(components[number]) for number in in_use])
    ends = {offset + size for offset, size in components.values()}
    return sorted({end for end in ends if used_end <= end <= image_size - 4} | {image_size})


def find_restorer(libc: LoadedLibrary) -> int | None:
    """The address of `__restore_rt` in the target (a local symbol, stripped: found by its
    nine bytes in libc's code), or None when not exactly one copy is found."""
    try:
        with open(libc.root + libc.path, "rb") as f:
            elf = ELFFile(f)
            hits = []
            for segment in elf.iter_segments():
                if segment["p_type"] != "PT_LOAD" or not segment["p_flags"] & 1:
                    continue
                data = segment.data()
                at = data.find(RESTORE_RT)
                while at >= 0:
                    hits.append(segment["p_vaddr"] + at)
                    at = data.find(RESTORE_RT, at + 1)
    except (OSError, ELFError, ValueError):
        return None
    return libc.load_bias + hits[0] if len(hits) == 1 else None


def signal_mask(pid: int, tid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        return None
    return None


def usable_fp_state(fp_state: bytes | None) -> bool:
    """An XSAVE image (NT_X86_XSTATE: legacy area, header, then the components)."""
    return fp_state is not None and len(fp_state) >= XSAVE_HEADER_END


def in_timed_sleep(saved: Registers) -> bool:
    """Stopped in a sleep the kernel resumes for the time left (-ERESTART_RESTARTBLOCK)."""
    return saved.orig_rax != NO_SYSCALL and (1 << 64) - saved.rax == RESTART_RESTARTBLOCK


def resumed_registers(saved: Registers) -> Registers:
    """`saved` as rt_sigreturn must leave the thread: an interrupted system call is issued
    again as the kernel would restart it."""
    regs = saved.copy()
    if saved.orig_rax != NO_SYSCALL and (1 << 64) - saved.rax in RESTARTED | {
            RESTART_RESTARTBLOCK}:
        regs.rax = saved.orig_rax
        regs.rip = saved.rip - 2
    regs.orig_rax = NO_SYSCALL
    return regs


def _ucontext(regs: Registers, fp_address: int, mask: int) -> bytes:
    context = struct.pack("<18Q", regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13,
                          regs.r14, regs.r15, regs.rdi, regs.rsi, regs.rbp, regs.rbx, regs.rdx,
                          regs.rax, regs.rcx, regs.rsp, regs.rip, regs.eflags)
    context += struct.pack("<4H", regs.cs, 0, 0, regs.ss)
    context += struct.pack("<4Q", 0, 0, 0, 0)  # err, trapno, oldmask, cr2
    context += struct.pack("<Q8Q", fp_address, *([0] * 8))
    frame = struct.pack("<QQQiiQ", UC_FLAGS, 0, 0, INVALID_SS_FLAGS, 0, 0) + context
    frame += struct.pack("<Q", mask)
    assert len(frame) == UCONTEXT_SIZE
    return frame


class Slot:
    """An argument that is the address of 8 zeroed bytes in the target, read after the call
    (the call's results, since its return value is gone when rt_sigreturn runs)."""


@dataclass(frozen=True)
class StartedCall:
    """An injected call under way: where its frame is, what it writes, how it must end."""

    sp: int
    slots: list[int]
    resumed: Registers
    timed_sleep: bool


def start_call_returning_home(tid: int, memory_file: int, saved: Registers, home: Home,
                              function: int, arguments: list[int | bytes | Slot]) -> StartedCall:
    """Write the arguments and the signal frame below the thread's stack, point the thread
    at function(*arguments) and let it run (stopping at each system call). From here on the
    thread gets back to `saved` by itself, whatever becomes of leaktrace."""
    top = saved.rsp - RED_ZONE
    values: list[int] = []
    slots: list[int] = []
    for argument in arguments:
        if isinstance(argument, Slot):
            top = (top - 8) & ~7
            _write(memory_file, top, bytes(8))
            slots.append(top)
            values.append(top)
        elif isinstance(argument, bytes):
            data = argument + b"\0"
            top = (top - len(data)) & ~15
            _write(memory_file, top, data)
            values.append(top)
        else:
            values.append(argument)
    fp_image = home.signal_frame_fp_state()
    fp_address = (top - len(fp_image)) & ~63  # XRSTOR wants 64-byte alignment
    _write(memory_file, fp_address, fp_image)
    sp = ((fp_address - 8 - UCONTEXT_SIZE - SIGINFO_SIZE - 256) & ~15) - 8
    resumed = resumed_registers(saved)
    _write(memory_file, sp, home.restorer.to_bytes(8, "little")
           + _ucontext(resumed, fp_address, home.signal_mask) + bytes(SIGINFO_SIZE))
    ptrace.set_registers(tid, call_registers(saved.copy(), function, sp, values))
    # rt_sigreturn puts the thread's own mask back from the frame (remote_call explains why)
    ptrace.set_signal_mask(tid, home.signal_mask | HELD_DURING_CALLS)
    ptrace.resume_to_syscall(tid)
    return StartedCall(sp, slots, resumed, in_timed_sleep(saved))


def call_returning_home(tid: int, memory_file: int, saved: Registers, home: Home,
                        function: int, arguments: list[int | bytes | Slot],
                        pause: ptrace.Pause) -> list[int] | None:
    """Run function(*arguments) on thread `tid` (stopped, seized); its return brings the
    thread back to `saved` by itself. Returns the values of the Slot arguments, the thread
    then stopped after rt_sigreturn with its own registers; or None when the kernel refused
    the frame (the thread is then stopped at the SIGSEGV it would have got, taken off).
    For a thread stopped in a timed sleep (in_timed_sleep), leaktrace skips rt_sigreturn and
    lets the thread fault at address 0, caught: the caller restores it as remote_call's
    callers do, and the kernel resumes the sleep for the time left."""
    call = start_call_returning_home(tid, memory_file, saved, home, function, arguments)
    results: list[int] | None = None
    while True:
        stop = next_call_stop(tid, pause)
        if stop.is_event_stop:
            ptrace.resume_to_syscall(tid)
            continue
        if not stop.is_syscall_stop:
            if results is not None and stop.signal == signal.SIGSEGV:
                # Ours, never delivered: the frame was refused, or the fault we asked for.
                # No rt_sigreturn put the thread's mask back: put it back here.
                ptrace.set_signal_mask(tid, home.signal_mask)
                return results if call.timed_sleep else None
            ptrace.resume_to_syscall(tid, stop.signal)  # the program's own signal
            continue
        info = ptrace.syscall_info(tid)
        if results is None and info.op == ptrace.SYSCALL_INFO_ENTRY and (
                info.number == SYS_RT_SIGRETURN and info.stack_pointer == call.sp + 8
                and info.instruction_pointer == home.restorer + len(RESTORE_RT)):
            results = [int.from_bytes(os.pread(memory_file, 8, at), "little")
                       for at in call.slots]
            if call.timed_sleep:  # skip rt_sigreturn: return to address 0, a fault we catch
                now = ptrace.get_registers(tid)
                now.orig_rax = NO_SYSCALL
                now.rip = 0
                ptrace.set_registers(tid, now)
                ptrace.resume(tid)
                continue
        elif results is not None and info.op == ptrace.SYSCALL_INFO_EXIT:
            now = ptrace.get_registers(tid)
            if (now.rip, now.rsp) == (call.resumed.rip, call.resumed.rsp):
                return results
        ptrace.resume_to_syscall(tid)


def _write(memory_file: int, address: int, data: bytes) -> None:
    if os.pwrite(memory_file, data, address) != len(data):
        raise OSError(f"short write into the target at {address:#x}")
