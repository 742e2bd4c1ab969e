"""Short stack ids that stay the same across runs of the same binaries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import lru_cache


def stable_stack_id(kind: str, frames: Iterable[tuple[str, int]]) -> str:
    """8 hex digits from the API kind and each frame's (module file name, file-relative
    return address). Runtime addresses are never used, so ASLR cannot change the id, and
    neither can the directory the program was run from. Same scheme as the mtrace source."""
    text = "|".join(f"{module}+{offset:x}" for module, offset in frames)
    return stable_stack_id_of_text(kind, text)


def stable_stack_id_of_text(kind: str, frames_text: str) -> str:
    """stable_stack_id with the frames already joined: "module+offset|module+offset|..."
    (offset in hex)."""
    return stable_stack_id_of_bytes(kind, os.fsencode(frames_text))


def stable_stack_id_of_bytes(kind: str, frames_text: bytes) -> str:
    """stable_stack_id_of_text with the frames' text encoded (os.fsencode), as a report
    builder that encodes each return address's part once has it."""
    return hashlib.blake2b(stable_id_prefix(kind) + frames_text, digest_size=4).hexdigest()


@lru_cache(maxsize=64)  # API kinds: a handful
def stable_id_prefix(kind: str) -> bytes:
    """What the id's hash starts with, before the frames' text."""
    return os.fsencode(kind) + b"|"
