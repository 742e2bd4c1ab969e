"""`leaktrace attach`: load the shim into a running process and start collecting, without a
debugger (docs/attach.md). ptrace and /proc only; x86-64 Linux."""
