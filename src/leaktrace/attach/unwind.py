"""The return addresses of a stopped thread, from the call-frame information (.eh_frame) of
the files its code comes from: what the safe-point check needs to know the functions really
on the call chain. A word-by-word stack scan would also see stale return addresses left in
unused stack slots, and could refuse an idle thread forever.

Only what compilers emit for x86-64 is interpreted: a CFA of register + offset, and the
return address and RBP saved at CFA offsets. Anything else (a CFA expression, as in PLT
stubs and signal trampolines; code without CFI, such as JIT code or the vDSO) ends the unwind
early, and the caller falls back to scanning the rest of the stack conservatively."""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from leaktrace.attach.process_info import MemoryMap
from leaktrace.proc_view import proc_dir

MAX_FRAMES = 512
RSP, RBP, RA = 7, 6, 16  # DWARF register numbers of x86-64
# DWARF numbers 0-16 in the order of struct user_regs_struct fields.
DWARF_REGISTERS = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                   "r11", "r12", "r13", "r14", "r15", "rip")


class _Unsupported(Exception):
    """CFI this unwinder does not follow: stop here, scan the rest conservatively."""


class _Bytes:
    """A cursor over section bytes whose first byte sits at virtual address `base`."""

    def __init__(self, data: bytes, base: int, pos: int = 0) -> None:
        self.data, self.base, self.pos = data, base, pos

    def u8(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def fixed(self, fmt: str) -> int:
        value: int = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def uleb(self) -> int:
        result = shift = 0
        while True:
            byte = self.u8()
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    def sleb(self) -> int:
        result = shift = 0
        while True:
            byte = self.u8()
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result - (1 << shift) if byte & 0x40 else result

    def pointer(self, encoding: int, data_base: int = 0) -> int:
        """A DW_EH_PE-encoded value, as a virtual address of the file."""
        at = self.base + self.pos
        formats = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i",
                   0x0C: "<q"}
        kind = encoding & 0x0F
        if kind == 0x01:
            value = self.uleb()
        elif kind == 0x09:
            value = self.sleb()
        elif kind in formats:
            value = self.fixed(formats[kind])
        else:
            raise _Unsupported(f"pointer encoding {encoding:#x}")
        application = encoding & 0x70
        if application == 0x10:
            value += at
        elif application == 0x30:
            value += data_base
        elif application != 0:
            raise _Unsupported(f"pointer encoding {encoding:#x}")
        return value & (2**64 - 1)


@dataclass
class _Cie:
    code_align: int
    data_align: int
    ra_register: int
    fde_encoding: int
    has_augmentation_data: bool
    instructions: bytes


@dataclass
class _Rule:
    """How to find the caller's frame at one pc: CFA = register + offset; the return address
    and RBP at CFA + offset (None: RBP unchanged; RA None: the outermost frame)."""

    cfa_register: int = RSP
    cfa_offset: int = 8
    ra_offset: int | None = -8
    rbp_offset: int | None = None


