#!/usr/bin/python3
"""The conservative-scan test suite (issue 3).

Usage: /usr/bin/python3 tests/scan/run.py --build build [-k SUBSTRING] [-v]

Runs the C programs of tests/scan/, which meson builds (tests/scan/meson.build: gcc -O2 -g
-Iinclude -pthread -Wall, and libscantls.so) into BUILD/tests/scan/ with the rest of the
project (`ninja -C BUILD`; the runner compiles nothing), each case with
LD_PRELOAD=BUILD/preload/libarenashim.so and its ARENASHIM_OPTIONS, and prints "PASS name" or
"FAIL name: reason" per case, then "N passed, N failed".  Exit status 1 when a case failed; a
case whose program is not in the build folder fails, saying to run `ninja -C BUILD`.  Standard
library only.

The programs check what they can see themselves (the statistics JSON, which chunks new
regions get) and exit non-zero with "FAILED ..." lines; this runner adds the checks on stderr
(verbose=1 referrer lines, the one-time give-up warning) and on crashes.  No case asserts how
fast anything ran (speed belongs to bench/): each has only a generous timeout, after which a
hung program is killed and fails.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402  (tests/lib: what the program suites share)


class Case:
    def __init__(self, name, argv, options="", timeout=20.0, check=None, env=None):
        self.name = name
        self.argv = argv
        self.options = options
        self.timeout = timeout
        self.check = check  # extra check(result) -> error string or None
        self.env = env or {}


class Result:
    def __init__(self, returncode, stdout, stderr, seconds, timed_out):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.timed_out = timed_out


def dead_chunk(result):
    m = re.search(r"^DEAD (0x[0-9a-f]+) (\d+)$", result.stdout, re.M)
    return m.group(1) if m else None


def verbose_lines(result, chunk):
    return [line for line in result.stderr.splitlines()
            if line.startswith("arenashim: scan kept chunk %s" % chunk)]


def expect_referrer(fragment_fn, forbid=None):
    """verbose=1 must name where the pointer was found, for the dead chunk."""
    def check(result):
        chunk = dead_chunk(result)
        if chunk is None:
            return "the program printed no DEAD line"
        lines = verbose_lines(result, chunk)
        if not lines:
            return "verbose=1 printed no 'scan kept chunk %s' line" % chunk
        fragment = fragment_fn(result)
        good = [line for line in lines if fragment in line and not (forbid and forbid in line)]
        if not good:
            return "verbose=1 line does not say %r%s: %s" % (
                fragment, " (without %r)" % forbid if forbid else "", lines[0])
        return None
    return check


def helper_tid(result):
    m = re.search(r"^TID (\d+)$", result.stdout, re.M)
    return m.group(1) if m else "?"


def giveup_warned_once(result):
    lines = [line for line in result.stderr.splitlines() if "scan given up" in line]
    if len(lines) != 1:
        return "the 'scan given up' warning appeared %d times on stderr (expected once)" % len(lines)
    # The warning names the thread that would not stop: the program's helper.
    want = "thread %s did not stop" % helper_tid(result)
    if want not in lines[0]:
        return "the 'scan given up' warning does not say %r: %s" % (want, lines[0])
    return None


def kernel_tracks_writes():
    """PAGEMAP_SCAN and asynchronous userfaultfd write protection: Linux 6.7 and later."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (6, 7)
    except (ValueError, IndexError):
        return False


def expect_path(kind):
    """The race program's last line says how many of its scans were concurrent: all of them
    where the kernel tracks writes and the options allow, none otherwise."""
    def check(result):
        m = re.search(r"scans (\d+) \((\d+) concurrent\)", result.stdout)
        if m is None:
            return "no 'scans N (M concurrent)' line"
        scans, concurrent = int(m.group(1)), int(m.group(2))
        want_concurrent = kind == "concurrent" and kernel_tracks_writes()
        if want_concurrent and concurrent != scans:
            return "%d of %d scans were concurrent on a kernel that tracks writes" % (concurrent, scans)
        if not want_concurrent and concurrent != 0:
            return "%d scans were concurrent (expected none)" % concurrent
        return None
    return check


