"""`--format pprof`: the report as a gzipped profile.proto (github.com/google/pprof,
proto/profile.proto), the format `go tool pprof`, Grafana Pyroscope, Parca and Cloud Profiler
read. Sample types: inuse_objects/inuse_space (the records shown: leaked, or live at the
capture without a scan) and alloc_objects/alloc_space (every allocation from the backtrace
during the run). Each distinct return address is one Location whose Lines hold its inlined
calls, innermost first, as profile.proto asks."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leaktrace.model import Frame, LeakRecord, LoadedModule, Report
from leaktrace.render.options import RenderOptions
from leaktrace.render.protobuf import Message
from leaktrace.render.stack_paths import frame_name, stack_samples

if TYPE_CHECKING:
    from leaktrace.analyze.merge_reports import MergedReport

# profile.proto field numbers (only those written).
_P_SAMPLE_TYPE, _P_SAMPLE, _P_MAPPING, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 3, 4, 5, 6
_P_TIME_NANOS, _P_DURATION_NANOS, _P_PERIOD_TYPE, _P_PERIOD = 9, 10, 11, 12
_P_COMMENT, _P_DEFAULT_SAMPLE_TYPE = 13, 14

SAMPLE_TYPES = [("inuse_objects", "count"), ("inuse_space", "bytes"),
                ("alloc_objects", "count"), ("alloc_space", "bytes")]


class _Strings:
    def __init__(self) -> None:
        self.table: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, text: str | None) -> int:
        if not text:
            return 0
        if text not in self._index:
            self._index[text] = len(self.table)
            self.table.append(text)
        return self._index[text]


class _ProfileBuilder:
    def __init__(self, report: Report) -> None:
        self.strings = _Strings()
        self.report = report
        self.mappings: dict[str, tuple[int, Message]] = {}
        self.functions: dict[tuple[str, str], tuple[int, Message]] = {}
        self.locations: dict[tuple[str | None, int], tuple[int, Message]] = {}
        self._modules = {m.path: m for m in report.modules}

    def main_mapping_first(self) -> None:
        """pprof takes the first Mapping for the program ("File:"): the executable's, when
        one of the samples' frames is in it."""
        program = self.report.program
        if program and any(f.module == program for r in self.report.records
                           for f in r.frames):
            self._mapping(program)

    def mapping_id(self, frame: Frame) -> int:
        return 0 if frame.module is None else self._mapping(frame.module)

    def _mapping(self, path: str) -> int:
        if path not in self.mappings:
            module = self._modules.get(path) or self._guessed_module(path)
            message = (Message().integer(1, len(self.mappings) + 1).integer(2, module.start)
                       .integer(3, module.end).integer(5, self.strings(module.path))
                       .integer(6, self.strings(module.build_id))
                       .integer(7, 1).integer(8, 1).integer(9, 1).integer(10, 1))
            self.mappings[path] = (len(self.mappings) + 1, message)
        return self.mappings[path][0]

    def _guessed_module(self, path: str) -> LoadedModule:
        """A source without module ranges (valgrind XML): from the lowest to the highest
        address of the module's frames in the report, so every location falls inside. No
        build id: the file on disk may not be the one that ran."""
        addresses = [f.address for r in self.report.records for f in r.frames
                     if f.module == path and f.address]
        start, end = (min(addresses), max(addresses) + 1) if addresses else (0, 0)
        return LoadedModule(path, start, end, start)

    def function_id(self, frame: Frame) -> int:
        name = frame_name(frame)
        key = (name, frame.file or "")
        if key not in self.functions:
            number = len(self.functions) + 1
            message = (Message().integer(1, number).integer(2, self.strings(name))
                       .integer(3, self.strings(name)).integer(4, self.strings(frame.file)))
            self.functions[key] = (number, message)
        return self.functions[key][0]

    def location_ids(self, frames: list[Frame]) -> list[int]:
        """Leaf first. Consecutive inlined frames and the frame they were inlined into share
        one return address, so one Location."""
        ids: list[int] = []
        group: list[Frame] = []
        for frame in frames:
            group.append(frame)
            if not frame.inlined:
                ids.append(self._location(group))
                group = []
        if group:
            ids.append(self._location(group))
        return ids

    def _location(self, group: list[Frame]) -> int:
        outer = group[-1]
        key = (outer.module, outer.address)
        if key not in self.locations:
            number = len(self.locations) + 1
            message = (Message().integer(1, number).integer(2, self.mapping_id(outer))
                       .integer(3, outer.address))
            for frame in group:
                message.message(4, Message().integer(1, self.function_id(frame))
                                .integer(2, frame.line or 0))
            self.locations[key] = (number, message)
        return self.locations[key][0]




