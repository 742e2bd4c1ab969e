"""Write capture files from Python objects. Used by the tests (and tests/data/make_sample.py)
to build captures without the shim; the shim writes real ones in C."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from leaktrace.capture import format as fmt
from leaktrace.capture.reader import (
    BlockRow,
    CaptureHeader,
    LeakGroupRow,
    Module,
    ProcessInfo,
    ScanStats,
    Stack,
)
from leaktrace.capture.series import SeriesRow, Session


def make_header(pid: int = 1234, *, flags: int = fmt.FLAG_FINAL, version: int = fmt.VERSION,
                start_time_ns: int = 1_700_000_000_000_000_000, run_ns: int = 2_000_000_000,
                start_monotonic_ns: int = 5_000_000_000) -> CaptureHeader:
    """A plausible header: a run of `run_ns` nanoseconds that ended with the process."""
    return CaptureHeader(version, fmt.HEADER_SIZE, pid, flags, start_time_ns,
                         start_time_ns + run_ns, start_monotonic_ns,
                         start_monotonic_ns + run_ns, fmt.POINTER_SIZE)


def _str(value: str | bytes) -> bytes:
    raw = os.fsencode(value) if isinstance(value, str) else value
    return struct.pack("<I", len(raw)) + raw


def _section(tag: int, payload: bytes) -> bytes:
    return struct.pack("<IIQ", tag, 0, len(payload)) + payload


def encode_header(h: CaptureHeader) -> bytes:
    raw = struct.pack("<8sIIIIQQQQII", fmt.MAGIC, h.version, h.header_size, h.pid, h.flags,
                      h.start_time_ns, h.capture_time_ns, h.start_monotonic_ns,
                      h.capture_monotonic_ns, h.pointer_size, 0)
    return raw + b"\0" * (h.header_size - len(raw))


def encode_process(p: ProcessInfo) -> bytes:
    args = b"".join(os.fsencode(a) + b"\0" for a in p.command_line)
    return _section(fmt.SECTION_PROCESS, struct.pack("<II", p.ppid, 0) + _str(p.executable)
                    + _str(args) + _str(p.cwd))


def encode_modules(modules: Iterable[Module]) -> bytes:
    modules = list(modules)
    payload = struct.pack("<II", len(modules), 0)
    for m in modules:
        flags = fmt.MODULE_FLAG_UNLOADED if m.unloaded else 0
        payload += struct.pack("<QQQII", m.load_bias, m.start, m.end, flags, len(m.build_id))
        payload += m.build_id + _str(m.path)
    return _section(fmt.SECTION_MODULES, payload)


def encode_stacks(stacks: Iterable[Stack]) -> bytes:
    stacks = list(stacks)
    payload = struct.pack("<II", len(stacks), 0)
    for s in stacks:
        payload += struct.pack("<II6Q", s.stack_id, len(s.return_addresses), s.alloc_count,
                               s.alloc_bytes, s.free_count, s.freed_bytes, s.live_blocks,
                               s.live_bytes)
        payload += struct.pack(f"<{len(s.return_addresses)}Q", *s.return_addresses)
    return _section(fmt.SECTION_STACKS, payload)


def encode_blocks(blocks: Iterable[BlockRow]) -> bytes:
    rows = [struct.pack("<QQIBBBxQ", b.address, b.size, b.stack_id, b.kind, b.leak_kind,
                        b.heuristic, b.alloc_time_ns)
            for b in blocks]
    return _section(fmt.SECTION_BLOCKS, struct.pack("<Q", len(rows)) + b"".join(rows))


def encode_counters(counters: dict[str, int]) -> bytes:
    payload = struct.pack("<II", len(counters), 0)
    for name, value in counters.items():
        payload += _str(name) + struct.pack("<Q", value)
    return _section(fmt.SECTION_COUNTERS, payload)


def encode_leak_groups(groups: Iterable[LeakGroupRow]) -> bytes:
    rows = [struct.pack("<QQQ", *g) for g in groups]
    return _section(fmt.SECTION_LEAK_GROUPS, struct.pack("<Q", len(rows)) + b"".join(rows))


def encode_scan(scan: ScanStats) -> bytes:
    return _section(fmt.SECTION_SCAN, struct.pack(
        "<QQQIIII", scan.duration_ns, scan.bytes_scanned, scan.root_bytes, scan.threads_stopped,
        scan.threads_not_stopped, scan.heuristics_mask, 0))


def encode_session(session: Session) -> bytes:
    return _section(fmt.SECTION_SESSION, struct.pack(
        "<QIIII", session.baseline_ns, session.sequence, session.reason,
        int(session.collecting), session.snapshot_interval_ms))


def encode_series(snapshots: Iterable[tuple[int, Iterable[SeriesRow]]]) -> bytes:
    """SERIES from (time_ns since the start, rows of the backtraces that changed)."""
    listed = [(time_ns, list(rows)) for time_ns, rows in snapshots]
    payload = struct.pack("<II", len(listed), 0)
    for time_ns, rows in listed:
        payload += struct.pack("<QII", time_ns, len(rows), 0)
        payload += b"".join(struct.pack("<II4Q", r.stack_id, 0, r.alloc_count, r.alloc_bytes,
                                        r.live_blocks, r.live_bytes) for r in rows)
    return _section(fmt.SECTION_SERIES, payload)


def encode_end() -> bytes:
    return _section(fmt.SECTION_END, b"")


def encode_capture(header: CaptureHeader, *, process: ProcessInfo | None = None,
                   modules: Iterable[Module] = (), stacks: Iterable[Stack] = (),
                   blocks: Iterable[BlockRow] = (), counters: dict[str, int] | None = None,
                   scan: ScanStats | None = None, leak_groups: Iterable[LeakGroupRow] = (),
                   session: Session | None = None,
                   series: Iterable[tuple[int, Iterable[SeriesRow]]] | None = None,
                   extra_sections: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A whole capture file. LEAK_GROUPS and SCAN are written when `scan` is given (as the
    shim does after a reachability scan). `extra_sections`
    (tag, payload) come before END, to test that readers skip tags they do not know."""
    parts = [encode_header(header)]
    if process is not None:
        parts.append(encode_process(process))
    parts += [encode_modules(modules), encode_stacks(stacks), encode_blocks(blocks)]
    if scan is not None:
        parts += [encode_leak_groups(leak_groups), encode_scan(scan)]
    if session is not None:
        parts.append(encode_session(session))
    if series is not None:
        parts.append(encode_series(series))
    parts.append(encode_counters(counters or {}))
    parts += [_section(tag, payload) for tag, payload in extra_sections]
    parts.append(encode_end())
    return b"".join(parts)


def stack_from_blocks(stack_id: int, return_addresses: Iterable[int],
                      blocks: Iterable[BlockRow], *, freed: tuple[int, int] = (0, 0)) -> Stack:
    """A STACKS entry whose totals agree with its live blocks (plus `freed` count, bytes)."""
    mine = [b for b in blocks if b.stack_id == stack_id]
    live_bytes = sum(b.size for b in mine)
    return Stack(stack_id, len(mine) + freed[0], live_bytes + freed[1], freed[0], freed[1],
                 len(mine), live_bytes, tuple(return_addresses))
