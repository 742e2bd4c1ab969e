"""Did a tool report exactly the workload's deliberate leak? One check per tool's output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import paths
from measure import Run, output_of

# ---- leak checks ----------------------------------------------------------------------------


@dataclass
class LeakCheck:
    exact: bool  # the deliberate leak was reported with exactly the expected blocks and bytes
    summary: str  # one line for the table
    details: list[str] = field(default_factory=list)  # for the notes


LEAK_FUNCTION = "leak_site"  # the workloads' deliberate leak
SITE_PREFIX = "site_"  # the workloads' other allocation sites, which must not leak


def base_name(function: str) -> str:
    """`(anonymous namespace)::leak_site(ThreadState&)` -> `leak_site`: C++ names compared as
    the C ones."""
    name = function.replace("(anonymous namespace)::", "").split("(")[0].strip()
    return name.rsplit("::", 1)[-1]


def judge(
    tool: str,
    expected: tuple[int, int] | None,
    found: tuple[int, int] | None,
    other_site_leaks: list[str],
    runtime_leaks: list[str],
    blocks_note: str = "",
) -> LeakCheck:
    if expected is None:  # a real program: no deliberate leak, just say what was reported
        reported = other_site_leaks + runtime_leaks
        if not reported:
            return LeakCheck(True, "none reported")
        return LeakCheck(True, f"{len(reported)} record(s) reported, see notes",
                         [f"{tool}: reported: {s}" for s in reported])
    exp_blocks, exp_bytes = expected
    details: list[str] = []
    if found is None:
        return LeakCheck(False, "no: deliberate leak not reported", runtime_leaks)
    blocks, nbytes = found
    exact = (blocks, nbytes) == expected and not other_site_leaks
    summary = (
        f"{'yes' if exact else 'no'}: {blocks} blocks, {nbytes} B from {LEAK_FUNCTION}{blocks_note}"
    )
    if (blocks, nbytes) != expected:
        details.append(
            f"{tool}: expected {exp_blocks} blocks / {exp_bytes} B from {LEAK_FUNCTION}, "
            f"got {blocks} / {nbytes}"
        )
    if other_site_leaks:
        summary += f"; {len(other_site_leaks)} false leak(s) at workload sites"
        details += [f"{tool}: false leak at a workload site: {s}" for s in other_site_leaks]
    if runtime_leaks:
        summary += f"; +{len(runtime_leaks)} runtime record(s), see notes"
        details += [
            f"{tool}: also reported (not from the workload's sites): {s}" for s in runtime_leaks
        ]
    return LeakCheck(exact, summary, details)


def check_valgrind(run: Run, log: Path, expected: tuple[int, int] | None) -> LeakCheck:
    text = log.read_text(errors="replace")

    def num(s: str) -> int:
        return int(s.replace(",", ""))

    m = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
    if m is None:
        # No LEAK SUMMARY at all means valgrind found nothing leaked.
        if "All heap blocks were freed" in text:
            if expected is None:
                return LeakCheck(True, "none reported")
            return LeakCheck(False, "no: valgrind reported no leaks")
        return LeakCheck(False, "no: could not parse the valgrind log")
    definitely = (num(m.group(2)), num(m.group(1)))
    # Loss records: "N bytes in M blocks are definitely lost in loss record i of n", then frames.
    found: tuple[int, int] | None = None
    others: list[str] = []
    runtime: list[str] = []
    record_re = re.compile(
        r"==\d+== ([\d,]+)(?: \([^)]*\))? bytes in ([\d,]+) blocks are (definitely|possibly) lost"
        r"[^\n]*\n((?:==\d+==\s+(?:at|by) [^\n]*\n)*)"
    )
    for rec in record_re.finditer(text):
        nbytes, blocks, kind, frames = (
            num(rec.group(1)),
            num(rec.group(2)),
            rec.group(3),
            rec.group(4),
        )
        functions = [base_name(re.sub(r" \((?:in [^)]*|[^()]*:\d+)\)$", "", f)) for f in
                     re.findall(r"(?:at|by) 0x[0-9A-Fa-f]+: ([^\n]+)", frames)]
        what = f"{blocks} blocks, {nbytes} B {kind} lost via {' <- '.join(functions[:3])}"
        if kind == "definitely" and LEAK_FUNCTION in functions:
            prev = found or (0, 0)
            found = (prev[0] + blocks, prev[1] + nbytes)
        elif any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(what)
        else:
            runtime.append(what)
    check = judge("valgrind", expected, found, others, runtime)
    check.details.insert(
        0, f"valgrind: LEAK SUMMARY definitely lost: {definitely[1]} B in {definitely[0]} blocks"
    )
    if definitely != expected:
        check.exact = False
    return check


def parse_heaptrack_leaks(print_output: str) -> list[tuple[int, list[str]]]:
    """The MEMORY LEAKS section of `heaptrack_print -l`: (calls, functions) per entry."""
    section = print_output.split("MEMORY LEAKS", 1)[-1]
    entries: list[tuple[int, list[str]]] = []
    # An entry header looks like "800.00K leaked over 8000 calls from" then the frames of the
    # allocating function, then (for unmerged backtraces) more "... from:" blocks.
    for m in re.finditer(
        r"^\S+ leaked over (\d+) calls from\n(.*?)(?=^\S+ leaked over|\Z|^total runtime)",
        section,
        re.S | re.M,
    ):
        functions = re.findall(r"^\s*([A-Za-z_][\w:.~<>]*)\s*$", m.group(2), re.M)
        entries.append((int(m.group(1)), functions))
    return entries


def check_heaptrack(data_file: Path, workdir: Path, expected: tuple[int, int] | None) -> LeakCheck:
    """Exact leaked bytes per backtrace come from the flame-graph export (cost type 'leaked');
    the block count from the number of calls of the leaking backtrace in `-l` (every call of
    leak_site leaks, so calls = blocks; heaptrack_print has no per-backtrace leaked count)."""
    stacks_file = workdir / "heaptrack-leaked-stacks.txt"
    output_of(
        [
            "heaptrack_print", "-f", str(data_file), "-p", "0", "-a", "0", "-T", "0",
            "-F", str(stacks_file), "--flamegraph-cost-type", "leaked",
        ]
    )  # fmt: skip
    leak_bytes = 0
    saw_leak_stack = False
    others: list[str] = []
    runtime: list[str] = []
    for line in stacks_file.read_text(errors="replace").splitlines():
        stack, _, cost = line.rpartition(" ")
        if not cost.isdigit():
            continue
        nbytes = int(cost)
        functions = [base_name(f.split(" (")[0]) for f in stack.rstrip(";").split(";")]
        if LEAK_FUNCTION in functions:
            saw_leak_stack = True
            leak_bytes += nbytes
        elif nbytes and any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(f"{nbytes} B via {' <- '.join(reversed(functions[-3:]))}")
        elif nbytes:
            runtime.append(f"{nbytes} B via {' <- '.join(reversed(functions[-3:]))}")
    text = output_of(
        ["heaptrack_print", "-f", str(data_file), "-l", "-p", "0", "-a", "0", "-T", "0"]
    )
    (workdir / "heaptrack-print-leaks.txt").write_text(text)
    leak_calls = sum(
        calls for calls, funcs in parse_heaptrack_leaks(text) if LEAK_FUNCTION in funcs
    )
    summary_m = re.search(r"total memory leaked: (\S+)", text)
    found = (leak_calls, leak_bytes) if saw_leak_stack else None
    check = judge("heaptrack", expected, found, others, runtime, blocks_note=" (blocks = calls)")
    if summary_m:
        check.details.insert(0, f"heaptrack_print: total memory leaked: {summary_m.group(1)}")
    return check


def leaktrace_cli() -> tuple[list[str], dict[str, str]]:
    """How to invoke the leaktrace CLI: installed, else from the source tree."""
    exe = shutil.which("leaktrace")
    if exe:
        return [exe], {}
    return [sys.executable, "-m", "leaktrace"], {"PYTHONPATH": str(paths.SOURCE_TREE)}


def frame_functions(record: dict[str, object]) -> list[str]:
    frames = record.get("frames") or []
    names: list[str] = []
    if isinstance(frames, list):
        for f in frames:
            if isinstance(f, dict) and isinstance(f.get("function"), str):
                names.append(base_name(str(f["function"])))
            elif isinstance(f, str):
                names.append(f)
    return names


# Used when the CLI has no `report` command yet: the same JSON, built with the package's own
# report builder and JSON renderer (what `leaktrace report --format json` is made of).
LIBRARY_REPORT = """
import sys
from leaktrace.analyze.build_report import load_report
from leaktrace.render.json_report import render_json
from leaktrace.render.options import RenderOptions
sys.stdout.write(render_json(load_report(sys.argv[1], with_addresses=False), RenderOptions()))
"""


def leaktrace_report_json(capture: Path) -> tuple[str, str, list[str]]:
    """(json text, how it was made, problems) for one capture."""
    cli, env = leaktrace_cli()
    full_env = dict(os.environ)
    full_env.update(env)
    # Every leak kind: blocks of the leak site may be definitely or indirectly lost (a leaked
    # block's stale contents can point to another leaked block).
    argv = [*cli, "report", str(capture), "--format", "json", "--show", "all",
            "--no-default-suppressions"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False)
    # A leak report may well exit non-zero when it found leaks; judge by the JSON.
    if proc.stdout.lstrip().startswith("{"):
        return proc.stdout, "leaktrace report CAPTURE --format json --show all", []
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    problems = [f"`leaktrace report` exited {proc.returncode}: {last}"]
    if cli[0] != sys.executable:
        return "", "", problems
    argv = [sys.executable, "-c", LIBRARY_REPORT, str(capture)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        problems.append(f"library report builder failed: {last}")
        return "", "", problems
    how = "leaktrace.analyze.build_report + render.json_report (no `report` command yet)"
    return proc.stdout, how, problems


def check_leaktrace(
    capture: Path, workdir: Path, expected: tuple[int, int] | None, tool: str = "leaktrace"
) -> LeakCheck:
    text, how, problems = leaktrace_report_json(capture)
    (workdir / "leaktrace-report.json").write_text(text)
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        return LeakCheck(False, "no: no JSON report", [f"{tool}: {p}" for p in problems])
    records = report.get("records", []) if isinstance(report, dict) else []
    found: tuple[int, int] | None = None
    leak_stack: list[str] = []
    leak_records: list[str] = []
    others: list[str] = []
    runtime: list[str] = []
    for rec in records:
        if not isinstance(rec, dict):
            continue
        functions = frame_functions(rec)
        # A definitely lost record's bytes include what it owns indirectly, which is counted
        # again in the indirectly lost records: add up the blocks' own (direct) bytes.
        direct = rec.get("direct_bytes")
        blocks = int(rec.get("blocks", 0))
        nbytes = int(direct if direct is not None else rec.get("bytes", 0))
        label = str(rec.get("kind"))
        if rec.get("leak_kind"):
            label += f", {rec.get('leak_kind')}"
        what = f"{blocks} blocks, {nbytes} B ({label}) via {' <- '.join(functions[:3])}"
        if LEAK_FUNCTION in functions:
            prev = found or (0, 0)
            found = (prev[0] + blocks, prev[1] + nbytes)
            leak_stack = functions
            leak_records.append(f"{blocks} blocks, {nbytes} B ({label})")
        elif any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(what)
        else:
            runtime.append(what)
    check = judge(tool, expected, found, others, runtime)
    if len(leak_records) > 1:
        check.details.append(
            f"{tool}: {LEAK_FUNCTION} comes in {len(leak_records)} records: "
            + "; ".join(leak_records)
        )
    if leak_stack:
        # The workload is built without frame pointers: a complete backtrace shows that the
        # shim unwound through every frame with the CFI, up to the thread's entry point.
        complete = "start_thread" in leak_stack or any("clone" in f for f in leak_stack)
        check.details.append(
            f"{tool}: backtrace of {LEAK_FUNCTION}: {len(leak_stack)} frames, "
            f"{' <- '.join(leak_stack)} ({'complete' if complete else 'INCOMPLETE'})"
        )
    check.details.insert(0, f"{tool}: JSON report made with {how}")
    if problems:
        check.details.insert(1, f"{tool}: {problems[0]}")
    summary = report.get("summary", {}) if isinstance(report, dict) else {}
    if isinstance(summary, dict):
        live = summary.get("live")
        if isinstance(live, dict):  # JSON report format 1
            live_blocks, live_bytes = live.get("blocks"), live.get("bytes")
        else:
            live_blocks, live_bytes = summary.get("live_blocks"), summary.get("live_bytes")
        check.details.insert(
            1, f"{tool}: report summary: {live_blocks} live blocks, {live_bytes} live bytes"
        )
    counters = report.get("counters", {}) if isinstance(report, dict) else {}
    if isinstance(counters, dict):
        nonzero = {k: v for k, v in counters.items() if v and k != "max_depth"}
        if nonzero:
            check.details.append(f"{tool}: shim counters: {nonzero}")
    return check




def check_lsan(run: Run, expected: tuple[int, int] | None) -> LeakCheck:
    """LeakSanitizer's report on stderr: "Direct leak of N byte(s) in M object(s) allocated
    from:" and its frames "#k 0x... in FUNCTION FILE:LINE"."""
    found: tuple[int, int] | None = None
    others: list[str] = []
    runtime: list[str] = []
    record_re = re.compile(r"(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) "
                           r"allocated from:\n((?:\s+#\d+ [^\n]*\n)*)")
    for rec in record_re.finditer(run.stderr):
        nbytes, blocks = int(rec.group(2)), int(rec.group(3))
        functions = [base_name(f) for f in re.findall(r"#\d+ 0x[0-9a-f]+ in (.+?) (?:/|\()",
                                                      rec.group(4))]
        what = f"{blocks} blocks, {nbytes} B via {' <- '.join(functions[:3])}"
        if LEAK_FUNCTION in functions:
            b, n = found or (0, 0)
            found = (b + blocks, n + nbytes)
        elif any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(what)
        else:
            runtime.append(what)
    return judge("LeakSanitizer", expected, found, others, runtime)