def render_pprof(report: Report, options: RenderOptions,
                 merged: MergedReport | None = None) -> bytes:
    """`merged`: the report is a merge; each record becomes one sample per process, with a
    numeric `pid` label, so a merged profile can still be split by process."""
    builder = _ProfileBuilder(report)
    builder.main_mapping_first()
    strings = builder.strings
    profile = Message()
    for kind, unit in SAMPLE_TYPES:
        profile.message(_P_SAMPLE_TYPE, _value_type(strings(kind), strings(unit)))
    for sample in stack_samples(report, options):
        record = sample.record
        locations = (builder.location_ids(record.frames)
                     or [builder._location([_no_backtrace()])])
        labels = [Message().integer(1, strings(key)).integer(2, strings(value))
                  for key, value in (("kind", record.kind), ("leak_kind", record.leak_kind),
                                     ("stack_id", record.stack_id)) if value]
        parts: list[tuple[list[int], int | None]] = [
            ([sample.blocks, sample.bytes, sample.alloc_count, sample.alloc_bytes], None)]
        if merged is not None and id(record) in merged.shares:
            first = sample.alloc_count or sample.alloc_bytes  # allocations not yet counted
            parts = [([s.blocks, s.bytes, (s.allocations or 0) if first else 0,
                       (s.allocated_bytes or 0) if first else 0], merged.sources[s.source].pid)
                     for s in merged.shares[id(record)]]
        for values, pid in parts:
            message = Message().packed(1, locations).packed(2, values)
            for label in labels:
                message.message(3, label)
            if pid is not None:
                message.message(3, Message().integer(1, strings("pid")).integer(3, pid))
            profile.message(_P_SAMPLE, message)
    _add_tables(profile, builder)
    if report.end_time:
        profile.integer(_P_TIME_NANOS, int(report.end_time * 1e9))
        if report.start_time:
            profile.integer(_P_DURATION_NANOS, int((report.end_time - report.start_time) * 1e9))
    profile.message(_P_PERIOD_TYPE, _value_type(strings("space"), strings("bytes")))
    profile.integer(_P_PERIOD, 1)
    program = os.path.basename(report.program) if report.program else report.source
    pid_text = f" (pid {report.pid})" if report.pid is not None else ""
    who = (f"{program}{pid_text}" if merged is None
           else f"{program}, {len(merged.sources)} processes merged")
    profile.packed(_P_COMMENT, [strings(f"leaktrace: {who}, memory still live "
                                        f"{report.captured_when}")])
    profile.integer(_P_DEFAULT_SAMPLE_TYPE, strings("inuse_space"))
    for text in strings.table:  # last: every string is interned by now
        profile.string(_P_STRINGS, text)
    return gzip.compress(profile.encode(), mtime=0)


@dataclass
class DiffSample:
    """One backtrace of a diff: its frames (in `record`), the change and the status."""

    record: LeakRecord
    blocks_change: int
    bytes_change: int
    status: str


def render_change_pprof(after: Report, samples: list[DiffSample], comment: str) -> bytes:
    """A diff as a profile: inuse_objects/inuse_space are the change per backtrace (negative
    where it shrank), as `go tool pprof -diff_base` computes one; labels status, kind,
    leak_kind, stack_id. Mappings come from the frames (both sides' addresses), without
    build ids: the two sides may be different builds."""
    frames_only = Report(source=after.source, program=after.program,
                         records=[s.record for s in samples])
    builder = _ProfileBuilder(frames_only)
    builder.main_mapping_first()
    strings = builder.strings
    profile = Message()
    for kind, unit in SAMPLE_TYPES[:2]:
        profile.message(_P_SAMPLE_TYPE, _value_type(strings(kind), strings(unit)))
    for sample in samples:
        record = sample.record
        locations = (builder.location_ids(record.frames)
                     or [builder._location([_no_backtrace()])])
        message = Message().packed(1, locations).packed(
            2, [sample.blocks_change, sample.bytes_change])
        for key, value in (("status", sample.status), ("kind", record.kind),
                           ("leak_kind", record.leak_kind), ("stack_id", record.stack_id)):
            if value:
                message.message(3, Message().integer(1, strings(key)).integer(2, strings(value)))
        profile.message(_P_SAMPLE, message)
    _add_tables(profile, builder)
    profile.message(_P_PERIOD_TYPE, _value_type(strings("space"), strings("bytes")))
    profile.integer(_P_PERIOD, 1)
    profile.packed(_P_COMMENT, [strings(comment)])
    profile.integer(_P_DEFAULT_SAMPLE_TYPE, strings("inuse_space"))
    for text in strings.table:
        profile.string(_P_STRINGS, text)
    return gzip.compress(profile.encode(), mtime=0)


def _add_tables(profile: Message, builder: _ProfileBuilder) -> None:
    for _, mapping in builder.mappings.values():
        profile.message(_P_MAPPING, mapping)
    for _, location in builder.locations.values():
        profile.message(_P_LOCATION, location)
    for _, function in builder.functions.values():
        profile.message(_P_FUNCTION, function)


def _value_type(kind: int, unit: int) -> Message:
    return Message().integer(1, kind).integer(2, unit)


def _no_backtrace() -> Frame:
    return Frame(address=0, function="[no backtrace]")
