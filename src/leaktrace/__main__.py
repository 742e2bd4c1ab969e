"""`python -m leaktrace`: the same as the `leaktrace` command."""

from leaktrace.cli import main

main(prog_name="leaktrace")
