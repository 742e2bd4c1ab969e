"""numpy's big arrays on ordinary pages. numpy asks the kernel for transparent huge pages
(madvise) for every array of 4 MiB or more; where the kernel compacts memory to find them
when first touched (defrag "madvise", this project's VMs), that cost three to five times the
system time of ordinary pages: reading a 600 MB capture into a numpy buffer spent 2.3-7.2 s
of system time against 0.7 s, and a million-stack report 4.6 s against 1.7 s
(docs/benchmarks-shim.md, `leaktrace report`, fifth pass)."""

from __future__ import annotations


def ordinary_pages() -> None:
    """Turn numpy's huge page requests off for this process (a numpy without the switch is
    left as it is)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is not None:
        switch(False)
