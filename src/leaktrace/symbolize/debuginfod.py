"""Debug info by build id from debuginfod servers (elfutils' protocol: GET
URL/buildid/HEX/debuginfo), for modules with no DWARF and no separate debug file on this
machine. Configured as elfutils' own client is: DEBUGINFOD_URLS (space-separated servers,
tried in order), DEBUGINFOD_CACHE_PATH (default $XDG_CACHE_HOME/debuginfod_client, laid out
HEX/debuginfo as elfutils does, so gdb's downloads are reused and ours are gdb's),
DEBUGINFOD_TIMEOUT (seconds per connection and read; default 10). Standard library only."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping

DEFAULT_TIMEOUT = 10.0
_MAX_BYTES = 4 << 30  # a debug file larger than this is not a debug file


class DebuginfodClient:
    def __init__(self, urls: list[str], cache_dir: str, timeout: float = DEFAULT_TIMEOUT,
                 note: Callable[[str], None] | None = None) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.cache_dir = cache_dir
        self.timeout = timeout
        self._note = note or (lambda _text: None)
        self._lock = threading.Lock()  # guards _dead and _missing (symbolizer threads)
        self._dead: set[str] = set()  # servers that did not answer: not asked again
        self._missing: set[str] = set()  # build ids no server has

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         note: Callable[[str], None] | None = None) -> DebuginfodClient | None:
        """None when DEBUGINFOD_URLS names no server."""
        env = os.environ if environ is None else environ
        urls = env.get("DEBUGINFOD_URLS", "").split()
        if not urls:
            return None
        cache = env.get("DEBUGINFOD_CACHE_PATH") or os.path.join(
            env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "debuginfod_client")
        try:
            timeout = float(env.get("DEBUGINFOD_TIMEOUT", "") or DEFAULT_TIMEOUT)
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        return cls(urls, cache, timeout if timeout > 0 else DEFAULT_TIMEOUT, note)

    def debuginfo(self, build_id: bytes, module: str) -> str | None:
        """Path of the cached debug file for `build_id`, downloaded first if need be."""
        hex_id = build_id.hex()
        cached = os.path.join(self.cache_dir, hex_id, "debuginfo")
        if os.path.isfile(cached) and _is_debug_file_of(cached, build_id):
            return cached  # (a bad one a server once sent is downloaded again, replaced)
        with self._lock:
            if hex_id in self._missing:
                return None
        for url in self.urls:
            with self._lock:
                if url in self._dead:
                    continue
            if self._download(f"{url}/buildid/{hex_id}/debuginfo", url, cached, build_id):
                return cached
        with self._lock:
            self._missing.add(hex_id)
        return None

    def _download(self, address: str, server: str, cached: str, build_id: bytes) -> bool:
        # Imported here: urllib.request (with http.client and email) is 30 ms of every
        # report's start-up, and only a download needs it.
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as answer:
                os.makedirs(os.path.dirname(cached), exist_ok=True)
                fd, partial = tempfile.mkstemp(dir=os.path.dirname(cached), suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out:
                        copied = 0
                        while chunk := answer.read(1 << 20):
                            copied += len(chunk)
                            if copied > _MAX_BYTES:
                                raise OSError("answer too large")
                            out.write(chunk)
                    if not _is_debug_file_of(partial, build_id):
                        # A proxy's error page, another build: kept out of the cache, which
                        # gdb and debuginfod-find read too.
                        self._note(f"debuginfod server {server} answered {address} with "
                                   "something other than that build's ELF debug file: "
                                   "ignored")
                        return False
                    os.replace(partial, cached)  # readers never see half a file
                finally:
                    if os.path.exists(partial):
                        os.unlink(partial)
            return True
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: this server does not have it; others may
                self._note(f"debuginfod server {server} answered {error.code} {error.reason}")
            return False
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            with self._lock:
                self._dead.add(server)
            self._note(f"debuginfod server {server} unreachable ({reason}): frames of modules "
                       "without local debug info show no file:line")
            return False


def _is_debug_file_of(path: str, build_id: bytes) -> bool:
    """An ELF file whose build id is `build_id` (or that has none, as some debug files)."""
    from leaktrace.symbolize.elf_info import read_elf_info

    info = read_elf_info(path)
    return info is not None and info.build_id in (None, build_id)
