"""What sent or caused a signal, in words: from its si_code (the kernel's values of faults,
senders and other sources), or from the x86-64 trap number a handler's signal frame saved.
No numpy here: the valgrind XML reader uses it too."""

from __future__ import annotations

import signal

# The kernel's si_code values of faults (include/uapi/asm-generic/siginfo.h).
_FAULT_CAUSES: dict[int, dict[int, str]] = {
    signal.SIGSEGV: {1: "address not mapped", 2: "no permission for the access to a mapped "
                     "address", 3: "failed address bound checks", 4: "protection key check "
                     "failed"},
    signal.SIGBUS: {1: "misaligned address", 2: "no memory behind the address (a mapped file "
                    "cut shorter?)", 3: "hardware error", 4: "machine check: memory error "
                    "consumed", 5: "machine check: memory error found"},
    signal.SIGILL: {1: "illegal opcode", 2: "illegal operand", 3: "illegal addressing mode",
                    4: "illegal trap", 5: "privileged opcode", 6: "privileged register",
                    7: "coprocessor error", 8: "internal stack error"},
    signal.SIGFPE: {1: "integer divide by zero", 2: "integer overflow", 3: "floating-point "
                    "divide by zero", 4: "floating-point overflow", 5: "floating-point "
                    "underflow", 6: "floating-point inexact result", 7: "invalid "
                    "floating-point operation", 8: "subscript out of range"},
    signal.SIGTRAP: {1: "breakpoint", 2: "trace trap", 3: "branch trap",
                     4: "hardware breakpoint or watchpoint"},
}
_SENT_HOW = {0: "kill", -1: "sigqueue", -6: "tgkill"}  # SI_USER, SI_QUEUE, SI_TKILL
SENT_CODES = frozenset(_SENT_HOW)  # a process sent the signal (si_pid is the sender)
_OTHER_CAUSES = {-2: "a timer expired", -3: "a message queue got a message",
                 -4: "an asynchronous I/O request completed", -5: "I/O is possible (queued "
                 "SIGIO)", -60: "an asynchronous name lookup completed"}
_SI_KERNEL = 0x80


def is_fault(number: int, code: int) -> bool:
    """A fault the kernel reports with its address (the shim's test too: fatal.c)."""
    return number in _FAULT_CAUSES and 0 < code != _SI_KERNEL


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


def cause_of(number: int, code: int, address: int, sender: int, pid: int) -> str:
    """What sent or caused the signal, from its si_code."""
    if code in _SENT_HOW:
        if sender == pid:
            return ("raised by the program itself (abort())" if number == signal.SIGABRT
                    else "raised by the program itself (raise() or kill())")
        return f"sent by process {sender} ({_SENT_HOW[code]})"
    if code == _SI_KERNEL:
        if number == signal.SIGSEGV:
            return "general protection fault (a non-canonical address; the kernel gives none)"
        return "sent by the kernel"
    if code in _OTHER_CAUSES:
        return _OTHER_CAUSES[code]
    causes = _FAULT_CAUSES.get(number, {})
    if code in causes:
        return f"{causes[code]}, at address {address:#x}"
    return f"si_code {code}"


# x86-64 trap numbers of faults, and the signal the kernel makes of each.
_TRAPS: dict[int, tuple[int, str]] = {
    0: (signal.SIGFPE, "integer divide by zero"),
    1: (signal.SIGTRAP, "trace trap"),
    3: (signal.SIGTRAP, "breakpoint"),
    6: (signal.SIGILL, "illegal instruction"),
    13: (signal.SIGSEGV, "general protection fault"),
    16: (signal.SIGFPE, "floating-point error"),
    17: (signal.SIGBUS, "misaligned address"),
    19: (signal.SIGFPE, "SIMD floating-point error"),
}
_PAGE_FAULT = 14


def handled_fault(fatal: int, trapno: int, error: int, address: int) -> str | None:
    """The fault a handler of the program's raised again as `fatal` (a crash reporter's; the
    handler's frame holds the thread's last fault), when that fault makes the same signal."""
    if trapno == _PAGE_FAULT and fatal in (signal.SIGSEGV, signal.SIGBUS):
        if fatal == signal.SIGBUS:
            what = "no memory behind the address (a mapped file cut shorter?)"
        else:  # error code bit 0: the page was present, the access not allowed
            what = "no permission for the access to a mapped address" if error & 1 else \
                "address not mapped"
        return f"{what}, at address {address:#x}"
    known = _TRAPS.get(trapno)
    if known is None or known[0] != fatal:
        return None
    return known[1]
