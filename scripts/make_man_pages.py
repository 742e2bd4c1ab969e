"""Man pages generated from the command line's own help, with click-man: leaktrace(1) and
one leaktrace-COMMAND(1) per command, as git does. Needs leaktrace and click-man installed in
the running Python (pip install '.[test]' has both).

    python scripts/make_man_pages.py [DIR]      (default: ./man)
    man -l DIR/leaktrace-report.1               or copy DIR/*.1 to /usr/local/share/man/man1/
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version

from click_man.core import write_man_pages

from leaktrace.cli import main


def make_man_pages(target: str) -> list[str]:
    os.makedirs(target, exist_ok=True)
    # SOURCE_DATE_EPOCH (reproducible builds) fixes the date printed in the pages.
    epoch = float(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    write_man_pages("leaktrace", main, version=version("leaktrace"), target_dir=target,
                    date=time.strftime("%Y-%m-%d", time.gmtime(epoch)))
    # click-man leaves out the text --help shows after the options (the exit statuses and
    # environment of leaktrace(1), each command's example): added as a section of its own.
    pages = {"leaktrace.1": main.epilog}
    pages.update({f"leaktrace-{name}.1": command.epilog
                  for name, command in main.commands.items() if not command.hidden})
    for page, epilog in pages.items():
        if epilog:
            with open(os.path.join(target, page), "a", encoding="utf-8") as out:
                out.write(epilog_section(epilog))
    return sorted(name for name in os.listdir(target) if name.endswith(".1"))


def epilog_section(epilog: str) -> str:
    """The epilog as it reads in --help (click's \\b no-rewrap marks dropped), unfilled."""
    text = epilog.replace("\b\n", "").strip()
    heading = "EXAMPLE" if text.startswith("Example:") else "NOTES"
    lines = []
    for line in text.splitlines():
        line = line.replace("\\", "\\e").replace("-", "\\-")
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return f".SH {heading}\n.nf\n" + "\n".join(lines) + "\n.fi\n"


if __name__ == "__main__":
    directory = sys.argv[1] if len(sys.argv) > 1 else "man"
    pages = make_man_pages(directory)
    print(f"{len(pages)} man pages written to {directory}")
