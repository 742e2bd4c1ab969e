"""The symbolizer on real binaries compiled here: names (C, demangled C++), file:line,
inlined frames, separate debug info, and what stays when nothing resolves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from leakharness import run_traced
from native_programs import compile_source, marker_line, return_addresses_of_calls

from leaktrace.symbolize import Symbolizer
from leaktrace.symbolize.symbolizer import TOOLS

TOOL_NAMES = [pytest.param(name, marks=pytest.mark.skipif(shutil.which(name) is None,
                                                          reason=f"{name} not installed"))
              for name in TOOLS]

C_SOURCE = """\
#include <stdlib.h>
__attribute__((noinline)) void *leaf(int n) {
    return malloc(n); /* leaf-malloc */
}
__attribute__((noinline)) void *middle(int n) {
    void *p = leaf(n); /* middle-leaf */
    return p;
}
int main(int argc, char **argv) {
    (void)argv;
    return middle(argc) != 0;
}
"""

CPP_SOURCE = """\
#include <cstdlib>
#include <string>
#include <vector>
namespace app { namespace store {
struct Table {
    __attribute__((noinline)) void *grow(const std::string &name, std::vector<int> &v);
};
void *Table::grow(const std::string &name, std::vector<int> &v) {
    v.push_back((int)name.size());
    return std::malloc(name.size() + v.size()); /* grow-malloc */
}
} }
int main(int argc, char **) {
    app::store::Table t; std::vector<int> v; std::string s(argc, 'x');
    return t.grow(s, v) != nullptr;
}
"""

# At -O2, fill() is inlined into build(): the malloc call belongs to both.
INLINE_SOURCE = """\
#include <stdlib.h>
#include <string.h>
inline char *fill(int n) {
    char *p = malloc(n * 2); /* fill-malloc */
    memset(p, 1, n);
    return p;
}
__attribute__((noinline)) char *build(int n) {
    char *p = fill(n); /* build-fill */
    p[0] = 2;
    return p;
}
int main(int argc, char **argv) { (void)argv; return build(argc)[1]; }
"""


def lookups(binary: Path, callee: str) -> list[tuple[str, int]]:
    """(module, address of the call instruction) for each call, as callers pass them."""
    addresses = return_addresses_of_calls(binary, callee)
    assert addresses, f"no call to {callee} in {binary}"
    return [(str(binary), ra - 1) for ra in addresses]


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_c_function_file_and_line(tmp_path: Path, tool: str) -> None:
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0")
    symbolizer = Symbolizer(tool=tool)
    [request] = lookups(exe, "malloc")
    [frame] = symbolizer.resolve([request])[request]
    assert frame.function == "leaf"
    assert frame.file is not None and Path(frame.file).name == "prog.c"
    assert frame.line == marker_line(C_SOURCE, "leaf-malloc")
    assert (frame.module, frame.offset, frame.inlined) == (str(exe), request[1], False)
    [caller] = lookups(exe, "leaf")
    [frame] = symbolizer.resolve([caller])[caller]
    assert (frame.function, frame.line) == ("middle", marker_line(C_SOURCE, "middle-leaf"))


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_cpp_names_are_demangled(tmp_path: Path, tool: str) -> None:
    exe = compile_source(tmp_path, "prog.cpp", CPP_SOURCE, "-O0")
    [request] = lookups(exe, "malloc")
    frames = Symbolizer(tool=tool).resolve([request])[request]
    function = frames[-1].function or ""
    assert function.startswith("app::store::Table::grow("), function
    assert "std::" in function  # parameter types demangled: std::__cxx11::basic_string...
    assert frames[-1].line == marker_line(CPP_SOURCE, "grow-malloc")


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_inlined_frames_innermost_first(tmp_path: Path, tool: str) -> None:
    exe = compile_source(tmp_path, "inl.c", INLINE_SOURCE, "-O2")
    [request] = lookups(exe, "malloc")
    frames = Symbolizer(tool=tool).resolve([request])[request]
    assert [(f.function, f.line, f.inlined) for f in frames] == [
        ("fill", marker_line(INLINE_SOURCE, "fill-malloc"), True),
        ("build", marker_line(INLINE_SOURCE, "build-fill"), False),
    ]


def test_many_frames_in_one_batch(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0")
    # Every byte of the program's text: one tool process per module whatever the count.
    requests = [(str(exe), offset) for offset in range(0x1000, 0x1400)]
    result = Symbolizer().resolve(requests)
    assert set(result) == set(requests)
    assert any(frames[-1].function == "main" for frames in result.values())


def _split_debug_info(exe: Path, debug_file: Path) -> None:
    for command in (["objcopy", "--only-keep-debug", str(exe), str(debug_file)],
                    ["objcopy", "--strip-debug", "--strip-unneeded", str(exe)]):
        subprocess.run(command, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy not installed")
def test_separate_debug_file_by_debuglink(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0")
    [request] = lookups(exe, "malloc")
    debug_dir = tmp_path / ".debug"
    debug_dir.mkdir()
    _split_debug_info(exe, debug_dir / "prog.debug")
    subprocess.run(["objcopy", f"--add-gnu-debuglink={debug_dir / 'prog.debug'}", str(exe)],
                   check=True, capture_output=True)
    [frame] = Symbolizer().resolve([request])[request]
    assert (frame.function, frame.line) == ("leaf", marker_line(C_SOURCE, "leaf-malloc"))


@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy not installed")
def test_separate_debug_file_by_build_id(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0", "-Wl,--build-id=sha1")
    [request] = lookups(exe, "malloc")
    from leaktrace.symbolize.elf_info import read_elf_info

    info = read_elf_info(str(exe))
    assert info is not None and info.build_id
    root = tmp_path / "debug-root"
    where = root / ".build-id" / info.build_id.hex()[:2]
    where.mkdir(parents=True)
    _split_debug_info(exe, where / (info.build_id.hex()[2:] + ".debug"))
    [frame] = Symbolizer(debug_roots=(str(root),)).resolve([request])[request]
    assert (frame.function, frame.line) == ("leaf", marker_line(C_SOURCE, "leaf-malloc"))


def test_installed_libc_debug_info_is_used() -> None:
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    from leaktrace.symbolize.debug_files import find_debug_file
    from leaktrace.symbolize.elf_info import read_elf_info

    info = read_elf_info(str(libc)) if libc.exists() else None
    if info is None or info.has_dwarf or find_debug_file(str(libc), info) is None:
        pytest.skip("needs a stripped libc with its debug package installed (libc6-dbg)")
    requests = lookups(libc, "malloc")[:20]
    result = Symbolizer().resolve(requests)
    assert requests and set(result) == set(requests)
    assert all(frames[-1].file and frames[-1].line for frames in result.values())


def _elf_facts_by_pyelftools(path: str) -> tuple[bool, bytes | None, str | None]:
    """The same facts read_elf_info gives, read by pyelftools (what it used before)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection

    with open(path, "rb") as f:
        elf = ELFFile(f)
        info = elf.get_section_by_name(".debug_info")
        has_dwarf = bool(info is not None and info.header.sh_type != "SHT_NOBITS"
                         and info.header.sh_size > 0)
        build_id = next((bytes.fromhex(note["n_desc"]) for section in elf.iter_sections()
                         if isinstance(section, NoteSection) for note in section.iter_notes()
                         if note["n_type"] == "NT_GNU_BUILD_ID"), None)
        link = elf.get_section_by_name(".gnu_debuglink")
        debuglink = link.data().split(b"\0", 1)[0].decode() if link is not None else None
    return has_dwarf, build_id, debuglink or None


