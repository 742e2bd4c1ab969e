"""`python -m leaktrace`: the same as the `leaktrace` command."""

from leaktrace.entry import main

main()
