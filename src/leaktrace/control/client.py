"""The control socket client: where a process's socket is, one command per connection, and a
one-line error for each way it can fail (no such process, not traced, another user's process,
the process exiting under the command, a stalled or garbled answer).

Nothing is trusted that another local user could have put there: the directory must be the
process's user's, not a link and closed to others, the socket file that user's too, and the
process that answers (SO_PEERCRED) must be the one asked, running as that user."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leaktrace.errors import LeaktraceError
from leaktrace.invocation import leaktrace_command
from leaktrace.proc_view import proc_dir

STATUS_TIMEOUT = 10.0
# report and scan write a capture (and scan stops the world): minutes for a huge heap.
CAPTURE_TIMEOUT = 600.0
CAPTURE_COMMANDS = frozenset({"report", "scan"})
_MAX_ANSWER = 1 << 20


class ControlError(LeaktraceError):
    """Any failure to get an answer from a traced process (one-line message)."""


class ProcessGone(ControlError):
    """The process does not exist, or exited before or while answering."""


class NotTraced(ControlError):
    """The process exists but has no control socket."""


class PermissionRefused(ControlError):
    """The socket or its directory belongs to another user, or the shim refused us."""


def control_dir(env: Mapping[str, str] | None = None) -> str:
    """The directory the shim puts sockets in, chosen exactly as the shim does:
    $LEAKTRACE_CONTROL_DIR, else $XDG_RUNTIME_DIR/leaktrace (absolute only), else
    /tmp/leaktrace-<uid>."""
    env = os.environ if env is None else env
    explicit = env.get("LEAKTRACE_CONTROL_DIR", "")
    if explicit:
        return explicit
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/"):
        return os.path.join(runtime, "leaktrace")
    return f"/tmp/leaktrace-{os.getuid()}"


def socket_path(pid: int, directory: str | None = None) -> str:
    return os.path.join(directory or control_dir(), f"{pid}.sock")


def process_real_uid(pid: int) -> int | None:
    """The real uid (the shim's getuid(): whose directory it uses), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def listening_socket_dir(pid: int) -> str | None:
    """The directory of the `<pid>.sock` that process `pid` itself listens on, from
    /proc/PID/net/unix and the inodes of its open sockets; None if it has none (or we may
    not look: only its user and root may)."""
    view = proc_dir(pid)  # a live thread's, when the main thread has ended
    try:
        inodes = set()
        for fd in os.listdir(f"{view}/fd"):
            try:
                target = os.readlink(f"{view}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        with open(f"{view}/net/unix", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()[1:]
    except (OSError, ValueError):
        return None
    for line in lines:
        fields = line.split(maxsplit=7)  # Num RefCount Protocol Flags Type St Inode Path
        if (len(fields) == 8 and fields[6].isdigit() and int(fields[6]) in inodes
                and os.path.basename(fields[7].rstrip("\n")) == f"{pid}.sock"):
            return os.path.dirname(fields[7].rstrip("\n"))
    return None


def default_dir_for(pid: int) -> str:
    """Where process `pid`'s socket should be when no directory is given: the one it really
    listens in (found through /proc), else ours; root asking about another user's process
    looks in that user's default directory (the shim only uses one its user owns)."""
    listening = listening_socket_dir(pid)
    if listening is not None:
        return listening
    owner = process_real_uid(pid)
    if (owner is not None and owner != os.getuid() and os.getuid() == 0
            and not os.environ.get("LEAKTRACE_CONTROL_DIR")):
        return f"/tmp/leaktrace-{owner}"
    return control_dir()


def process_alive(pid: int) -> bool:
    """Exists and has not exited (a zombie, not yet reaped by its parent, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's, but it exists
    try:
        # A live thread's view: the main thread may have ended (pthread_exit) and be a zombie.
        with open(f"{proc_dir(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def process_stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, Ctrl-Z) or by a debugger: it cannot answer until resumed.
    Every thread is asked: a thread stopped alone (a debugger's) cannot answer either."""
    try:
        tasks = os.listdir(f"{proc_dir(pid)}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"{proc_dir(pid)}/task/{tid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state in (b"T", b"t"):
            return True
    return False


def process_owner(pid: int) -> int | None:
    """The real uid of a process, from /proc (readable for every process), or None."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def process_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Target:
    """A process to control and the socket that should answer for it."""

    pid: int
    path: str

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)


def find_target(pid: int, directory: str | None = None) -> Target:
    """Check that `pid` exists and has a socket we may use; raise a one-line error if not."""
    if pid <= 0:
        raise ControlError(f"{pid} is not a process id")
    if not process_alive(pid):
        raise ProcessGone(f"no process with pid {pid}")
    path = socket_path(pid, directory or default_dir_for(pid))
    owner = process_owner(pid)
    mine = owner is None or owner == os.getuid() or os.getuid() == 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not mine:
            raise PermissionRefused(
                f"process {pid} belongs to another user (uid {owner}): its control socket "
                f"is not in your directory {os.path.dirname(path)}, and only that user or "
                "root may control it") from None
        name = process_name(pid)
        if _has_shim(pid) and shim_preloaded(pid) is False:
            raise NotTraced(
                f"process {pid}{f' ({name})' if name else ''} is not traced by leaktrace now: "
                "it was attached (or used leaktrace.track()) and has been detached since, the "
                f"shim staying loaded and idle; `{leaktrace_command()} attach {pid}` traces it "
                "again") from None
        if _has_shim(pid):
            raise NotTraced(
                f"process {pid}{f' ({name})' if name else ''} is traced by leaktrace but has no "
                f"control socket {path}: the socket opens at the program's first allocation, "
                "and this one has made none yet; or the shim could not open it (it then said "
                "why on the program's stderr), or the program closed it") from None
        raise NotTraced(
            f"process {pid}{f' ({name})' if name else ''} is not traced by leaktrace: no "
            f"control socket {path} (start it with `{leaktrace_command()} run`, with the same "
            "LEAKTRACE_CONTROL_DIR)") from None
    except PermissionError:
        raise PermissionRefused(_unreachable(path)) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} is not a socket: leave that directory to leaktrace")
    _check_trusted(pid, path, st)
    return Target(pid, path)


def _check_trusted(pid: int, path: str, socket_stat: os.stat_result) -> None:
    """The directory and the socket must be the process's user's, the directory private:
    anything else may be another local user's trap (a directory created in /tmp before the
    victim's, with a socket of the attacker's that answers for the victim's pid)."""
    uid = process_real_uid(pid)
    if uid is None:
        return  # the process is gone: connecting will say so
    directory = os.path.dirname(path)
    try:
        dir_stat = os.lstat(directory)
    except OSError as e:
        raise ControlError(f"cannot check {directory}: {e.strerror}") from None
    if not stat.S_ISDIR(dir_stat.st_mode):
        raise PermissionRefused(f"refusing {directory}: it is not a directory (a symbolic "
                                "link?); leaktrace's control directory must be a private "
                                "directory of the process's user")
    if dir_stat.st_uid != uid:
        raise PermissionRefused(
            f"refusing {directory}: it belongs to uid {dir_stat.st_uid}, not to uid {uid} who "
            f"runs process {pid}: another user may have created it to answer in its place "
            "(remove it, or set LEAKTRACE_CONTROL_DIR)")
    if dir_stat.st_mode & 0o077:
        raise PermissionRefused(f"refusing {directory}: it is open to other users (mode "
                                f"{stat.S_IMODE(dir_stat.st_mode):o}); it must be 0700")
    if socket_stat.st_uid != uid:
        raise PermissionRefused(f"refusing {path}: the socket belongs to uid "
                                f"{socket_stat.st_uid}, not to uid {uid} who runs process {pid}")


def _check_peer(sock: socket.socket, target: Target) -> None:
    """The process that answers must be the one asked, running as its user (SO_PEERCRED:
    the credentials of the process that made the listening socket)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    peer_pid, peer_uid, _gid = struct.unpack("3i", raw)
    uid = process_real_uid(target.pid)
    if peer_pid != target.pid or (uid is not None and peer_uid != uid):
        raise PermissionRefused(
            f"refusing the answer on {target.path}: it comes from process {peer_pid} (uid "
            f"{peer_uid}), not from process {target.pid}"
            f"{'' if uid is None else f' (uid {uid})'}: the socket is not that process's")


def _has_shim(pid: int) -> bool:
    try:
        with open(f"{proc_dir(pid)}/maps", "rb") as f:
            return b"libleaktrace_shim" in f.read()
    except OSError:
        return False


def shim_preloaded(pid: int) -> bool | None:
    """Whether the process was started with the shim in LD_PRELOAD (`leaktrace run`), as its
    initial environment says; None when that cannot be read (another user's process)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environment = f.read()
    except OSError:
        return None
    # The shim hides its entry from the program by cutting the string after "LD_PRELOAD="
    # in place (environment.c): the path then follows as a string of its own.
    return b"LD_PRELOAD=" in environment and b"libleaktrace_shim" in environment


def _unreachable(path: str) -> str:
    directory = os.path.dirname(path)
    try:
        owner = f" (owned by uid {os.stat(directory).st_uid})"
    except OSError:
        owner = ""
    return (f"permission denied: cannot reach {path}: the directory {directory}{owner} "
            "belongs to another user")


def send_command(pid: int, command: str, argument: str | None = None, *,
                 directory: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Send `COMMAND [ARGUMENT]` to process `pid`, return its JSON answer (with "ok": true).
    Every failure raises a ControlError subclass with a one-line message."""
    target = find_target(pid, directory)
    line = command if argument is None else f"{command} {argument}"
    if "\n" in line:
        raise ControlError("a control command is one line")
    if timeout is None:
        timeout = CAPTURE_TIMEOUT if command in CAPTURE_COMMANDS else STATUS_TIMEOUT
    if process_stopped(pid):
        raise ControlError(_stopped_message(pid, command))
    raw = _exchange(target, line, command, timeout)
    try:
        answer = json.loads(raw)
    except ValueError:
        shown = raw[:80].decode("utf-8", "replace")
        raise ControlError(f"process {pid} answered `{command}` with something that is not "
                           f"JSON: {shown!r}") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"process {pid} answered `{command}` without an \"ok\" field")
    if not answer["ok"]:
        error = str(answer.get("error") or "no reason given")
        if error.startswith("permission denied"):
            raise PermissionRefused(f"process {pid} refused `{command}`: {error} (only its "
                                    "owner or root may control it)")
        raise ControlError(f"process {pid} refused `{command}`: {error}")
    return answer


def _stopped_message(pid: int, command: str) -> str:
    return (f"process {pid} is stopped (SIGSTOP, Ctrl-Z or a debugger) and cannot answer "
            f"`{command}`: resume it (kill -CONT {pid}), then ask again")


# While waiting for an answer the process is looked at this often; stopped this long (a
# moment's stop is a debugger's breakpoint, or the scan's own), the command gives up.
WAIT_SLICE = 0.5
STOPPED_GIVE_UP = 5.0


def _exchange(target: Target, line: str, command: str, timeout: float) -> bytes:
    pid = target.pid
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(target.path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if not process_alive(pid):
                raise ProcessGone(f"process {pid} exited before it could answer "
                                  f"`{command}`") from None
            if isinstance(e, FileNotFoundError):
                raise ProcessGone(f"process {pid} removed its control socket (it is writing "
                                  "its final capture and exiting)") from None
            raise ControlError(f"process {pid} does not answer on {target.path}: the socket "
                               "is stale (left by an earlier process with the same pid?)"
                               ) from None
        except PermissionError:
            owner = _owner_of(target.path)
            raise PermissionRefused(f"permission denied connecting to {target.path}"
                                    f"{owner}: it is another user's process") from None
        except TimeoutError:
            raise ControlError(f"process {pid} did not accept a connection within "
                               f"{timeout:g} s") from None
        _check_peer(sock, target)
        try:
            try:
                sock.sendall(line.encode() + b"\n")
            except OSError as e:
                # The shim may answer and close before reading (a refused peer): the answer
                # is still there to read.
                if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                    raise
            answer = _read_answer(sock, pid, command, timeout)
        except TimeoutError:
            raise ControlError(f"process {pid} did not answer `{command}` within "
                               f"{timeout:g} s") from None
    if not answer.strip():
        # A process that exits closes its descriptors a moment before it is gone: look again.
        for _ in range(50):
            if not process_alive(pid):
                raise ProcessGone(f"process {pid} exited while answering `{command}`")
            time.sleep(0.01)
        raise ControlError(f"process {pid} closed the connection without answering "
                           f"`{command}`")
    return answer


def _read_answer(sock: socket.socket, pid: int, command: str, timeout: float) -> bytes:
    """The first line received; what arrived before a reset counts (b"" if nothing). Raises
    TimeoutError after `timeout`, and gives up on a process that stays stopped."""
    deadline = time.monotonic() + timeout
    stopped_since: float | None = None
    data = b""
    while b"\n" not in data and len(data) < _MAX_ANSWER:
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError
        sock.settimeout(min(WAIT_SLICE, deadline - now))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if not process_stopped(pid):
                stopped_since = None
            elif stopped_since is None:
                stopped_since = now
            elif now - stopped_since >= STOPPED_GIVE_UP:
                raise ControlError(_stopped_message(pid, command)) from None
            continue
        except OSError as e:
            if e.errno != errno.ECONNRESET:
                raise
            break
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _owner_of(path: str) -> str:
    try:
        return f" (owned by uid {os.stat(path).st_uid})"
    except OSError:
        return ""


def remove_stale_socket(pid: int, env: Mapping[str, str] | None = None,
                        directory: str | None = None) -> None:
    """After process `pid` is gone: its socket file, if it could not remove it (killed), and
    if it is ours to remove."""
    path = socket_path(pid, directory or control_dir(env))
    if process_alive(pid):
        return
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid():
            os.unlink(path)
    except OSError:
        pass


def list_sockets(directory: str | None = None) -> list[Target]:
    """Every `<pid>.sock` in the control directory, by pid (none if it does not exist)."""
    directory = directory or control_dir()
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except PermissionError:
        raise PermissionRefused(f"permission denied: cannot list {directory}") from None
    targets = []
    for name in names:
        stem, dot, suffix = name.partition(".")
        if dot and suffix == "sock" and stem.isdigit():
            targets.append(Target(int(stem), os.path.join(directory, name)))
    return sorted(targets, key=lambda t: t.pid)
