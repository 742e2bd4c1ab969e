"""`leaktrace dump FILE`: every record of a capture as text, for debugging the format."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timezone

import click

from leaktrace.analyze.module_map import ModuleMap
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import Capture, read_capture
from leaktrace.commands._errors import one_line_errors


@click.command("dump")
@click.argument("capture_file", metavar="FILE")
@one_line_errors
def dump_command(capture_file: str) -> None:
    """Print every section and record of a capture FILE, unsymbolized."""
    capture = read_capture(capture_file)
    out = sys.stdout
    # `leaktrace dump F | head`: a BrokenPipeError ends leaktrace quietly with 141 (cli.py),
    # as every command does.
    for line in dump_lines(capture):
        out.write(line + "\n")
    out.flush()


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def dump_lines(capture: Capture) -> Iterator[str]:
    """Yield the dump one line at a time (a capture can hold millions of blocks)."""
    h = capture.header
    flags = [name for bit, name in ((fmt.FLAG_FINAL, "FINAL"), (fmt.FLAG_CHILD, "CHILD"))
             if h.flags & bit]
    yield f"HEADER version={h.version} header_size={h.header_size} pid={h.pid} " \
          f"flags={h.flags:#x}({'|'.join(flags) or '-'}) pointer_size={h.pointer_size}"
    yield f"  start_time={h.start_time_ns} ({_time(h.start_time_ns)})"
    yield f"  capture_time={h.capture_time_ns} ({_time(h.capture_time_ns)})"
    yield f"  start_monotonic={h.start_monotonic_ns} capture_monotonic={h.capture_monotonic_ns}" \
          f" (ran {h.run_seconds:.3f} s)"
    p = capture.process
    if p is not None:
        yield f"PROCESS ppid={p.ppid} executable={p.executable!r} cwd={p.cwd!r}"
        yield f"  command_line={p.command_line!r}"
    yield f"MODULES count={len(capture.modules)}"
    for i, m in enumerate(capture.modules):
        yield f"  [{i}] {m.start:#x}-{m.end:#x} load_bias={m.load_bias:#x}" \
              f"{' UNLOADED' if m.unloaded else ''} build_id={m.build_id.hex() or '-'} " \
              f"path={m.path!r}"
    modules = ModuleMap(capture.modules)
    yield f"STACKS count={len(capture.stacks)}"
    for s in capture.stacks.values():
        yield f"  stack {s.stack_id} depth={len(s.return_addresses)} alloc={s.alloc_count}/" \
              f"{s.alloc_bytes}B free={s.free_count}/{s.freed_bytes}B " \
              f"live={s.live_blocks}/{s.live_bytes}B"
        for n, ra in enumerate(s.return_addresses):
            holder = modules.find(ra)
            where = f"{holder.path}+{ra - holder.load_bias:#x}" if holder else "(no module)"
            yield f"    #{n} {ra:#x} {where}"
    yield f"BLOCKS count={len(capture.blocks)}"
    for b in capture.block_rows():
        scanned = ""
        if b.leak_kind != fmt.LEAK_UNSCANNED:
            scanned = f" leak_kind={fmt.leak_kind_name(b.leak_kind).replace(' ', '_')}"
        if b.heuristic != fmt.HEURISTIC_NONE:
            scanned += f" heuristic={fmt.heuristic_name(b.heuristic)}"
        yield f"  {b.address:#x} size={b.size} stack={b.stack_id} " \
              f"kind={fmt.kind_name(b.kind)}{scanned} alloc_time_ns={b.alloc_time_ns}"
    if capture.scan is not None:
        yield f"LEAK_GROUPS count={len(capture.leak_groups)}"
        for g in capture.leak_group_rows():
            yield f"  {g.address:#x} indirect_bytes={g.indirect_bytes} " \
                  f"indirect_blocks={g.indirect_blocks}"
        stats = capture.scan
        yield f"SCAN duration_ns={stats.duration_ns} bytes_scanned={stats.bytes_scanned} " \
              f"root_bytes={stats.root_bytes} threads_stopped={stats.threads_stopped} " \
              f"threads_not_stopped={stats.threads_not_stopped} " \
              f"heuristics={','.join(stats.heuristics) or 'none'}"
    yield f"COUNTERS count={len(capture.counters)}"
    for name, value in capture.counters.items():
        yield f"  {name}={value}"
    f = capture.fatal
    if f is not None:
        yield f"FATAL signal={f.signal} code={f.code} address={f.address:#x} " \
              f"sender_pid={f.sender_pid} tid={f.thread_id} thread_name={f.thread_name!r} " \
              f"flags={f.flags:#x} depth={len(f.addresses)} handler_trapno={f.handler_trapno} " \
              f"handler_error={f.handler_error:#x} " \
              f"handler_fault_address={f.handler_fault_address:#x}"
        for n, address in enumerate(f.addresses):
            holder = modules.find(address - 1)
            where = f"{holder.path}+{address - holder.load_bias:#x}" if holder else "(no module)"
            yield f"    #{n} {address:#x} {where}"
    if capture.invalid_frees is not None:
        yield f"INVALID_FREES count={len(capture.invalid_frees)} " \
              f"unrecorded={capture.invalid_frees_unrecorded}"
        for row in capture.invalid_frees:
            yield f"  stack={row.stack_id} api={_free_api_name(row.api)} " \
                  f"calls={row.calls} first_address={row.first_address:#x}"
    for tag in capture.unknown_sections:
        yield f"UNKNOWN SECTION tag={tag} (skipped)"
    yield "END"


def _free_api_name(api: int) -> str:
    name = fmt.FREE_APIS.get(api & ~fmt.FREE_API_MISMATCHED, str(api))
    return f"mismatched {name}" if api & fmt.FREE_API_MISMATCHED else name
