"""Every exit code the ``portscope`` command uses, defined once.

| code | name      | meaning                                                             |
|------|-----------|---------------------------------------------------------------------|
| 0    | OK        | success: the port is in use (who), open (test), free (kill), ...    |
| 1    | NEGATIVE  | a clean "no": nothing uses the port, port closed, none free, ...    |
| 2    | USAGE     | bad input: malformed argument, unreadable file, unresolvable host   |
| 3    | DRIFT     | `baseline diff` found listeners that drifted from the baseline      |
| 130  | INTERRUPT | interrupted with Ctrl-C                                             |
"""

OK = 0
NEGATIVE = 1
USAGE = 2
DRIFT = 3
INTERRUPT = 130
