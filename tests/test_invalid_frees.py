"""Frees of addresses never allocated or freed already (valgrind's "Invalid free() / delete /
delete[] / realloc()"): glibc aborts on most double frees, but lets some through (a fast bin's
double free, a realloc of a freed block), and the heap is corrupt from then on. The report
lists each such call's backtrace; the program runs on as it does natively."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from browser import dom, find
from leakharness import compile_program, json_report, leaktrace, marker_line, records_from


def _run(exe: Path, mode: str, work: Path,
         *options: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    work.mkdir(exist_ok=True)
    capture = work / f"{exe.name}-{mode}.lt"
    done = leaktrace("run", "-o", str(capture), *options, "--", str(exe), mode, cwd=work)
    assert capture.exists(), done.stderr
    return done, json_report(capture)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize(("mode", "api", "function"), [("fastbin-dup", "free", "release"),
                                                       ("realloc-freed", "realloc", "resize")])
def test_a_free_glibc_lets_through_is_reported_where_it_was_made(
        build_dir: Path, tmp_path: Path, opt: str, mode: str, api: str, function: str) -> None:
    exe = compile_program("invalid_frees.c", build_dir, opt)
    native = subprocess.run([str(exe), mode], capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == (0, "completed\n")
    done, report = _run(exe, mode, tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    (bad,) = report["invalid_frees"]
    assert (bad["api"], bad["calls"]) == (api, 1)
    assert bad["first_address"] > 0 and len(bad["stack_id"]) == 8
    frames = [(f["function"], Path(f["file"]).name if f["file"] else None, f["line"])
              for f in bad["frames"]]
    assert frames[0] == (function, "invalid_frees.c", marker_line("invalid_frees.c", mode))
    assert frames[1][:2] == ("main", "invalid_frees.c")
    assert report["invalid_frees_unrecorded"] == 0
    assert f"Invalid {api}(): 1 call (the first of address {bad['first_address']:#x})" \
        in done.stderr


def test_the_html_page_lists_them(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("invalid_frees.c", build_dir, "-O2")
    _run(exe, "realloc-freed", tmp_path)
    capture = tmp_path / f"{exe.name}-realloc-freed.lt"
    page = tmp_path / "page.html"
    assert leaktrace("report", str(capture), "--format", "html", "-o", str(page)).returncode == 0
    (box,) = find(dom(page), "pre", id="invalid-frees")
    lines = box.text.splitlines()
    assert lines[0] == ("Invalid frees: 1 call freed an address never allocated, or freed "
                        "already")
    assert lines[1].startswith("Invalid realloc(): 1 call (the first of address 0x")
    line = marker_line("invalid_frees.c", "realloc-freed")
    assert re.search(rf"#0 +resize +\S*invalid_frees\.c:{line}\b", lines[2]), lines
    # A mismatched free in the same box, in a section of its own.
    mismatched = compile_program("mismatched_frees.cpp", build_dir, "-O2")
    _run(mismatched, "new-array-delete", tmp_path)
    page = tmp_path / "mismatched.html"
    capture = tmp_path / f"{mismatched.name}-new-array-delete.lt"
    assert leaktrace("report", str(capture), "--format", "html", "-o", str(page)).returncode == 0
    (box,) = find(dom(page), "pre", id="invalid-frees")
    assert box.text.splitlines()[0] == ("Mismatched frees: 1 call released a block with a "
                                        "function that does not match its allocation")


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize(("mode", "api", "function", "marker"), [
    ("", "operator delete", "drop(Node*)", "double-delete"),
    ("array", "operator delete[]", "drop_array(Node*)", "double-delete-array")])
def test_a_broken_heap_still_exits_as_natively(build_dir: Path, tmp_path: Path, opt: str,
                                               mode: str, api: str, function: str,
                                               marker: str) -> None:
    """A double delete glibc let through leaves the heap broken without a sign natively. The
    shim's release of the runtime's buffers at exit (libstdc++'s exception pool, as valgrind
    does) freed into it, and glibc aborted the process (no capture either); those frees now
    forget the blocks' records and leave the memory alone."""
    exe = compile_program("invalid_delete.cpp", build_dir, opt)
    args = [str(exe), *([mode] if mode else [])]
    native = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == (0, "completed\n"), native.stderr
    capture = tmp_path / "delete.lt"
    done = leaktrace("run", "-o", str(capture), "--", *args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    report = json_report(capture)
    (bad,) = report["invalid_frees"]
    assert (bad["api"], bad["calls"]) == (api, 1)
    assert f"Invalid {api}: 1 call (the first of address" in done.stderr
    first = bad["frames"][0]
    assert (first["function"], Path(first["file"]).name, first["line"]) == (
        function, "invalid_delete.cpp", marker_line("invalid_delete.cpp", marker))
    # The pool was released all the same: not reported, as under valgrind.
    assert report["summary"]["still_reachable"] == {"bytes": 0, "blocks": 0}


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_the_address_of_an_invalid_free_keeps_nothing_reachable(build_dir: Path, tmp_path: Path,
                                                                opt: str) -> None:
    """The shim keeps the address each invalid call passed first. malloc hands the address
    freed twice out again, to a block the program leaks: still definitely lost, as under
    valgrind (kept in the shim's static data, which the scan reads as roots, the address made
    it still reachable)."""
    exe = compile_program("invalid_frees.c", build_dir, opt)
    capture = tmp_path / "reuse.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), "reuse", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "completed\n"), done.stderr
    report = json_report(capture, "--show", "all", "--no-default-suppressions",
                         "--show-addresses")
    (bad,) = report["invalid_frees"]
    (leaked,) = records_from(report, "invalid_frees.c", "reused")
    assert (leaked["bytes"], leaked["blocks"]) == (24, 1)
    assert [a["address"] for a in leaked["addresses"]] == [bad["first_address"]]
    summary = report["summary"]
    assert (summary["definitely_lost"], summary["still_reachable"]) == (
        {"bytes": 24, "blocks": 1}, {"bytes": 7 * 24, "blocks": 7})


def test_a_traced_child_reports_its_own(build_dir: Path, tmp_path: Path) -> None:
    """A child forked after the parent's bad realloc (with --follow-children) starts with no
    invalid free of its own: the parent's is in the parent's report only."""
    exe = compile_program("invalid_frees.c", build_dir, "-O2")
    done, report = _run(exe, "fork", tmp_path / "fork", "--follow-children")
    assert done.returncode == 0, done.stderr
    assert [(f["api"], f["calls"]) for f in report["invalid_frees"]] == [("realloc", 1)]
    (child,) = set(tmp_path.glob("fork/*.lt")) - {tmp_path / "fork" / f"{exe.name}-fork.lt"}
    assert json_report(child)["invalid_frees"] == []


def test_a_plugin_calling_glibcs_own_malloc_turns_the_check_off(tmp_path: Path) -> None:
    """A library loaded with dlopen that allocates with glibc's __libc_malloc (as a wrapper
    that passes by interposed allocators does): its blocks never pass the hooks, so their
    frees would look invalid. The shim notes the import when it first meets the library, and
    does not check (null, not a false report)."""
    (tmp_path / "plugin.c").write_text(
        "#include <stddef.h>\n"
        "extern void *__libc_malloc(size_t);\n"
        "void *plugin_alloc(void) { return __libc_malloc(32); }\n")
    plugin = tmp_path / "libplugin.so"
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-o", str(plugin),
                    str(tmp_path / "plugin.c")], check=True, capture_output=True)
    (tmp_path / "main.c").write_text(
        "#include <dlfcn.h>\n#include <stdlib.h>\n#include <stdio.h>\n"
        "int main(int argc, char **argv) {\n"
        "    void *h = dlopen(argv[1], RTLD_NOW);\n"
        "    void *(*alloc)(void) = (void *(*)(void))dlsym(h, \"plugin_alloc\");\n"
        "    for (int i = 0; i < 3; i++) free(alloc());\n"
        "    puts(\"completed\");\n"
        "    return 0;\n}\n")
    exe = tmp_path / "main"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(tmp_path / "main.c"), "-ldl"], check=True,
                   capture_output=True)
    capture = tmp_path / "plugin.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), str(plugin), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "completed\n"), done.stderr
    report = json_report(capture)
    assert report["counters"]["unknown_frees"] == 3
    assert report["invalid_frees"] is None
    # The plugin is among the capture's modules although no backtrace met it: they are read
    # before glibc's freeres at exit makes the loader forget what it dlopen'd.
    modules = [line for line in leaktrace("dump", str(capture)).stdout.splitlines()
               if line.startswith("  [") and "path=" in line]
    assert any(line.endswith(f"path='{plugin}'") for line in modules), modules


