#!/usr/bin/python3
"""Function-marker tests of arenashim (ARENASHIM_REGIONS), issue 4.

Usage:
    /usr/bin/python3 tests/markers/run.py --build build [-k SUBSTRING] [-j N] [--list] [-v]

Runs the programs of tests/markers/ (C and C++; they know nothing about arenashim), which
meson builds (tests/markers/meson.build, with the rest of the project: `ninja -C BUILD`) into
BUILD/tests/markers/, in several variants of the same source (VARIANTS below; the meson.build
lists the same ones):

    o2      -O2 (-rdynamic, so exported functions are in .dynsym)
    cet     -O2 -fcf-protection=full (functions start with endbr64), with Debian-like hardening
            (-D_FORTIFY_SOURCE=2: longjmp becomes __longjmp_chk; -fstack-protector-strong)
    fp      -O2 -fno-omit-frame-pointer
    nopie   -O2 -no-pie (load base 0)
    strip   -O2, then `strip`: every marker is main+0xOFFSET, the offset taken from `nm` of the
            unstripped copy
    pg      -O2 -pg -mfentry: every function starts with a call to __fentry__ (through the GOT)
    pgnopie the same without PIE (a direct call rel32), and SIGPROF ticking throughout

plus the libraries the cases load (libmkshared.so, libmkplugin.so, libmkdep.so, libmkver.so
with its version script, linked by gold when there is one), dl, refuse, ver, the RUNPATH
layout runpath/ (dlpath, libmkloader.so, libmkplugin.so, plugins/libmkplugin2.so) and
reach.py's probe.  The runner compiles nothing: a case whose program is not in the build
folder fails, saying to run `ninja -C BUILD`.

It runs each case with LD_PRELOAD=BUILD/preload/libarenashim.so and ARENASHIM_REGIONS set,
and checks the exit status, the stderr report, the stats_json figures (stats_json is always
on) and, for runs that must not change behaviour, that stdout and the exit status equal those
of a run without the preload.  One line per case, `PASS name` or `FAIL name: reason` (or
`SKIP name: reason`), then two lines saying how the runs come about and how many were skipped,
`(S scenarios x B builds (...) = R runs, plus O single-build cases: T runs in all)` and
`(K skipped[: K because ...]; SECONDSs)`, and last `N passed, N failed` (N counts runs, so a
scenario counts once per build).  Exit status 1 when a case failed.

A case that needs a program that is not installed (sqlite3, xmllint: scripts/lib/setup.sh
installs both) fails, saying which package to install.  Only what no installation can
provide is skipped, and listed: the 256-bit (AVX2) return cases on a CPU without AVX2.

Cases are built in variant_cases() (run against every variant) and other_cases(); each is a
Case(name, program, args, regions=[...], ...) with what must come of it.  reach/xmllint-sample
runs reach.py on a sample of libxml2's functions (see reach.py).  Marker specs in `regions` may be written as {fn:NAME} (a function of the program being
run: NAME for named variants, main+0xOFF for the stripped one, the mangled name for C++) or
{off:NAME} (always main+0xOFF).
"""

import argparse
import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402  (tests/lib: what the program suites share)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = "/usr/bin/python3"

# The variants mt.c and mtx.cpp are built in, mt-VARIANT and mtx-VARIANT (the flags of each:
# the docstring above and tests/markers/meson.build's markers_variants, which must list the
# same names).
VARIANTS = ["o2", "cet", "fp", "nopie", "strip", "pg", "pgnopie"]


Failure = harness.Failure
expect = harness.expect
describe_status = harness.describe_status
all_of = harness.all_of


class Skip(Exception):
    """A case that cannot run on this machine whatever is installed (the CPU lacks AVX2): listed
    as SKIP and counted in the summary, never silently dropped.  A missing program is not a
    reason to skip: see missing_tool()."""


# The Debian package of each program the cases run (scripts/lib/setup.sh installs them).
TOOL_PACKAGES = {"sqlite3": "sqlite3", "xmllint": "libxml2-utils", "nm": "binutils", "prlimit": "util-linux"}


def missing_tool(program):
    """A case whose program is not installed fails: it was not run, so it did not pass."""
    package = TOOL_PACKAGES.get(program, program)
    return Failure("%s is not installed: the case cannot run (apt-get install -y %s; scripts/test "
                   "installs it through scripts/lib/setup.sh)" % (program, package))


# --- the built programs ----------------------------------------------------------------------

