"""Every exit code the ``portscope`` command uses, defined once.

| code | name        | meaning                                                             |
|------|-------------|---------------------------------------------------------------------|
| 0    | OK          | success: the port is in use (who), open (test), free (kill), ...    |
| 1    | NEGATIVE    | a clean "no": nothing uses the port, port closed, none free, ...    |
| 2    | USAGE       | bad input: malformed argument, unreadable file, unresolvable host   |
| 3    | DRIFT       | `baseline diff` found listeners that drifted from the baseline      |
| 69   | UNAVAILABLE | no socket source works here (netlink refused and /proc/net hidden), |
|      |             | or --stats where the netlink backend is not in use                  |
| 74   | OUTPUT      | output could not be written: stdout closed, disk full, I/O error    |
| 130  | INTERRUPT   | interrupted with Ctrl-C                                             |
| 143  | TERMINATED  | stopped by SIGTERM (watch and the dashboard exit 0: that is how   |
|      |             | they are stopped)                                                   |

69 and 74 are sysexits.h's EX_UNAVAILABLE and EX_IOERR. A reader that goes away (``| head``) is
not an error: exit 0.
"""

OK = 0
NEGATIVE = 1
USAGE = 2
DRIFT = 3
UNAVAILABLE = 69
OUTPUT = 74
INTERRUPT = 130
TERMINATED = 143
