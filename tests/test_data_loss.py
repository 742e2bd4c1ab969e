"""No capture lost (issue 13, item 5): a program that replaces its image by exec without
forking, one that drops its privileges (setuid to `nobody`), and one that uses its address
space up to RLIMIT_AS and carries on. Each runs without leaktrace too: its output and exit
status must be the same under it."""

from __future__ import annotations

import json
import os
import pwd
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leakharness import (
    LEAKTRACE,
    compile_program,
    json_report,
    leaktrace,
    marker_line,
    records_from,
)


def _native(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=cwd)


def _one_leak(report: dict, source: str, marker: str, nbytes: int, kind: str | None) -> None:
    """Exactly one live block of `nbytes` from malloc at `marker`'s line, of leak kind `kind`
    (None: no reachability scan)."""
    records = records_from(report, source, marker)
    assert [(r["kind"], r["blocks"], r["bytes"]) for r in records] == [("malloc", 1, nbytes)], \
        records
    kinds = [r["leak_kind"] for r in report["records"]
             if any(f.get("line") == marker_line(source, marker)
                    and Path(f.get("file") or "").name == source for f in r["frames"])]
    assert kinds == [kind], kinds


# ---- exec without fork ----------------------------------------------------------------------

def test_exec_without_fork_reports_both_images(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("exec_self.c", build_dir, "-O0")
    native = _native(str(exe), "fail", cwd=tmp_path)
    capture = tmp_path / "ex.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), "fail", cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout) \
        == (12, "first image\nsecond image\n"), done.stderr
    first = tmp_path / "ex.exec-1.lt"
    # Only the exec that replaced the image left a capture: the failed one's was removed.
    assert sorted(p.name for p in tmp_path.glob("*.lt")) == ["ex.exec-1.lt", "ex.lt"]
    report_1 = json_report(first)
    assert report_1["summary"]["definitely_lost"] == {"bytes": 444, "blocks": 2}
    _one_leak(report_1, "exec_self.c", "first_image", 111, "definitely lost")
    _one_leak(report_1, "exec_self.c", "after_failed_exec", 333, "definitely lost")
    assert not records_from(report_1, "exec_self.c", "second_image")
    report_2 = json_report(capture)
    _one_leak(report_2, "exec_self.c", "second_image", 222, "still reachable")
    assert report_2["summary"]["definitely_lost"] == {"bytes": 0, "blocks": 0}
    # Both reports, the replaced image's first, each saying which capture it is.
    assert done.stderr.count("LEAK SUMMARY") == 2, done.stderr
    image_1 = done.stderr.index("image 1 (")
    assert image_1 < done.stderr.index(str(first)) < done.stderr.index("the last image (") \
        < done.stderr.index(f"capture saved to {capture}")
    assert "replaced by exec" in done.stderr
    assert "when the process exec'd another program" in done.stderr


@pytest.mark.parametrize("how", ["fexecve", "execveat", "sys_execve", "sys_execveat"])
def test_an_exec_by_descriptor_or_by_syscall_reports_both_images(build_dir: Path, tmp_path: Path,
                                                                 how: str) -> None:
    """fexecve, execveat, and execve or execveat made through syscall(): the replaced image's
    capture is written, and the next image is traced (it had no capture before: its settings
    were hidden from the program, so the next image ran without the shim)."""
    exe = compile_program("exec_self.c", build_dir, "-O0")
    native = _native(str(exe), how, cwd=tmp_path)
    capture = tmp_path / "ex.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), how, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout) \
        == (12, "first image\nsecond image\n"), done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.lt")) == ["ex.exec-1.lt", "ex.lt"]
    _one_leak(json_report(tmp_path / "ex.exec-1.lt"), "exec_self.c", "first_image", 111,
              "definitely lost")
    _one_leak(json_report(capture), "exec_self.c", "second_image", 222, "still reachable")


