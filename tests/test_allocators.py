"""Programs that bring their own allocator library: Debian's jemalloc (libjemalloc2) and
tcmalloc (libtcmalloc-minimal4), preloaded or linked. The shim keeps every allocation API on
one heap (its malloc comes first; malloc_usable_size and operator new/delete follow it), so the
program runs to its end and the leaks are exactly those found with glibc's allocator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from leakharness import EVERY_RECORD, compile_program, json_report, marker_line

LIB_DIR = Path("/usr/lib/x86_64-linux-gnu")
JEMALLOC = LIB_DIR / "libjemalloc.so.2"
TCMALLOC = LIB_DIR / "libtcmalloc_minimal.so.4"
SOURCE = "allocator_mix.cpp"
# (marker, bytes of one block); three of each leak.
LEAKS = {"malloc": 100, "new": 48, "array": 100, "aligned": 128}


def _need(library: Path, package: str) -> None:
    if not library.exists():
        pytest.skip(f"{library.name} is not installed (apt-get install {package})")


def _definite_by_site(report: dict[str, object],
                      kinds: tuple[str, ...] = ("definitely lost",)) -> dict[str, tuple[int, int]]:
    """{marker: (own bytes, blocks)} of the records of these leak kinds allocated at a
    marker."""
    lines = {marker_line(SOURCE, m): m for m in LEAKS}
    found: dict[str, tuple[int, int]] = {}
    for record in report["records"]:  # type: ignore[attr-defined]
        if record["leak_kind"] not in kinds:
            continue
        for frame in record["frames"]:
            if frame.get("file") and Path(frame["file"]).name == SOURCE:
                marker = lines.get(frame["line"])
                if marker:
                    b, n = found.get(marker, (0, 0))
                    found[marker] = (b + record["direct_bytes"], n + record["blocks"])
                break
    return found


EXPECTED = {marker: (3 * size, 3) for marker, size in LEAKS.items()}
EVERY_KIND = ("definitely lost", "indirectly lost", "possibly lost", "still reachable")


def _assert_leaks_found(report: dict[str, object], library: Path) -> None:
    """Every leaked block at its line, with its exact size. With glibc's heap (jemalloc's
    functions are bypassed) all are definitely lost, as without jemalloc. tcmalloc keeps
    addresses of blocks it handed out in its own caches and free-list links (memory the scan
    must read as roots, as it reads any library's data): a leak can then be counted still
    reachable or indirectly lost, never missed."""
    if library == TCMALLOC:
        assert _definite_by_site(report, EVERY_KIND) == EXPECTED
        definite = _definite_by_site(report)
        assert sum(n for _b, n in definite.values()) >= 6, definite
    else:
        assert _definite_by_site(report) == EXPECTED


def _run(exe: Path, work: Path, env_preload: Path | None) -> dict[str, object]:
    capture = work / f"{exe.name}.lt"
    env = dict(os.environ)
    if env_preload:
        env["LD_PRELOAD"] = str(env_preload)
    done = subprocess.run([sys.executable, "-m", "leaktrace", "run", "-o", str(capture), "--",
                           str(exe)], capture_output=True, text=True, cwd=work, env=env,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert "usable 1" in done.stdout
    return json_report(capture, *EVERY_RECORD)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_program(SOURCE, tmp_path_factory.mktemp("alloc"), "-O2")


def test_glibc_reference(plain: Path, tmp_path: Path) -> None:
    report = _run(plain, tmp_path, None)
    assert _definite_by_site(report) == EXPECTED
    # The shim finds the C++ runtime's functions without dlopen, which made the loader
    # allocate (unseen, inside the shim) blocks the program then freed at exit as unknown.
    assert report["counters"]["unknown_frees"] == 0  # type: ignore[index]


@pytest.mark.parametrize(("library", "package"), [(JEMALLOC, "libjemalloc2"),
                                                  (TCMALLOC, "libtcmalloc-minimal4")],
                         ids=["jemalloc", "tcmalloc"])
def test_preloaded_allocator(plain: Path, tmp_path: Path, library: Path, package: str) -> None:
    _need(library, package)
    report = _run(plain, tmp_path, library)
    _assert_leaks_found(report, library)
    functions = [f["function"] or "" for r in report["records"] for f in r["frames"]]
    assert not any("lt_hook" in f for f in functions)  # no shim frame inside a backtrace


@pytest.mark.parametrize(("library", "package"), [(JEMALLOC, "libjemalloc2"),
                                                  (TCMALLOC, "libtcmalloc-minimal4")],
                         ids=["jemalloc", "tcmalloc"])
def test_linked_allocator(tmp_path: Path, library: Path, package: str) -> None:
    _need(library, package)
    exe = compile_program(SOURCE, tmp_path, "-O2", extra=[str(library)],
                          output=f"mix-{library.name}")
    report = _run(exe, tmp_path, None)
    _assert_leaks_found(report, library)
    new_records = [r for r in report["records"]
                   if r["kind"] == "operator new(unsigned long)"
                   and any(f["function"] == "lose_new()" for f in r["frames"])]
    assert sum(r["blocks"] for r in new_records) == 3  # the Node leaks, through operator new

