"""Short stack ids that stay the same across runs of the same binaries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def stable_stack_id(kind: str, frames: Iterable[tuple[str, int]]) -> str:
    """8 hex digits from the API kind and each frame's (module file name, file-relative
    return address). Runtime addresses are never used, so ASLR cannot change the id, and
    neither can the directory the program was run from. Same scheme as the mtrace source."""
    text = "|".join(f"{module}+{offset:x}" for module, offset in frames)
    return stable_stack_id_of_text(kind, text)


def stable_stack_id_of_text(kind: str, frames_text: str) -> str:
    """stable_stack_id with the frames already joined: "module+offset|module+offset|..."
    (offset in hex), as a report builder that formats each return address once has them."""
    return hashlib.blake2b(os.fsencode(f"{kind}|{frames_text}"), digest_size=4).hexdigest()
