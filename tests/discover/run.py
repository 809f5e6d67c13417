#!/usr/bin/python3
"""Tests of `scripts/arenashim discover` (issue 13): which functions to mark.

Usage:
    /usr/bin/python3 tests/discover/run.py --build build [-k SUBSTRING] [--list]

Runs the launcher's discover command, as a user would, on programs with known answers
(tests/programs/discover_cases.c, discover_unwind.cpp: built by meson into
BUILD/tests/integration/), on the benchmark workloads (BUILD/bench/), on the demo program
(compiled here from bench/programs/request_loop.c), on a stripped copy, through a shell that
forks and execs, and on Debian's python3; reads the ranking from --json and checks it.  Prints
`PASS name` or `FAIL name: reason` and finally `N passed, N failed`; exits 1 when a case failed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "scripts" / "arenashim"
Failure = harness.Failure
expect = harness.expect
CASES = []


def case(function):
    CASES.append(function)
    return function


class Context:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = tmp

    def program(self, *parts):
        path = self.build.joinpath(*parts)
        expect(path.exists(), harness.not_built(path, self.build))
        return str(path)

    def discover(self, argv, *options, rc=0, timeout=120):
        """Runs scripts/arenashim discover OPTIONS -- ARGV; returns (ranking, stdout, stderr)."""
        out_json = os.path.join(self.tmp, "ranking.json")
        if os.path.exists(out_json):
            os.unlink(out_json)
        command = [str(LAUNCHER), "discover", "--json", out_json, *options, "--", *argv]
        env = harness.clean_env()
        env["ARENASHIM_BUILD"] = str(self.build)
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, cwd=self.tmp)
        if rc is not None and proc.returncode != rc:
            raise Failure("discover exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" % (
                proc.returncode, rc, proc.stdout[-3000:], proc.stderr[-2000:]))
        ranking = None
        if os.path.exists(out_json):
            with open(out_json) as f:
                ranking = json.load(f)
            # arenashim's own interposers (__cxa_allocate_exception, the malloc family...) are
            # never the program's functions: never proposed, whatever the program.
            own = [c["spec"] for c in ranking["candidates"] if "arenashim" in (c.get("module") or "")]
            expect(not own, "arenashim's own functions proposed: %s" % own)
        return ranking, proc.stdout, proc.stderr


def by_spec(ranking, spec):
    for c in ranking["candidates"]:
        if c["spec"] == spec:
            return c
    raise Failure("%s is not among the candidates: %s" % (spec, [c["spec"] for c in ranking["candidates"]][:20]))


def first_clean(ranking):
    clean = [c for c in ranking["candidates"] if c["clean"] and c["hookable"] is True]
    expect(clean, "no clean hookable candidate: %s" % [c["spec"] for c in ranking["candidates"]][:20])
    return clean[0]


def frames_mention(candidate, name):
    return any(name in frame for site in candidate["escape_sites"] for frame in site["frames"])


# --- known answers ------------------------------------------------------------------------------

@case
def known_answers(ctx):
    """discover_cases, every allocation followed: the clean handler first, the kept, the
    cross-thread and the leaky ones judged right, recursion by its outermost frame, and a
    function that cannot be hooked said so."""
    ranking, out, _ = ctx.discover([ctx.program("tests", "integration", "discover_cases")], "--sample", "1")
    expect("OK discover_cases" in out, "the program did not finish")
    expect(first_clean(ranking)["spec"] == "handle_clean",
           "first clean candidate is %s, not handle_clean" % first_clean(ranking)["spec"])
    keep = by_spec(ranking, "handle_keep")
    expect(not keep["clean"] and keep["escaped_objects"] > 0, "handle_keep: %r" % keep)
    expect(frames_mention(keep, "keep_one"), "handle_keep's escape sites do not name keep_one: %r" % keep["escape_sites"])
    cross = by_spec(ranking, "handle_cross_thread")
    expect(not cross["clean"] and cross["freed_by_other_thread"] > 0, "handle_cross_thread: %r" % cross)
    leaky = by_spec(ranking, "handle_leaky")
    expect(leaky["clean"] and leaky["leaked_objects"] > 0, "handle_leaky: %r" % leaky)
    recurse = by_spec(ranking, "recurse")
    expect(recurse["clean"] and recurse["objects"] > 0, "recurse (judged by its outermost frame): %r" % recurse)
    loop = by_spec(ranking, "alloc_in_a_loop")
    expect(loop["hookable"] is False and "jump" in (loop["refusal"] or ""),
           "alloc_in_a_loop should be refused (a jump into its first bytes): %r" % loop)
    expect("a jump elsewhere" in out, "the table does not say why alloc_in_a_loop cannot be hooked")
    tail = by_spec(ranking, "tail_outer")
    expect(not tail["clean"] and tail["escaped_objects"] > 0,
           "tail_outer tail-calls the function that makes what its caller keeps: %r" % tail)
    short = by_spec(ranking, "alloc_after_jump")
    expect(short["hookable"] is False and "too short" in (short["refusal"] or ""),
           "alloc_after_jump should be refused as too short: %r" % short)

    expect("scripts/arenashim --region handle_clean -- " in out, "no line to copy for handle_clean")


def frames_left_early(ctx, mode, inner):
    """discover_unwind MODE, every allocation followed: handle_job is clean, and the objects
    of the inner call left without returning escaped it."""
    ranking, out, _ = ctx.discover([ctx.program("tests", "integration", "discover_unwind"), mode],
                                   "--sample", "1")
    expect("OK discover_unwind %s" % mode in out, "the program did not finish")
    expect(first_clean(ranking)["spec"] == "handle_job", "first clean: %s" % first_clean(ranking)["spec"])
    expect(by_spec(ranking, inner)["escaped_objects"] > 0, "%s: no escape seen" % inner)


@case
def longjmp_frames(ctx):
    """Frames left by longjmp: the inner calls' objects escaped them, the handler is clean."""
    frames_left_early(ctx, "longjmp", "deep_work")


