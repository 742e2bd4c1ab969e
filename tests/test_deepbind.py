"""Libraries loaded with RTLD_DEEPBIND (PHP loads its extensions so) look symbols up in their
own scope first, past the preloaded shim: their malloc and free went to libc unseen, so a
block the program allocated and the plugin freed was reported definitely lost, and the
plugin's own leak was missed (php -r 'echo 1;': 640 bytes in 40 blocks definitely lost,
valgrind none). A deep-bound load of a path is now followed by the plugin's GOT pointed at the
hooks; one by bare name keeps the caller's search path (RUNPATH) and is named in the notes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from leakharness import json_report, leaktrace, marker_line

PROGRAMS = Path(__file__).parent / "programs"
MAIN = "deepbind_main.c"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("deepbind")
    (work / "plugins").mkdir()
    subprocess.run(["gcc", "-O0", "-g", "-shared", "-fPIC", "-o",  # -O0: no tail call
                    str(work / "plugins" / "libdeepbind_plugin.so"),
                    str(PROGRAMS / "deepbind_lib.c")], check=True)
    exe = work / "deepbind_main"
    subprocess.run(["gcc", "-O2", "-g", "-o", str(exe), str(PROGRAMS / MAIN), "-ldl",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN/plugins"], check=True)
    return exe


def _run(program: Path, how: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    capture = tmp_path / f"{how}.lt"
    done = leaktrace("run", "-o", str(capture), "--report-file", "/dev/null", "--",
                     str(program), how)
    assert done.returncode == 0, done.stderr
    return done.stdout, json_report(capture)


@pytest.mark.parametrize("how", ["path", "lazy"])
def test_a_deep_bound_plugin_is_seen(program: Path, tmp_path: Path, how: str) -> None:
    out, report = _run(program, how, tmp_path)
    assert out == "loaded\n"
    lost = [(r["bytes"], [f.get("line") for f in r["frames"][:2]]) for r in report["records"]
            if r["leak_kind"] == "definitely lost"]
    assert lost == [(200, [marker_line("deepbind_lib.c", "plugin"),
                           marker_line(MAIN, "main")])]
    assert not any("RTLD_DEEPBIND" in note for note in report["notes"])


def test_a_plugin_deep_bound_by_name_is_loaded_as_without_leaktrace(program: Path,
                                                                    tmp_path: Path) -> None:
    """Found through the program's RUNPATH, which the dlopen's caller decides: loaded as
    natively; what it does is unseen, and the notes say so."""
    out, report = _run(program, "name", tmp_path)
    assert out == "loaded\n"
    assert any("loaded with RTLD_DEEPBIND by name (libdeepbind_plugin.so)" in note
               for note in report["notes"]), report["notes"]


OWN_ALLOCATOR = """
#include <stddef.h>
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
int own_calls;
void *malloc(size_t n) { own_calls++; return __libc_malloc(n); }
void free(void *p) { own_calls++; __libc_free(p); }
"""
PLUGIN_WITH_OWN_ALLOCATOR = """
#include <stdlib.h>
extern int own_calls;
int uses_own_allocator(void)
{
    int before = own_calls;
    void *volatile block = malloc(24); /* volatile: kept, not folded away with its free */
    free(block);
    return own_calls - before;
}
"""
LOADER = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    void *plugin = dlopen(argv[1], (argc > 2 ? RTLD_NOW : RTLD_LAZY) | RTLD_DEEPBIND);
    if (!plugin) return 1;
    int (*uses)(void) = (int (*)(void))dlsym(plugin, "uses_own_allocator");
    printf("own allocator calls: %d\\n", uses());
    return 0;
}
"""


@pytest.mark.parametrize("binding", ["lazy", "now"])
def test_a_deep_bound_plugin_keeps_the_allocator_it_brings(tmp_path: Path, binding: str) -> None:
    """Its own dependency defines malloc and free: the deep-bound lookups find those, and so
    must they under leaktrace (a lazy slot was pointed at the hooks, so at glibc's)."""
    from native_programs import compile_source

    own = compile_source(tmp_path, "myalloc.c", OWN_ALLOCATOR, "-O1", "-shared", "-fPIC")
    plugin = compile_source(tmp_path, "ownplugin.c", PLUGIN_WITH_OWN_ALLOCATOR, "-O1",
                            "-shared", "-fPIC", f"-L{tmp_path}", "-Wl,--no-as-needed", "-l:myalloc",
                            f"-Wl,-rpath,{tmp_path}")
    loader = compile_source(tmp_path, "loader.c", LOADER, "-O1", "-ldl")
    assert own.exists()
    args = [str(loader), str(plugin), *(["now"] if binding == "now" else [])]
    native = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert native.stdout == "own allocator calls: 2\n"
    done = leaktrace("run", "--report-file", "/dev/null", "--", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == native.stdout
