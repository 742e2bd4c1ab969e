"""A byte-count progress bar on stderr for long reads, shown only when stderr is a terminal
(so pipes, CI logs and tests never see control characters)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def byte_progress(total_bytes: int, description: str) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`: call it with the number of bytes consumed since the last call."""
    if not sys.stderr.isatty() or total_bytes <= 0:
        yield lambda _n: None
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total_bytes)
        yield lambda n: progress.advance(task, n)
