"""Every reader, fed a few hundred seeded mutations of a valid input each run: every command
that opens such a file ends with a status and at most one error line, never a traceback or a
hang (tests/fuzz_inputs.py; longer campaigns are described in docs/user-guide.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fuzz_inputs import READERS, Reader, fuzz, run_command

INPUTS_PER_READER = 200
SEED = 20261201  # fixed: a failure found by CI is found again on any machine


@pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])
def test_mutated_inputs_never_give_a_traceback_or_hang(reader: Reader, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    failures = list(fuzz(reader, INPUTS_PER_READER, SEED, tmp_path))
    assert not failures, "\n\n".join(
        f"input {f.seed} ({f.data[:80]!r}...): leaktrace {' '.join(f.command)}\n{f.problem}"
        for f in failures[:3])


@pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])
def test_every_seed_is_read_cleanly(reader: Reader, tmp_path: Path) -> None:
    """The unmutated seeds are valid inputs: a fuzz that only ever feeds garbage would test
    the first check of each reader and nothing after it."""
    seeds = list(reader.seeds())
    assert seeds, reader.name  # no seed would pass on nothing
    for number, seed in enumerate(seeds):
        path = tmp_path / f"seed-{number}"
        path.write_bytes(seed)
        commands = list(reader.commands(str(path)))
        assert commands, reader.name
        for command in commands:
            from click.testing import CliRunner

            from leaktrace.cli import main

            result = CliRunner().invoke(main, command)
            assert result.exit_code in (0, 1), (command, result.output, result.exception)


def test_fuzz_harness_catches_a_traceback(tmp_path: Path) -> None:
    """The harness itself must be able to fail: a reader that raises is reported."""
    assert run_command(["report", os.fspath(tmp_path / "missing")], timeout=20) is None
    problem = run_command(["report", "--top", "1", "--min-bytes", "x", "y"], timeout=20)
    assert problem is None  # a usage error: one line, status 2
    from leaktrace import cli

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("injected")

    original = cli.main.commands["dump"].callback
    cli.main.commands["dump"].callback = broken
    try:
        found = run_command(["dump", "x"], timeout=20)
    finally:
        cli.main.commands["dump"].callback = original
    assert found is not None and "ZeroDivisionError" in found
