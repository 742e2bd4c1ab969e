"""numpy's big arrays on ordinary pages. numpy asks the kernel for transparent huge pages
(madvise) for every array of 4 MiB or more; where the kernel compacts memory to find them
when first touched (defrag "madvise", this project's VMs), that cost three to five times the
system time of ordinary pages: reading a 600 MB capture into a numpy buffer spent 2.3-7.2 s
of system time against 0.7 s, and a million-stack report 4.6 s against 1.7 s
(docs/benchmarks-shim.md, `leaktrace report`, fifth pass)."""

from __future__ import annotations

import os
import re
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from leaktrace.errors import LeaktraceError

# Address space numpy and OpenBLAS's buffers for one thread take when numpy is imported
# (measured: 80 MiB), with some to spare for the work.
NUMPY_ROOM = 96 << 20


def room_for_numpy() -> None:
    """Under an address-space limit (`ulimit -v`) too low for numpy, OpenBLAS, which numpy
    loads, fails to map its buffers and ends the whole process from its loader (status 1,
    "Memory allocation still failed"): say so in one line instead, before importing it."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if "numpy" in sys.modules or limit == resource.RLIM_INFINITY:
        return
    try:
        with open("/proc/self/status") as status:
            found = re.search(r"^VmSize:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return
    used = int(found.group(1)) << 10 if found else 0
    if limit - used < NUMPY_ROOM:
        raise LeaktraceError(
            f"the address-space limit (RLIMIT_AS, `ulimit -v`) of {limit >> 20:,} MiB leaves "
            f"leaktrace too little room to load numpy (about {NUMPY_ROOM >> 20} MiB more than "
            f"its {used >> 20} MiB): raise it")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """For importing numpy: it loads OpenBLAS, which starts a thread per CPU when it loads,
    each with a buffer (under `ulimit -v` 150 MiB the second one failed: MemoryError).
    leaktrace does no linear algebra, so one is enough (a tenth of a second less at start).
    Set only while the import runs: a program that `run` starts inherits our environment."""
    added = "OPENBLAS_NUM_THREADS" not in os.environ
    if added:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if added:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)


def ordinary_pages() -> None:
    """Turn numpy's huge page requests off for this process (a numpy without the switch is
    left as it is)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is not None:
        switch(False)
