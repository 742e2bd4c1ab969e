"""Both ends of an attach session besides the injection itself: the settings file the shim
reads in leaktrace_attach(), where its control socket will be, whether the process is
already collecting, and detaching through the socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass

from leaktrace.attach.injector import Injection, Log, inject
from leaktrace.attach.process_info import MemoryMap, real_gid, real_uid
from leaktrace.control.client import (
    CAPTURE_TIMEOUT,
    ControlError,
    NotTraced,
    control_dir,
    listening_socket_dir,
    process_stopped,
    send_command,
    socket_path,
)
from leaktrace.errors import LeaktraceError
from leaktrace.invocation import leaktrace_command
from leaktrace.launcher.notifications import detached_sessions
from leaktrace.nameless_files import NamelessFile


def control_dir_for(pid: int) -> str:
    """Where the attached process's socket is or goes; `attach` tells the shim, `detach`
    looks there. The directory of the socket it already listens on (the shim opens one once
    and keeps it: an earlier attach, or `leaktrace run`); else our own directory, unless root
    attaches to another user's process: the shim only uses a directory its process owns, so
    then the default of that user."""
    existing = listening_socket_dir(pid)
    if existing is not None:
        return existing
    if os.environ.get("LEAKTRACE_CONTROL_DIR"):
        return control_dir()
    try:
        owner = real_uid(pid)
    except OSError:
        return control_dir()
    return control_dir() if owner == os.getuid() else f"/tmp/leaktrace-{owner}"


class NoticeFile:
    """Where the shim announces its capture at exit and a detach from elsewhere (the lines
    of launcher/notifications.py): a file without a name when the process runs as we do
    (nothing stays, even if leaktrace is killed), else a named file in `directory` given to
    the process's user (root attaching), removed at close."""

    def __init__(self, pid: int, directory: str) -> None:
        self._nameless: NamelessFile | None = None
        if same_user(pid):
            self._nameless = NamelessFile(directory)
            self.path = self._nameless.path
            return
        fd, self.path = tempfile.mkstemp(prefix="leaktrace-notify-", dir=directory)
        try:
            give_to_owner_of(fd, pid)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._nameless is not None:
            self._nameless.close()
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


@dataclass(frozen=True)
class AttachSettings:
    """What the shim is told; the names are those of the preload-mode environment."""

    control_dir: str
    capture_dir: str  # default-named captures: leaktrace-<program>.<pid>.lt
    output: str | None = None  # the exact capture path (-o)
    notify: str | None = None  # where the shim announces each capture it writes
    max_depth: int | None = None
    interval: float | None = None  # seconds between snapshots (the shim's default: 1)
    sample_bytes: int | None = None  # sampling mode's mean bytes between samples
    session: str | None = None  # the session's name: `detach NAME` ends this session only

    def lines(self) -> list[str]:
        settings = {
            "LEAKTRACE_CONTROL_DIR": self.control_dir,
            "LEAKTRACE_DIR": self.capture_dir,
            "LEAKTRACE_OUTPUT": self.output,
            "LEAKTRACE_NOTIFY": self.notify,
            "LEAKTRACE_MAX_DEPTH": None if self.max_depth is None else str(self.max_depth),
            "LEAKTRACE_INTERVAL": None if self.interval is None else f"{self.interval:g}",
            "LEAKTRACE_SAMPLE": None if self.sample_bytes is None else str(self.sample_bytes),
            "LEAKTRACE_SESSION": self.session,
        }
        lines = []
        for name, value in settings.items():
            if value is None:
                continue
            if "\n" in value:
                raise LeaktraceError(f"{value!r} contains a newline: choose another path")
            lines.append(f"{name}={value}")
        return lines


def check_control_dir(directory: str, pid: int) -> None:
    """The shim only opens its socket in a directory that is its user's, not a symbolic
    link and closed to others (creating it 0700 if missing): without a socket, nothing could
    end the attach session but the process's exit, so refuse before injecting."""
    uid = real_uid(pid)
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        parent = os.path.dirname(directory.rstrip("/")) or "/"
        if not os.path.isdir(parent):
            raise LeaktraceError(f"the control directory's parent {parent} does not exist "
                                 "(set LEAKTRACE_CONTROL_DIR)") from None
        return  # the shim creates it
    if not stat.S_ISDIR(st.st_mode):
        raise LeaktraceError(f"the control directory {directory} is not a directory (a "
                             "symbolic link?): set LEAKTRACE_CONTROL_DIR")
    if st.st_uid != uid or st.st_mode & 0o077:
        raise LeaktraceError(f"the control directory {directory} must belong to uid {uid} (the "
                             "process's user) and be closed to others (chmod 700), or the "
                             "process could not open its socket: fix it or set "
                             "LEAKTRACE_CONTROL_DIR")


