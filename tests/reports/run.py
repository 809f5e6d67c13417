#!/usr/bin/python3
"""Tests of arenashim's reports (issue 5): backtraces, recover mode, the exit summary.

Usage:
    /usr/bin/python3 tests/reports/run.py --build build [-k SUBSTRING] [--list]

The unaware C programs of tests/reports/programs/ (gcc -O2 -g -Wall -pthread, no arenashim.h:
the programs know nothing of arenashim; their helpers are static functions, named in reports
through .symtab) are built by meson (tests/reports/meson.build) into BUILD/tests/reports/ with
the rest of the project, `ninja -C BUILD`; the runner compiles nothing.  It runs each case
with LD_PRELOAD=BUILD/preload/libarenashim.so and prints `PASS name` or `FAIL name: reason`
(followed by a few lines of the captured output), and finally `N passed, N failed`.  It exits
1 when a case failed; a case whose program is not in the build folder fails, saying to run
`ninja -C BUILD`.

A case is a function decorated with @case; it gets a Context (programs, a fresh temporary
directory, helpers to run a program with and without the preload) and raises Failure when
something does not hold.  The report parser below (parse_reports) checks the grammar of the
dangling-access report block by block, so that every case that reads reports also checks
their form:

    ==PID==ERROR: arenashim: use-after-region-free on address 0xADDR (READ|WRITE of region #N, marker 'SPEC')
      access backtrace:
        #i 0xPC module+0xOFF (symbol+0xOFF)          (module and symbol when known)
      the address is N bytes into the memory of region #N [0x.., 0x..) of thread TN
      it is K bytes into (or K bytes before (in the header of)) an object of S bytes at 0x...,
      allocated at:   + frames
        | allocation site: not sampled (...) | allocation site: not recorded (...)
      region began at:                                 + frames
      region ended at:                                 + frames
    ==PID==ABORTING ... | ==PID==CONTINUING ...

The statistics over time and the pictures (issue 15) have cases of their own: series_long_run
(the "timeseries" of stats_json on a 2 s run of series.c: bounded, thinned, monotonic, ending at
the totals), folded_matches_json (`report --folded` against the JSON's sites),
html_report_in_chromium (`report --html`, opened in headless Chromium, Debian's /usr/bin/chromium:
rendered without console or script errors, every chart and table there; the screenshot is kept
as BUILD/test-artifacts/reports/report.png) and pictures_bad_input.

The lines from "the address is" to "region ended at" are printed whenever the address lies in
a known dead region (preload/report/dangling.c), which is whenever the first line names one
(region #N > 0, marker other than '(unknown)'): then each is required, and the address line's
region number must be the first line's.  A report of an address in no known region (region #0,
marker '(unknown)') has none of them: the end line follows the access backtrace.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402  (tests/lib: what the program suites share)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LAUNCHER = ROOT / "scripts" / "arenashim"
CASE_TIMEOUT = 20  # seconds, per process

FIRST_LINE_RE = re.compile(
    r"==(\d+)==ERROR: arenashim: use-after-region-free on address (0x[0-9a-f]+) "
    r"\((READ|WRITE) of region #(\d+), marker '(.*)'\)")
FRAME_RE = re.compile(r"    #(\d+) (0x[0-9a-f]+)(?: (\S+)\+(0x[0-9a-f]+))?(?: \((\S+)\+(0x[0-9a-f]+)\))?")
ADDRESS_LINE_RE = re.compile(
    r"  the address is (\d+) bytes into the memory of region #(\d+) \[(0x[0-9a-f]+), (0x[0-9a-f]+)\) "
    r"of thread T(\d+)")
OBJECT_LINE_RE = re.compile(
    r"  it is (\d+) bytes (into|before \(in the header of\)) an object of (\d+) bytes at (0x[0-9a-f]+), "
    r"allocated at:")
NOT_SAMPLED = "  allocation site: not sampled (trace_allocs=N traces one in N)"
NOT_RECORDED = "  allocation site: not recorded (run with trace_allocs=1)"
END_RE = re.compile(r"==(\d+)==(ABORTING|CONTINUING)( .*)?")
SITE_LINE_RE = re.compile(r"    (\d+) of (\d+) traced objects escaped, marker '(.*)', allocated at:")
SUMMARY_FRAME_RE = re.compile(r"      (#\d+ .*)")
FREE_REPORT_RE = re.compile(
    r"arenashim: free\(\) of (0x[0-9a-f]+) after its region #(\d+) \(marker '(.*)'\) ended: "
    r"the object escaped its region(; allocated at:| \(reported once; .*\))")


Failure = harness.Failure
expect = harness.expect


def expect_equal(actual, expected, what):
    if actual != expected:
        raise Failure("%s: expected %r, got %r" % (what, expected, actual))


# --- reports ---------------------------------------------------------------------------------

class Report:
    """One dangling-access report block, parsed."""

    def __init__(self):
        self.lines = []
        self.pid = None
        self.address = None
        self.access = None
        self.region = None
        self.marker = None
        self.access_frames = []
        self.address_line = None  # the "the address is ..." match (always, for a known region)
        self.thread = None  # TN of "... of thread TN"
        self.object = None  # (offset, size, address) when the allocation site is known
        self.alloc_frames = []
        self.alloc_note = None  # the "allocation site: ..." line when it is not known
        self.begin_frames = []
        self.end_frames = []
        self.ending = None  # ABORTING or CONTINUING
        self.end_pid = None


def frame_symbols(frames):
    return [f[2] for f in frames]


def names(frames, function):
    """Whether a frame's symbol is FUNCTION (or a compiler clone of it, FUNCTION.xxx)."""
    return any(s and (s == function or s.startswith(function + ".")) for s in frame_symbols(frames))


def symbol_at(frames, index):
    return frames[index][2] if index < len(frames) else None


def parse_frames(lines, i, what):
    """Frame lines from lines[i]; returns ([(index, pc, symbol, module)], next i)."""
    frames = []
    while i < len(lines) and lines[i].startswith("    #"):
        m = FRAME_RE.fullmatch(lines[i])
        expect(m, "%s: malformed frame line %r" % (what, lines[i]))
        expect(int(m.group(1)) == len(frames),
               "%s: frame numbers not consecutive from #0 at %r" % (what, lines[i]))
        frames.append((int(m.group(1)), int(m.group(2), 16), m.group(5), m.group(3)))
        i += 1
    expect(frames, "%s: no frames (next line %r)" % (what, lines[i] if i < len(lines) else "<end>"))
    return frames, i


