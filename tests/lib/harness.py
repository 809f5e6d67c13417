"""harness.py — what the program suites (tests/*/run.py) share.

Each suite runs real programs under the preload and judges what they did; this module holds
the parts that do not depend on the suite: the failure exception, the clean environment a
case starts from, running a process with a timeout that kills its whole process group, and
where the meson build keeps a suite's test programs.
"""

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path


class Failure(Exception):
    """A case's expectation did not hold; the message says which."""


def expect(condition, message):
    if not condition:
        raise Failure(message)


def clean_env():
    """The environment without arenashim's variables (a case sets the ones it wants) and with
    a fixed locale, so outputs compare byte for byte."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("ARENASHIM_")}
    env["LC_ALL"] = "C"
    return env


def programs_dir(build_dir, suite):
    """Where the meson build puts a suite's test programs: BUILD/tests/SUITE (declared in
    tests/SUITE/meson.build, built by `ninja -C BUILD`)."""
    return Path(build_dir) / "tests" / suite


def not_built(path, build_dir):
    """The failure message for a test program that is not in the build folder.  The suites do
    not compile anything themselves: meson builds their programs."""
    return ("%s does not exist: the test programs are built by meson, run `ninja -C %s` "
            "(a new program must also be declared in tests/*/meson.build)" % (path, build_dir))


def all_of(*checks):
    """One check made of several, run in order with the same arguments (whatever a suite's
    checks take); the first that fails ends it."""
    def check(*args):
        for c in checks:
            c(*args)
    return check


def suite_arguments(description, cases, root, name_width=40):
    """A suite's command line: --build DIR (relative to the working directory when it exists
    there, else to the checkout ROOT), -k FILTER and --list.  Returns (cases, build), or
    (None, None) after printing the list for --list."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("-k", dest="filter", default="", help="run only the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    selected = [c for c in cases if args.filter in c.__name__]
    if args.list:
        for c in selected:
            print("%-*s %s" % (name_width, c.__name__, (c.__doc__ or "").strip().split("\n")[0]))
        return None, None
    build = Path(args.build)
    if not build.is_absolute():
        build = (Path.cwd() / build) if (Path.cwd() / build).exists() else Path(root) / build
    return selected, build


def run_cases(cases, make_context, prefix):
    """Runs each case(context) with a fresh temporary folder (make_context(tmp) builds the
    context); prints PASS/FAIL lines and the final "N passed, N failed"; returns the exit
    status (1 when a case failed).  A case that raises anything else failed too, with its
    traceback."""
    import shutil
    import sys
    import tempfile
    import traceback
    passed = failed = 0
    for c in cases:
        tmp = tempfile.mkdtemp(prefix=prefix)
        try:
            c(make_context(tmp))
            print("PASS %s" % c.__name__)
            passed += 1
        except Failure as e:
            print("FAIL %s: %s" % (c.__name__, str(e).replace("\n", "\n    ")))
            failed += 1
        except Exception:  # noqa: BLE001 - a broken case is a failed case
            print("FAIL %s: %s" % (c.__name__, traceback.format_exc().replace("\n", "\n    ")))
            failed += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


class ProcessTimeout(Failure):
    def __init__(self, argv, timeout, stdout, stderr, elapsed):
        super().__init__("timed out after %ss: %s" % (timeout, " ".join(map(str, argv))))
        self.argv, self.stdout, self.stderr, self.elapsed = argv, stdout, stderr, elapsed


def spawn(argv, env, timeout, stdin=None, cwd=None):
    """Runs argv in a session of its own; returns (returncode, stdout, stderr, seconds, pid).
    Past the timeout the whole process group is killed and ProcessTimeout raised."""
    start = time.monotonic()
    proc = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        raise ProcessTimeout(argv, timeout, stdout, stderr, time.monotonic() - start)
    return proc.returncode, stdout, stderr, time.monotonic() - start, proc.pid


def describe_status(rc):
    """An exit status for a message: "-11 (SIGSEGV)" for a signal."""
    if rc is None:
        return "none"
    if rc < 0:
        try:
            return "%d (%s)" % (rc, signal.Signals(-rc).name)
        except ValueError:
            return str(rc)
    return str(rc)


class Run:
    """What one process did: its argv, exit status (None after a timeout) and output."""

    def __init__(self, argv, rc, stdout, stderr, elapsed=0.0, pid=0):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        self.elapsed, self.pid = elapsed, pid
        self.stats = None
        self.stats_files = {}

    @property
    def out(self):
        return self.stdout.decode(errors="replace")

    @property
    def err(self):
        return self.stderr.decode(errors="replace")

    def first_err_line(self):
        lines = self.err.splitlines()
        return lines[0] if lines else ""
