#!/usr/bin/python3
"""run_micro.py — runs the allocation and scan micro-benchmarks and tabulates them.

Builds nothing: run `ninja -C build` first.  Runs build/bench/alloc_micro under glibc (no
preload), LD_PRELOAD of jemalloc, mimalloc, tcmalloc_minimal, arenashim outside regions and
arenashim with regions (BENCH_REGIONS=1), several times each (interleaved, so that a noisy
moment hits every allocator alike), and takes medians.  Ratios are against jemalloc preloaded
bare and against the bare bump pointer that alloc_micro times in the same process.  Then runs
build/bench/scan_throughput under arenashim for 256M, 1G and 4G heaps (256M with --quick), on
each scan path: mostly concurrent, world stopped with several marking threads, and with one.

Prints markdown tables and writes them to build/bench-results/micro.md, with the raw medians
in build/bench-results/micro.csv and scan.csv.

    /usr/bin/python3 bench/run_micro.py [--quick] [--runs N] [--build DIR]
"""

import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
ALLOCATORS = [
    # (label, preload or None, extra environment); arenashim paths are filled in by main()
    ("glibc", None, {}),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2", {}),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2", {}),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4", {}),
    ("arenashim (no region)", "@ARENASHIM@", {}),
    ("arenashim (regions)", "@ARENASHIM@", {"BENCH_REGIONS": "1"}),
    # issue 5: the cost of recording allocation backtraces, every one and one in 64
    ("arenashim (regions, trace_allocs=64)", "@ARENASHIM@",
     {"BENCH_REGIONS": "1", "ARENASHIM_OPTIONS": "trace_allocs=64"}),
    ("arenashim (regions, trace_allocs=1)", "@ARENASHIM@",
     {"BENCH_REGIONS": "1", "ARENASHIM_OPTIONS": "trace_allocs=1"}),
]
MAIN_TESTS = [
    # (test, its bump baseline, column title)
    ("pairs", "bump_pairs", "malloc+free pair"),
    ("build_free", "bump_build_free", "build N, free all"),
    ("build_free_2t", "bump_build_free", "build+free, 2 threads"),
]


def parse_results(text):
    results = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "RESULT":
            results[parts[1]] = float(parts[2])
    return results


def run(command, env_extra, preload, timeout):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    if preload:
        env["LD_PRELOAD"] = preload
    proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s (LD_PRELOAD=%s) exited %d:\n%s%s" % (
            " ".join(command), preload, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return parse_results(proc.stdout)


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if value >= 1000:
        return "{:,.0f}".format(value)
    return "%.*f" % (digits, value)


