"""The two .eh_frame readers agree: the shim's (shim/unwind.c, which unwinds every recorded
allocation) and attach's (src/leaktrace/attach/unwind.py, which finds a safe point in a
stopped thread). tests/programs/unwind_rules.c compiles the shim's reader into a small
program that prints the rule it computes for file addresses of a real library; the Python
reader is asked for the same addresses. Both must give the same rule (CFA register and
offset, where RBP is saved) or both stop there, at the start of every function and at
addresses inside it (prologue, body, epilogue)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from leaktrace.attach.unwind import RBP, RSP, ModuleFrames, _Unsupported

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "programs" / "unwind_rules.c"
# Offsets into each function: its first instructions (the prologue moves the CFA at almost
# every one), and further in, where the body or an epilogue can be.
OFFSETS = (0, 1, 2, 4, 5, 8, 13, 21, 34, 55, 89, 144, 233)
MAX_FUNCTIONS = 2500  # per library, spread evenly: enough to meet every CFI shape

Rule = tuple[str, int, int] | str


def _libraries() -> dict[str, str]:
    found = {}
    for name in ("libc.so.6", "libstdc++.so.6"):
        for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"):
            if os.path.exists(os.path.join(directory, name)):
                found[name] = os.path.realpath(os.path.join(directory, name))
                break
    # This interpreter's libpython; else the system's (Debian's python3 has the interpreter
    # inside its executable, which dlopen cannot load: the library is package libpython3.X).
    candidates = [os.path.join(sysconfig.get_config_var("LIBDIR") or "",
                               sysconfig.get_config_var("INSTSONAME") or "")]
    for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"):
        candidates += sorted(glob.glob(os.path.join(directory, "libpython3*.so.1*")))
    libpython = next((path for path in candidates if os.path.isfile(path)), None)
    if libpython is not None:
        found["libpython"] = os.path.realpath(libpython)
    return found


LIBRARIES = _libraries()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path_factory.mktemp("unwind") / "unwind_rules"
    subprocess.run(["gcc", "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror",
                    f"-I{ROOT / 'shim'}", "-o", str(exe), str(HARNESS), "-ldl"],
                   check=True, capture_output=True, text=True)
    return exe


def _python_rule(module: ModuleFrames, address: int) -> Rule:
    try:
        rule = module.rule_at(address)
    except _Unsupported:
        return "stop"
    if rule is None or rule.ra_offset != -8 or rule.cfa_register not in (RSP, RBP):
        return "stop"  # no FDE, the outermost frame, or a rule neither unwinder follows
    rbp = 0 if rule.rbp_offset is None else -rule.rbp_offset
    return ("rbp" if rule.cfa_register == RBP else "rsp", rule.cfa_offset, rbp)


def _shim_rules(harness: Path, library: str, addresses: list[int]) -> dict[int, Rule]:
    done = subprocess.run([str(harness), library], input="".join(f"{a:x}\n" for a in addresses),
                          capture_output=True, text=True, check=True, timeout=120)
    rules: dict[int, Rule] = {}
    for line in done.stdout.splitlines():
        address, *rest = line.split()
        rules[int(address, 16)] = ("stop" if rest[0] in ("end", "unsupported")
                                   else (rest[0], int(rest[1]), int(rest[2])))
    assert len(rules) == len(addresses)
    return rules


def _beyond_the_shim_cache(shim: Rule, python: Rule) -> bool:
    """The one known difference: the shim's rule cache keeps a CFA offset in 16 bits and an
    RBP save offset in 14 (shim/unwind.c, pack_rule), so a frame of 64 KiB or more ends the
    shim's backtrace there, where the Python reader follows it."""
    return shim == "stop" and isinstance(python, tuple) and (python[1] >= 1 << 16
                                                              or python[2] >= 1 << 14)


@pytest.mark.parametrize("name", ["libc.so.6", "libstdc++.so.6", "libpython"])
def test_shim_and_attach_read_eh_frame_alike(harness: Path, name: str) -> None:
    if name not in LIBRARIES:
        pytest.skip(f"{name} is not installed (libpython: apt-get install libpython3-dev)")
    library = LIBRARIES[name]
    module = ModuleFrames.load(library)
    assert module is not None and len(module.starts) > 500
    step = max(1, len(module.starts) // MAX_FUNCTIONS)
    addresses = sorted({start + offset for start in module.starts[::step] for offset in OFFSETS})
    shim = _shim_rules(harness, library, addresses)
    python = {address: _python_rule(module, address) for address in addresses}
    differ = {hex(a): (shim[a], python[a]) for a in addresses
              if shim[a] != python[a] and not _beyond_the_shim_cache(shim[a], python[a])}
    assert not differ, f"{len(differ)} of {len(addresses)} differ (shim, python): " + \
        str(dict(list(differ.items())[:10]))
    followed = [rule for rule in shim.values() if isinstance(rule, tuple)]
    assert len(followed) > 0.8 * len(addresses)  # the comparison is not "both gave up"
    assert {rule[0] for rule in followed} >= {"rsp"}
    assert any(rule[2] for rule in followed)  # RBP saved somewhere: that rule compared too