def parse_one_report(lines, i):
    """Parses the report block starting at lines[i] (its ERROR line); returns (Report, next i)."""
    r = Report()
    start = i
    m = FIRST_LINE_RE.fullmatch(lines[i])
    expect(m, "report first line does not match the brief's form: %r" % lines[i])
    r.pid, r.address, r.access = int(m.group(1)), int(m.group(2), 16), m.group(3)
    r.region, r.marker = int(m.group(4)), m.group(5)
    i += 1

    def need(text):
        nonlocal i
        expect(i < len(lines), "report ends early: expected %r" % text)
        expect(lines[i] == text, "report: expected %r, got %r" % (text, lines[i]))
        i += 1

    need("  access backtrace:")
    r.access_frames, i = parse_frames(lines, i, "access backtrace")
    expect(i < len(lines), "report ends after the access backtrace")
    known_region = not (r.region == 0 and r.marker == "(unknown)")
    if not known_region:
        # dangling.c: an address in no known region; nothing but the end line follows.
        m = END_RE.fullmatch(lines[i])
        expect(m, "report of an address in no known region: expected the ==PID==ABORTING/CONTINUING "
               "line after the access backtrace, got %r" % lines[i])
        r.end_pid, r.ending = int(m.group(1)), m.group(2)
        expect(r.end_pid == r.pid, "report: last line's pid %d differs from the first line's %d" % (r.end_pid, r.pid))
        i += 1
        r.lines = lines[start:i]
        return r, i
    # A known region: dangling.c always prints where in it the address lies, and whose it was.
    m = ADDRESS_LINE_RE.fullmatch(lines[i])
    expect(m, "report of region #%d: expected 'the address is N bytes into the memory of region #N "
           "[0x.., 0x..) of thread TN' after the access backtrace, got %r" % (r.region, lines[i]))
    r.address_line = m
    r.thread = int(m.group(5))
    expect_equal(int(m.group(2)), r.region, "region number of the address line")
    start_address, end_address = int(m.group(3), 16), int(m.group(4), 16)
    expect(start_address <= r.address < end_address,
           "the address %#x is not in the range [%#x, %#x) of the address line" % (r.address, start_address, end_address))
    expect_equal(int(m.group(1)), r.address - start_address, "offset of the address line")
    i += 1
    expect(i < len(lines), "report ends before the allocation site")
    m = OBJECT_LINE_RE.fullmatch(lines[i])
    if m:
        # (offset from the object's start, negative in its header; size; address)
        offset = int(m.group(1)) if m.group(2) == "into" else -int(m.group(1))
        r.object = (offset, int(m.group(3)), int(m.group(4), 16))
        expect(r.object[2] + offset == r.address, "object line: %#x %+d is not the address %#x" % (
            r.object[2], offset, r.address))
        i += 1
        r.alloc_frames, i = parse_frames(lines, i, "allocation backtrace")
    elif lines[i] in (NOT_SAMPLED, NOT_RECORDED):
        r.alloc_note = lines[i]
        i += 1
    else:
        raise Failure("report: expected the object line or 'allocation site: ...', got %r" % lines[i])
    need("  region began at:")
    r.begin_frames, i = parse_frames(lines, i, "region began at")
    need("  region ended at:")
    r.end_frames, i = parse_frames(lines, i, "region ended at")
    expect(i < len(lines), "report has no ==PID==ABORTING/CONTINUING line")
    m = END_RE.fullmatch(lines[i])
    expect(m, "report: expected its last line ==PID==ABORTING/CONTINUING, got %r" % lines[i])
    r.end_pid, r.ending = int(m.group(1)), m.group(2)
    expect(r.end_pid == r.pid, "report: last line's pid %d differs from the first line's %d" % (r.end_pid, r.pid))
    i += 1
    r.lines = lines[start:i]
    return r, i


def parse_reports(text):
    """All report blocks of TEXT, checked; returns (reports, the other lines)."""
    lines = text.splitlines()
    reports, other = [], []
    i = 0
    while i < len(lines):
        if "==ERROR: arenashim:" in lines[i]:
            expect(lines[i].startswith("=="), "report first line does not start the line: %r" % lines[i])
            report, i = parse_one_report(lines, i)
            reports.append(report)
        else:
            expect(not re.match(r"==\d+==(ABORTING|CONTINUING)", lines[i]),
                   "a report end line outside any report: %r" % lines[i])
            other.append(lines[i])
            i += 1
    return reports, other


def summary_sites(text):
    """The text summary's escape sites: [(escapes, allocations, marker, [frame text])]."""
    sites = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = SITE_LINE_RE.fullmatch(line)
        if m:
            frames = []
            for follow in lines[i + 1:]:
                fm = SUMMARY_FRAME_RE.fullmatch(follow)
                if not fm:
                    break
                frames.append(fm.group(1))
            sites.append((int(m.group(1)), int(m.group(2)), m.group(3), frames))
    return sites


def escaped_verdict(objects, sites, regions):
    """The traced verdict, as a regex: "K objects from M sites escaped (in N regions)" (singular
    forms accepted: "1 object from 1 site")."""
    return r"%d objects? from %d sites? escaped \(in %d regions?\)" % (objects, sites, regions)


def clean_verdict_re(regions):
    return r"no escapes seen in %d regions?" % regions


def expect_verdict(actual, pattern, what="verdict"):
    expect(isinstance(actual, str) and re.fullmatch(pattern, actual),
           "%s: %r does not match %r" % (what, actual, pattern))


def expect_verdict_lines(text, expected):
    """EXPECTED: [(spec, verdict regex)] in order; the summary's verdict lines must be exactly those."""
    lines = verdict_lines(text)
    expect(len(lines) == len(expected), "verdict lines: expected %d, got %r" % (len(expected), lines))
    for line, (spec, pattern) in zip(lines, expected):
        expect_verdict(line, r"  verdict '%s': %s" % (re.escape(spec), pattern), "verdict line")


def verdict_lines(text):
    return [line for line in text.splitlines() if line.startswith("  verdict '")]


