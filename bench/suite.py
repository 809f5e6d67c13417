#!/usr/bin/python3
"""suite.py — the benchmark suite of issue 6: micro-benchmarks and whole-program workloads
under glibc, jemalloc, mimalloc, tcmalloc and arenashim, as tables, CSV and a chart.

Builds nothing (scripts/bench installs, builds, then runs this).  Steps:

1. bench/run_micro.py (alloc_micro and scan_throughput: ns per malloc+free, build-then-free,
   region begin+end, scan GB/s against a plain read), its tables included as they are;
2. bench/discover_overhead.py (what `scripts/arenashim discover` costs a run at each sampling
   period, and whether its best candidate stays the known answer), its table included;
3. the workloads of bench/workloads/ -- ordinary programs that know nothing of arenashim --
   under seven configurations: glibc, LD_PRELOAD of jemalloc, mimalloc and tcmalloc,
   arenashim without a marker, arenashim with the program's natural function marked
   (ARENASHIM_REGIONS, strict default mode), the same with partial_reuse=1 and with
   revoke_batch=32.  Runs are
   interleaved (every configuration once per round, the order rotating from round to round)
   so that a noisy moment on a shared machine hits them all; each figure is the median over
   the rounds, and each ratio the median of the ratios measured within one round.  Every
   process must exit 0 and print the same checksum as under glibc; with a marker, the
   statistics (stats_json) must show one region per call of the marked function.
4. what each configuration costs the kernel: minor page faults (wait4's rusage), TLB
   shootdowns (the TLB line of /proc/interrupts, read before and after each process; other
   processes of the machine add to it, so it is an upper bound), and, with a marker, the
   system calls on chunk memory (memory_calls) and kernel mappings at exit (kernel_mappings)
   from the statistics -- per region where a marker is set.

Writes build/bench-results/: summary.md (everything printed), workloads.csv (medians and
ratios), workload_runs.csv (every process), rss_timeline.csv (the leaky handler's resident set
over time), bench.png (the chart; skipped with a message when matplotlib is missing), and
run_micro.py's micro.md, micro.csv, scan.csv.  Exits 1 when a workload crashed, printed a
wrong checksum or did not open its regions, or run_micro.py failed; never for the chart.

    /usr/bin/python3 bench/suite.py [--quick] [--runs N] [--build DIR] [--no-micro] [--no-scan]
                                    [--no-discover]
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_micro import describe_machine  # noqa: E402  (one machine line for both tables)

LIBDIR = "/usr/lib/x86_64-linux-gnu"
ALLOCATORS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
PRELOADS = {
    "jemalloc": LIBDIR + "/libjemalloc.so.2",
    "mimalloc": LIBDIR + "/libmimalloc.so.2",
    "tcmalloc": LIBDIR + "/libtcmalloc_minimal.so.4",
}
# (name, label, preload, marker?, ARENASHIM_OPTIONS)
CONFIGS = [
    ("glibc", "glibc", None, False, None),
    ("jemalloc", "jemalloc", "jemalloc", False, None),
    ("mimalloc", "mimalloc", "mimalloc", False, None),
    ("tcmalloc", "tcmalloc", "tcmalloc", False, None),
    ("shim", "arenashim, no marker", "arenashim", False, None),
    ("strict", "arenashim + marker (strict)", "arenashim", True, None),
    ("partial", "arenashim + marker, partial_reuse=1", "arenashim", True, "partial_reuse=1"),
    ("batch", "arenashim + marker, revoke_batch=32", "arenashim", True, "revoke_batch=32"),
]
LABELS = {name: label for name, label, _, _, _ in CONFIGS}

# (name, title, executable, arguments, quick arguments, marker, calls of the marker, quick calls)
WORKLOADS = [
    ("request", "request loop (1 thread)", "wl_request", ["20000"], ["2000"],
     "handle_request", 20000, 2000),
    ("compile", "compiler pass (AST per file)", "wl_compile", ["400"], ["40"],
     "compile_unit", 400, 40),
    ("server", "server, 2 threads", "wl_server", ["20000", "--threads", "2"],
     ["2000", "--threads", "2"], "handle_request", 20000, 2000),
    ("leaky", "leaky handler", "wl_request", ["20000", "--leak", "--rss-every", "500"],
     ["2000", "--leak", "--rss-every", "100"], "handle_request", 20000, 2000),
]
# The checksums the workloads print (for the default and --quick arguments), computed under
# glibc when the programs were written: a workload that computes something else under every
# allocator is caught too.  wl_request, wl_server and the leaky wl_request render the same
# responses and combine them in the same order, so they print the same checksum.  Update these
# when a workload changes on purpose.
EXPECTED = {
    ("request", False): "fc81080fb53d10f0", ("request", True): "c669589407e4fe85",
    ("server", False): "fc81080fb53d10f0", ("server", True): "c669589407e4fe85",
    ("leaky", False): "fc81080fb53d10f0", ("leaky", True): "c669589407e4fe85",
    ("compile", False): "b0733a4251c47fef", ("compile", True): "a64c3ea5f15436a4",
}
WORKLOAD_NOTES = {
    "request": "parse an HTTP-like request with a JSON body into a tree of ~600 small objects "
               "(16-64 KiB), render a JSON response, free it; marker handle_request",
    "compile": "lex, parse into an AST, resolve names through per-block hash tables, fold "
               "constants, emit code, free; units of a few KiB to ~10 MiB of allocations; "
               "marker compile_unit",
    "server": "the request handler on 2 worker threads taking requests from a shared counter; "
              "marker handle_request",
    "leaky": "the request loop whose retry path (1 request in 6) forgets to free the parsed "
             "body; marker handle_request",
}


class Failure(Exception):
    pass


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return "{:,.0f}".format(value)
    return "%.*f" % (digits, value)


def mib(kib):
    return "n/a" if kib is None else fmt(kib / 1024)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def clean_env():
    env = dict(os.environ)
    for key in list(env):
        if key == "LD_PRELOAD" or key.startswith("ARENASHIM_") or key.startswith("MALLOC_") \
                or key.startswith("MIMALLOC_") or key.startswith("TCMALLOC_"):
            del env[key]
    return env


def tlb_shootdowns():
    """The machine's TLB shootdown interrupts so far (all CPUs), or None without the line."""
    try:
        with open("/proc/interrupts") as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] == "TLB:":
                    return sum(int(x) for x in fields[1:] if x.isdigit())
    except OSError:
        pass
    return None


