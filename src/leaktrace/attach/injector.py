"""Load the shim into a running process and call leaktrace_attach() in it, without a
debugger: seize one thread at a safe point (the others keep running, so a lock they hold is
released as usual), make it call dlopen(shim) then leaktrace_attach(config), and put it back
exactly as it was. docs/attach.md tells the whole story."""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from leaktrace.attach import ptrace
from leaktrace.attach.elf_functions import ElfFunctions, read_functions
from leaktrace.attach.preflight import describe, permission_refused
from leaktrace.attach.process_info import (
    MemoryMap,
    current_syscall,
    status_fields,
    thread_ids,
)
from leaktrace.attach.ptrace import PtraceError, Registers
from leaktrace.attach.remote_call import ProcessExited, call_function, read_string
from leaktrace.attach.return_home import (
    Home,
    Slot,
    call_returning_home,
    find_restorer,
    in_timed_sleep,
    resumed_registers,
    signal_mask,
    usable_fp_state,
)
from leaktrace.attach.safe_point import unsafe_reason
from leaktrace.attach.signal_watch import DeferredSignals, SignalWatch
from leaktrace.attach.target_libraries import (
    LIBC,
    OLD_LIBDL,
    SHIM,
    LoadedLibrary,
    UnsafeCode,
    find_library,
    unsafe_code,
)
from leaktrace.attach.unwind import Unwinder
from leaktrace.errors import LeaktraceError
from leaktrace.invocation import leaktrace_command
from leaktrace.proc_view import proc_dir

SAFE_POINT_TIMEOUT = 2.0
# On a loaded machine a round (stop and look at every thread) takes longer, and fewer rounds
# fit in the timeout: the search also goes on until it has made this many, up to the limit.
SAFE_POINT_MIN_ROUNDS = 100
SAFE_POINT_LIMIT = 10.0
RETRY_PAUSE = 0.005  # let the threads run a few ms between rounds
STOP_TIMEOUT = 1.0  # a thread that ignores PTRACE_INTERRUPT this long is in the kernel's way
RTLD_NOW = 0x2
RTLD_DLOPEN = 0x80000000  # __RTLD_DLOPEN: what __libc_dlopen_mode needs to act as dlopen

# System calls Linux never restarts after a ptrace stop (signal(7)): the stopped thread's
# call returns EINTR to the program, as under gdb or strace. Such threads are tried last.
NEVER_RESTARTED = {232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2", 65: "semop",
                   220: "semtimedop", 128: "rt_sigtimedwait", 208: "io_getevents",
                   333: "io_pgetevents", 69: "msgsnd", 70: "msgrcv"}

ATTACH_OK = 0
ATTACH_PRELOADED = -1
ATTACH_NO_CONFIG = -2
ATTACH_NO_TABLES = -3
ATTACH_NO_SOCKET = -1000  # minus the errno of the call that failed (shim/attach.c)

Log = Callable[[str], None]


@dataclass
class Injection:
    """What happened, for --verbose: the thread used and the time of each step."""

    thread: int = 0
    shim_path: str = ""
    steps: list[tuple[str, float]] = field(default_factory=list)  # (step, seconds)
    # Threads whose system call returned EINTR to the program because we stopped them.
    interrupted: list[tuple[int, str]] = field(default_factory=list)  # (thread, call)


@dataclass(frozen=True)
class _Dlopen:
    address: int
    flags: int
    dlerror: int | None  # address of dlerror(), to say why dlopen failed


