#!/usr/bin/python3
"""Integration tests of arenashim: real programs run under LD_PRELOAD.

Usage:
    /usr/bin/python3 tests/integration/run.py --build build [-k SUBSTRING] [-j N] [--list]

The programs of tests/programs/ are built by meson (tests/integration/meson.build: gcc/g++
-O2 -g -Iinclude -Itests/programs -pthread, lib*.c as shared libraries) into
BUILD/tests/integration/ with the rest of the project, `ninja -C BUILD`; the runner compiles
nothing.  It runs each case below with LD_PRELOAD set to BUILD/preload/libarenashim.so and
prints one line per case, `PASS name` or `FAIL name: reason` (followed by a few lines of the
captured output), and finally `N passed, N failed`.  It exits 1 when a case failed; a case
whose program is not in the build folder fails, saying to run `ninja -C BUILD`.

Cases are data: a Case names a command line and what must come of it (exit status, stdout,
the first stderr line, the stats_json figures, identity with a run without arenashim...).
To add one, append it to the list built in cases(); a check that does not fit the keyword
arguments goes in a `check` function that raises Failure.  Command lines and options may use
{bin} (the built programs, BUILD/tests/integration), {tmp} (a fresh directory for the case),
{data} (shared generated inputs), {programs} (tests/programs) and {lib} (the preload library).
A new program in tests/programs/ is declared in tests/integration/meson.build.
"""

import argparse
import concurrent.futures
import json
import os
import random
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

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "tests" / "programs"
PYTHON = "/usr/bin/python3"

# The keys the design brief promises in the stats_json object.
BRIEF_STATS_KEYS = (
    "regions_begun", "regions_ended", "region_allocs", "region_bytes", "chunks_mapped",
    "chunks_quarantined", "chunks_reused", "scans", "scan_bytes", "dangling_accesses",
    "escaped_frees", "markers",
)

REPORT_RE = (r"^==(\d+)==ERROR: arenashim: use-after-region-free on address 0x[0-9a-f]+ "
             r"\((READ|WRITE) of region #\d+, marker '(.*)'\)$")


def report_re(access, marker):
    return (r"^==\d+==ERROR: arenashim: use-after-region-free on address 0x[0-9a-f]+ "
            r"\(%s of region #\d+, marker '%s'\)$" % (access, re.escape(marker)))


Failure = harness.Failure
expect = harness.expect
describe_status = harness.describe_status
all_of = harness.all_of


# --- the built programs --------------------------------------------------------------------

class Build:
    """What the meson build made for this suite: the preload library and, in
    BUILD/tests/integration/, the programs of tests/programs/ (tests/integration/meson.build)."""

    def __init__(self, build_dir):
        self.build_dir = build_dir
        self.bin = harness.programs_dir(build_dir, "integration")
        self.lib = build_dir / "preload" / "libarenashim.so"

    def expect_built(self, programs):
        """Fails (Failure) unless every program named is in the build folder."""
        for prog in programs:
            path = self.bin / prog
            expect(path.exists(), harness.not_built(path, self.build_dir))


# --- running ---------------------------------------------------------------------------------

Run = harness.Run


def base_env():
    env = harness.clean_env()
    env["PYTHONHASHSEED"] = "0"
    return env


def run_process(argv, env, timeout, stdin=None, cwd=None):
    try:
        rc, stdout, stderr, elapsed, _ = harness.spawn(argv, env, timeout, stdin, cwd)
    except harness.ProcessTimeout as e:
        raise TimedOut(Run(argv, None, e.stdout, e.stderr, e.elapsed), timeout)
    return Run(argv, rc, stdout, stderr, elapsed)


class TimedOut(Failure):
    def __init__(self, run, timeout):
        super().__init__("timed out after %ss: %s" % (timeout, " ".join(run.argv)))
        self.run = run


class Context:
    def __init__(self, build, tmp_root, timeout_scale):
        self.build = build
        self.tmp_root = tmp_root
        self.timeout_scale = timeout_scale
        self.data = tmp_root / "data"
        self.data.mkdir()
        self._data_lock = threading.Lock()
        self._data_done = set()

    def substitutions(self, tmp):
        return {"bin": str(self.build.bin), "tmp": str(tmp), "data": str(self.data),
                "programs": str(PROGRAMS), "lib": str(self.build.lib.resolve())}

    def ensure_data(self, name, make):
        """Makes a shared input file once, whichever case asks first."""
        with self._data_lock:
            path = self.data / name
            if name not in self._data_done:
                make(path)
                self._data_done.add(name)
            return path


def fmt(value, subs):
    if isinstance(value, str):
        return value.format(**subs)
    return value


class Case:
    """One test: run argv (with the preload unless preload=False) and check the outcome.

    rc            expected exit status (-11: killed by SIGSEGV); None: not checked
    options       ARENASHIM_OPTIONS (string)
    stats         add stats_json={tmp}/stats.json and parse it into run.stats
    stdout        exact expected stdout (str)
    stdout_has    substrings that must be in stdout; stdout_lacks: must not be
    stdout_re     regular expression stdout must match (search, multiline)
    stderr_first  regular expression the first stderr line must match (fullmatch)
    stderr_has    substrings that must be in stderr; stderr_lacks: must not be
    stderr_empty  stderr must be empty
    same_as_plain run the same command without arenashim: stdout and status must be identical
    check         function(run, case_dir) for anything else; raises Failure
    setup         function(ctx, case_dir) run first (make input files)
    env           extra environment variables; stdin: bytes or text fed to the program
    needs         tools that must be on PATH; timeout: seconds (scaled by --timeout-scale)
    Programs from {bin} print NOSHIM when arenashim's API is missing: that always fails.
    """

    def __init__(self, name, argv, rc=0, options=None, env=None, preload=True, stats=False,
                 stdout=None, stdout_has=(), stdout_lacks=(), stdout_re=None, stderr_first=None,
                 stderr_has=(), stderr_lacks=(), stderr_empty=False, same_as_plain=False,
                 check=None, setup=None, timeout=60, stdin=None, needs=(), cwd=None):
        self.name = name
        self.argv = list(argv)
        self.rc = rc
        self.options = options
        self.env = env or {}
        self.preload = preload
        self.stats = stats
        self.stdout = stdout
        self.stdout_has = [stdout_has] if isinstance(stdout_has, str) else list(stdout_has)
        self.stdout_lacks = [stdout_lacks] if isinstance(stdout_lacks, str) else list(stdout_lacks)
        self.stdout_re = stdout_re
        self.stderr_first = stderr_first
        self.stderr_has = [stderr_has] if isinstance(stderr_has, str) else list(stderr_has)
        self.stderr_lacks = [stderr_lacks] if isinstance(stderr_lacks, str) else list(stderr_lacks)
        self.stderr_empty = stderr_empty
        self.same_as_plain = same_as_plain
        self.check = check
        self.setup = setup
        self.timeout = timeout
        self.stdin = stdin
        self.needs = [needs] if isinstance(needs, str) else list(needs)
        self.cwd = cwd

    def programs(self):
        """Built programs this case runs (a case fails first when one is missing)."""
        names = []
        for arg in self.argv:
            m = re.match(r"\{bin\}/([\w.-]+)", arg)
            if m:
                names.append(m.group(1))
        return names

    def execute(self, ctx, case_dir, state):
        for tool in self.needs:
            expect(shutil.which(tool), "needs %s, which is not installed" % tool)
        ctx.build.expect_built(self.programs())
        subs = ctx.substitutions(case_dir)
        if self.setup:
            self.setup(ctx, case_dir)
        argv = [fmt(a, subs) for a in self.argv]
        timeout = self.timeout * ctx.timeout_scale
        stdin = self.stdin.encode() if isinstance(self.stdin, str) else self.stdin
        cwd = fmt(self.cwd, subs) if self.cwd else str(case_dir)

        env = base_env()
        env.update({k: fmt(v, subs) for k, v in self.env.items()})
        options = fmt(self.options, subs) if self.options is not None else None
        stats_path = case_dir / "stats.json"
        if self.stats:
            extra = "stats_json=" + str(stats_path)
            options = extra if not options else options + "," + extra
        if options is not None:
            env["ARENASHIM_OPTIONS"] = options
        if self.preload:
            env["LD_PRELOAD"] = subs["lib"]

        run = state["run"] = run_process(argv, env, timeout, stdin, cwd)
        if self.stats:
            expect(stats_path.exists(), "stats_json file %s was not written" % stats_path)
            try:
                run.stats = json.loads(stats_path.read_text())
            except ValueError as e:
                raise Failure("stats_json file does not parse: %s" % e)
        self.verify(run, case_dir)

        if self.same_as_plain:
            plain_env = base_env()
            plain_env.update({k: fmt(v, subs) for k, v in self.env.items()})
            plain = run_process(argv, plain_env, timeout, stdin, cwd)
            state["plain"] = plain
            expect(plain.rc == run.rc,
                   "exit status %s under arenashim, %s without" % (run.rc, plain.rc))
            if plain.stdout != run.stdout:
                a, b = plain.out.splitlines(), run.out.splitlines()
                line = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                raise Failure("stdout differs from a run without arenashim (%d vs %d bytes), first at "
                              "line %d: %r vs %r" % (len(run.stdout), len(plain.stdout), line + 1,
                                                     b[line] if line < len(b) else "<eof>",
                                                     a[line] if line < len(a) else "<eof>"))
        return run

    def verify(self, run, case_dir):
        out, err = run.out, run.err
        if self.preload and self.programs():
            # Our programs print NOSHIM when arenashim's API is missing: the preload failed.
            expect("NOSHIM" not in out, "the program did not see arenashim (NOSHIM)")
        if self.rc is not None:
            expect(run.rc == self.rc, "exit status %s, expected %s%s" % (
                describe_status(run.rc), describe_status(self.rc), "" if run.rc != 2 or "arenashim: error" not in err else
                " (%s)" % run.first_err_line()))
        if self.stdout is not None:
            expect(out == self.stdout, "stdout is %r, expected %r" % (out[:300], self.stdout[:300]))
        for s in self.stdout_has:
            expect(s in out, "stdout lacks %r" % s)
        for s in self.stdout_lacks:
            expect(s not in out, "stdout has %r" % s)
        if self.stdout_re:
            expect(re.search(self.stdout_re, out, re.M), "stdout does not match /%s/" % self.stdout_re)
        if self.stderr_first:
            expect(re.fullmatch(self.stderr_first, run.first_err_line()),
                   "first stderr line %r does not match /%s/" % (run.first_err_line(), self.stderr_first))
        for s in self.stderr_has:
            expect(s in err, "stderr lacks %r" % s)
        for s in self.stderr_lacks:
            expect(s not in err, "stderr has %r" % s)
        if self.stderr_empty:
            expect(err == "", "stderr is not empty")
        if self.check:
            self.check(run, case_dir)


# --- check helpers ------------------------------------------------------------------------------

def stats_equal(**expected):
    """A check: stats_json keys with exact values."""
    def check(run, case_dir):
        for key, value in expected.items():
            expect(key in run.stats, "stats_json lacks %r" % key)
            expect(run.stats[key] == value, "stats %s = %r, expected %r" % (key, run.stats[key], value))
    return check


def stats_at_least(**expected):
    def check(run, case_dir):
        for key, value in expected.items():
            expect(key in run.stats, "stats_json lacks %r" % key)
            expect(run.stats[key] >= value, "stats %s = %r, expected >= %r" % (key, run.stats[key], value))
    return check


def check_brief_keys(run, case_dir):
    missing = [k for k in BRIEF_STATS_KEYS if k not in run.stats]
    expect(not missing, "stats_json lacks keys %s" % ", ".join(missing))
    for key in BRIEF_STATS_KEYS:
        if key != "markers":
            expect(isinstance(run.stats[key], int) and run.stats[key] >= 0,
                   "stats %s = %r is not a count" % (key, run.stats[key]))
    expect(isinstance(run.stats["markers"], list), "stats markers is not a list")


def counted_check(regions, per_region, arena_allocs):
    """stats for tests/programs/counted.c REGIONS PER_REGION ARENA_ALLOCS."""
    total = regions + (1 if arena_allocs else 0)
    allocs = regions * per_region + arena_allocs

    def check(run, case_dir):
        check_brief_keys(run, case_dir)
        s = run.stats
        expect(s["regions_begun"] == total, "regions_begun %r, expected %d" % (s["regions_begun"], total))
        expect(s["regions_ended"] == total, "regions_ended %r, expected %d" % (s["regions_ended"], total))
        expect(s["region_allocs"] >= allocs, "region_allocs %r, expected >= %d" % (s["region_allocs"], allocs))
        expect(s["region_allocs"] <= allocs + 16,
               "region_allocs %r, expected about %d" % (s["region_allocs"], allocs))
        expect(s["region_bytes"] >= 32 * allocs, "region_bytes %r, expected >= %d" % (s["region_bytes"], 32 * allocs))
        expect(s["dangling_accesses"] == 0, "dangling_accesses %r" % s["dangling_accesses"])
        expect(s["escaped_frees"] == 0, "escaped_frees %r" % s["escaped_frees"])
        if allocs:
            expect(s["chunks_mapped"] >= 1, "chunks_mapped %r with region allocations" % s["chunks_mapped"])
        expect(s["markers"] == [], "markers %r without ARENASHIM_REGIONS" % s["markers"])
    return check


