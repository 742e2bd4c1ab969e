"""Running other leak tools (valgrind) and collecting what they write."""