def check_capture_dir(directory: str, pid: int, what: str) -> None:
    """The target writes the capture, with its own uid: refuse a directory it cannot write
    (judged from the mode bits; ACLs and supplementary groups are not looked at)."""
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise LeaktraceError(f"{what} {directory} does not exist") from None
    uid, gid = real_uid(pid), real_gid(pid)
    if uid == 0:
        return
    if st.st_uid == uid:
        allowed = st.st_mode & 0o300 == 0o300
    elif st.st_gid == gid:
        allowed = st.st_mode & 0o030 == 0o030
    else:
        allowed = st.st_mode & 0o003 == 0o003
    if not allowed:
        raise LeaktraceError(f"process {pid} runs as uid {uid}, which cannot write to {what} "
                             f"{directory}: use -o FILE in a directory it can write")


def same_user(pid: int) -> bool:
    """The target runs as we do: it can open our nameless files through /proc/<us>/fd."""
    try:
        return real_uid(pid) == os.getuid()
    except OSError:
        return False


def write_settings(settings: AttachSettings, pid: int, directory: str) -> NamelessFile | str:
    """The settings file, readable by the target's user and nobody else: a file without a
    name when the target runs as we do (nothing can be left behind), else a named file given
    to its user (root attaching to another user's process), removed after the injection."""
    text = ("\n".join(settings.lines()) + "\n").encode()
    if same_user(pid):
        nameless = NamelessFile(directory)
        nameless.write(text)
        return nameless
    fd, path = tempfile.mkstemp(prefix="leaktrace-attach-", suffix=".conf", dir=directory)
    try:
        os.write(fd, text)
        give_to_owner_of(fd, pid)
    finally:
        os.close(fd)
    return path


def _readable_by_anyone(path: str) -> bool:
    """The file is world-readable and every directory above it world-searchable."""
    try:
        if not os.stat(path).st_mode & stat.S_IROTH:
            return False
        parent = os.path.dirname(os.path.abspath(path))
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == "/":
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def shim_loadable_by(pid: int, shim: str, memory: MemoryMap, config_dir: str) -> str:
    """The shim path the target can open. Root attaching to another user's process, with
    leaktrace installed where that user cannot read (a virtual environment in a 0700 home or
    temporary directory), gets a world-readable copy in `config_dir`; the copy keeps its
    name and stays, so a later attach loads the same file again, not a second shim."""
    loaded = [m.path for m in memory.mappings if os.path.basename(m.path) == os.path.basename(shim)]
    if loaded:
        return loaded[0]  # already in the process: dlopen must name that file
    if real_uid(pid) == os.getuid() or _readable_by_anyone(shim):
        return shim
    # Same file name (the injector finds the shim in the target's memory map by it).
    directory = os.path.join(config_dir, f"leaktrace-shim-{os.getuid()}")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if os.lstat(directory).st_uid != os.getuid() or not stat.S_ISDIR(os.lstat(directory).st_mode):
        raise LeaktraceError(f"{directory} is not a directory of ours: cannot place the shim "
                             "where the target's user can read it")
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, os.path.basename(shim))
    source = os.stat(shim)
    with contextlib.suppress(OSError):
        existing = os.stat(copy)
        if existing.st_size == source.st_size and existing.st_mtime == source.st_mtime:
            return copy
    temporary = f"{copy}.{os.getpid()}"
    shutil.copy2(shim, temporary)
    os.chmod(temporary, 0o644)
    os.replace(temporary, copy)
    return copy


def attach(pid: int, shim: str, settings: AttachSettings, memory: MemoryMap,
           config_dir: str, log: Log) -> Injection:
    """Inject the shim and start collecting with these settings; check that its control
    socket answers (detach needs it). `memory` comes from preflight.check_attachable."""
    shim = shim_loadable_by(pid, shim, memory, config_dir)
    config = write_settings(settings, pid, config_dir)
    try:
        injection = inject(pid, shim, config if isinstance(config, str) else config.path,
                           memory, log)
    finally:  # leaktrace_attach() has read it (or never will)
        if isinstance(config, str):
            os.unlink(config)
        else:
            config.close()
    if collecting_status(pid, settings.control_dir) is None:
        raise LeaktraceError(f"process {pid} is collecting but its control socket "
                             f"{socket_path(pid, settings.control_dir)} does not answer: it "
                             "will write its capture when it exits")
    return injection


