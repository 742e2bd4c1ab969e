"""Memory views of a running process from /proc, without instrumenting it."""