def test_a_clean_program_has_none_and_unchecked_runs_say_so(build_dir: Path,
                                                            tmp_path: Path) -> None:
    """Checked, none found: an empty list (and nothing in the text). Not checked (not every
    block was recorded: sampling mode, collecting from the first mtrace()): null."""
    exe = compile_program("invalid_frees.c", build_dir, "-O2")
    done, report = _run(exe, "clean", tmp_path)
    assert done.returncode == 0 and report["invalid_frees"] == []
    assert "Invalid" not in done.stderr
    for options in (("--sample", "4096"), ("--start", "on-mtrace")):
        _, report = _run(exe, "realloc-freed", tmp_path / options[0].strip("-"), *options)
        assert report["invalid_frees"] is None, options


def test_error_exitcode_fails_a_run_with_an_invalid_free(build_dir: Path, tmp_path: Path) -> None:
    """`leaktrace run --error-exitcode=N`, as valgrind's: an invalid free fails the job (the
    program exits 0 and leaks nothing); --fail-on-leak alone does not count it; a clean run
    keeps the program's status; `report` of the capture gates the same way."""
    exe = compile_program("invalid_frees.c", build_dir, "-O2")
    failed, _ = _run(exe, "realloc-freed", tmp_path / "gated", "--error-exitcode=7")
    assert (failed.returncode, failed.stdout) == (7, "completed\n"), failed.stderr
    leaks_only, _ = _run(exe, "realloc-freed", tmp_path / "leaks", "--fail-on-leak")
    assert leaks_only.returncode == 0, leaks_only.stderr
    clean, _ = _run(exe, "clean", tmp_path / "clean", "--error-exitcode=7", "--fail-on-leak")
    assert clean.returncode == 0, clean.stderr
    bad_capture = tmp_path / "gated" / f"{exe.name}-realloc-freed.lt"
    assert leaktrace("report", "--error-exitcode=5", str(bad_capture)).returncode == 5
    assert leaktrace("report", "--fail-on-leak", str(bad_capture)).returncode == 0
    clean_capture = tmp_path / "clean" / f"{exe.name}-clean.lt"
    assert leaktrace("report", "--error-exitcode=5", str(clean_capture)).returncode == 0