@pytest.mark.parametrize("show", ["default", "all"])
def test_an_exec_image_with_nothing_to_show_gets_one_line(build_dir: Path, tmp_path: Path,
                                                          show: str) -> None:
    """A wrapper (pyenv's shims, env, a shell script) that execs the real program leaks
    nothing of the kinds shown: one line for it, not a report that shows no record; with
    --show all its still reachable block makes the full report."""
    exe = compile_program("exec_self.c", build_dir, "-O0")
    options = ["--show", "all"] if show == "all" else []
    done = leaktrace("run", "-o", str(tmp_path / "ex.lt"), *options, "--", str(exe), "clean",
                     cwd=tmp_path)
    assert (done.returncode, done.stdout) == (12, "first image\nsecond image\n"), done.stderr
    first = tmp_path / "ex.exec-1.lt"
    _one_leak(json_report(first), "exec_self.c", "first_image", 111, "still reachable")
    line = next(line for line in done.stderr.splitlines() if "image 1 (" in line)
    if show == "all":
        assert done.stderr.count("LEAK SUMMARY") == 2, done.stderr
        assert line.endswith("replaced by exec:"), line
    else:
        assert done.stderr.count("LEAK SUMMARY") == 1, done.stderr
        # 111 bytes and the stdout buffer glibc keeps (a default suppression's).
        assert "replaced by exec: no loss record of the kinds shown (4,207 bytes live in 2 " \
            "blocks); " in line and line.endswith(f"report {first}"), line
        assert done.stderr.index(line) < done.stderr.index("the last image (")


def test_exec_images_with_a_report_file_get_one_line_each(build_dir: Path,
                                                            tmp_path: Path) -> None:
    exe = compile_program("exec_self.c", build_dir, "-O0")
    report_file = tmp_path / "report.json"
    done = leaktrace("run", "-o", str(tmp_path / "ex.lt"), "--format", "json",
                     "--report-file", str(report_file), "--fail-on-leak", "--", str(exe),
                     cwd=tmp_path)
    # The second image leaks nothing definite; the first did: --fail-on-leak counts both.
    assert done.returncode == 99, done.stderr
    assert "image 1 (" in done.stderr and "definitely lost 111 bytes in 1 blocks" in done.stderr
    assert "LEAK SUMMARY" not in done.stderr
    assert json.loads(report_file.read_text())["command"][-1] == "second"


# ---- privileges dropped -----------------------------------------------------------------------