def site_block_lines(text):
    """The lines of the summary's "escapes by allocation site" block, header included."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  escapes by allocation site"):
            block = [line]
            for follow in lines[i + 1:]:
                if not follow.startswith("    "):
                    break
                block.append(follow)
            return block
    return []


def frame_text_symbol(frame_text):
    m = re.search(r"\((\S+)\+0x[0-9a-f]+\)$", frame_text)
    return m.group(1) if m else None


def frame_text_names(frames, function):
    for f in frames:
        s = frame_text_symbol(f)
        if s and (s == function or s.startswith(function + ".")):
            return True
    return False


# --- building and running ----------------------------------------------------------------------

class Run(harness.Run):
    def describe(self):
        tail = self.err.splitlines()[-12:]
        return "$ %s\nexit %s\nstdout: %r\nstderr (last lines):\n%s" % (
            " ".join(self.argv), self.rc, self.stdout[-300:], "\n".join("  " + t for t in tail))


base_env = harness.clean_env


def run_process(argv, env, timeout=CASE_TIMEOUT):
    rc, stdout, stderr, elapsed, pid = harness.spawn(argv, env, timeout)
    return Run([str(a) for a in argv], rc, stdout, stderr, elapsed, pid)


class Context:
    def __init__(self, build, lib, tmp):
        self.build = build
        self.bin = harness.programs_dir(build, "reports")
        self.lib = lib
        self.tmp = tmp
        self.runs = []  # every run of the case, for the failure output
        self._plain = {}

    def program(self, name):
        path = self.bin / name
        expect(path.exists(), harness.not_built(path, self.build))
        return str(path)

    def plain(self, name, *args):
        """The program without arenashim (cached per case)."""
        key = (name, args)
        if key not in self._plain:
            run = run_process([self.program(name), *args], base_env())
            self.runs.append(run)
            expect(run.rc == 0, "the plain run of %s failed (exit %s): %s" % (name, run.rc, run.err[-300:]))
            self._plain[key] = run
        return self._plain[key]

    def shim(self, name, *args, regions, options="", timeout=CASE_TIMEOUT):
        env = base_env()
        env["LD_PRELOAD"] = str(self.lib)
        env["ARENASHIM_REGIONS"] = regions
        if options:
            env["ARENASHIM_OPTIONS"] = options
        run = run_process([self.program(name), *args], env, timeout)
        self.runs.append(run)
        return run

    def path(self, name):
        return str(self.tmp / name)


def load_json(path):
    expect(os.path.exists(path), "stats_json file %s was not written" % path)
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise Failure("stats_json file %s is not JSON: %s" % (path, e))


def marker_stats(stats, spec):
    for m in stats.get("markers", []):
        if m.get("spec") == spec:
            return m
    raise Failure("stats_json has no marker %r: %r" % (spec, stats.get("markers")))


def verdict_of(stats, spec):
    for v in stats.get("verdicts", []):
        if v.get("spec") == spec:
            return v.get("verdict")
    raise Failure("stats_json has no verdict for %r: %r" % (spec, stats.get("verdicts")))


def expect_rc(run, rc, what=""):
    expect(run.rc == rc, "%sexit status %s, expected %s%s" % (
        what, run.rc, rc, " (death by SIGSEGV)" if rc == -11 else ""))


def expect_same_stdout(run, plain):
    expect(run.stdout == plain.stdout, "stdout differs from the plain run:\n  plain: %r\n  shim:  %r" % (
        plain.stdout[:400], run.stdout[:400]))


def only_report(run, ending):
    reports, _ = parse_reports(run.err)
    expect(len(reports) == 1, "expected exactly one report, got %d" % len(reports))
    r = reports[0]
    expect(r.ending == ending, "report ends with %s, expected %s" % (r.ending, ending))
    expect(r.pid == run.pid, "report pid %d is not the process's %d" % (r.pid, run.pid))
    return r


# --- cases -------------------------------------------------------------------------------------

CASES = []


def case(function):
    CASES.append(function)
    return function


LEAK = dict(regions="handle_request")
LEAK_VERDICT_TRACED = escaped_verdict(1, 1, 10)


@case
def leak_abort_report(ctx):
    """Abort mode, trace_allocs=1: the full report of the one escaped object, then SIGSEGV."""
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1")
    expect_rc(run, -11)
    lines = run.err.splitlines()
    expect(lines, "nothing on stderr")
    m = FIRST_LINE_RE.fullmatch(lines[0])
    expect(m, "stderr's first line does not match the brief's regex: %r" % lines[0])
    expect_equal(m.group(3), "READ", "access kind")
    expect_equal(m.group(5), "handle_request", "marker spec in the first line")
    r = only_report(run, "ABORTING")
    expect(r.lines == lines[:len(r.lines)], "the report is not the start of stderr")
    expect(symbol_at(r.access_frames, 0) == "print_last_name",
           "access backtrace #0 is %r, not print_last_name: %r" % (symbol_at(r.access_frames, 0),
                                                                    frame_symbols(r.access_frames)))
    expect(names(r.access_frames, "main"), "access backtrace does not reach main: %r" % frame_symbols(r.access_frames))
    expect(not names(r.access_frames, "make_name"), "access backtrace names make_name")
    expect(r.object is not None, "the report does not name the object (trace_allocs=1): %r" % r.alloc_note)
    offset, size, address = r.object
    expect_equal((offset, size), (0, 32), "(offset into the object, object size)")
    expect_equal(address, r.address, "object address vs the faulting address")
    expect(symbol_at(r.alloc_frames, 0) == "make_name",
           "allocation backtrace #0 is not make_name: %r" % frame_symbols(r.alloc_frames))
    expect(symbol_at(r.alloc_frames, 1) == "handle_request",
           "allocation backtrace #1 is not handle_request: %r" % frame_symbols(r.alloc_frames))
    expect(symbol_at(r.begin_frames, 0) == "handle_request",
           "'region began at' #0 is not handle_request: %r" % frame_symbols(r.begin_frames))
    expect(names(r.end_frames, "main"), "'region ended at' does not name main: %r" % frame_symbols(r.end_frames))
    for f in r.access_frames + r.alloc_frames:
        if f[2] in ("print_last_name", "make_name", "handle_request", "main"):
            expect(f[3] == "leak", "frame of %s names module %r, not leak" % (f[2], f[3]))
    expect(r.address_line is not None, "the report has no 'the address is ... of thread TN' line")
    expect_equal(int(r.address_line.group(2)), r.region, "region number of the address line")
    expect_equal(r.thread, 0, "the thread of the address line (the main thread, the program's only one, is T0)")


@case
def leak_recover_output(ctx):
    """Recover mode: reported once, then the program's output is byte-identical to a plain run."""
    plain = ctx.plain("leak")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover")
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    r = only_report(run, "CONTINUING")
    expect(symbol_at(r.access_frames, 0) == "print_last_name", "access backtrace: %r" % frame_symbols(r.access_frames))
    expect(names(r.alloc_frames, "make_name"), "allocation backtrace: %r" % frame_symbols(r.alloc_frames))
    _, other = parse_reports(run.err)
    expect(not any(line.strip() for line in other), "stderr holds more than the report: %r" % other[:5])


@case
def leak_recover_summary(ctx):
    """stats=1: exactly one escape site (make_name, 1 of 10), the verdict '1 object(s) from 1 site(s)'."""
    plain = ctx.plain("leak")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats=1")
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    sites = summary_sites(run.err)
    expect(len(sites) == 1, "expected one escape site in the summary, got %d: %r" % (len(sites), sites))
    escapes, allocations, marker, frames = sites[0]
    expect_equal((escapes, allocations, marker), (1, 10, "handle_request"), "(escapes, traced allocations, marker)")
    expect(frames and frame_text_symbol(frames[0]) == "make_name", "site frame #0 is not make_name: %r" % frames[:3])
    expect(len(frames) > 1 and frame_text_symbol(frames[1]) == "handle_request",
           "site frame #1 is not handle_request: %r" % frames[:3])
    expect_verdict_lines(run.err, [("handle_request", LEAK_VERDICT_TRACED)])


@case
def leak_recover_json(ctx):
    """stats_json: one escape site, markers[0].escapes == 1 though the object is touched 40 times and freed."""
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats_json=" + path)
    expect_rc(run, 0)
    stats = load_json(path)
    sites = stats.get("escape_sites")
    expect(isinstance(sites, list) and len(sites) == 1, "escape_sites: expected 1 entry, got %r" % sites)
    site = sites[0]
    expect_equal((site.get("escapes"), site.get("allocations"), site.get("marker")), (1, 10, "handle_request"),
                 "escape_sites[0] (escapes, allocations, marker)")
    expect(frame_text_symbol(site["frames"][0]) == "make_name", "escape_sites[0].frames: %r" % site["frames"][:3])
    expect(frame_text_names(site["frames"], "handle_request"), "escape_sites[0].frames: %r" % site["frames"][:3])
    markers = stats.get("markers", [])
    expect(len(markers) == 1, "expected one marker, got %r" % markers)
    expect_equal(markers[0].get("spec"), "handle_request", "markers[0].spec")
    expect_equal(markers[0].get("regions"), 10, "markers[0].regions")
    expect_equal(markers[0].get("escapes"), 1, "markers[0].escapes (one object, touched many times)")
    expect_equal(stats.get("dangling_accesses"), 1, "dangling_accesses")
    expect_verdict(verdict_of(stats, "handle_request"), LEAK_VERDICT_TRACED)


@case
def leak_free_after_access_counted(ctx):
    """The escaped object, touched and then freed: one escape, and its free counted in escaped_frees."""
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats_json=" + path)
    expect_rc(run, 0)
    stats = load_json(path)
    m = marker_stats(stats, "handle_request")
    expect_equal(m.get("escapes"), 1, "markers[0].escapes")
    expect_equal(stats.get("escaped_frees"), 1,
                 "escaped_frees (main frees the escaped object once after its region ended; the summary "
                 "calls this count 'frees ... after region end')")
    expect_equal(m.get("escaped_frees"), 1, "markers[0].escaped_frees")