class Build:
    """What the meson build made for this suite: the preload library and, in
    BUILD/tests/markers/, the programs and libraries of tests/markers/meson.build."""

    def __init__(self, build_dir):
        self.build_dir = build_dir
        self.out = harness.programs_dir(build_dir, "markers")
        self.lib = (build_dir / "preload" / "libarenashim.so").resolve()
        self.symbols = {}  # binary name -> {symbol: address}

    def path(self, name):
        return self.out / name

    def built(self, name):
        """Whether NAME (a program, library or folder/program of BUILD/tests/markers) is one of
        this suite's: mt-*, mtx-*, dl, refuse, ver, runpath/dlpath, lib*.so."""
        return bool(re.fullmatch(r"mtx?-\w+|dl|refuse|ver|runpath/dlpath|lib\w+\.so", name))

    def missing(self, program, args):
        """The files of the build folder a run of PROGRAM ARGS needs and that are not there: the
        program (its unstripped copy too, for -strip), what it links, and arguments that name a
        file of BUILD/tests/markers."""
        needed = []
        if self.built(program):
            needed.append(self.path(program))
            if program.endswith("-strip"):
                needed.append(self.path(program + ".full"))
            if program.startswith("mt-"):
                needed.append(self.path("libmkshared.so"))
            elif program == "ver":
                needed.append(self.path("libmkver.so"))
            elif program == "runpath/dlpath":
                needed += [self.path("runpath/libmkloader.so"), self.path("runpath/libmkplugin.so"),
                           self.path("runpath/plugins/libmkplugin2.so")]
        needed += [Path(a) for a in args if a.startswith(str(self.out) + "/")]
        return [p for p in needed if not p.exists()]

    def nm(self, binary):
        """{symbol: address} of a binary's .symtab (of its unstripped copy for -strip).  For a
        binary that is not built, every name is at 0 (MissingSymbols): the cases can still be
        made, and each that runs it fails first, saying to run ninja."""
        if binary in self.symbols:
            return self.symbols[binary]
        path = self.path(binary + ".full" if binary.endswith("-strip") else binary)
        if self.built(binary) and not path.exists():
            self.symbols[binary] = MissingSymbols()
            return self.symbols[binary]
        proc = subprocess.run(["nm", "--defined-only", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        table = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                table.setdefault(parts[2], int(parts[0], 16))
        self.symbols[binary] = table
        return table

    def function(self, binary, name):
        """The symbol of function NAME in binary: NAME itself, or its mangled C++ name."""
        table = self.nm(binary)
        if name in table:
            return name
        mangled = [s for s in table if re.fullmatch(r"_Z%d%s[A-Za-z0-9_]*" % (len(name), re.escape(name)), s)]
        if len(mangled) == 1:
            return mangled[0]
        raise Failure("function %s not found in %s (nm)" % (name, binary))

    def offset_spec(self, binary, name):
        return "main+%s" % hex(self.nm(binary)[self.function(binary, name)])

    def spec(self, binary, name):
        if binary.endswith("-strip"):
            return self.offset_spec(binary, name)
        return self.function(binary, name)


class MissingSymbols(dict):
    """The symbol table of a binary that is not in the build folder (see Build.nm)."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return 0


def avx2_supported():
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


# --- running ----------------------------------------------------------------------------------

Run = harness.Run


base_env = harness.clean_env


def run_process(argv, env, timeout, stdin=None, cwd=None):
    """Runs argv; a run whose LD_PRELOAD could not be loaded (the library is being relinked
    right now by a concurrent build) is retried a few times."""
    for attempt in range(6):
        run = run_once(argv, env, timeout, stdin, cwd)
        if b"cannot be preloaded" not in run.stderr:
            break
        time.sleep(1 + attempt)
    return run


def run_once(argv, env, timeout, stdin=None, cwd=None):
    rc, stdout, stderr, elapsed, _ = harness.spawn(argv, env, timeout, stdin, cwd)
    return Run(argv, rc, stdout, stderr, elapsed)


def report_re(spec, access="READ"):
    return (r"==\d+==ERROR: arenashim: use-after-region-free on address 0x[0-9a-f]+ "
            r"\(%s of region #\d+, marker '%s'\)" % (access, re.escape(spec)))


class Context:
    def __init__(self, build, tmp_root):
        self.build = build
        self.tmp_root = tmp_root
        self._plain = {}
        self._lock = threading.Lock()

    def plain(self, argv, stdin, timeout, cwd):
        """A run without the preload (cached: many cases share one)."""
        key = (tuple(argv), stdin)
        with self._lock:
            if key in self._plain:
                return self._plain[key]
        run = run_process(argv, base_env(), timeout, stdin, cwd)
        with self._lock:
            self._plain[key] = run
        return run


class Case:
    """One run with the preload and what must come of it.

    program   binary in BUILD/tests/markers (or an absolute path / tool name)
    args      its arguments
    regions   marker specs; '{fn:NAME}' / '{off:NAME}' are resolved against program
    options   extra ARENASHIM_OPTIONS (stats_json is always added)
    rc        expected exit status (-11: SIGSEGV)
    same_as_plain  stdout and exit status equal a run without arenashim
    report    the marker spec the dangling-access report must name (its first line)
    error     substrings the `arenashim: error: ` line (first stderr line) must contain
    check     function(case, run) with more checks (stats in run.stats)
    per_process_stats  stats_json=.../stats.%p.json; run.stats_files maps pid -> stats
    needs     programs on PATH the case runs (missing: the case fails)
    requires_cpu  a CPU feature ("avx2"); without it the case is skipped, and listed
    """

    def __init__(self, name, program, args=(), regions=(), options=None, rc=0, same_as_plain=False,
                 report=None, error=None, check=None, stdin=None, timeout=30, per_process_stats=False,
                 stderr_has=(), stderr_lacks=(), needs=(), report_access="READ", requires_cpu=None,
                 extra_env=None):
        self.name = name
        self.extra_env = dict(extra_env or {})
        self.requires_cpu = requires_cpu
        self.report_access = report_access
        self.program = program
        self.args = [str(a) for a in args]
        self.regions = list(regions)
        self.options = options
        self.rc = rc
        self.same_as_plain = same_as_plain
        self.report = report
        self.error = [error] if isinstance(error, str) else list(error or [])
        self.check = check
        self.stdin = stdin
        self.timeout = timeout
        self.per_process_stats = per_process_stats
        self.stderr_has = list(stderr_has)
        self.stderr_lacks = list(stderr_lacks)
        self.needs = list(needs)
        self.specs = []

    def resolve(self, build, text):
        def substitute(match):
            kind, name = match.group(1), match.group(2)
            if kind == "fn":
                return build.spec(self.program, name)
            return build.offset_spec(self.program, name)
        return re.sub(r"\{(fn|off):([\w.]+)\}", substitute, text)

    def spec(self, build, text):
        return self.resolve(build, text)

    def argv(self, build):
        program = self.program
        if not program.startswith("/") and build.path(program).exists():
            program = str(build.path(program))
        elif "/" not in program:
            found = shutil.which(program)
            if found is None:
                raise missing_tool(program)
            program = found
        return [program] + [self.resolve(build, a) for a in self.args]

    def execute(self, ctx, case_dir):
        build = ctx.build
        if self.requires_cpu == "avx2" and not avx2_supported():
            raise Skip("this CPU has no AVX2 (no 'avx2' flag in /proc/cpuinfo)")
        for need in self.needs:
            if shutil.which(need) is None:
                raise missing_tool(need)
        missing = build.missing(self.program, self.args)
        if missing:
            raise Failure("; ".join(harness.not_built(p, build.build_dir) for p in missing))
        argv = self.argv(build)
        self.specs = [self.resolve(build, r) for r in self.regions]
        env = base_env()
        env["LD_PRELOAD"] = str(build.lib)
        env["ARENASHIM_REGIONS"] = ",".join(self.specs)
        stats_name = "stats.%p.json" if self.per_process_stats else "stats.json"
        options = "stats_json=" + str(case_dir / stats_name)
        if self.options:
            options = self.options + "," + options
        env["ARENASHIM_OPTIONS"] = options
        env.update(self.extra_env)
        stdin = self.stdin.encode() if isinstance(self.stdin, str) else self.stdin
        run = run_process(argv, env, self.timeout, stdin, str(case_dir))
        # Statistics.
        for path in case_dir.glob("stats*.json"):
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise Failure("stats_json %s does not parse: %s" % (path.name, e))
            m = re.match(r"stats\.(\d+)\.json", path.name)
            run.stats_files[int(m.group(1)) if m else 0] = data
            if not self.per_process_stats:
                run.stats = data
        context = "\n    stderr: " + "\n    ".join(run.err.splitlines()[:6]) if run.err else ""
        expect(self.rc is None or run.rc == self.rc, "exit status %s, expected %s%s" % (
            describe_status(run.rc), describe_status(self.rc), context))
        if self.report is not None:
            spec = self.resolve(build, self.report)
            lines = run.err.splitlines()
            expect(any(re.fullmatch(report_re(spec, self.report_access), line) for line in lines),
                   "no use-after-region-free report (%s) naming marker '%s'%s" % (
                       self.report_access, spec, context))
        elif self.rc in (0, None) and "on_dangling=recover" not in (self.options or ""):
            expect("use-after-region-free" not in run.err,
                   "unexpected dangling-access report%s" % context)
        if self.error:
            line = run.first_err_line()
            expect(line.startswith("arenashim: error: "),
                   "first stderr line %r does not start with 'arenashim: error: '" % line)
            for word in self.error:
                word = self.resolve(build, word)
                expect(word in line, "error line %r does not name %r" % (line, word))
        elif self.rc == 0:
            expect("arenashim: error" not in run.err, "unexpected error%s" % context)
        for s in self.stderr_has:
            expect(self.resolve(build, s) in run.err, "stderr lacks %r%s" % (s, context))
        for s in self.stderr_lacks:
            expect(self.resolve(build, s) not in run.err, "stderr has %r%s" % (s, context))
        if self.rc == 0 and not self.per_process_stats and not self.error:
            expect(run.stats is not None, "no stats_json was written")
        if self.same_as_plain:
            plain = ctx.plain(argv, stdin, self.timeout, str(case_dir))
            expect(plain.rc == run.rc, "exit status %s under arenashim, %s without" % (
                describe_status(run.rc), describe_status(plain.rc)))
            if plain.stdout != run.stdout:
                a, b = plain.out.splitlines(), run.out.splitlines()
                i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
                raise Failure("stdout differs from a run without arenashim at line %d: %r, plain %r" % (
                    i + 1, b[i] if i < len(b) else "<eof>", a[i] if i < len(a) else "<eof>"))
        if self.check:
            self.check(self, run)
        return run


# --- stats helpers ----------------------------------------------------------------------------

def marker_of(stats, spec):
    expect(stats is not None, "no stats")
    for m in stats.get("markers", []):
        if m.get("spec") == spec:
            return m
    raise Failure("stats has no marker %r (markers: %s)" % (
        spec, [m.get("spec") for m in stats.get("markers", [])]))


def balanced(stats):
    expect(stats["regions_begun"] == stats["regions_ended"],
           "regions_begun %d != regions_ended %d" % (stats["regions_begun"], stats["regions_ended"]))


def expect_stats(begun=None, allocs=None, allocs_min=None, markers=None, is_balanced=True):
    """markers: {spec-template: regions} (None: only resolved)."""
    def check(case, run):
        stats = run.stats
        expect(stats is not None, "no stats_json")
        if is_balanced:
            balanced(stats)
        if begun is not None:
            expect(stats["regions_begun"] == begun,
                   "regions_begun %d, expected %d" % (stats["regions_begun"], begun))
        if allocs is not None:
            expect(stats["region_allocs"] == allocs,
                   "region_allocs %d, expected %d" % (stats["region_allocs"], allocs))
        if allocs_min is not None:
            expect(stats["region_allocs"] >= allocs_min,
                   "region_allocs %d, expected >= %d" % (stats["region_allocs"], allocs_min))
        for template, regions in (markers or {}).items():
            spec = case.resolve(BUILD, template)
            m = marker_of(stats, spec)
            expect(m.get("resolved") is True and not m.get("refused"),
                   "marker %s: resolved=%s refused=%s reason=%r" % (spec, m.get("resolved"),
                                                                  m.get("refused"), m.get("reason")))
            if regions is not None:
                expect(m["regions"] == regions, "marker %s: regions %d, expected %d" % (
                    spec, m["regions"], regions))
    return check


BUILD = None  # set in main(); the checks resolve spec templates against it


# --- cases ------------------------------------------------------------------------------------

def variant_cases(v):
    mt, mtx = "mt-%s" % v, "mtx-%s" % v
    fn = lambda name: "{fn:%s}" % name
    c = []
    add = lambda name, *a, **k: c.append(Case("%s/%s" % (v, name), *a, **k))

    # Objects allocated in a call are region objects: regions == calls, allocs == calls x K.
    add("alloc-static", mt, ["alloc", "static", 25, 7], [fn("static_work")], same_as_plain=True,
        check=expect_stats(begun=25, allocs=175, markers={fn("static_work"): 25}))
    add("alloc-exported", mt, ["alloc", "exported", 13, 11], [fn("exported_work")], same_as_plain=True,
        check=expect_stats(begun=13, allocs=143, markers={fn("exported_work"): 13}))
    # The region ends exactly at return.
    add("escape-read-inside", mt, ["escape", "static", 0], [fn("static_work")], same_as_plain=True,
        check=expect_stats(begun=1, allocs=4, markers={fn("static_work"): 1}))
    add("escape-read-after", mt, ["escape", "static", 1], [fn("static_work")], rc=-11,
        report=fn("static_work"))
    add("escape-write-after", mt, ["escape", "static", 2], [fn("static_work")], rc=-11,
        report=fn("static_work"), report_access="WRITE")
    add("escape-read-after-exported", mt, ["escape", "exported", 1], [fn("exported_work")], rc=-11,
        report=fn("exported_work"))
    # Return values of every kind; each function is called without and with an allocation.
    rets = ["ret_int", "ret_long", "ret_ptr", "ret_double", "ret_float", "ret_ldouble", "ret_cldouble",
            "ret_d2", "ret_s16", "ret_mixed", "ret_big", "ret_f4"]
    add("returns", mt, ["returns"], [fn(r) for r in rets], same_as_plain=True,
        check=expect_stats(begun=2 * len(rets), allocs=len(rets), markers={fn(r): 2 for r in rets}))
    # 256-bit vectors in ymm0: a case of its own, skipped (and listed) on a CPU without AVX2.
    rets256 = ["ret_m256", "ret_m256d", "ret_m256i"]
    c.append(Case("%s/returns-avx2" % v, mt, ["returns"], [fn(r) for r in rets256], same_as_plain=True,
                  check=expect_stats(begun=2 * len(rets256), allocs=len(rets256),
                                     markers={fn(r): 2 for r in rets256}),
                  requires_cpu="avx2"))
    # Recursion of one marker: one region per outer call; inner levels' objects stay valid.
    add("recursion", mt, ["recurse", 10, 20], [fn("recurse")], same_as_plain=True,
        check=expect_stats(begun=10, allocs=10 * 21, markers={fn("recurse"): 10}))
    # Two markers nest; the outer object outlives the inner region; the inner ends first.
    add("nesting", mt, ["nest", 10, 0], [fn("nest_outer"), fn("nest_inner")], same_as_plain=True,
        check=expect_stats(begun=20, allocs=20, markers={fn("nest_outer"): 10, fn("nest_inner"): 10}))
    add("nesting-inner-ends-first", mt, ["nest", 3, 1], [fn("nest_outer"), fn("nest_inner")], rc=-11,
        report=fn("nest_inner"))
    # longjmp / _longjmp (__longjmp_chk in the cet variant) out of a marked function.
    add("longjmp", mt, ["longjmp", 12, 0], [fn("lj_work")], same_as_plain=True,
        check=expect_stats(begun=15, allocs=15, markers={fn("lj_work"): 15}))
    add("longjmp-skipped-region-ended", mt, ["longjmp", 4, 1], [fn("lj_work")], rc=-11,
        report=fn("lj_work"))
    add("siglongjmp", mt, ["siglongjmp", 12, 0, 0], [fn("sl_work")], same_as_plain=True,
        check=expect_stats(begun=15, allocs=15, markers={fn("sl_work"): 15}))
    add("siglongjmp-altstack", mt, ["siglongjmp", 12, 1, 0], [fn("sl_work")], same_as_plain=True,
        check=expect_stats(begun=15, allocs=15, markers={fn("sl_work"): 15}))
    add("siglongjmp-skipped-region-ended", mt, ["siglongjmp", 4, 0, 1], [fn("sl_work")], rc=-11,
        report=fn("sl_work"))
    # Threads.
    add("threads", mt, ["threads", 8, 200, 10], [fn("thread_work")], same_as_plain=True, timeout=60,
        check=expect_stats(begun=1600, allocs=16000, markers={fn("thread_work"): 1600}))
    # Arguments: registers and stack; variadic (al); red zone; tail call.
    add("many-arguments", mt, ["args", 6], [fn("args_many")], same_as_plain=True,
        check=expect_stats(begun=6, allocs=6, markers={fn("args_many"): 6}))
    add("variadic", mt, ["variadic", 6], [fn("format_into")], same_as_plain=True,
        check=expect_stats(begun=6, allocs=6, markers={fn("format_into"): 6}))
    add("redzone-leaf", mt, ["redzone", 10], [fn("redzone_leaf")], same_as_plain=True,
        check=expect_stats(begun=10, allocs=0, markers={fn("redzone_leaf"): 10}))
    add("tail-call", mt, ["tailcall", 10, 0], [fn("tail_caller")], same_as_plain=True,
        check=expect_stats(begun=10, allocs=10, markers={fn("tail_caller"): 10}))
    add("tail-call-region-ends", mt, ["tailcall", 3, 1], [fn("tail_caller")], rc=-11,
        report=fn("tail_caller"))

    # Deep recursion of one marker (deeper than any fixed shadow stack).
    add("deep-recursion", mt, ["recurse", 2, 10000], [fn("recurse")], same_as_plain=True,
        check=expect_stats(begun=2, allocs=2 * 10001, markers={fn("recurse"): 2}))
    # Signal handlers that call a marked function while another marked call is in progress.
    for alt in (0, 1):
        add("signal-handler-nested" + ("-altstack" if alt else ""), mt, ["signal_nested", 10, alt],
            [fn("sig_outer"), fn("sig_inner")], same_as_plain=True,
            check=expect_stats(begun=20, allocs=20, markers={fn("sig_outer"): 10, fn("sig_inner"): 10}))
    # Threads that end inside a marked function: pthread_exit (forced unwinding) and
    # pthread_cancel; their regions end with the thread.
    add("pthread-exit-and-cancel", mt, ["pthread_exit", 4],
        [fn("exiting_work"), fn("cancelled_work"), fn("static_work")], same_as_plain=True,
        check=expect_stats(begun=9, allocs=11, markers={fn("static_work"): 1}))
    # exit() inside a marked function: the atexit handler still reads the region's object.
    add("exit-inside-marked", mt, ["exit_inside", 3], [fn("exit_inside")], rc=3, same_as_plain=True,
        check=expect_stats(begun=1, allocs=1, is_balanced=False))
    # main itself as a marker, with another marker nested in it (main's own allocations, the
    # keepers array and one keeper a call, are region objects too: 6 + 1 + 3).
    add("main-as-marker", mt, ["alloc", "static", 3, 2], [fn("main"), fn("static_work")],
        same_as_plain=True, check=expect_stats(begun=4, allocs=10, markers={fn("main"): 1,
                                                                           fn("static_work"): 3}))
    # A marked libc function calling back into the program, which allocates in its region.
    def qsort_check(case, run):
        expect_stats(begun=2, markers={"libc.so.6:qsort": 2})(case, run)
        m = re.search(r"comparisons=(\d+)", run.out)
        expect(m and run.stats["region_allocs"] == int(m.group(1)), "region_allocs %d, comparisons %s" % (
            run.stats["region_allocs"], m and m.group(1)))
    add("libc-qsort-callback", mt, ["qsort", 1000], ["libc.so.6:qsort"], same_as_plain=True,
        check=qsort_check)
    # fork: the child's calls are regions of the child.
    def fork_check(case, run):
        expect(len(run.stats_files) == 2, "expected 2 stats files (parent, child), got %d" %
               len(run.stats_files))
        spec = case.resolve(BUILD, fn("static_work"))
        by_regions = sorted(run.stats_files.values(), key=lambda s: marker_of(s, spec)["regions"])
        parent, child = by_regions
        for who, stats, regions in (("parent", parent, (2,)), ("child", child, (20, 21))):
            balanced(stats)
            expect(marker_of(stats, spec)["regions"] in regions, "%s: marker regions %d, expected %s"
                   % (who, marker_of(stats, spec)["regions"], " or ".join(map(str, regions))))
        # The child may inherit the parent's counters up to the fork (one call, 10 objects).
        inherited = marker_of(child, spec)["regions"] - 20
        expect(child["region_allocs"] - 10 * inherited == 200, "child region_allocs %d, expected "
               "200 (+%d inherited)" % (child["region_allocs"], 10 * inherited))
        expect(parent["region_allocs"] == 20, "parent region_allocs %d, expected 20" %
               parent["region_allocs"])
    add("fork", mt, ["fork", 20], [fn("static_work")], same_as_plain=True, per_process_stats=True,
        check=fork_check)
    # A shell started by the program inherits ARENASHIM_REGIONS; it lacks the function.
    add("child-process-lenient", mt, ["system"], [fn("static_work")], same_as_plain=True,
        check=expect_stats(allocs=5, markers={fn("static_work"): 1}))

    # C++ exceptions.
    add("cxx-throw-caught-by-caller", mtx, ["throw", 10], [fn("thrower")], same_as_plain=True,
        check=expect_stats(begun=14, allocs=28, markers={fn("thrower"): 14}))
    add("cxx-catch-inside", mtx, ["catch_inside", 10], [fn("catcher")], same_as_plain=True,
        check=expect_stats(begun=10, allocs=30, markers={fn("catcher"): 10}))
    add("cxx-thrown-region-ended", mtx, ["escape"], [fn("thrower")], rc=-11, report=fn("thrower"))
    add("cxx-nested-rethrow", mtx, ["nested", 10], [fn("outer_x"), fn("inner_x")], same_as_plain=True,
        check=expect_stats(begun=20, allocs=20, markers={fn("outer_x"): 10, fn("inner_x"): 10}))
    add("cxx-new-delete-vector", mtx, ["newdelete", 10], [fn("vector_work")], same_as_plain=True,
        check=expect_stats(begun=10, allocs_min=10 * 9, markers={fn("vector_work"): 10}))
    if v != "o2":
        return c  # the rest does not depend on how the program was compiled
    # backtrace() inside marked frames sees the same frames as without arenashim.
    add("backtrace", mt, ["backtrace"], [fn("bt_outer"), fn("bt_middle"), fn("bt_inner")],
        same_as_plain=True, check=expect_stats(begun=3, markers={fn("bt_inner"): 1}))

    return c


def other_cases():
    c = []
    add = lambda name, *a, **k: c.append(Case(name, *a, **k))
    plugin = str(BUILD.path("libmkplugin.so"))

    # Exported functions of a library linked at start-up: .dynsym, qualified or not.
    for name, spec in (("library/qualified", "libmkshared.so:shared_work"),
                       ("library/unqualified", "shared_work")):
        add(name, "mt-o2", ["alloc", "shared", 12, 9], [spec], same_as_plain=True,
            check=expect_stats(begun=12, allocs=108, markers={spec: 12}))
    # MODULE matches a file name exactly or up to a '.': libmkshared matches libmkshared.so,
    # libmkshare matches nothing (and waits, never resolved).
    add("library/module-prefix-up-to-dot", "mt-o2", ["alloc", "shared", 4, 2], ["libmkshared:shared_work"],
        same_as_plain=True, check=expect_stats(begun=4, allocs=8, markers={"libmkshared:shared_work": 4}))

    def not_a_prefix(case, run):
        m = marker_of(run.stats, "libmkshare:shared_work")
        expect(m["resolved"] is False and m["regions"] == 0, "marker libmkshare:shared_work resolved")
        expect(run.stats["regions_begun"] == 0, "regions_begun %d" % run.stats["regions_begun"])
    add("library/module-name-not-a-prefix", "mt-o2", ["alloc", "shared", 4, 2], ["libmkshare:shared_work"],
        same_as_plain=True, stderr_has=["never resolved"], check=not_a_prefix)
    add("library/escape-read-after", "mt-o2", ["escape", "shared", 1], ["libmkshared.so:shared_work"],
        rc=-11, report="libmkshared.so:shared_work")
    # The offset form on an unstripped binary too.
    add("offset/unstripped", "mt-o2", ["alloc", "static", 5, 3], ["{off:static_work}"],
        same_as_plain=True, check=expect_stats(begun=5, allocs=15, markers={"{off:static_work}": 5}))

    # Under ulimit -v 8G (prlimit, a launcher) a marked program runs with a smaller reservation;
    # it used to stop at start-up ("cannot reserve 274877906944 bytes").
    add("limits/ulimit-v-8g-marker", "prlimit", ["--as=%d" % (8 << 30), "--", str(BUILD.path("mt-o2")),
                                                  "alloc", "static", 25, 7], ["static_work"],
        same_as_plain=True, check=expect_stats(begun=25, allocs=175, markers={"static_work": 25}))

    # dlopen by bare name resolves exactly as without arenashim: the search path is the
    # calling object's RUNPATH, found from dlopen's return address, which no hook may change.
    rp = "runpath/dlpath"
    add("dlopen/runpath-executable", rp, ["exe", "libmkplugin.so"], ["main:main"], same_as_plain=True,
        check=expect_stats(begun=1, markers={"main:main": 1}))
    add("dlopen/runpath-executable-plugin-marker", rp, ["exe", "libmkplugin.so", 6],
        ["main:main", "libmkplugin.so:plugin_work"], same_as_plain=True,
        check=expect_stats(begun=7, markers={"main:main": 1, "libmkplugin.so:plugin_work": 6}))
    add("dlopen/runpath-library", rp, ["lib", "libmkplugin2.so", 4],
        ["main:main", "libmkplugin2.so:plugin_work"], same_as_plain=True,
        check=expect_stats(begun=5, markers={"main:main": 1, "libmkplugin2.so:plugin_work": 4}))
    add("dlopen/runpath-dlmopen", rp, ["dlmopen", "libmkplugin.so", 3], ["main:main"], same_as_plain=True,
        check=expect_stats(begun=1, markers={"main:main": 1}))
    # dlopen inside a marked call: the constructor's object outlives the region, and the call
    # goes on allocating after dlopen returns (the heap serves it until the next hooked call).
    add("dlopen/runpath-inside-marked-call", rp, ["marked", "libmkplugin.so", 20],
        ["load_and_use", "libmkplugin.so:plugin_work"], same_as_plain=True,
        check=expect_stats(begun=21, markers={"load_and_use": 1, "libmkplugin.so:plugin_work": 20}))
    # Markers in a library resolve before its constructors run: one called only by the
    # constructor opens its region inside dlopen.
    add("dlopen/marker-called-by-constructor", "dl", [plugin, "calls", 2, 2],
        ["libmkplugin.so:plugin_init_scratch"], same_as_plain=True,
        check=expect_stats(begun=1, allocs=5, markers={"libmkplugin.so:plugin_init_scratch": 1}))

    # dlopen: MODULE:FUNC resolves when the library arrives.
    add("dlopen/qualified", "dl", [plugin, "calls", 10, 4], ["libmkplugin.so:plugin_work"],
        same_as_plain=True, check=expect_stats(begun=10, allocs=60,
                                               markers={"libmkplugin.so:plugin_work": 10}))
    add("dlopen/static-function-symtab", "dl", [plugin, "calls", 10, 4], ["libmkplugin.so:plugin_static"],
        same_as_plain=True, check=expect_stats(begun=10, allocs=20,
                                               markers={"libmkplugin.so:plugin_static": 10}))
    add("dlopen/nested-markers", "dl", [plugin, "calls", 10, 4],
        ["libmkplugin.so:plugin_work", "libmkplugin.so:plugin_static"], same_as_plain=True,
        check=expect_stats(begun=20, allocs=60, markers={"libmkplugin.so:plugin_work": 10,
                                                         "libmkplugin.so:plugin_static": 10}))
    add("dlopen/escape-read-after", "dl", [plugin, "escape", 1, 4], ["libmkplugin.so:plugin_work"],
        rc=-11, report="libmkplugin.so:plugin_work")
    add("dlopen/inside-a-region", "dl", [plugin, "inregion", 10, 4],
        ["load_in_region", "libmkplugin.so:plugin_work"], same_as_plain=True,
        check=expect_stats(begun=11, allocs=61, markers={"load_in_region": 1,
                                                         "libmkplugin.so:plugin_work": 10}))

    add("dlopen/dependency-of-dlopened", "dl", [str(BUILD.path("libmkdep.so")), "dep", 7, 5],
        ["libmkshared.so:shared_work"], same_as_plain=True,
        check=expect_stats(begun=7, allocs=35, markers={"libmkshared.so:shared_work": 7}))

    def offset_plugin_check(case, run):
        spec = plugin_offset_spec()
        expect_stats(begun=10, allocs=60, markers={spec: 10})(case, run)
    add("dlopen/offset", "dl", [plugin, "calls", 10, 4], [plugin_offset_spec()], same_as_plain=True,
        check=offset_plugin_check)

    def refused_after_dlopen(case, run):
        m = marker_of(run.stats, "libmkplugin.so:plugin_short")
        expect(m["resolved"] is False and m["refused"] is True,
               "resolved=%s refused=%s" % (m["resolved"], m["refused"]))
        expect("short" in m["reason"], "reason %r does not say too short" % m["reason"])
    add("dlopen/refused-not-fatal", "dl", [plugin, "short", 3], ["libmkplugin.so:plugin_short"],
        same_as_plain=True, stderr_has=["libmkplugin.so:plugin_short"], check=refused_after_dlopen)
    # Unloaded by dlclose and loaded again, 12 times: hooked again every time.
    add("dlopen/reload", "dl", [plugin, "reload", 12, 3], ["libmkplugin.so:plugin_work"],
        same_as_plain=True, check=expect_stats(begun=36, markers={"libmkplugin.so:plugin_work": 36}))

    def never_loaded(case, run):
        m = marker_of(run.stats, "libneverloaded.so:some_function")
        expect(m["resolved"] is False, "resolved is %r" % m["resolved"])
        lines = [l for l in run.err.splitlines() if "libneverloaded.so:some_function" in l]
        expect(any("never resolved: its module was never loaded" in l for l in lines),
               "stderr does not list the marker as never resolved: %r" % run.err[-300:])

    def defined_nowhere(case, run):
        m = marker_of(run.stats, "no_such_function_anywhere")
        expect(m["resolved"] is False and m["refused"] is False, "marker %r" % m)
        lines = [l for l in run.err.splitlines() if "no_such_function_anywhere" in l]
        # An unqualified marker names no module: the note must not blame one.
        expect(any("never resolved: no module loaded in this process defines that function" in l for l in lines),
               "stderr does not say why the marker never resolved: %r" % run.err[-300:])
    # A process that is not the program's root (a child that exec'd another program: the root's
    # pid is in ARENASHIM_ROOT_PID) keeps a marker it lacks unresolved, and verbose lists it at exit.
    add("unresolved/function-defined-nowhere", "mt-o2", ["alloc", "static", 3, 2],
        ["no_such_function_anywhere", "static_work"], same_as_plain=True, options="verbose=1",
        extra_env={"ARENASHIM_ROOT_PID": "1"},
        check=all_of(defined_nowhere, expect_stats(begun=3, allocs=6, markers={"static_work": 3})))
    add("unresolved/module-never-loaded", "mt-o2", ["alloc", "static", 3, 2],
        ["libneverloaded.so:some_function"], same_as_plain=True, check=never_loaded)
    add("unresolved/never-loaded-with-working-marker", "mt-o2", ["alloc", "static", 3, 2],
        ["libneverloaded.so:some_function", "static_work"], same_as_plain=True,
        check=all_of(never_loaded, expect_stats(begun=3, allocs=6, markers={"static_work": 3})))

    # Bad markers: exit 2 at start-up with `arenashim: error: ...` naming the culprit.
    bad = [
        ("main-plus-not-hex", "main+zz", "main+zz"),
        ("main-plus-no-0x", "main+123", "main+123"),
        ("empty-module", ":func", ":func"),
        ("empty-function", "lib:", "lib:"),
        ("space", "a b", "a b"),
        ("empty-entry", "static_work,,exported_work", "empty"),
        ("leading-digit", "1abc", "1abc"),
        ("trailing-comma", "static_work,", "empty"),
        ("plus-0x-only", "main+0x", "main+0x"),
        ("offset-garbage", "main+0x12g", "main+0x12g"),
        ("name-found-nowhere", "no_such_function_anywhere", "no_such_function_anywhere"),
        ("data-symbol-not-function", "seed", "seed"),
        ("module-loaded-function-missing", "libc.so.6:no_such_function_xyz",
         "libc.so.6:no_such_function_xyz"),
        ("main-function-missing", "main:no_such_function_xyz", "main:no_such_function_xyz"),
        ("module-prefix-function-missing", "libmkshared.so:no_such_function",
         "libmkshared.so:no_such_function"),
    ]
    for name, spec, culprit in bad:
        add("bad-marker/" + name, "mt-o2", ["plain"], [spec], rc=2, error=[culprit])
    # MODULE+0xOFFSET not at a function start (strip: only the offset form exists there).
    for binary in ("mt-o2", "mt-strip"):
        def off_inside(binary=binary):
            return "main+%s" % hex(BUILD.nm(binary)[BUILD.function(binary, "static_work")] + 1)
        add("bad-marker/offset-not-function-start-" + binary.split("-")[1], binary, ["plain"],
            [off_inside()], rc=2, error=[off_inside()])
    add("bad-marker/offset-outside-module", "mt-o2", ["plain"], ["main+0x7fffffff0"], rc=2,
        error=["main+0x7fffffff0"])
    add("bad-marker/lib-offset-not-function-start", "mt-o2", ["plain"],
        [shared_offset_spec(1)], rc=2, error=[shared_offset_spec(1)])
    # More markers than arenashim supports: tests/scale (a list that long needs a marker file).
    # The first bad marker stops the program even when good ones come first.
    add("bad-marker/after-good-one", "mt-o2", ["alloc", "static", 2, 2], ["static_work", "nosuchfn_q"],
        rc=2, error=["nosuchfn_q"])

    # Refusals: functions that cannot be hooked safely stop the program (exit 2, reason given).
    add("refuse/too-short", "refuse", [], ["short_fn"], rc=2, error=["short_fn", "short"])
    add("refuse/too-short-offset", "refuse", [], ["{off:short_fn}"], rc=2,
        error=["{off:short_fn}", "short"])
    add("refuse/loop-into-first-bytes", "refuse", [], ["loop_fn"], rc=2, error=["loop_fn", "jump"])
    add("refuse/ifunc", "refuse", [], ["libc.so.6:strlen"], rc=2, error=["libc.so.6:strlen", "IFUNC"])
    # memcpy has two versions in libc: memcpy@GLIBC_2.2.5 (old, listed first) and the default
    # memcpy@@GLIBC_2.14, an IFUNC: the marker must mean the default one.
    add("refuse/ifunc-versioned-memcpy", "refuse", [], ["libc.so.6:memcpy"], rc=2,
        error=["libc.so.6:memcpy", "IFUNC"])
    # The same with a library of our own: the default version is the one called.
    add("versioned/default-version", "ver", [10], ["libmkver.so:ver_fn"], same_as_plain=True,
        check=expect_stats(begun=10, allocs=10, markers={"libmkver.so:ver_fn": 10}))
    add("refuse/with-a-good-marker", "refuse", [], ["fine_fn", "loop_fn"], rc=2, error=["loop_fn"])
    # arenashim's own functions: the malloc family it exports, and its internals.  Marking them
    # cannot work (the hook itself runs them); it must be refused, not hang or crash.
    add("refuse/arenashim-malloc", "mt-o2", ["alloc", "static", 2, 2], ["malloc"], rc=2,
        error=["malloc"], timeout=5)
    add("refuse/arenashim-free", "mt-o2", ["alloc", "static", 2, 2], ["free"], rc=2,
        error=["free"], timeout=5)
    add("refuse/arenashim-internal", "mt-o2", ["alloc", "static", 2, 2],
        ["static_work", "libarenashim.so:hook_enter_fast"], rc=2, error=["hook_enter_fast"], timeout=5)
    add("refuse/good-marker-alone", "refuse", [], ["fine_fn"], same_as_plain=True,
        check=expect_stats(begun=1, allocs=1, markers={"fine_fn": 1}))

    # The child inherits ARENASHIM_REGIONS naming what the shell lacks, in every form.
    for name, spec in (("qualified", "main:static_work"), ("offset", "{off:static_work}")):
        add("child-process-lenient/" + name, "mt-o2", ["system"], [spec], same_as_plain=True,
            check=expect_stats(allocs=5, markers={spec: 1}))

    # A dangling pointer handed to a system call: the kernel touches the dead region, not the
    # program.  Recover mode promises the program goes on with the same output (and a report);
    # abort mode promises a report and SIGSEGV, not a silent EFAULT.
    add("syscall/write-escaped-recover", "mt-o2", ["write_escaped"], ["static_work"],
        options="on_dangling=recover", same_as_plain=True, report="static_work",
        check=expect_stats(begun=1, allocs=4))
    add("syscall/write-escaped-abort", "mt-o2", ["write_escaped"], ["static_work"], rc=-11,
        report="static_work")
    add("syscall/read-into-escaped-recover", "mt-o2", ["read_escaped"], ["static_work"],
        options="on_dangling=recover", same_as_plain=True, report="static_work",
        report_access="WRITE", check=expect_stats(begun=1, allocs=4))
    add("syscall/read-into-escaped-abort", "mt-o2", ["read_escaped"], ["static_work"], rc=-11,
        report="static_work", report_access="WRITE")

    # A Debian library under a Debian binary.  sqlite keeps some of what it allocates inside
    # these calls (the schema, statement caches): recover mode reports those escapes and goes
    # on, with the same output; abort mode stops at the first with the report.
    sql = sqlite_script()
    for fn_name in ("sqlite3_step", "sqlite3_exec", "sqlite3_prepare_v2"):
        spec = "libsqlite3.so:" + fn_name

        def sqlite_check(case, run, spec=spec):
            m = marker_of(run.stats, spec)
            expect(m["resolved"] and not m["refused"], "marker %s not hooked: %r" % (spec, m))
            expect(m["regions"] > 0, "marker %s: no regions" % spec)
            expect(run.stats["region_allocs"] > 0, "no region allocations")
            balanced(run.stats)
        add("debian/sqlite3-" + fn_name, "sqlite3", [":memory:"], [spec], stdin=sql,
            options="on_dangling=recover", same_as_plain=True, check=sqlite_check,
            needs=["sqlite3"], timeout=60)
    add("debian/sqlite3-escape-reported", "sqlite3", [":memory:"], ["libsqlite3.so:sqlite3_prepare_v2"],
        stdin=sql, rc=-11, report="libsqlite3.so:sqlite3_prepare_v2", needs=["sqlite3"])

    # Reach: xmllint with a sample of libxml2's exported functions marked (reach.py).
    c.append(ReachCase("reach/xmllint-sample"))
    return c


def plugin_offset_spec():
    proc = subprocess.run(["nm", "--defined-only", str(BUILD.path("libmkplugin.so"))],
                          stdout=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "plugin_work":
            return "libmkplugin.so+%s" % hex(int(parts[0], 16))
    return "libmkplugin.so+0x0"


def shared_offset_spec(delta):
    proc = subprocess.run(["nm", "--defined-only", str(BUILD.path("libmkshared.so"))],
                          stdout=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "shared_work":
            return "libmkshared.so+%s" % hex(int(parts[0], 16) + delta)
    return "libmkshared.so+0x1"


def sqlite_script():
    return """
create table t(id integer primary key, name text, value real, blob blob);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000)
insert into t select i, 'name-' || (i * 7919 % 1000), i * 1.5, zeroblob(i % 50) from n;
create index t_name on t(name);
select count(*), sum(value), min(name), max(name), sum(length(blob)) from t;
select name, count(*), round(avg(value), 3) from t group by name order by count(*) desc, name limit 15;
select group_concat(id, ',') from (select id from t where name like 'name-1%' order by id limit 40);
update t set value = value * 2 where id % 3 = 0;
delete from t where id % 5 = 0;
select count(*), round(sum(value), 2) from t;
select upper(name), printf('%08.3f', value), hex(substr(name, 1, 4)) from t where id between 100 and 120;
create table u as select name, sum(value) s from t group by name;
select u.name, u.s, t.id, t.value, length(t.blob) from u join t using(name) where t.id < 30 order by t.id;
"""


class ReachCase(Case):
    """Runs reach.py on a sample; asserts hooked/called >= 95% and nothing broken."""

    def __init__(self, name):
        super().__init__(name, "xmllint", needs=[], timeout=110)

    def execute(self, ctx, case_dir):
        cmd = [PYTHON, str(HERE / "reach.py"), "--build", str(BUILD.build_dir), "--sample", "60",
               "--jobs", "2", "--json", str(case_dir / "reach.json"), "--work", str(case_dir)]
        run = run_process(cmd, base_env(), self.timeout)
        if run.rc == 77:  # reach.py could neither find nor install xmllint
            raise Failure("reach.py could not run: %s (apt-get install -y libxml2-utils; scripts/test "
                          "installs it through scripts/lib/setup.sh)" % (
                              run.out.strip().splitlines()[-1] if run.out.strip() else "exit status 77"))
        expect((case_dir / "reach.json").exists(), "reach.py wrote no result (rc %s): %s" % (
            run.rc, (run.err or run.out)[-600:]))
        result = json.loads((case_dir / "reach.json").read_text())
        called, hooked = result["called"], result["hooked"]
        expect(called >= 10, "only %d sampled functions were called by the workload" % called)
        problems = sorted(result["problems"], key=lambda f: f["problem"].startswith("refused"))
        detail = "; ".join("%s: %s" % (f["function"], f["problem"]) for f in problems[:8])
        expect(not result["broken"], "%d broken: %s" % (len(result["broken"]), detail))
        expect(hooked * 100 >= 95 * called, "hooked %d of %d called (%.1f%% < 95%%): %s" % (
            hooked, called, 100.0 * hooked / max(called, 1), detail))
        return run


# --- main -------------------------------------------------------------------------------------

def summary_lines(cases, results, seconds):
    """The lines before the last: how the runs come about (each scenario of variant_cases() runs
    once per build of VARIANTS, the other cases once; every run counts in "N passed, N failed")
    and how many runs were skipped, and why."""
    per_variant = {}
    single = 0
    for case in cases:
        variant, _, scenario = case.name.partition("/")
        if variant in VARIANTS:
            per_variant.setdefault(scenario, set()).add(variant)
        else:
            single += 1
    builds = sorted({v for vs in per_variant.values() for v in vs}, key=VARIANTS.index)
    every = [sc for sc, vs in per_variant.items() if len(vs) == len(builds)]
    # A scenario made for one build only (o2/backtrace) is a single-build case.
    single += sum(1 for sc, vs in per_variant.items() if len(vs) == 1 and sc not in every)
    some = [vs for sc, vs in per_variant.items() if 1 < len(vs) < len(builds)]
    total = len(every) * len(builds) + sum(len(vs) for vs in some) + single
    runs = "(%d scenarios x %d builds (%s) = %d runs" % (len(every), len(builds), ", ".join(builds),
                                                        len(every) * len(builds))
    if some:
        runs += ", plus %d scenarios in some builds: %d runs" % (len(some), sum(len(vs) for vs in some))
    runs += ", plus %d single-build cases: %d runs in all)" % (single, total)
    reasons = {}
    for name, ok in results.items():
        if ok is None:
            why = SKIP_REASONS.get(name, "?")
            reasons[why] = reasons.get(why, 0) + 1
    skipped = sum(reasons.values())
    skips = "(%d skipped%s; %.1fs)" % (skipped, ": " + "; ".join(
        "%d because %s" % (n, why) for why, n in reasons.items()) if skipped else "", seconds)
    return [runs, skips]


SKIP_REASONS = {}  # case name -> why it was skipped (filled by run_case)


def main():
    global BUILD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="meson build folder (default: build)")
    parser.add_argument("-k", dest="filter", action="append", default=[],
                        help="run only cases whose name contains this (repeatable)")
    parser.add_argument("-j", dest="jobs", type=int, default=2, help="parallel cases (default 2)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("-v", action="store_true", help="print output of failing cases in full")
    args = parser.parse_args()

    build_dir = Path(args.build)
    if not build_dir.is_absolute():
        build_dir = (Path.cwd() / build_dir) if (Path.cwd() / build_dir).exists() else ROOT / build_dir
    BUILD = Build(build_dir)
    if not BUILD.lib.exists():
        print("FAIL build: %s does not exist (meson setup %s && ninja -C %s)" % (BUILD.lib, args.build, args.build))
        print("0 passed, 1 failed")
        return 1
    start = time.monotonic()

    all_cases = []
    try:
        for v in VARIANTS:
            all_cases += variant_cases(v)
        all_cases += other_cases()
    except Failure as e:
        print("FAIL setup: %s" % e)
        print("0 passed, 1 failed")
        return 1
    cases = [c for c in all_cases if not args.filter or any(f in c.name for f in args.filter)]
    if args.list:
        for c in cases:
            print(c.name)
        return 0

    tmp_root = Path(tempfile.mkdtemp(prefix="arenashim-markers-"))
    ctx = Context(BUILD, tmp_root)
    results = {}
    lock = threading.Lock()

    def run_case(index_case):
        index, case = index_case
        case_dir = tmp_root / ("%03d" % index)
        case_dir.mkdir()
        try:
            case.execute(ctx, case_dir)
            line, ok = "PASS %s" % case.name, True
        except Skip as e:
            line, ok = "SKIP %s: %s" % (case.name, e), None
            SKIP_REASONS[case.name] = str(e)
        except Failure as e:
            text = str(e)
            if not args.v and text.count("\n") > 8:
                text = "\n".join(text.splitlines()[:8])
            line, ok = "FAIL %s: %s" % (case.name, text), False
        except Exception as e:  # a bug in the runner: report it as a failure of the case
            line, ok = "FAIL %s: runner error %r" % (case.name, e), False
        with lock:
            print(line, flush=True)
            results[case.name] = ok

    # The reach sample is the longest case: start it first.
    order = sorted(enumerate(cases), key=lambda ic: not isinstance(ic[1], ReachCase))
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(run_case, order))
    shutil.rmtree(tmp_root, ignore_errors=True)

    passed = sum(1 for ok in results.values() if ok is True)
    failed = sum(1 for ok in results.values() if ok is False)
    for line in summary_lines(cases, results, time.monotonic() - start):
        print(line)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
