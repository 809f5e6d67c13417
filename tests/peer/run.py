#!/usr/bin/python3
"""Peer test suites with markers (issue 14): Debian's own Python regression tests pass with
arenashim's markers on hot functions of the interpreter.

Usage:
    /usr/bin/python3 tests/peer/run.py --build build [-k SUBSTRING] [--list] [-j N]
    /usr/bin/python3 tests/peer/run.py --build build --all [-j N] [--json FILE]

Why: the other suites run programs written for them, or programs' ordinary runs.  A test suite
written by others for a large program is the strictest peer review a preload can get: the
CPython regression tests (Debian's libpython3.11-testsuite, /usr/lib/python3.11/test) poke
at every corner of the interpreter, with threads, forks, subprocesses, signals, huge strings
and recursion, and say precisely what broke.

What it does.  Each case is one test module of Debian's python3.11 (the binary links
libpython statically and exports its API, so its functions can be marked by name), run as
`python3.11 -m test -v --timeout T MODULE` in a fresh temporary folder (cwd, HOME and TMPDIR;
mode 1777, because some tests run children as another user), with LC_ALL=C and none of the
caller's PYTHON* variables:

  1. plainly: the module must pass and run tests (exit status 0; in the default slice a
     module that fails plainly fails its case, since the slice lists modules that pass on
     Debian 12; with --all it is listed as SKIP, not comparable, and so is a module that runs
     no test here: Windows-only, GUI, network);
  2. with LD_PRELOAD=BUILD/preload/libarenashim.so, ARENASHIM_REGIONS set to all of MARKERS
     below at once, and ARENASHIM_OPTIONS=on_dangling=recover,stats_json=...,log_path=...: it
     must pass too, and run the same number of tests with the same number skipped.

In the marked run every Python process of the module writes its own statistics and log
(children inherit the variables: test_json alone starts 17 interpreters).  The case checks
that the regrtest process itself resolved and hooked every marker, and that its
dangling_accesses equals the reports in its log (recover mode reports each dangling access,
makes the page accessible again and goes on: allowed, and counted); no other process may have
more reports than it counted (a forked child's statistics include its parent's counts up to
the fork, its log only its own reports).  The PASS line gives the tests run, both times, the
processes, the regions opened and the dangling reports by marker.

The last case, markers_ran_regions, sums markers[].regions over every marked process of the
run and requires each marker to have opened regions: a marker that never fires would make
the run vacuous.  It prints regions and region objects per marker.

The markers are exported functions on hot paths of the interpreter (MARKERS says why each):
compile(), repr(), str(), format(), %-formatting, str.join (json's encoder and re.sub reach
it), the C-level message formatter behind exception messages, and two libraries that python3.11
links: zlib's inflate and expat's XML_Parse.  With Python's own small-object allocator
(pymalloc, the default), only allocations above 512 bytes and raw ones reach malloc, so that
is what the regions hold; the results that are kept (a long joined string, a repr stored in a
cache, zlib's window, expat's buffer) are the dangling accesses the reports show.

The default set (SLICE) is about 40 modules covering strings, unicode, codecs, json, re,
collections, itertools, dict/list/set/tuple, functools, pickle, datetime, decimal, float,
long, the compiler and AST, XML, zlib, threads and os/subprocess; it takes about a minute
on two CPUs.  A case named MODULE+malloc runs both runs with PYTHONMALLOC=malloc: Python's
small-object allocator is off, so every object made inside a region is region memory, and
the freelists and caches that keep some make thousands of dangling reads (two in the default
set; --all adds the four that recover the most, past the kernel's mapping limit).  Debian 12 does not ship test_sqlite3 (sqlite3's module is exercised by none of
these).  --all runs every module `python3.11 -m test --list-tests` names (431: 35 minutes)
and --json FILE writes the per-module results; docs/peer-tests.md has what it found.
Modules run -j N at a time (default 2), each plain then marked; the lines come in the list's
order.  No time limit is asserted: the timeouts only stop hangs.

Prints `PASS module: ...`, `FAIL module: reason` or (only with --all) `SKIP module: fails
plainly ...` (or `runs no test here`) per case, then `(K skipped ...; SECONDSs)` and last `N passed, N failed`; exit
status 1 when a case failed.  A missing python3.11 or test suite fails every case, naming the
package (scripts/lib/setup.sh installs libpython3.11-testsuite).
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402  (tests/lib: what the program suites share)

ROOT = Path(__file__).resolve().parents[2]
Failure = harness.Failure
expect = harness.expect

PYTHON = "/usr/bin/python3.11"
TEST_PACKAGE = Path("/usr/lib/python3.11/test")

# Exported functions of /usr/bin/python3.11 (nm -D) and of the libraries it links at start-up,
# all marked at once.  Counts are regions in the default slice (measured here).
MARKERS = [
    ("Py_CompileStringObject", "compile() and exec() of source: tokenizer, parser, AST arena and "
     "compiler allocate inside; the code object escapes (test_ast, test_grammar: thousands)"),
    ("PyObject_Repr", "repr(): runs __repr__ of any class, so a region holds arbitrary Python code "
     "(test_pickle, test_deque: 10^4-10^5)"),
    ("PyObject_Str", "str(), print(), %s: the hottest (10^5 in test_decimal, test_pickle)"),
    ("PyObject_Format", "format() and f-strings with a format spec (test_float, test_compile)"),
    ("PyUnicode_Format", "str % args (test_re, test_decimal, test_unicodedata)"),
    ("_PyUnicode_JoinArray", "str.join, which json's encoder, re.sub and most string building "
     "reach; long results escape (test_unicode, test_bytes: thousands of dangling reads)"),
    ("PyUnicode_FromFormatV", "the C-level formatter behind PyErr_Format and repr of builtins "
     "(test_bytes, test_codecs: 10^5)"),
    ("libz.so.1:inflate", "zlib decompression (test_zlib, test_gzip); its window is allocated in "
     "the first call and kept in the stream"),
    ("libexpat.so.1:XML_Parse", "expat parsing each buffer (test_xml_etree, test_minidom); its "
     "buffers grow inside and are kept in the parser"),
]

# The default set, in the order the lines are printed.  Chosen to finish in about a minute on
# two CPUs with every marker firing; subprocess-heavy modules (each child interpreter pays
# the markers' set-up: test_subprocess starts 300) are in --all only.
SLICE = [
    "test_unicode", "test_string", "test_format", "test_fstring", "test_bytes", "test_codecs",
    "test_string_literals", "test_unicodedata", "test_json", "test_re", "test_collections",
    "test_deque", "test_ordered_dict", "test_defaultdict", "test_itertools", "test_dict",
    "test_list", "test_set", "test_tuple", "test_dictviews", "test_functools", "test_operator",
    "test_pickle", "test_datetime", "test_decimal", "test_fractions", "test_float", "test_long",
    "test_grammar", "test_ast", "test_xml_etree", "test_minidom", "test_zlib", "test_pprint",
    "test_reprlib", "test_csv", "test_struct", "test_enum", "test_dataclasses", "test_thread",
    "test_threading_local", "test_popen", "test_os",
    # PYTHONMALLOC=malloc, plain and marked: every object Python makes inside a region is
    # region memory (freelists and caches keep thousands: thousands of dangling reads).
    "test_dict+malloc", "test_functools+malloc",
]

# Added by --all: the modules whose runs under PYTHONMALLOC=malloc recover from the most
# dangling accesses (tens of thousands of pages, past vm.max_map_count's split mappings: they
# died by SIGSEGV before recover mode learned to join a page to its accessible neighbour).
ALL_MALLOC = ["test_pickle+malloc", "test_compile+malloc", "test_decimal+malloc", "test_re+malloc"]

# Case name suffixes: the environment both runs of the module get.
VARIANTS = {"malloc": {"PYTHONMALLOC": "malloc"}}

REPORT_LINE = re.compile(r"^==(\d+)==ERROR: arenashim: use-after-region-free on address \S+ "
                         r"\((READ|WRITE) of region #\d+, marker '([^']*)'\)", re.M)
RAN_LINE = re.compile(r"^Ran (\d+) tests? in ", re.M)
SKIPPED = re.compile(r"^(?:OK|FAILED) \(.*?skipped=(\d+)", re.M)


class Outcome:
    """One module's result: status is 'pass', 'fail' or 'skip' (fails plainly, --all only)."""

    def __init__(self, module):
        self.module = module
        self.status = "fail"
        self.line = ""
        self.record = {"module": module}
        self.regions = collections.Counter()   # marker spec -> regions, over its processes
        self.objects = collections.Counter()