@dataclass
class ModuleFrames:
    """The .eh_frame_hdr lookup table and .eh_frame of one file, by file virtual address."""

    first_load_vaddr: int
    hdr_vaddr: int = 0
    frame: _Bytes | None = None
    starts: list[int] = field(default_factory=list)  # FDE initial locations, sorted
    fdes: list[int] = field(default_factory=list)  # FDE addresses, same order
    cies: dict[int, _Cie] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> ModuleFrames | None:
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                loads = [s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
                hdr = elf.get_section_by_name(".eh_frame_hdr")
                frame = elf.get_section_by_name(".eh_frame")
                if not loads or hdr is None or frame is None:
                    return None
                module = cls(min(loads))
                module.hdr_vaddr = hdr["sh_addr"]
                module.frame = _Bytes(frame.data(), frame["sh_addr"])
                module._read_table(hdr.data())
                return module
        except (OSError, ELFError, ValueError, struct.error, IndexError, _Unsupported):
            return None

    def _read_table(self, hdr: bytes) -> None:
        cursor = _Bytes(hdr, self.hdr_vaddr, 4)
        _version, frame_encoding, count_encoding, table_encoding = hdr[:4]
        cursor.pointer(frame_encoding, self.hdr_vaddr)
        count = cursor.pointer(count_encoding, self.hdr_vaddr)
        if table_encoding == 0x3B:  # datarel sdata4, what every linker writes: fast path
            pairs = struct.unpack_from(f"<{2 * count}i", hdr, cursor.pos)
            self.starts = [self.hdr_vaddr + v for v in pairs[0::2]]
            self.fdes = [self.hdr_vaddr + v for v in pairs[1::2]]
            return
        for _ in range(count):
            self.starts.append(cursor.pointer(table_encoding, self.hdr_vaddr))
            self.fdes.append(cursor.pointer(table_encoding, self.hdr_vaddr))

    def rule_at(self, pc: int) -> _Rule | None:
        """The unwind rule at file address `pc`, None when no FDE covers it."""
        i = bisect.bisect_right(self.starts, pc) - 1
        if i < 0 or self.frame is None:
            return None
        frame = self.frame
        cursor = _Bytes(frame.data, frame.base, self.fdes[i] - frame.base)
        length = cursor.fixed("<I")
        if length in (0, 0xFFFFFFFF):
            raise _Unsupported("64-bit or empty FDE")
        end = cursor.pos + length
        cie_at = cursor.pos - cursor.fixed("<I")
        cie = self._cie(cie_at)
        begin = cursor.pointer(cie.fde_encoding, self.hdr_vaddr)
        size = cursor.pointer(cie.fde_encoding & 0x0F)
        if not begin <= pc < begin + size:
            return None
        if cie.has_augmentation_data:
            cursor.pos += cursor.uleb()
        rule = _Rule()
        _run(cie.instructions, cie, rule, None, 0, pc, frame.base)
        _run(frame.data[cursor.pos:end], cie, rule, _Rule(**vars(rule)), begin, pc, frame.base)
        return rule

    def _cie(self, pos: int) -> _Cie:
        if pos in self.cies:
            return self.cies[pos]
        assert self.frame is not None
        cursor = _Bytes(self.frame.data, self.frame.base, pos)
        length = cursor.fixed("<I")
        end = cursor.pos + length
        cursor.fixed("<I")  # CIE id
        version = cursor.u8()
        augmentation = b""
        while (byte := cursor.u8()) != 0:
            augmentation += bytes([byte])
        if b"eh" in augmentation:
            raise _Unsupported("eh augmentation")
        code_align, data_align = cursor.uleb(), cursor.sleb()
        ra_register = cursor.u8() if version == 1 else cursor.uleb()
        fde_encoding = 0
        if augmentation.startswith(b"z"):
            cursor.uleb()
            for letter in augmentation[1:].decode("ascii", "replace"):
                if letter == "R":
                    fde_encoding = cursor.u8()
                elif letter == "P":
                    cursor.pointer(cursor.u8() & 0x7F, self.hdr_vaddr)
                elif letter == "L":
                    cursor.u8()
                elif letter == "S":
                    raise _Unsupported("signal frame")
                elif letter != "B":
                    raise _Unsupported(f"augmentation {augmentation!r}")
        cie = _Cie(code_align, data_align, ra_register, fde_encoding,
                   augmentation.startswith(b"z"), self.frame.data[cursor.pos:end])
        if ra_register != RA:
            raise _Unsupported("return address column")
        self.cies[pos] = cie
        return cie


def _run(program: bytes, cie: _Cie, rule: _Rule, initial: _Rule | None, location: int,
         pc: int, base: int) -> None:
    """Execute CFA instructions until the row that covers `pc` (DWARF 5, 6.4.2)."""
    cursor = _Bytes(program, base)
    saved: list[_Rule] = []
    while cursor.pos < len(program):
        op = cursor.u8()
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:  # advance_loc
            location += low * cie.code_align
            if location > pc:
                return
        elif high == 0x80:  # offset
            _set_saved(rule, low, cursor.uleb() * cie.data_align)
        elif high == 0xC0:  # restore
            _restore(rule, initial, low)
        elif op in (0x02, 0x03, 0x04):  # advance_loc1/2/4
            location += cursor.fixed({2: "<B", 3: "<H", 4: "<I"}[op]) * cie.code_align
            if location > pc:
                return
        elif op == 0x01:  # set_loc
            location = cursor.pointer(cie.fde_encoding)
            if location > pc:
                return
        elif op == 0x00 or op == 0x2E:  # nop, GNU_args_size
            if op == 0x2E:
                cursor.uleb()
        elif op == 0x05:  # offset_extended
            register = cursor.uleb()
            _set_saved(rule, register, cursor.uleb() * cie.data_align)
        elif op == 0x11:  # offset_extended_sf
            register = cursor.uleb()
            _set_saved(rule, register, cursor.sleb() * cie.data_align)
        elif op in (0x06, 0x08):  # restore_extended, same_value
            register = cursor.uleb()
            if op == 0x06:
                _restore(rule, initial, register)
            else:
                _set_saved(rule, register, None)
        elif op == 0x07:  # undefined
            register = cursor.uleb()
            if register == RA:
                rule.ra_offset = None
            elif register == RBP:
                rule.rbp_offset = None
        elif op == 0x0A:  # remember_state
            saved.append(_Rule(**vars(rule)))
        elif op == 0x0B:  # restore_state
            if saved:
                vars(rule).update(vars(saved.pop()))
        elif op == 0x0C:  # def_cfa
            rule.cfa_register, rule.cfa_offset = cursor.uleb(), cursor.uleb()
        elif op == 0x12:  # def_cfa_sf
            rule.cfa_register, rule.cfa_offset = cursor.uleb(), cursor.sleb() * cie.data_align
        elif op == 0x0D:  # def_cfa_register
            rule.cfa_register = cursor.uleb()
        elif op == 0x0E:  # def_cfa_offset
            rule.cfa_offset = cursor.uleb()
        elif op == 0x13:  # def_cfa_offset_sf
            rule.cfa_offset = cursor.sleb() * cie.data_align
        elif op in (0x09,):  # register: a value kept in another register
            register = cursor.uleb()
            cursor.uleb()
            if register in (RA, RBP):
                raise _Unsupported("register rule")
        elif op in (0x10, 0x16):  # expression, val_expression
            register = cursor.uleb()
            cursor.pos += cursor.uleb()
            if register in (RA, RBP):
                raise _Unsupported("expression rule")
        elif op in (0x14, 0x15):  # val_offset(_sf)
            register = cursor.uleb()
            _ = cursor.uleb() if op == 0x14 else cursor.sleb()
            if register in (RA, RBP):
                raise _Unsupported("val_offset rule")
        else:  # def_cfa_expression (0x0f) and anything unknown
            raise _Unsupported(f"CFA instruction {op:#x}")


def _set_saved(rule: _Rule, register: int, offset: int | None) -> None:
    if register == RA:
        rule.ra_offset = offset
    elif register == RBP:
        rule.rbp_offset = offset


def _restore(rule: _Rule, initial: _Rule | None, register: int) -> None:
    source = initial or _Rule()
    _set_saved(rule, register, source.ra_offset if register == RA else source.rbp_offset)


@dataclass
class Unwind:
    """The return addresses found, and where the unwind stopped early (None if it reached
    the outermost frame): the stack pointer from which to scan conservatively."""

    return_addresses: list[int]
    incomplete_from: int | None


class Unwinder:
    """Unwinds threads of one process; keeps every file's frame tables it has read."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.modules: dict[str, ModuleFrames | None] = {}

    def unwind(self, registers: dict[str, int], memory: MemoryMap,
               read: Callable[[int], int]) -> Unwind:
        """`read(address)`: the 8-byte word of the target at `address` (OSError if none)."""
        self.memory = memory
        self.read = read
        values = {number: registers[name] for number, name in enumerate(DWARF_REGISTERS)}
        pc, sp = values[RA], values[RSP]
        found: list[int] = []
        for depth in range(MAX_FRAMES):
            try:
                # A return address may be just past a call at the very end of a function.
                rule = self._rule(pc if depth == 0 else pc - 1)
                if rule is None:
                    return Unwind(found, sp)
                if rule.cfa_register not in (RSP, RBP) and depth > 0:
                    return Unwind(found, sp)  # a register we no longer know
                cfa = values[rule.cfa_register] + rule.cfa_offset
                if rule.ra_offset is None:
                    return Unwind(found, None)  # the outermost frame (_start, clone)
                pc = self.read(cfa + rule.ra_offset)
                if rule.rbp_offset is not None:
                    values[RBP] = self.read(cfa + rule.rbp_offset)
            except (_Unsupported, OSError, struct.error, IndexError, KeyError):
                return Unwind(found, sp)
            if cfa <= sp:  # the stack grows down: a caller's frame is always above
                return Unwind(found, sp)
            sp = values[RSP] = cfa
            if pc == 0:
                return Unwind(found, None)
            found.append(pc)
        return Unwind(found, sp)

    def _rule(self, pc: int) -> _Rule | None:
        mapping = self.memory.containing(pc)
        if mapping is None or not mapping.path.startswith("/"):
            return None
        if mapping.path not in self.modules:
            root = f"{proc_dir(self.pid)}/root"
            self.modules[mapping.path] = ModuleFrames.load(root + mapping.path)
        module = self.modules[mapping.path]
        if module is None:
            return None
        first = min((m.start for m in self.memory.mappings
                     if m.path == mapping.path and m.offset == 0), default=mapping.start)
        bias = first - (module.first_load_vaddr & ~0xFFF)
        return module.rule_at(pc - bias)


class StackReader:
    """8-byte reads of the target, served from a copy of the top of the stack when possible."""

    def __init__(self, memory_file: int, stack_start: int, stack: bytes) -> None:
        self.memory_file = memory_file
        self.stack_start = stack_start
        self.stack = stack

    def __call__(self, address: int) -> int:
        offset = address - self.stack_start
        if 0 <= offset <= len(self.stack) - 8:
            value: int = struct.unpack_from("<Q", self.stack, offset)[0]
            return value
        data = os.pread(self.memory_file, 8, address)
        if len(data) != 8:
            raise OSError("short read")
        return int.from_bytes(data, "little")
