#!/usr/bin/python3
"""discover.py — which functions of a program to mark: scripts/arenashim discover.

    scripts/arenashim discover [--top N] [--json FILE] [--sample N] [--options K=V,...]
                               [--verify] [--] CMD [ARG...]

Runs CMD once with arenashim's discovery on (ARENASHIM_OPTIONS discover=N: one heap allocation
in N is followed, see preload/hook/discover.c), its input and output untouched, then reads what
each of its processes wrote and ranks the functions a region could be opened around.

A function is a *clean* candidate when no followed object allocated during one of its calls was
freed after that call returned, or by another thread: a region around it would have ended
before any such free (a dangling free, and often a dangling use).  Objects never freed count as
reclaimed by the region.  Clean candidates come first, ranked by what a region would save: the
allocations and frees it serves (about 20 ns each, estimated from the samples) against its cost
(about 1 µs a region); outermost first among equals.  Functions called once (main), functions of
excluded modules (libc, the dynamic linker) and functions a marker could not hook (with the
reason) are listed apart.  Candidates with escapes follow, with their escape sites: what to fix.

--verify runs CMD again with the best clean candidate marked, in recover mode (a dangling access
is reported and the program goes on), and says whether any dangling access happened and whether
the exit status matched.  The launcher (scripts/arenashim) sets ARENASHIM_LIBRARY.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import signal
import sys
import tempfile
import time

DEFAULT_SAMPLE = 64
OBJECT_NS = 20.0      # a malloc+free pair a region serves instead of the heap
REGION_NS = 1000.0    # a region's begin and end, strict mode
LARGE_CALL_BYTES = 64 << 20
EXCLUDED = ("libc.so", "ld-linux")  # arenashim's default exclude list


def fail(message, status=2):
    print("arenashim discover: %s" % message, file=sys.stderr)
    sys.exit(status)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/arenashim discover",
        description="Run CMD once and rank the functions of it worth marking as regions.",
        usage="scripts/arenashim discover [--top N] [--json FILE] [--sample N] "
              "[--options K=V,...] [--verify] [--] CMD [ARG...]")
    parser.add_argument("--top", type=int, default=15, metavar="N",
                        help="candidates to print (default 15)")
    parser.add_argument("--json", metavar="FILE", help="also write the ranking as JSON to FILE")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, metavar="N",
                        help="follow one heap allocation in N (default %d; 1 follows all)" % DEFAULT_SAMPLE)
    parser.add_argument("--options", action="append", default=[], metavar="K=V,...",
                        help="more ARENASHIM_OPTIONS for the run (repeatable)")
    parser.add_argument("--verify", action="store_true",
                        help="run again with the best clean candidate marked, in recover mode")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments")
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.print_usage(sys.stderr)
        fail("no command to run")
    if args.top < 1:
        fail("--top needs a positive number")
    if args.sample < 1 or args.sample > (1 << 30):
        fail("--sample needs a number from 1 to 2^30")
    for text in args.options:
        if "=" not in text:
            fail("--options '%s': expected KEY=VALUE[,KEY=VALUE...]" % text)
    if shutil.which(args.command[0]) is None and not os.path.exists(args.command[0]):
        fail("%s: command not found" % args.command[0], 127)
    return args


def run_command(command, env):
    """Runs command with this process's standard streams; returns (exit status, seconds)."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as e:
        fail("cannot run %s: %s" % (command[0], e), 127)
    _, status, _ = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - started


def base_env(library):
    env = dict(os.environ)
    preload = env.get("LD_PRELOAD", "")
    if library not in preload.replace(":", " ").split():
        env["LD_PRELOAD"] = library + (":" + preload if preload else "")
    return env


