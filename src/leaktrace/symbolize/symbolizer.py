"""The Symbolizer: picks, per module, which file to ask (the module or its separate debug
file), asks addr2line for all of a module's addresses at once, fills gaps from the ELF symbol
table, and caches answers."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from leaktrace.model import Frame
from leaktrace.symbolize.addr2line import run_addr2line
from leaktrace.symbolize.batch_process import SymbolizerToolFailed
from leaktrace.symbolize.debug_files import DEFAULT_DEBUG_ROOTS, find_debug_file
from leaktrace.symbolize.debuginfod import DebuginfodClient
from leaktrace.symbolize.elf_info import read_elf_info
from leaktrace.symbolize.elf_symbols import ElfSymbolTable
from leaktrace.symbolize.llvm_symbolizer import run_llvm_symbolizer

Request = tuple[str, int]  # (module path, file-relative address of the instruction)
ToolRunner = Callable[[str, str, list[int], str], dict[int, list[Frame]]]

# Back ends in order of preference; see docs/symbolizer.md for the measurements behind it.
TOOLS: dict[str, ToolRunner] = {
    "llvm-symbolizer": run_llvm_symbolizer,
    "addr2line": run_addr2line,
}


class Symbolizer:
    """resolve() maps each (module path, file-relative address) to its frames, innermost
    inlined frame first and the non-inlined function last. Unresolved parts stay None; every
    frame keeps module and offset. `Frame.address` is 0: the caller knows the runtime one.

    `notes` collects one-line remarks for the report (missing files, no addr2line, ...),
    each said once."""

    def __init__(self, *, tool: str | None = "auto",
                 debug_roots: tuple[str, ...] = DEFAULT_DEBUG_ROOTS,
                 expected_build_ids: dict[str, bytes] | None = None,
                 debuginfod: DebuginfodClient | str | None = "environment") -> None:
        """tool: "auto" (llvm-symbolizer, else addr2line), one of TOOLS by name, or None for
        ELF symbol tables only. debuginfod: where to fetch debug info missing here; by default
        the servers DEBUGINFOD_URLS names, if any."""
        self.tool_name, self.tool_path = self._find_tool(tool)
        self.debug_roots = debug_roots
        self.expected_build_ids = expected_build_ids or {}
        self.notes: list[str] = []
        self._cache: dict[Request, list[Frame]] = {}
        self._symbol_tables: dict[str, ElfSymbolTable] = {}
        self.debuginfod = (DebuginfodClient.from_environment(note=self._note)
                           if isinstance(debuginfod, str) else debuginfod)
        if tool and self.tool_path is None:
            wanted = "addr2line or llvm-symbolizer" if tool == "auto" else tool
            self._note(f"{wanted} not found (install llvm): function names come from ELF "
                       "symbol tables, without files or lines")
        elif tool == "auto" and self.tool_name == "addr2line":
            # binutils addr2line misreads DWARF 5 file names for code from headers.
            self._note("llvm-symbolizer not found, using addr2line: files of code from headers "
                       "may be wrong with DWARF 5 (install the llvm package)")

    @staticmethod
    def _find_tool(tool: str | None) -> tuple[str | None, str | None]:
        if tool is None:
            return None, None
        if tool != "auto" and tool not in TOOLS:
            raise ValueError(f"unknown symbolizer tool {tool!r}")
        for name in TOOLS if tool == "auto" else [tool]:
            path = shutil.which(name)
            if path:
                return name, path
        return None, None

    def resolve(self, requests: Iterable[Request]) -> dict[Request, list[Frame]]:
        wanted = set(requests)
        by_module: dict[str, set[int]] = defaultdict(set)
        for module, offset in wanted - self._cache.keys():
            by_module[module].add(offset)
        # One addr2line per module; they run in parallel (the work is in the child processes).
        workers = max(1, min(len(by_module), os.cpu_count() or 1))
        items = list(by_module.items())
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda item: self._resolve_module(*item), items))
        except RuntimeError:  # no thread could start (`ulimit -v`): one module at a time
            results = [self._resolve_module(*item) for item in items]
        for module, frames in results:
            for offset, frame_list in frames.items():
                self._cache[(module, offset)] = frame_list
        # Fresh copies: callers fill in runtime addresses.
        return {req: [replace(f) for f in self._cache[req]] for req in wanted}

    def _resolve_module(self, module: str,
                        offsets: set[int]) -> tuple[str, dict[int, list[Frame]]]:
        ordered = sorted(offsets)
        unresolved = {o: [Frame(address=0, module=module, offset=o)] for o in ordered}
        if not module.startswith("/"):
            return module, unresolved  # [vdso] and the like: nothing on disk to read
        if os.path.exists(module) and not os.path.isfile(module):
            # A FIFO or a device: opening it could block forever or never end.
            self._note(f"{module} is not a regular file: its frames show module+offset only")
            return module, unresolved
        info = read_elf_info(module)
        if info is None:
            exists = os.path.exists(module)
            self._note(f"{module} {'is not a readable ELF file' if exists else 'no longer exists'}"
                       ": its frames show module+offset only")
            return module, unresolved
        expected = self.expected_build_ids.get(module)
        if expected and info.build_id and expected != info.build_id:
            self._note(f"{module} was rebuilt since the capture (its build-id differs): its "
                       "frames show module+offset only")
            return module, unresolved
        frames = unresolved
        if self.tool_name and self.tool_path:
            source = module
            if not info.has_dwarf:  # pass the separate debug file ourselves: same addresses
                source = find_debug_file(module, info, self.debug_roots) or module
                if source == module and self.debuginfod and info.build_id:
                    source = self.debuginfod.debuginfo(info.build_id, module) or module
            try:
                frames = TOOLS[self.tool_name](self.tool_path, source, ordered, module)
            except SymbolizerToolFailed as e:
                self._note(f"{e}; using ELF symbols for {os.path.basename(module)}")
        self._fill_function_names(module, frames)
        return module, frames

    def _fill_function_names(self, module: str, frames: dict[int, list[Frame]]) -> None:
        """Where the tool found no function (no debug info, no .symtab), try .dynsym too."""
        for offset, frame_list in frames.items():
            outer = frame_list[-1]
            if outer.function is None:
                table = self._symbol_tables.get(module)
                if table is None:
                    table = self._symbol_tables[module] = ElfSymbolTable(module)
                outer.function = table.lookup(offset)

    def _note(self, text: str) -> None:
        if text not in self.notes:  # list.append is atomic; a rare duplicate would be harmless
            self.notes.append(text)