def _nobody_and_dropping_program(build_dir: Path) -> tuple[pwd.struct_passwd, Path]:
    """The user nobody (the test is skipped without one) and drop_privileges.c, built and
    runnable by everyone."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    exe = compile_program("drop_privileges.c", build_dir, "-O0")
    os.chmod(exe, 0o755)
    return nobody, exe


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to the user nobody")
def test_a_program_that_drops_to_nobody_still_gets_its_capture(build_dir: Path,
                                                               tmp_path: Path) -> None:
    nobody, exe = _nobody_and_dropping_program(build_dir)
    work = tmp_path / "private"  # root's, 0700: nobody can create nothing here
    work.mkdir(mode=0o700)
    native = _native(str(exe), cwd=work)
    assert (native.returncode, native.stdout) == (13, f"now uid {nobody.pw_uid}\n")
    for output in (["-o", str(work / "d.lt")], []):  # the -o file, then the default name
        done = leaktrace("run", *output, "--", str(exe), cwd=work)
        assert "Traceback" not in done.stderr, done.stderr
        assert (done.returncode, done.stdout) == (13, native.stdout), done.stderr
        captures = sorted(work.glob("*.lt"))
        assert len(captures) == 1, done.stderr
        report = json_report(captures[0])
        _one_leak(report, "drop_privileges.c", "before_drop", 64, "definitely lost")
        _one_leak(report, "drop_privileges.c", "after_drop", 96, "definitely lost")
        assert report["summary"]["definitely_lost"] == {"bytes": 160, "blocks": 2}
        assert f"capture saved to {captures[0]}" in done.stderr
        captures[0].unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to the user nobody")
def test_a_child_that_drops_to_nobody_gets_a_control_socket_of_its_user(build_dir: Path,
                                                                         tmp_path: Path) -> None:
    """A traced child of root's that becomes `nobody` cannot use root's default control
    directory: its socket goes to nobody's own (/tmp/leaktrace-<uid>), with no line on the
    program's stderr (it said "no control socket ... could not be created": man-db's children
    do this)."""
    nobody, exe = _nobody_and_dropping_program(build_dir)
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    os.chmod(work, 0o777)
    env = {k: v for k, v in os.environ.items() if k != "LEAKTRACE_CONTROL_DIR"}
    done = subprocess.run([*LEAKTRACE, "run", "--follow-children", "--", str(exe), "child"],
                          capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert (done.returncode, done.stdout) == (13, f"now uid {nobody.pw_uid}\n"), done.stderr
    assert "no control socket" not in done.stderr, done.stderr
    assert "1 child process(es) traced" in done.stderr, done.stderr


@pytest.mark.parametrize("names", ["setrlimit", "setrlimit64"])
@pytest.mark.parametrize("limits", ["f", "fn", "n"])
def test_a_program_that_limits_itself_before_its_sandbox(build_dir: Path, tmp_path: Path,
                                                         limits: str, names: str) -> None:
    """OpenSSH's sandboxed child sets RLIMIT_FSIZE and RLIMIT_NOFILE to 0, then installs its
    seccomp filter, before which the shim wrote its capture: it could not (no file write is
    allowed under a file size limit of 0, and no open under a descriptor limit of 0), and `run`
    blamed SIGKILL. Now the capture is written at the file size limit, where the shim stops
    as before a filter, and the descriptor limit has the capture's files opened first. The
    program runs on as natively (no SIGXFSZ)."""
    # Built with large-file support, the program calls setrlimit64 (as nginx does).
    extra = ["-D_FILE_OFFSET_BITS=64"] if names == "setrlimit64" else []
    exe = compile_program("limits_then_sandbox.c", build_dir, "-O0", extra,
                          output=f"limits_then_sandbox-{names}")
    native = _native(str(exe), limits, cwd=tmp_path)
    assert (native.returncode, native.stdout) == (4, "sandboxed\n")
    done = leaktrace("run", "-o", str(tmp_path / "s.lt"), "--", str(exe), limits, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (4, native.stdout), done.stderr
    assert "Traceback" not in done.stderr
    report = json_report(tmp_path / "s.lt")
    _one_leak(report, "limits_then_sandbox.c", "before_limits", 77, "definitely lost")
    where = "file size limit (RLIMIT_FSIZE)" if "f" in limits else "seccomp filter"
    assert any(where in note for note in report["notes"]), report["notes"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, for setgroups")
@pytest.mark.parametrize("mode", ["closed", "reuse"])
def test_a_program_that_closes_every_descriptor_after_setgroups(build_dir: Path, tmp_path: Path,
                                                                mode: str) -> None:
    """sshd drops its supplementary groups (the shim then opens its capture's file early),
    then closes every descriptor from 3 on: the capture was written to a closed descriptor
    (none at all), or into the file the program had put under that number since ("reuse")."""
    exe = compile_program("closes_after_setgroups.c", build_dir, "-O0")
    mine = tmp_path / "mine.txt"
    done = leaktrace("run", "--", str(exe), mode, str(mine), cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    if mode == "reuse":
        assert mine.read_bytes() == b"the program's line\n"
    captures = sorted(tmp_path.glob("*.lt"))
    assert len(captures) == 1, done.stderr
    report = json_report(captures[0])
    _one_leak(report, "closes_after_setgroups.c", "after_close", 48, "definitely lost")
    assert report["summary"]["definitely_lost"] == {"bytes": 48, "blocks": 1}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, for setgroups and chroot")
def test_a_child_that_chroots_after_its_parent_dropped_its_groups(build_dir: Path,
                                                                  tmp_path: Path) -> None:
    """The parent's setgroups has the shim open its capture's file early; its fork child then
    chroots (sshd's sandboxed child). The child took the parent's early file for used, opened
    none of its own before its chroot, and could not create its capture inside the new root."""
    exe = compile_program("closes_after_setgroups.c", build_dir, "-O0")
    jail = tmp_path / "jail"
    jail.mkdir()
    done = leaktrace("run", "--follow-children", "--", str(exe), "child", str(jail),
                     cwd=tmp_path)
    assert (done.returncode, done.stdout) == (5, "child 6\n"), done.stderr
    assert "without a capture" not in done.stderr, done.stderr
    reports = [json_report(capture) for capture in sorted(tmp_path.glob("*.lt"))]
    assert len(reports) == 2, done.stderr  # the parent's, the child's
    child = next(r for r in reports if r["summary"]["definitely_lost"]["blocks"])
    _one_leak(child, "closes_after_setgroups.c", "in_the_child", 48, "definitely lost")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to the user nobody")
def test_root_reaches_a_program_that_dropped_to_nobody(build_dir: Path, tmp_path: Path) -> None:
    """The control socket moves to the new user's directory with the drop (it stayed in
    root's, where `leaktrace status PID` refused it, and was left there at exit)."""
    nobody, exe = _nobody_and_dropping_program(build_dir)
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    os.chmod(work, 0o777)
    env = {k: v for k, v in os.environ.items() if k != "LEAKTRACE_CONTROL_DIR"}
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(work / "w.lt"), "--", str(exe), "wait"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=work, env=env)
    assert run.stdout is not None and run.stdin is not None
    try:
        assert run.stdout.readline() == f"now uid {nobody.pw_uid}\n"
        pid = int(run.stdout.readline().split()[1])
        status = subprocess.run([*LEAKTRACE, "status", str(pid)], capture_output=True,
                                text=True, env=env, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "live:" in status.stdout
        run.stdin.write("end\n")
        run.stdin.close()
        assert run.wait(timeout=120) == 13
    finally:
        if run.poll() is None:
            run.kill()
    assert not Path(f"/tmp/leaktrace-0/{pid}.sock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to the user nobody")
def test_killing_leaktrace_kills_a_program_that_dropped_to_nobody(build_dir: Path,
                                                                  tmp_path: Path) -> None:
    """SIGKILL to `leaktrace run` kills the program (its parent-death signal), which the
    kernel clears when the program changes its user: a daemon that dropped to nobody lived
    on. The shim puts the signal back after the call."""
    nobody, exe = _nobody_and_dropping_program(build_dir)
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    os.chmod(work, 0o777)
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(work / "k.lt"), "--", str(exe), "wait"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, cwd=work)
    assert run.stdout is not None
    try:
        assert run.stdout.readline() == f"now uid {nobody.pw_uid}\n"
        pid = int(run.stdout.readline().split()[1])
        run.kill()
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists()
    finally:
        if run.poll() is None:
            run.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop to the user nobody")
def test_a_program_killed_after_dropping_to_nobody_leaves_no_empty_capture(
        build_dir: Path, tmp_path: Path) -> None:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    exe = compile_program("drop_privileges.c", build_dir, "-O0")
    work = tmp_path / "private"
    work.mkdir(mode=0o700)
    done = leaktrace("run", "-o", str(work / "d.lt"), "--", str(exe), "kill", cwd=work)
    assert done.returncode == -9, done.stderr
    assert "was killed by SIGKILL" in done.stderr and "which no process can catch" \
        in done.stderr, done.stderr
    # The capture's file was opened before the drop and never written: it is not left.
    assert list(work.iterdir()) == []


# ---- RLIMIT_AS -------------------------------------------------------------------------------

def test_a_program_at_its_soft_address_limit_gets_a_full_scan(build_dir: Path,
                                                              tmp_path: Path) -> None:
    exe = compile_program("address_limit.c", build_dir, "-O0")
    native = _native(str(exe), "soft", cwd=tmp_path)
    done = leaktrace("run", "-o", str(tmp_path / "as.lt"), "--", str(exe), "soft",
                     cwd=tmp_path)
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout) \
        == (14, "malloc failed after many blocks; carrying on\n"), done.stderr
    report = json_report(tmp_path / "as.lt")
    _one_leak(report, "address_limit.c", "before_limit", 48, "definitely lost")
    assert report["summary"]["definitely_lost"] == {"bytes": 48, "blocks": 1}
    kept = records_from(report, "address_limit.c", "fill")
    assert kept and sum(r["bytes"] for r in kept) > 32 << 20  # the blocks it kept
    kept_stacks = {r["stack_id"] for r in kept}
    assert {r["leak_kind"] for r in report["records"] if r["stack_id"] in kept_stacks} \
        == {"still reachable"}
    assert not [n for n in report["notes"] if "scan" in n]