@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy not installed")
def test_elf_facts_agree_with_pyelftools(tmp_path: Path) -> None:
    """read_elf_info reads ELF headers by hand: the same answers as pyelftools on a program
    with DWARF, the same program split into a debuglink and a debug file, and libc."""
    from leaktrace.symbolize.elf_info import read_elf_info

    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0", "-Wl,--build-id=sha1")
    stripped = tmp_path / "stripped"
    shutil.copy(exe, stripped)
    _split_debug_info(stripped, tmp_path / "prog.debug")
    subprocess.run(["objcopy", f"--add-gnu-debuglink={tmp_path / 'prog.debug'}", str(stripped)],
                   check=True, capture_output=True)
    files = [exe, stripped, tmp_path / "prog.debug", Path("/lib/x86_64-linux-gnu/libc.so.6")]
    for path in filter(Path.exists, files):
        info = read_elf_info(str(path))
        assert info is not None
        assert (info.has_dwarf, info.build_id, info.debuglink) == \
            _elf_facts_by_pyelftools(str(path)), path
    facts = read_elf_info(str(stripped))
    assert facts is not None and not facts.has_dwarf and facts.debuglink == "prog.debug"
    assert facts.build_id and len(facts.build_id) == 20
    # Not ELF, or cut short: no facts, no exception.
    (tmp_path / "text").write_text("not an ELF file\n")
    cut = tmp_path / "cut"
    cut.write_bytes(exe.read_bytes()[:100])
    assert read_elf_info(str(tmp_path / "text")) is None
    assert read_elf_info(str(cut)) is None


