"""Growth per backtrace over a run, in the spirit of libmemleak: the run is cut into about
eight time intervals, and for each backtrace and interval we give what was allocated in it,
how much of that is still unfreed, and how its live bytes moved. A verdict then tells a
steady leak (`growing`) from a cache that filled and stopped (`plateaued`) and from memory
that comes and goes (`stable`).

Inputs are one capture: its SERIES (per-backtrace totals at every snapshot), its STACKS (the
totals at capture time, the last point) and its BLOCKS (when each live block was allocated).

Definitions (docs/user-guide.md, "Long-running processes"):
- points: the start (all totals 0), every snapshot, and the capture itself. Intervals join
  TARGET_INTERVALS + 1 of these points, picked closest to equal divisions of the run, so
  each interval spans whole snapshots; fewer points give fewer intervals.
- growth fraction: the share of intervals in which the backtrace's live bytes went up.
- first/last third: net change of live bytes over the first and the last third of the
  intervals (a third is round(N / 3) intervals, at least one).
- verdict: `growing` when live bytes went up in the last third, in at least a third of all
  intervals and in at least MIN_GROWTH_INTERVALS (3) of them: a trend needs evidence from
  several snapshots, so blocks allocated once (or in a run too short for three intervals) are
  never called growing; `plateaued` when they ended above where they started but did not go up in
  the last third; `stable` otherwise (no net growth, or growth in too few intervals to be a
  trend, such as a buffer that happened to be live at capture).
- score (the ranking): growth fraction x net growth rate (bytes/s) over the last half of the
  intervals. A backtrace that leaks in every interval keeps a high score; one that grew once
  at start-up scores 0, however much it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leaktrace.analyze.build_report import symbolize_stacks
from leaktrace.analyze.stack_frames import runtime_api_name
from leaktrace.analyze.stack_ids import stable_stack_id_of_bytes
from leaktrace.capture import format as fmt
from leaktrace.capture.distinct import distinct
from leaktrace.capture.id_rows import rows_in
from leaktrace.capture.reader import Capture
from leaktrace.capture.stack_table import (
    ALLOC_BYTES,
    ALLOC_COUNT,
    LIVE_BLOCKS,
    LIVE_BYTES,
    StackTable,
)
from leaktrace.model import Frame
from leaktrace.symbolize import Symbolizer

TARGET_INTERVALS = 8
GROWING, PLATEAUED, STABLE = "growing", "plateaued", "stable"
VERDICTS = (GROWING, PLATEAUED, STABLE)
MIN_GROWTH_FRACTION = 1 / 3
MIN_GROWTH_INTERVALS = 3  # a trend is seen in at least this many intervals
TIMELINE_STACKS = 32  # backtraces a plot can show

# Totals columns, in the order of the arrays below.
_ALLOCS, _ALLOC_BYTES, _LIVE_BLOCKS, _LIVE_BYTES = range(4)


@dataclass
class Interval:
    """One backtrace in one interval [start, end) of the run (seconds since the start)."""

    start: float
    end: float
    allocations: int  # made in the interval (from the SERIES totals)
    allocated_bytes: int
    unfreed: int  # of the blocks made in it, those still live at capture (from BLOCKS)
    unfreed_bytes: int
    live_change_bytes: int  # net change of the backtrace's live bytes over the interval
    live_change_blocks: int

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def unfreed_percent(self) -> float | None:
        """Share of the allocations made in the interval that are still live; None when it
        made none (or when the counts disagree: blocks recorded before the series began)."""
        if self.allocations <= 0:
            return None
        return min(100.0, 100.0 * self.unfreed / self.allocations)

    @property
    def allocations_per_second(self) -> float:
        return self.allocations / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.allocated_bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass
class StackGrowth:
    native_id: int  # the shim's number for the backtrace (same in every capture of a process)
    intervals: list[Interval]
    live_blocks: int  # at capture
    live_bytes: int
    oldest_age_seconds: float | None  # age at capture of its oldest live block
    growth_fraction: float
    first_third_bytes: int
    last_third_bytes: int
    net_bytes: int  # live bytes at capture minus at the start of the first interval
    bytes_per_second: float  # net growth over the whole run
    recent_bytes_per_second: float  # net growth over the last half of the intervals
    score: float
    verdict: str
    reason: str  # the numbers behind the verdict, in words
    # (seconds, live bytes) at every snapshot: for the TIMELINE_STACKS best-ranked only.
    timeline: list[tuple[float, int]] = field(default_factory=list)
    # Filled by describe_stacks (symbolization), as in the leak report:
    stack_id: str = ""  # stable 8-hex-digit id
    kind: str | None = None  # API of its live blocks (the largest share); None if none live
    frames: list[Frame] = field(default_factory=list)

    @property
    def growth_intervals(self) -> int:
        return sum(1 for i in self.intervals if i.live_change_bytes > 0)


@dataclass
class GrowthAnalysis:
    capture_path: str
    pid: int
    program: str | None
    run_seconds: float
    snapshots: int
    boundaries: list[float]  # interval edges, seconds since the start
    stacks: list[StackGrowth]  # highest score first
    notes: list[str] = field(default_factory=list)

    def by_native_id(self) -> dict[int, StackGrowth]:
        return {s.native_id: s for s in self.stacks}


def analyze_growth(capture: Capture, *, target_intervals: int = TARGET_INTERVALS
                   ) -> GrowthAnalysis:
    run_ns, snapshot_times, point_times, point_of_snapshot = _points(capture)
    series = capture.series
    chosen = _choose_boundaries(point_times, target_intervals)
    n = len(chosen) - 1
    edges_ns = point_times[chosen]

    stack_ids = sorted(set(capture.stacks) | set(series.stack_ids() if series else []))
    history = _History(capture, stack_ids, point_of_snapshot, len(point_times))
    at_chosen = history.at(np.arange(len(stack_ids)), np.asarray(chosen))
    unfreed = _unfreed_per_interval(capture, stack_ids, edges_ns)
    oldest = _oldest_ages(capture, run_ns)

    stacks = []
    for row, stack_id in enumerate(stack_ids):
        at_edges = at_chosen[row]  # (intervals + 1, 4)
        intervals = []
        for j in range(n):
            before, after = at_edges[j], at_edges[j + 1]
            intervals.append(Interval(
                start=edges_ns[j] / 1e9, end=edges_ns[j + 1] / 1e9,
                allocations=int(after[_ALLOCS] - before[_ALLOCS]),
                allocated_bytes=int(after[_ALLOC_BYTES] - before[_ALLOC_BYTES]),
                unfreed=int(unfreed[row, j, 0]), unfreed_bytes=int(unfreed[row, j, 1]),
                live_change_bytes=int(after[_LIVE_BYTES] - before[_LIVE_BYTES]),
                live_change_blocks=int(after[_LIVE_BLOCKS] - before[_LIVE_BLOCKS]),
            ))
        if not any(i.allocations or i.live_change_bytes or i.unfreed for i in intervals) \
                and at_edges[-1][_LIVE_BYTES] == 0:
            continue  # nothing happened to it during the run and nothing of it is live
        stack = _judge(stack_id, intervals, at_edges, edges_ns)
        stack.oldest_age_seconds = oldest.get(stack_id)
        stacks.append(stack)
    stacks.sort(key=lambda s: (-s.score, -s.net_bytes, -s.live_bytes, s.native_id))
    # Live bytes at every point, for plots: the best-ranked backtraces only.
    plotted = stacks[:TIMELINE_STACKS]
    if plotted:
        rows = np.searchsorted(history.lookup, [s.native_id for s in plotted])
        live = history.at(rows, np.arange(len(point_times)))[:, :, _LIVE_BYTES]
        seconds = (point_times / 1e9).tolist()
        for stack, values in zip(plotted, live.tolist(), strict=True):
            stack.timeline = list(zip(seconds, values, strict=True))
    notes = []
    if n < 3:
        notes.append(f"only {len(point_times) - 2} snapshot(s) in this capture: verdicts need "
                     "several intervals to mean much (run longer, or with a shorter "
                     "--interval)")
    if capture.session is not None and capture.session.only_since_checkpoint:
        notes.append("this capture holds only the blocks allocated since the previous "
                     "mtrace() checkpoint: unfreed counts cover those only")
    program = capture.process.executable if capture.process else None
    return GrowthAnalysis(capture.path, capture.header.pid, program, run_ns / 1e9,
                          len(snapshot_times), [e / 1e9 for e in edges_ns.tolist()], stacks,
                          notes)


@dataclass
class GrowthRates:
    """Each backtrace's net growth and verdict, as columns: stack ids sorted."""

    stack_ids: np.ndarray  # int64, ascending
    bytes_per_second: np.ndarray  # float64
    verdicts: np.ndarray  # index into VERDICTS

    def as_dict(self) -> dict[int, tuple[float, str]]:
        verdicts = map(VERDICTS.__getitem__, self.verdicts.tolist())
        return dict(zip(self.stack_ids.tolist(),
                        zip(self.bytes_per_second.tolist(), verdicts, strict=True), strict=True))

    def rows_of(self, stack_ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where there is none."""
        return rows_in(self.stack_ids, stack_ids)


def growth_rates(capture: Capture, *, target_intervals: int = TARGET_INTERVALS
                 ) -> dict[int, tuple[float, str]]:
    """Per backtrace that analyze_growth lists: (bytes_per_second, verdict), the same numbers
    computed for all backtraces at once, without the per-interval objects."""
    return growth_rate_table(capture, target_intervals=target_intervals).as_dict()


def growth_rate_table(capture: Capture, *, target_intervals: int = TARGET_INTERVALS
                      ) -> GrowthRates:
    """growth_rates as columns: what a leak report shows of the growth, for captures with a
    million backtraces (no dict of a million entries)."""
    _, _, point_times, point_of_snapshot = _points(capture)
    series = capture.series
    chosen = np.asarray(_choose_boundaries(point_times, target_intervals))
    n = len(chosen) - 1
    if n < MIN_GROWTH_INTERVALS:
        # Too few snapshots to tell a trend (a run shorter than a few intervals): a rate
        # over a start-up, "+40 MiB/s", would be read as one.
        return GrowthRates(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    edges_ns = point_times[chosen]
    stack_ids = distinct(np.concatenate((
        StackTable.from_stacks(capture.stacks).ids,
        np.asarray(series.stack_ids() if series else [], dtype=np.int64))))
    history = _History(capture, stack_ids, point_of_snapshot, len(point_times))
    unfreed = _any_unfreed(capture, stack_ids)
    run_seconds = (edges_ns[-1] - edges_ns[0]) / 1e9
    third = max(1, round(n / 3))
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    chunk = 8192  # bounds the (stacks x points) tables and their temporaries
    for begin in range(0, len(stack_ids), chunk):
        rows = np.arange(begin, min(begin + chunk, len(stack_ids)))
        allocs, live = history.at_range(begin, begin + len(rows), chosen,
                                        (_ALLOCS, _LIVE_BYTES))
        live_changes = np.diff(live, axis=1)  # per interval
        happened = ((np.diff(allocs, axis=1) != 0) | (live_changes != 0)).any(
            axis=1) | unfreed[rows] | (live[:, n] != 0)
        grew = (live_changes > 0).sum(axis=1)
        fraction = grew / n
        last_third = live[:, n] - live[:, n - third]
        net = live[:, n] - live[:, 0]
        growing = (last_third > 0) & (fraction >= MIN_GROWTH_FRACTION) & (
            grew >= MIN_GROWTH_INTERVALS)
        plateaued = ~growing & (net > 0) & (last_third <= 0)
        verdicts = np.where(growing, 0, np.where(plateaued, 1, 2))
        rates = net / run_seconds if run_seconds > 0 else np.zeros(len(rows))
        pieces.append((stack_ids[rows][happened], rates[happened], verdicts[happened]))
    if not pieces:
        return GrowthRates(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    return GrowthRates(*(np.concatenate(column) for column in zip(*pieces, strict=True)))


def _any_unfreed(capture: Capture, stack_ids: np.ndarray) -> np.ndarray:
    """Per stack id (sorted): whether any live block came from it."""
    ids = capture.blocks["stack_id"]
    if len(ids) == 0 or len(stack_ids) == 0:
        return np.zeros(len(stack_ids), dtype=bool)
    top = int(stack_ids[-1])
    if top < 4 * len(ids) + (1 << 21):  # the shim's ids are dense: one flag per id
        seen = np.zeros(top + 1, dtype=bool)
        step = 1 << 20  # a million blocks at a time: index copies of ten million are 80 MB
        for begin in range(0, len(ids), step):
            chunk = ids[begin:begin + step]
            seen[chunk[chunk <= top]] = True
        return seen[stack_ids]
    ids = ids.astype(np.int64)
    rows = np.clip(np.searchsorted(stack_ids, ids), 0, len(stack_ids) - 1)
    present = stack_ids[rows] == ids
    return np.bincount(rows[present], minlength=len(stack_ids)) > 0


def describe_stacks(capture: Capture, analysis: GrowthAnalysis, *, limit: int | None = None,
                    symbolizer: Symbolizer | None = None) -> None:
    """Give the `limit` best-ranked backtraces (all by default) their frames, their API kind
    and the stable id the leak report uses for the same (kind, backtrace)."""
    if symbolizer is None:
        expected = {m.path: m.build_id for m in capture.modules if m.build_id}
        symbolizer = Symbolizer(expected_build_ids=expected)
    chosen = analysis.stacks if limit is None else analysis.stacks[:limit]
    described, operators = symbolize_stacks(capture, {s.native_id for s in chosen}, symbolizer)
    kinds = _main_kinds(capture)
    for stack in chosen:
        frames, id_text = described.get(stack.native_id, ([], b""))
        stack.frames = frames
        stack.kind = kinds.get(stack.native_id)
        if stack.kind is not None and stack.native_id in operators:  # as the report names it
            stack.kind = runtime_api_name(operators[stack.native_id],
                                          stack.kind == fmt.kind_name(fmt.KIND_NEW_ARRAY))
        # No live block, no kind: the id then cannot match a report record, and says so.
        stack.stack_id = stable_stack_id_of_bytes(stack.kind or "none", id_text)
    analysis.notes += symbolizer.notes


def _main_kinds(capture: Capture) -> dict[int, str]:
    """The API that made most of each backtrace's live bytes."""
    blocks = capture.blocks
    if len(blocks) == 0:
        return {}
    keys = (blocks["stack_id"].astype(np.uint64) << np.uint64(8)) | blocks["kind"]
    unique, inverse = np.unique(keys, return_inverse=True)
    sizes = np.bincount(inverse, weights=blocks["size"].astype(np.float64),
                        minlength=len(unique))
    best: dict[int, tuple[float, str]] = {}
    for key, size in zip(unique.tolist(), sizes.tolist(), strict=True):
        stack_id, kind = int(key) >> 8, fmt.kind_name(int(key) & 0xFF)
        if stack_id not in best or size > best[stack_id][0]:
            best[stack_id] = (size, kind)
    return {s: kind for s, (_, kind) in best.items()}


def _points(capture: Capture) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The run's length, the snapshot times, the points (the start, every snapshot, the
    capture; ns since the start) and the point each snapshot falls on. A snapshot at or after
    the capture (clock granularity), or less than a quarter of the usual spacing before it
    (the series' last snapshot, taken at exit or detach with the capture), merges into the
    capture: an interval of a few milliseconds with nothing in it would count as the whole
    last third of a short run, and make a steady leak look as if it had stopped."""
    run_ns = max(0, capture.header.capture_monotonic_ns - capture.header.start_monotonic_ns)
    series = capture.series
    snapshot_times = series.times_ns.astype(np.int64) if series is not None else np.zeros(0)
    inner = distinct(snapshot_times[(snapshot_times > 0) & (snapshot_times < run_ns)])
    if len(inner):
        spacing = float(np.median(np.diff(np.concatenate(([0], inner)))))
        inner = inner[run_ns - inner >= spacing / 4]
    point_times = np.concatenate(([0], inner, [run_ns])).astype(np.int64)
    point_of_snapshot = np.clip(np.searchsorted(point_times, snapshot_times, side="left"),
                                0, len(point_times) - 1)
    return run_ns, snapshot_times, point_times, point_of_snapshot


def _choose_boundaries(point_times: np.ndarray, target: int) -> list[int]:
    """Indices of the points closest to equal divisions of the run, first and last always in,
    strictly increasing."""
    last = len(point_times) - 1
    count = max(1, min(target, last))
    chosen = [0]
    run = float(point_times[-1])
    for j in range(1, count):
        wanted = run * j / count
        index = int(np.argmin(np.abs(point_times - wanted)))
        # Leave room for the intervals still to come; never go back.
        index = max(chosen[-1] + 1, min(index, last - (count - j)))
        chosen.append(index)
    chosen.append(last)
    return chosen


class _History:
    """Totals of every backtrace at any point: alloc count, alloc bytes, live blocks, live
    bytes, each snapshot's values carried forward until the next change; the last point is
    the capture's own STACKS totals. Looked up on demand (sorted keys + binary search), so a
    long run with thousands of backtraces never needs a stacks x points table."""

    def __init__(self, capture: Capture, stack_ids: list[int] | np.ndarray,
                 point_of_snapshot: np.ndarray, points: int) -> None:
        self.points = points
        self.lookup = np.asarray(stack_ids, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)
        self.values = np.zeros((0, 4), dtype=np.int64)
        series = capture.series
        if series is not None and len(series.entries):
            entries = series.entries
            rows = rows_in(self.lookup, entries["stack_id"].astype(np.int64))
            keys = rows * points + point_of_snapshot[series.snapshot]
            # Stable: of two snapshots that fall on one point, the later one wins below.
            order = np.argsort(keys, kind="stable")
            self.keys = keys[order]
            # Column by column: a stacked copy of a million entries is 100 MB at peak.
            self.values = np.empty((len(order), 4), dtype=np.int64)
            for column, name in enumerate(("alloc_count", "alloc_bytes", "live_blocks",
                                           "live_bytes")):
                self.values[:, column] = entries[name][order]
        self.final = np.zeros((len(stack_ids), 4), dtype=np.int64)
        table = StackTable.from_stacks(capture.stacks)
        if len(table):
            rows = rows_in(self.lookup, table.ids)
            for column, total in enumerate((ALLOC_COUNT, ALLOC_BYTES, LIVE_BLOCKS,
                                            LIVE_BYTES)):  # one at a time: smaller copies
                self.final[rows, column] = table.totals[:, total]

    def at(self, rows: np.ndarray, point_indices: np.ndarray) -> np.ndarray:
        """(len(rows), len(point_indices), 4)."""
        targets = rows[:, None] * self.points + point_indices[None, :]
        result = np.zeros((len(rows), len(point_indices), 4), dtype=np.int64)
        if len(self.keys):
            index = np.searchsorted(self.keys, targets, side="right") - 1
            safe = np.clip(index, 0, None)
            valid = (index >= 0) & (self.keys[safe] // self.points == rows[:, None])
            result = np.where(valid[:, :, None], self.values[safe], 0)
        last = point_indices == self.points - 1
        result[:, last] = self.final[rows][:, None, :]
        return result

    def at_range(self, begin: int, end: int, point_indices: np.ndarray,
                 columns: tuple[int, ...]) -> list[np.ndarray]:
        """at(np.arange(begin, end), point_indices)[:, :, column] of each of `columns`, from
        those rows' entries alone, a pass over them per point: a binary search per row and
        point over every entry, and the four columns gathered together, cost a
        million-stack report a second."""
        results = [np.zeros((end - begin, len(point_indices)), dtype=np.int64)
                   for _ in columns]
        if len(self.keys):
            low, high = np.searchsorted(self.keys, [begin * self.points, end * self.points])
            keys = self.keys[low:high]
            entry_rows = keys // self.points
            entry_points = keys - entry_rows * self.points
            entry_rows -= begin
            values = [self.values[low:high, column] for column in columns]
            for at, point in enumerate(point_indices.tolist()):
                held = np.flatnonzero(entry_points <= point)
                held_rows = entry_rows[held]
                # Sorted by row, then point: a row's last entry held is its value there.
                last = np.ones(len(held), dtype=bool)
                last[:-1] = held_rows[1:] != held_rows[:-1]
                held_rows, held = held_rows[last], held[last]
                for result, value in zip(results, values, strict=True):
                    target = result[:, at]  # a view: one-dimensional fancy indexing is fast
                    target[held_rows] = value[held]
        last_point = np.flatnonzero(point_indices == self.points - 1)
        for result, column in zip(results, columns, strict=True):
            result[:, last_point] = self.final[begin:end, column][:, None]
        return results


def _unfreed_per_interval(capture: Capture, stack_ids: list[int],
                          edges_ns: np.ndarray) -> np.ndarray:
    """(stacks, intervals, 2): live blocks and bytes by the interval they were allocated in."""
    n = len(edges_ns) - 1
    result = np.zeros((len(stack_ids), n, 2), dtype=np.int64)
    blocks = capture.blocks
    if len(blocks) == 0 or not stack_ids:
        return result
    lookup = np.asarray(stack_ids, dtype=np.int64)
    ids = blocks["stack_id"].astype(np.int64)
    rows = np.searchsorted(lookup, ids)
    rows = np.clip(rows, 0, len(lookup) - 1)
    present = lookup[rows] == ids
    times = blocks["alloc_time_ns"].astype(np.int64)
    # The last interval is closed at the capture: a block born at that instant belongs to it.
    columns = np.clip(np.searchsorted(edges_ns, times, side="right") - 1, 0, n - 1)
    flat = rows[present] * n + columns[present]
    size = len(stack_ids) * n
    result[:, :, 0] = np.bincount(flat, minlength=size).reshape(len(stack_ids), n)
    sizes = blocks["size"][present].astype(np.float64)
    result[:, :, 1] = np.bincount(flat, weights=sizes, minlength=size).reshape(
        len(stack_ids), n).round().astype(np.int64)
    return result


def _oldest_ages(capture: Capture, run_ns: int) -> dict[int, float]:
    blocks = capture.blocks
    if len(blocks) == 0:
        return {}
    ids = blocks["stack_id"].astype(np.int64)
    times = blocks["alloc_time_ns"].astype(np.int64)
    order = np.lexsort((times, ids))
    ids, times = ids[order], times[order]
    firsts = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1))
    return {int(ids[i]): round(max(0, run_ns - int(times[i])) / 1e9, 6) for i in firsts}


def _judge(stack_id: int, intervals: list[Interval], at_edges: np.ndarray,
           edges_ns: np.ndarray) -> StackGrowth:
    n = len(intervals)
    live = at_edges[:, _LIVE_BYTES]
    third = max(1, round(n / 3))
    first_third = int(live[third] - live[0])
    last_third = int(live[n] - live[n - third])
    net = int(live[n] - live[0])
    grew = sum(1 for i in intervals if i.live_change_bytes > 0)
    fraction = grew / n if n else 0.0
    run_seconds = (edges_ns[-1] - edges_ns[0]) / 1e9
    half = n // 2
    recent_seconds = (edges_ns[-1] - edges_ns[half]) / 1e9
    recent_growth = int(live[n] - live[half])
    recent_rate = recent_growth / recent_seconds if recent_seconds > 0 else 0.0
    score = fraction * max(0.0, recent_rate)
    numbers = (f"live bytes went up in {grew} of {n} intervals; first third {first_third:+,} B, "
               f"last third {last_third:+,} B")
    if last_third > 0 and fraction >= MIN_GROWTH_FRACTION and grew >= MIN_GROWTH_INTERVALS:
        verdict, why = GROWING, f"still growing: {numbers}"
    elif net > 0 and last_third <= 0:
        verdict, why = PLATEAUED, f"grew then stopped: {numbers}"
    elif net > 0:
        verdict, why = STABLE, f"growth too sparse to be a trend: {numbers}"
    else:
        verdict, why = STABLE, f"no net growth ({net:+,} B over the run): {numbers}"
    return StackGrowth(
        native_id=stack_id, intervals=intervals,
        live_blocks=int(at_edges[-1][_LIVE_BLOCKS]), live_bytes=int(live[n]),
        oldest_age_seconds=None, growth_fraction=round(fraction, 4),
        first_third_bytes=first_third, last_third_bytes=last_third, net_bytes=net,
        bytes_per_second=net / run_seconds if run_seconds > 0 else 0.0,
        recent_bytes_per_second=recent_rate, score=score, verdict=verdict, reason=why,
    )
