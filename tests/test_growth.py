"""Growth analysis: intervals, unfreed counts, verdicts and ranking on captures built by the
test writer, then on a real server under the shim (a leak that grows on every request, a
bounded cache that fills and stops)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leakharness import LEAKTRACE, leaktrace
from liveharness import LiveServer
from native_programs import compile_source

from leaktrace.analyze.growth import (
    GROWING,
    PLATEAUED,
    STABLE,
    _History,
    analyze_growth,
)
from leaktrace.capture.format import REASON_EXIT
from leaktrace.capture.reader import BlockRow, parse_capture
from leaktrace.capture.series import SeriesRow, Session
from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks

SECOND = 1_000_000_000
LEAK, CACHE, CHURN, TRANSIENT = 1, 2, 3, 4


def synthetic_capture(tmp_path: Path) -> Path:
    """16 snapshots, one a second. LEAK: +100 B (one block) every second. CACHE: +1000 B a
    second for 3 s, then never again. CHURN: one 500 B block allocated then freed every
    second. TRANSIENT: nothing until one 64 B block at 15.5 s, still live at capture."""
    snapshots = []
    for second in range(1, 17):
        rows = [SeriesRow(LEAK, second, second * 100, second, second * 100)]
        if second <= 3:
            rows.append(SeriesRow(CACHE, second, second * 1000, second, second * 1000))
        rows.append(SeriesRow(CHURN, second, second * 500, 0, 0))
        if second == 16:
            rows.append(SeriesRow(TRANSIENT, 1, 64, 1, 64))
        snapshots.append((second * SECOND, rows))
    blocks = [BlockRow(0x1000 + 0x100 * i, 100, LEAK, 1, i * SECOND + SECOND // 2)
              for i in range(16)]
    blocks += [BlockRow(0x9000 + 0x1000 * i, 1000, CACHE, 1, i * SECOND + SECOND // 2)
               for i in range(3)]
    blocks.append(BlockRow(0x20000, 64, TRANSIENT, 2, 15 * SECOND + SECOND // 2))
    stacks = [stack_from_blocks(s, [0x401000 + s], blocks) for s in (LEAK, CACHE, TRANSIENT)]
    stacks.append(stack_from_blocks(CHURN, [0x401000 + CHURN], blocks, freed=(16, 8000)))
    data = encode_capture(make_header(77, run_ns=16 * SECOND), stacks=stacks, blocks=blocks,
                          session=Session(0, 0, REASON_EXIT, True, 1000), series=snapshots)
    path = tmp_path / "synthetic.lt"
    path.write_bytes(data)
    return path


def test_intervals_verdicts_and_ranking(tmp_path: Path) -> None:
    capture = parse_capture(synthetic_capture(tmp_path).read_bytes(), "synthetic.lt")
    growth = analyze_growth(capture)
    assert len(growth.boundaries) == 9  # eight intervals of two snapshots
    assert growth.boundaries == [2.0 * i for i in range(9)]
    by_id = growth.by_native_id()
    assert by_id[LEAK].verdict == GROWING
    assert by_id[CACHE].verdict == PLATEAUED
    assert by_id[CHURN].verdict == STABLE
    assert by_id[TRANSIENT].verdict == STABLE  # one interval of growth is not a trend
    # The steady leak ranks first; the cache holds more but stopped growing.
    assert growth.stacks[0].native_id == LEAK
    assert by_id[CACHE].score == 0 < by_id[LEAK].score
    leak = by_id[LEAK]
    assert leak.growth_intervals == 8 and leak.growth_fraction == 1.0
    assert (leak.first_third_bytes, leak.last_third_bytes) == (600, 600)
    first = leak.intervals[0]
    assert (first.allocations, first.allocated_bytes, first.unfreed, first.unfreed_bytes) == (
        2, 200, 2, 200)
    assert first.unfreed_percent == 100.0
    assert first.allocations_per_second == 1.0 and first.bytes_per_second == 100.0
    assert leak.oldest_age_seconds == 15.5
    cache = by_id[CACHE]
    assert [i.live_change_bytes for i in cache.intervals] == [2000, 1000] + [0] * 6
    assert [i.unfreed for i in cache.intervals] == [2, 1] + [0] * 6
    churn = by_id[CHURN]
    assert [i.allocations for i in churn.intervals] == [2] * 8
    assert all(i.unfreed == 0 and i.unfreed_percent == 0.0 for i in churn.intervals)


def test_capture_without_series_gives_one_interval(tmp_path: Path) -> None:
    blocks = [BlockRow(0x1000, 10, 1, 1, SECOND)]
    data = encode_capture(make_header(run_ns=2 * SECOND),
                          stacks=[stack_from_blocks(1, [0x401000], blocks)], blocks=blocks)
    growth = analyze_growth(parse_capture(data))
    assert growth.boundaries == [0.0, 2.0]
    assert growth.stacks[0].intervals[0].unfreed == 1
    assert growth.notes  # says the verdicts rest on too few intervals


def _growth_json(path: Path, *args: str) -> dict:
    import subprocess

    done = subprocess.run([*LEAKTRACE, "growth", str(path), "--format", "json", *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_growth_json_layout(tmp_path: Path) -> None:
    result = _growth_json(synthetic_capture(tmp_path))
    assert result["stacks_total"] == 4
    stack = result["stacks"][0]
    assert stack["verdict"] in ("growing", "plateaued", "stable")
    assert len(stack["stack_id"]) == 8 and stack["native_stack_id"] == LEAK
    assert len(stack["intervals"]) == 8
    assert {"start", "end", "seconds", "allocations", "unfreed", "unfreed_percent",
            "unfreed_bytes", "allocations_per_second", "bytes_per_second",
            "live_change_bytes"} <= set(stack["intervals"][0])
    assert isinstance(stack["frames"], list)
    assert len(_growth_json(synthetic_capture(tmp_path), "--top", "2")["stacks"]) == 2


def test_growth_plot_svg(tmp_path: Path) -> None:
    import subprocess

    plot = tmp_path / "growth.svg"
    done = subprocess.run([*LEAKTRACE, "growth", str(synthetic_capture(tmp_path)), "--plot",
                           str(plot)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    svg = plot.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 4
    assert "(growing)" in svg and "(plateaued)" in svg


def test_growth_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess

    for args in (["growth"], ["growth", str(tmp_path / "missing.lt")],
                 ["growth", str(synthetic_capture(tmp_path)), "--plot", str(tmp_path / "x.gif")]):
        done = subprocess.run([*LEAKTRACE, *args], capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.startswith("leaktrace: error: ") and done.stderr.count("\n") == 1


def _stack_in(stacks: list[dict], function: str) -> dict:
    [stack] = [s for s in stacks if any(f["function"] == function for f in s["frames"][:2])]
    return stack


@pytest.fixture()
def server(build_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    live = LiveServer(build_dir, tmp_path, interval="0.1")
    yield live
    live.kill()


def test_live_server_leak_is_growing_and_cache_plateaued(server: LiveServer) -> None:
    for key in range(32):  # fills the cache (32 slots)
        server.request(f"cache {key}")
    key = 32
    # Keep the server busy until the shim has taken 40 snapshots (at 0.1 s): driven by the
    # shim's own count, so a slow machine only makes the loop longer.
    while server.status()["snapshots"] < 40:
        for _ in range(5):
            server.request("leak")
        server.request(f"cache {key}")  # replaces an entry: the cache does not grow
        server.request("work")
        key += 1
    returncode, stdout, stderr = server.quit()
    assert returncode == 3, stderr  # the server's own exit status
    assert stdout.endswith(f"bye after {len(server.answers)} requests\n")
    result = _growth_json(server.capture)
    leak = _stack_in(result["stacks"], "handle_leak")
    cache = _stack_in(result["stacks"], "new_entry")
    assert leak["verdict"] == "growing", leak["reason"]
    assert cache["verdict"] == "plateaued", cache["reason"]
    assert leak["score"] > cache["score"]
    assert result["stacks"][0]["stack_id"] == leak["stack_id"]  # the leak ranks first
    assert len(leak["intervals"]) == 8
    assert sum(i["unfreed"] for i in leak["intervals"]) == leak["live_blocks"]
    assert cache["live_blocks"] == 32


def _steady_leak(size: int, tick_ns: int, run_ns: int) -> str:
    """A program that leaks a block of `size` bytes every `tick_ns` for `run_ns`."""
    return f"""