def ratio(value, base):
    if value is None or not base:
        return None
    return value / base


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def micro(args, alloc_micro, arenashim):
    allocators = []
    for label, preload, env in ALLOCATORS:
        if preload == "@ARENASHIM@":
            preload = arenashim
        if preload and not os.path.exists(preload):
            print("note: %s not found (%s): skipped" % (label, preload), file=sys.stderr)
            continue
        allocators.append((label, preload, env))

    base_env = {"BENCH_QUICK": "1"} if args.quick else {}
    runs = {label: [] for label, _, _ in allocators}
    for r in range(args.runs):
        for label, preload, env in allocators:
            runs[label].append(run([alloc_micro], {**base_env, **env}, preload, 300))

    # Per allocator: the median of each test, and of each run's ratio to its own bump baseline.
    summary = {}
    for label, _, _ in allocators:
        results = runs[label]
        names = sorted({name for res in results for name in res})
        entry = {name: median_or_none([res.get(name) for res in results]) for name in names}
        for test, bump, _ in MAIN_TESTS:
            entry[test + "/bump"] = median_or_none(
                [ratio(res.get(test), res.get(bump)) for res in results])
        summary[label] = entry
    jemalloc = summary.get("jemalloc", {})

    lines = []
    header = "| allocator |"
    rule = "|---|"
    for _, _, title in MAIN_TESTS:
        header += " %s ns | x jemalloc | x bump |" % title
        rule += "---:|---:|---:|"
    lines += [header, rule]
    for label, _, _ in allocators:
        entry = summary[label]
        row = "| %s |" % label
        for test, _, _ in MAIN_TESTS:
            value = entry.get(test)
            row += " %s | %s | %s |" % (fmt(value), fmt(ratio(value, jemalloc.get(test)), 2),
                                        fmt(entry.get(test + "/bump"), 2))
        lines.append(row)
    bump_pairs = median_or_none([e.get("bump_pairs") for e in summary.values()])
    bump_build = median_or_none([e.get("bump_build_free") for e in summary.values()])
    lines.append("| bare bump pointer (noinline) | %s | | 1.00 | %s | | 1.00 | %s | | 1.00 |" % (
        fmt(bump_pairs), fmt(bump_build), fmt(bump_build)))

    # Region costs, from the arenashim runs (the API tests run in both).
    region_lines = []
    with_regions = summary.get("arenashim (regions)", {})
    no_region = summary.get("arenashim (no region)", {})
    if with_regions:
        region_lines += [
            "| measurement | ns |",
            "|---|---:|",
            "| malloc+free pair, one region per 1000 pairs (amortised begin+end included) | %s |"
            % fmt(with_regions.get("pairs"), 2),
            "| malloc+free pair inside one long region (fast path only) | %s |"
            % fmt(with_regions.get("pairs_1region"), 2),
            "| bare bump pointer pair, same processes | %s |" % fmt(with_regions.get("bump_pairs"), 2),
            "| region begin+end, empty | %s |" % fmt(with_regions.get("region_empty")),
            "| region begin + 16 KiB of small objects + free + end | %s |"
            % fmt(with_regions.get("region_16k")),
            "| the same 16 KiB work without a region (jemalloc through the shim) | %s |"
            % fmt(no_region.get("heap_16k", with_regions.get("heap_16k"))),
        ]

    rows = []
    for label, _, _ in allocators:
        for name, value in sorted(summary[label].items()):
            rows.append({"allocator": label, "test": name,
                         "value": "" if value is None else "%.4f" % value,
                         "unit": "ratio" if name.endswith("/bump") else "ns",
                         "runs": len(runs[label])})
    return lines, region_lines, rows


def parse_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


SCAN_PATHS = [
    # (name, ARENASHIM_OPTIONS, label)
    ("concurrent", "", "mostly concurrent (default)"),
    ("stop", "scan_mode=stop", "world stopped, parallel"),
    ("stop-1", "scan_mode=stop,scan_threads=1", "world stopped, one thread (before issue 12)"),
]


def scan(args, scan_throughput, arenashim):
    """The scan on each path and heap size, with a writer storing into 1% of the heap's pages
    throughout (bench/scan_throughput.c)."""
    sizes = ["256M"] if args.quick else ["256M", "1G", "4G"]
    reps = "2" if args.quick else "5"
    lines = ["| heap | path | threads | pause ms | pause ms per GiB | concurrent ms | read stopped MB "
             "| scan GB/s (both phases) | writer slowdown in the scan | read GB/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for size in sizes:
        for name, options, label in SCAN_PATHS:
            res = run([scan_throughput, size, reps, "1"], {"ARENASHIM_OPTIONS": options}, arenashim, 900)
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size, label, fmt(res.get("threads"), 0), fmt(res.get("pause_ms"), 2),
                fmt(res.get("pause_ms_per_gib"), 2),
                fmt(res.get("concurrent_ms")) if res.get("concurrent") else "-",
                fmt(res.get("stopped_mb")), fmt(res.get("total_gbps")),
                fmt(res.get("writer_slowdown"), 2) + "x" if res.get("writer_slowdown") else "n/a",
                fmt(res.get("read_gbps"))))
            rows.append({"heap": size, "heap_bytes": int(parse_bytes(size)), "path": name,
                         **{k: res.get(k) for k in ("read_gbps", "scan_gbps", "ratio", "pause_ms",
                                                    "pause_ms_per_gib", "collect_ms", "scan_bytes",
                                                    "concurrent_ms", "stopped_mb", "total_gbps",
                                                    "writer_slowdown", "threads", "concurrent")}})
    return lines, rows