def log_file_check(pattern_access, marker):
    """The dangling report went to {tmp}/report.log, not to stderr."""
    def check(run, case_dir):
        log = case_dir / "report.log"
        expect(log.exists(), "log_path file was not written")
        lines = log.read_text(errors="replace").splitlines()
        expect(lines and re.fullmatch(report_re(pattern_access, marker), lines[0]),
               "first log line %r is not the report" % (lines[0] if lines else ""))
        expect("use-after-region-free" not in run.err, "the report went to stderr too")
    return check


def report_structure_check(program, access):
    """The report names the faulting instruction: frame #0 of the access backtrace lies in the
    program and symbolises (addr2line) to the source line of the dangling access; the region's
    begin and end sites are frames in the program too."""
    source_text = {"READ": "p[0]", "WRITE": "p[1] = "}[access]

    def check(run, case_dir):
        lines = run.err.splitlines()
        expect("  access backtrace:" in lines, "the report has no access backtrace")
        first = lines[lines.index("  access backtrace:") + 1].strip()
        m = re.fullmatch(r"#0 0x[0-9a-f]+ %s\+0x([0-9a-f]+)( \(.*\))?" % re.escape(program), first)
        expect(m, "frame #0 of the access backtrace is %r, not in %s" % (first, program))
        for section in ("  region began at:", "  region ended at:"):
            expect(section in lines, "the report lacks %r" % section.strip())
            frame = lines[lines.index(section) + 1].strip()
            expect(re.fullmatch(r"#0 0x[0-9a-f]+ %s\+0x[0-9a-f]+( \(.*\))?" % re.escape(program), frame),
                   "%s frame %r is not in %s" % (section.strip(), frame, program))
        expect(re.search(r"^==\d+==ABORTING", run.err, re.M), "the report has no ABORTING line")
        # Without addr2line this check cannot be made: a failure, not a pass (scripts/lib/setup.sh
        # installs binutils).
        expect(shutil.which("addr2line"), "addr2line is not installed (apt-get install -y binutils): "
               "cannot check the source line frame #0 symbolises to")
        where = subprocess.run(["addr2line", "-e", str(Path(run.argv[0])), "0x" + m.group(1)],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
        fm = re.match(r"(.*):(\d+)", where)
        expect(fm and Path(fm.group(1)).exists(), "addr2line could not place frame #0 (%r)" % where)
        line = Path(fm.group(1)).read_text().splitlines()[int(fm.group(2)) - 1]
        expect(source_text in line, "frame #0 symbolises to %s: %r, not the %s access" % (where, line.strip(), access))
    return check


# --- strace: no system call for empty regions --------------------------------------------------

MEMORY_CALLS = "mmap,mprotect,munmap,madvise,mremap"


def strace_count(ctx, case_dir, state, argv, options=None, tag="x"):
    out = case_dir / ("strace.%s" % tag)
    cmd = ["strace", "-f", "-qq", "-o", str(out), "-e", "trace=" + MEMORY_CALLS,
           "-E", "LD_PRELOAD=" + str(ctx.build.lib.resolve())]
    if options:
        cmd += ["-E", "ARENASHIM_OPTIONS=" + options]
    run = state["run"] = run_process(cmd + argv, base_env(), 60 * ctx.timeout_scale)
    expect(run.rc == 0, "%s exited %s: %s" % (" ".join(argv), describe_status(run.rc), run.err[-300:]))
    expect("OK empty_regions" in run.out and "NOSHIM" not in run.out,
           "empty_regions did not run under arenashim: %r" % run.out[-200:])
    counts = {}
    for line in out.read_text().splitlines():
        m = re.match(r"(?:\d+\s+)?(\w+)\(", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def syscalls_do_not_scale(bytes_per_region, options=None, expect_scaling=False):
    def run_case(ctx, case_dir, state):
        prog = str(ctx.build.bin / "empty_regions")
        small = strace_count(ctx, case_dir, state, [prog, "10", str(bytes_per_region)], options, "10")
        large = strace_count(ctx, case_dir, state, [prog, "2000", str(bytes_per_region)], options, "2000")
        total_small, total_large = sum(small.values()), sum(large.values())
        if expect_scaling:
            # The counterpart: regions that allocate do fault their memory at the end, so the
            # count grows with the number of regions (this keeps the strace check honest).
            expect(total_large >= total_small + 1500,
                   "memory system calls: %d for 10 regions, %d for 2000 (expected growth)" %
                   (total_small, total_large))
        else:
            expect(total_large <= total_small + 8,
                   "memory system calls grow with the number of regions: %s for 10, %s for 2000" %
                   (small, large))
    return run_case


class FuncCase(Case):
    """A case whose whole run is a function(ctx, case_dir) that raises Failure."""

    def __init__(self, name, func, needs=(), programs=()):
        super().__init__(name, [], needs=needs)
        self.func = func
        self._programs = list(programs)

    def programs(self):
        return self._programs

    def execute(self, ctx, case_dir, state):
        for tool in self.needs:
            expect(shutil.which(tool), "needs %s, which is not installed" % tool)
        ctx.build.expect_built(self.programs())
        self.func(ctx, case_dir, state)


# --- secure execution and the files arenashim writes (issue 9) -------------------------------

TRUSTED_LIBRARY_DIR = Path("/usr/lib/x86_64-linux-gnu")
NOBODY = 65534


def setuid_options_check(setuid):
    """A setuid-root copy of counted, run by nobody with the preload from a trusted directory
    (where glibc preloads a set-user-ID library by bare name in a secure-execution process, as
    /etc/ld.so.preload would): log_path, stats_json and on_dangling from the environment must
    be ignored, with one warning naming them, or any user could make root create files where
    they choose.  With setuid=False the same run without the set-user-ID bit writes both
    files: the check tells the two apart."""
    def run_case(ctx, case_dir, state):
        expect(os.geteuid() == 0, "needs root, to make a set-user-ID program")
        expect(shutil.which("setpriv"), "needs setpriv (util-linux)")
        home = Path(tempfile.mkdtemp(prefix="arenashim-secure.", dir="/tmp"))
        name = "libarenashim-test-%s.so" % home.name.split(".")[-1]
        library = TRUSTED_LIBRARY_DIR / name
        try:
            shutil.copy(ctx.build.lib.resolve(), library)
            os.chmod(library, 0o4755)
            os.chmod(home, 0o755)
            program = home / "counted"
            shutil.copy(ctx.build.bin / "counted", program)
            os.chown(program, 0, 0)
            os.chmod(program, 0o4755 if setuid else 0o755)
            user_dir = home / "user"
            user_dir.mkdir()
            os.chown(user_dir, NOBODY, NOBODY)
            # verbose=1: the log file is made by the first message (log.c), and verbose has one.
            options = "log_path=%s/log,stats_json=%s/stats.json,on_dangling=recover,verbose=1" % (user_dir, user_dir)
            # env sets the variables for the program alone: setpriv and env run without them.
            argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                    "env", "LD_PRELOAD=" + (name if setuid else str(library)), "ARENASHIM_OPTIONS=" + options,
                    str(program), "3", "4", "0"]
            env = base_env()
            run = state["run"] = run_process(argv, env, 30 * ctx.timeout_scale, cwd=str(home))
            expect(run.rc == 0, "exit status %s" % describe_status(run.rc))
            expect("OK counted" in run.out and "NOSHIM" not in run.out,
                   "counted did not run with the preload: %r" % run.out[-200:])
            written = sorted(p.name for p in user_dir.iterdir())
            if setuid:
                expect(written == [], "the set-user-ID process wrote %s in the user's directory" % written)
                expect("secure-execution process" in run.err and
                       "log_path, stats_json, on_dangling ignored" in run.err,
                       "no warning naming the ignored options: %r" % run.err[-300:])
            else:
                expect("stats.json" in written and "log" in written,
                       "the plain run did not write its files (%s): the check proves nothing" % written)
        finally:
            library.unlink(missing_ok=True)
            shutil.rmtree(home, ignore_errors=True)
    return run_case


def planted_symlink_setup(target_name):
    def setup(ctx, case_dir):
        (case_dir / "victim").write_text("precious\n")
        os.symlink(case_dir / "victim", case_dir / target_name)
    return setup


def log_symlink_refused(run, case_dir):
    expect((case_dir / "victim").read_text() == "precious\n", "the file behind the link was written")
    expect("symbolic link" in run.first_err_line(), "the error does not say why: %r" % run.first_err_line())


def stats_symlink_replaced(run, case_dir):
    expect((case_dir / "victim").read_text() == "precious\n", "the file behind the link was written")
    target = case_dir / "stats.json"
    expect(not target.is_symlink(), "stats.json is still a link")
    json.loads(target.read_text())
    mode = target.stat().st_mode & 0o777
    expect(mode & 0o133 == 0, "stats.json has mode %o (more than 0644)" % mode)
    leftovers = [p.name for p in case_dir.iterdir() if p.name.startswith("stats.json.") and not p.is_symlink()]
    expect(leftovers == [], "temporary files left: %s" % leftovers)


def log_mode_check(run, case_dir):
    mode = (case_dir / "new.log").stat().st_mode & 0o777
    expect(mode & 0o133 == 0, "the log was created with mode %o (more than 0644)" % mode)


# --- generated inputs ----------------------------------------------------------------------------

def make_sort_input(path):
    rng = random.Random(20240611)
    words = ["alpha", "Beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    with open(path, "w") as f:
        for i in range(200000):
            kind = i % 4
            if kind == 0:
                f.write("%d\n" % rng.randint(-10**9, 10**9))
            elif kind == 1:
                f.write("%s %d %s\n" % (rng.choice(words), rng.randint(0, 999), rng.choice(words)))
            elif kind == 2:
                f.write("%.6f\t%s\n" % (rng.uniform(-1000, 1000), "".join(rng.choice("xyzXYZ09 ") for _ in range(rng.randint(0, 30)))))
            else:
                f.write("%s\n" % "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 40))))


def sort_setup(ctx, case_dir):
    ctx.ensure_data("sort_input.txt", make_sort_input)


def sqlite_setup(ctx, case_dir):
    expect(shutil.which("sqlite3"), "sqlite3 is not installed (apt-get install -y sqlite3)")


# --- the cases -------------------------------------------------------------------------------------

BAD_OPTIONS = [
    # (value of ARENASHIM_OPTIONS, the key the message must name)
    ("chunk_size=3M", "chunk_size"),
    ("chunk_size=abc", "chunk_size"),
    ("chunk_size=1K", "chunk_size"),
    ("chunk_size=2G", "chunk_size"),
    ("chunk_size=", "chunk_size"),
    ("chunk_size=1X", "chunk_size"),
    ("reserve=1K", "reserve"),
    ("reserve=lots", "reserve"),
    ("chunk_size=64M,reserve=128M", "reserve"),
    ("on_dangling=maybe", "on_dangling"),
    ("on_dangling=", "on_dangling"),
    ("partial_reuse=2", "partial_reuse"),
    ("partial_reuse=yes", "partial_reuse"),
    ("kernel_features=old", "kernel_features"),
    ("huge_pages=yes", "huge_pages"),
    ("kernel_features=", "kernel_features"),
    ("quarantine_max=0", "quarantine_max"),
    ("quarantine_max=big", "quarantine_max"),
    ("scan=maybe", "scan"),
    ("scan_mode=concurrent", "scan_mode"),
    ("scan_mode=", "scan_mode"),
    ("scan_threads=17", "scan_threads"),
    ("scan_threads=two", "scan_threads"),
    ("exclude=", "exclude"),
    ("exclude=libc.so.6::libm.so.6", "exclude"),
    ("stats=yes", "stats"),
    ("stats=2", "stats"),
    ("stats_json=", "stats_json"),
    ("stats_json=/nonexistent/dir/x.json", "stats_json"),
    ("log_path=", "log_path"),
    ("log_path=/nonexistent/dir/x.log", "log_path"),
    ("trace_allocs=-1", "trace_allocs"),
    ("trace_allocs=often", "trace_allocs"),
    ("verbose=3", "verbose"),
    ("verbose=-1", "verbose"),
    ("bogus_key=1", "bogus_key"),
    ("chunk_size", "chunk_size"),            # a pair without '='
    ("stats=1,", "stats"),                   # a trailing comma
    ("stats=1,,verbose=1", "ARENASHIM_OPTIONS"),  # an empty entry
    ("=1", "ARENASHIM_OPTIONS"),             # no key
]

GOOD_OPTIONS = [
    "chunk_size=4M,reserve=64G,partial_reuse=1,stats=1",
    "chunk_size=64K",
    "chunk_size=1MiB",
    "chunk_size=2MB,reserve=1T",
    "chunk_size=1048576",
    "reserve=64g",
    "on_dangling=recover",
    "on_dangling=abort,scan=off",
    "scan=on,quarantine_max=16M",
    "partial_reuse=0,partial_reuse=1",
    "exclude=libc.so.6:ld-linux-x86-64.so.2:libstdc++.so.6",
    "exclude=libnothing",
    "stats=0",
    "trace_allocs=1",
    "trace_allocs=100,verbose=2",
    "verbose=1",
    "log_path={tmp}/log.%p.txt",
    "",
]


# --- what each good option does ---------------------------------------------------------------
#
# A good option is not only accepted: each of GOOD_OPTIONS is run on programs where what the
# README's Options table promises for its keys can be seen (the statistics, stderr, a report,
# the files written), and that is checked.  GOOD_OPTION_EFFECTS maps each value to its runs:
# Case keyword arguments (argv, rc, stats, check, ...), each run with ARENASHIM_OPTIONS=value.

MiB, GiB = 1 << 20, 1 << 30
COUNTED = ["{bin}/counted", "5", "10", "3"]  # 5 regions of 10 allocations and an arena of 3
DANGLING_READ = ["{bin}/dangling", "region", "read"]  # reads a region object after its region ended
NOT_SAMPLED_LINE = "  allocation site: not sampled (trace_allocs=N traces one in N)"


def stats_config(**expected):
    """The configuration the statistics report (chunk_size, reserve, partial_reuse)."""
    def check(run, case_dir):
        for key, value in expected.items():
            expect(key in run.stats, "stats_json lacks %r" % key)
            expect(run.stats[key] == value, "stats %s = %r: the option did not take effect (expected %r)"
                   % (key, run.stats[key], value))
    return check


def default_reserve():
    """README: 256G, or a quarter of what `ulimit -v` leaves."""
    import resource
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return 256 * GiB if limit == resource.RLIM_INFINITY else None


def expect_defaults(run, case_dir):
    expect(run.stats.get("chunk_size") == 2 * MiB, "chunk_size %r, the default is 2M" % run.stats.get("chunk_size"))
    expect(run.stats.get("partial_reuse") is False, "partial_reuse %r, the default is 0" % run.stats.get("partial_reuse"))
    if default_reserve() is not None:
        expect(run.stats.get("reserve") == default_reserve(), "reserve %r, the default is 256G" % run.stats.get("reserve"))


def counted_run(check=None, **kw):
    return dict(argv=COUNTED, stats=True, stdout_has="OK counted",
                check=all_of(counted_check(5, 10, 3), *([check] if check else [])), **kw)


def no_scan(run, case_dir):
    """scan=off: tests/programs/api.c calls arenashim_collect() three times (3 scans without it)."""
    expect(run.stats["scans"] == 0 and run.stats["chunks_released"] == 0,
           "scans %r, chunks_released %r with scan=off" % (run.stats["scans"], run.stats["chunks_released"]))


def automatic_scans(run, case_dir):
    """quarantine_max: the program never calls arenashim_collect(); scans ran, chunks came back,
    and the quarantine stayed near the limit (a thread waits past twice it)."""
    expect(run.stats["scans"] > 0, "no scan although %d bytes were quarantined" % (
        run.stats["chunks_quarantined"] * run.stats["chunk_size"]))
    expect(run.stats["chunks_reused"] > 0, "no chunk reused after the automatic scans")
    expect(run.stats["quarantine_bytes"] <= 64 * MiB, "quarantine_bytes %r at exit: the scans did not keep "
           "it near quarantine_max=16M" % run.stats["quarantine_bytes"])


def log_file_holds_report(run, case_dir):
    """log_path=DIR/log.%p.txt: one file, named with the process id, holding the whole report."""
    files = [p for p in case_dir.iterdir() if re.fullmatch(r"log\.\d+\.txt", p.name)]
    expect(len(files) == 1, "expected one log.PID.txt in the case folder, found %s" % sorted(
        p.name for p in case_dir.iterdir()))
    pid = files[0].name.split(".")[1]
    lines = files[0].read_text(errors="replace").splitlines()
    expect(lines and re.fullmatch(report_re("READ", "(api)")[1:-1], lines[0]),
           "%s does not start with the report: %r" % (files[0].name, lines[:1]))
    expect(lines[0].startswith("==%s==" % pid), "the report's pid %r is not the file's %s" % (lines[0][:12], pid))
    expect(lines[-1].startswith("==%s==ABORTING" % pid), "%s does not end with ==%s==ABORTING: %r"
           % (files[0].name, pid, lines[-1:]))


GOOD_OPTION_EFFECTS = {
    "chunk_size=4M,reserve=64G,partial_reuse=1,stats=1": [
        counted_run(stats_config(chunk_size=4 * MiB, reserve=64 * GiB, partial_reuse=True),
                    stderr_has=["arenashim: statistics", "(chunk 4096 KiB)", "6 begun, 6 ended"])],
    "chunk_size=64K": [counted_run(stats_config(chunk_size=64 << 10))],
    "chunk_size=1MiB": [counted_run(stats_config(chunk_size=MiB))],
    "chunk_size=2MB,reserve=1T": [counted_run(stats_config(chunk_size=2 * MiB, reserve=1 << 40))],
    "chunk_size=1048576": [counted_run(stats_config(chunk_size=MiB))],
    "reserve=64g": [counted_run(stats_config(reserve=64 * GiB))],
    # Reported, and the program goes on with the output it has without arenashim.
    "on_dangling=recover": [
        dict(argv=DANGLING_READ, stats=True, same_as_plain=True, stderr_first=report_re("READ", "(api)"),
             stderr_has="==CONTINUING (on_dangling=recover", check=stats_equal(dangling_accesses=1))],
    # Reported, then SIGSEGV; and arenashim_collect() scans nothing, releases nothing.
    "on_dangling=abort,scan=off": [
        dict(argv=DANGLING_READ, rc=-11, stderr_first=report_re("READ", "(api)"),
             stderr_has="==ABORTING (on_dangling=abort)"),
        dict(argv=["{bin}/api"], stats=True, stdout_has="OK api", check=no_scan)],
    # Scans start by themselves once 16M are quarantined: 40 regions of 100000 x 32 bytes
    # quarantine about 190M and never call arenashim_collect() (none at the default 1G).
    "scan=on,quarantine_max=16M": [
        dict(argv=["{bin}/counted", "40", "100000", "0"], stats=True, stdout_has="OK counted",
             check=automatic_scans)],
    "partial_reuse=0,partial_reuse=1": [counted_run(stats_config(partial_reuse=True))],
    # The list replaces the default: libc stays excluded, libexclprobe.so is not, and
    # libstdc++'s operator new now bypasses regions (cxx_alloc's 'new is a region object' fails).
    "exclude=libc.so.6:ld-linux-x86-64.so.2:libstdc++.so.6": [
        dict(argv=["{bin}/exclude_probe"], stdout_has="own=1 asprintf=0 getline=0 lib=1 allocs=2"),
        dict(argv=["{bin}/cxx_alloc", "inside"], rc=1, stdout_has="one in_region=0",
             stdout_lacks="OK cxx_alloc-inside")],
    # The default list is replaced: libc's own allocations (asprintf, getline) are region objects.
    "exclude=libnothing": [
        dict(argv=["{bin}/exclude_probe"], stdout_re=r"^own=1 asprintf=1 getline=1 lib=1 allocs=[4-9]")],
    "stats=0": [counted_run(stderr_lacks="arenashim: statistics", stderr_empty=True)],
    # The report names the object and its allocation site.
    "trace_allocs=1": [
        dict(argv=DANGLING_READ, rc=-11, stderr_first=report_re("READ", "(api)"),
             stdout_has="region over", stderr_has="  it is 0 bytes into an object of 64 bytes at 0x")],
    # One in 100 traced: this object was not; verbose=2 says where each marker was hooked.
    "trace_allocs=100,verbose=2": [
        dict(argv=DANGLING_READ, rc=-11, env={"ARENASHIM_REGIONS": "main"},
             stderr_has=[NOT_SAMPLED_LINE, "arenashim: marker 'main' hooked at 0x", "arenashim: revocation: "])],
    # verbose=1: the revocation mode and kernel paths; not where markers were hooked (that is 2).
    # (main is marked, and hooked: its call is the 7th region.)
    "verbose=1": [
        dict(argv=COUNTED, env={"ARENASHIM_REGIONS": "main"}, stats=True, stdout_has="OK counted",
             stderr_first=r"arenashim: revocation: strict .*", stderr_lacks="hooked at",
             check=stats_equal(regions_begun=7, regions_ended=7))],
    # The report goes to log.PID.txt in the case folder, nothing to stderr.
    "log_path={tmp}/log.%p.txt": [
        dict(argv=DANGLING_READ, rc=-11, stderr_empty=True, check=log_file_holds_report)],
    # No options: the defaults, and nothing on stderr.
    "": [counted_run(expect_defaults, stderr_empty=True)],
}


def good_option_case(value):
    """options/good VALUE: each run of GOOD_OPTION_EFFECTS[value] with ARENASHIM_OPTIONS=value."""
    runs = [Case("options/good %s run %d" % (value, i), options=value, **kw)
            for i, kw in enumerate(GOOD_OPTION_EFFECTS[value])]

    def func(ctx, case_dir, state):
        for i, run_case in enumerate(runs):
            run_dir = case_dir / ("run%d" % i)
            run_dir.mkdir()
            try:
                run_case.execute(ctx, run_dir, state)
            except Failure as e:
                raise Failure("%s: %s" % (" ".join(a.replace("{bin}/", "") for a in run_case.argv), e))
    programs = sorted({name for r in runs for name in r.programs()})
    return FuncCase("options/good " + (value or "(empty)"), func, programs=programs)


def cases():
    B = "{bin}/"
    c = []

    # 1. The malloc family's edge cases, outside and inside a region.
    c.append(Case("malloc/edge-outside", [B + "malloc_edge", "outside"], stdout_has="OK malloc_edge-outside"))
    c.append(Case("malloc/edge-inside", [B + "malloc_edge", "inside"], stdout_has="OK malloc_edge-inside"))
    c.append(Case("malloc/edge-inside-chunk64K", [B + "malloc_edge", "inside"], options="chunk_size=64K",
                  stdout_has="OK malloc_edge-inside"))
    c.append(Case("malloc/edge-inside-chunk16M", [B + "malloc_edge", "inside"], options="chunk_size=16M",
                  stdout_has="OK malloc_edge-inside"))
    c.append(Case("malloc/edge-inside-partial_reuse", [B + "malloc_edge", "inside"], options="partial_reuse=1",
                  stdout_has="OK malloc_edge-inside"))
    c.append(Case("malloc/edge-inside-recover", [B + "malloc_edge", "inside"], options="on_dangling=recover",
                  stdout_has="OK malloc_edge-inside"))
    c.append(Case("malloc/edge-inside-stats", [B + "malloc_edge", "inside"], stats=True,
                  stdout_has="OK malloc_edge-inside",
                  check=all_of(stats_equal(regions_begun=3, regions_ended=3, dangling_accesses=0),
                               stats_at_least(region_allocs=200, chunks_mapped=2))))
    c.append(Case("malloc/reuse-calloc-zero", [B + "reuse", "30"], stdout_has="OK reuse"))
    c.append(Case("malloc/reuse-calloc-zero-recover", [B + "reuse", "30"], options="on_dangling=recover",
                  stdout_has="OK reuse"))
    for opts in (None, "partial_reuse=1", "chunk_size=64K"):
        c.append(Case("malloc/next-region-calloc-zero" + ("-" + opts if opts else ""),
                      [B + "reuse", "300", "nocollect"], options=opts, stdout_has="OK reuse"))
    c.append(Case("malloc/reuse-calloc-zero-partial_reuse", [B + "reuse", "30"], options="partial_reuse=1",
                  stdout_has="OK reuse"))

    # 2. C++.
    for mode in ("outside", "inside"):
        c.append(Case("cxx/alloc-" + mode, [B + "cxx_alloc", mode], stdout_has="OK cxx_alloc-" + mode,
                      stdout_re=r"^checksum 8709d63536609da4$"))
    c.append(Case("cxx/alloc-inside-stats", [B + "cxx_alloc", "inside"], stats=True,
                  stdout_has="OK cxx_alloc-inside",
                  check=all_of(stats_equal(regions_begun=1, regions_ended=1),
                               stats_at_least(region_allocs=2000))))

    # 3. Threads.
    c.append(Case("threads/regions-8x200", [B + "threads", "regions", "8", "200"], stats=True,
                  stdout_has="OK threads-regions",
                  check=all_of(stats_equal(regions_begun=8 * 220, regions_ended=8 * 220),
                               stats_at_least(region_allocs=8 * 200 * 8))))
    c.append(Case("threads/regions-partial_reuse", [B + "threads", "regions", "8", "100"],
                  options="partial_reuse=1", stdout_has="OK threads-regions"))
    c.append(Case("threads/regions-chunk64K", [B + "threads", "regions", "4", "100"],
                  options="chunk_size=64K", stdout_has="OK threads-regions"))
    c.append(Case("threads/crossfree", [B + "threads", "crossfree", "20"], stats=True,
                  stdout_has="OK threads-crossfree",
                  check=all_of(stats_at_least(region_allocs=20 * 2000),
                               stats_equal(escaped_frees=0, dangling_accesses=0))))
    c.append(Case("threads/latefree-escaped", [B + "threads", "latefree"], stats=True,
                  stdout_has="OK threads-latefree",
                  check=all_of(stats_equal(dangling_accesses=0), stats_at_least(escaped_frees=500))))
    c.append(Case("threads/arenas", [B + "threads", "arenas"], stats=True, stdout_has="OK threads-arenas",
                  check=all_of(stats_equal(regions_begun=800, regions_ended=800),
                               stats_at_least(region_allocs=80000))))
    c.append(Case("threads/exit-with-open-regions", [B + "threads", "exit-open"], stats=True,
                  stdout_has="OK threads-exit-open",
                  check=stats_equal(regions_begun=120, regions_ended=120)))

    # 4. fork.
    for mode in ("outside", "inside", "threads"):
        c.append(Case("fork/" + mode, [B + "fork", mode], stdout_has="OK fork-" + mode, timeout=90))

    # 5. Dangling accesses.
    for kind, marker in (("region", "(api)"), ("arena", "(arena)"), ("large", "(api)"),
                         ("nested", "(api)"), ("handler", "(api)"), ("thread", "(api)")):
        for access in ("READ", "WRITE"):
            c.append(Case("dangling/%s-%s" % (kind, access.lower()),
                          [B + "dangling", kind, access.lower()], rc=-11,
                          stderr_first=report_re(access, marker), stdout_lacks=["done", "program handler ran"]))
        c.append(Case("dangling/%s-none" % kind, [B + "dangling", kind, "none"], stdout_has="done",
                      stderr_lacks="use-after-region-free", stats=True,
                      check=stats_equal(dangling_accesses=0, regions_begun=2 if kind == "nested" else 1)))
    for kind, access, marker in (("region", "READ", "(api)"), ("region", "WRITE", "(api)"),
                                 ("arena", "WRITE", "(arena)")):
        c.append(Case("dangling/report-frames-%s-%s" % (kind, access.lower()),
                      [B + "dangling", kind, access.lower()], rc=-11, stderr_first=report_re(access, marker),
                      check=report_structure_check("dangling", access)))
    c.append(Case("dangling/recover-two-pages", [B + "dangling", "region", "two"], options="on_dangling=recover",
                  stats=True, same_as_plain=True, stdout_has="then read 'S'",
                  stderr_first=report_re("READ", "(api)"),
                  check=all_of(stats_equal(dangling_accesses=2),
                               lambda run, d: expect(len(re.findall(REPORT_RE, run.err, re.M)) == 2,
                                                     "expected two reports (pages are pinned one by one)"))))
    c.append(Case("dangling/two-pages-abort", [B + "dangling", "region", "two"], rc=-11,
                  stderr_first=report_re("READ", "(api)"), stdout_lacks="then read",
                  check=lambda run, d: expect(len(re.findall(REPORT_RE, run.err, re.M)) == 1, "more than one report")))
    c.append(Case("dangling/realloc-of-dead-object", [B + "dangling", "region", "realloc"], rc=-11,
                  stderr_first=report_re("READ", "(api)")))
    c.append(Case("dangling/free-after-end", [B + "dangling", "region", "free"], stats=True,
                  stdout_has="freed", stderr_lacks="use-after-region-free",
                  check=stats_equal(escaped_frees=1, dangling_accesses=0)))
    c.append(Case("dangling/arena-free-after-end", [B + "dangling", "arena", "free"], stats=True,
                  stdout_has="freed", stderr_lacks="use-after-region-free",
                  check=stats_equal(escaped_frees=1, dangling_accesses=0)))
    c.append(Case("dangling/report-stats", [B + "dangling", "region", "read"], rc=-11, stats=True,
                  stderr_first=report_re("READ", "(api)"),
                  check=all_of(check_brief_keys, stats_equal(dangling_accesses=1, regions_begun=1))))
    c.append(Case("dangling/log_path", [B + "dangling", "arena", "write"], rc=-11,
                  options="log_path={tmp}/report.log", check=log_file_check("WRITE", "(arena)")))
    for kind, access in (("region", "read"), ("region", "write"), ("arena", "read"), ("large", "write"),
                         ("nested", "read"), ("region", "realloc")):
        c.append(Case("dangling/recover-%s-%s" % (kind, access), [B + "dangling", kind, access],
                      options="on_dangling=recover", stats=True, same_as_plain=True, stdout_has="done",
                      stderr_first=report_re("WRITE" if access == "write" else "READ",
                                             "(arena)" if kind == "arena" else "(api)"),
                      check=stats_at_least(dangling_accesses=1)))

    # 6. SIGSEGV chaining.
    for mode, rc, text in (("sigaction", 42, "handler ran with the fault address"),
                           ("wild", 42, "handler ran with the fault address"),
                           ("region", 42, "handler ran with the fault address"),
                           ("signal", 43, "plain handler ran"),
                           ("query", 0, "query OK"),
                           ("resethand", -11, "returning handler ran"),
                           ("longjmp", 0, "longjmp OK"),
                           ("raise", 44, "raise handler ran"),
                           ("overflow", 45, "overflow handler ran"),
                           ("thread", 42, "handler ran with the fault address"),
                           ("default", -11, None)):
        c.append(Case("segv/" + mode, [B + "segv_chain", mode], rc=rc, stdout_has=[text] if text else [],
                      stderr_first=re.escape("(shim loaded)"), stderr_lacks="arenashim", same_as_plain=True))
    # (The lookup of arenashim_stats_json fails unless the shim is really loaded.)
    c.append(Case("segv/python-faulthandler",
                  [PYTHON, "-X", "faulthandler", "-c",
                   "import ctypes; ctypes.CDLL(None).arenashim_stats_json; ctypes.string_at(0)"], rc=-11,
                  stderr_has="Fatal Python error: Segmentation fault", stderr_lacks="use-after-region-free"))

    # 7. Transparency: identical output with no region open.
    # The stats_json file proves that arenashim was loaded in the process; no region opened.
    no_regions = stats_equal(regions_begun=0, region_allocs=0, dangling_accesses=0)
    c.append(Case("transparent/python", [PYTHON, "{programs}/workload.py"], same_as_plain=True, timeout=90,
                  stats=True, check=no_regions))
    c.append(Case("transparent/sqlite3", ["sqlite3", ":memory:"], stdin=(PROGRAMS / "workload.sql").read_text(),
                  setup=sqlite_setup, same_as_plain=True, stdout_re=r"^0\|", stats=True, check=no_regions))
    for name, args in (("sort", []), ("sort-S1M", ["-S", "1M", "-T", "{tmp}"]), ("sort-n", ["-n"]),
                       ("sort-k2-stable", ["-s", "-k2,2"])):
        c.append(Case("transparent/" + name, ["sort"] + args + ["{data}/sort_input.txt"], setup=sort_setup,
                      same_as_plain=True, env={"TMPDIR": "{tmp}"}, stats=True, check=no_regions))
    c.append(Case("transparent/cxx-workload", [B + "cxx_workload"], same_as_plain=True,
                  stdout_re=r"^unit 299: ", stats=True, check=no_regions))
    c.append(Case("transparent/cxx-workload-regions", [B + "cxx_workload", "region"], same_as_plain=True,
                  stats=True, check=all_of(stats_equal(regions_begun=300, regions_ended=300),
                                           stats_at_least(region_allocs=300 * 500))))

    # 8. Options.
    for value, key in BAD_OPTIONS:
        def bad_check(run, case_dir, key=key):
            first = run.first_err_line()
            expect(first.startswith("arenashim: error: "), "first stderr line %r" % first)
            expect(key in first, "the error %r does not name %r" % (first, key))
            expect(len(run.err.splitlines()) == 1, "more than one line on stderr: %r" % run.err[:300])
        c.append(Case("options/bad " + (value or "(empty)"), ["/bin/true"], options=value, rc=2,
                      stdout="", check=bad_check))
    for value in GOOD_OPTIONS:  # each checked for what it does (GOOD_OPTION_EFFECTS)
        c.append(good_option_case(value))
    c.append(Case("options/good on /bin/true", ["/bin/true"], options=GOOD_OPTIONS[0], rc=0,
                  stderr_has="arenashim: statistics"))
    c.append(Case("options/stats-summary", [B + "counted", "7", "3", "0"], options="stats=1",
                  stdout_has="OK counted", stderr_has=["arenashim: statistics", "regions", "7 begun, 7 ended"]))
    c.append(Case("options/stats_json-regions", [B + "counted", "37", "11", "0"], stats=True,
                  stdout_has="OK counted", check=counted_check(37, 11, 0)))
    c.append(Case("options/stats_json-arena", [B + "counted", "5", "100", "25"], stats=True,
                  stdout_has="OK counted", check=counted_check(5, 100, 25)))
    c.append(Case("options/stats_json-none", [B + "counted", "0", "0", "0"], stats=True,
                  stdout_has="OK counted", check=counted_check(0, 0, 0)))
    c.append(Case("options/stats_json-chunk4M", [B + "counted", "20", "1000", "0"], stats=True,
                  options="chunk_size=4M", stdout_has="OK counted", check=counted_check(20, 1000, 0)))

    def open_at_exit(run, case_dir):
        st = run.stats
        expect(st["regions_begun"] == 6, "regions_begun %r, expected 6" % st["regions_begun"])
        expect(st["region_allocs"] >= 6 * 40,
               "region_allocs %r, expected >= %d: allocations of the region still open at exit are "
               "not counted" % (st["region_allocs"], 6 * 40))
    c.append(Case("options/stats_json-region-open-at-exit", [B + "counted", "5", "40", "0", "open"], stats=True,
                  stdout_has="OK counted", check=open_at_exit))

    def pid_file_check(run, case_dir):
        files = [p.name for p in case_dir.iterdir() if re.fullmatch(r"s\.\d+\.json", p.name)]
        expect(len(files) == 1, "expected one s.PID.json, found %s" % files)
        data = json.loads((case_dir / files[0]).read_text())
        expect(data.get("regions_begun") == 3, "regions_begun %r" % data.get("regions_begun"))
    c.append(Case("options/stats_json-%p", [B + "counted", "3", "1", "0"], options="stats_json={tmp}/s.%p.json",
                  stdout_has="OK counted", check=pid_file_check))

    # 9. partial_reuse and exclude.
    c.append(Case("partial_reuse/small-regions", [B + "small_regions", "20000"], options="partial_reuse=1",
                  stats=True, same_as_plain=True,
                  check=all_of(stats_equal(regions_begun=20000, regions_ended=20000),
                               stats_at_least(region_allocs=200000))))
    c.append(Case("partial_reuse/off-small-regions", [B + "small_regions", "5000"], stats=True,
                  same_as_plain=True, check=stats_equal(regions_begun=5000, regions_ended=5000)))
    c.append(Case("exclude/default", [B + "exclude_probe"],
                  stdout_has="own=1 asprintf=0 getline=0 lib=1 allocs=2"))
    c.append(Case("exclude/other-module", [B + "exclude_probe"], options="exclude=libnothing.so",
                  stdout_re=r"^own=1 asprintf=1 getline=1 lib=1 allocs=[4-9]"))
    c.append(Case("exclude/library", [B + "exclude_probe"], options="exclude=libexclprobe.so",
                  stdout_re=r"^own=1 asprintf=1 getline=1 lib=0 allocs=[3-9]"))
    c.append(Case("exclude/prefix-form", [B + "exclude_probe"], options="exclude=libexclprobe.so:libc",
                  stdout_has="own=1 asprintf=0 getline=0 lib=0 allocs=1"))
    c.append(Case("exclude/library-and-libc", [B + "exclude_probe"], options="exclude=libexclprobe:libc.so.6",
                  stdout_has="own=1 asprintf=0 getline=0 lib=0 allocs=1"))

    # The public API, call by call (nesting, heapify, arenas, stats_json, collect).
    for opts in (None, "partial_reuse=1", "chunk_size=64K", "on_dangling=recover", "scan=off"):
        c.append(Case("api/calls" + ("-" + opts if opts else ""), [B + "api"], options=opts, stdout_has="OK api"))

    # Many regions leave few kernel mappings (vm.max_map_count is 65530): the count may settle
    # at some level, but must not keep growing with the number of regions.
    def maps_bounded(run, case_dir):
        m = re.search(r"^maps (\d+) (\d+) (\d+)$", run.out, re.M)
        expect(m, "no maps line")
        before, quarter, after = (int(x) for x in m.groups())
        expect(after <= quarter + 200 and after < 10000,
               "mappings keep growing with regions: %d at start, %d after a quarter of the regions, "
               "%d at the end" % (before, quarter, after))
    for count, opts in ((50000, None), (50000, "partial_reuse=1"), (50000, "revoke_batch=8"),
                        (50000, "on_dangling=recover"),
                        (50000, "scan=off,chunk_size=64K"), (100000, "scan=off")):
        c.append(Case("mappings/%d-regions" % count + ("-" + opts if opts else ""), [B + "mapcount", str(count)],
                      options=opts, stdout_has="OK mapcount", check=maps_bounded))

    # Every mode never hands an address out again before a scan (scan=off: never), on this
    # kernel's paths and on the fallbacks of an old one (kernel_features=none); the page
    # recycling that strict mode relies on is really used, or really off.
    for opts, recycled in (("", True), ("partial_reuse=1", True), ("revoke_batch=4", True),
                           ("revoke_batch=2,partial_reuse=1", True), ("kernel_features=none", False),
                           ("revoke_batch=4,kernel_features=none", False),
                           ("on_dangling=recover", False), ("chunk_size=64K", True),
                           ("huge_pages=0", True)):
        options = ",".join(filter(None, ["scan=off", opts]))
        c.append(Case("no-reuse/" + (opts or "strict"), [B + "no_reuse", "2", "1500"],
                      options=options, stats=True, stdout_has="OK no_reuse",
                      check=all_of(stats_equal(scans=0, chunks_reused=0),
                                   stats_at_least(bytes_recycled=1) if recycled
                                   else stats_equal(bytes_recycled=0))))
    c.append(Case("kernel-features/verbose-says-fallback", [B + "counted", "2", "2", "0"],
                  options="verbose=1,kernel_features=none", stdout_has="OK counted",
                  stderr_first=r"arenashim: revocation: strict .*page recycling: off, pages faulted anew "
                               r"\(kernel_features=none\); populating ahead: off.*"))
    c.append(Case("kernel-features/verbose-says-paths", [B + "counted", "2", "2", "0"],
                  options="verbose=1,revoke_batch=16", stdout_has="OK counted",
                  stderr_first=r"arenashim: revocation: revoke_batch=16 .*page recycling: "
                               r"mremap\(MREMAP_DONTUNMAP\); populating ahead: madvise.*"))

    # A program that uses userfaultfd on its own memory: a concurrent scan took it first (the
    # documented limit, on kernels that track writes); scan_mode=stop leaves it alone.
    tracks = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2]) >= (6, 7)
    c.append(Case("scan/userfaultfd-program-concurrent", [B + "uffd_user"],
                  stdout_re=r"^register (EBUSY|ok)$" if not tracks else r"^register EBUSY$"))
    c.append(Case("scan/userfaultfd-program-scan_mode=stop", [B + "uffd_user"], options="scan_mode=stop",
                  stdout_re=r"^(register ok|userfaultfd unavailable .*)$"))

    # 10. Empty regions make no system call.
    c.append(FuncCase("syscalls/empty-regions", syscalls_do_not_scale(0), needs="strace",
                      programs=["empty_regions"]))
    c.append(FuncCase("syscalls/empty-regions-partial_reuse", syscalls_do_not_scale(0, "partial_reuse=1"),
                      needs="strace", programs=["empty_regions"]))
    c.append(FuncCase("syscalls/small-regions-partial_reuse", syscalls_do_not_scale(100, "partial_reuse=1"),
                      needs="strace", programs=["empty_regions"]))
    c.append(FuncCase("syscalls/allocating-regions-do-fault", syscalls_do_not_scale(100, None, True),
                      needs="strace", programs=["empty_regions"]))

    # 11. Secure execution, files, address-space limits (issue 9).
    c.append(FuncCase("secure/setuid-ignores-file-options", setuid_options_check(True), programs=["counted"]))
    c.append(FuncCase("secure/not-setuid-writes-files", setuid_options_check(False), programs=["counted"]))
    c.append(Case("files/log_path-symlink-refused", [B + "counted", "2", "2", "0"], rc=2,
                  options="log_path={tmp}/log", setup=planted_symlink_setup("log"),
                  stderr_first=r"arenashim: error: ARENASHIM_OPTIONS: log_path=.*", check=log_symlink_refused))
    c.append(Case("files/stats_json-symlink-replaced", [B + "counted", "2", "2", "0"],
                  options="stats_json={tmp}/stats.json", setup=planted_symlink_setup("stats.json"),
                  stdout_has="OK counted", check=stats_symlink_replaced))
    # The temporary file beside the target must not be predictable: a link planted at the name
    # an earlier version used (TARGET.tmp.PID; exec keeps the shell's pid) is not written through.
    c.append(Case("files/stats_json-temporary-not-predictable",
                  ["sh", "-c", "ln -s {tmp}/victim {tmp}/stats.json.tmp.$$ && exec " + B + "counted 2 2 0"],
                  options="stats_json={tmp}/stats.json", setup=lambda ctx, d: (d / "victim").write_text("precious\n"),
                  stdout_has="OK counted", check=stats_symlink_replaced))
    c.append(Case("files/log_path-mode", [B + "counted", "2", "2", "0"], options="log_path={tmp}/new.log,stats=1",
                  stdout_has="OK counted", check=log_mode_check))
    # ulimit -v: the default reservation shrinks to fit; too little runs heap-only; a reserve=
    # that cannot be had stops the program at start-up.
    limited = lambda size, *argv: ["prlimit", "--as=%d" % size, "--"] + list(argv)

    def reserve_fits(run, case_dir):
        expect(0 < run.stats["reserve"] <= 2 << 30, "reserve %d under ulimit -v 8G" % run.stats["reserve"])
    c.append(Case("limits/ulimit-v-8g", limited(8 << 30, B + "counted", "20", "50", "10"), stats=True,
                  needs="prlimit", stdout_has="OK counted", stderr_lacks="arenashim",
                  check=all_of(counted_check(20, 50, 10), reserve_fits)))

    def heap_only(run, case_dir):
        s = run.stats
        expect(s["reserve"] == 0 and s["chunks_mapped"] == 0, "reserve %d, chunks %d" % (s["reserve"], s["chunks_mapped"]))
        expect(s["regions_begun"] == 300 and s["region_allocs"] == 0 and s["fallback_allocs"] >= 300 * 100,
               "regions %d, region allocations %d, fallback allocations %d" %
               (s["regions_begun"], s["region_allocs"], s["fallback_allocs"]))
        expect(len([l for l in run.err.splitlines() if "arenashim" in l]) == 1, "more than one warning: %r" % run.err)
    c.append(Case("limits/ulimit-v-tiny-heap-only", limited(120 << 20, B + "cxx_workload", "region"), stats=True,
                  needs="prlimit", same_as_plain=True, stderr_has="regions are off", check=heap_only))
    c.append(Case("limits/explicit-reserve-over-limit", limited(8 << 30, B + "counted", "1", "1", "0"),
                  options="reserve=64G", rc=2, needs="prlimit",
                  stderr_first=r"arenashim: error: ARENASHIM_OPTIONS: reserve: .*ulimit -v.*"))

    # 12. Large heaps outside regions: the preload's extent bookkeeping keeps up with jemalloc.
    c.extend(issue14_cases(B))
    return c


# --- issue 14: documented behaviour that had no test ---------------------------------------------
#
# Each block below tests one promise of README.md (Options, Known limits, Usage) or
# docs/design.md ("Entry points", "Limits") that nothing tested before.  Every check was seen
# failing once against a build with the promise broken (the commit message says how).

# 1. System-call guards (preload/shim/syscall_guard.c): a dangling buffer handed to any of the
# guarded calls is reported before the call, like a dangling access in the program's own code.
# READ: the kernel would read the buffer (the call sends it); WRITE: the kernel would fill it.
GUARDED_CALLS = (
    ("write", "READ"), ("pwrite", "READ"), ("writev", "READ"), ("send", "READ"), ("sendto", "READ"),
    ("fwrite", "READ"), ("fwrite_unlocked", "READ"),
    ("read", "WRITE"), ("pread", "WRITE"), ("readv", "WRITE"), ("recv", "WRITE"), ("recvfrom", "WRITE"),
    ("fread", "WRITE"), ("fread_unlocked", "WRITE"),
)


def guard_report_check(call, recover):
    """tests/programs/io_guard.c CALL under ARENASHIM_REGIONS=make_buffer: exactly one report,
    whose access backtrace starts in arenashim's guard of CALL (pwrite and pread are pwrite64 and
    pread64, one function under two names) called from the program's use_CALL, and which ends
    with the verdict of the mode."""
    guard = {"pwrite": "pwrite(64)?", "pread": "pread(64)?"}.get(call, re.escape(call))
    user = "use_" + call.replace("_unlocked", "")

    def check(run, case_dir):
        lines = run.err.splitlines()
        reports = [l for l in lines if re.fullmatch(REPORT_RE, l)]
        expect(len(reports) == 1, "%d reports, expected one for %s" % (len(reports), call))
        expect("  access backtrace:" in lines, "the report has no access backtrace")
        at = lines.index("  access backtrace:")
        frame0, frame1 = (lines[at + 1].strip(), lines[at + 2].strip()) if len(lines) > at + 2 else ("", "")
        expect(re.fullmatch(r"#0 0x[0-9a-f]+ libarenashim\.so\+0x[0-9a-f]+ \(%s\+0x[0-9a-f]+\)" % guard, frame0),
               "frame #0 of the access backtrace is %r, not arenashim's guard of %s" % (frame0, call))
        expect(re.fullmatch(r"#1 0x[0-9a-f]+ io_guard\+0x[0-9a-f]+ \(%s\+0x[0-9a-f]+\)" % user, frame1),
               "frame #1 of the access backtrace is %r, not the program's %s" % (frame1, user))
        verdict = r"^==\d+==CONTINUING \(on_dangling=recover" if recover else r"^==\d+==ABORTING \(on_dangling=abort\)"
        expect(re.search(verdict, run.err, re.M), "the report does not end with /%s/" % verdict)
    return check


def issue14_syscall_guard_cases(B):
    c = []
    regions = {"ARENASHIM_REGIONS": "make_buffer"}
    # The baseline: the marker alone (the buffer dangles, but nothing touches it) reports nothing.
    c.append(Case("syscall-guard/none", [B + "io_guard", "none"], env=regions, stats=True, stdout="done\n",
                  stderr_lacks="use-after-region-free",
                  check=stats_equal(regions_begun=1, regions_ended=1, dangling_accesses=0)))
    for call, access in GUARDED_CALLS:
        # recover: reported once, then the call runs on the buffer as it was (contents kept),
        # so the program's output is the plain run's: the bytes arrived, or were filled in.
        c.append(Case("syscall-guard/%s-recover" % call, [B + "io_guard", call], env=regions,
                      options="on_dangling=recover", stats=True, same_as_plain=True,
                      stdout_re=r"^%s: returned \d+, data ok$" % re.escape(call),
                      stderr_first=report_re(access, "make_buffer"),
                      check=all_of(stats_equal(dangling_accesses=1), guard_report_check(call, True))))
        # abort: the report, then SIGSEGV before the call returns (not a silent EFAULT).
        c.append(Case("syscall-guard/%s-abort" % call, [B + "io_guard", call], env=regions, rc=-11,
                      stdout_lacks="%s: returned" % call, stderr_first=report_re(access, "make_buffer"),
                      check=guard_report_check(call, False)))
    return c


# 2. Running out of reserve (README, Options: reserve): when the chunk reservation runs out a
# scan is forced; if nothing comes free, regions fall back to jemalloc with a one-time warning.
# tests/programs/reserve_loop.c CALLS MIB [NODE_BYTES] under ARENASHIM_REGIONS=build_list: each
# call is a region of MIB MiB; its output is the same however the memory was served.
EXHAUSTED_WARNING = "arenashim: warning: the chunk reservation is exhausted; region allocations fall back to the heap"


def warned_once(run, case_dir):
    """The warning exactly once, and nothing else from arenashim on stderr."""
    lines = run.err.splitlines()
    warnings = [l for l in lines if l.startswith(EXHAUSTED_WARNING)]
    expect(len(warnings) == 1, "the reservation warning appeared %d times, expected once" % len(warnings))
    others = [l for l in lines if "arenashim" in l and not l.startswith(EXHAUSTED_WARNING)]
    expect(not others, "other arenashim lines on stderr: %r" % others[:3])


def scans_bounded(run, case_dir):
    """A scan is forced when the reservation runs out, not at every allocation that follows:
    at most two per region (one that frees the previous regions' quarantined chunks, one that
    finds nothing more to free), with quarantine_max=reserve so that no scan starts otherwise."""
    s = run.stats
    expect(s["scans"] <= 2 * s["regions_begun"],
           "%d scans for %d regions (%d allocations fell back): a scan per allocation once the "
           "reservation is exhausted, not one when it runs out" % (s["scans"], s["regions_begun"],
                                                                  s["fallback_allocs"]))


def issue14_reserve_cases(B):
    c = []
    regions = {"ARENASHIM_REGIONS": "build_list"}
    small = "reserve=64M,chunk_size=1M"
    # Nothing can come free (scan=off): 3 regions of 80 MiB in 1 KiB objects, each past the 64
    # chunks; everything beyond goes to the heap, with one warning in all.
    c.append(Case("reserve/exhausted-nothing-frees-falls-back", [B + "reserve_loop", "3", "80"], env=regions,
                  options=small + ",scan=off", stats=True, same_as_plain=True, stdout_has="total ",
                  check=all_of(warned_once,
                               stats_equal(regions_begun=3, regions_ended=3, scans=0, dangling_accesses=0),
                               stats_at_least(reserve_exhausted=1, fallback_allocs=3 * 16 * 1024,
                                              region_allocs=60000))))
    # With scans: a region that outgrows the reservation forces a scan (which frees the
    # previous region's quarantined chunks for it), then falls back; one warning in all.
    # quarantine_max=64M: the collector never starts a scan on its own here.
    forced = small + ",quarantine_max=64M"
    over = [B + "reserve_loop", "2", "66", "262144"]
    c.append(Case("reserve/exhausted-scan-forced-then-falls-back", over, env=regions, options=forced,
                  stats=True, same_as_plain=True, stdout_has="total ",
                  check=all_of(warned_once,
                               stats_equal(regions_begun=2, regions_ended=2, dangling_accesses=0),
                               stats_at_least(scans=1, chunks_reused=32, reserve_exhausted=1,
                                              fallback_allocs=2 * 8))))
    c.append(Case("reserve/exhausted-no-scan-per-allocation", over, env=regions, options=forced,
                  stats=True, stdout_has="total ", check=scans_bounded))
    # Regions that fit one at a time but not all together: the forced scans free the ended
    # regions' chunks, nothing falls back and nothing is said.
    c.append(Case("reserve/regions-over-reserve-in-total-reused", [B + "reserve_loop", "6", "40"], env=regions,
                  options=forced, stats=True, same_as_plain=True, stdout_has="total ",
                  stderr_lacks="arenashim",
                  check=all_of(stats_equal(regions_begun=6, fallback_allocs=0, reserve_exhausted=0),
                               stats_at_least(scans=1, chunks_reused=5 * 40 - 64))))
    return c


# 3. Launchers in front of the program (README, Function markers: "Child processes are
# lenient"): sh -c, env, strace and gdb start tests/programs/launched.c, whose handle() is
# marked.  The marker is checked in the program, not in the launcher (which lacks handle: a
# strict launcher would stop with exit status 2 before the program ran); its regions are
# counted in the program's stats_json; a launcher that opened no region writes none; a marker
# that names nothing stops the program (exit 2, the documented message), not the launcher.
NAMES_NOTHING = ("arenashim: error: ARENASHIM_REGIONS: marker 'no_such_function' names no function of the "
                 "executable or any loaded library; check the name with nm (C++ names are mangled), qualify "
                 "it as MODULE:FUNC for a library loaded later, or use MODULE+0xOFFSET for a stripped binary")

LAUNCHERS = {
    # sh: not the shell's last command, so that it forks, runs the program and goes on
    "sh": ["sh", "-c", "{bin}/launched; echo sh-after=$?"],
    "env": ["env", "{bin}/launched"],
    "strace": ["strace", "-f", "-o", "{tmp}/strace.log", "{bin}/launched"],
    "gdb": ["gdb", "-nx", "-batch", "-ex", "run", "--args", "{bin}/launched"],
}


def launcher_saw_exit(name, run, case_dir, status):
    """The launcher outlived the program and saw its exit status."""
    if name == "sh":
        expect("sh-after=%d" % status in run.out, "the shell did not go on after the program (no sh-after=%d)" % status)
        expect(run.rc == 0, "sh exited %s" % describe_status(run.rc))
    elif name == "env":  # env execs the program: its status is the program's
        expect(run.rc == status, "exit status %s, expected the program's %d" % (describe_status(run.rc), status))
    elif name == "strace":
        expect((case_dir / "strace.log").exists(), "strace wrote no log")
        log = (case_dir / "strace.log").read_text(errors="replace")
        expect(re.search(r"^\d+\s+\+\+\+ exited with %d \+\+\+$" % status, log, re.M),  # "PID  +++" (padded)
               "strace did not see the program exit with %d" % status)
        expect(run.rc == status, "strace exited %s, expected the program's %d" % (describe_status(run.rc), status))
    elif name == "gdb":
        said = "exited normally" if status == 0 else "exited with code %02d" % status
        expect(re.search(r"^\[Inferior 1 \(process \d+\) %s\]$" % said, run.out, re.M),
               "gdb did not report the program's exit (%s)" % said)
        expect(run.rc == 0, "gdb exited %s" % describe_status(run.rc))


def launched_marker_check(name):
    def check(run, case_dir):
        m = re.search(r"^launched pid=(\d+)$", run.out, re.M)
        expect(m, "the program did not run")
        pid = int(m.group(1))
        files = sorted(p.name for p in case_dir.iterdir() if re.fullmatch(r"s\.\d+\.json", p.name))
        expect(files == ["s.%d.json" % pid], "stats_json files %s, expected only the program's s.%d.json "
                                              "(a launcher that opened no region writes none)" % (files, pid))
        stats = json.loads((case_dir / files[0]).read_text())
        markers = {m["spec"]: m for m in stats["markers"]}
        expect("handle" in markers and markers["handle"]["resolved"] and markers["handle"]["regions"] == 5,
               "marker handle in the program's statistics: %r" % markers.get("handle"))
        expect(stats["regions_begun"] == 5, "regions_begun %r, expected 5" % stats["regions_begun"])
        expect("arenashim" not in run.err, "arenashim said something: %r" % run.err[:300])
        launcher_saw_exit(name, run, case_dir, 0)
    return check


def launched_names_nothing_check(name):
    def check(run, case_dir):
        errors = [l for l in run.err.splitlines() if l.startswith("arenashim:")]
        expect(errors == [NAMES_NOTHING], "expected the documented error once, from the program; arenashim "
                                          "said %r" % errors[:3])
        expect("launched pid=" not in run.out, "the program ran past start-up")
        launcher_saw_exit(name, run, case_dir, 2)
    return check


# The launcher script itself, scripts/arenashim (README, Usage: The launcher).  It builds
# build/preload/libarenashim.so of its own checkout before running anything; so that a test
# run never builds a build folder of the checkout, each case runs a copy of scripts/ in
# {tmp}/root, whose build/ holds the library under test and an empty build.ninja (ninja has
# nothing to do).
def launcher_root_setup(ctx, case_dir):
    root = case_dir / "root"
    shutil.copytree(ROOT / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "meson.build", root / "meson.build")  # where the script reads its version
    build = root / "build"
    (build / "preload").mkdir(parents=True)
    (build / "meson-private").mkdir()
    (build / "meson-private" / "coredata.dat").write_bytes(b"")
    (build / "build.ninja").write_text("")
    os.symlink(ctx.build.lib.resolve(), build / "preload" / "libarenashim.so")


def dash_command_setup(ctx, case_dir):
    """launcher_root_setup, and {tmp}/bin/-launched: the program under a name that looks like a flag."""
    launcher_root_setup(ctx, case_dir)
    (case_dir / "bin").mkdir()
    os.symlink(ctx.build.bin / "launched", case_dir / "bin" / "-launched")


def markers_regions(**expected):
    """The program's stats_json: each marker named resolved with that many regions."""
    def check(run, case_dir):
        markers = {m["spec"]: m for m in run.stats["markers"]}
        for spec, regions in expected.items():
            m = markers.get(spec)
            expect(m and m["resolved"] and m["regions"] == regions,
                   "marker %s: %r, expected resolved with %d regions" % (spec, m, regions))
        expect(sorted(markers) == sorted(expected), "markers %s, expected %s" % (sorted(markers), sorted(expected)))
    return check


def ld_preload_is(pattern):
    """The LD_PRELOAD the program saw: pattern with {lib} the copy's library and {bin} the
    programs' folder."""
    def check(run, case_dir):
        lib = case_dir / "root" / "build" / "preload" / "libarenashim.so"
        want = pattern.format(lib=lib, bin=Path(run.argv[2]).parent)
        m = re.search(r"^LD_PRELOAD=(.*)$", run.out, re.M)
        expect(m and m.group(1) == want, "LD_PRELOAD=%s, expected %s" % (m.group(1) if m else "?", want))
        expect("launched: 5 calls" in run.out, "the program did not run")
    return check


def issue14_launcher_cases(B):
    c = []
    for name in LAUNCHERS:
        needs = [name] if name in ("strace", "gdb") else []
        c.append(Case("launchers/%s-marker-resolves-in-program" % name, LAUNCHERS[name],
                      env={"ARENASHIM_REGIONS": "handle"}, options="stats_json={tmp}/s.%p.json", rc=None,
                      needs=needs, stdout_has="launched: 5 calls", check=launched_marker_check(name)))
        c.append(Case("launchers/%s-marker-naming-nothing-stops-program" % name, LAUNCHERS[name],
                      env={"ARENASHIM_REGIONS": "no_such_function"}, rc=None, needs=needs,
                      check=launched_names_nothing_check(name)))

    S = "{tmp}/root/scripts/arenashim"
    L = B + "launched"
    lib = "{tmp}/root/build/preload/libarenashim.so"
    script = dict(preload=False, setup=launcher_root_setup)
    c.append(Case("launcher-script/help", [S, "--help"], rc=0, stderr_empty=True,
                  stdout_re=r"\Ausage: scripts/arenashim \[--region SPEC\]\.\.\. \[--options K=V,\.\.\.\] \[--\] CMD",
                  stdout_has=["--region SPEC", "--options K=V,...", "-h, --help"], **script))
    c.append(Case("launcher-script/help-short", [S, "-h", "--", L], rc=0, stdout_lacks="launched",
                  stdout_re=r"\Ausage: scripts/arenashim ", **script))
    c.append(Case("launcher-script/unknown-flag", [S, "--region", "handle", "--bogus", "--", L], rc=2, stdout="",
                  stderr_first=re.escape("arenashim: unknown option '--bogus'"),
                  stderr_has="usage: scripts/arenashim", **script))
    # --region repeated (both forms): comma-joined, after a value already in the environment.
    c.append(Case("launcher-script/region-repeated", [S, "--region", "handle", "--region=helper", "--", L, "env"],
                  stats=True, stdout_has=["ARENASHIM_REGIONS=handle,helper\n", "launched: 5 calls"],
                  check=markers_regions(handle=5, helper=3), **script))
    c.append(Case("launcher-script/region-after-environment", [S, "--region", "handle", "--", L, "env"],
                  env={"ARENASHIM_REGIONS": "helper"}, stats=True, stdout_has="ARENASHIM_REGIONS=helper,handle\n",
                  check=markers_regions(handle=5, helper=3), **script))
    # --options repeated: comma-joined after the environment's value, a key given later wins.
    # The control: on_dangling=abort alone kills the program at its dangling read.
    c.append(Case("launcher-script/options-control-abort",
                  [S, "--region", "handle", "--options", "on_dangling=abort", "--", L, "dangle"], rc=-11,
                  stderr_first=report_re("READ", "handle"), stdout_lacks="kept:", **script))
    c.append(Case("launcher-script/options-repeated-later-wins",
                  [S, "--region", "handle", "--options", "on_dangling=abort,stats=1", "--options=on_dangling=recover",
                   "--", L, "env", "dangle"], rc=0,
                  stdout_has=["ARENASHIM_OPTIONS=on_dangling=abort,stats=1,on_dangling=recover\n",
                              "kept: request 0 object 3"],
                  stderr_first=report_re("READ", "handle"),
                  stderr_has=["CONTINUING (on_dangling=recover", "arenashim: statistics"], **script))
    c.append(Case("launcher-script/options-after-environment",
                  [S, "--region", "handle", "--options", "on_dangling=recover", "--", L, "env", "dangle"], rc=0,
                  env={"ARENASHIM_OPTIONS": "on_dangling=abort"},
                  stdout_has=["ARENASHIM_OPTIONS=on_dangling=abort,on_dangling=recover\n", "kept: request 0 object 3"],
                  stderr_has="CONTINUING (on_dangling=recover", **script))
    # --: what follows is the command, flags included; without it the first word that is not
    # a flag starts the command, and the command's own flags are its own.
    c.append(Case("launcher-script/double-dash",
                  [S, "--region", "handle", "--", L, "--region", "x", "--options", "y", "--bogus", "--", "env"],
                  stdout_has=["args: [--region] [x] [--options] [y] [--bogus] [--] [env]\n",
                              "ARENASHIM_REGIONS=handle\n", "ARENASHIM_OPTIONS=(unset)\n"], **script))
    # A command whose name starts with '-' needs the --.
    c.append(Case("launcher-script/double-dash-before-dash-command", [S, "--region", "handle", "--", "-launched", "env"],
                  env={"PATH": "{tmp}/bin:" + os.environ.get("PATH", "/usr/bin:/bin")}, setup=dash_command_setup,
                  preload=False, stdout_has=["args: [env]\n", "ARENASHIM_REGIONS=handle\n", "launched: 5 calls"]))
    c.append(Case("launcher-script/command-ends-flags", [S, "--region", "handle", L, "--help", "--bogus", "env"],
                  stdout_has=["args: [--help] [--bogus] [env]\n", "ARENASHIM_REGIONS=handle\n"], **script))
    # LD_PRELOAD: the library first, before what was there; not added twice.
    c.append(Case("launcher-script/ld-preload-prepended", [S, "--", L, "env"],
                  env={"LD_PRELOAD": "{bin}/libexclprobe.so"},
                  check=ld_preload_is("{lib}:{bin}/libexclprobe.so"), **script))
    c.append(Case("launcher-script/ld-preload-not-twice", [S, "--", L, "env"],
                  env={"LD_PRELOAD": "{bin}/libexclprobe.so:" + lib},
                  check=ld_preload_is("{bin}/libexclprobe.so:{lib}"), **script))
    c.append(Case("launcher-script/exit-status-is-the-command's", [S, "--", L, "exit=7"], rc=7,
                  stdout_has="launched: 5 calls", **script))
    return c


# 4. exclude= for a module loaded later by dlopen (README, Options: exclude): "a module loaded
# later by dlopen is excluded only when markers are in use" (the link-map hook that adds it to
# the table of excluded code, preload/shim/caller_filter.c, comes with the markers).
# tests/programs/dl_exclude.c dlopens libexclprobe.so, whose exclprobe_alloc() allocates inside
# a region next to one allocation of the program's own, and reads the library's object after
# the region ended: excluded, it is a heap object (1 region allocation, no dangling access);
# not excluded, a region object (2 region allocations, a dangling read reported).
def dl_exclude_check(excluded, marker):
    def check(run, case_dir):
        s = run.stats
        expect(s["regions_begun"] == 1, "regions_begun %r, expected 1" % s["regions_begun"])
        if excluded:
            expect(s["region_allocs"] == 1 and s["dangling_accesses"] == 0,
                   "the dlopened library's allocation was not excluded: %d region allocations (expected the "
                   "program's 1), %d dangling accesses" % (s["region_allocs"], s["dangling_accesses"]))
            expect("use-after-region-free" not in run.err, "a dangling report: %r" % run.first_err_line())
        else:
            expect(s["region_allocs"] == 2 and s["dangling_accesses"] == 1,
                   "the dlopened library's allocation was not a region one: %d region allocations (expected "
                   "2), %d dangling accesses (expected 1)" % (s["region_allocs"], s["dangling_accesses"]))
            expect(re.fullmatch(report_re("READ", marker), run.first_err_line()),
                   "first stderr line %r is not the report of the read" % run.first_err_line())
    return check


def issue14_dlopen_exclude_cases(B):
    c = []
    argv = lambda mode: [B + "dl_exclude", "{bin}/libexclprobe.so", mode]
    lines = "lib object: 17 17 17 17\n"
    recover = "on_dangling=recover,"
    excl = "exclude=libexclprobe.so"
    # With markers: the region is a call of work(); the library is excluded.
    c.append(Case("exclude-dlopen/with-markers-excluded", argv("marker"), env={"ARENASHIM_REGIONS": "work"},
                  options=recover + excl, stats=True, stdout=lines, check=dl_exclude_check(True, "work")))
    # The same in abort mode: the read after the region is an ordinary heap read.
    c.append(Case("exclude-dlopen/with-markers-excluded-abort", argv("marker"), env={"ARENASHIM_REGIONS": "work"},
                  options=excl, stdout=lines, stderr_empty=True))
    # Control: not excluded (the default list), the same allocation is a region object.
    c.append(Case("exclude-dlopen/with-markers-not-excluded", argv("marker"), env={"ARENASHIM_REGIONS": "work"},
                  options=recover + "exclude=libc.so.6", stats=True, stdout=lines,
                  check=dl_exclude_check(False, "work")))
    # An API region with a marker in use elsewhere (never_called is never called): excluded.
    c.append(Case("exclude-dlopen/api-region-markers-in-use-excluded", argv("api"),
                  env={"ARENASHIM_REGIONS": "never_called"}, options=recover + excl, stats=True, stdout=lines,
                  check=dl_exclude_check(True, "(api)")))
    # The documented limit: no marker at all, so no link-map hook: the module loaded later is
    # not excluded (were the limit lifted, this case would change with README's Options table).
    c.append(Case("exclude-dlopen/api-region-no-markers-not-excluded", argv("api"), options=recover + excl,
                  stats=True, stdout=lines, check=dl_exclude_check(False, "(api)")))
    return c


# 5. fork with trace_allocs=1, on_dangling=recover and verbose=1 (README: "a forked child keeps
# its hooks"; stats_json's %p; docs/design.md, Entry points: fork.c takes the scan, report,
# chunk, thread and pool locks before fork).  tests/programs/fork_traced.c forks 40 children one
# after another while a helper thread runs traced regions; each child runs regions of its own
# and reads two dangling objects (the parent's and its own), then exits.
def report_blocks(err, pid):
    """The dangling reports of process pid: lists of lines, from ERROR to its verdict line."""
    blocks, current = [], None
    for line in err.splitlines():
        if line.startswith("==%d==ERROR: arenashim: use-after-region-free" % pid):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith("==%d==" % pid):
                blocks.append(current)
                current = None
    return blocks


def section_frames(block, title):
    """The frames under a report's section title ("  region began at:")."""
    if title not in block:
        return []
    frames = []
    for line in block[block.index(title) + 1:]:
        if not re.match(r"    #\d+ 0x[0-9a-f]+ ", line):
            break
        frames.append(line.strip())
    return frames


def fork_traced_check(children):
    def check(run, case_dir):
        parent = re.search(r"^fork_traced: parent pid (\d+)$", run.err, re.M)
        expect(parent, "no parent pid on stderr")
        parent = int(parent.group(1))
        kids = [int(p) for p in re.findall(r"^fork_traced: child \d+ pid (\d+)$", run.err, re.M)]
        expect(len(kids) == children, "%d children started, expected %d" % (len(kids), children))
        files = sorted(p.name for p in case_dir.iterdir() if re.fullmatch(r"s\.\d+\.json", p.name))
        want = sorted("s.%d.json" % p for p in [parent] + kids)
        expect(files == want, "statistics files %s, expected one per process %s" % (files, want))
        for pid, dangling in [(parent, 1)] + [(k, 2) for k in kids]:
            who = "the parent" if pid == parent else "child %d" % pid
            stats = json.loads((case_dir / ("s.%d.json" % pid)).read_text())
            expect(stats["dangling_accesses"] == dangling, "%s's statistics count %d dangling accesses, expected "
                   "its own %d" % (who, stats["dangling_accesses"], dangling))
            marker = [m for m in stats["markers"] if m["spec"] == "request"]
            expect(marker and marker[0]["resolved"] and marker[0]["regions"] >= 4,
                   "%s: marker request %r, expected its regions counted" % (who, marker))
            blocks = report_blocks(run.err, pid)
            expect(len(blocks) == dangling, "%s wrote %d reports, expected %d" % (who, len(blocks), dangling))
            for block in blocks:
                expect(re.fullmatch(report_re("READ", "request"), block[0]), "%s: report %r" % (who, block[0]))
                expect(block[-1].startswith("==%d==CONTINUING (on_dangling=recover" % pid),
                       "%s: the report ends with %r" % (who, block[-1]))
                expect(any(re.match(r"  it is 0 bytes into an object of \d+ bytes at 0x[0-9a-f]+, allocated at:$", l)
                           for l in block), "%s: the report does not name the object (trace_allocs=1)" % who)
                site = section_frames(block, [l for l in block if l.endswith("allocated at:")][0])
                expect(site and "(request+0x" in site[0], "%s: allocation site %r, expected request" % (who, site[:1]))
                for title in ("  region began at:", "  region ended at:"):
                    frames = section_frames(block, title)
                    expect(len(frames) >= 2 and any("(main+0x" in f for f in frames),
                           "%s: %r has %d frames, expected a full backtrace (verbose=1)" % (who, title.strip(),
                                                                                             len(frames)))
    return check


def syscall_failure_cases(B):
    """Issue 14, resource limits: memory system calls fail halfway through the run (a seccomp
    filter makes them return ENOMEM, as a kernel out of memory or mappings does).  Whatever
    arenashim can no longer do, the program runs to its end with its plain output and every
    region balanced; when chunk memory itself is refused, one warning says why (not the
    mapping limit here), each region asks once, and its allocations are served by the heap."""
    cases = []
    for mode in ("mremap", "memory"):
        for options in ("", "partial_reuse=1", "revoke_batch=32", "on_dangling=recover",
                        "quarantine_max=1M", "scan_mode=stop,quarantine_max=1M"):
            def check(run, case_dir, mode=mode):
                s = run.stats
                expect(s["regions_begun"] == s["regions_ended"] == 3000,
                       "regions begun %d ended %d, expected 3000" % (s["regions_begun"], s["regions_ended"]))
                warnings = [l for l in run.err.splitlines() if "arenashim: warning" in l]
                if mode == "memory":
                    # One warning per thing that failed: chunk memory, and (when the scan's
                    # buffers were not made before the filter) the scan.
                    chunk = [w for w in warnings if "refused chunk memory" in w]
                    scan = [w for w in warnings if "the scan cannot run" in w]
                    expect(len(chunk) == 1 and "not the mapping limit" in chunk[0] and len(scan) <= 1
                           and len(warnings) == len(chunk) + len(scan), "warnings: %r" % warnings)
                    expect(s["fallback_allocs"] > 0 and 0 < s["kernel_refusals"] <= 2000,
                           "fallback_allocs %d, kernel_refusals %d (at most one per region after the "
                           "filter)" % (s["fallback_allocs"], s["kernel_refusals"]))
                else:
                    expect(not warnings, "warnings: %r" % warnings)
                    expect(s["fallback_allocs"] == 0, "fallback_allocs %d: mremap is not needed to allocate"
                           % s["fallback_allocs"])
            cases.append(Case("limits/failing-%s%s" % (mode, "-" + options if options else ""),
                              [B + "syscall_failures", mode, "3000"], options=options or None, stats=True,
                              env={"ARENASHIM_REGIONS": "work"}, same_as_plain=True,
                              stdout_has="OK %s " % mode, check=check))
    # Metadata refused (its commits fail, chunks are still had) from the start, or after the
    # first scans: the scan's buffers and the traced stacks' table cannot be made.  Once, a
    # table half made was taken again on every traced allocation (1.8 TB of metadata_bytes),
    # and a scan with half its bitmaps would have read a null one.
    for first, options in (("0", "quarantine_max=1M,trace_allocs=1"), ("1000", "trace_allocs=1"),
                           ("1000", "quarantine_max=1M")):
        def metadata_check(run, case_dir, first=first, options=options):
            s = run.stats
            expect(s["regions_begun"] == s["regions_ended"] == 3000,
                   "regions begun %d ended %d, expected 3000" % (s["regions_begun"], s["regions_ended"]))
            expect(s["metadata_bytes"] < 256 << 20, "metadata_bytes %d: taken again and again" % s["metadata_bytes"])
            warnings = [l for l in run.err.splitlines() if "arenashim: warning" in l]
            if first == "1000" and options == "quarantine_max=1M":
                # The scan's buffers were made before the filter: scans go on.
                expect(not warnings and s["scans"] > 0 and s["chunks_released"] > 0,
                       "warnings %r, scans %d, chunks released %d" % (warnings, s["scans"], s["chunks_released"]))
            else:
                expect(len(warnings) == 1 and "the scan cannot run" in warnings[0], "warnings: %r" % warnings)
                expect(s["scans"] == 0 and s["scan_giveups"] > 0, "scans %d, giveups %d" % (s["scans"], s["scan_giveups"]))
        cases.append(Case("limits/failing-metadata-from-%s-%s" % (first, options),
                          [B + "syscall_failures", "metadata", "3000", first], options=options, stats=True,
                          env={"ARENASHIM_REGIONS": "work"}, same_as_plain=True,
                          stdout_has="OK metadata ", check=metadata_check))
    return cases


def issue14_fork_cases(B):
    # A fork while the helper thread holds a lock that is not reset deadlocks the child: once
    # arenashim's own (3 runs in 5), then libunwind's (a fork in the middle of a traced
    # allocation's walk: 1 run in 8 when the machine was busy, report_unwind_fork_prepare).
    # Each child is one more chance to catch a fork inside a walk: 40 children, then 200.
    return [case for children in (40, 200) for case in fork_traced_cases(B, children)]


def fork_traced_cases(B, children):
    return [Case("fork/traced-recover-verbose-%d-children" % children, [B + "fork_traced", str(children)],
                 env={"ARENASHIM_REGIONS": "request"}, timeout=30,
                 options="trace_allocs=1,on_dangling=recover,verbose=1,stats_json={tmp}/s.%p.json",
                 same_as_plain=True, stdout_has="parent: own object 'request 1 object 5'",
                 stdout_re=r"^child %d: parent's object 'request 1 object 5', own object 'request %d object 5'" % (
                     children - 1, 1000 * (children + 1) + 2),
                 check=fork_traced_check(children))]


# 6. verbose= (README, Options): 1 adds region begin and end as full backtraces in reports, a
# report per allocation site of frees after region end, who still points into each chunk a
# scan kept, warnings (unmatched arenashim_region_end, markers ignored in child processes), the
# revocation paths (kernel_features) and the scan path (scan_mode); 2 also where each marker was
# hooked.  tests/programs/verbose_lines.c gives each a reason to appear in one run; verbose=0
# says none of it.
VERBOSE_MARKERS = ("keep_in_bss", "keep_in_heap", "make_text")


def verbose_check(level):
    def check(run, case_dir):
        err = run.err
        lines = err.splitlines()
        pid = int(re.search(REPORT_RE, err, re.M).group(1))
        blocks = report_blocks(err, pid)
        expect(len(blocks) == 1 and "marker 'make_text'" in blocks[0][0],
               "expected one dangling report, of make_text's string: %d reports" % len(blocks))
        began = section_frames(blocks[0], "  region began at:")
        ended = section_frames(blocks[0], "  region ended at:")
        if level == 0:
            expect(len(began) == 1 and len(ended) == 1,
                   "verbose=0: region began/ended at %d/%d frames, expected one each" % (len(began), len(ended)))
            said = [l for l in lines if l.startswith("arenashim:")]
            expect(not said, "verbose=0, yet arenashim said %r" % said[:3])
            return
        expect(len(began) >= 2 and "(make_text+0x0)" in began[0] and "(main+0x" in began[1],
               "verbose=%d: region began at %r, expected a full backtrace from make_text's entry" % (level, began))
        expect(len(ended) >= 2 and "(main+0x" in ended[0],
               "verbose=%d: region ended at %r, expected a full backtrace from main" % (level, ended))
        wanted = [
            (r"arenashim: free\(\) of 0x[0-9a-f]+ after its region #\d+ \(marker 'make_text'\) ended: the object "
             r"escaped its region.*", "the free after region end"),
            (re.escape("arenashim: warning: arenashim_region_end() with no open region; ignored"),
             "the unmatched arenashim_region_end"),
            (r"arenashim: scan kept chunk 0x[0-9a-f]+ \(region #\d+, marker 'keep_in_bss'\): pointer 0x[0-9a-f]+ "
             r"stored at 0x[0-9a-f]+ in \.data/\.bss of /.*/verbose_lines", "the .bss referrer of a kept chunk"),
            (r"arenashim: scan kept chunk 0x[0-9a-f]+ \(region #\d+, marker 'keep_in_heap'\): pointer 0x[0-9a-f]+ "
             r"stored at 0x[0-9a-f]+ in anonymous mapping \(jemalloc heap object\)",
             "the jemalloc heap object referrer of a kept chunk"),
            (r"arenashim: scan: .*", "the scan path (scan_mode)"),
        ]
        for spec in VERBOSE_MARKERS:
            # /bin/true, the child, inherits the markers and lacks them: ignored, and said once each.
            wanted.append((re.escape("arenashim: warning: ARENASHIM_REGIONS: marker '%s' names no function of the "
                                     "executable or any loaded library" % spec) + ".*",
                           "the child's ignored marker %s" % spec))
        for pattern, what in wanted:
            found = [l for l in lines if re.fullmatch(pattern, l)]
            expect(len(found) == 1, "verbose=%d: %d lines for %s, expected one (/%s/)" % (level, len(found), what,
                                                                                         pattern))
        # The revocation paths (kernel_features): said by each process, the program and its child.
        found = [l for l in lines if l.startswith("arenashim: revocation: strict ")]
        expect(len(found) == 2, "verbose=%d: %d lines for the revocation paths, expected one per process (2)" % (
            level, len(found)))
        hooked = {}
        for l in lines:
            m = re.fullmatch(r"arenashim: marker '(\w+)' hooked at (0x[0-9a-f]+) in (/.*)", l)
            if m:
                hooked[m.group(1)] = (int(m.group(2), 16), m.group(3))
        if level == 1:
            expect(not hooked, "verbose=1 says where markers were hooked: %s" % sorted(hooked))
            return
        expect(sorted(hooked) == sorted(VERBOSE_MARKERS),
               "verbose=2: 'hooked at' lines for %s, expected %s" % (sorted(hooked), sorted(VERBOSE_MARKERS)))
        for spec, (address, path) in hooked.items():
            expect(os.path.basename(path) == "verbose_lines", "marker %s hooked in %s" % (spec, path))
        # The address is the function's entry: the frame where make_text's region began.
        entry = int(re.match(r"#0 (0x[0-9a-f]+) ", began[0]).group(1), 16)
        expect(hooked["make_text"][0] == entry, "make_text hooked at %#x, its region began at %#x" %
               (hooked["make_text"][0], entry))
    return check


def issue14_verbose_cases(B):
    c = []
    for level in (0, 1, 2):
        c.append(Case("verbose/level-%d-lines" % level, [B + "verbose_lines"],
                      env={"ARENASHIM_REGIONS": ",".join(VERBOSE_MARKERS)},
                      options="chunk_size=64K,on_dangling=recover,verbose=%d" % level, same_as_plain=True,
                      stdout="text: made in region 7\ndone\n", check=verbose_check(level)))
    return c


# --- the log file of log_path, found by tests/peer (Python's test_subprocess) -------------------

def log_file_case(how):
    """log_path=DIR/log.%p in a world-writable DIR, as a test harness sets it up.

    exec-as-nobody: setpriv changes user and execs `id -u` (the same process id): the program
      runs as nobody, and its exit summary (stats=1) is in a log file nobody owns.  The log was
      created by the process root started, so the program could not open it and stopped with
      exit status 2;
    fork-exec-as-nobody: Python's subprocess with user= forks, the child changes user and execs
      counted: the same, through the file the forked child made (test_subprocess's test_user);
    no-descriptor: a process with nothing to say holds no descriptor to its log, and makes no
      file (a program that lists its descriptors, test_subprocess's test_pass_fds_redirected,
      saw it).
    """
    def run_case(ctx, case_dir, state):
        expect(os.geteuid() == 0, "needs root, to change user")
        expect(shutil.which("setpriv"), "needs setpriv (util-linux)")
        logs = Path(tempfile.mkdtemp(prefix="arenashim-logs.", dir="/tmp"))
        try:
            os.chmod(logs, 0o1777)
            env = base_env()
            env["LD_PRELOAD"] = str(ctx.build.lib.resolve())
            env["ARENASHIM_OPTIONS"] = "log_path=%s/log.%%p,stats=1" % logs
            as_nobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
            if how == "exec-as-nobody":
                argv, expected = as_nobody + ["id", "-u"], "%d\n" % NOBODY
            elif how == "fork-exec-as-nobody":
                argv = [PYTHON, "-c", "import subprocess, sys; r = subprocess.run(sys.argv[1:], user=%d); "
                        "print('child exit status', r.returncode)" % NOBODY, str(ctx.build.bin / "counted"), "2", "2", "0"]
                expected = None
            else:
                argv = [PYTHON, "-c", "import os; print(sorted(os.readlink('/proc/self/fd/%s' % f) "
                        "for f in os.listdir('/proc/self/fd') if os.path.exists('/proc/self/fd/%s' % f)))"]
                env["ARENASHIM_OPTIONS"] = "log_path=%s/log.%%p" % logs
                expected = None
            run = state["run"] = run_process(argv, env, 30 * ctx.timeout_scale, cwd=str(case_dir))
            expect(run.rc == 0, "exit status %s: %s" % (describe_status(run.rc), run.err[-300:]))
            files = sorted(logs.iterdir())
            if how == "no-descriptor":
                expect(str(logs) not in run.out, "the process holds its log open: %s" % run.out.strip())
                expect(files == [], "a process with nothing to say made %s" % [f.name for f in files])
                return
            if expected is not None:
                expect(run.out == expected, "stdout %r, expected %r" % (run.out, expected))
            else:
                expect("OK counted" in run.out and "child exit status 0" in run.out,
                       "the child did not run as nobody with the preload: %r %r" % (run.out[-200:], run.err[-300:]))
            by_nobody = [f for f in files if f.stat().st_uid == NOBODY]
            expect(any("arenashim: statistics" in f.read_text() for f in by_nobody),
                   "no log of nobody's holds the summary (%s)" % [(f.name, f.stat().st_uid) for f in files])
        finally:
            shutil.rmtree(logs, ignore_errors=True)
    return run_case


def closed_standard_descriptors_cases(B):
    # A program started with stdin and stderr closed finds them closed: libunwind's pipe (opened
    # at start-up, kept for ever) took descriptor 0 (Python's test_cmd_line, test_posix).
    script = ("import os; print(*['open' if os.path.exists('/proc/self/fd/%d' % fd) else 'closed' "
              "for fd in (0, 2)])")
    return [Case("files/closed-standard-descriptors", ["sh", "-c", 'exec <&- 2>&-; exec %s -c "%s"' % (PYTHON, script)],
                 stdout="closed closed\n", same_as_plain=True)]


def issue14_log_file_cases(B):
    return [FuncCase("files/log_path-" + how, log_file_case(how), programs=["counted"])
            for how in ("exec-as-nobody", "fork-exec-as-nobody", "no-descriptor")]


def recovered_runs_check(run, case_dir):
    """Out of kernel mappings, recover mode made runs of dead pages accessible (it died there
    before), left the pages of regions it could not protect as they were (they were zeroed),
    said so once in the log, and every access it counted was reported."""
    s = run.stats
    expect(s["recovered_runs"] > 0, "recovered_runs %d: the limit was never reached" % s["recovered_runs"])
    expect(s["ends_unprotected"] > 0, "ends_unprotected %d: no region ended at the limit" % s["ends_unprotected"])
    expect(s["dangling_accesses"] >= 100, "only %d dangling accesses" % s["dangling_accesses"])
    log = (case_dir / "log").read_text(errors="replace")
    # One from recover mode; the second part may also be refused new chunk memory (a warning of
    # its own, which names the limit too).
    warnings = [l for l in log.splitlines() if l.startswith("arenashim: warning:")]
    expect(len([w for w in warnings if "on_dangling=recover" in w]) == 1 and
           all("vm.max_map_count" in w for w in warnings), "warnings: %r" % warnings)
    reports = len(re.findall(r"^==\d+==ERROR: arenashim: use-after-region-free", log, re.M))
    expect(reports == s["dangling_accesses"], "%d reports, %d dangling accesses counted" % (
        reports, s["dangling_accesses"]))


def first_free_thread_cases(B):
    # A hang is the failure: the timeout ends it (the run takes well under a second).
    return [Case("threads/first-heap-call-is-free", [B + "first_free_thread", "10"], timeout=30,
                 stdout="OK first_free_thread 10\n", stderr_empty=True)]


def recover_out_of_mappings_cases(B):
    # 2000 regions with about 100 mappings left: after some 50 reads the limit is reached.
    return [Case("limits/recover-out-of-mappings", [B + "recover_map_limit", "100", "2000"],
                 options="on_dangling=recover,log_path={tmp}/log", stats=True,
                 stdout="OK recover_map_limit 1000/1000 2000/2000\n", same_as_plain=True,
                 check=recovered_runs_check)]


def issue14_cases(B):
    """The cases of issue 14, block by block."""
    c = []
    c += issue14_syscall_guard_cases(B)
    c += issue14_reserve_cases(B)
    c += issue14_launcher_cases(B)
    c += issue14_dlopen_exclude_cases(B)
    c += issue14_fork_cases(B)
    c += syscall_failure_cases(B)
    c += issue14_verbose_cases(B)
    c += issue14_log_file_cases(B)
    c += recover_out_of_mappings_cases(B)
    c += first_free_thread_cases(B)
    c += closed_standard_descriptors_cases(B)
    return c


# --- main -------------------------------------------------------------------------------------------

def tail(text, n):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[:n] if len(lines) <= n else lines[:n - 1] + ["... (%d more lines)" % (len(lines) - n + 1)]


def run_case(case, ctx, lock, results):
    case_dir = Path(tempfile.mkdtemp(prefix=re.sub(r"[^\w.-]", "_", case.name) + ".", dir=ctx.tmp_root))
    state = {"run": None}
    start = time.monotonic()
    try:
        case.execute(ctx, case_dir, state)
        ok, reason = True, None
    except TimedOut as e:
        ok, reason = False, str(e)
        state["run"] = e.run
    except Failure as e:
        ok, reason = False, str(e)
    except Exception as e:  # a bug in the runner or a case: report it, don't stop the others
        ok, reason = False, "%s: %s" % (type(e).__name__, e)
    elapsed = time.monotonic() - start
    with lock:
        if ok:
            print("PASS %s" % case.name, flush=True)
        else:
            print("FAIL %s: %s" % (case.name, reason), flush=True)
            for line in last_output(state["run"]):
                print("    | " + line[:200], flush=True)
        results.append((case.name, ok, elapsed))


def last_output(run):
    """A few lines of what the failing process said."""
    lines = []
    if run is not None:
        lines += ["stdout: " + l for l in tail(run.out, 3)]
        lines += ["stderr: " + l for l in tail(run.err, 5)]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                        help="run only the cases whose name contains SUBSTRING (repeatable)")
    parser.add_argument("-j", type=int, default=2, metavar="N", help="cases run in parallel (default 2)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary files")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every timeout")
    args = parser.parse_args()

    all_cases = cases()
    names = [c.name for c in all_cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        print("duplicate case names: %s" % ", ".join(sorted(dupes)))
        return 1
    selected = [c for c in all_cases if not args.k or any(k in c.name for k in args.k)]
    if args.list:
        for c in selected:
            print(c.name)
        return 0

    build_dir = Path(args.build)
    if not build_dir.is_absolute():
        build_dir = (Path.cwd() / build_dir) if (Path.cwd() / build_dir).exists() else ROOT / build_dir
    build = Build(build_dir.resolve())
    if not build.lib.exists():
        print("FAIL setup: %s does not exist (build it: meson setup %s && ninja -C %s)" %
              (build.lib, args.build, args.build))
        print("0 passed, 1 failed")
        return 1

    tmp_root = Path(tempfile.mkdtemp(prefix="arenashim-integration."))
    ctx = Context(build, tmp_root, args.timeout_scale)
    lock = threading.Lock()
    results = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.j)) as pool:
            futures = [pool.submit(run_case, case, ctx, lock, results) for case in selected]
            for f in futures:
                f.result()
    finally:
        if not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)
        else:
            print("temporary files kept in %s" % tmp_root)

    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    slow = sorted(results, key=lambda r: -r[2])[:3]
    if os.environ.get("ARENASHIM_TEST_TIMES"):
        for name, _, t in slow:
            print("slowest: %s %.1fs" % (name, t))
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