class Suite:
    def __init__(self, build, tmp, strict_plain):
        self.build = build
        self.tmp = Path(tmp)
        self.library = build / "preload" / "libarenashim.so"
        self.strict_plain = strict_plain

    def check_installed(self):
        expect(self.library.exists(), harness.not_built(self.library, self.build))
        expect(os.path.exists(PYTHON), "%s is not installed (Debian package python3.11)" % PYTHON)
        expect((TEST_PACKAGE / "regrtest.py").exists(),
               "%s is not installed (Debian package libpython3.11-testsuite; scripts/lib/setup.sh "
               "installs it)" % TEST_PACKAGE)

    def folder(self, module, kind):
        work = self.tmp / module / kind
        work.mkdir(parents=True)
        os.chmod(work, 0o1777)  # tests that run children as another user write here too
        return work

    def regrtest(self, module, work, extra_env, timeout):
        # Without the caller's PYTHON* variables: PYTHONUNBUFFERED or PYTHONDONTWRITEBYTECODE
        # (set in this project's CI) change what test_cmd_line, test_compileall and others check.
        env = {k: v for k, v in harness.clean_env().items() if not k.startswith("PYTHON")}
        env.update({"HOME": str(work), "TMPDIR": str(work), "PATH": "/usr/bin:/bin"})
        env.update(extra_env)
        # regrtest's own timeout dumps the tracebacks of a hung test before ours kills it all.
        argv = [PYTHON, "-m", "test", "-v", "--timeout", str(timeout - 30), module]
        try:
            rc, out, err, seconds, pid = harness.spawn(argv, env, timeout, cwd=str(work))
        except harness.ProcessTimeout as e:
            raise Failure("%s: %s\n%s" % ("marked" if "LD_PRELOAD" in extra_env else "plain", e,
                                          tail((e.stdout or b"") + (e.stderr or b""))))
        return harness.Run(argv, rc, out, err, seconds, pid)

    def marked_env(self, logs):
        return {
            "LD_PRELOAD": str(self.library),
            "ARENASHIM_REGIONS": ",".join(spec for spec, _ in MARKERS),
            "ARENASHIM_OPTIONS": "on_dangling=recover,stats_json=%s/s.%%p.json,log_path=%s/log.%%p" % (logs, logs),
        }