def expect_verbose_path(kind):
    """verbose=1 names the path scans take, once, at the first scan."""
    def check(result):
        lines = [l for l in result.stderr.splitlines() if l.startswith("arenashim: scan: ")]
        if len(lines) != 1:
            return "%d 'arenashim: scan:' lines on stderr (expected one)" % len(lines)
        concurrent = kind == "concurrent" and kernel_tracks_writes()
        want = "mostly concurrent" if concurrent else "the world stopped throughout"
        if want not in lines[0]:
            return "expected %r in: %s" % (want, lines[0])
        if kind == "stop" and "(scan_mode=stop)" not in lines[0]:
            return "the fallback does not say why: %s" % lines[0]
        return expect_path(kind)(result)
    return check


def make_cases(binary_dir):
    hide = os.path.join(binary_dir, "hide")
    tls_lib = os.path.join(binary_dir, "libscantls.so")
    verbose = "verbose=1"
    module = lambda r: ".data/.bss of %s" % hide
    cases = [
        Case("hide_data", [hide, "data"], verbose, check=expect_referrer(module)),
        Case("hide_bss", [hide, "bss"], verbose, check=expect_referrer(module)),
        Case("hide_tls", [hide, "tls"], verbose),
        Case("hide_dlopen_tls", [hide, "dlopen_tls"], verbose, env={"SCAN_TLS_LIB": tls_lib}),
        Case("hide_main_stack", [hide, "main_stack"], verbose,
             check=expect_referrer(lambda r: " in stack of thread ")),
        Case("hide_thread_stack_blocked_in_read", [hide, "thread_stack"], verbose,
             check=expect_referrer(lambda r: " in stack of thread %s" % helper_tid(r))),
        Case("hide_callee_saved_register_of_blocked_thread", [hide, "register"], verbose,
             check=expect_referrer(lambda r: " in registers of thread %s" % helper_tid(r))),
        Case("hide_red_zone_of_blocked_thread", [hide, "red_zone"], verbose,
             check=expect_referrer(lambda r: " in stack of thread %s" % helper_tid(r))),
        Case("hide_callee_saved_register_of_collector", [hide, "collector_register"], verbose),
        Case("hide_jemalloc_heap_object", [hide, "heap"], verbose,
             check=expect_referrer(lambda r: " in anonymous mapping (jemalloc heap object)")),
        Case("hide_live_region_object", [hide, "region"], verbose,
             check=expect_referrer(lambda r: " in live region chunk")),
        Case("hide_anonymous_mmap", [hide, "mmap"], verbose,
             check=expect_referrer(lambda r: " in anonymous mapping", forbid="jemalloc heap object")),
        Case("hide_anonymous_mmap_far_from_heap_verbose", [hide, "mmap_far"], verbose,
             check=expect_referrer(lambda r: " in anonymous mapping", forbid="jemalloc heap object")),
        Case("hide_shared_anonymous_mmap", [hide, "shared"], verbose,
             check=expect_referrer(lambda r: " in shared memory")),
        Case("hide_span_tail", [hide, "span_tail"], verbose, check=expect_referrer(module)),
        Case("hide_below_sp_in_user_stack_mapping", [hide, "user_stack_mapping"], verbose),
        Case("hide_thread_stack_merged_with_another", [hide, "merged_thread_stacks"], verbose,
             check=expect_referrer(lambda r: " in stack of thread %s" % helper_tid(r))),
        Case("metadata_stale_range_after_munmap", [os.path.join(binary_dir, "metadata"), "stale"]),
        Case("metadata_registry_after_many_scans", [os.path.join(binary_dir, "metadata"), "full",
                                                    "1200", "3000"]),
        Case("giveup_blocked_stop_signal", [os.path.join(binary_dir, "giveup"), "one"],
             check=giveup_warned_once),
        Case("giveup_all_signals_blocked", [os.path.join(binary_dir, "giveup"), "all"],
             check=giveup_warned_once),
        Case("stress_4_threads_3s", [os.path.join(binary_dir, "stress"), "3"], "quarantine_max=4M",
             timeout=30),
        # The lost-pointer race: concurrent (where the kernel tracks writes), the world
        # stopped throughout, and one marking thread.
        Case("race_lost_pointer_concurrent", [os.path.join(binary_dir, "race"), "3"], "",
             timeout=60, check=expect_path("concurrent")),
        Case("race_lost_pointer_stop", [os.path.join(binary_dir, "race"), "2"], "scan_mode=stop",
             timeout=60, check=expect_path("stop")),
        Case("race_lost_pointer_one_thread", [os.path.join(binary_dir, "race"), "2"],
             "scan_threads=1", timeout=60),
        Case("verbose_names_concurrent_path", [os.path.join(binary_dir, "race"), "0.5"], "verbose=1",
             timeout=60, check=expect_verbose_path("concurrent")),
        Case("verbose_names_stop_path", [os.path.join(binary_dir, "race"), "0.5"],
             "verbose=1,scan_mode=stop", timeout=60, check=expect_verbose_path("stop")),
        Case("scan_off_never_scans", [os.path.join(binary_dir, "policy"), "off"], "scan=off"),
        Case("quarantine_max_triggers_scans", [os.path.join(binary_dir, "policy"), "auto"],
             "quarantine_max=4M"),
        Case("sparse_16g_mapping", [os.path.join(binary_dir, "sparse")]),
        Case("fork_child_scans", [os.path.join(binary_dir, "fork")], timeout=30),
        Case("thread_churn_during_scans", [os.path.join(binary_dir, "threads"), "churn", "1.5"],
             timeout=20),
        Case("scan_after_main_pthread_exit", [os.path.join(binary_dir, "threads"), "main_exit"],
             timeout=20),
    ]
    return cases