@case
def clean_verdict(ctx):
    """No escapes, two markers, trace_allocs=1: 'no escapes seen in N regions' with each marker's N."""
    plain = ctx.plain("clean", "25", "7")
    path = ctx.path("stats.json")
    run = ctx.shim("clean", "25", "7", regions="parse_line,checksum",
                   options="trace_allocs=1,stats=1,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    expect("ERROR" not in run.err, "a report in a program without escapes")
    expect_verdict_lines(run.err, [("parse_line", clean_verdict_re(25)), ("checksum", clean_verdict_re(7))])
    expect(not site_block_lines(run.err), "an escape-site block: %r" % site_block_lines(run.err))
    stats = load_json(path)
    expect_equal(stats.get("escape_sites"), [], "escape_sites")
    for spec, n in (("parse_line", 25), ("checksum", 7)):
        m = marker_stats(stats, spec)
        expect_equal((m.get("regions"), m.get("escapes")), (n, 0), "%s (regions, escapes)" % spec)
        expect_verdict(verdict_of(stats, spec), clean_verdict_re(n), "%s verdict" % spec)
    expect_equal(stats.get("dangling_accesses"), 0, "dangling_accesses")
    expect_equal(stats.get("escaped_frees"), 0, "escaped_frees")


@case
def clean_verdict_untraced(ctx):
    """No escapes without trace_allocs: the same clean verdict."""
    plain = ctx.plain("clean", "13", "3")
    run = ctx.shim("clean", "13", "3", regions="parse_line,checksum", options="stats=1")
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    expect_verdict_lines(run.err, [("parse_line", clean_verdict_re(13)), ("checksum", clean_verdict_re(3))])


SAMPLED = dict(regions="handle_batch")
SAMPLED_TOTAL = 64 * 150  # BATCHES * ITEMS in sampled.c


@case
def sampled_one_in_64(ctx):
    """trace_allocs=64: about 1/64 of the site's allocations traced; every escape counted; reports say 'not sampled'."""
    plain = ctx.plain("sampled")
    path = ctx.path("stats.json")
    run = ctx.shim("sampled", **SAMPLED, options="trace_allocs=64,on_dangling=recover,stats=1,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    reports, _ = parse_reports(run.err)
    expect(len(reports) == 64, "expected 64 reports (one per batch), got %d" % len(reports))
    traced = [r for r in reports if r.object is not None]
    untraced = [r for r in reports if r.object is None]
    for r in untraced:
        expect(r.alloc_note == NOT_SAMPLED, "untraced object's report says %r, not %r" % (r.alloc_note, NOT_SAMPLED))
    for r in traced:
        expect(symbol_at(r.alloc_frames, 0) == "make_item" and names(r.alloc_frames, "handle_batch"),
               "sampled object's allocation backtrace: %r" % frame_symbols(r.alloc_frames))
        expect(r.object[2] == r.address and r.object[1] == 48, "object line %r" % (r.object,))
    # Object r of batch r is read: with one in 64 traced, exactly one of the 64 reads is a sampled object.
    expect(len(traced) >= 1, "no report names a sampled object (expected about 1 of 64)")
    expect(len(untraced) >= 56, "only %d of 64 reports say 'not sampled'" % len(untraced))
    stats = load_json(path)
    m = marker_stats(stats, "handle_batch")
    expect_equal(m.get("escapes"), SAMPLED_TOTAL, "markers[0].escapes (sampled and unsampled escapes)")
    expect_equal(m.get("objects"), SAMPLED_TOTAL, "markers[0].objects")
    sites = stats.get("escape_sites", [])
    expect(len(sites) == 1, "expected one escape site, got %r" % [s.get("frames", [])[:1] for s in sites])
    site = sites[0]
    expected = SAMPLED_TOTAL // 64
    expect(abs(site.get("allocations", -1) - expected) <= 2,
           "escape_sites[0].allocations = %r, expected about %d (1/64 of %d)" % (site.get("allocations"), expected,
                                                                                 SAMPLED_TOTAL))
    expect_equal(site.get("escapes"), site.get("allocations"), "escape_sites[0].escapes (every traced object escaped)")
    expect(frame_text_symbol(site["frames"][0]) == "make_item", "escape_sites[0].frames: %r" % site["frames"][:2])
    expect_verdict(verdict_of(stats, "handle_batch"), escaped_verdict(SAMPLED_TOTAL, 1, 64))
    expect_equal(stats.get("dangling_accesses"), 64, "dangling_accesses")


@case
def sampled_every_one(ctx):
    """trace_allocs=1 on the same program: every allocation traced, every report names make_item."""
    path = ctx.path("stats.json")
    run = ctx.shim("sampled", **SAMPLED, options="trace_allocs=1,on_dangling=recover,stats_json=" + path)
    expect_rc(run, 0)
    reports, _ = parse_reports(run.err)
    expect(len(reports) == 64, "expected 64 reports, got %d" % len(reports))
    for r in reports:
        expect(r.object is not None and symbol_at(r.alloc_frames, 0) == "make_item",
               "a report without the allocation site under trace_allocs=1: %r" % (r.alloc_note,))
    stats = load_json(path)
    sites = stats.get("escape_sites", [])
    expect(len(sites) == 1, "expected one escape site, got %d" % len(sites))
    expect_equal((sites[0].get("escapes"), sites[0].get("allocations")), (SAMPLED_TOTAL, SAMPLED_TOTAL),
                 "escape_sites[0] (escapes, allocations)")


@case
def sampled_escape_not_sampled(ctx):
    """trace_allocs=64, one escaped object that was not sampled: no site, yet counted, report says so."""
    plain = ctx.plain("leak")
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=64,on_dangling=recover,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    r = only_report(run, "CONTINUING")
    expect(r.object is None, "the object (allocation 16 of 20) is named as if sampled")
    expect_equal(r.alloc_note, NOT_SAMPLED, "the report's allocation-site line")
    stats = load_json(path)
    expect_equal(stats.get("escape_sites"), [], "escape_sites (nothing sampled)")
    expect_equal(marker_stats(stats, "handle_request").get("escapes"), 1, "markers[0].escapes")


@case
def sampled_escape_not_sampled_verdict(ctx):
    """trace_allocs=64, one unsampled escape: the verdict counts it and does not claim it came from 0 sites."""
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=64,on_dangling=recover,stats=1,stats_json=" + path)
    expect_rc(run, 0)
    verdict = verdict_of(load_json(path), "handle_request")
    expect(verdict.startswith("1 "), "verdict %r does not count the escape" % verdict)
    expect("from 0 sites" not in verdict,
           "verdict %r: one object escaped yet the verdict says it came from 0 sites (its site was not "
           "sampled; say so, e.g. suggest trace_allocs=1, as the untraced verdict does)" % verdict)


@case
def untraced_report_and_verdict(ctx):
    """trace_allocs=0: 'not recorded (run with trace_allocs=1)' in the report, the verdict suggests trace_allocs=1."""
    run = ctx.shim("leak", **LEAK, options="trace_allocs=0")
    expect_rc(run, -11)
    r = only_report(run, "ABORTING")
    expect_equal(r.alloc_note, NOT_RECORDED, "the report's allocation-site line")
    expect(symbol_at(r.access_frames, 0) == "print_last_name", "access backtrace: %r" % frame_symbols(r.access_frames))
    # Untraced, the region's begin and end are single frames: the marker's call site.
    expect(names(r.begin_frames, "handle_request") or names(r.begin_frames, "main"),
           "'region began at' names neither handle_request nor its caller main: %r" % frame_symbols(r.begin_frames))
    plain = ctx.plain("leak")
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=0,on_dangling=recover,stats=1,stats_json=" + path)
    expect_rc(run, 0, "recover run: ")
    expect_same_stdout(run, plain)
    verdicts = verdict_lines(run.err)
    expect(len(verdicts) == 1 and re.fullmatch(
        r"  verdict 'handle_request': 1 (escapes?|objects?) (seen|escaped) in 10 regions \(run with trace_allocs=1\b.*\)",
        verdicts[0]), "verdict lines %r" % verdicts)
    expect(not summary_sites(run.err), "escape sites without trace_allocs")
    stats = load_json(path)
    expect_equal(stats.get("escape_sites"), [], "escape_sites")
    expect_equal(marker_stats(stats, "handle_request").get("escapes"), 1, "markers[0].escapes")
    expect("trace_allocs=1" in verdict_of(stats, "handle_request"), "the JSON verdict does not suggest trace_allocs=1")


THREADS = dict(regions="thread_work")


def check_thread_reports(run, ending):
    reports, other = parse_reports(run.err)
    stray = [line for line in other if line.strip()]
    expect(not stray, "stderr lines outside any report (interleaved?): %r" % stray[:4])
    for r in reports:
        expect(r.ending == ending, "a report ends with %s" % r.ending)
        readers = names(r.access_frames, "read_slot")
        writers = names(r.access_frames, "write_slot")
        expect(readers != writers, "access backtrace names neither/both read_slot and write_slot: %r"
               % frame_symbols(r.access_frames))
        expect_equal(r.access, "READ" if readers else "WRITE", "access kind of a report from %s"
                     % ("read_slot" if readers else "write_slot"))
        expect(r.object is not None and symbol_at(r.alloc_frames, 0) == "make_slot"
               and names(r.alloc_frames, "thread_work"),
               "allocation backtrace: %r" % frame_symbols(r.alloc_frames))
        expect_equal(r.object[2], r.address, "object address")
    return reports


@case
def threads_reports_not_interleaved(ctx):
    """4 threads touch their own dangling object at once (barrier), recover: 4 whole, well-formed reports."""
    plain = ctx.plain("threads")
    for attempt in range(4):
        run = ctx.shim("threads", **THREADS, options="trace_allocs=1,on_dangling=recover")
        expect_rc(run, 0, "run %d: " % attempt)
        expect_same_stdout(run, plain)
        reports = check_thread_reports(run, "CONTINUING")
        expect(len(reports) == 4, "run %d: expected 4 reports, got %d" % (attempt, len(reports)))
        expect_equal(sorted(r.access for r in reports), ["READ", "READ", "WRITE", "WRITE"], "access kinds")
        expect(len({r.address for r in reports}) == 4, "the 4 reports do not name 4 addresses")
        expect(len({r.region for r in reports}) == 4, "the 4 reports do not name 4 regions")
        threads = {r.thread for r in reports}
        expect(len(threads) == 4, "the reports' 'of thread TN' are not 4 threads: %r" % threads)


@case
def threads_abort_whole_report(ctx):
    """4 threads at once in abort mode: SIGSEGV, and every report on stderr is whole (none cut short)."""
    for attempt in range(2):
        run = ctx.shim("threads", **THREADS, options="trace_allocs=1")
        expect_rc(run, -11, "run %d: " % attempt)
        reports = check_thread_reports(run, "ABORTING")
        expect(1 <= len(reports) <= 4, "run %d: %d reports" % (attempt, len(reports)))


@case
def log_path_recover(ctx):
    """log_path=DIR/arena.%p.log: reports and summary go to that file (%p = pid), nothing to stderr."""
    plain = ctx.plain("leak")
    logs = ctx.tmp / "logs"
    logs.mkdir()
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats=1,log_path=%s/arena.%%p.log" % logs)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    expect(run.stderr == b"", "stderr is not empty with log_path: %r" % run.stderr[:300])
    files = sorted(os.listdir(logs))
    expect_equal(files, ["arena.%d.log" % run.pid], "files in the log directory")
    text = (logs / files[0]).read_text(errors="replace")
    r = only_report(Run(run.argv, 0, b"", text.encode(), pid=run.pid), "CONTINUING")
    expect(names(r.alloc_frames, "make_name"), "allocation backtrace in the log: %r" % frame_symbols(r.alloc_frames))
    expect_verdict_lines(text, [("handle_request", LEAK_VERDICT_TRACED)])


@case
def log_path_abort(ctx):
    """log_path in abort mode: the report is in the file, the process dies by SIGSEGV, stderr stays empty."""
    log = ctx.path("arena.log")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,log_path=" + log)
    expect_rc(run, -11)
    expect(run.stderr == b"", "stderr is not empty with log_path: %r" % run.stderr[:300])
    expect(os.path.exists(log), "log file %s missing" % log)
    with open(log, "rb") as f:
        r = only_report(Run(run.argv, 0, b"", f.read(), pid=run.pid), "ABORTING")
    expect(symbol_at(r.access_frames, 0) == "print_last_name", "access backtrace: %r" % frame_symbols(r.access_frames))


def check_startup_error(ctx, run, key):
    expect_rc(run, 2)
    expect(run.stdout == b"", "the program ran (stdout %r)" % run.stdout[:200])
    lines = run.err.splitlines()
    expect(len(lines) == 1, "expected one line on stderr, got %d: %r" % (len(lines), lines[:4]))
    expect(lines[0].startswith("arenashim: error: "), "stderr line does not start 'arenashim: error: ': %r" % lines[0])
    expect(key in lines[0], "the error line does not name %s: %r" % (key, lines[0]))


@case
def log_path_missing_directory(ctx):
    """log_path in a directory that does not exist: one 'arenashim: error:' line naming log_path, exit 2."""
    missing = ctx.tmp / "no" / "such" / "dir"
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,log_path=%s/arena.log" % missing)
    check_startup_error(ctx, run, "log_path")
    expect(not missing.exists(), "the missing directory was created")


@case
def log_path_is_directory(ctx):
    """log_path naming a directory: also an error at start-up."""
    run = ctx.shim("leak", **LEAK, options="log_path=" + str(ctx.tmp))
    check_startup_error(ctx, run, "log_path")


LATE = dict(regions="build_lists")
LATE_OBJECTS = 4 * (5 + 3)  # ROUNDS * (NODES + LABELS) in late_free.c


def free_reports(text):
    """The verbose free reports: [(first line match, [frame symbols])]."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("arenashim: free()"):
            m = FREE_REPORT_RE.fullmatch(line)
            expect(m, "malformed free report line %r" % line)
            frames = []
            if m.group(4) == "; allocated at:":
                frames, _ = parse_frames(lines, i + 1, "free report")
            found.append((m, frames))
    return found


def check_late_free_stats(stats):
    expect_equal(stats.get("escaped_frees"), LATE_OBJECTS, "escaped_frees (once per object)")
    m = marker_stats(stats, "build_lists")
    expect_equal(m.get("escaped_frees"), LATE_OBJECTS, "markers[0].escaped_frees")
    expect_equal(m.get("escapes"), LATE_OBJECTS, "markers[0].escapes")
    expect_equal(stats.get("dangling_accesses"), 0, "dangling_accesses (a free after the region touches nothing)")


@case
def late_free_verbose_once_per_site(ctx):
    """verbose=1, trace_allocs=1: 32 objects from 2 sites freed after their regions: 2 reports, 32 escaped_frees."""
    plain = ctx.plain("late_free")
    path = ctx.path("stats.json")
    run = ctx.shim("late_free", **LATE, options="trace_allocs=1,verbose=1,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    reports = free_reports(run.err)
    expect(len(reports) == 2, "expected 2 free reports (one per site), got %d" % len(reports))
    firsts = sorted(symbol_at(frames, 0) or "" for _, frames in reports)
    expect_equal(firsts, ["make_label", "make_node"], "frame #0 of the two free reports")
    for m, frames in reports:
        expect_equal(m.group(3), "build_lists", "marker in the free report")
        expect(names(frames, "build_lists"), "free report frames: %r" % frame_symbols(frames))
    stats = load_json(path)
    check_late_free_stats(stats)
    sites = stats.get("escape_sites", [])
    expect_equal([(frame_text_symbol(s["frames"][0]), s.get("escapes"), s.get("allocations")) for s in sites],
                 [("make_node", 20, 20), ("make_label", 12, 12)], "escape sites (top first)")


@case
def late_free_twice_counted_once(ctx):
    """Every object freed twice after its region: still 2 reports and 32 escaped_frees."""
    plain = ctx.plain("late_free")
    path = ctx.path("stats.json")
    run = ctx.shim("late_free", "twice", **LATE, options="trace_allocs=1,verbose=1,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    expect(len(free_reports(run.err)) == 2, "expected 2 free reports, got %d" % len(free_reports(run.err)))
    check_late_free_stats(load_json(path))


@case
def late_free_untraced(ctx):
    """verbose=1 without trace_allocs: one free report in all; frees twice still counted once per object."""
    path = ctx.path("stats.json")
    run = ctx.shim("late_free", "twice", **LATE, options="verbose=1,stats_json=" + path)
    expect_rc(run, 0)
    reports = free_reports(run.err)
    expect(len(reports) == 1, "expected 1 free report, got %d" % len(reports))
    expect("trace_allocs=1" in reports[0][0].group(4), "free report does not suggest trace_allocs=1: %r"
           % reports[0][0].group(0))
    check_late_free_stats(load_json(path))


@case
def late_free_quiet(ctx):
    """verbose=0: frees after region end are counted but not reported."""
    path = ctx.path("stats.json")
    run = ctx.shim("late_free", **LATE, options="trace_allocs=1,stats_json=" + path)
    expect_rc(run, 0)
    expect("free()" not in run.err, "a free report without verbose: %r" % run.err[:300])
    check_late_free_stats(load_json(path))


def report_tool(*args):
    return run_process([str(LAUNCHER), "report", *map(str, args)], base_env())


def check_report_tool_reproduces(ctx, program, args, regions, options):
    path = ctx.path("saved.json")
    run = ctx.shim(program, *args, regions=regions, options=options + ",stats=1,stats_json=" + path)
    expect_rc(run, 0)
    expect(os.path.exists(path), "stats_json not written")
    tool = report_tool(path)
    ctx.runs.append(tool)
    expect_rc(tool, 0, "scripts/arenashim report: ")
    expect(site_block_lines(run.err), "the summary has no escape-site block")
    expect_equal(site_block_lines(tool.out), site_block_lines(run.err), "escape-site block (report vs summary)")
    expect(verdict_lines(run.err), "the summary has no verdict line")
    expect_equal(verdict_lines(tool.out), verdict_lines(run.err), "verdict lines (report vs summary)")


@case
def report_tool_one_site(ctx):
    """scripts/arenashim report FILE.json prints the same site block and verdict as stats=1 (leak)."""
    check_report_tool_reproduces(ctx, "leak", (), "handle_request", "trace_allocs=1,on_dangling=recover")


@case
def report_tool_two_sites(ctx):
    """... and with two sites, top first (late_free)."""
    check_report_tool_reproduces(ctx, "late_free", (), "build_lists", "trace_allocs=1")


def check_tool_error(ctx, path, words):
    tool = report_tool(path)
    ctx.runs.append(tool)
    expect_rc(tool, 2, "scripts/arenashim report %s: " % path)
    expect(tool.stdout == b"", "output on stdout: %r" % tool.stdout[:200])
    lines = tool.err.splitlines()
    expect(len(lines) == 1, "expected a one-line message, got %r" % lines[:6])
    expect("Traceback" not in tool.err, "a Python traceback")
    expect(str(path) in lines[0], "the message does not name the file: %r" % lines[0])
    expect(any(w in lines[0] for w in words), "unclear message %r (expected one of %r)" % (lines[0], words))


@case
def report_tool_missing_file(ctx):
    """report on a file that does not exist: exit 2, one clear line."""
    check_tool_error(ctx, ctx.tmp / "nothing-here.json", ("cannot read", "No such file"))


@case
def report_tool_not_json(ctx):
    """report on files that are not statistics: not JSON, empty, truncated, JSON of another kind: exit 2."""
    samples = {
        "garbage.json": "this is not { json\n",
        "empty.json": "",
        "list.json": "[1, 2, 3]\n",
        "other.json": '{"name": "something else"}\n',
    }
    saved = ctx.path("saved.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats_json=" + saved)
    expect_rc(run, 0)
    with open(saved) as f:
        full = f.read()
    samples["truncated.json"] = full[:len(full) // 2]
    for name, text in samples.items():
        path = ctx.tmp / name
        path.write_text(text)
        check_tool_error(ctx, path, ("not a statistics file", "not an arenashim statistics file", "JSON"))


# --- the statistics over time and the pictures (issue 15) ------------------------------------------

SERIES = dict(regions="work_item,idle_item")
# Small chunks and quarantine: the run scans often, so its scans are recorded and thinned.
SERIES_OPTIONS = "chunk_size=64K,quarantine_max=256K"
CHROMIUM = "/usr/bin/chromium"


def series_of(stats):
    ts = stats.get("timeseries")
    expect(isinstance(ts, dict), "stats_json has no \"timeseries\" object (keys: %s)" % sorted(stats)[:40])
    return ts


def marker_series(ts, name):
    for m in ts.get("markers", []):
        if m.get("marker") == name:
            return m
    raise Failure("timeseries.markers has no series for %r: %r"
                  % (name, [m.get("marker") for m in ts.get("markers", [])]))


def non_decreasing(values, what):
    for i in range(1, len(values)):
        expect(values[i] >= values[i - 1],
               "%s decreases at sample %d: %r then %r" % (what, i, values[i - 1], values[i]))


def size_bucket(n):
    """0 for 0 bytes, k for [2^(k-1), 2^k)."""
    return n.bit_length()


@case
def series_long_run(ctx):
    """stats_json of a 2 s run: time series present, at most samples_max (thinned), monotonic, ending at the totals."""
    path = ctx.path("series.json")
    run = ctx.shim("series", "2", **SERIES, options=SERIES_OPTIONS + ",stats_json=" + path)
    expect_rc(run, 0)
    stats = load_json(path)
    ts = series_of(stats)
    t = ts.get("t")
    expect(isinstance(t, list) and len(t) >= 2, "timeseries.t: %r" % (t,))
    most = ts.get("samples_max")
    expect(isinstance(most, int) and 16 <= most <= 4096, "samples_max %r" % most)
    expect(len(t) <= most, "%d samples, more than samples_max %d" % (len(t), most))
    # 2 s at an interval of a few ms needs more than samples_max: the series were thinned, and
    # what is kept still covers the whole run.
    expect(ts.get("thinned", 0) >= 1,
           "a 2 s run was never thinned (%d samples, interval %r s)" % (len(t), ts.get("interval_s")))
    expect(len(t) >= most // 4, "only %d samples kept of at most %d" % (len(t), most))
    expect(t[0] == 0 and t[-1] >= 1.9, "samples from %r s to %r s of a 2 s run" % (t[0], t[-1]))
    non_decreasing(t, "timeseries.t")
    gaps = [b - a for a, b in zip(t, t[1:])]
    expect(max(gaps) <= 4 * ts["interval_s"] + 0.05,
           "a gap of %.3f s between samples (interval %.3f s)" % (max(gaps), ts["interval_s"]))
    for key in ("rss_bytes", "quarantine_bytes", "scans", "scan_pause_ns"):
        expect(len(ts.get(key, [])) == len(t),
               "timeseries.%s has %d values for %d samples" % (key, len(ts.get(key, [])), len(t)))
    expect(all(v > 0 for v in ts["rss_bytes"]), "an RSS sample of 0: %r" % ts["rss_bytes"][:10])
    non_decreasing(ts["scans"], "timeseries.scans")
    non_decreasing(ts["scan_pause_ns"], "timeseries.scan_pause_ns")
    expect_equal(ts["scans"][-1], stats["scans"], "scans at the last sample vs the total")
    expect_equal(ts["scan_pause_ns"][-1], stats["scan_ns"], "pause time at the last sample vs scan_ns")
    expect(max(ts["quarantine_bytes"]) > 0, "the quarantine never held anything (quarantine_max=256K)")
    for spec in ("work_item", "idle_item"):
        m, total = marker_series(ts, spec), marker_stats(stats, spec)
        non_decreasing(m["regions"], spec + " regions")
        non_decreasing(m["bytes"], spec + " bytes")
        expect_equal(m["regions"][-1], total["regions"], spec + ": regions at the last sample vs markers[]")
        expect_equal(m["bytes"][-1], total["bytes"], spec + ": bytes at the last sample vs markers[]")
        sizes = m["region_sizes"]
        expect_equal(sum(sizes), total["regions"], spec + ": regions in the size distribution")
        expect_equal(len(sizes) - 1, size_bucket(total["peak_region_bytes"]),
                     "%s: last bucket of the size distribution vs peak_region_bytes %d"
                     % (spec, total["peak_region_bytes"]))
    # idle_item allocates nothing (its regions end untouched, on the hooks' fast path).
    expect_equal(marker_series(ts, "idle_item")["region_sizes"], [marker_stats(stats, "idle_item")["regions"]],
                 "idle_item's size distribution (all 0 bytes)")
    # work_item's lists are 1..2048 nodes of 48 bytes: 12 buckets, from [32, 64) to [65536, 131072).
    work = marker_series(ts, "work_item")["region_sizes"]
    expect_equal([b for b, n in enumerate(work) if n], list(range(size_bucket(48), size_bucket(48 * 2048) + 1)),
                 "work_item's non-empty size buckets")
    records = ts.get("scan_records", [])
    every = ts.get("scans_every", 0)
    expect(stats["scans"] >= 2 and records, "%d scans, %d recorded" % (stats["scans"], len(records)))
    expect(len(records) <= ts.get("scans_max", 0), "%d scan records, more than scans_max" % len(records))
    expect(every >= 1 and len(records) == (stats["scans"] + every - 1) // every,
           "%d scan records for %d scans, one in %d" % (len(records), stats["scans"], every))
    starts = [r["start_s"] for r in records]
    expect(starts == sorted(starts) and starts[-1] <= t[-1], "scan starts not in order within the run: %r" % starts[:8])
    expect(all(r["quarantine_after"] <= r["quarantine_before"] + 64 * 1024 * r["chunks_released"] + stats["reserve"]
               for r in records), "a scan record's quarantine figures are not counts")
    if every == 1:
        expect_equal(sum(r["pause_ns"] for r in records), stats["scan_ns"], "pauses of the scan records vs scan_ns")
    size = os.path.getsize(path)
    expect(size < 256 * 1024, "the statistics file of a 2 s run is %d bytes" % size)


def folded_lines(text):
    """[(frames, count)] of folded stacks, each line checked."""
    out = []
    for line in text.splitlines():
        m = re.fullmatch(r"(\S(?:.*\S)?) (\d+)", line)
        expect(m, "not a folded stack line ('frame;frame count'): %r" % line)
        frames = m.group(1).split(";")
        expect(all(frames), "an empty frame in %r" % line)
        out.append((frames, int(m.group(2))))
    return out


def frame_function(frame_text):
    """The name --folded gives the JSON frame text '#i 0xPC module+0xOFF (symbol+0xOFF)'."""
    m = re.fullmatch(r"#\d+ 0x[0-9a-f]+(?: (\S+\+0x[0-9a-f]+))?(?: \((\S+)\+0x[0-9a-f]+\))?", frame_text)
    expect(m, "JSON frame %r" % frame_text)
    return m.group(2) or m.group(1) or frame_text.split()[1]


@case
def folded_matches_json(ctx):
    """report --folded: folded stacks, root first, whose counts are the JSON's allocation and escape sites."""
    path = ctx.path("stats.json")
    run = ctx.shim("late_free", **LATE, options="trace_allocs=1,stats_json=" + path)
    expect_rc(run, 0)
    stats = load_json(path)
    sites = stats.get("alloc_sites")
    expect(isinstance(sites, list) and sites, "stats_json has no alloc_sites: %r" % (sites,))
    tool = report_tool("--folded", path)
    ctx.runs.append(tool)
    expect_rc(tool, 0, "report --folded: ")
    expect(tool.err == "", "stderr: %r" % tool.err[:300])
    lines = folded_lines(tool.out)
    expect({frames[0] for frames, _ in lines} == {"allocations", "escapes"},
           "root frames %r, expected allocations and escapes" % sorted({f[0] for f, _ in lines}))
    expected = {}
    for kind, key in (("allocations", "allocations"), ("escapes", "escapes")):
        for site in sites:
            if site[key]:
                stack = tuple([kind] + [frame_function(f) for f in reversed(site["frames"])])
                expected[stack] = expected.get(stack, 0) + site[key]
    got = {tuple(frames): count for frames, count in lines}
    expect_equal(got, expected, "folded stacks vs alloc_sites")
    expect_equal(sum(c for f, c in lines if f[0] == "allocations"), LATE_OBJECTS, "traced allocations in the stacks")
    escapes = {frames[-1]: count for frames, count in lines if frames[0] == "escapes"}
    expect_equal(escapes, {"make_node": 20, "make_label": 12}, "escape stacks by their leaf frame")
    for frames, _ in lines:
        # Root first: main calls build_lists, which calls the leaf.
        expect("main" in frames and "build_lists" in frames and frames.index("main") < frames.index("build_lists")
               < len(frames) - 1, "not root first: %r" % frames)
    out = ctx.path("stacks.folded")
    tool = report_tool("--folded", out, path)
    ctx.runs.append(tool)
    expect_rc(tool, 0, "report --folded OUT: ")
    with open(out) as f:
        expect_equal(f.read(), "".join("%s %d\n" % (";".join(fr), c) for fr, c in lines), "--folded OUT vs stdout")


def chromium(ctx, *args):
    expect(os.access(CHROMIUM, os.X_OK),
           "%s is missing (Debian's chromium: scripts/lib/setup.sh installs it)" % CHROMIUM)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--user-data-dir=" + ctx.path("chromium-profile"), *args]
    run = run_process(argv, base_env(), timeout=90)
    ctx.runs.append(run)
    expect_rc(run, 0, "chromium: ")
    console = [line for line in run.err.splitlines() if ":CONSOLE" in line]
    expect(not console, "console messages while rendering the report: %r" % console[:4])
    return run


@case
def html_report_in_chromium(ctx):
    """report --html of a real run: self-contained, renders in headless Chromium, no console errors; a screenshot."""
    path = ctx.path("series.json")
    run = ctx.shim("series", "0.6", "keep", **SERIES, options=SERIES_OPTIONS + ",trace_allocs=1,stats_json=" + path)
    expect_rc(run, 0)
    stats = load_json(path)
    ts = series_of(stats)
    page = ctx.path("report.html")
    tool = report_tool("--html", page, path)
    ctx.runs.append(tool)
    expect_rc(tool, 0, "report --html: ")
    expect(tool.stdout == b"" and tool.err == "", "report --html printed %r %r" % (tool.stdout[:200], tool.err[:200]))
    with open(page, encoding="utf-8") as f:
        text = f.read()
    # Self-contained: nothing to fetch, and the page forbids fetching anything.
    for needle in ("http://", "https://", " src=", " href=", "@import", "url("):
        expect(needle not in text, "the page refers to something outside it: %r" % needle)
    expect("default-src 'none'" in text, "no Content-Security-Policy forbidding fetches")
    dom = chromium(ctx, "--dump-dom", "file://" + page).out
    expect('data-script="ok"' in dom, "the page's script did not run through: %r" % re.findall(r"<html[^>]*>", dom)[:1])
    errors = re.search(r'<pre id="script-errors"[^>]*>(.*?)</pre>', dom, re.S)
    expect(errors and errors.group(1) == "",
           "script errors on the page: %r" % (errors.group(1)[:300] if errors else "no #script-errors"))
    # Every picture is there, drawn from this file's numbers.
    for chart in ("chart-regions", "chart-bytes", "chart-sizes-0", "chart-sizes-1", "chart-quarantine", "chart-pauses",
                  "chart-rss"):
        expect('id="%s"' % chart in dom, "no chart #%s in the page" % chart)
    regions_svg = re.search(r'<svg id="chart-regions".*?</svg>', dom, re.S).group(0)
    expect_equal(sorted(re.findall(r'data-series="([^"]*)"', regions_svg)), sorted(m["marker"] for m in ts["markers"]),
                 "lines of the regions chart")
    quarantine_svg = re.search(r'<svg id="chart-quarantine".*?</svg>', dom, re.S).group(0)
    expect_equal(quarantine_svg.count('class="scan-pause"'), len(ts["scan_records"]),
                 "scan pauses marked on the quarantine chart")
    work_bars = re.search(r'<svg id="chart-sizes-0".*?</svg>', dom, re.S).group(0).count('class="bar"')
    expect(work_bars >= len([n for n in marker_series(ts, "work_item")["region_sizes"] if n]),
           "%d bars for work_item's sizes" % work_bars)
    # The tables: markers, escape sites with their backtraces, scans, counters.
    markers_table = re.search(r'<div class="table" id="table-markers">.*?</table>', dom, re.S)
    expect(markers_table and markers_table.group(0).count("<tr>") == 1 + len(stats["markers"]), "the markers table")
    escapes_table = re.search(r'<div class="table" id="table-escapes">.*?</table>', dom, re.S)
    expect(escapes_table and "make_node" in escapes_table.group(0) and "work_item" in escapes_table.group(0),
           "the escape sites table does not name make_node: %r"
           % (escapes_table.group(0)[:300] if escapes_table else None))
    expect('id="table-scans"' in dom and 'id="table-counters"' in dom, "no scans or counters table")
    expect(dom.count('type="search"') >= 4, "tables without a search box")
    shot_dir = ctx.build / "test-artifacts" / "reports"
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "report.png"
    if shot.exists():
        shot.unlink()
    chromium(ctx, "--window-size=1280,3000", "--screenshot=" + str(shot), "file://" + page)
    expect(shot.exists(), "no screenshot at %s" % shot)
    with open(shot, "rb") as f:
        head = f.read(24)
    expect(head[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
    expect_equal((int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")), (1280, 3000),
                 "screenshot size")


@case
def pictures_bad_input(ctx):
    """--html to an unwritable path, a bad time series, --html without OUT: exit 2, one line, nothing written."""
    path = ctx.path("stats.json")
    run = ctx.shim("leak", **LEAK, options="trace_allocs=1,on_dangling=recover,stats_json=" + path)
    expect_rc(run, 0)
    for out in (ctx.tmp / "no-such-directory" / "report.html", ctx.tmp):
        tool = report_tool("--html", out, path)
        ctx.runs.append(tool)
        expect_rc(tool, 2, "report --html %s: " % out)
        lines = tool.err.splitlines()
        expect(len(lines) == 1 and str(out) in lines[0] and "cannot write" in lines[0] and "Traceback" not in tool.err,
               "expected one line naming %s: %r" % (out, lines[:5]))
        expect(tool.stdout == b"", "output on stdout: %r" % tool.stdout[:100])
    stats = load_json(path)
    stats["timeseries"]["t"] = "soon"
    bad = ctx.tmp / "bad-series.json"
    bad.write_text(json.dumps(stats))
    for args in (("--html", ctx.path("bad.html"), bad), ("--folded", bad)):
        tool = report_tool(*args)
        ctx.runs.append(tool)
        expect_rc(tool, 2, "report %s: " % " ".join(map(str, args)))
        lines = tool.err.splitlines()
        expect(len(lines) == 1 and str(bad) in lines[0] and "timeseries.t" in lines[0],
               "unclear message %r" % lines[:5])
    expect(not os.path.exists(ctx.path("bad.html")), "a page was written from a bad file")
    for args in (("--html",), ("--html", ctx.path("x.html")), ("--frobnicate", path),
                 ("--html", "a.html", "--folded", path)):
        tool = report_tool(*args)
        ctx.runs.append(tool)
        expect_rc(tool, 2, "report %s: " % " ".join(map(str, args)))
        expect(len(tool.err.splitlines()) == 1 and "usage" in tool.err, "usage error: %r" % tool.err[:300])


REALLOC = dict(regions="build")


@case
def realloc_dead_abort(ctx):
    """realloc of an object whose region ended is a dangling access: report, SIGSEGV."""
    run = ctx.shim("realloc_dead", **REALLOC, options="")
    expect_rc(run, -11)
    lines = run.err.splitlines()
    expect(lines and FIRST_LINE_RE.fullmatch(lines[0]), "first stderr line: %r" % lines[:1])
    r = only_report(run, "ABORTING")
    expect_equal(r.marker, "build", "marker")
    expect(names(r.access_frames, "grow_buffer"), "access backtrace does not name grow_buffer: %r"
           % frame_symbols(r.access_frames))


@case
def realloc_dead_names_object(ctx):
    """realloc of a dead object with trace_allocs=1: the report names the object and its allocation site."""
    run = ctx.shim("realloc_dead", **REALLOC, options="trace_allocs=1")
    expect_rc(run, -11)
    r = only_report(run, "ABORTING")
    expect(r.alloc_note != NOT_SAMPLED, "the report says %r under trace_allocs=1, which traces every allocation"
           % r.alloc_note)
    expect(r.object is not None, "the report does not name the object (%r)" % r.alloc_note)
    expect(symbol_at(r.alloc_frames, 0) == "make_buffer", "allocation backtrace: %r" % frame_symbols(r.alloc_frames))
    expect_equal(r.object[1], 24, "object size")
    # realloc reads the object's header first: 16 bytes before it (the offset once wrapped
    # around to 18446744073709551600).
    expect_equal(r.object[0], -16, "offset of the access from the object")


@case
def realloc_dead_recover(ctx):
    """realloc of a dead object in recover mode: output as without arenashim, one escape for the one object."""
    plain = ctx.plain("realloc_dead")
    path = ctx.path("stats.json")
    run = ctx.shim("realloc_dead", **REALLOC, options="trace_allocs=1,on_dangling=recover,stats=1,stats_json=" + path)
    expect_rc(run, 0)
    expect_same_stdout(run, plain)
    only_report(run, "CONTINUING")
    stats = load_json(path)
    expect_equal(stats.get("dangling_accesses"), 1, "dangling_accesses")
    expect_equal(marker_stats(stats, "build").get("escapes"), 1,
                 "markers[0].escapes (one object, realloc'ed once after its region ended)")
    expect_verdict(verdict_of(stats, "build"), escaped_verdict(1, 1, 1))


# --- main ----------------------------------------------------------------------------------------

def main():
    cases, build = harness.suite_arguments(__doc__.split("\n")[0], CASES, ROOT)
    if cases is None:
        return 0
    build = build.resolve()
    lib = build / "preload" / "libarenashim.so"
    if not lib.exists():
        print("FAIL setup: %s does not exist (build first: meson setup build; ninja -C build)" % lib)
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    started = time.monotonic()
    tmp_root = Path(tempfile.mkdtemp(prefix="arenashim-reports."))
    try:
        for c in cases:
            tmp = tmp_root / c.__name__
            tmp.mkdir()
            ctx = Context(build, lib, tmp)
            try:
                c(ctx)
            except Failure as e:
                failed += 1
                print("FAIL %s: %s" % (c.__name__, e))
                if ctx.runs:
                    print("  " + ctx.runs[-1].describe().replace("\n", "\n  "))
            except Exception:  # a bug in the test itself: still one failure, with the traceback
                failed += 1
                print("FAIL %s: the test raised\n%s" % (c.__name__, traceback.format_exc()))
            else:
                passed += 1
                print("PASS %s" % c.__name__)
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    print("(%.1f s)" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
