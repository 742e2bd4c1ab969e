"""Turn (module path, file-relative address) into function, file, line and inlined frames."""

from leaktrace.symbolize.symbolizer import Symbolizer

__all__ = ["Symbolizer"]