def run_process(command, env, timeout):
    """Runs command; returns (status, stdout, stderr, wall s, rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), wall, usage)


def one_run(workload, config, paths, quick, stats_dir, timeout):
    name, _, exe, args, quick_args, marker, calls, quick_calls = workload
    cname, _, preload, with_marker, options = config
    env = clean_env()
    if preload == "arenashim":
        env["LD_PRELOAD"] = paths["arenashim"]
    elif preload:
        env["LD_PRELOAD"] = PRELOADS[preload]
    stats = None
    if with_marker:
        env["ARENASHIM_REGIONS"] = marker
        stats = os.path.join(stats_dir, "%s-%s.json" % (name, cname))
        if os.path.exists(stats):
            os.unlink(stats)
        env["ARENASHIM_OPTIONS"] = ",".join(filter(None, [options, "stats_json=" + stats]))
    elif options:
        env["ARENASHIM_OPTIONS"] = options
    command = [os.path.join(paths["bench"], exe)] + (quick_args if quick else args)
    tlb_before = tlb_shootdowns()
    status, out, err, wall, usage = run_process(command, env, timeout)
    tlb_after = tlb_shootdowns()
    result = {"workload": name, "config": cname, "wall_s": wall,
              "minor_faults": usage.ru_minflt,
              "tlb_shootdowns": None if tlb_before is None else tlb_after - tlb_before,
              "memory_calls": None, "kernel_mappings": None, "regions": None,
              "cpu_s": usage.ru_utime + usage.ru_stime, "ru_maxrss_kib": usage.ru_maxrss,
              "maxrss_kib": None, "start_rss_kib": None,
              "status": status, "checksum": None, "loop_s": None, "rss": [], "error": None,
              "messages": [l for l in err.splitlines() if l.startswith("arenashim")]}
    for line in out.splitlines():
        if line.startswith("checksum "):
            result["checksum"] = line.split()[1]
    for line in err.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "loop_ns":
            result["loop_s"] = int(parts[1]) / 1e9
        elif len(parts) == 2 and parts[0] == "peak_rss_kib":
            result["maxrss_kib"] = int(parts[1])
        elif len(parts) == 2 and parts[0] == "start_rss_kib":
            result["start_rss_kib"] = int(parts[1])
        elif len(parts) == 3 and parts[0] == "rss":
            result["rss"].append((int(parts[1]), int(parts[2])))
    if result["maxrss_kib"] is None:
        # Not printed: ru_maxrss, which over-counts (it includes the RSS of the forking Python).
        result["maxrss_kib"] = usage.ru_maxrss
    where = "%s under %s (%s)" % (exe, LABELS[cname], " ".join(command[1:]))
    if status != 0:
        how = "was killed by signal %d" % -status if status < 0 else "exited %d" % status
        result["error"] = "%s %s; stderr:\n%s" % (where, how, err[-2000:] or "(empty)")
    elif result["checksum"] is None or result["loop_s"] is None:
        result["error"] = "%s printed no checksum or loop_ns; stdout:\n%s\nstderr:\n%s" % (
            where, out[-1000:], err[-1000:])
    elif with_marker:
        expected = quick_calls if quick else calls
        try:
            with open(stats) as f:
                data = json.load(f)
            regions = sum(m.get("regions", 0) for m in data.get("markers", []))
            if regions != expected:
                result["error"] = "%s: the marker %s opened %d regions, expected %d (%s)" % (
                    where, marker, regions, expected, json.dumps(data.get("markers")))
            result["regions"] = regions
            result["memory_calls"] = data.get("memory_calls")
            result["kernel_mappings"] = data.get("kernel_mappings")
        except (OSError, ValueError) as e:
            result["error"] = "%s: no statistics from stats_json (%s)" % (where, e)
    return result


def run_workloads(args, paths):
    configs = []
    for config in CONFIGS:
        preload = config[2]
        path = paths["arenashim"] if preload == "arenashim" else PRELOADS.get(preload)
        if path and not os.path.exists(path):
            print("note: %s not found (%s): skipped" % (config[1], path), file=sys.stderr)
            continue
        configs.append(config)
    runs = []
    failures = []
    stats_dir = tempfile.mkdtemp(prefix="arenashim-bench-")
    rounds = args.runs
    for r in range(rounds):
        for w, workload in enumerate(WORKLOADS):
            # Rotate the order from round to round (and workload to workload), so that no
            # configuration always runs first, after the same neighbour, or on a cold cache.
            shift = (r + w) % len(configs)
            for config in configs[shift:] + configs[:shift]:
                result = one_run(workload, config, paths, args.quick, stats_dir, args.timeout)
                result["round"] = r
                runs.append(result)
                if result["error"]:
                    failures.append(result["error"])
                    print("FAILED: " + result["error"], file=sys.stderr)
        print("workloads: round %d of %d done" % (r + 1, rounds), file=sys.stderr)
    for name in os.listdir(stats_dir):
        os.unlink(os.path.join(stats_dir, name))
    os.rmdir(stats_dir)

    # Checksums: every run of a workload prints the known one (EXPECTED).
    reference = {}
    for result in runs:
        want = EXPECTED[(result["workload"], args.quick)]
        reference[result["workload"]] = want
        if result["checksum"] and result["checksum"] != want:
            print("FAILED: %s under %s printed checksum %s, expected %s" % (
                result["workload"], LABELS[result["config"]], result["checksum"], want),
                file=sys.stderr)
            failures.append("%s under %s printed checksum %s, expected %s" % (
                result["workload"], LABELS[result["config"]], result["checksum"], want))
    return configs, runs, failures, reference


def summarise(configs, runs):
    """Medians per (workload, config), and per-round ratios of the loop's wall time ("x_")
    and of the process's CPU time ("cpu_x_") against glibc, jemalloc and the best of the four
    allocators (the one with the lowest median, by wall time and by CPU time)."""
    table = {}
    by_key = {}
    for result in runs:
        if result["error"] is None:
            by_key.setdefault((result["workload"], result["config"]), []).append(result)
    for workload in WORKLOADS:
        name = workload[0]
        per_round = {}
        for (w, c), results in by_key.items():
            if w == name:
                for res in results:
                    per_round.setdefault(res["round"], {})[c] = res
        medians = {}
        for config in configs:
            c = config[0]
            results = by_key.get((name, c), [])
            if not results:
                continue
            medians[c] = {
                "loop_s": median([r["loop_s"] for r in results]),
                "wall_s": median([r["wall_s"] for r in results]),
                "cpu_s": median([r["cpu_s"] for r in results]),
                "maxrss_kib": median([r["maxrss_kib"] for r in results]),
                "start_rss_kib": median([r["start_rss_kib"] for r in results]),
                "loop_rss_kib": median([r["maxrss_kib"] - r["start_rss_kib"] for r in results
                                        if r["start_rss_kib"] is not None]),
                "runs": len(results),
            }
            medians[c]["startup_s"] = median([r["wall_s"] - r["loop_s"] for r in results])
            for key in ("minor_faults", "tlb_shootdowns", "memory_calls", "kernel_mappings",
                        "regions"):
                medians[c][key] = median([r[key] for r in results])
            growth = [r["rss"][-1][1] - r["rss"][0][1] for r in results if r["rss"]]
            medians[c]["rss_growth_kib"] = median(growth)
        present = [a for a in ALLOCATORS if a in medians]
        best = min(present, key=lambda a: medians[a]["loop_s"]) if present else None
        best_cpu = min(present, key=lambda a: medians[a]["cpu_s"]) if present else None
        for c, entry in medians.items():
            for ref_name, ref, ref_cpu in (("glibc", "glibc", "glibc"),
                                           ("jemalloc", "jemalloc", "jemalloc"),
                                           ("best", best, best_cpu)):
                ratios, cpu_ratios, rss_ratios = [], [], []
                for rnd in per_round.values():
                    if c in rnd and ref in rnd:
                        ratios.append(rnd[c]["loop_s"] / rnd[ref]["loop_s"])
                        rss_ratios.append(rnd[c]["maxrss_kib"] / rnd[ref]["maxrss_kib"])
                    if c in rnd and ref_cpu in rnd:
                        cpu_ratios.append(rnd[c]["cpu_s"] / rnd[ref_cpu]["cpu_s"])
                entry["x_" + ref_name] = median(ratios)
                entry["cpu_x_" + ref_name] = median(cpu_ratios)
                entry["rss_x_" + ref_name] = median(rss_ratios)
        table[name] = {"configs": medians, "best": best, "best_cpu": best_cpu}
    return table


def workload_tables(configs, table, rounds, quick):
    lines = []
    for workload in WORKLOADS:
        name, title = workload[0], workload[1]
        entry = table.get(name)
        if not entry or not entry["configs"]:
            continue
        lines += ["### %s" % title, "", WORKLOAD_NOTES[name] + ".", "",
                  "| configuration | loop ms | x jemalloc | x best (%s) | CPU ms | CPU x jemalloc "
                  "| CPU x best (%s) | start-up ms | RSS at start MiB | peak RSS MiB "
                  "| peak - start MiB |" % (entry["best"] or "n/a", entry["best_cpu"] or "n/a"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for config in configs:
            m = entry["configs"].get(config[0])
            if not m:
                continue
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                config[1], fmt(m["loop_s"] * 1e3), fmt(m["x_jemalloc"], 2), fmt(m["x_best"], 2),
                fmt(m["cpu_s"] * 1e3), fmt(m["cpu_x_jemalloc"], 2), fmt(m["cpu_x_best"], 2),
                fmt(m["startup_s"] * 1e3), mib(m["start_rss_kib"]), mib(m["maxrss_kib"]),
                mib(m["loop_rss_kib"])))
        lines.append("")
    return lines


def cost_tables(configs, table, quick):
    """What each configuration costs the kernel, per call of the workload's unit of work (a
    region, where a marker is set)."""
    lines = ["What each configuration asks of the kernel, medians over the rounds, per call of "
             "the workload's unit of work (the marked function: one region each under a marker). "
             "TLB shootdowns are the machine's (the TLB line of /proc/interrupts around the "
             "process): other processes add to them, so they are an upper bound.  Memory calls are "
             "arenashim's mmap/munmap/mprotect/madvise/mremap on chunk memory (statistics "
             "`memory_calls`); kernel mappings are /proc/self/maps lines at exit.", ""]
    for workload in WORKLOADS:
        name, title = workload[0], workload[1]
        calls = workload[7] if quick else workload[6]
        entry = table.get(name)
        if not entry or not entry["configs"]:
            continue
        lines += ["### %s (%s calls)" % (title, fmt(calls, 0)), "",
                  "| configuration | minor faults | per call | TLB shootdowns | per call "
                  "| memory calls per region | kernel mappings at exit |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for config in configs:
            m = entry["configs"].get(config[0])
            if not m:
                continue
            per = lambda v, d=2: fmt(v / calls, d) if v is not None else "n/a"  # noqa: E731
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                config[1], fmt(m["minor_faults"], 0), per(m["minor_faults"]),
                fmt(m["tlb_shootdowns"], 0), per(m["tlb_shootdowns"], 3),
                fmt(m["memory_calls"] / m["regions"], 2) if m["memory_calls"] is not None
                and m["regions"] else "n/a",
                fmt(m["kernel_mappings"], 0)))
        lines.append("")
    return lines


def rss_table(configs, runs):
    """The leaky handler's resident set: first sample, middle, last, from the last round."""
    last = {}
    for result in runs:
        if result["workload"] == "leaky" and result["error"] is None and result["rss"]:
            last[result["config"]] = result
    if not last:
        return [], []
    lines = ["| configuration | RSS at start MiB | halfway MiB | at end MiB | growth MiB | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    rows = []
    for config in configs:
        result = last.get(config[0])
        if not result:
            continue
        samples = result["rss"]
        first, middle, end = samples[0][1], samples[len(samples) // 2][1], samples[-1][1]
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            config[1], fmt(first / 1024), fmt(middle / 1024), fmt(end / 1024),
            fmt((end - first) / 1024), fmt(result["maxrss_kib"] / 1024)))
        for done, kib in samples:
            rows.append({"config": config[0], "label": config[1], "round": result["round"],
                         "requests": done, "rss_kib": kib})
    return lines, rows