def missing_files(case, binary_dir):
    """The files of the build folder the case runs or loads (its program, a library named in
    its environment) that are not there."""
    paths = [case.argv[0]] + list(case.env.values())
    return [p for p in paths if p.startswith(binary_dir + os.sep) and not os.path.exists(p)]


def ensure_library(build):
    library = os.path.join(build, "preload", "libarenashim.so")
    if os.path.exists(library):
        return library
    if not os.path.exists(os.path.join(build, "build.ninja")):
        subprocess.run(["meson", "setup", build], cwd=ROOT, check=False)
    subprocess.run(["ninja", "-C", build], cwd=ROOT, check=False)
    return library if os.path.exists(library) else None


def run_case(case, library):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARENASHIM_") and k != "LD_PRELOAD"}
    env["LD_PRELOAD"] = library
    # The programs size their objects and count quarantined bytes in 1 MiB chunks
    # (scanutil.h's CHUNK_BYTES), whatever the default chunk size is.
    env["ARENASHIM_OPTIONS"] = ",".join(filter(None, ["chunk_size=1M", case.options]))
    env.update(case.env)
    start = time.monotonic()
    proc = subprocess.Popen(case.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
    return Result(proc.returncode, stdout, stderr, time.monotonic() - start, timed_out)


def judge(case, result):
    if result.timed_out:
        return "timed out after %.0f s" % case.timeout
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name if -result.returncode in \
            [s.value for s in signal.Signals] else str(-result.returncode)
        return "killed by %s" % name
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    if result.returncode != 0:
        return "exit status %d%s" % (result.returncode, ": " + failed[0] if failed else "")
    if failed:
        return failed[0]
    if "DONE" not in result.stdout:
        return "the program did not finish (no DONE line)"
    if "==ERROR: arenashim" in result.stderr:
        return "a dangling-access report on stderr"
    if case.check:
        return case.check(result)
    return None


def details(result, limit=12):
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if not line.startswith("STATS ")]
    return "\n".join("    " + line[:400] for line in lines[-limit:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="the meson build folder")
    parser.add_argument("-k", dest="select", default="", help="run cases whose name contains this")
    parser.add_argument("-v", dest="verbose", action="store_true", help="show output of every case")
    args = parser.parse_args()

    build = os.path.abspath(args.build)
    if not os.path.isdir(build) and not os.path.isabs(args.build):
        build = os.path.join(ROOT, args.build)
    library = ensure_library(build)
    if library is None:
        print("FAIL build: %s/preload/libarenashim.so is missing and could not be built" % build)
        print("0 passed, 1 failed")
        return 1
    binary_dir = str(harness.programs_dir(build, "scan"))

    cases = [c for c in make_cases(binary_dir) if args.select in c.name]
    passed = failed = 0
    start = time.monotonic()
    for case in cases:
        missing = missing_files(case, binary_dir)
        if missing:
            failed += 1
            print("FAIL %s: %s" % (case.name, "; ".join(harness.not_built(p, build) for p in missing)))
            sys.stdout.flush()
            continue
        result = run_case(case, library)
        reason = judge(case, result)
        if reason is None:
            passed += 1
            print("PASS %s (%.2f s)" % (case.name, result.seconds) if args.verbose else "PASS " + case.name)
        else:
            failed += 1
            if len(reason) > 300:
                reason = reason[:300] + "..."
            print("FAIL %s: %s" % (case.name, reason))
            print(details(result))
        if args.verbose:
            print(details(result, 40))
        sys.stdout.flush()
    if args.verbose:
        print("total %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