@case
def exception_frames(ctx):
    """Frames left by a C++ exception: same answer, and the unwinder is not confused."""
    frames_left_early(ctx, "throw", "_Z13throwing_workjj")


# --- the suite's workloads and the demo ------------------------------------------------------------

@case
def request_loop_workload(ctx):
    """bench's request loop, default sampling: handle_request is the top clean candidate."""
    ranking, out, _ = ctx.discover([ctx.program("bench", "wl_request"), "2000"])
    expect(first_clean(ranking)["spec"] == "handle_request", "first clean: %s" % first_clean(ranking)["spec"])
    # The overhead is reported at the end, with the library's own timing of following.
    overhead = [l for l in out.splitlines() if l.startswith("Discovery overhead: following allocations took")]
    expect(overhead, "no word on the cost of following:\n" + out[-1500:])
    expect(re.search(r"at least \d+\.\d\dx its plain run", overhead[0] if overhead else ""),
           "no ratio in: %s" % overhead)


@case
def compiler_pass_workload(ctx):
    """bench's compiler pass: compile_unit is the top clean candidate."""
    ranking, _, _ = ctx.discover([ctx.program("bench", "wl_compile"), "60"])
    expect(first_clean(ranking)["spec"] == "compile_unit", "first clean: %s" % first_clean(ranking)["spec"])


