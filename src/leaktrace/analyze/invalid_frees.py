"""The INVALID_FREES section as the reports tell it: per backtrace and API, the calls that freed
an address the shim never saw allocated or saw freed already (valgrind's "Invalid free() /
delete / delete[] / realloc()"), or a block their function does not release (its "Mismatched
free() / delete / delete []"), with the backtrace symbolized like the leaks'."""

from __future__ import annotations

from leaktrace.analyze.stack_frames import StackFrames
from leaktrace.analyze.stack_ids import stable_stack_id_of_bytes
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import Capture
from leaktrace.model import InvalidFree


def describe_invalid_frees(capture: Capture, described: StackFrames) -> list[InvalidFree] | None:
    """None when the shim did not check (attached, sampling mode, collecting paused, ...)."""
    if capture.invalid_frees is None:
        return None
    out = []
    for row in capture.invalid_frees:
        code = row.api & ~fmt.FREE_API_MISMATCHED
        api = fmt.FREE_APIS.get(code, f"api-{code}")
        mismatched = bool(row.api & fmt.FREE_API_MISMATCHED)
        found = described.frames_and_id_text(row.stack_id)
        frames, id_text = found if found is not None else ([], b"")
        out.append(InvalidFree(api=api, calls=row.calls, first_address=row.first_address,
                               stack_id=stable_stack_id_of_bytes(
                                   f"mismatched {api}" if mismatched else api, id_text),
                               frames=frames, mismatched=mismatched))
    out.sort(key=lambda f: (-f.calls, f.stack_id))
    return out