#include <stdlib.h>
#include <time.h>
void *volatile sink;
__attribute__((noinline)) static void leak_one(void) {{ sink = malloc({size}); }}
int main(void)
{{
    struct timespec start, now, tick = {{ 0, {tick_ns} }};
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {{
        leak_one();
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    }} while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec)
             < {run_ns}L);
    return 0;
}}
"""


STEADY_LEAK = _steady_leak(1000, 50_000_000, 1_250_000_000)  # a block every 50 ms for 1.25 s


def test_a_short_steady_leak_is_growing(tmp_path: Path) -> None:
    """A run of two and a half --interval: the series' last snapshot, taken at exit with the
    capture, must not make an interval of its own, empty and a third of the run, which would
    make the steady leak look as if it had stopped."""
    exe = compile_source(tmp_path, "steady.c", STEADY_LEAK, "-O2")
    capture = tmp_path / "steady.lt"
    done = leaktrace("run", "-o", str(capture), "--interval", "0.5", "--", str(exe),
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = _growth_json(capture)
    leak = _stack_in(result["stacks"], "leak_one")
    assert leak["verdict"] == "growing", leak["reason"]
    assert len(leak["intervals"]) == 3
    assert all(i["live_change_bytes"] > 0 for i in leak["intervals"])
    report = json.loads(leaktrace("report", str(capture), "--format", "json").stdout)
    [record] = [r for r in report["records"] if r["frames"][0]["function"] == "leak_one"]
    assert record["growth"]["verdict"] == "growing"


def test_history_at_range_is_at() -> None:
    """growth_rate_table's lookup of a range of rows (a pass over their entries per point)
    against _History.at (a binary search per row and point), on random histories: rows
    with no entry, several entries on one point (the later wins), entries past the range."""
    rng = np.random.default_rng(11)
    for points in (2, 3, 9):
        history = _History.__new__(_History)
        history.points = points
        rows = rng.integers(0, 300, size=2000)
        keys = rows * points + rng.integers(0, points, size=2000)
        order = np.argsort(keys, kind="stable")
        history.keys = keys[order]
        history.values = rng.integers(-50, 50, size=(2000, 4))[order]
        history.final = rng.integers(0, 9, size=(300, 4))
        chosen = np.array(sorted(set(rng.integers(0, points, size=3).tolist()) | {points - 1}))
        for begin, end in ((0, 300), (17, 90), (299, 300), (5, 5)):
            expected = history.at(np.arange(begin, end), chosen)
            made = history.at_range(begin, end, chosen, (0, 3, 2))
            for got, column in zip(made, (0, 3, 2), strict=True):
                assert np.array_equal(got, expected[:, :, column])
    history.keys = np.zeros(0, dtype=np.int64)
    history.values = np.zeros((0, 4), dtype=np.int64)
    [got] = history.at_range(3, 9, chosen, (1,))
    assert np.array_equal(got, history.at(np.arange(3, 9), chosen)[:, :, 1])


def test_rows_in_is_a_search_of_the_ids() -> None:
    """capture/id_rows.rows_in (a table indexed by id for many dense ids) against a binary
    search, with ids that are not there, negative and past the last."""
    from leaktrace.capture.id_rows import rows_in

    rng = np.random.default_rng(2)
    for ids in (np.arange(1, 5000) * 3, np.array([5, 1 << 40, 1 << 50]), np.array([0]),
                np.arange(-3, 400), np.zeros(0, dtype=np.int64)):
        for wanted in (rng.integers(-5, 16000, size=3000), rng.choice(ids, size=3000)
                       if len(ids) else np.zeros(0), np.array([7, 15, 1 << 40])):
            at = np.clip(np.searchsorted(ids, wanted), 0, max(len(ids) - 1, 0))
            expected = np.where(ids[at] == wanted, at, -1) if len(ids) else \
                np.full(len(wanted), -1)
            assert rows_in(ids, wanted).tolist() == expected.tolist()


def test_a_run_shorter_than_three_intervals_has_no_growth_rates(tmp_path: Path) -> None:
    """The same leak over one interval: no trend can be seen, so the report gives no rate
    (it said "growth +... /s over the run (stable)" for any program's start-up)."""
    exe = compile_source(tmp_path, "steady.c", STEADY_LEAK, "-O2")
    capture = tmp_path / "steady.lt"
    done = leaktrace("run", "-o", str(capture), "--interval", "5", "--", str(exe),
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "over the run" not in done.stderr
    report = json.loads(leaktrace("report", str(capture), "--format", "json").stdout)
    [record] = [r for r in report["records"] if r["frames"][0]["function"] == "leak_one"]
    assert record["growth"] is None


DENSE_LEAK = _steady_leak(24, 200_000, 1_200_000_000)  # a block every ~0.25 ms for 1.2 s


def test_each_interval_of_a_leak_never_freed_is_all_unfreed(tmp_path: Path) -> None:
    """One thread leaking every block it makes: in every interval the unfreed blocks are the
    allocations, exactly. Blocks are stamped by the coarse clock, which ticks every few ms;
    snapshots were timed by the precise one, so blocks made just after a snapshot counted in
    the interval before it (707 allocations, 712 unfreed), and the next came short."""
    exe = compile_source(tmp_path, "dense.c", DENSE_LEAK, "-O2")
    capture = tmp_path / "dense.lt"
    done = leaktrace("run", "-o", str(capture), "--interval", "0.05", "--", str(exe),
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    leak = _stack_in(_growth_json(capture)["stacks"], "leak_one")
    intervals = leak["intervals"]
    assert len(intervals) >= 6 and sum(i["allocations"] for i in intervals) > 2000
    assert [i["unfreed"] for i in intervals] == [i["allocations"] for i in intervals]