def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def micro_values(results):
    values = {}
    for row in read_csv(os.path.join(results, "micro.csv")):
        try:
            values[(row["allocator"], row["test"])] = float(row["value"])
        except (KeyError, ValueError):
            pass
    return values


def target_lines(results, table):
    """The issue's targets, each with the measured ratio and whether it is met."""
    micro = micro_values(results)
    scan = read_csv(os.path.join(results, "scan.csv"))
    rows = []

    def add(target, measured, ok, note=""):
        verdict = "n/a" if ok is None else ("met" if ok else "**missed**")
        rows.append("| %s | %s | %s | %s |" % (target, measured, verdict, note))

    def get(alloc, test):
        return micro.get((alloc, test))

    fast = get("arenashim (regions)", "pairs_1region")
    amortised = get("arenashim (regions)", "pairs")
    bump = get("arenashim (regions)", "bump_pairs")
    if fast and bump:
        add("in-region malloc+free <= 1.3x bare bump (noinline)", "%.2fx (%.2f vs %.2f ns)" % (
            fast / bump, fast, bump), fast / bump <= 1.3, "one long region (fast path)")
    if amortised and bump:
        add("same, one region per 1000 pairs", "%.2fx (%.2f ns)" % (amortised / bump, amortised),
            amortised / bump <= 1.3, "begin+end amortised over 1000 pairs")
    for alloc, need in (("jemalloc", 3.0), ("mimalloc", 2.0)):
        theirs = get(alloc, "pairs")
        if fast and theirs:
            add("in-region throughput >= %gx %s's" % (need, alloc), "%.2fx (%.2f vs %.2f ns)" % (
                theirs / fast, theirs, fast), theirs / fast >= need)
    for test, title in (("pairs", "pairs"), ("build_free", "build N, free all"),
                        ("build_free_2t", "build+free, 2 threads")):
        shim, jem = get("arenashim (no region)", test), get("jemalloc", test)
        if shim and jem:
            add("outside regions within 5%% of jemalloc: micro %s" % title,
                "%.2fx" % (shim / jem), shim / jem <= 1.05)
    def both(m, key, ref_wall, ref_cpu):
        return "CPU %.2fx %s, wall %.2fx %s" % (m["cpu_x_" + key], ref_cpu, m["x_" + key], ref_wall)

    for workload in WORKLOADS:
        m = table.get(workload[0], {}).get("configs", {}).get("shim")
        if m and m.get("cpu_x_jemalloc") and m.get("x_jemalloc"):
            add("outside regions within 5%% of jemalloc: %s" % workload[1],
                both(m, "jemalloc", "jemalloc", "jemalloc"), m["cpu_x_jemalloc"] <= 1.05,
                "verdict on CPU time (stable on a shared machine)")
    # Issue 11: each mode against the best allocator, and the TLB shootdowns it causes.
    limits = {  # (config, workload): the CPU ratio to the best allocator it must stay under
        ("partial", "request"): 1.0, ("partial", "compile"): 1.0, ("partial", "leaky"): 1.0,
        ("partial", "server"): 1.1, ("strict", "request"): 1.3, ("strict", "compile"): 1.3,
        ("strict", "server"): 2.0,
    }
    for (c, w), limit in limits.items():
        entry = table.get(w, {})
        m = entry.get("configs", {}).get(c)
        if not m or not m.get("cpu_x_best") or not m.get("x_best"):
            continue
        title = next(t for n, t, *_ in WORKLOADS if n == w)
        add("%s, %s: %s the best allocator" % (title, LABELS[c].split(", ")[-1].replace(
            "arenashim + marker (strict)", "strict"),
            "faster than" if limit == 1.0 else "within %gx of" % limit),
            both(m, "best", entry["best"], entry["best_cpu"]),
            m["cpu_x_best"] < limit if limit == 1.0 else m["cpu_x_best"] <= limit,
            "verdict on CPU time")
    # revoke_batch=32 is partial_reuse plus one revocation per 32 region ends of a thread: it
    # should cost little more CPU than partial_reuse, and about 1/32 shootdown per region more.
    for w in ("request", "compile", "server", "leaky"):
        entry = table.get(w, {}).get("configs", {})
        batch, partial = entry.get("batch"), entry.get("partial")
        if batch and partial and batch.get("cpu_x_best") and partial.get("cpu_x_best"):
            ratio = batch["cpu_x_best"] / partial["cpu_x_best"]
            title = next(t for n, t, *_ in WORKLOADS if n == w)
            add("%s, revoke_batch=32: within 5%% of partial_reuse=1's CPU time" % title,
                "%.3fx (CPU %.2fx vs %.2fx the best allocator)" % (
                    ratio, batch["cpu_x_best"], partial["cpu_x_best"]), ratio <= 1.05)
    server = table.get("server", {}).get("configs", {})
    if server.get("batch") and server.get("partial") and server["batch"].get("regions") \
            and server["batch"].get("tlb_shootdowns") is not None \
            and server["partial"].get("tlb_shootdowns") is not None:
        extra = (server["batch"]["tlb_shootdowns"] - server["partial"]["tlb_shootdowns"]) \
            / server["batch"]["regions"]
        add("server, 2 threads, revoke_batch=32: at most 1/32 TLB shootdown per region end more "
            "than partial_reuse=1", "%.3f more" % extra, extra <= 1 / 32,
            "the batch's revocation, and moving protected pages when a chunk is done")
    for c, per in (("strict", 1), ("partial", 1 / 32)):
        m = server.get(c)
        if m and m.get("tlb_shootdowns") is not None and m.get("regions"):
            rate = m["tlb_shootdowns"] / m["regions"]
            add("server, 2 threads, %s: at most %s TLB shootdown%s per region end" % (
                LABELS[c].split(", ")[-1].replace("arenashim + marker (strict)", "strict"),
                "one" if per == 1 else "1/32", "" if per == 1 else "s"),
                "%.3f (%s in %s regions)" % (rate, fmt(m["tlb_shootdowns"], 0),
                                             fmt(m["regions"], 0)), rate <= per,
                "the machine's count: other processes add to it")
    request = table.get("request", {})
    configs = request.get("configs", {})
    if configs.get("strict") and configs.get("jemalloc"):
        mine, theirs = configs["strict"], configs["jemalloc"]
        r = mine.get("rss_x_jemalloc")
        if r:
            add("request loop, strict: peak RSS <= jemalloc's", "%.2fx (%s vs %s MiB)" % (
                r, mib(mine["maxrss_kib"]), mib(theirs["maxrss_kib"])), r <= 1.0,
                "above the RSS at loop start: %s vs %s MiB" % (
                    mib(mine["loop_rss_kib"]), mib(theirs["loop_rss_kib"])))
    def number(row, key):
        try:
            return float(row[key])
        except (KeyError, TypeError, ValueError):
            return None

    # Issue 12: the pause per GiB of the concurrent path; the parallel stop against one thread.
    by_path = {(row.get("heap"), row.get("path")): row for row in scan}
    for (heap, path), row in by_path.items():
        if path == "concurrent" and number(row, "pause_ms_per_gib") is not None:
            concurrent = number(row, "concurrent") == 1
            add("scan pause <= 2 ms per GiB, 1%% of pages written (%s heap)" % heap,
                "%.2f ms/GiB (%s ms; concurrent phase %s ms)" % (
                    number(row, "pause_ms_per_gib"), fmt(number(row, "pause_ms"), 2),
                    fmt(number(row, "concurrent_ms"))),
                number(row, "pause_ms_per_gib") <= 2.0 if concurrent else None,
                "writer %.2fx slower during the scan" % (number(row, "writer_slowdown") or 0)
                if concurrent else "the kernel cannot track writes here: no concurrent path")
        if path == "stop":
            single = by_path.get((heap, "stop-1"))
            if single and number(row, "pause_ms") and number(single, "pause_ms"):
                r = number(row, "pause_ms") / number(single, "pause_ms")
                add("stop-the-world pause with %s threads <= 0.6x one thread's (%s heap)" % (
                    fmt(number(row, "threads"), 0), heap), "%.2fx (%s vs %s ms)" % (
                    r, fmt(number(row, "pause_ms"), 1), fmt(number(single, "pause_ms"), 1)),
                    r <= 0.6 if (number(row, "threads") or 1) > 1 else None)
        if path == "stop-1" and number(row, "ratio") is not None:
            add("scan >= 70%% of read bandwidth, one thread (%s heap)" % heap,
                "%.0f%% (%s of %s GB/s)" % (number(row, "ratio") * 100, fmt(number(row, "scan_gbps")),
                                           fmt(number(row, "read_gbps"))), number(row, "ratio") >= 0.7,
                "pause %s ms" % fmt(number(row, "pause_ms")))
    leaky = table.get("leaky", {}).get("configs", {})
    glibc_growth = leaky.get("glibc", {}).get("rss_growth_kib")
    for c in ("strict", "partial"):
        growth = leaky.get(c, {}).get("rss_growth_kib")
        if growth is None or not glibc_growth:
            continue
        add("leaky handler: RSS held flat with the marker (%s)" % ("strict" if c == "strict" else
                                                                  "partial_reuse=1"),
            "grows %s MiB vs %s MiB under glibc, %s under jemalloc" % (
                fmt(growth / 1024), fmt(glibc_growth / 1024),
                fmt(leaky.get("jemalloc", {}).get("rss_growth_kib", 0) / 1024)),
            growth <= 0.1 * glibc_growth, "growth over the run; peak %s MiB vs %s MiB" % (
                fmt(leaky[c]["maxrss_kib"] / 1024), fmt(leaky["glibc"]["maxrss_kib"] / 1024)))
    if not rows:
        return []
    return ["| target | measured | | note |", "|---|---|---|---|"] + rows


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def chart(path, configs, table, rss_rows, results):
    """A PNG with matplotlib: workload loop times against glibc, the leaky handler's RSS over
    time, and the micro malloc+free pair.  Returns a message; never raises."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001 - any import problem means no chart
        return "chart skipped: matplotlib is not available (%s); install python3-matplotlib" % e
    try:
        colors = ["#777777", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#d62728", "#e377c2"]
        fig, axes = plt.subplots(1, 3, figsize=(15, 5), gridspec_kw={"width_ratios": [2.2, 1.4, 1.2]})
        ax = axes[0]
        names = [w for w in WORKLOADS if table.get(w[0], {}).get("configs")]
        width = 0.8 / max(1, len(configs))
        for i, config in enumerate(configs):
            xs, ys = [], []
            for j, workload in enumerate(names):
                m = table[workload[0]]["configs"].get(config[0])
                if m and m.get("cpu_x_jemalloc"):
                    xs.append(j + (i - (len(configs) - 1) / 2) * width)
                    ys.append(m["cpu_x_jemalloc"])
            ax.bar(xs, ys, width, label=config[1], color=colors[i % len(colors)])
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(names)))
        short = {"request": "request loop", "compile": "compiler pass", "server": "server, 2 threads",
                 "leaky": "leaky handler"}
        ax.set_xticklabels([short.get(w[0], w[0]) for w in names], fontsize=8)
        ax.set_ylabel("CPU time / jemalloc's (lower is better)")
        ax.set_title("Workloads: CPU time against jemalloc (median of per-round ratios)",
                     fontsize=10)
        handles, legend_labels = ax.get_legend_handles_labels()

        ax = axes[1]
        for i, config in enumerate(configs):
            points = [(r["requests"], r["rss_kib"] / 1024) for r in rss_rows if r["config"] == config[0]]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=config[1],
                        color=colors[i % len(colors)], linewidth=1.4)
        ax.set_xlabel("requests handled")
        ax.set_ylabel("resident set (MiB)")
        ax.set_title("Leaky handler: RSS over time", fontsize=10)

        ax = axes[2]
        micro = micro_values(results)
        bars = [("glibc", "pairs"), ("jemalloc", "pairs"), ("mimalloc", "pairs"),
                ("tcmalloc", "pairs"), ("arenashim (no region)", "pairs"),
                ("arenashim (regions)", "pairs"), ("arenashim (regions)", "pairs_1region"),
                ("arenashim (regions)", "bump_pairs")]
        labels = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "shim, no region",
                  "region/1000 pairs", "one region", "bare bump"]
        values = [micro.get(b) for b in bars]
        shown = [(l, v) for l, v in zip(labels, values) if v is not None]
        if shown:
            ax.barh([l for l, _ in shown], [v for _, v in shown], color="#4c72b0")
            ax.invert_yaxis()
            ax.set_xlabel("ns per malloc+free pair (8..512 B)")
            ax.tick_params(axis="y", labelsize=8)
        ax.set_title("Micro: malloc+free", fontsize=10)
        fig.legend(handles, legend_labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.savefig(path, dpi=72)
        plt.close(fig)
        return "chart: %s" % path
    except Exception as e:  # noqa: BLE001 - the chart must never fail the run
        return "chart skipped: plotting failed (%s: %s)" % (type(e).__name__, e)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in well under a minute: short workloads, one round")
    parser.add_argument("--runs", type=int, help="rounds of workload runs (default 7, quick 1)")
    parser.add_argument("--micro-runs", type=int,
                        help="processes per allocator in run_micro.py (default 5, quick 1)")
    parser.add_argument("--build", default=None, help="build directory (default: build)")
    parser.add_argument("--no-micro", action="store_true", help="skip bench/run_micro.py")
    parser.add_argument("--no-scan", action="store_true", help="skip the scan benchmark")
    parser.add_argument("--no-discover", action="store_true",
                        help="skip bench/discover_overhead.py (what discover costs a run)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per process")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 7
    if args.micro_runs is None:
        args.micro_runs = 1 if args.quick else 5

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(args.build or os.path.join(root, "build"))
    paths = {"bench": os.path.join(build, "bench"),
             "arenashim": os.path.join(build, "preload", "libarenashim.so")}
    missing = [p for p in [paths["arenashim"]] + [os.path.join(paths["bench"], w[2]) for w in WORKLOADS]
               if not os.path.exists(p)]
    if missing:
        sys.exit("suite.py: %s missing: run scripts/bench (or ninja -C %s) first" % (
            ", ".join(missing), build))
    results = os.path.join(build, "bench-results")
    os.makedirs(results, exist_ok=True)

    started = time.monotonic()
    failures = []
    out = ["# arenashim benchmarks%s" % (" (quick smoke run: not for quoting)" if args.quick else ""),
           "", describe_machine(), ""]

    if not args.no_micro:
        command = ["/usr/bin/python3", os.path.join(root, "bench", "run_micro.py"),
                   "--build", build, "--runs", str(args.micro_runs)]
        if args.quick:
            command.append("--quick")
        if args.no_scan:
            command.append("--no-scan")
        print("running %s" % " ".join(command), file=sys.stderr)
        proc = subprocess.run(command, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            failures.append("run_micro.py exited %d:\n%s" % (proc.returncode, proc.stderr[-3000:]))
            print("FAILED: run_micro.py exited %d\n%s" % (proc.returncode, proc.stderr[-3000:]),
                  file=sys.stderr)
        else:
            text = proc.stdout
            # Drop its own title and machine line; demote its headings under ours.
            body = text.split("\n", 3)[3] if text.startswith("# ") else text
            out += ["## Micro-benchmarks (bench/run_micro.py)", ""]
            out += [("#" + l if l.startswith("## ") else l) for l in body.rstrip().splitlines()]
            out.append("")

    if not args.no_discover:
        command = ["/usr/bin/python3", os.path.join(root, "bench", "discover_overhead.py"),
                   "--build", build] + (["--quick"] if args.quick else ["--runs", str(min(args.runs, 5))])
        print("running %s" % " ".join(command), file=sys.stderr)
        proc = subprocess.run(command, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        body = proc.stdout.split("\n", 3)[3] if proc.stdout.startswith("# ") else proc.stdout
        out += ["## Discover: overhead and sampling (bench/discover_overhead.py)", ""]
        out += [("#" + l if l.startswith("## ") else l) for l in body.rstrip().splitlines()]
        out.append("")
        if proc.returncode != 0:
            failures.append("discover_overhead.py exited %d:\n%s" % (proc.returncode, proc.stderr[-3000:]))

    print("running the workloads (%d round%s)" % (args.runs, "s" if args.runs > 1 else ""),
          file=sys.stderr)
    configs, runs, workload_failures, reference = run_workloads(args, paths)
    failures += workload_failures
    table = summarise(configs, runs)
    out += ["## Workloads (bench/workloads/)", "",
            "Median of %d round%s; each round runs every configuration once, interleaved.  'loop "
            "ms' is the program's own wall-clock timing of its main loop; 'CPU ms' the process's "
            "user+system time (wait4), which other processes on a shared machine disturb far "
            "less; 'x ...' are medians of ratios taken within a round, against jemalloc and "
            "against the best of the four allocators (by median, wall or CPU); 'start-up' is "
            "the process's wall time minus its loop (loading, marker hooking, exit).  RSS at start is the program's own "
            "when its loop begins (libraries and allocator start-up), peak RSS its VmHWM at the "
            "end (a child's ru_maxrss would include the forking Python's RSS).  "
            "Every run printed the workload's known checksum: %s." % (
                args.runs, "s" if args.runs > 1 else "",
                "yes" if not workload_failures else "NO (see failures)"), ""]
    out += workload_tables(configs, table, args.runs, args.quick)
    out += ["## What it costs the kernel", ""] + cost_tables(configs, table, args.quick)
    rss_lines, rss_rows = rss_table(configs, runs)
    if rss_lines:
        out += ["### Leaky handler: resident set over time (last round)", ""] + rss_lines + [""]
    targets = target_lines(results, table)
    if targets:
        out += ["## Targets (issues 6, 11 and 12)", ""] + targets + [""]
    if failures:
        out += ["## FAILURES", ""] + ["- " + f.replace("\n", "\n  ") for f in failures] + [""]
    message = chart(os.path.join(results, "bench.png"), configs, table, rss_rows, results)
    out += [message, "", "(%.1f s)" % (time.monotonic() - started)]
    text = "\n".join(out) + "\n"
    print(text, end="")

    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(text)
    rows = []
    for workload in WORKLOADS:
        for config in configs:
            m = table.get(workload[0], {}).get("configs", {}).get(config[0])
            if m:
                rows.append({"workload": workload[0], "config": config[0], "label": config[1],
                             **{k: ("%.6g" % v if isinstance(v, float) else v) for k, v in m.items()},
                             "best_allocator": table[workload[0]]["best"],
                             "best_allocator_cpu": table[workload[0]]["best_cpu"],
                             "checksum": reference.get(workload[0], "")})
    write_csv(os.path.join(results, "workloads.csv"), rows,
              ["workload", "config", "label", "runs", "loop_s", "x_glibc", "x_jemalloc", "x_best",
               "best_allocator", "cpu_x_glibc", "cpu_x_jemalloc", "cpu_x_best", "best_allocator_cpu", "wall_s", "startup_s", "cpu_s", "start_rss_kib", "maxrss_kib",
               "loop_rss_kib", "rss_growth_kib",
               "rss_x_glibc",
               "rss_x_jemalloc", "rss_x_best", "minor_faults", "tlb_shootdowns",
               "memory_calls", "kernel_mappings", "regions", "checksum"])
    write_csv(os.path.join(results, "workload_runs.csv"), runs,
              ["round", "workload", "config", "status", "checksum", "loop_s", "wall_s", "cpu_s",
               "start_rss_kib", "maxrss_kib", "ru_maxrss_kib", "minor_faults", "tlb_shootdowns",
               "memory_calls", "kernel_mappings", "regions", "error"])
    write_csv(os.path.join(results, "rss_timeline.csv"), rss_rows,
              ["config", "label", "round", "requests", "rss_kib"])
    if failures:
        print("suite.py: %d failure%s (above)" % (len(failures), "s" if len(failures) > 1 else ""),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
