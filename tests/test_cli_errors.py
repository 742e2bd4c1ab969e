"""The leaktrace command on bad input: one `leaktrace: error:` line, exit 2, no traceback.
Also the exit-code contract of --fail-on-leak and of `run` when no capture appears. Every
test runs the real command line in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from leakharness import assert_one_line_error
from native_programs import compile_source

from leaktrace.capture.writer import encode_capture, encode_end, make_header

SRC = Path(__file__).parent.parent / "src"
SAMPLE = Path(__file__).parent / "data" / "capture-v1.lt"


def leaktrace(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run([sys.executable, "-m", "leaktrace", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=120, check=False)




def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- report / dump on bad captures -------------------------------------------------------

@pytest.mark.parametrize("command", ["report", "dump"])
def test_missing_capture(tmp_path: Path, command: str) -> None:
    assert_one_line_error(leaktrace(command, str(tmp_path / "none.lt")), "No such file")


@pytest.mark.parametrize("command", ["report", "dump"])
def test_not_a_capture(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, "x.lt", b"#!/bin/sh\necho hello\n")
    assert_one_line_error(leaktrace(command, path), "not a leaktrace capture")


def test_newer_version(tmp_path: Path) -> None:
    data = encode_capture(make_header(version=7))
    line = assert_one_line_error(leaktrace("report", write(tmp_path, "n.lt", data)))
    assert line == ("leaktrace: error: capture format version 7 is newer than this leaktrace "
                    "(reads up to 2); upgrade leaktrace")


@pytest.mark.parametrize("command", ["report", "dump"])
def test_truncated(tmp_path: Path, command: str) -> None:
    data = SAMPLE.read_bytes()
    for cut in (len(encode_end()), len(data) // 2):
        path = write(tmp_path, f"t{cut}.lt", data[:-cut])
        assert_one_line_error(leaktrace(command, path), "truncated")


def test_corrupt(tmp_path: Path) -> None:
    data = bytearray(SAMPLE.read_bytes())
    # The MODULES count, right after the PROCESS section: make it absurd.
    process_length = struct.unpack_from("<Q", data, 64 + 8)[0]
    modules_payload = 64 + 16 + process_length + 16
    data[modules_payload : modules_payload + 4] = struct.pack("<I", 0xFFFFFF)
    assert_one_line_error(leaktrace("report", write(tmp_path, "c.lt", bytes(data))), "corrupt")


def test_directory_given_as_capture(tmp_path: Path) -> None:
    assert_one_line_error(leaktrace("report", str(tmp_path)))


@pytest.mark.parametrize("args", [["report", "--bogus", "x"], ["report"],
                                  ["report", str(SAMPLE), "--format", "xml"],
                                  ["report", str(SAMPLE), "--top", "-1"], ["frobnicate"]])
def test_usage_errors_are_one_line(args: list[str]) -> None:
    assert_one_line_error(leaktrace(*args))


# --- exit codes on good captures ----------------------------------------------------------

def test_report_and_fail_on_leak() -> None:
    ok = leaktrace("report", str(SAMPLE))
    assert ok.returncode == 0 and "still live at exit: 6 blocks" in ok.stdout
    assert leaktrace("report", str(SAMPLE), "--fail-on-leak").returncode == 99
    assert leaktrace("report", str(SAMPLE), "--fail-on-leak=74875").returncode == 99
    assert leaktrace("report", str(SAMPLE), "--fail-on-leak=74876").returncode == 0
    assert leaktrace("report", str(SAMPLE), "--fail-on-leak", "--leak-exit-code",
                     "7").returncode == 7


def test_dump_prints_every_section() -> None:
    done = leaktrace("dump", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    for word in ("HEADER version=1", "PROCESS", "MODULES count=2", "STACKS count=3",
                 "BLOCKS count=6", "COUNTERS", "END"):
        assert word in done.stdout


# --- run: programs the shim cannot enter --------------------------------------------------

@pytest.fixture()
def fake_shim(tmp_path: Path) -> dict[str, str]:
    """Checks before launch only need the shim to exist."""
    shim = tmp_path / "libleaktrace_shim.so"
    shim.write_bytes(b"not really a shim")
    return {"LEAKTRACE_SHIM": str(shim)}


def test_run_without_shim(tmp_path: Path) -> None:
    done = leaktrace("run", "--", "true", env={"LEAKTRACE_SHIM": str(tmp_path / "no.so")})
    assert_one_line_error(done, "shim not found")


def test_run_program_not_found(fake_shim: dict[str, str], tmp_path: Path) -> None:
    # 127, as a shell, env, timeout and valgrind end: a wrapper script sees the same status.
    for missing in ("no-such-program-xyz", str(tmp_path / "nope")):
        done = leaktrace("run", "--", missing, env=fake_shim)
        assert done.stderr.splitlines() == [f"leaktrace: error: program not found: {missing}"
                                            + (" (not in PATH)" if "/" not in missing else "")]
        native = subprocess.run(["env", missing], capture_output=True, timeout=60)
        assert done.returncode == native.returncode == 127


def test_run_not_executable(fake_shim: dict[str, str], tmp_path: Path) -> None:
    # 126, as a shell, env, timeout and valgrind end.
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    for target, words in ((script, "not executable"), (tmp_path, "directory")):
        done = leaktrace("run", "--", str(target), env=fake_shim)
        [line] = done.stderr.splitlines()
        assert line.startswith(f"leaktrace: error: {target} ") and words in line
        native = subprocess.run(["env", str(target)], capture_output=True, timeout=60)
        assert done.returncode == native.returncode == 126


def test_run_statically_linked(fake_shim: dict[str, str], tmp_path: Path) -> None:
    try:
        exe = compile_source(tmp_path, "static.c", "int main(void) { return 0; }\n", "-static")
    except subprocess.CalledProcessError:
        pytest.skip("no static libc to link with")
    assert_one_line_error(leaktrace("run", "--", str(exe), env=fake_shim),
                          "statically linked: the leaktrace shim cannot enter it")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_run_setuid_program(fake_shim: dict[str, str], tmp_path: Path) -> None:
    exe = tmp_path / "suid-true"
    shutil.copy(shutil.which("true") or "/bin/true", exe)
    os.chown(exe, 65534, 65534)
    os.chmod(exe, 0o4755)
    tmp_path.chmod(0o755)
    assert_one_line_error(leaktrace("run", "--", str(exe), env=fake_shim), "setuid")


def test_run_never_overwrites_output(fake_shim: dict[str, str], tmp_path: Path) -> None:
    existing = tmp_path / "old.lt"
    existing.write_bytes(b"keep me")
    done = leaktrace("run", "-o", str(existing), "--", "true", env=fake_shim)
    assert_one_line_error(done, "already exists")
    assert existing.read_bytes() == b"keep me"


def test_run_output_directory_missing(fake_shim: dict[str, str], tmp_path: Path) -> None:
    done = leaktrace("run", "-o", str(tmp_path / "no" / "x.lt"), "--", "true", env=fake_shim)
    assert_one_line_error(done, "does not exist")


# --- run: a program that writes no capture ------------------------------------------------

@pytest.fixture()
def inert_shim(tmp_path: Path) -> dict[str, str]:
    """A real shared library that writes nothing: the launcher must say no capture came."""
    lib = compile_source(tmp_path, "inert.c", "int leaktrace_inert;\n", "-shared", "-fPIC")
    shim = tmp_path / "libinert.so"
    lib.rename(shim)
    return {"LEAKTRACE_SHIM": str(shim)}


def test_run_without_capture_keeps_the_exit_code(inert_shim: dict[str, str],
                                                 tmp_path: Path) -> None:
    done = leaktrace("run", "--", "sh", "-c", "exit 5", env=inert_shim, cwd=tmp_path)
    assert done.returncode == 5
    assert "no capture was written" in done.stderr and "Traceback" not in done.stderr
    # A clean exit without a capture is not a clean, checked run.
    done = leaktrace("run", "--", "true", env=inert_shim, cwd=tmp_path)
    assert done.returncode == 2 and "no capture was written" in done.stderr


def test_run_passes_arguments_and_signals_as_exit_status(inert_shim: dict[str, str],
                                                         tmp_path: Path) -> None:
    done = leaktrace("run", "sh", "-c", "echo out; kill -TERM $$", env=inert_shim, cwd=tmp_path)
    assert done.stdout == "out\n"  # the program's stdout stays its own
    assert done.returncode == -signal.SIGTERM  # leaktrace dies of the program's signal
    assert "killed by SIGTERM" in done.stderr


# --- outputs that would destroy a capture or come too late ----------------------------------

@pytest.mark.parametrize("command", [["report"], ["merge"], ["diff", str(SAMPLE)]])
def test_an_output_naming_a_capture_is_refused(tmp_path: Path, command: list[str]) -> None:
    """`report X.lt -o X.lt` replaced the capture with its own text."""
    capture = tmp_path / "keep.lt"
    shutil.copy(SAMPLE, capture)
    before = capture.read_bytes()
    done = leaktrace(*command, str(capture), "-o", str(capture))
    assert_one_line_error(done, "is a capture: leaktrace never overwrites one")
    assert capture.read_bytes() == before


@pytest.mark.parametrize("option", ["--report-file", "--html"])
def test_run_checks_its_report_files_before_the_program_runs(tmp_path: Path,
                                                             option: str) -> None:
    """A report file that cannot be written was found only after the whole run, whose status
    (and the leak gate's) was lost to an exit 2."""
    from leakharness import leaktrace as installed_leaktrace  # run needs the built shim

    marker = tmp_path / "ran"
    done = installed_leaktrace("run", option, str(tmp_path / "missing" / "r.txt"), "--",
                               "touch", str(marker), cwd=tmp_path)
    assert_one_line_error(done, f"the {option} directory {tmp_path / 'missing'} does not exist")
    assert not marker.exists()
