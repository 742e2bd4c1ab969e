"""The shim inside this process: loaded with ctypes (dlopen) the first time a block is tracked,
attached while at least one tracked block is open (every loaded object's GOT patched, see
docs/attach.md) and detached when the last one closes, so code outside any block runs at full
speed. When the shim is already preloaded (`leaktrace run -- python ...`) it is used as it is:
it already records everything, and is never detached."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path

from leaktrace.errors import LeaktraceError
from leaktrace.shim_library import SHIM_FILE_NAME, find_shim_library

GENERATIONS = 1 << 16  # the shim stamps each block with a 16-bit generation
_ALL_GENERATIONS_BYTES = GENERATIONS // 8


class ShimSession:
    """One per process (see `session()`). Its lock guards every field."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._open_blocks = 0
        self._preloaded = False
        self._dir: Path | None = None
        self._pid = os.getpid()
        self._sequence = 0

    # ---- entering and leaving tracked blocks ------------------------------------------------
    def open_block(self, max_depth: int) -> None:
        """Makes sure the shim records; counts one more open block."""
        with self._lock:
            self._forget_after_fork()
            lib = self._load()
            if self._open_blocks == 0 and not self._preloaded:
                result = lib.leaktrace_track_start(str(self._settings_file(max_depth)).encode())
                if result == 1:
                    self._preloaded = True
                elif result != 0:
                    raise LeaktraceError(_start_error(result))
            self._open_blocks += 1

    def close_block(self) -> None:
        with self._lock:
            if self._open_blocks == 0:
                return
            self._open_blocks -= 1
            if self._open_blocks == 0 and not self._preloaded and self._lib is not None:
                self._lib.leaktrace_track_stop()

    # ---- generations --------------------------------------------------------------------------
    def enter_thread(self) -> tuple[int, int]:
        """(this block's generation, the thread's previous one) for the calling thread."""
        previous = ctypes.c_uint(0)
        generation = self._library().leaktrace_track_enter(ctypes.byref(previous))
        return generation, previous.value

    def leave_thread(self, previous: int) -> None:
        """Stamps `previous` (a generation, or one quiet() returned) on this thread's blocks."""
        self._library().leaktrace_track_leave(previous)

    def reserve_generations(self) -> int:
        """Two fresh generations, g (returned) and g + 1, which other threads stamp from now
        on; this thread stamps g once leave_thread(g) is called."""
        return int(self._library().leaktrace_track_reserve())

    def quiet(self) -> int:
        """Until leave_thread(): this thread's allocations are not recorded (track()'s own
        Python objects). Returns what leave_thread() takes to end it as it was."""
        return int(self._library().leaktrace_track_quiet())

    def current_generation(self) -> int:
        return int(self._library().leaktrace_track_generation())

    # ---- captures ------------------------------------------------------------------------------
    def capture(self, generations: set[int] | range, scan: bool, own_stack: bool = False) -> Path:
        """A capture of the live blocks born in these generations (each taken modulo 2**16),
        in a private directory; the caller owns the file."""
        bitmap = (ctypes.c_uint8 * _ALL_GENERATIONS_BYTES)()
        for g in generations:
            g %= GENERATIONS
            bitmap[g >> 3] |= 1 << (g & 7)
        with self._lock:
            self._sequence += 1
            path = self._directory() / f"track-{os.getpid()}-{self._sequence}.lt"
        result = self._library().leaktrace_track_capture(bitmap, int(scan), int(own_stack),
                                                        str(path).encode())
        if result != 0:
            raise LeaktraceError(f"leaktrace: the tracked block's capture failed: "
                                 f"{os.strerror(-result)}")
        return path

    # ---- internals --------------------------------------------------------------------------
    def _library(self) -> ctypes.CDLL:
        if self._lib is None:
            raise LeaktraceError("leaktrace: no tracked block is open")
        return self._lib

    def _load(self) -> ctypes.CDLL:
        """pre: lock held."""
        if self._lib is not None:
            return self._lib
        # RTLD_LOCAL (ctypes' default): the shim's malloc must not join the global scope,
        # which is what tells the shim it was not preloaded. An already preloaded copy is the
        # same file name: the loader returns it.
        preloaded = _preloaded_shim()
        path = preloaded or str(find_shim_library())
        lib = ctypes.CDLL(path)
        lib.leaktrace_track_start.argtypes = [ctypes.c_char_p]
        lib.leaktrace_track_start.restype = ctypes.c_int
        lib.leaktrace_track_stop.argtypes = []
        lib.leaktrace_track_stop.restype = None
        lib.leaktrace_track_enter.argtypes = [ctypes.POINTER(ctypes.c_uint)]
        lib.leaktrace_track_enter.restype = ctypes.c_uint
        lib.leaktrace_track_leave.argtypes = [ctypes.c_uint]
        lib.leaktrace_track_leave.restype = None
        lib.leaktrace_track_reserve.argtypes = []
        lib.leaktrace_track_reserve.restype = ctypes.c_uint
        lib.leaktrace_track_quiet.argtypes = []
        lib.leaktrace_track_quiet.restype = ctypes.c_uint
        lib.leaktrace_track_generation.argtypes = []
        lib.leaktrace_track_generation.restype = ctypes.c_uint
        lib.leaktrace_track_capture.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                                ctypes.c_char_p]
        lib.leaktrace_track_capture.restype = ctypes.c_int
        self._lib = lib
        return lib

    def _directory(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="leaktrace-track-"))
        return self._dir

    def _settings_file(self, max_depth: int) -> Path:
        """The NAME=VALUE file leaktrace_attach reads: no control socket, captures (at exit,
        should the process end inside a block) in the private directory."""
        directory = self._directory()
        path = directory / "settings.conf"
        path.write_text(f"LEAKTRACE_DIR={directory}\nLEAKTRACE_CONTROL=0\n"
                        f"LEAKTRACE_MAX_DEPTH={max_depth}\n", encoding="utf-8")
        return path

    def _forget_after_fork(self) -> None:
        """A fork child inherits open blocks it never entered: it starts afresh."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._open_blocks = 0
            self._dir = None

    def remove_directory(self) -> None:
        if self._dir is not None and self._pid == os.getpid():
            shutil.rmtree(self._dir, ignore_errors=True)


def _preloaded_shim() -> str | None:
    for entry in os.environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if os.path.basename(entry) == SHIM_FILE_NAME:
            return entry
    return None


def _start_error(result: int) -> str:
    if result == -1:
        return ("leaktrace: the shim is preloaded but does not trace this process "
                "(a child of `leaktrace run` without --follow-children)")
    return f"leaktrace: the shim could not start tracking (code {result})"


_session: ShimSession | None = None
_session_lock = threading.Lock()


def session() -> ShimSession:
    global _session
    with _session_lock:
        if _session is None:
            _session = ShimSession()
            import atexit
            atexit.register(_session.remove_directory)
        return _session