def merge(paths):
    """Every process's file, summed by spec."""
    functions, processes, sampled, period, following, writing = {}, 0, 0, None, 0.0, 0.0
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print("arenashim discover: %s: unreadable (%s); skipped" % (path, e), file=sys.stderr)
            continue
        processes += 1
        sampled += data.get("sampled_objects", 0)
        period = data.get("sample_period", period)
        following += data.get("seconds_following", 0.0)
        writing += data.get("seconds_writing", 0.0)
        for f in data.get("functions", []):
            m = functions.get(f["spec"])
            if m is None:
                m = dict(f)
                m["most_calls_in_a_process"] = f.get("calls", 0)
                m["depth_sum"] = f.get("depth", 0) * f.get("objects", 0)
                m["escape_sites"] = [dict(s) for s in f.get("escape_sites", [])]
                functions[f["spec"]] = m
                continue
            for key in ("calls", "objects", "bytes", "escaped_objects", "escaped_bytes",
                        "freed_by_other_thread", "leaked_objects", "leaked_bytes"):
                m[key] = m.get(key, 0) + f.get(key, 0)
            m["depth_sum"] += f.get("depth", 0) * f.get("objects", 0)
            m["most_calls_in_a_process"] = max(m["most_calls_in_a_process"], f.get("calls", 0))
            if m.get("hookable") is None:
                m["hookable"], m["refusal"] = f.get("hookable"), f.get("refusal")
            for site in f.get("escape_sites", []):
                same = [s for s in m["escape_sites"] if s["frames"] == site["frames"]]
                if same:
                    same[0]["objects"] += site["objects"]
                else:
                    m["escape_sites"].append(dict(site))
    for m in functions.values():
        m["depth"] = m["depth_sum"] / m["objects"] if m.get("objects") else 0
        m["escape_sites"].sort(key=lambda s: -s["objects"])
    return functions, processes, sampled, period or DEFAULT_SAMPLE, following, writing


def rank(functions, period):
    """(clean, with escapes, set apart): each a list of candidates in rank order."""
    clean, escaping, apart = [], [], []
    for m in functions.values():
        m["saved_ns"] = m["objects"] * period * OBJECT_NS - m["calls"] * REGION_NS
        m["objects_per_call"] = m["objects"] * period / m["calls"] if m["calls"] else 0
        m["bytes_per_call"] = m["bytes"] * period / m["calls"] if m["calls"] else 0
        if m.get("module") and any(m["module"].startswith(x) for x in EXCLUDED):
            m["why_apart"] = "in %s, whose allocations arenashim always leaves to the heap" % m["module"]
            apart.append(m)
        elif m["most_calls_in_a_process"] < 2:
            m["why_apart"] = "called once per process: a region around it would hold everything it allocates"
            apart.append(m)
        elif m["escaped_objects"]:
            escaping.append(m)
        else:
            clean.append(m)
    # A function a marker could not hook stays in its list, after those it could.
    key = lambda m: (m.get("hookable") is False, -m["saved_ns"], m["depth"])  # noqa: E731
    clean.sort(key=key)
    # Those with escapes: what a region would save, by the share of objects that stay inside,
    # so a big saving spoilt by a few escapes (the ones worth fixing) comes before a function
    # whose few followed objects happen to escape.
    escaping.sort(key=lambda m: (m.get("hookable") is False,
                                 -m["saved_ns"] * (1 - m["escaped_objects"] / max(1, m["objects"])),
                                 m["depth"]))
    apart.sort(key=key)
    return clean, escaping, apart


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0


def hookable_text(m):
    if m.get("hookable") is True:
        return "yes"
    if m.get("hookable") is False:
        return "no: " + (m.get("refusal") or "?")
    return "not checked"


