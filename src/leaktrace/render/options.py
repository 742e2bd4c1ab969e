"""What the user asked to see; shared by every renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from leaktrace.analyze.loss_records import display_order
from leaktrace.model import InvalidFree, LeakRecord, Report

if TYPE_CHECKING:
    from leaktrace.suppressions.linkage_names import LinkageNames


@dataclass
class RenderOptions:
    top: int | None = None  # show only the N largest records (None: all)
    min_bytes: int = 0  # hide records smaller than this
    show_addresses: bool = False  # list every live block's address
    # Leak kinds whose loss records are shown (--show); None shows every kind. Records
    # without a leak kind (no scan ran) are always shown.
    leak_kinds: frozenset[str] | None = None
    gen_suppressions: bool = False  # a valgrind suppression entry after each record shown
    linkage_names: LinkageNames | None = None  # symbol cache for gen_suppressions, made lazily


def selected_records(report: Report, options: RenderOptions) -> list[LeakRecord]:
    """The records of the leak kinds asked for that no suppression matched, largest first:
    what "leaked bytes per frame" adds up. --min-bytes and --top only shorten the list."""
    return display_order(
        r for r in report.records
        if r.suppressed_by is None
        and (options.leak_kinds is None or r.leak_kind is None or r.leak_kind in options.leak_kinds)
    )


def shown_records(report: Report, options: RenderOptions,
                  selected: list[LeakRecord] | None = None) -> list[LeakRecord]:
    """The records to print, largest first, after the kind filter, --min-bytes then --top.
    `selected`: selected_records(report, options), when the caller has it already."""
    if selected is None:
        selected = selected_records(report, options)
    records = [r for r in selected if r.bytes >= options.min_bytes]
    return records if options.top is None else records[: options.top]


def shown_mapped_regions(report: Report, options: RenderOptions) -> list[LeakRecord]:
    regions = [r for r in report.mapped_regions if r.bytes >= options.min_bytes]
    return regions if options.top is None else regions[: options.top]


def suppression_text(record: LeakRecord, options: RenderOptions) -> str | None:
    """--gen-suppressions: the valgrind entry for `record` (None without a backtrace)."""
    # Imported here: symbol tables are only read when --gen-suppressions asks.
    from leaktrace.suppressions.generate import suppression_entry
    from leaktrace.suppressions.linkage_names import LinkageNames

    if options.linkage_names is None:
        options.linkage_names = LinkageNames()  # one symbol cache for the whole report
    return suppression_entry(record, options.linkage_names)


def free_suppression_text(invalid: InvalidFree, options: RenderOptions) -> str | None:
    """--gen-suppressions: the Memcheck:Free entry for an invalid free."""
    from leaktrace.suppressions.generate import free_suppression_entry
    from leaktrace.suppressions.linkage_names import LinkageNames

    if options.linkage_names is None:
        options.linkage_names = LinkageNames()
    return free_suppression_entry(invalid, options.linkage_names)


def samples_selection(report: Report, options: RenderOptions) -> list[LeakRecord]:
    """What a page that filters by itself needs (the HTML report): every record of every
    leak kind that no suppression matched, largest first; --min-bytes and --top still apply
    (they bound the page's size)."""
    records = [r for r in display_order(x for x in report.records if x.suppressed_by is None)
               if r.bytes >= options.min_bytes]
    return records if options.top is None else records[: options.top]