def set_interval(pid: int, settings: AttachSettings) -> None:
    """The shim reads LEAKTRACE_INTERVAL only when its control thread starts, at the first
    attach: the control command also works for later ones."""
    if settings.interval is not None:
        send_command(pid, "interval", f"{settings.interval:g}",
                     directory=settings.control_dir)


def give_to_owner_of(fd: int, pid: int) -> None:
    """Root attaching to another user's process: that process must be able to use the file."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        uid, gid = real_uid(pid), real_gid(pid)
        if uid != os.getuid():
            os.fchown(fd, uid, gid)


def collecting_status(pid: int, directory: str) -> dict[str, object] | None:
    """The shim's status answer if `pid` has a working control socket there, else None."""
    if not os.path.exists(socket_path(pid, directory)):
        return None
    try:
        return send_command(pid, "status", directory=directory, timeout=2.0)
    except ControlError:
        return None


@dataclass(frozen=True)
class Detached:
    capture: str
    attached_at: float | None  # time.time() when collection started, if the shim said
    detached_at: float
    tables_released: bool = False  # the shim unmapped its tables (docs/attach.md, "After detach")


class SessionEnded(LeaktraceError):
    """The attach session was ended by `leaktrace detach` (which printed its report); the
    process may be in another session since."""


def detach(pid: int, directory: str, session: str | None = None, *,
           scan: bool = False) -> Detached:
    """Send `detach`: the shim restores the program's GOT, writes its capture and stops
    collecting. With `session`, only that session is ended (SessionEnded if it is over). With
    `scan`, the capture gets a reachability scan first (`detach-scan`: leak kinds). Raises a
    one-line LeaktraceError when that cannot happen."""
    if process_stopped(pid):
        raise LeaktraceError(f"process {pid} is stopped (SIGSTOP, Ctrl-Z or a debugger) and "
                             f"cannot detach: resume it (kill -CONT {pid}), then run "
                             f"`{leaktrace_command()} detach {pid}`")
    try:
        status = send_command(pid, "status", directory=directory)
    except NotTraced:
        if session is not None:
            raise SessionEnded(f"process {pid} is not attached any more") from None
        raise LeaktraceError(f"process {pid} is not attached: no leaktrace control socket at "
                             f"{socket_path(pid, directory)}") from None
    if session is not None and status.get("session") != session:
        raise SessionEnded(f"process {pid} is in another attach session now")
    uptime = status.get("uptime_ms")
    attached_at = time.time() - uptime / 1000 if isinstance(uptime, int) else None
    answer = send_command(pid, "detach-scan" if scan else "detach", session, directory=directory,
                          timeout=CAPTURE_TIMEOUT)
    detached_at = time.time()
    capture = answer.get("capture")
    if not isinstance(capture, str) or not capture:
        raise LeaktraceError(f"process {pid} detached but could not write its capture (can "
                             "its user write to the capture directory? see -o)")
    return Detached(capture, attached_at, detached_at, answer.get("tables_released") is True)


class OwnSession:
    """Whether the session a `leaktrace attach` started is still the process's, looked at
    cheaply while it waits: the socket file's identity, then the notify file and the
    process's answer only once that changed. `leaktrace detach` writes `detached` to the
    notify file and removes the socket; a later attach makes a new socket (so does the shim
    after the program closed its descriptor, in the same session)."""

    def __init__(self, pid: int, directory: str, name: str, notices: str) -> None:
        self.pid, self.directory, self.name, self.notices = pid, directory, name, notices
        self.socket = self._socket_identity()

    def _socket_identity(self) -> tuple[int, int] | None:
        try:
            st = os.lstat(socket_path(self.pid, self.directory))
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def ended_by_detach(self) -> bool:
        """True once a detach ended this session; false while it runs or when the process
        is exiting (its socket goes first)."""
        current = self._socket_identity()
        if current == self.socket:
            return False
        if self.name in detached_sessions(self.notices, self.pid):
            return True
        if current is None:
            return False
        status = collecting_status(self.pid, self.directory)
        if status is None:
            return False
        if status.get("session") == self.name:
            self.socket = current
            return False
        return True