def _functions_by_pyelftools(path: str) -> list[tuple[int, int, bytes]]:
    """The function symbols read_function_symbols gives, read by pyelftools (which names
    STT_GNU_IFUNC, 10, after STT_LOOS, the same number)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        if not isinstance(table, SymbolTableSection):
            return []
        return sorted({(sym["st_value"], sym["st_size"], sym.name.encode())
                       for sym in table.iter_symbols()
                       if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")
                       and sym["st_value"] and sym["st_shndx"] != "SHN_UNDEF" and sym.name})


@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy not installed")
def test_function_symbols_agree_with_pyelftools(tmp_path: Path) -> None:
    """read_function_symbols reads .symtab (else .dynsym) by hand: the same functions as
    pyelftools in a program, its debug file, the program stripped of .symtab, and libc (only
    .dynsym, with ifuncs); none, and no exception, for what is not ELF or is cut short."""
    from leaktrace.symbolize.elf_info import read_function_symbols

    exe = compile_source(tmp_path, "prog.cpp", CPP_SOURCE, "-O0")
    debug_only = tmp_path / "prog.debug"
    _split_debug_info(Path(shutil.copy(exe, tmp_path / "split")), debug_only)
    stripped = tmp_path / "stripped"
    subprocess.run(["objcopy", "--strip-all", str(exe), str(stripped)], check=True)
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    for path in filter(Path.exists, [exe, debug_only, stripped, libc]):
        assert read_function_symbols(str(path)) == _functions_by_pyelftools(str(path)), path
    assert any(name.startswith(b"_ZN3app5store5Table4grow")
               for _, _, name in read_function_symbols(str(exe)))
    if libc.exists():  # memcpy is an ifunc there
        assert any(name == b"memcpy" for _, _, name in read_function_symbols(str(libc)))
    (tmp_path / "text").write_text("not an ELF file\n")
    cut = tmp_path / "cut"
    cut.write_bytes(exe.read_bytes()[:3000])
    assert read_function_symbols(str(tmp_path / "text")) == []
    assert read_function_symbols(str(cut)) == []
    assert read_function_symbols(str(tmp_path / "missing")) == []


def test_unresolved_frames_keep_module_and_offset(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.so")
    symbolizer = Symbolizer()
    result = symbolizer.resolve([(missing, 0x1234), ("[vdso]", 0x10)])
    [frame] = result[(missing, 0x1234)]
    assert (frame.function, frame.file, frame.module, frame.offset) == (None, None, missing,
                                                                          0x1234)
    assert frame.location() == f"{missing}+0x1234"
    assert [n for n in symbolizer.notes if "gone.so" in n]
    assert result[("[vdso]", 0x10)][0].function is None


def test_rebuilt_module_is_not_misread(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0")
    [request] = lookups(exe, "malloc")
    symbolizer = Symbolizer(expected_build_ids={str(exe): b"\x00" * 20})
    [frame] = symbolizer.resolve([request])[request]
    assert frame.function is None
    assert any("rebuilt" in n for n in symbolizer.notes)


def test_elf_symbol_fallback_without_tools(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "prog.cpp", CPP_SOURCE, "-O0")
    [request] = lookups(exe, "malloc")
    symbolizer = Symbolizer(tool=None)
    [frame] = symbolizer.resolve([request])[request]
    assert (frame.function or "").startswith("app::store::Table::grow(")
    assert frame.file is None and frame.line is None


# A non-PIE program that takes free's address gets a canonical PLT entry: free stays an
# undefined symbol of .dynsym, but with the entry's address as its value.
ADDRESS_TAKEN_SOURCE = """\
#include <stdio.h>
#include <stdlib.h>
void (*volatile keep_free)(void *);
__attribute__((noinline)) void *make(size_t n) { return malloc(n); }
int main(void) {
    keep_free = free;
    void *volatile p = make(40);
    p = NULL;
    puts("done");
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("strip") is None, reason="strip not installed")
def test_stripped_program_frames_are_not_named_after_imports(tmp_path: Path) -> None:
    """A stripped program has only .dynsym; its undefined symbols name other files'
    functions. They were read as this file's, and every frame of the program was "free"."""
    exe = compile_source(tmp_path, "taken.c", ADDRESS_TAKEN_SOURCE, "-O0", "-fno-pie",
                         "-no-pie")
    subprocess.run(["strip", "--strip-all", str(exe)], check=True)
    dynsym = subprocess.run(["readelf", "-W", "--dyn-syms", str(exe)], capture_output=True,
                            text=True, check=True).stdout
    assert any(line.split()[6:8] == ["UND", "free@GLIBC_2.2.5"] and int(line.split()[1], 16)
               for line in dynsym.splitlines() if len(line.split()) >= 8), dynsym
    run = run_traced(exe, work=tmp_path)
    assert (run.returncode, run.stdout) == (0, "done\n")
    [record] = [r for r in run.report["records"] if r["leak_kind"] == "definitely lost"]
    assert (record["bytes"], record["blocks"]) == (40, 1)
    own = [f for f in record["frames"] if f["module"] == str(exe)]
    assert len(own) == 3  # make, main, _start
    assert [f["function"] for f in own] == [None, None, None], own