def print_table(rows, start_rank, title):
    if not rows:
        return
    print(title)
    # Specs are printed whole: they are meant to be copied.
    width = max([24] + [len(m["spec"]) for m in rows])
    print("  %4s  %-*s %9s %11s %11s %9s %8s  %s" % (
        "rank", width, "spec (ARENASHIM_REGIONS)", "calls", "objects/call", "bytes/call", "escaped", "leaked",
        "hookable"))
    for i, m in enumerate(rows):
        note = ""
        if m["bytes_per_call"] > LARGE_CALL_BYTES:
            note = "  (a region holds %s per call)" % human_bytes(m["bytes_per_call"])
        print("  %4d  %-*s %9d %11.1f %11s %9d %8d  %s%s" % (
            start_rank + i, width, m["spec"], m["calls"], m["objects_per_call"],
            human_bytes(m["bytes_per_call"]), m["escaped_objects"], m["leaked_objects"],
            hookable_text(m), note))
    print()


def print_escape_sites(rows, count=3):
    shown = [m for m in rows if m["escape_sites"]][:count]
    if not shown:
        return
    print("Escape sites (where escaping objects were allocated; fix or exclude these first):")
    for m in shown:
        print("  %s: %d of %d followed objects escaped%s" % (
            m["spec"], m["escaped_objects"], m["objects"],
            " (%d freed by another thread)" % m["freed_by_other_thread"]
            if m.get("freed_by_other_thread") else ""))
        for site in m["escape_sites"][:2]:
            print("    %d objects allocated at:" % site["objects"])
            for frame in site["frames"][:6]:
                print("      %s" % frame)
    print()


def verify(args, library, spec, discovery_status):
    """Runs the command with spec marked, in recover mode and with every region allocation
    traced, so that a dangling access names the object's allocation site; returns a dict."""
    with tempfile.TemporaryDirectory(prefix="arenashim-verify-") as tmp:
        env = base_env(library)
        env["ARENASHIM_REGIONS"] = spec
        options = ["on_dangling=recover", "trace_allocs=1",
                   "log_path=%s/log.%%p" % tmp, "stats_json=%s/stats.%%p.json" % tmp] + args.options
        env["ARENASHIM_OPTIONS"] = ",".join(options)
        print("arenashim discover: verifying %s on: %s" % (
            spec, " ".join(shlex.quote(a) for a in args.command)), file=sys.stderr)
        status, seconds = run_command(args.command, env)
        dangling, regions, sites = 0, 0, []
        for name in sorted(os.listdir(tmp)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(tmp, name)) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            dangling += data.get("dangling_accesses", 0)
            regions += sum(m.get("regions", 0) for m in data.get("markers", []))
            sites += [{"objects": s.get("escapes", 0), "frames": [
                      f.split(" ", 2)[-1] for f in s.get("frames", [])]}
                      for s in data.get("escape_sites", []) if s.get("escapes")]
    sites.sort(key=lambda s: -s["objects"])
    return {"spec": spec, "exit_status": status, "same_exit_status": status == discovery_status,
            "dangling_accesses": dangling, "regions": regions, "seconds": seconds,
            "escape_sites": sites}


