"""Exit codes of the leaktrace command, in one place so docs and code agree."""

# Bad input: unreadable or corrupt capture, unknown option, program that cannot be traced.
# Same as click's usage errors.
USAGE_ERROR = 2
# Default for --fail-on-leak when live bytes exceed the threshold (--leak-exit-code changes it).
# Chosen far from common program exit codes and from 128+signal.
LEAKS_FOUND = 99