def save_results(build, markdown_name, text, tables):
    """Writes build/bench-results/MARKDOWN_NAME (the printed tables) and each CSV of tables,
    a dict of file name to (field names, rows)."""
    results = os.path.join(build, "bench-results")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, markdown_name), "w") as f:
        f.write(text)
    for name, (fields, rows) in tables.items():
        with open(os.path.join(results, name), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def describe_machine():
    """CPU model, CPU count, kernel, commit, load average and date: the line under a table."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        commit = ""
    return "%s, %d CPUs (nproc), Linux %s, commit %s, load average at start %s, %s" % (
        model or platform.processor(), os.cpu_count() or 0, platform.release(), commit or "?",
        load, datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (under ~30 s in all)")
    parser.add_argument("--full", action="store_true", help="(kept for old scripts: 4 GiB is always scanned)")
    parser.add_argument("--runs", type=int, help="processes per allocator (default 5, quick 3)")
    parser.add_argument("--build", default=None, help="build directory (default: build)")
    parser.add_argument("--no-scan", action="store_true", help="skip scan_throughput")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 5

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(args.build or os.path.join(root, "build"))
    alloc_micro = os.path.join(build, "bench", "alloc_micro")
    scan_throughput = os.path.join(build, "bench", "scan_throughput")
    arenashim = os.path.join(build, "preload", "libarenashim.so")
    for path in (alloc_micro, scan_throughput, arenashim):
        if not os.path.exists(path):
            sys.exit("run_micro.py: %s is missing: run `ninja -C %s` first" % (path, build))

    started = time.monotonic()
    out = ["# arenashim micro-benchmarks", "", describe_machine(), ""]
    lines, region_lines, micro_rows = micro(args, alloc_micro, arenashim)
    out += ["## Allocation (ns per malloc+free; median of %d processes, each the median of its "
            "repetitions%s)" % (args.runs, ", quick" if args.quick else ""), "",
            "Sizes 8..512 bytes from a fixed pseudo-random sequence; N = %d objects per round; "
            "'x bump' is each process's time over its own bare bump pointer's (the 2-thread "
            "column against the 1-thread bump)." % 100000, ""]
    out += lines + [""]
    if region_lines:
        out += ["## Regions (arenashim API)", ""] + region_lines + [""]
    scan_rows = []
    if not args.no_scan:
        scan_lines, scan_rows = scan(args, scan_throughput, arenashim)
        out += ["## Conservative scan (arenashim_collect): pause and throughput per path", "",
                "A heap of blocks holding pointers and other words; a writer thread stores into a "
                "fixed 1% of its pages without pause throughout.  Pause: the time the world was "
                "stopped (scan_pause_last_ns), median of the repetitions.  Concurrent: the phase "
                "that reads while the program runs.  Read stopped: bytes read with the world "
                "stopped (pages written meanwhile, stacks, live chunks).  Scan GB/s: scan_bytes "
                "over both phases.  Writer slowdown: its rate in the 20 ms before "
                "arenashim_collect() over its rate during it.  Read GB/s: a plain vectorised sum "
                "of the same heap, one thread.  GB = 10^9 bytes.", ""]
        out += scan_lines + [""]
    out.append("(%.1f s)" % (time.monotonic() - started))
    text = "\n".join(out) + "\n"
    print(text, end="")

    tables = {"micro.csv": (["allocator", "test", "value", "unit", "runs"], micro_rows)}
    if scan_rows:
        tables["scan.csv"] = (list(scan_rows[0].keys()), scan_rows)
    save_results(build, "micro.md", text, tables)

if __name__ == "__main__":
    main()
