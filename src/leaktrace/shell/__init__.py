"""`leaktrace shell PID`: an interactive prompt on a running traced process."""
