"""Exit codes of the leaktrace command: one policy for every subcommand, in one place so that
README ("Exit status"), `leaktrace --help` and the code agree.

    0    done; no leak gate tripped (run and valgrind: the program exited 0)
    N    run, valgrind: the program's own exit status; a program killed by signal N
         ends leaktrace with the same signal (a shell shows 128+N)
    2    usage error (bad option or argument) or bad input (a file leaktrace cannot read,
         a process that does not exist or cannot be traced, a program the shim cannot enter);
         one `leaktrace: error: ...` line says which
    126  run: the program is not executable (or a directory), as a shell, env or valgrind says
    127  run: the program does not exist (nor in $PATH), likewise
    99   leaks found: --fail-on-leak exceeded (--leak-exit-code changes it; run and valgrind
         still end with the signal that killed the program); `watch`: the memory grows
    N    --error-exitcode N: memory errors found (an invalid free, a leak of a counted
         kind), as valgrind's --error-exitcode; a killed program's signal still wins
    130  interrupted (Ctrl-C)
    141  the reader of stdout went away (`leaktrace report F | head`), as for SIGPIPE
"""

# The command line is wrong: click's own code for usage errors.
USAGE_ERROR = 2
# The input is wrong: the same code, so a script needs one test for "leaktrace could not do
# its job"; the error line says what went wrong.
INPUT_ERROR = 2
# --fail-on-leak exceeded (default of --leak-exit-code). Chosen far from common program exit
# codes and from 128+signal, since run and valgrind otherwise exit with the program's status.
LEAKS_FOUND = 99
# `run` of a program that cannot be executed / does not exist: a shell's codes, which env,
# timeout and valgrind pass on too, so a wrapper script sees what it would see without us.
PROGRAM_NOT_EXECUTABLE = 126
PROGRAM_NOT_FOUND = 127
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
BROKEN_PIPE = 141  # 128 + SIGPIPE

POLICY_TEXT = """\
Exit status (every command):
  0        done; no leak gate tripped
  N        run, valgrind: the program's own status (its signal: 128+N in a shell)
  2        usage error or bad input (one `leaktrace: error:` line says which)
  126/127  run: the program is not executable / does not exist (as a shell says)
  99       leaks found: --fail-on-leak exceeded (see --leak-exit-code); watch: growing
  N        --error-exitcode N: memory errors (invalid frees, leaks), as valgrind's
  130      interrupted; 141: the reader of the output went away (`| head`)"""
