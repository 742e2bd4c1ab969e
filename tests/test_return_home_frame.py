"""The XSAVE image of return_home's signal frame (attach/return_home.py): rt_sigreturn looks
for the end marker at the thread's own XSAVE size, which ptrace does not tell, so it is at
each size the thread's state may have, never inside a component in use."""

from __future__ import annotations

import struct

import pytest

from leaktrace.attach import return_home
from leaktrace.attach.return_home import FP_XSTATE_MAGIC2, Home, frame_state_sizes

# A Sapphire Rapids layout: AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM), AMX (config, tiles).
AMX_LAYOUT = {2: (576, 256), 5: (1088, 64), 6: (1152, 512), 7: (1664, 1024),
              17: (2752, 64), 18: (2816, 8192)}
AVX512_AND_SSE = 0xE7


@pytest.fixture
def amx_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(return_home, "user_components", lambda: AMX_LAYOUT)


@pytest.mark.usefixtures("amx_layout")
def test_the_marker_is_at_every_size_past_the_state_in_use() -> None:
    # Without AMX permission the thread's state ends at 2816, with it at 11008.
    assert frame_state_sizes(11008, AVX512_AND_SSE) == [2688, 2816, 11008]
    # Tiles in use: only the whole size covers them.
    assert frame_state_sizes(11008, AVX512_AND_SSE | 3 << 17) == [11008]
    # Only x87 and SSE in use.
    assert frame_state_sizes(11008, 3) == [832, 1152, 1664, 2688, 2816, 11008]


@pytest.mark.usefixtures("amx_layout")
def test_the_frame_image_has_the_software_bytes_and_markers() -> None:
    state = bytearray(b"\xa5" * 11008)
    state[512:520] = AVX512_AND_SSE.to_bytes(8, "little")
    image = Home(0, bytes(state), 0).signal_frame_fp_state()
    magic2 = FP_XSTATE_MAGIC2.to_bytes(4, "little")
    assert len(image) == 11008 + 4
    assert [at for at in range(576, len(image), 4) if image[at:at + 4] == magic2] == [
        2688, 2816, 11008]
    assert struct.unpack_from("<IIQI", image, 464)[1:] == (2692, (1 << 64) - 1, 2688)
    assert image[:464] == state[:464] and image[576:2688] == state[576:2688]


def test_an_unknown_layout_keeps_the_image_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(return_home, "user_components", lambda: {})
    assert frame_state_sizes(2696, AVX512_AND_SSE) == [2696]