def test_a_program_at_its_hard_address_limit_gets_its_blocks_and_the_reason(
        build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("address_limit.c", build_dir, "-O0")
    native = _native(str(exe), "hard", cwd=tmp_path)
    done = leaktrace("run", "-o", str(tmp_path / "as.lt"), "--", str(exe), "hard",
                     cwd=tmp_path)
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout) \
        == (14, "malloc failed after many blocks; carrying on\n"), done.stderr
    assert "may have crashed" not in done.stderr
    report = json_report(tmp_path / "as.lt")
    # No room for the scan's tables: every live block, without a leak kind, and why.
    _one_leak(report, "address_limit.c", "before_limit", 48, None)
    assert sum(r["bytes"] for r in records_from(report, "address_limit.c", "fill")) > 32 << 20
    assert report["summary"]["definitely_lost"] is None
    assert [n for n in report["notes"] if "no reachability scan at exit" in n
            and "RLIMIT_AS" in n] != []
    assert "no reachability scan at exit: no address space was left" in done.stderr


# ---- RLIMIT_NOFILE ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_program_that_uses_up_its_descriptors_runs_as_natively(build_dir: Path, tmp_path: Path,
                                                                 mode: str) -> None:
    # The shim's own descriptors sit above the limit the program sets, so it gets as many as
    # natively; at exit the soft limit may rise for the capture (the process is ending). A
    # lower hard limit has the shim open the capture's files and the memory map the scan reads
    # first (it left no capture, or one without roots, where the process may not raise it).
    exe = compile_program("lowered_limit.c", build_dir, "-O0")
    native = _native(str(exe), "nofile", mode, cwd=tmp_path)
    assert native.returncode == 0 and native.stdout.startswith("opened "), native.stderr
    done = leaktrace("run", "-o", str(tmp_path / "fd.lt"), "--", str(exe), "nofile", mode,
                     cwd=tmp_path)
    assert done.stdout == native.stdout, done.stderr
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    _one_leak(json_report(tmp_path / "fd.lt"), "lowered_limit.c", "before_limit", 48,
              "definitely lost")


