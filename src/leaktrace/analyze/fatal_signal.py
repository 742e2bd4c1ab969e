"""The signal that ended the program, as the reports tell it: its name, what caused it (the
faulting address, the sender) and the symbolized backtrace of the thread it struck, as
valgrind prints "Process terminating with default action of signal 11 (SIGSEGV)"."""

from __future__ import annotations

from dataclasses import replace

from leaktrace.analyze.module_map import ModuleMap
from leaktrace.analyze.signal_causes import (
    SENT_CODES,
    cause_of,
    handled_fault,
    is_fault,
    signal_name,
)
from leaktrace.analyze.stack_frames import symbolize_return_addresses
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import Capture
from leaktrace.model import FatalSignal, Frame
from leaktrace.symbolize import Symbolizer


def describe_fatal(capture: Capture, symbolizer: Symbolizer) -> FatalSignal | None:
    record = capture.fatal
    if record is None:
        return None
    # The first address is the interrupted instruction's + 1 (the shim's convention): looked up
    # like a return address, shown as the instruction's own. Copies: a recursion repeats an
    # address, whose frames are one tuple.
    known = symbolize_return_addresses(set(record.addresses), ModuleMap(capture.modules),
                                       symbolizer)
    frames: list[Frame] = []
    for n, address in enumerate(record.addresses):
        shown = address - 1 if n == 0 else address
        frames.extend(replace(frame, address=shown) for frame in known[address][0])
    pid = capture.header.pid
    handled = None
    if record.flags & fmt.FATAL_FLAG_IN_HANDLER and record.code in SENT_CODES:
        handled = handled_fault(record.signal, record.handler_trapno, record.handler_error,
                                record.handler_fault_address)
    return FatalSignal(
        signal=record.signal, name=signal_name(record.signal), code=record.code,
        cause=cause_of(record.signal, record.code, record.address, record.sender_pid, pid),
        address=record.address if is_fault(record.signal, record.code) else None,
        sender_pid=record.sender_pid if record.code in SENT_CODES else None,
        thread_id=record.thread_id, thread_name=record.thread_name,
        main_thread=record.thread_id == pid, frames=frames,
        truncated=bool(record.flags & fmt.FATAL_FLAG_TRUNCATED),
        in_shim=bool(record.flags & fmt.FATAL_FLAG_IN_SHIM), handled=handled)