def inject(pid: int, shim: str, config_path: str, memory: MemoryMap, log: Log) -> Injection:
    """dlopen the shim in `pid` and run leaktrace_attach(config_path) there. The caller
    should hold SIGINT and SIGTERM back (a SignalWatch), so that the target is never left
    half-injected."""
    libc = find_library(pid, memory, LIBC)
    if libc is None:
        raise LeaktraceError(f"{describe(pid)} has no libc.so.6 mapped")
    try:
        memory_file = os.open(f"{proc_dir(pid)}/mem", os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        raise permission_refused(pid) from None
    except FileNotFoundError:
        raise ProcessExited(f"process {pid} exited") from None
    # A tracee's stop sends SIGCHLD: watching it wakes every wait at once. Every other
    # signal that would end or stop leaktrace waits until the thread is restored.
    with DeferredSignals(), SignalWatch({signal.SIGCHLD}) as watch:
        try:
            return _Injector(pid, memory_file, watch.wait, log).run(shim, config_path, memory,
                                                                   libc)
        except PtraceError as e:
            if e.errno == errno.ESRCH:
                raise ProcessExited(f"process {pid} exited during attach") from None
            raise LeaktraceError(f"ptrace failed on {describe(pid)}: {e.strerror}") from None
        finally:
            os.close(memory_file)


class _Injector:
    def __init__(self, pid: int, memory_file: int, pause: ptrace.Pause, log: Log) -> None:
        self.pid = pid
        self.memory_file = memory_file
        self.pause = pause
        self.log = log
        self.result = Injection()
        self.clock = time.monotonic()
        self.shim_functions: ElfFunctions | None = None
        self.restorer: int | None = None
        self.home: Home | None = None  # set while calls bring the thread back themselves
        self.went_home = False  # a call ended through rt_sigreturn: restore as it did

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.result.steps.append((name, now - self.clock))
        self.clock = now

    def run(self, shim: str, config_path: str, memory: MemoryMap,
            libc: LoadedLibrary) -> Injection:
        pid = self.pid
        dlopen = _find_dlopen(pid, memory, libc)
        unsafe = unsafe_code(pid, memory, libc)
        # The shim already loaded by an earlier attach: open that same file again (a second
        # copy would be a second set of hooks).
        loaded_shim = find_library(pid, memory, SHIM)
        self.result.shim_path = loaded_shim.path if loaded_shim else shim
        # Read before a thread is stopped: every millisecond between the stop and the restore
        # is one in which leaktrace's death (SIGKILL) would leave the thread mid-call.
        self.shim_functions = read_functions(f"{proc_dir(pid)}/root{self.result.shim_path}")
        if self.shim_functions.address("leaktrace_attach") is None:
            raise LeaktraceError(f"{self.result.shim_path} has no leaktrace_attach: is it an "
                                 "older shim?")
        # Calls whose end brings the thread back by itself (return_home.py): leaktrace's
        # SIGKILL during them no longer takes the target with it.
        self.restorer = find_restorer(libc)
        self.step("read libc's symbols")
        self.log(f"stopping a thread of process {pid} at a safe point")
        tid, saved = self._seize_at_safe_point(unsafe)
        self.result.thread = tid
        self.step("stopped a thread at a safe point")
        fp_state: bytes | None = None
        try:
            fp_state = ptrace.get_fp_state(tid)
            mask = signal_mask(pid, tid)
            if self.restorer is not None and usable_fp_state(fp_state) and mask is not None:
                assert fp_state is not None
                self.home = Home(self.restorer, fp_state, mask)
                self.log("the injected calls return through rt_sigreturn: they bring the "
                         "thread back even if leaktrace dies meanwhile")
            status = self._load_and_attach(tid, saved, dlopen, config_path)
        finally:
            # After rt_sigreturn the thread is at a system call's exit, where the kernel
            # restarts nothing: the restart is in the registers; else the kernel does it.
            back_by_itself = self.went_home and not in_timed_sleep(saved)
            self._restore(tid, resumed_registers(saved) if back_by_itself else saved, fp_state)
            self.step("restored the thread")
        if status == ATTACH_PRELOADED:
            raise LeaktraceError(f"{describe(pid)} already runs under leaktrace (started with "
                                 f"leaktrace run): use `{leaktrace_command()} status {pid}` and "
                                 f"`{leaktrace_command()} report --pid {pid}` instead")
        if status == ATTACH_NO_CONFIG:
            raise LeaktraceError(f"{describe(pid)} could not read the settings file "
                                 f"{config_path} (its user must be able to read it)")
        if ATTACH_NO_SOCKET - 4096 < status <= ATTACH_NO_SOCKET:
            reason = os.strerror(ATTACH_NO_SOCKET - status)
            raise LeaktraceError(
                f"{describe(pid)} cannot make its control socket "
                f"({reason}; a seccomp filter may deny socket()): without it the session "
                f"could not be detached, so nothing was attached")
        if status == ATTACH_NO_TABLES:
            raise LeaktraceError(f"{describe(pid)} has no memory left for leaktrace's tables")
        if status != ATTACH_OK:
            raise LeaktraceError(f"leaktrace_attach() in {describe(pid)} returned {status}")
        return self.result

    def _seize_at_safe_point(self, unsafe: UnsafeCode) -> tuple[int, Registers]:
        """Seize and stop one thread that is neither in the allocator nor in the loader; try
        each thread in turn, letting them all run a few ms between rounds."""
        pid = self.pid
        started = time.monotonic()
        rounds = 0
        reasons: dict[int, str] = {}
        unwinder = Unwinder(pid)
        while True:
            memory = MemoryMap.read(pid)  # new threads bring new stacks
            tids = thread_ids(pid)
            if not tids:
                raise ProcessExited(f"process {pid} exited")
            calls = {tid: current_syscall(pid, tid) for tid in tids}
            for tid in sorted(tids, key=lambda t: calls[t] in NEVER_RESTARTED):
                if not _stoppable(pid, tid):
                    reasons[tid] = "in uninterruptible sleep or exiting"
                    continue
                try:
                    regs = self._seize_and_stop(tid)
                except PtraceError as e:
                    if e.errno == errno.ESRCH:
                        continue  # the thread ended meanwhile
                    raise
                call = calls[tid]
                interrupted = (tid, NEVER_RESTARTED.get(call or -1, ""))
                if interrupted[1] and regs.orig_rax == call and (
                        interrupted not in self.result.interrupted):
                    self.result.interrupted.append(interrupted)
                try:
                    reason = unsafe_reason(regs, memory, unsafe, self.memory_file, unwinder)
                except BaseException:
                    ptrace.detach(tid)  # untouched: let it go before giving up
                    raise
                if reason is None:
                    return tid, regs
                reasons[tid] = reason
                ptrace.detach(tid)
            rounds += 1
            waited = time.monotonic() - started
            if (waited > SAFE_POINT_TIMEOUT and rounds >= SAFE_POINT_MIN_ROUNDS) or (
                    waited > SAFE_POINT_LIMIT):
                shown = "; ".join(f"thread {t}: {r}" for t, r in list(reasons.items())[:3])
                raise LeaktraceError(
                    f"no thread of {describe(pid)} reached a safe point within {waited:.1f} s "
                    f"and {rounds} rounds ({shown}): it is always busy in the allocator or "
                    "the dynamic loader; try again")
            if reasons:
                self.log(f"no thread at a safe point yet ({next(iter(reasons.values()))}); "
                         "retrying")
            reasons.clear()
            time.sleep(RETRY_PAUSE)

    def _seize_and_stop(self, tid: int) -> Registers:
        try:
            ptrace.seize(tid)
        except PtraceError as e:
            if e.errno == errno.EPERM:
                raise permission_refused(self.pid) from None
            raise
        ptrace.interrupt(tid)
        deadline = time.monotonic() + STOP_TIMEOUT  # for the loop: signals may keep coming
        while True:
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ptrace.WaitTimeout()
                stop = ptrace.wait_for_stop(tid, left, self.pause)
            except ptrace.WaitTimeout:
                raise LeaktraceError(f"thread {tid} of {describe(self.pid)} did not stop "
                                     f"within {STOP_TIMEOUT:g} s") from None
            if stop.exited:
                raise PtraceError(errno.ESRCH, "the thread exited")
            if stop.is_event_stop:
                return ptrace.get_registers(tid)
            ptrace.resume(tid, stop.signal)  # a signal arrived first: the program gets it
            # Any stop clears the interrupt still pending: asked again, it comes before the
            # next signal (under a timer's steady stream of them it never came).
            ptrace.interrupt(tid)

    def _call(self, tid: int, saved: Registers, function: int,
              arguments: list[int | bytes]) -> int:
        return call_function(tid, self.memory_file, saved, function, arguments, self.pause)

    def _call_home(self, tid: int, saved: Registers, function: int,
                   arguments: list[int | bytes | Slot]) -> list[int] | None:
        """A call that brings the thread back by itself; None when that cannot be (then the
        old way is used from here on)."""
        if self.home is None:
            return None
        results = call_returning_home(tid, self.memory_file, saved, self.home, function,
                                      arguments, self.pause)
        if results is None:
            self.log("the kernel refused the signal frame: injected calls return to "
                     "leaktrace from here on")
            self.home = None
        else:
            self.went_home = True
        return results

    def _load_and_attach(self, tid: int, saved: Registers, dlopen: _Dlopen,
                         config_path: str) -> int:
        pid, shim_path = self.pid, self.result.shim_path
        assert self.shim_functions is not None
        attach_status = self.shim_functions.address("leaktrace_attach_status")
        if attach_status is not None and self._call_home(
                tid, saved, dlopen.address, [os.fsencode(shim_path), dlopen.flags]) is not None:
            # dlopen's handle went with RAX: the shim's load address is read from the map.
            loaded = find_library(pid, MemoryMap.read(pid), SHIM, self.shim_functions)
            if loaded is not None and loaded.path == shim_path:
                self.step("dlopen(shim)")
                results = self._call_home(tid, saved, loaded.load_bias + attach_status,
                                          [os.fsencode(config_path), Slot()])
                if results is not None:
                    self.step("leaktrace_attach()")
                    status = results[0] & 0xFFFFFFFF
                    return status - (1 << 32) if status >= 1 << 31 else status
        handle = self._call(tid, saved, dlopen.address, [os.fsencode(shim_path), dlopen.flags])
        if handle == 0:
            why = ""
            if dlopen.dlerror is not None:
                message = self._call(tid, saved, dlopen.dlerror, [])
                why = f": {read_string(self.memory_file, message)}" if message else ""
            raise LeaktraceError(f"{describe(pid)} could not load the shim {shim_path}{why}")
        self.step("dlopen(shim)")
        # dlopen's handle is the shim's struct link_map, whose first field is its load bias:
        # one 8-byte read instead of parsing /proc/PID/maps while the thread waits.
        try:
            bias = int.from_bytes(os.pread(self.memory_file, 8, handle), "little")
        except OSError:
            raise LeaktraceError(f"cannot read the shim's link map in {describe(pid)}") from None
        assert self.shim_functions is not None
        attach = bias + (self.shim_functions.address("leaktrace_attach") or 0)
        rax = self._call(tid, saved, attach, [os.fsencode(config_path)])
        self.step("leaktrace_attach()")
        status = rax & 0xFFFFFFFF  # an int: the low half of RAX, sign-extended
        return status - (1 << 32) if status >= 1 << 31 else status

    def _restore(self, tid: int, saved: Registers, fp_state: bytes | None) -> None:
        """Put the thread back as it was (its registers, FP state, and with orig_rax the
        system call it was in, which the kernel restarts) and let it go."""
        try:
            try:
                ptrace.set_registers(tid, saved)
            except PtraceError as e:
                if e.errno != errno.ESRCH:
                    raise
                # Still running our call (it timed out): stop it where it is, then restore.
                ptrace.interrupt(tid)
                ptrace.wait_for_stop(tid, STOP_TIMEOUT, self.pause)
                ptrace.set_registers(tid, saved)
            if fp_state is not None:
                ptrace.set_fp_state(tid, fp_state)
            ptrace.detach(tid)
        except (PtraceError, ptrace.WaitTimeout):
            pass  # the thread is gone (the process exited): nothing left to restore


def _find_dlopen(pid: int, memory: MemoryMap, libc: LoadedLibrary) -> _Dlopen:
    address = libc.address_of("dlopen")  # glibc >= 2.34: dlopen lives in libc
    if address is not None:
        return _Dlopen(address, RTLD_NOW, libc.address_of("dlerror"))
    libdl = find_library(pid, memory, OLD_LIBDL)
    if libdl is not None and libdl.address_of("dlopen") is not None:
        return _Dlopen(libdl.address_of("dlopen") or 0, RTLD_NOW, libdl.address_of("dlerror"))
    address = libc.address_of("__libc_dlopen_mode")
    if address is not None:
        return _Dlopen(address, RTLD_NOW | RTLD_DLOPEN, None)
    raise LeaktraceError(f"{describe(pid)}: no dlopen or __libc_dlopen_mode in {libc.path}")


def _stoppable(pid: int, tid: int) -> bool:
    try:
        state = status_fields(pid, tid).get("State", "?")[:1]
    except OSError:
        return False
    return state not in ("D", "Z", "X")