@pytest.mark.parametrize("hard", [64, 128])
def test_a_program_that_uses_up_the_descriptors_it_was_started_with(
        build_dir: Path, tmp_path: Path, hard: int) -> None:
    """`ulimit -Sn 64` and a program that opens until EMFILE: it gets as many as natively
    (the shim's descriptors sit above the soft limit), and the capture is written at exit.
    With the hard limit at 64 too (`ulimit -n 64`, systemd's LimitNOFILE=64) there is no room
    above it: the shim's two (the control socket and its wake-up) sit below, so the program
    gets two fewer (valgrind keeps a dozen), and at exit the control thread ends and gives
    them back for the capture. There was no capture."""
    exe = compile_program("lowered_limit.c", build_dir, "-O0")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    argv = [str(exe), "nofile", "inherited"]
    native = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            preexec_fn=limited)
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "fd.lt"), "--", *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          preexec_fn=limited)
    assert native.stdout == "opened 61 descriptors\n"
    expected = "opened 59 descriptors\n" if hard == 64 else native.stdout
    assert (done.returncode, done.stdout) == (0, expected), done.stderr
    _one_leak(json_report(tmp_path / "fd.lt"), "lowered_limit.c", "before_limit", 48,
              "definitely lost")


@pytest.mark.parametrize("soft", [8192, 20000])
def test_a_shell_that_asks_for_descriptor_1000_gets_it(tmp_path: Path, soft: int) -> None:
    """Under a soft limit above 4096 the shim's control socket and wake-up sat at 1000 and
    1001, so `exec 1000>f` in a shell found the number taken and its echo went to the shim's
    socket ("Transport endpoint is not connected"). They sit above the soft limit now (at 3/4
    of it when soft and hard are equal), up to a limit of 65536."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < soft:
        pytest.skip(f"the hard descriptor limit ({hard}) is below {soft}")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    script = "exec 1000>f; echo hi >&1000; exec 1000>&-; cat f; exec 3>g; echo $?"
    native = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, preexec_fn=limited)
    (tmp_path / "f").unlink()
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "fd.lt"), "--", "bash", "-c",
                           script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          preexec_fn=limited)
    assert native.stdout == "hi\n0\n", native.stderr
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr


# ---- RLIMIT_FSIZE ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_program_that_limits_its_file_sizes_is_not_killed(build_dir: Path, tmp_path: Path,
                                                            mode: str) -> None:
    # Writing the capture past RLIMIT_FSIZE raised SIGXFSZ, which killed the program at exit.
    # At exit the soft limit rises to the hard one. A hard limit of 0, after which not one
    # byte may be written, had no capture: now it is written when the program sets it.
    exe = compile_program("lowered_limit.c", build_dir, "-O0")
    native = _native(str(exe), "fsize", mode, cwd=tmp_path)
    assert (native.returncode, native.stdout) == (0, "limited\n"), native.stderr
    done = leaktrace("run", "-o", str(tmp_path / "fs.lt"), "--", str(exe), "fsize", mode,
                     cwd=tmp_path)
    assert done.stdout == native.stdout, done.stderr
    assert "SIGXFSZ" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    report = json_report(tmp_path / "fs.lt")
    _one_leak(report, "lowered_limit.c", "before_limit", 48, "definitely lost")
    stopped = [n for n in report["notes"] if "file size limit (RLIMIT_FSIZE) to 0" in n]
    assert bool(stopped) == (mode == "hard"), report["notes"]
    if mode == "hard":
        assert "when the program set its file size limit to 0" in done.stderr, done.stderr


def _under_address_limit(limit: int, argv: list[str],
                         cwd: Path) -> subprocess.CompletedProcess[str]:
    """`leaktrace run`, or the program alone, with RLIMIT_AS lowered to `limit` (inherited)."""

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd,
                          preexec_fn=low_limit)


def test_a_program_under_a_low_address_limit_is_traced(build_dir: Path, tmp_path: Path) -> None:
    # The shim maps its tables as they grow: about 25 MiB of address space at start-up, where
    # it reserved 950 MiB before (a program under `ulimit -v 200M` was not traced at all).
    exe = compile_program("exec_self.c", build_dir, "-O0")
    done = _under_address_limit(200 << 20, [*LEAKTRACE, "run", "-o", str(tmp_path / "low.lt"),
                                            "--", str(exe), "second"], tmp_path)
    if "Traceback" in done.stderr or "OpenBLAS" in done.stderr:
        pytest.skip(f"the launcher itself does not run under this limit here: {done.stderr}")
    assert (done.returncode, done.stdout) == (12, "second image\n"), done.stderr
    assert "warning" not in done.stderr, done.stderr
    report = json_report(tmp_path / "low.lt")
    _one_leak(report, "exec_self.c", "second_image", 222, "still reachable")  # its `sink`
    assert report["counters"].get("dropped_stacks", 0) == 0


def test_a_program_that_leaves_the_shim_no_room_runs_as_natively(build_dir: Path,
                                                                 tmp_path: Path) -> None:
    # Its image takes all but about 20 MiB of its limit: the shim may not even start, or
    # start without room for backtraces; the program must not notice either way.
    limit = 200 << 20
    exe = compile_program("large_image.c", build_dir, "-O0", ["-DIMAGE_MIB=180"])
    native = _under_address_limit(limit, [str(exe)], tmp_path)
    assert (native.returncode, native.stdout) == (12, "ran with a 180 MiB image\n"), native.stderr
    done = _under_address_limit(limit, [*LEAKTRACE, "run", "-o", str(tmp_path / "big.lt"),
                                        "--", str(exe)], tmp_path)
    if "OpenBLAS" in done.stderr:
        pytest.skip(f"the launcher itself does not run under this limit here: {done.stderr}")
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr
    assert "Traceback" not in done.stderr
    if (tmp_path / "big.lt").exists():  # the block, with or without its backtrace
        report = json_report(tmp_path / "big.lt")
        assert [(r["blocks"], r["bytes"]) for r in report["records"]] == [(1, 222)]
    else:
        assert "(the address-space limit RLIMIT_AS, `ulimit -v`, is 200 MiB" in done.stderr


@pytest.mark.parametrize(("change", "seen"), [
    ("LD_PRELOAD=$LIB", "[$LIB]"),           # a wrapper preloads a library of its own
    ("unset LD_PRELOAD", "[]"),              # or clears the list it was given
    (":", "[$START]"),                       # or leaves it: the list it started with
])
def test_an_exec_gets_the_ld_preload_the_program_left(tmp_path: Path, change: str,
                                                      seen: str) -> None:
    """The image a program execs into gets its own LD_PRELOAD as the program left it, with
    the shim in front (still traced); the exec put back the list leaktrace started it with,
    so eatmydata- or faketime-style wrappers lost their library."""
    lib = "/lib/x86_64-linux-gnu/libdl.so.2"
    start = "/lib/x86_64-linux-gnu/libm.so.6"
    script = (f"LIB={lib}; START={start}; {change}; export LD_PRELOAD 2>/dev/null; "
              "exec sh -c 'echo \"[$LD_PRELOAD]\"; grep -c libleaktrace_shim /proc/$$/maps'")
    env = dict(os.environ, LD_PRELOAD=start)
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "c.lt"), "--report-file",
                           os.devnull, "--", "sh", "-c", script], capture_output=True, text=True,
                          env=env, check=False)
    native = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                            check=False)
    expected = seen.replace("$LIB", lib).replace("$START", start)
    assert native.stdout.splitlines()[0] == expected
    lines = done.stdout.splitlines()
    assert lines[0] == expected, done.stderr
    assert int(lines[1]) > 0  # the shim is in the new image: still traced


def test_an_address_limit_too_low_for_the_report_keeps_the_program_and_its_status(
        tmp_path: Path) -> None:
    """`ulimit -v` 100 MB: the program runs to its end as natively (numpy, which OpenBLAS
    would take down with the launcher and the program, is not loaded while it runs); the
    report cannot be made, which one line says, and the program's status is kept."""
    argv = ["sh", "-c", "sleep 0.5; echo done; exit 3"]
    done = _under_address_limit(100 << 20, [*LEAKTRACE, "run", "-o", str(tmp_path / "v.lt"),
                                            "--", *argv], tmp_path)
    assert (done.returncode, done.stdout) == (3, "done\n"), done.stderr
    assert "Traceback" not in done.stderr and "OpenBLAS" not in done.stderr, done.stderr
    [line] = [text for text in done.stderr.splitlines() if "no report" in text]
    assert "RLIMIT_AS" in line and str(tmp_path / "v.lt") in line
    assert (tmp_path / "v.lt").exists()


