"""Seeded mutation fuzzing of every file leaktrace reads: captures (format 1 and 2, with and
without SESSION/SERIES), valgrind XML, mtrace logs (glibc's and with leaktrace's backtrace
extension) and suppression files (valgrind's and LeakSanitizer's syntax).

Each input runs through the commands a user would point at such a file, in this process
(click's test runner), and must end with an exit status and at most one error line: never a
traceback, never a hang. `tests/test_fuzz_readers.py` runs a few hundred inputs per reader;
`python tests/fuzz_inputs.py --count N --seed S` runs a longer campaign (docs/user-guide.md).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data"))

# Values that break arithmetic and sizes when they land in a length or count field.
_INTERESTING_U64 = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                    0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
                    0xFFFF_FFFF_FFFF_FFFF]
_INTERESTING_TOKENS = [b"0", b"-1", b"0x", b"0xffffffffffffffffffff", b"(nil)", b"\xff\xfe",
                       b"+", b"-", b"<", b">", b"!", b"=", b"@", b"#", b"\x00", b"\xc3",
                       b"99999999999999999999999", b"0x8000000000000000", b"1e400", b"nan",
                       b"...", b"*", b"{", b"}", b"fun:", b"obj:", b"src:x:1", b"leak:",
                       b"match-leak-kinds:", b"Memcheck:Leak", b"&amp;", b"&#0;", b"&#xD800;",
                       b"<!DOCTYPE a [<!ENTITY e 'x'>]>", b"&e;", b"]]>", b"<![CDATA["]


def mutate_binary(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: bit flips, random bytes, interesting little-endian integers
    over a field, truncation, a chunk deleted, repeated or inserted."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 64)))
            continue
        edit = rng.randrange(7)
        at = rng.randrange(len(buf))
        if edit == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif edit == 1:
            buf[at] = rng.randrange(256)
        elif edit == 2:
            width = rng.choice((4, 8))
            value = rng.choice(_INTERESTING_U64) & ((1 << (8 * width)) - 1)
            at -= at % 4  # fields are 4-byte aligned more often than not
            buf[at : at + width] = value.to_bytes(width, "little")
        elif edit == 3:
            del buf[at:]
        elif edit == 4:
            del buf[at : at + rng.randint(1, 64)]
        elif edit == 5:
            chunk = buf[at : at + rng.randint(1, 128)]
            buf[at:at] = chunk * rng.randint(1, 3)
        else:
            buf[at:at] = rng.randbytes(rng.randint(1, 32))
    return bytes(buf)


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """Line and token edits (the text readers' structure), plus the binary edits."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        edit = rng.randrange(7)
        at = rng.randrange(len(lines)) if lines else 0
        if not lines:
            lines.append(rng.choice(_INTERESTING_TOKENS))
        elif edit == 0:
            del lines[at]
        elif edit == 1:
            lines.insert(at, lines[rng.randrange(len(lines))])
        elif edit == 2:
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif edit == 3:
            tokens = lines[at].split(b" ")
            tokens[rng.randrange(len(tokens))] = rng.choice(_INTERESTING_TOKENS)
            lines[at] = b" ".join(tokens)
        elif edit == 4:
            cut = rng.randrange(len(lines[at]) + 1)
            lines[at] = lines[at][:cut] + rng.choice(_INTERESTING_TOKENS) + lines[at][cut:]
        elif edit == 5:
            lines[at] = lines[at] * rng.randint(2, 40)
        else:
            return mutate_binary(b"\n".join(lines), rng)
    return b"\n".join(lines)


# --- seeds -------------------------------------------------------------------------------


def capture_seeds() -> list[bytes]:
    from make_sample import sample_bytes, sample_v2_bytes

    from leaktrace.capture import format as fmt
    from leaktrace.capture.reader import BlockRow, Module, ProcessInfo
    from leaktrace.capture.series import SeriesRow, Session
    from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks

    # A capture as the shim writes it with a snapshot series (growth reads it), and names
    # that are not UTF-8 (a program's file names are bytes).
    blocks = [BlockRow(0x1000 + 32 * i, 16 + i, 1 + i % 3, 1, 1_000_000 * i) for i in range(9)]
    stacks = [stack_from_blocks(s, [0x400100 + s, 0x400200], blocks) for s in (1, 2, 3)]
    series = [(t * 100_000_000, [SeriesRow(s, t * s, 16 * t * s, t, 16 * t) for s in (1, 2, 3)])
              for t in range(1, 6)]
    name = b"/tmp/pr\xffog"
    modules = [Module(0, 0x400000, 0x500000, False, b"\x01\x02", os.fsdecode(name))]
    shim_like = encode_capture(
        make_header(77), process=ProcessInfo(1, os.fsdecode(name), [os.fsdecode(name), "a\udcff"],
                                             "/"),
        modules=modules, stacks=stacks, blocks=blocks,
        counters={"dropped_blocks": 0, "max_depth": 64},
        session=Session(0, 0, 1, True, 100), series=series)
    assert fmt.VERSION >= 2
    return [sample_bytes(), sample_v2_bytes(), shim_like]


VALGRIND_SEED = b"""<?xml version="1.0"?>
<valgrindoutput>
<protocolversion>4</protocolversion>
<protocoltool>memcheck</protocoltool>
<pid>7</pid>
<ppid>1</ppid>
<tool>memcheck</tool>
<args><vargv><exe>/usr/bin/valgrind</exe></vargv>
<argv><exe>/bin/app</exe><arg>--x</arg></argv></args>
<status><state>RUNNING</state></status>
<error><unique>0x1</unique><tid>1</tid><kind>Leak_DefinitelyLost</kind><xwhat>
<text>
1,064 (1,000 direct, 64 indirect) bytes in 10 blocks are definitely lost in loss record 2 of 3
</text>
<leakedbytes>1064</leakedbytes><leakedblocks>10</leakedblocks></xwhat>
<stack>
<frame><ip>0x483B7F3</ip>
<obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so</obj><fn>malloc</fn></frame>
<frame><ip>0x10915E</ip><obj>/bin/app</obj><fn>make()</fn>
<dir>/src</dir><file>app.cc</file><line>9</line></frame>
</stack></error>
<error><unique>0x2</unique><tid>1</tid><kind>Leak_StillReachable</kind><xwhat>
<text>64 bytes in 1 blocks are still reachable in loss record 1 of 3</text>
<leakedbytes>64</leakedbytes><leakedblocks>1</leakedblocks></xwhat>
<stack><frame><ip>0x10916E</ip><obj>/bin/app</obj><fn>main</fn></frame></stack></error>
<error><unique>0x3</unique><tid>1</tid><kind>InvalidRead</kind><what>bad</what></error>
<status><state>FINISHED</state></status>
<suppcounts><pair><count>4</count><name>glibc</name></pair></suppcounts>
</valgrindoutput>
"""

MTRACE_SEED = b"""= Start
@ ./prog:[0x11a7] + 0x55d0c0a2b6b0 0x64
# 0x55d0c09c71a7 /tmp/prog+0x11a7
# 0x7f1e2a229d90 /lib/x86_64-linux-gnu/libc.so.6+0x29d90
@ ./prog:[0x11c3] + 0x55d0c0a2b720 0x78
@ /lib/x86_64-linux-gnu/libc.so.6:(__strdup+0x1a)[0x9e9aa] + 0x55d0c0a2b7a0 0x10
@ ./prog:[0x11e0] - 0x55d0c0a2b7a0
@ ./prog:[0x1200] < 0x55d0c0a2b720
@ ./prog:[0x1200] > 0x55d0c0a2b800 0x3e8
@ [0x401136] + 0x55d0c0a2b900 0x20
@ ./prog:[0x1210] ! 0x55d0c0a2b900 0x99999
@ ./prog:[0x1220] - 0x1234
+ 0x55d0c0a2ba00 0x8
= End
"""

VALGRIND_SUPP_SEED = b"""# comment
{
   libc-buffers
   Memcheck:Leak
   match-leak-kinds: reachable,possible
   fun:malloc
   ...
   obj:/lib/x86_64-linux-gnu/libc.so.6
   src:app.cc:9
}
{
   other-tool
   Helgrind:Race
   fun:foo
}
{
   mangled
   Memcheck:Leak
   fun:_Z4makev
   fun:ma?n
}
"""

LSAN_SUPP_SEED = b"""# LeakSanitizer
leak:make_leak
leak:^libfoo.so$
leak:*templated<int>*
race:ignored
interceptor_via_fun:other
"""


# --- running the commands ------------------------------------------------------------------


class Hang(Exception):
    pass


@dataclass
class Failure:
    reader: str
    seed: int
    command: list[str]
    problem: str  # the traceback, the hang, or the extra output lines
    data: bytes  # the input, to reproduce it


@dataclass(frozen=True)
class Reader:
    name: str
    seeds: Callable[[], list[bytes]]
    mutate: Callable[[bytes, random.Random], bytes]
    commands: Callable[[str], list[list[str]]]  # the commands for one input file


def _supp_commands(path: str) -> list[list[str]]:
    capture = str(HERE / "data" / "capture-v2.lt")
    return [["report", "--suppressions", path, capture]]


READERS = [
    Reader("capture", capture_seeds, mutate_binary,
           lambda p: [["report", p], ["report", "--format", "json", "--show", "all", p],
                      ["dump", p], ["growth", p], ["growth", "--format", "json", p]]),
    Reader("valgrind-xml", lambda: [VALGRIND_SEED], mutate_text,
           lambda p: [["report", p], ["report", "--format", "json", p]]),
    Reader("mtrace-log", lambda: [MTRACE_SEED], mutate_text,
           lambda p: [["mtrace", p], ["mtrace", "--format", "json", p]]),
    Reader("valgrind-suppressions", lambda: [VALGRIND_SUPP_SEED], mutate_text, _supp_commands),
    Reader("lsan-suppressions", lambda: [LSAN_SUPP_SEED], mutate_text, _supp_commands),
]


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang


def run_command(arguments: list[str], timeout: int) -> str | None:
    """None when the command ended as the rules say; else what went wrong."""
    from click.testing import CliRunner

    from leaktrace.cli import main

    runner = CliRunner()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        result = runner.invoke(main, arguments, catch_exceptions=True)
    except Hang:
        return f"no answer within {timeout} s"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, Hang):
        return f"no answer within {timeout} s"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        return "".join(traceback.format_exception(*result.exc_info))
    errors = [line for line in result.stderr.splitlines() if line.startswith("leaktrace: error")]
    if result.exit_code == 2 and len(errors) != 1:
        return f"exit 2 without exactly one error line: {result.stderr!r}"
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        return result.stderr
    return None