def tail(output, lines=25):
    """The failing tests unittest names (its FAIL:/ERROR: headers, the first 10), then the
    last lines."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    failing = re.findall(r"^(?:FAIL|ERROR): .*$", text, re.M)[:10]
    return "\n".join(failing + ["..."] * bool(failing) + text.rstrip().splitlines()[-lines:])


def test_counts(run):
    """(tests ran, tests skipped) from unittest's summaries in -v output (one per module)."""
    text = run.out + run.err
    return sum(map(int, RAN_LINE.findall(text))), sum(map(int, SKIPPED.findall(text)))


def read_processes(logs):
    """The marked run's processes: {pid: (stats or None, [(access, marker), ...])}."""
    processes = {}
    for path in logs.glob("s.*.json"):
        pid = int(path.name.split(".")[1])
        try:
            stats = json.loads(path.read_text())
        except ValueError as e:
            raise Failure("%s does not parse: %s" % (path.name, e))
        processes[pid] = (stats, [])
    for path in logs.glob("log.*"):
        pid = int(path.name.split(".")[1])
        reports = [(m.group(2), m.group(3)) for m in REPORT_LINE.finditer(path.read_text(errors="replace"))]
        processes.setdefault(pid, (None, []))[1].extend(reports)
    return processes


def describe_dangling(by_marker):
    if not by_marker:
        return "0 dangling"
    return "%d dangling (%s)" % (sum(by_marker.values()), ", ".join(
        "%s %d" % (marker, n) for marker, n in by_marker.most_common()))