# ---- a fatal signal at the very start of the final capture ----------------------------------

POOL_SCRIPT = """
import multiprocessing as mp
def square(x): return x * x
if __name__ == "__main__":
    mp.set_start_method("fork")
    for _ in range(6):
        pool = mp.Pool(4)
        assert sum(pool.map(square, range(100))) == 328350
        pool.terminate()
    print("done")
"""


@pytest.mark.parametrize("round_", [1, 2])
def test_a_worker_terminated_as_it_exits_keeps_its_capture(tmp_path: Path, round_: int) -> None:
    """multiprocessing's Pool.terminate() sends SIGTERM to workers that may be exiting already.
    One that got it between claiming its final capture and starting to write it took the
    capture for another thread's, waited 30 s for it, and died without one (2 of 5 runs of
    this script before). The claiming thread now defers the signal until its capture is
    written. A race: each round has 24 workers exiting while they are sent SIGTERM."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    started = time.monotonic()
    done = leaktrace("run", "--follow-children", "--", sys.executable, str(script), cwd=tmp_path)
    took = time.monotonic() - started
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
    assert "without a capture" not in done.stderr, done.stderr
    assert "24 child process(es) traced" in done.stderr, done.stderr
    assert took < 25, f"{took:.1f} s: a worker waited for a capture it had claimed itself"


def test_a_child_terminated_as_soon_as_it_is_forked_has_its_capture(build_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A SIGTERM sent to a child as soon as fork() returns came while the shim's fork handler
    still ran in the child: the child was neither the traced process nor its own yet, and died
    without a capture or a notice (0 to 3 of the 40 were traced). Signals now wait for the
    handler (a few microseconds), then come as natively."""
    exe = compile_program("terminated_children.c", build_dir, "-O0")
    native = _native(str(exe), "40", cwd=tmp_path)
    assert native.stdout == "40 of 40 children ended by SIGTERM\n", native.stderr
    done = leaktrace("run", "--follow-children", "--", str(exe), "40", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    assert "40 child process(es) traced" in done.stderr, done.stderr
    assert "without a capture" not in done.stderr, done.stderr