def fuzz(reader: Reader, count: int, seed: int, workdir: Path,
         timeout: int = 60) -> Iterator[Failure]:
    """`count` mutated inputs of one reader; yields each failure."""
    rng = random.Random(f"{reader.name}:{seed}")
    seeds = reader.seeds()
    path = workdir / f"input-{reader.name}"
    for n in range(count):
        data = reader.mutate(rng.choice(seeds), rng)
        path.write_bytes(data)
        for command in reader.commands(str(path)):
            problem = run_command(command, timeout)
            if problem is not None:
                yield Failure(reader.name, n, command, problem, data)
                break


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="inputs per reader")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reader", action="append", help="only these readers")
    parser.add_argument("--keep", type=Path, help="write each failing input into this directory")
    args = parser.parse_args()
    os.environ.setdefault("LC_ALL", "C.UTF-8")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="leaktrace-fuzz-") as tmp:
        for reader in READERS:
            if args.reader and reader.name not in args.reader:
                continue
            found = list(fuzz(reader, args.count, args.seed, Path(tmp)))
            failures += len(found)
            print(f"{reader.name}: {args.count} inputs, {len(found)} failures", flush=True)
            for failure in found:
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"{reader.name}-{failure.seed}").write_bytes(failure.data)
            for failure in found[:5]:
                print(f"  input {failure.seed}: leaktrace {' '.join(failure.command)}\n"
                      f"{failure.problem}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
