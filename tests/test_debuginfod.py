"""debuginfod: a stripped program whose debug file is only on a real local debuginfod server
(elfutils' `debuginfod -F DIR`) gets function names and file:line in its report; the file is
cached and reused once the server is gone; an unreachable server is one note, not a failure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from export_helpers import build, small_bytes, tool
from leakharness import LEAKTRACE, marker_line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(stripped program, directory holding only its debug file, its build id)."""
    work = tmp_path_factory.mktemp("debuginfod")
    exe = build(work)
    served = work / "served"
    served.mkdir()
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(served / "prog.debug")],
                   check=True)
    subprocess.run(["strip", "--strip-all", str(exe)], check=True)
    notes = subprocess.run(["readelf", "-n", str(exe)], capture_output=True, text=True,
                           check=True).stdout
    build_id = notes.split("Build ID:")[1].split()[0]
    return exe, served, build_id


@pytest.fixture(scope="module")
def server(stripped: tuple[Path, Path, str]) -> Iterator[str]:
    _exe, served, build_id = stripped
    port = _free_port()
    process = subprocess.Popen(
        [tool("debuginfod", "debuginfod"), "-F", "-p", str(port), "-t", "0",
         "-d", str(served.parent / "index.sqlite"), str(served)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until it has scanned the directory
            try:
                with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "debuginfod did not serve the debug file"
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def report(capture: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([*LEAKTRACE, "report", str(capture), "--format", "json"],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def leak_small(document: dict[str, Any]) -> dict[str, Any]:
    [record] = [r for r in document["records"] if r["bytes"] == small_bytes(3)]
    frame: dict[str, Any] = record["frames"][0]
    return frame


@pytest.fixture(scope="module")
def capture(stripped: tuple[Path, Path, str]) -> Path:
    exe = stripped[0]
    path = exe.parent / "stripped.lt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD_")}
    subprocess.run([*LEAKTRACE, "run", "-o", str(path), "--", str(exe), "3"],
                   capture_output=True, env=env, timeout=120, check=True)
    return path


def test_without_debuginfod_the_stripped_frames_have_no_lines(capture: Path) -> None:
    document = report(capture, {"DEBUGINFOD_URLS": ""})
    assert leak_small(document)["line"] is None


def test_debug_info_comes_from_the_server_then_from_the_cache(
        capture: Path, server: str, stripped: tuple[Path, Path, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"DEBUGINFOD_URLS": server, "DEBUGINFOD_CACHE_PATH": str(cache)}
    frame = leak_small(report(capture, env))
    assert (frame["function"], Path(frame["file"]).name, frame["line"]) == (
        "leak_small", "export_leaks.c", marker_line("export_leaks.c", "small"))
    build_id = stripped[2]
    assert (cache / build_id / "debuginfo").stat().st_size > 0  # elfutils' cache layout
    # The server is not asked again: a dead one in the list changes nothing.
    cached = leak_small(report(capture, {**env, "DEBUGINFOD_URLS": "http://127.0.0.1:1"}))
    assert cached["line"] == frame["line"]


def test_an_unreachable_server_is_one_note(capture: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    document = report(capture, {"DEBUGINFOD_URLS": f"{dead} {dead}/again",
                                "DEBUGINFOD_CACHE_PATH": str(tmp_path / "empty"),
                                "DEBUGINFOD_TIMEOUT": "3"})
    notes = [n for n in document["notes"] if "debuginfod" in n]
    assert len(notes) == 2 and notes[0].startswith(f"debuginfod server {dead} unreachable (")
    assert leak_small(document)["line"] is None  # and the report is still there


def test_a_server_that_never_answers_times_out(capture: Path, tmp_path: Path) -> None:
    """A server that takes the connection and never answers (a listening socket nobody
    serves) costs DEBUGINFOD_TIMEOUT once, not a hang: then one note, and the report."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes connections; nothing reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        document = report(capture, {"DEBUGINFOD_URLS": url,
                                    "DEBUGINFOD_CACHE_PATH": str(tmp_path / "empty"),
                                    "DEBUGINFOD_TIMEOUT": "3"})
        elapsed = time.monotonic() - started
    notes = [n for n in document["notes"] if "debuginfod" in n]
    assert notes == [f"debuginfod server {url} unreachable (timed out): frames of modules "
                     "without local debug info show no file:line"]
    assert 3 <= elapsed < 60  # waited for the timeout, not for ever
    assert leak_small(document)["line"] is None


def test_an_answer_that_is_not_the_debug_file_is_not_cached(
        capture: Path, server: str, stripped: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A server (a proxy's error page) answering 200 with something else: one note, the next
    server is asked, and the cache, which gdb and debuginfod-find share, keeps the real file.
    A bad file already in the cache is downloaded again."""
    import http.server
    import threading

    class ErrorPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            body = b"<html>please log in</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    proxy = http.server.HTTPServer(("127.0.0.1", 0), ErrorPage)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    build_id = stripped[2]
    cache = tmp_path / "cache"
    try:
        bad = f"http://127.0.0.1:{proxy.server_address[1]}"
        document = report(capture, {"DEBUGINFOD_URLS": f"{bad} {server}",
                                    "DEBUGINFOD_CACHE_PATH": str(cache)})
        assert leak_small(document)["line"] == marker_line("export_leaks.c", "small")
        assert any(n.startswith(f"debuginfod server {bad} answered") and "ignored" in n
                   for n in document["notes"]), document["notes"]
        assert (cache / build_id / "debuginfo").read_bytes()[:4] == b"\x7fELF"
        (cache / build_id / "debuginfo").write_bytes(b"<html>please log in</html>")
        again = report(capture, {"DEBUGINFOD_URLS": server, "DEBUGINFOD_CACHE_PATH": str(cache)})
        assert leak_small(again)["line"] == marker_line("export_leaks.c", "small")
    finally:
        proxy.shutdown()
