"""Make function names from any back end read the way the source does."""

from __future__ import annotations

import functools
import re

# Legacy Rust symbols end in a hash; c++filt and addr2line hide it, llvm-symbolizer does not.
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
# Names taken from a symbol table can carry a version: "_IO_puts@@GLIBC_2.2.5".
_SYMBOL_VERSION = re.compile(r"@@?[A-Za-z][A-Za-z0-9_.]*$")
# GCC's optimized copies of a function: "level3.constprop.0.isra.0" in C,
# "f(int) [clone .constprop.0]" in demangled C++ (GNU's demangler), "f(int) (.constprop.0)"
# (LLVM's). They are the same source function, and addr2line already names them so;
# llvm-symbolizer gives the clone's symbol name.
_C_CLONE = re.compile(r"(\.(constprop|isra|part|cold|lto_priv|localalias|clone|"
                      r"specialized|ipa_sra)(\.\d+)?)+$")
_CXX_CLONE = re.compile(r"( \[clone \.[a-z_]+(\.\d+)?\]| \((\.[a-z_]+\.\d+)+\))+$")


# Legacy Rust mangling escapes some characters inside path segments ("Box$LT$T$GT$::new"),
# writes "::" inside a segment as "..", and puts "_" before a segment that starts with an
# escape ("_$LT$u8$u20$as$u20$alloc..vec..SpecFromElem$GT$::from_elem"). The Itanium
# demanglers (c++filt's without --format=rust, llvm-symbolizer's) leave all three, and
# inlined frames named from DWARF can keep them; rustc-demangle undoes them, as here.
_RUST_ESCAPES = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",",
                 "$SP$": "@", "$LP$": "(", "$RP$": ")", "$u20$": " ", "$u22$": '"',
                 "$u27$": "'", "$u2b$": "+", "$u3b$": ";", "$u5b$": "[", "$u5d$": "]",
                 "$u7b$": "{", "$u7d$": "}", "$u7e$": "~"}
_RUST_ESCAPE = re.compile("|".join(re.escape(e) for e in _RUST_ESCAPES))
_RUST_ESCAPED_SEGMENT = re.compile(r"(^|::)_(?=\$)")


def without_version(name: str) -> str:
    """"realpath@@GLIBC_2.3" -> "realpath" (valgrind's suppressions carry such versions)."""
    return _SYMBOL_VERSION.sub("", name)


def clean_function_name(name: str) -> str:
    name = without_version(name)
    rust = _RUST_HASH.search(name) is not None or _RUST_ESCAPE.search(name) is not None
    name = _RUST_HASH.sub("", name)
    if rust:
        name = _RUST_ESCAPED_SEGMENT.sub(r"\1", name)
        name = _RUST_ESCAPE.sub(lambda m: _RUST_ESCAPES[m.group(0)], name)
        name = name.replace("..", "::")
    return without_clone(name)


def without_clone(name: str) -> str:
    """The source function of a compiler's copy: "f(int) [clone .constprop.0]" -> "f(int)",
    "level3.isra.0" -> "level3"."""
    return _C_CLONE.sub("", _CXX_CLONE.sub("", name))


@functools.cache
def inlined_names(function: str) -> frozenset[str]:
    """The names valgrind may show for an inlined call of `function`: the debug info's short
    name, the last component of the qualified name without its parameters ("make" for
    app::Box<app::Widget>::make(int)), with its template arguments, without them, and as
    GCC writes a deduced template's ("basic_string<>")."""
    depth = 0
    last_start = 0
    end = len(function)
    for i, char in enumerate(function):
        if char in "<(":
            if char == "(" and depth == 0:
                end = i
                break
            depth += 1
        elif char in ">)":
            depth -= 1
        elif char == ":" and depth == 0 and function.startswith("::", i):
            last_start = i + 2
    last = function[last_start:end].strip()
    if depth != 0 or not last:
        return frozenset()  # "operator<" and the like: not taken apart
    names = {last}
    if last.endswith(">") and "<" in last:
        base = last[:last.index("<")]
        names |= {base, base + "<>"}
    return frozenset(names)


# C++'s operators new, by the names the reports give them (valgrind's), and their symbols.
OPERATOR_NEW_SYMBOLS = {
    f"operator new{array}(unsigned long{args})": f"_Zn{code}m{suffix}"
    for array, code in (("", "w"), ("[]", "a"))
    for args, suffix in (("", ""), (", std::nothrow_t const&", "RKSt9nothrow_t"),
                         (", std::align_val_t", "St11align_val_t"),
                         (", std::align_val_t, std::nothrow_t const&",
                          "St11align_val_tRKSt9nothrow_t"))
}
