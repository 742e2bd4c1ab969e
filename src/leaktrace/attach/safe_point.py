"""Is a stopped thread at a point where it may be made to call dlopen? Not if it is inside
the allocator or the dynamic loader: the injected call allocates and takes the loader's
locks, and would deadlock on a lock its own thread already holds. Judged from the
instruction pointer and the return addresses of its call chain (unwind.py); where the chain
cannot be followed, every word of the rest of the stack that points into such code counts
(conservative: a stale word only costs a retry, a missed frame could hang the target)."""

from __future__ import annotations

import os
import struct

from leaktrace.attach.process_info import MemoryMap
from leaktrace.attach.ptrace import Registers
from leaktrace.attach.target_libraries import UnsafeCode
from leaktrace.attach.unwind import DWARF_REGISTERS, StackReader, Unwinder

STACK_SCAN_BYTES = 64 << 10
# What dlopen and leaktrace_attach need below the stack pointer, with a margin.
MIN_STACK_ROOM = 64 << 10


def unsafe_reason(regs: Registers, memory: MemoryMap, unsafe: UnsafeCode, memory_file: int,
                  unwinder: Unwinder) -> str | None:
    """Why injecting now would be unsafe, or None when it is safe."""
    where = unsafe.find(regs.rip)
    if where is not None:
        return f"executing {where}"
    stack = memory.containing(regs.rsp)
    if stack is None or "w" not in stack.perms:
        return "its stack pointer is not in writable memory"
    # The main thread's [stack] grows on demand; other stacks are fixed-size mappings.
    if stack.path != "[stack]" and regs.rsp - stack.start < MIN_STACK_ROOM:
        return "too little stack left below its stack pointer"
    length = min(STACK_SCAN_BYTES, stack.end - regs.rsp) & ~7
    try:
        data = os.pread(memory_file, length, regs.rsp)
    except OSError:
        return "its stack could not be read"
    registers = {name: getattr(regs, name) for name in DWARF_REGISTERS}
    chain = unwinder.unwind(registers, memory, StackReader(memory_file, regs.rsp, data))
    for address in chain.return_addresses:
        where = unsafe.find(address)
        if where is not None:
            return f"called from {where}"
    if chain.incomplete_from is not None:
        start = max(chain.incomplete_from - regs.rsp, 0) & ~7
        for (word,) in struct.iter_unpack("<Q", data[start:len(data) & ~7]):
            where = unsafe.find(word)
            if where is not None:
                return f"maybe called from {where} (a return address on its stack)"
    return None