def run_module(suite, name, timeout):
    """Plain, then marked; returns an Outcome (a Failure becomes status 'fail').  name is a
    module, or MODULE+VARIANT (VARIANTS: the environment of both runs)."""
    outcome = Outcome(name)
    module, _, variant = name.partition("+")
    extra = dict(VARIANTS[variant]) if variant else {}
    try:
        suite.check_installed()
        plain = suite.regrtest(module, suite.folder(name, "plain"), extra, timeout)
        ran, skipped = test_counts(plain)
        outcome.record.update(plain_rc=plain.rc, plain_seconds=round(plain.elapsed, 2), tests=ran, skipped=skipped)
        if plain.rc != 0 or ran == 0:
            message = "%s, not comparable:\n%s" % (
                "fails plainly (exit status %s)" % harness.describe_status(plain.rc) if plain.rc != 0 else
                "runs no test here (skipped as a whole: another platform, or a resource not enabled)",
                tail(plain.out + plain.err, 8))
            if not suite.strict_plain:
                outcome.status, outcome.line = "skip", message
                return outcome
            raise Failure(message + "\n(the default set lists modules that pass on Debian 12)")
        logs = suite.folder(name, "arenashim")
        marked = suite.regrtest(module, suite.folder(name, "marked"), dict(extra, **suite.marked_env(logs)), timeout * 2)
        processes = read_processes(logs)
        by_marker = collections.Counter(marker for _, reports in processes.values() for _, marker in reports)
        outcome.record.update(marked_rc=marked.rc, marked_seconds=round(marked.elapsed, 2),
                              processes=len(processes), dangling=dict(by_marker))
        for stats, _ in processes.values():
            for m in (stats or {}).get("markers", []):
                outcome.regions[m["spec"]] += m["regions"]
                outcome.objects[m["spec"]] += m["objects"]
        outcome.record["regions"] = dict(outcome.regions)
        expect(marked.rc == 0, "passes plainly, fails marked (exit status %s); %s:\n%s" % (
            harness.describe_status(marked.rc), describe_dangling(by_marker), tail(marked.out + marked.err)))
        marked_ran, marked_skipped = test_counts(marked)
        expect((marked_ran, marked_skipped) == (ran, skipped),
               "marked ran %d tests, %d skipped; plainly %d, %d skipped" % (marked_ran, marked_skipped, ran, skipped))
        own = processes.get(marked.pid, (None, []))[0]
        expect(own is not None, "the regrtest process (pid %d) wrote no statistics" % marked.pid)
        hooked = {m["spec"] for m in own["markers"] if m["resolved"] and not m["refused"]}
        missing = [spec for spec, _ in MARKERS if spec not in hooked]
        expect(not missing, "markers not hooked in the regrtest process: %s" % "; ".join(
            "%s (%s)" % (m["spec"], m["reason"] or "never resolved") for m in own["markers"] if m["spec"] in missing))
        # Every access counted is reported.  A forked child's statistics carry its parent's
        # counts up to the fork (they are process memory) while its log has only its own
        # reports: exact for the regrtest process, at most the count for the others.
        for pid, (stats, reports) in sorted(processes.items()):
            if stats is not None and (stats["dangling_accesses"] < len(reports) or
                                      (pid == marked.pid and stats["dangling_accesses"] != len(reports))):
                raise Failure("process %d counted %d dangling accesses and its log has %d reports" % (
                    pid, stats["dangling_accesses"], len(reports)))
        outcome.status = "pass"
        outcome.line = "%d tests (%d skipped); plain %.1fs, marked %.1fs; %d processes, %d regions; %s" % (
            ran, skipped, plain.elapsed, marked.elapsed, len(processes), sum(outcome.regions.values()),
            describe_dangling(by_marker))
    except Failure as e:
        outcome.line = str(e)
    except Exception:  # noqa: BLE001 - a broken case is a failed case
        outcome.line = traceback.format_exc()
    finally:
        shutil.rmtree(suite.tmp / name, ignore_errors=True)
        outcome.record["status"] = outcome.status
        if outcome.status != "pass":
            outcome.record["reason"] = outcome.line
    return outcome