NOISY_PRELOAD = """\
#include <unistd.h>
__attribute__((destructor)) static void bye(void) { write(1, "bye\\n", 4); }
"""


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_the_programs_preload_stays_out_of_the_tools(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, tool: str) -> None:
    """A user's LD_PRELOAD is meant for the program: in the symbolizer, a library writing to
    stdout at exit broke the answers (every frame lost its file:line)."""
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0")
    noisy = tmp_path / "libnoisy.so"
    (tmp_path / "noisy.c").write_text(NOISY_PRELOAD)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(noisy), str(tmp_path / "noisy.c")],
                   check=True)
    monkeypatch.setenv("LD_PRELOAD", str(noisy))
    symbolizer = Symbolizer(tool=tool)
    [request] = lookups(exe, "malloc")
    [frame] = symbolizer.resolve([request])[request]
    assert (frame.function, frame.line) == ("leaf", marker_line(C_SOURCE, "leaf-malloc"))
    assert symbolizer.notes == []


def test_missing_tool_is_noted_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no addr2line, no llvm-symbolizer
    exe = compile_source(tmp_path, "prog.c", C_SOURCE, "-O0") if shutil.which("gcc") else None
    symbolizer = Symbolizer()
    assert symbolizer.tool_name is None
    assert len(symbolizer.notes) == 1 and "not found" in symbolizer.notes[0]
    if exe is not None:
        symbolizer.resolve([(str(exe), 0x10)])
        assert len(symbolizer.notes) == 1


@pytest.mark.parametrize(("raw", "clean"), [
    ("level3.constprop.0", "level3"),
    ("level1.constprop.0.isra.0", "level1"),
    ("f(int) [clone .constprop.0] [clone .isra.0]", "f(int)"),
    ("f(int) (.constprop.0.isra.0)", "f(int)"),  # LLVM's demangler
    ("g(char*) (.part.0)", "g(char*)"),
    ("_IO_puts@@GLIBC_2.2.5", "_IO_puts"),
    ("r::inner::work::h5228c4ca53fe1bb4", "r::inner::work"),
    # Legacy Rust names as the Itanium demanglers leave them (rustc-demangle's output right).
    ("_$LT$alloc..string..String$u20$as$u20$core..convert..From$LT$$RF$str$GT$$GT$::from"
     "::h0f3c1d2e4b5a6978", "<alloc::string::String as core::convert::From<&str>>::from"),
    ("_$LT$u8$u20$as$u20$alloc..vec..spec_from_elem..SpecFromElem$GT$::from_elem",
     "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"),
    ("std::rt::lang_start::_$u7b$$u7b$closure$u7d$$u7d$::h9a8b7c6d5e4f3a2b",
     "std::rt::lang_start::{{closure}}"),
    ("core::ops::function::FnOnce::call_once$u7b$$u7b$vtable.shim$u7d$$u7d$$LP$$RP$",
     "core::ops::function::FnOnce::call_once{{vtable.shim}}()"),
    ("printf(char const*, ...)", "printf(char const*, ...)"),
    ("std::vector<int, std::allocator<int> >::push_back(int const&)",
     "std::vector<int, std::allocator<int> >::push_back(int const&)"),
])
def test_function_names_read_like_the_source(raw: str, clean: str) -> None:
    from leaktrace.symbolize.names import clean_function_name

    assert clean_function_name(raw) == clean
