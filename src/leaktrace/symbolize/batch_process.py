"""What both external symbolizer back ends share: running one batch process per module,
and the error they raise when it cannot run."""

from __future__ import annotations

import os
import subprocess

TIMEOUT_SECONDS = 300  # a huge debug file can take a while; a hang must not block forever


class SymbolizerToolFailed(Exception):
    """addr2line or llvm-symbolizer could not run or failed; the message says why."""


def run_batch(command: list[str], elf_path: str, offsets: list[int]) -> str:
    """Feeds every offset to `command` on stdin (one per line) and returns its stdout."""
    text = "".join(f"{offset:#x}\n" for offset in offsets)
    # The program's preloads are not the tool's: one that writes to stdout (a destructor's
    # message) would break the answers, and none should see the tool's allocations.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_AUDIT")}
    try:
        done = subprocess.run(command, input=text, capture_output=True, text=True, env=env,
                              errors="replace", timeout=TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SymbolizerToolFailed(f"{command[0]} failed on {elf_path}: {e}") from None
    if done.returncode != 0:
        first_error = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise SymbolizerToolFailed(f"{command[0]} failed on {elf_path}: {first_error}")
    return done.stdout
