"""Talking to a running traced process through the shim's control socket
(docs/control-protocol.md). Standard library only, so it also runs without click or numpy."""