@case
def demo_dangle_verify(ctx):
    """The demo's --dangle mode keeps a pointer to the User-Agent past the handler: the frees
    look clean, and --verify shows the dangling accesses with the User-Agent's allocation site
    (parse_request)."""
    binary = os.path.join(ctx.tmp, "request_loop")
    subprocess.run(["gcc", "-O2", "-g", str(ROOT / "bench" / "programs" / "request_loop.c"), "-o", binary],
                   check=True, cwd=str(ROOT))
    ranking, out, _ = ctx.discover([binary, "300", "--dangle"], "--verify", rc=1)
    expect(first_clean(ranking)["spec"] == "handle_request", "first clean: %s" % first_clean(ranking)["spec"])
    verify = ranking.get("verify")
    expect(verify and verify["dangling_accesses"] > 0, "verify saw no dangling access: %r" % verify)
    expect(any("parse_request" in frame for site in verify["escape_sites"] for frame in site["frames"]),
           "verify's escape sites do not name parse_request: %r" % verify["escape_sites"])
    expect("is not safe as a region" in out, "the output does not say handle_request is unsafe")


# --- processes and binaries ----------------------------------------------------------------------

@case
def fork_and_exec(ctx):
    """A shell that forks and execs the request loop twice: both processes' results, merged."""
    wl = ctx.program("bench", "wl_request")
    ranking, _, _ = ctx.discover(["/bin/sh", "-c", "%s 300 >/dev/null 2>&1; %s 200 >/dev/null 2>&1" % (wl, wl)])
    expect(ranking["processes"] >= 2, "results of %d processes" % ranking["processes"])
    top = first_clean(ranking)
    expect(top["spec"] == "handle_request" and top["calls"] >= 400, "first clean: %r" % top)
    expect(by_spec(ranking, "main")["set_apart"], "main (once per process) is not set apart")


@case
def stripped_binary(ctx):
    """A stripped copy: candidates named MODULE+0xOFFSET from .eh_frame, and --verify marks
    the best one through that spec."""
    copy = os.path.join(ctx.tmp, "stripped_cases")
    shutil.copy(ctx.program("tests", "integration", "discover_cases"), copy)
    subprocess.run(["strip", copy], check=True)
    ranking, _, _ = ctx.discover([copy], "--sample", "1", "--verify")
    top = first_clean(ranking)
    expect(top["spec"].startswith("stripped_cases+0x"), "top spec %s" % top["spec"])
    verify = ranking["verify"]
    expect(verify["regions"] >= 400 and verify["dangling_accesses"] == 0 and verify["same_exit_status"],
           "verify: %r" % verify)


@case
def python3_verify(ctx):
    """Debian's python3 on a short script: discovery finishes, and --verify of its best clean
    candidate runs with no dangling access and the same exit status."""
    script = os.path.join(ctx.tmp, "work.py")
    with open(script, "w") as f:
        f.write("import json\n"
                "data = [{'k%d' % i: list(range(i % 17)), 's': 'x' * (i % 50)} for i in range(5000)]\n"
                "print(sum(len(json.loads(json.dumps(d))) for d in data))\n")
    ranking, out, _ = ctx.discover(["/usr/bin/python3", script], "--verify", timeout=300)
    expect("10000" in out, "python3 printed something else")
    verify = ranking.get("verify")
    expect(verify and verify["regions"] > 0 and verify["dangling_accesses"] == 0 and verify["same_exit_status"],
           "verify: %r" % verify)


@case
def usage_errors(ctx):
    """Bad command lines: a clear message and exit status 2 (127 for a missing command)."""
    for args, rc, message in (([], 2, "no command"), (["--top", "0", "true"], 2, "--top"),
                              (["--sample", "0", "true"], 2, "--sample"),
                              (["--options", "nonsense", "true"], 2, "--options"),
                              (["/nonexistent/program"], 127, "not found")):
        proc = subprocess.run([str(LAUNCHER), "discover", *args], env=harness.clean_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(proc.returncode == rc, "discover %s exited %d, expected %d" % (args, proc.returncode, rc))
        expect(message in proc.stderr, "discover %s: stderr lacks %r: %s" % (args, message, proc.stderr))


def main():
    cases, build = harness.suite_arguments(__doc__.split("\n")[0], CASES, ROOT, name_width=28)
    if cases is None:
        return 0
    return harness.run_cases(cases, lambda tmp: Context(build, tmp), "arenashim-discover-test.")


if __name__ == "__main__":
    sys.exit(main())
