#!/usr/bin/python3
"""measure.py RESULT_FILE CMD [ARG...]

Runs CMD and writes "WALL_SECONDS PEAK_RSS_KIB" to RESULT_FILE, like GNU time's
-f '%e %M' -o RESULT_FILE: the fallback of scripts/demo/run where /usr/bin/time is missing.
Exits with CMD's status (128+N when a signal N killed it).

A process forked from Python inherits Python's resident set as the floor of its
ru_maxrss (the kernel keeps the old memory's high-water mark across exec), which would
report 10 MiB for a 1 MiB program.  So CMD is started by a /bin/sh subshell of a /bin/sh
that exits at once: CMD is then reparented to this process (a child subreaper) and reaped
here with wait4, whose figures are CMD's own.  The subshell waits for a word on a pipe
before it execs CMD, so it cannot end (and be reaped by its shell) before it is ours.
"""
import ctypes
import fcntl
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36

# sh -c SCRIPT sh CMD...: fd 3 takes the subshell's pid, fd 5 gives it the word to start.
# An asynchronous list gets /dev/null as stdin unless redirected: give it ours.
SCRIPT = 'exec 4<&0; ( exec 3>&-; read go <&5 || exit 125; exec 5<&-; exec "$@" ) <&4 4<&- & echo $! >&3; exit 0'


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    result_path, command = sys.argv[1], sys.argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("measure.py: prctl(PR_SET_CHILD_SUBREAPER) failed\n")
        return 2
    pid_read, pid_write = os.pipe()
    go_read, go_write = os.pipe()
    shell = os.fork()
    if shell == 0:
        try:
            # Out of the way first, so neither dup2 below clobbers the other's source.
            high_pid = fcntl.fcntl(pid_write, fcntl.F_DUPFD_CLOEXEC, 10)
            high_go = fcntl.fcntl(go_read, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(high_pid, 3)  # dup2 makes inheritable copies
            os.dup2(high_go, 5)
            os.execv("/bin/sh", ["sh", "-c", SCRIPT, "sh"] + command)
        finally:
            os._exit(127)
    os.close(pid_write)
    os.close(go_read)
    with os.fdopen(pid_read) as pipe:
        text = pipe.read().strip()
    os.waitpid(shell, 0)
    if not text.isdigit():
        sys.stderr.write("measure.py: could not start %s\n" % command[0])
        return 127
    pid = int(text)
    start = time.monotonic()
    os.write(go_write, b"go\n")
    os.close(go_write)
    try:
        _, status, usage = os.wait4(pid, 0)
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGTERM)  # it ignores SIGINT, as asynchronous lists do
        _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    with open(result_path, "w") as result:
        result.write("%.2f %d\n" % (wall, usage.ru_maxrss))
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
