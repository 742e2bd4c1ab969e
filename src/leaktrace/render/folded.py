"""`--format folded`: one `outer;...;inner BYTES` line per distinct backtrace, the input
of flamegraph.pl and inferno. Inlined frames carry flamegraph.pl's `_[i]` annotation."""

from __future__ import annotations

from leaktrace.model import Report
from leaktrace.render.options import RenderOptions
from leaktrace.render.stack_paths import NO_BACKTRACE, frame_name, stack_samples


def folded_lines(report: Report, options: RenderOptions) -> dict[str, int]:
    """Leaked (own) bytes per path; records sharing a path (several leak kinds or APIs of one
    backtrace) are added up."""
    totals: dict[str, int] = {}
    for sample in stack_samples(report, options):
        names = [folded_frame_name(frame_name(f), f.inlined)
                 for f in sample.root_first] or [NO_BACKTRACE]
        path = ";".join(names)
        totals[path] = totals.get(path, 0) + sample.bytes
    return totals


def folded_frame_name(name: str, inlined: bool) -> str:
    # ';' separates frames and a newline ends the line: neither may appear in a name.
    name = name.replace(";", ":").replace("\n", " ")
    return f"{name}_[i]" if inlined else name


def render_folded(report: Report, options: RenderOptions) -> str:
    return "".join(f"{path} {total}\n"
                   for path, total in sorted(folded_lines(report, options).items()) if total)
