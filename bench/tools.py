"""The rows of the benchmark: each way of running a workload (native, the shim, the CLI,
heaptrack, valgrind, LeakSanitizer)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import paths
from leak_checks import (
    LeakCheck,
    check_heaptrack,
    check_leaktrace,
    check_lsan,
    check_valgrind,
    leaktrace_cli,
)
from measure import BenchError, Run, first_line, output_of, run_measured, spawn
from paths import REPO, shown
from workloads import Workload

# ---- the tools ------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    version: str
    iterations: int
    timing_command: str
    memory_command: str | None = None  # when peak RSS was measured by a separate, direct run
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    leak: LeakCheck | None = None
    skipped: str | None = None
    failed: str | None = None  # a run failed: the runs before it still count
    notes: list[str] = field(default_factory=list)
    reference: str | None = None  # name of the native row this one is compared with


class Tool:
    """One way of running the workload. `timed` runs are counted for wall time; their peak RSS
    counts too unless the tool needs a separate `memory` run (a launcher that is not itself the
    traced process)."""

    name = "tool"
    separate_memory_run = False

    def __init__(self, workload: Workload, exe: Path, iterations: int, threads: int,
                 out: Path) -> None:
        self.workload = workload
        self.exe = exe
        self.iterations = iterations
        self.threads = threads
        self.out = out / re.sub(r"\W+", "-", self.name).strip("-")

    def workload_argv(self, launcher: bool = True) -> list[str]:
        """launcher: False for a tool that is itself the traced process or launches it."""
        return self.workload.argv(self.exe, self.iterations, self.threads, launcher)

    def missing(self) -> str | None:
        return None

    def version(self) -> str:
        return ""

    def timing_command(self) -> str:
        raise NotImplementedError

    def memory_command(self) -> str | None:
        return None

    def timed(self, index: int) -> Run:
        raise NotImplementedError

    def memory(self, index: int) -> Run:
        return self.timed(index)

    def leak_check(self, run: Run, expected: tuple[int, int] | None) -> LeakCheck | None:
        return None

    def discard(self, run: Run) -> None:
        """Delete the bulky outputs of a run that is not leak-checked (heaptrack data files
        are tens of MB each)."""
        for path in run.workdir.iterdir():
            if path.name.startswith(("heaptrack.", "data", "valgrind.log")):
                path.unlink()
            elif path.name == "captures" and path.is_dir():
                shutil.rmtree(path)


class Native(Tool):
    name = "native"

    def timing_command(self) -> str:
        return shlex.join(self.workload_argv())

    def version(self) -> str:
        return "-"

    def timed(self, index: int) -> Run:
        return run_measured(self.workload_argv(), self.out / f"run{index}")


class NativeAt(Native):
    """Native runs at the reduced iteration count used for valgrind."""

    name = "native (valgrind size)"


class Valgrind(Tool):
    name = "valgrind memcheck"

    def missing(self) -> str | None:
        return None if shutil.which("valgrind") else "valgrind not installed"

    def version(self) -> str:
        return first_line(["valgrind", "--version"])

    def argv(self, log: str) -> list[str]:
        return ["valgrind", "--leak-check=full", f"--log-file={log}",
                *self.workload_argv(launcher=False)]

    def timing_command(self) -> str:
        return shlex.join(self.argv("LOG"))

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        return run_measured(self.argv(str(workdir / "valgrind.log")), workdir)

    def leak_check(self, run: Run, expected: tuple[int, int] | None) -> LeakCheck:
        return check_valgrind(run, run.workdir / "valgrind.log", expected)


class LeakSanitizer(Tool):
    """LeakSanitizer preloaded (Debian's liblsan0, no recompiling), with full DWARF stacks as
    the other tracers have (its default fast unwinder needs frame pointers)."""

    name = "LeakSanitizer"
    library = Path("/usr/lib/x86_64-linux-gnu/liblsan.so.0")
    options = "exitcode=0:fast_unwind_on_malloc=0:malloc_context_size=64"

    def missing(self) -> str | None:
        return None if self.library.exists() else f"{self.library} not installed (liblsan0)"

    def version(self) -> str:
        try:
            return "liblsan0 " + output_of(["dpkg-query", "-W", "-f", "${Version}", "liblsan0"])
        except (BenchError, OSError):
            return "liblsan0"

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.library), "LSAN_OPTIONS": self.options}

    def timing_command(self) -> str:
        return (f"LD_PRELOAD={self.library} LSAN_OPTIONS={self.options} "
                + shlex.join(self.workload_argv()))

    def timed(self, index: int) -> Run:
        return run_measured(self.workload_argv(), self.out / f"run{index}", self.env())

    def leak_check(self, run: Run, expected: tuple[int, int] | None) -> LeakCheck:
        return check_lsan(run, expected)


class Heaptrack(Tool):
    name = "heaptrack"
    separate_memory_run = True

    def missing(self) -> str | None:
        if not shutil.which("heaptrack"):
            return "heaptrack not installed"
        if not shutil.which("heaptrack_print"):
            return "heaptrack_print not installed"
        if not self.preload().exists() or not self.interpreter().exists():
            return f"heaptrack libraries not found next to {shutil.which('heaptrack')}"
        return None

    def version(self) -> str:
        return first_line(["heaptrack", "--version"])

    def libdir(self) -> Path:
        # Where the heaptrack script itself looks: <bindir>/../lib/heaptrack
        script = Path(shutil.which("heaptrack") or "/usr/bin/heaptrack").resolve()
        return (script.parent / ".." / "lib" / "heaptrack").resolve()

    def preload(self) -> Path:
        return self.libdir() / "libheaptrack_preload.so"

    def interpreter(self) -> Path:
        return self.libdir() / "libexec" / "heaptrack_interpret"

    def timing_command(self) -> str:
        return shlex.join(["heaptrack", "-o", "FILE", *self.workload_argv(launcher=False)])

    def compressor(self) -> str:
        return "zstd -c" if shutil.which("zstd") else "gzip -c"

    def memory_command(self) -> str:
        return (
            f"mkfifo FIFO; {self.interpreter()} < FIFO | {self.compressor()} > FILE & "
            f"LD_PRELOAD={self.preload()} DUMP_HEAPTRACK_OUTPUT=FIFO "
            + shlex.join(self.workload_argv())
        )

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("heaptrack.*"):
            old.unlink()
        # The heaptrack script records: the program runs with the preload library, which
        # streams to heaptrack_interpret (concurrently), which is compressed into FILE.zst or
        # .gz. With no heaptrack_gui installed it does not analyse anything afterwards.
        return run_measured(
            ["heaptrack", "-o", str(workdir / "heaptrack.workload"),
             *self.workload_argv(launcher=False)], workdir
        )

    def memory(self, index: int) -> Run:
        """The same pipeline as the heaptrack script, but with the preloaded program as our own
        child, so that wait4() gives the peak RSS of the traced program alone."""
        workdir = self.out / f"mem{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        fifo = workdir / "fifo"
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)
        pipeline = f'"$0" < "$1" | {self.compressor()} > "$2"'
        reader = spawn(
            ["sh", "-c", pipeline, str(self.interpreter()), str(fifo), str(workdir / "data")],
            dict(os.environ),
            workdir,
            "interpret",
        )
        try:
            run = run_measured(
                self.workload_argv(),
                workdir,
                {"LD_PRELOAD": str(self.preload()), "DUMP_HEAPTRACK_OUTPUT": str(fifo)},
            )
        except BaseException:
            os.kill(reader, signal.SIGTERM)  # it may still be waiting for a writer
            os.wait4(reader, 0)
            raise
        finally:
            fifo.unlink()
        _, status, usage = os.wait4(reader, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise BenchError("heaptrack_interpret pipeline failed")
        self.interpret_rss_kib = usage.ru_maxrss
        return run

    def leak_check(self, run: Run, expected: tuple[int, int] | None) -> LeakCheck:
        files = sorted(run.workdir.glob("heaptrack.workload.*"))
        if not files:
            return LeakCheck(False, "no: heaptrack wrote no data file")
        return check_heaptrack(files[0], run.workdir, expected)


class Leaktrace(Tool):
    """leaktrace, either through its CLI (`leaktrace run`, a launcher: peak RSS then comes from
    separate direct runs) or by preloading the shim directly."""

    name = "leaktrace"

    def __init__(
        self,
        workload: Workload,
        exe: Path,
        iterations: int,
        threads: int,
        out: Path,
        shim: Path | None,
        cli: tuple[list[str], dict[str, str]] | None = None,
        measure_memory: bool = True,
    ) -> None:
        super().__init__(workload, exe, iterations, threads, out)
        self.shim = shim
        self.cli = cli
        self.measure_memory = measure_memory
        self.separate_memory_run = cli is not None and measure_memory

    def missing(self) -> str | None:
        if self.cli is None or self.separate_memory_run:
            if self.shim is None:
                return "no shim: pass --shim or set LEAKTRACE_SHIM"
            if not self.shim.exists():
                return f"shim not built: {self.shim} does not exist"
        return None

    def version(self) -> str:
        cli, env = self.cli or leaktrace_cli()
        try:
            text = output_of([*cli, "--version"], env=env, timeout=60).strip()
        except (BenchError, OSError, subprocess.TimeoutExpired):
            m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
            text = f"leaktrace {m.group(1)} (pyproject.toml)" if m else "leaktrace"
        try:
            rev = output_of(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
            dirty = output_of(
                ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "shim"]
            ).strip()
            text += f", source tree at git {rev}"
            if dirty:
                text += " with uncommitted changes in src/ or shim/ (others' work in progress)"
        except (BenchError, OSError):
            pass
        if self.shim is not None and self.shim.exists():
            built = dt.datetime.fromtimestamp(self.shim.stat().st_mtime, dt.timezone.utc)
            text += f", shim {shown(str(self.shim))} built {built.strftime('%Y-%m-%d %H:%M UTC')}"
        return text

    def direct_env(self, capture_dir: Path) -> dict[str, str]:
        assert self.shim is not None
        return {"LD_PRELOAD": str(self.shim), "LEAKTRACE_DIR": str(capture_dir)}

    def direct_command(self) -> str:
        return f"LEAKTRACE_DIR=DIR LD_PRELOAD={self.shim} " + shlex.join(self.workload_argv())

    def cli_argv(self, capture: str, report: str) -> list[str]:
        assert self.cli is not None
        return [
            *self.cli[0], "run", "-o", capture, "--report-file", report,
            "--", *self.workload_argv(launcher=False),
        ]  # fmt: skip

    def timing_command(self) -> str:
        if self.cli is None:
            return self.direct_command()
        env = " ".join(f"{k}={v}" for k, v in self.cli[1].items())
        argv = self.cli_argv("CAPTURE", "REPORT")
        if argv[0] == sys.executable:
            argv[0] = "python3"
        return (env + " " if env else "") + shlex.join(argv)

    def memory_command(self) -> str | None:
        return self.direct_command() if self.separate_memory_run else None

    def fresh_dir(self, workdir: Path) -> Path:
        capture_dir = workdir / "captures"
        if capture_dir.exists():
            shutil.rmtree(capture_dir)
        capture_dir.mkdir(parents=True)
        return capture_dir

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        capture_dir = self.fresh_dir(workdir)
        if self.cli is None:
            return run_measured(self.workload_argv(), workdir, self.direct_env(capture_dir))
        argv = self.cli_argv(str(capture_dir / "capture.lt"), str(workdir / "report.txt"))
        return run_measured(argv, workdir, self.cli[1])

    def memory(self, index: int) -> Run:
        if not self.separate_memory_run:
            return self.timed(index)
        workdir = self.out / f"mem{index}"
        return run_measured(self.workload_argv(), workdir, self.direct_env(self.fresh_dir(workdir)))

    def leak_check(self, run: Run, expected: tuple[int, int] | None) -> LeakCheck:
        captures = sorted(p for p in (run.workdir / "captures").rglob("*") if p.is_file())
        if not captures:
            return LeakCheck(False, "no: no capture file written")
        check = check_leaktrace(captures[-1], run.workdir, expected, self.name)
        if len(captures) > 1:
            check.details.append(
                f"{self.name}: {len(captures)} capture files; checked {captures[-1].name}"
            )
        return check


class LeaktraceCli(Leaktrace):
    """`leaktrace run` (installed, else `python3 -m leaktrace run` from the source tree): the
    whole user-visible cost, launcher and end-of-run report included."""

    name = "leaktrace run (CLI)"
    unusable: str | None = None

    def missing(self) -> str | None:
        return self.unusable or super().missing()


def source_tree_cli(shim: Path) -> tuple[tuple[list[str], dict[str, str]], str | None]:
    """The CLI from the source tree, and why it cannot be used (None if it can)."""
    cli = [sys.executable, "-m", "leaktrace"]
    env = {"PYTHONPATH": str(paths.SOURCE_TREE), "LEAKTRACE_SHIM": str(shim)}
    try:
        output_of([*cli, "run", "--help"], env=env, timeout=60)
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        last = (str(e).strip().splitlines() or [""])[-1][-200:]
        return (cli, env), f"`python3 -m leaktrace run --help` failed: {last}"
    return (cli, env), None


def installed_shim(exe: str) -> Path | None:
    """The shim the installed CLI would preload, asked of the Python that runs the CLI."""
    try:
        first = Path(exe).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    if not first.startswith("#!"):
        return None
    code = "from leaktrace.shim_library import find_shim_library as f; print(f())"
    try:
        return Path(output_of([*shlex.split(first[2:]), "-c", code], timeout=60).strip())
    except (BenchError, OSError, subprocess.TimeoutExpired):
        return None


