"""Parse /proc/PID/smaps and /proc/PID/smaps_rollup.

Fields are read by name (kernels add, rename and drop fields between versions) and every
"N kB" value is kept in bytes; a field a kernel lacks is simply absent (0 when summed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from leaktrace.errors import LeaktraceError
from leaktrace.proc_view import proc_dir

# "55d93e882000-55d93e884000 r--p 00000000 fe:00 260386    /usr/bin/head"
_HEADER = re.compile(
    r"^(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+)\s+(?P<perms>\S+)\s+(?P<offset>[0-9a-f]+)\s+"
    r"(?P<device>\S+)\s+(?P<inode>\d+)\s*(?P<path>.*)$"
)
_SIZE_UNITS = {"kB": 1024, "mB": 1024 * 1024, "B": 1}

# Mapping kinds, as `leaktrace mem` groups them.
HEAP, STACK, ANON, FILE, VDSO = "heap", "stack", "anon", "file", "vdso"
KINDS = (HEAP, STACK, ANON, FILE, VDSO)


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    device: str
    inode: int
    path: str  # "" for anonymous memory; "[heap]", "[stack]", ... for the kernel's names
    fields: dict[str, int] = field(default_factory=dict)  # bytes for "kB" fields

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def kind(self) -> str:
        return mapping_kind(self.path)

    def get(self, name: str) -> int:
        return self.fields.get(name, 0)


def mapping_kind(path: str) -> str:
    if path == "[heap]":
        return HEAP
    if path == "[stack]" or path.startswith("[stack:"):  # [stack:TID] on old kernels
        return STACK
    if path in ("[vdso]", "[vvar]", "[vsyscall]", "[vvar_vclock]"):
        return VDSO
    if not path or path.startswith("["):  # [anon:name], [anon_shmem:...], [uprobes], ...
        return ANON
    return FILE


def _parse_field(line: str) -> tuple[str, int] | None:
    name, colon, rest = line.partition(":")
    if not colon or " " in name:
        return None
    parts = rest.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] in _SIZE_UNITS:
        return name, int(parts[0]) * _SIZE_UNITS[parts[1]]
    if len(parts) == 1 and parts[0].isdigit():  # THPeligible, ProtectionKey: plain numbers
        return name, int(parts[0])
    return None  # VmFlags and anything else that is not a number


def parse_smaps(text: str) -> list[Mapping]:
    mappings: list[Mapping] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            mappings.append(
                Mapping(
                    start=int(header["start"], 16),
                    end=int(header["end"], 16),
                    perms=header["perms"],
                    offset=int(header["offset"], 16),
                    device=header["device"],
                    inode=int(header["inode"]),
                    path=header["path"].strip(),
                )
            )
        elif mappings:
            parsed = _parse_field(line)
            if parsed:
                mappings[-1].fields[parsed[0]] = parsed[1]
    return mappings


def parse_rollup(text: str) -> dict[str, int]:
    """smaps_rollup: one "[rollup]" header and the fields summed over all mappings."""
    totals: dict[str, int] = {}
    for line in text.splitlines():
        parsed = _parse_field(line)
        if parsed:
            totals[parsed[0]] = parsed[1]
    return totals


def read_proc_file(pid: int, name: str) -> str:
    """/proc/PID/NAME as text, with errors a person understands."""
    path = f"{proc_dir(pid)}/{name}"  # a live thread's, should the main thread have ended
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        raise LeaktraceError(f"no process with PID {pid}") from None
    except PermissionError:
        raise LeaktraceError(
            f"cannot read {path}: permission denied (the process belongs to another user; "
            "run leaktrace as that user or as root)"
        ) from None
    except ProcessLookupError:
        raise LeaktraceError(f"process {pid} exited while being read") from None
    except OSError as error:
        raise LeaktraceError(f"cannot read {path}: {error.strerror}") from None


def process_exists(pid: int) -> bool:
    try:
        with open(f"{proc_dir(pid)}/stat") as handle:
            # A zombie has no memory left to watch: "pid (comm) Z ..."
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
