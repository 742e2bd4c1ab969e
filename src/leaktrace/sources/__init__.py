"""Readers that turn foreign leak data (glibc mtrace logs, valgrind XML) into a Report."""
