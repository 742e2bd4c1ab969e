"""Find the separate debug info of a stripped module, where distributions install it
(e.g. Debian's *-dbg/-dbgsym packages): by build-id first, then by .gnu_debuglink, in the
same order as gdb."""

from __future__ import annotations

import os

from leaktrace.symbolize.elf_info import ElfInfo

DEFAULT_DEBUG_ROOTS = ("/usr/lib/debug",)


def find_debug_file(module_path: str, info: ElfInfo,
                    debug_roots: tuple[str, ...] = DEFAULT_DEBUG_ROOTS) -> str | None:
    for candidate in debug_file_candidates(module_path, info, debug_roots):
        if os.path.isfile(candidate):
            return candidate
    return None


def debug_file_candidates(module_path: str, info: ElfInfo,
                          debug_roots: tuple[str, ...]) -> list[str]:
    candidates = []
    if info.build_id and len(info.build_id) > 1:
        hex_id = info.build_id.hex()
        for root in debug_roots:
            candidates.append(os.path.join(root, ".build-id", hex_id[:2], hex_id[2:] + ".debug"))
    if info.debuglink:
        directory = os.path.dirname(os.path.realpath(module_path))
        candidates.append(os.path.join(directory, info.debuglink))
        candidates.append(os.path.join(directory, ".debug", info.debuglink))
        for root in debug_roots:
            candidates.append(os.path.join(root, directory.lstrip("/"), info.debuglink))
    # The debuglink may name the module itself (e.g. both called "x.debug"): never pick it.
    real = os.path.realpath(module_path)
    return [c for c in candidates if os.path.realpath(c) != real]