def every_module():
    """What `python3.11 -m test --list-tests` lists (every module regrtest would run)."""
    rc, out, err, _, _ = harness.spawn([PYTHON, "-m", "test", "--list-tests"], harness.clean_env(), 120)
    expect(rc == 0, "python3.11 -m test --list-tests failed:\n%s" % tail(out + err))
    return out.decode().split()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("-k", dest="filter", default="", help="run only the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--all", action="store_true", help="every module of the test suite (about 35 minutes on two CPUs)")
    parser.add_argument("-j", dest="jobs", type=int, default=2, help="modules at a time (default 2)")
    parser.add_argument("--json", help="write the per-module results to this file")
    args = parser.parse_args()
    build = Path(args.build)
    if not build.is_absolute():
        build = (Path.cwd() / build) if (Path.cwd() / build).exists() else ROOT / build
    build = build.resolve()

    modules = SLICE
    if args.all:
        try:
            modules = every_module() + ALL_MALLOC
        except Failure as e:
            print("FAIL list_tests: %s" % e)
            print("0 passed, 1 failed")
            return 1
    modules = [m for m in modules if args.filter in m]
    final_case = "markers_ran_regions"
    if args.list:
        for m in modules:
            module, _, variant = m.partition("+")
            print("%-28s python3.11 -m test %s, plain then marked%s" % (
                m, module, "".join(" (%s=%s)" % kv for kv in VARIANTS[variant].items()) if variant else ""))
        if args.filter in final_case:
            print("%-28s every marker opened regions over the run" % final_case)
        return 0

    # A shell starts a background job with SIGINT ignored, and exec keeps that: the tests
    # that interrupt themselves (test_signal, test_threading, test_generators...) would fail
    # plainly.  Children get the default disposition back.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="arenashim-peer.")
    os.chmod(tmp, 0o755)
    suite = Suite(build, tmp, strict_plain=not args.all)
    timeout = 900 if args.all else 300
    counts = collections.Counter()
    regions, objects = collections.Counter(), collections.Counter()
    records = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(run_module, suite, m, timeout) for m in modules]
            for future in futures:  # in the list's order
                outcome = future.result()
                counts[outcome.status] += 1
                regions.update(outcome.regions)
                objects.update(outcome.objects)
                records.append(outcome.record)
                print("%s %s: %s" % (outcome.status.upper(), outcome.module, outcome.line.replace("\n", "\n    ")))
                sys.stdout.flush()
        if args.filter in final_case:
            fired = ", ".join("%s %d regions/%d objects" % (spec, regions[spec], objects[spec]) for spec, _ in MARKERS)
            silent = [spec for spec, _ in MARKERS if regions[spec] == 0]
            if silent:
                counts["fail"] += 1
                print("FAIL %s: never opened a region: %s (%s)" % (final_case, ", ".join(silent), fired))
            else:
                counts["pass"] += 1
                print("PASS %s: %s" % (final_case, fired))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"markers": [s for s, _ in MARKERS], "modules": records,
                                               "regions": dict(regions), "objects": dict(objects)}, indent=1) + "\n")
    print("(%d skipped: fail plainly or run no test here, not comparable; %.1fs)" % (
        counts["skip"], time.monotonic() - start))
    print("%d passed, %d failed" % (counts["pass"], counts["fail"]))
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
