"""`--format valgrind-xml`: a report as valgrind memcheck's XML (protocol 4), for the tools that
read valgrind's: read back by leaktrace's own valgrind XML source, by ValgrindCI (a CI tool on
PyPI that reads nothing else), and set beside valgrind's own XML of the same program."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from leakharness import compile_program, json_report, leaktrace, marker_line

VALGRIND_CI = shutil.which("valgrind-ci", path=os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def _export(capture: Path, out: Path, *options: str) -> ET.Element:
    done = leaktrace("report", str(capture), "--format", "valgrind-xml", "-o", str(out), *options)
    assert done.returncode == 0, done.stderr
    return ET.parse(out).getroot()


def _down_to_main(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """valgrind's stacks end at main (the XML's too)."""
    names = [f["function"] for f in frames]
    return frames[:names.index("main") + 1] if "main" in names else frames


def _record_view(record: dict[str, Any]) -> tuple[Any, ...]:
    frames = [(f["function"], Path(f["file"]).name if f["file"] else None, f["line"])
              for f in _down_to_main(record["frames"])]
    return (record["leak_kind"], record["kind"], record["bytes"], record["blocks"],
            record["direct_bytes"], record["indirect_bytes"], record["loss_record"], frames)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_the_xml_reads_back_as_the_same_report(build_dir: Path, tmp_path: Path, opt: str) -> None:
    """Every kind (rings, cycles, a tree cut in two, 1000 one-byte leaks, malloc(0)): the XML,
    read by leaktrace's valgrind source, gives the capture's loss records (kind, API, bytes,
    blocks, direct and indirect bytes, loss record number, frames) and its LEAK SUMMARY."""
    exe = compile_program("leak_structures.c", build_dir, opt)
    capture = tmp_path / "s.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    root = _export(capture, tmp_path / "s.xml", "--show", "all")
    assert root.findtext("protocolversion") == "4" and root.findtext("protocoltool") == "memcheck"
    ours = json_report(capture, "--show", "all")
    again = json.loads(leaktrace("report", str(tmp_path / "s.xml"), "--format", "json",
                                 "--show", "all").stdout)
    assert sorted(map(_record_view, again["records"])) == sorted(map(_record_view, ours["records"]))
    for kind in ("definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable"):
        assert again["summary"][kind] == ours["summary"][kind], kind
    assert ours["summary"]["indirectly_lost"]["blocks"] > 0  # the structures' point
    # The default kinds: only those are written, and <vargv> says so.
    root = _export(capture, tmp_path / "d.xml")
    kinds = {e.findtext("kind") for e in root.iter("error")}
    assert kinds == {"Leak_DefinitelyLost"}
    assert "--show-leak-kinds=definite,possible" in [a.text for a in root.iter("arg")]
    default = json.loads(leaktrace("report", str(tmp_path / "d.xml"), "--format", "json").stdout)
    assert default["summary"]["still_reachable"] is None  # not written: unknown, never 0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_xml_says_what_valgrinds_says(build_dir: Path, tmp_path: Path) -> None:
    """The same program under valgrind: the same errors (kind, sentence, bytes, blocks) and,
    frame for frame down to main, the same functions, files and lines."""
    exe = compile_program("leak_structures.c", build_dir, "-O0")
    theirs_path = tmp_path / "valgrind.xml"
    subprocess.run(["valgrind", "--xml=yes", f"--xml-file={theirs_path}", "--leak-check=full",
                    "--show-leak-kinds=all", str(exe)], capture_output=True, timeout=300,
                   check=True)
    capture = tmp_path / "s.lt"
    assert leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path).returncode == 0
    mine = _export(capture, tmp_path / "mine.xml", "--show", "all", "--no-default-suppressions")

    def errors(root: ET.Element) -> list[tuple[Any, ...]]:
        found = []
        for error in root.iter("error"):
            frames = []
            for frame in list(error.iterfind("stack/frame"))[1:]:  # after the API's
                frames.append((frame.findtext("fn"), frame.findtext("file"),
                               frame.findtext("line")))
                if frame.findtext("fn") == "main":
                    break
            text = re.sub(r" in loss record \d+ of \d+", "", error.findtext("xwhat/text") or "")
            found.append((error.findtext("kind"), text, error.findtext("xwhat/leakedbytes"),
                          error.findtext("xwhat/leakedblocks"), frames))
        return sorted(found)

    theirs = [e for e in errors(ET.parse(theirs_path).getroot())
              if any(f[1] == "leak_structures.c" for f in e[4])]
    assert errors(mine) == theirs


@pytest.mark.skipif(VALGRIND_CI is None, reason="ValgrindCI is not installed (pip install "
                                                "ValgrindCI)")
def test_valgrind_ci_reads_it(build_dir: Path, tmp_path: Path) -> None:
    """ValgrindCI, which CI jobs run on valgrind's XML: it counts each loss record and the
    invalid free, and files them under the program's source lines."""
    assert VALGRIND_CI is not None
    exe = compile_program("invalid_frees.c", build_dir, "-O0")
    capture = tmp_path / "f.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), "reuse", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    xml = tmp_path / "f.xml"
    _export(capture, xml, "--show", "all", "--no-default-suppressions")
    errors = len(ET.parse(xml).getroot().findall("error"))
    assert errors >= 3  # the invalid free, the leaked block, the 7 drained ones
    counted = subprocess.run([VALGRIND_CI, str(xml), "--number-of-errors"], capture_output=True,
                             text=True, timeout=60, check=True)
    assert counted.stdout.strip() == f"{errors} errors."
    source_dir = str(Path(__file__).parent / "programs")
    summary = subprocess.run([VALGRIND_CI, str(xml), "--summary", "--source-dir", source_dir],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"line {marker_line('invalid_frees.c', 'fastbin-dup')}: InvalidFree" in summary
    assert f"line {marker_line('invalid_frees.c', 'reused')}: Leak_DefinitelyLost" in summary
    # Its HTML pages, one per source file with errors.
    pages = tmp_path / "html"
    subprocess.run([VALGRIND_CI, str(xml), "--source-dir", source_dir, "--output-dir",
                    str(pages)], capture_output=True, timeout=60, check=True)
    assert (pages / "invalid_frees_c.html").is_file()


def test_invalid_frees_and_the_fatal_signal_read_back(build_dir: Path, tmp_path: Path) -> None:
    """An InvalidFree error per backtrace, its calls in <errorcounts>; the signal that ended
    the program as valgrind's <fatal_signal>: read back, the same calls, cause and frames."""
    frees = compile_program("invalid_frees.c", build_dir, "-O0")
    crash = compile_program("crash.c", build_dir, "-O0")
    for exe, mode in ((frees, "fastbin-dup"), (crash, "segv")):
        capture = tmp_path / f"{mode}.lt"
        leaktrace("run", "-o", str(capture), "--", str(exe), mode, cwd=tmp_path)
        ours = json_report(capture)
        _export(capture, tmp_path / f"{mode}.xml")
        again = json.loads(leaktrace("report", str(tmp_path / f"{mode}.xml"), "--format",
                                     "json").stdout)
        assert [(f["api"], f["calls"], f["first_address"], _record_view_frames(f["frames"]))
                for f in again["invalid_frees"]] == [
            (f["api"], f["calls"], f["first_address"], _record_view_frames(f["frames"]))
            for f in ours["invalid_frees"]]
        if mode == "segv":
            theirs, mine = again["fatal_signal"], ours["fatal_signal"]
            assert (theirs["name"], theirs["cause"], _record_view_frames(theirs["frames"])) == (
                mine["name"], mine["cause"], _record_view_frames(mine["frames"]))
        else:
            assert again["invalid_frees"] and again["fatal_signal"] is None


def _record_view_frames(frames: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["function"], f["line"]) for f in _down_to_main(frames)]


def test_a_report_without_leak_kinds_is_refused_in_one_line(build_dir: Path,
                                                            tmp_path: Path) -> None:
    """valgrind XML has a kind for every loss record: a capture without a scan has none."""
    exe = compile_program("leak_structures.c", build_dir, "-O0")
    capture = tmp_path / "n.lt"
    env = dict(os.environ, LEAKTRACE_SCAN="0")
    subprocess.run([sys.executable, "-m", "leaktrace", "run", "-o", str(capture), "--",
                    str(exe)], env=env, capture_output=True, timeout=120, cwd=tmp_path)
    done = leaktrace("report", str(capture), "--format", "valgrind-xml")
    assert done.returncode == 2
    assert done.stderr.startswith("leaktrace: error: --format valgrind-xml needs leak kinds")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