def test_error_exitcode_counts_a_followed_childs_invalid_free(build_dir: Path,
                                                              tmp_path: Path) -> None:
    """A shell (clean) runs the program, whose bad realloc is in the child's capture: the
    child's line says so, its JSON entry counts it, and --error-exitcode fails the run."""
    exe = compile_program("invalid_frees.c", build_dir, "-O2")
    artifact = tmp_path / "report.json"
    done = leaktrace("run", "--follow-children", "--error-exitcode=9", "--format", "json",
                     "--report-file", str(artifact), "--", "sh", "-c", f"{exe} realloc-freed; :",
                     cwd=tmp_path)
    assert (done.returncode, done.stdout) == (9, "completed\n"), done.stderr
    assert re.search(r"child \d+: definitely lost 0 bytes in 0 blocks; 1 invalid free\(s\);",
                     done.stderr), done.stderr
    (child,) = json.loads(artifact.read_text())["children"]
    assert child["invalid_frees"] == 1
    unchecked = leaktrace("run", "--follow-children", "--fail-on-leak", "--", "sh", "-c",
                          f"{exe} realloc-freed; :", cwd=tmp_path)
    assert unchecked.returncode == 0, unchecked.stderr


def _entries(text: str) -> list[str]:
    return re.findall(r"^\{\n.*?^\}$", text, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_gen_suppressions_writes_a_free_entry_that_suppresses_it(build_dir: Path, tmp_path: Path,
                                                                 opt: str) -> None:
    """--gen-suppressions prints a Memcheck:Free entry after each invalid free, as valgrind
    does; in a file, it takes the call off the list and out of --error-exitcode, and is
    counted under used_suppression (a CI gate must be able to let a known one pass)."""
    exe = compile_program("invalid_frees.c", build_dir, opt)
    done, _ = _run(exe, "realloc-freed", tmp_path, "--gen-suppressions")
    (entry,) = _entries(done.stderr)
    assert entry.splitlines()[2:] == ["   Memcheck:Free", "   fun:realloc", "   fun:resize",
                                      "   fun:main", "}"]
    supp = tmp_path / "known.supp"
    supp.write_text(entry.replace("<insert_a_suppression_name_here>", "known-realloc") + "\n")
    capture = tmp_path / f"{exe.name}-realloc-freed.lt"
    shown = leaktrace("report", "--suppressions", str(supp), "--error-exitcode=5", str(capture))
    assert shown.returncode == 0, shown.stderr
    assert ("== Invalid frees: 1 call, each matched by a Memcheck:Free suppression (not listed) =="
            in shown.stdout)
    assert re.search(r"used_suppression: +1 known-realloc \S*known\.supp:2 suppressed: 1 invalid "
                     r"free call$", shown.stdout, re.MULTILINE), shown.stdout
    report = json_report(capture, "--suppressions", str(supp))
    assert (report["invalid_frees"], report["invalid_frees_suppressed"]) == ([], 1)
    # An entry for another function leaves it listed.
    other = tmp_path / "other.supp"
    other.write_text(entry.replace("fun:resize", "fun:elsewhere"))
    assert leaktrace("report", "--suppressions", str(other), "--error-exitcode=5",
                     str(capture)).returncode == 5


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize(("program", "mode"), [("invalid_frees.c", "fastbin-dup"),
                                               ("invalid_delete.cpp", ""),
                                               ("invalid_delete.cpp", "array")])
def test_valgrinds_own_free_entries_suppress_the_same_calls(build_dir: Path, tmp_path: Path,
                                                            program: str, mode: str) -> None:
    """The entries `valgrind --gen-suppressions=all` writes for the same program suppress
    leaktrace's invalid frees, a C++ delete's too (valgrind heads its stack with operator
    delete's symbol, where the shim sees a free); and leaktrace's entries suppress valgrind's
    errors."""
    exe = compile_program(program, build_dir, "-O0")
    args = [str(exe), *([mode] if mode else [])]
    theirs = subprocess.run(["valgrind", "--gen-suppressions=all", *args], capture_output=True,
                            text=True, timeout=300)
    free_entries = [e for e in _entries(theirs.stderr) if "Memcheck:Free" in e]
    assert free_entries, theirs.stderr
    supp = tmp_path / "valgrind.supp"
    supp.write_text("\n".join(free_entries) + "\n")
    capture = tmp_path / "run.lt"
    ours = leaktrace("run", "-o", str(capture), "--gen-suppressions", "--", *args, cwd=tmp_path)
    assert json_report(capture)["invalid_frees"], ours.stderr
    report = json_report(capture, "--suppressions", str(supp))
    assert report["invalid_frees"] == [] and report["invalid_frees_suppressed"] >= 1
    mine = tmp_path / "leaktrace.supp"
    mine.write_text("\n".join(e for e in _entries(ours.stderr) if "Memcheck:Free" in e) + "\n")
    quiet = subprocess.run(["valgrind", f"--suppressions={mine}", *args], capture_output=True,
                           text=True, timeout=300)
    assert "ERROR SUMMARY: 0 errors from 0 contexts" in quiet.stderr, quiet.stderr


MISMATCHES = [("new-array-delete", "operator delete", "drop(Node*)"),
              ("new-delete-array", "operator delete[]", "drop_array(Node*)"),
              ("malloc-delete-array", "operator delete[]", "drop_array(Node*)"),
              ("new-array-free", "free", "release(void*)"),
              ("new-array-realloc", "realloc", "resize(void*)")]


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize(("mode", "api", "function"), MISMATCHES)
def test_a_release_that_does_not_match_the_allocation_is_reported(
        build_dir: Path, tmp_path: Path, opt: str, mode: str, api: str, function: str) -> None:
    """valgrind's "Mismatched free() / delete / delete []": the call, its API and line; the
    program runs on as natively (glibc lets each through); JSON `mismatched_frees`, apart
    from the invalid frees; --error-exitcode counts it."""
    exe = compile_program("mismatched_frees.cpp", build_dir, opt)
    native = subprocess.run([str(exe), mode], capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == (0, "done\n"), native.stderr
    done, report = _run(exe, mode, tmp_path, "--error-exitcode=3")
    assert (done.returncode, done.stdout) == (3, native.stdout), done.stderr
    assert report["invalid_frees"] == []
    (bad,) = report["mismatched_frees"]
    assert (bad["api"], bad["calls"]) == (api, 1)
    first = bad["frames"][0]
    assert (first["function"], Path(first["file"]).name, first["line"]) == (
        function, "mismatched_frees.cpp", marker_line("mismatched_frees.cpp", mode))
    call = api if api.startswith("operator") else f"{api}()"
    block = "not from operator new[]" if api == "operator delete[]" else "from operator new[]"
    assert re.search(rf"== Mismatched frees: 1 call released a block with a function that does "
                     rf"not match its allocation ==\nMismatched {re.escape(call)}: 1 call \(the "
                     rf"first of address 0x[0-9a-f]+\), of a block {re.escape(block)}, stack ",
                     done.stderr), done.stderr


def test_no_mismatch_where_each_release_matches(build_dir: Path, tmp_path: Path) -> None:
    """Each block released as it should be; malloc hands a delete[]'s address straight back,
    and its free is no delete[] of a malloc block."""
    exe = compile_program("mismatched_frees.cpp", build_dir, "-O2")
    done, report = _run(exe, "clean", tmp_path, "--error-exitcode=3")
    assert done.returncode == 0, done.stderr
    assert (report["invalid_frees"], report["mismatched_frees"]) == ([], [])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_mismatches_agree_with_valgrind(build_dir: Path, tmp_path: Path) -> None:
    """valgrind's MismatchedFree errors, read from its XML: the same calls at the same lines,
    and its Memcheck:Free entry for each suppresses leaktrace's; the clean mode has none in
    either."""
    exe = compile_program("mismatched_frees.cpp", build_dir, "-O0")
    for mode, _api, _function in [*MISMATCHES, ("clean", "", "")]:
        xml = tmp_path / f"{mode}.xml"
        run = subprocess.run(["valgrind", "--xml=yes", f"--xml-file={xml}",
                              "--gen-suppressions=all", str(exe), mode], capture_output=True,
                             text=True, timeout=300)
        theirs = json.loads(leaktrace("report", "--format", "json", str(xml)).stdout)
        _, ours = _run(exe, mode, tmp_path / mode)
        assert [(f["calls"], [x["line"] for x in f["frames"] if x["function"] != "main"])
                for f in theirs["mismatched_frees"]] == [
            (f["calls"], [x["line"] for x in f["frames"][:1]]) for f in ours["mismatched_frees"]]
        if mode == "clean":
            assert ours["mismatched_frees"] == []
            continue
        entries = [e for e in ET.parse(xml).getroot().iter("suppression")]
        supp = tmp_path / f"{mode}.supp"
        supp.write_text("".join(e.findtext("rawtext") or "" for e in entries))
        assert "Memcheck:Free" in supp.read_text(), run.stderr
        capture = tmp_path / mode / f"{exe.name}-{mode}.lt"
        quiet = json_report(capture, "--suppressions", str(supp))
        assert (quiet["mismatched_frees"], quiet["invalid_frees_suppressed"]) == ([], 1)


def test_merge_adds_up_each_processs_bad_frees(build_dir: Path, tmp_path: Path) -> None:
    """`leaktrace merge` of a test suite's captures keeps their invalid and mismatched frees
    (it dropped them: the merged report said "not checked"): one backtrace's calls added up."""
    frees = compile_program("invalid_frees.c", build_dir, "-O2")
    mismatched = compile_program("mismatched_frees.cpp", build_dir, "-O2")
    runs = [(frees, "realloc-freed", "a"), (frees, "realloc-freed", "b"),
            (mismatched, "new-array-free", "c"), (frees, "clean", "d")]
    captures = []
    for exe, mode, name in runs:
        _run(exe, mode, tmp_path / name)
        captures.append(str(tmp_path / name / f"{exe.name}-{mode}.lt"))
    done = leaktrace("merge", "--format", "json", *captures)
    assert done.returncode == 0, done.stderr
    merged = json.loads(done.stdout)
    assert [(f["api"], f["calls"]) for f in merged["invalid_frees"]] == [("realloc", 2)]
    assert [(f["api"], f["calls"]) for f in merged["mismatched_frees"]] == [("free", 1)]
    # A CI job's one gate over the whole suite.
    assert leaktrace("merge", "--error-exitcode=4", *captures).returncode == 4
    assert leaktrace("merge", "--error-exitcode=4", captures[-1]).returncode == 0