def main(argv):
    args = parse_args(argv)
    library = os.environ.get("ARENASHIM_LIBRARY")
    if not library or not os.path.exists(library):
        fail("ARENASHIM_LIBRARY does not name the built library: run this through scripts/arenashim")
    with tempfile.TemporaryDirectory(prefix="arenashim-discover-") as tmp:
        env = base_env(library)
        options = ["discover=%d" % args.sample, "discover_json=%s/discover.%%p.json" % tmp] + args.options
        env["ARENASHIM_OPTIONS"] = ",".join(options)
        status, seconds = run_command(args.command, env)
        paths = [os.path.join(tmp, n) for n in sorted(os.listdir(tmp)) if n.endswith(".json")]
        functions, processes, sampled, period, following, writing = merge(paths)
    clean, escaping, apart = rank(functions, period)
    print()
    print("arenashim discover: %s" % " ".join(shlex.quote(a) for a in args.command))
    print("  exit status %d; %d process%s; %d objects followed (1 heap allocation in %d); run %.2f s, "
          "of which discovery's own work took %.2f s" % (
              status, processes, "" if processes == 1 else "es", sampled, period, seconds,
              following + writing))
    if processes == 0:
        print("  no process wrote results (a static binary, or one that execs before exiting?)")
    elif sampled == 0:
        print("  no heap allocation was followed: the program allocates too little for 1 in %d "
              "(try --sample 1)" % period)
    print()
    print_table(clean[:args.top], 1, "Clean candidates (no followed object escaped):")
    print_table(escaping[:args.top], len(clean[:args.top]) + 1,
                "Candidates with escapes (a region here would free objects still in use):")
    print_escape_sites(escaping[:args.top])
    if apart:
        print("Set apart (%d): %s%s" % (len(apart), "; ".join(
            "%s: %s" % (m["spec"], m["why_apart"]) for m in apart[:4]), "; ..." if len(apart) > 4 else ""))
        print()
    # The library times its own work: following sampled allocations, and at exit checking
    # the candidates and writing results (a cost per run, not per allocation).  Returns of
    # followed frames through the exit stub are not timed: the ratio is a floor
    # (bench/discover_overhead.py measures the whole of it).
    running = seconds - writing
    if running > 0 and following < running:
        print("Discovery overhead: following allocations took %.2f s of the %.2f s the program ran, "
              "at least %.2fx its plain run (1 allocation in %d; --sample N trades precision for "
              "speed); checking candidates took %.2f s once at exit (each candidate's module is "
              "decoded once)" % (following, running, running / (running - following), period, writing))
        print()
    best = next((m for m in clean if m.get("hookable") is True), None)
    result_verify = None
    if best:
        print("To run with the best candidate marked:")
        print("  scripts/arenashim --region %s -- %s" % (
            shlex.quote(best["spec"]), " ".join(shlex.quote(a) for a in args.command)))
        print()
        if args.verify:
            result_verify = verify(args, library, best["spec"], status)
            print("Verify: %s marked, %d regions, recover mode: %d dangling access%s; exit status %d "
                  "(%s)" % (best["spec"], result_verify["regions"], result_verify["dangling_accesses"],
                            "" if result_verify["dangling_accesses"] == 1 else "es",
                            result_verify["exit_status"],
                            "the same" if result_verify["same_exit_status"] else
                            "discovery's was %d" % status))
            if result_verify["dangling_accesses"]:
                # Kept without a free: a pointer that outlives the call, which only an access
                # shows.  The region is not safe until the program stops doing this.
                print("  %s is not safe as a region: objects allocated in it are used after it "
                      "returns. Escape sites:" % best["spec"])
                for site in result_verify["escape_sites"][:3]:
                    print("    %d objects allocated at:" % site["objects"])
                    for frame in site["frames"][:6]:
                        print("      %s" % frame)
    else:
        print("No clean candidate that a marker can hook.")
        if args.verify:
            print("Verify: nothing to verify.")
    if args.json:
        ordered = clean + escaping + apart
        out = {"command": args.command, "exit_status": status, "processes": processes,
               "sample_period": period, "sampled_objects": sampled, "seconds": seconds,
               "seconds_following": following, "seconds_writing": writing,
               "candidates": [{k: m.get(k) for k in (
                   "spec", "function", "module", "calls", "objects", "bytes", "escaped_objects",
                   "leaked_objects", "freed_by_other_thread", "objects_per_call", "bytes_per_call",
                   "depth", "hookable", "refusal", "escape_sites")} for m in ordered]}
        for c, m in zip(out["candidates"], ordered):
            c["clean"] = m in clean
            c["set_apart"] = m.get("why_apart")
        if result_verify:
            out["verify"] = result_verify
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    if args.verify and result_verify:
        return 0 if result_verify["dangling_accesses"] == 0 and result_verify["same_exit_status"] else 1
    return 0


if __name__ == "__main__":
    # Output piped into head: end quietly, as a command-line tool does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
