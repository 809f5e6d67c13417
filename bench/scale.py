#!/usr/bin/python3
"""scale.py — does arenashim stay O(1) per operation, and its resources bounded, as a process
grows (issue 14, "Scale")?

Runs BUILD/bench/scale (bench/scale.c) under LD_PRELOAD of BUILD/preload/libarenashim.so with
no marker and the default options, and prints markdown tables (also written to
BUILD/bench-results/scale.md):

- regions: a million small regions on 1, 2 and 8 threads; the cost per region of each
  interval (to 10k, 100k, 1M regions): flat is O(1);
- threads: 100, 500 and 1000 threads alive: the pause of an explicit scan, which stops each;
- extents: 100k and a million live heap blocks of 16-32 KiB, each its own jemalloc extent:
  build and free per block against jemalloc alone, and the scan pause while a thread runs
  regions;
- heap: sparse heaps of 1, 4 and 16 GiB (1 MiB blocks, every 8th page written): the scan's
  pause and bytes read.

Every row has the kernel mappings, the preload's metadata (metadata_bytes: never given back,
so a high-water mark) and the resident set.  Progress goes to stderr.  Builds nothing: run
`ninja -C build` first.  Standard library only.

    /usr/bin/python3 bench/scale.py [--build DIR] [--only regions,threads,extents,heap]
                                    [--quick] [--runs N] [--timeout S] [--jemalloc PATH]

A configuration whose estimated memory need exceeds MemAvailable (read just before it) is
skipped and the table says so.  --quick: 300k regions, 100 and 500 threads, 100k extents,
heaps of 1 and 4 GiB (a couple of minutes instead of about ten).
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
GIB = 1 << 30


def human(nbytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return "%.1f %s" % (nbytes / (1 << shift), unit)
    return "%d B" % nbytes


def ms(ns):
    return "%.2f" % (ns / 1e6)


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def find_jemalloc():
    try:
        out = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        for line in out.splitlines():
            m = re.match(r"\s*libjemalloc\.so\.2 \(([^)]*)\) => (\S+)", line)
            if m and "x86-64" in m.group(1) and os.path.exists(m.group(2)):
                return m.group(2)
    except OSError:
        pass
    return DEBIAN_JEMALLOC if os.path.exists(DEBIAN_JEMALLOC) else None


class Runner:
    """Runs bench/scale under one preload and parses its POINT lines."""

    def __init__(self, binary, timeout):
        self.binary, self.timeout = binary, timeout

    def points(self, preload, args, label):
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("ARENASHIM_")}
        env["LD_PRELOAD"] = preload
        argv = [str(self.binary)] + [str(a) for a in args]
        print("%s ..." % label, end="", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(" timed out", file=sys.stderr)
            return None, ">%g s (timed out)" % self.timeout
        print(" %.1f s" % (time.monotonic() - started), file=sys.stderr, flush=True)
        if proc.returncode != 0:
            last = (err.strip().splitlines() or ["no message"])[-1]
            return None, "failed (exit %s: %s)" % (proc.returncode, last)
        points = []
        for line in out.splitlines():
            if line.startswith("POINT "):
                fields = dict(item.split("=", 1) for item in line.split()[1:])
                points.append({k: (v if k == "mode" else float("nan") if v == "NA" else float(v))
                               for k, v in fields.items()})
        return points, None


def resources(p):
    """The three columns every row ends with."""
    return ["%d" % p["kernel_mappings"], human(p["metadata_bytes"]), human(p["rss_kib"] * 1024)]


def table(title, header, rows, notes=()):
    lines = ["### %s" % title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + ["- " + n for n in notes] + ([""] if notes else [])
    return "\n".join(lines)


def skipped(need):
    available = mem_available()
    if available is not None and need > available:
        return "skipped: needs about %s, MemAvailable %s" % (human(need), human(available))
    return None


# --- the sections ------------------------------------------------------------------------------

def section_regions(runner, preload, quick):
    points = "10000,100000,300000" if quick else "10000,100000,1000000"
    rows = []
    for threads in (1, 2, 8):
        result, why = runner.points(preload, ["regions", threads, points], "regions: %d thread(s)" % threads)
        if result is None:
            rows.append([threads, why] + [""] * 9)
            continue
        base = None
        for p in result:
            cost = p["wall_ns_per_region"]
            base = base or cost
            rows.append([threads, "%d" % p["regions"], "%.0f" % cost, "%.2f" % (cost / base),
                         "%.0f" % p["cpu_ns_per_region"], "%d" % p["scans"], "%d" % p["scan_chunks_kept_last"],
                         human(p["quarantine_bytes"])] + resources(p))
    return table("A million regions",
                 ["threads", "regions so far", "ns per region (interval)", "vs first interval",
                  "CPU ns per region", "scans", "chunks kept by the last scan", "quarantine",
                  "kernel mappings", "metadata", "RSS"], rows,
                 ["each region: 4-11 linked objects of 16-255 bytes, half freed (about 1 KiB, one page "
                  "protected at its end); the cost is that of the interval since the previous row "
                  "(wall time over all threads' regions; CPU time of the whole process, scans included)"])


def section_threads(runner, preload, quick):
    rows = []
    for threads in ((100, 500) if quick else (100, 500, 1000)):
        why = skipped(threads * (3 << 20) + (256 << 20))  # a chunk's huge page and a stack each
        result = None
        if why is None:
            result, why = runner.points(preload, ["threads", threads, 100000], "threads: %d alive" % threads)
        if result is None:
            rows.append([threads, why] + [""] * 9)
            continue
        alive, joined = result[0], result[1]
        rows.append([threads, "%.0f" % alive["wall_ns_per_region"],
                     "%s (%s)" % (ms(alive["collect_pause_ns"]), ms(alive["collect_pause_worst_ns"])),
                     "%.1f" % (alive["collect_pause_ns"] / threads / 1e3), human(alive["collect_stopped_bytes"])]
                    + resources(alive) + [" / ".join(resources(joined))])
    return table("Hundreds of threads",
                 ["threads alive", "ns per region", "scan pause ms, median (worst)", "pause µs per thread",
                  "read stopped", "kernel mappings", "metadata", "RSS", "after they exit: mappings / metadata / RSS"],
                 rows,
                 ["100,000 regions split among the threads, which then stay alive and idle while the main "
                  "thread makes 5 explicit scans (after one to warm up); the pause is the stop of the world, "
                  "which signals and waits for every thread"])


def section_extents(runner, preload, jemalloc, quick, runs):
    rows = []
    for blocks in ((100000,) if quick else (100000, 1000000)):
        # Only the first page of each 16-32 KiB block is written; jemalloc's extent records.
        why = skipped(blocks * 4096 * 5 // 4 + (512 << 20))
        if why:
            rows.append(["%d" % blocks, "", why] + [""] * 9)
            continue
        results = {"jemalloc": [], "arenashim": []}
        failures = {}
        for run in range(runs):
            order = [("jemalloc", jemalloc), ("arenashim", preload)]
            for name, library in (order if run % 2 == 0 else order[::-1]):
                points, why = runner.points(library, ["extents", blocks],
                                            "extents: %d blocks, %s, run %d of %d" % (blocks, name, run + 1, runs))
                if points is None:
                    failures[name] = why
                else:
                    results[name].append(points)
        for name in ("jemalloc", "arenashim"):
            if not results[name]:
                rows.append(["%d" % blocks, name, failures.get(name, "not run")] + [""] * 9)
                continue
            built = [r[0] for r in results[name]]
            freed = [r[1] for r in results[name]]
            build = statistics.median(p["build_ns_per_block"] for p in built)
            free = statistics.median(p["free_ns_per_block"] for p in freed)
            last = built[-1]
            scans = name == "arenashim" and last.get("collects", 0) > 0
            rows.append(["%d" % blocks, name, "%.0f" % build, "%.0f" % free,
                         "%s (%s)" % (ms(last["collect_pause_ns"]), ms(last["collect_pause_worst_ns"])) if scans else "—",
                         "%.0f" % (last["collect_concurrent_ns"] / 1e6) if scans else "—",
                         human(last["collect_bytes"]) if scans else "—",
                         "%.0f" % last["background_ns_per_region"] if scans else "—"]
                        + (resources(last) if name == "arenashim" else ["%d" % last["maps_lines"], "—",
                                                                        human(last["rss_kib"] * 1024)]))
    return table("A million live jemalloc extents",
                 ["blocks", "allocator", "build ns per block", "free ns per block", "scan pause ms, median (worst)",
                  "concurrent phase ms", "read per scan", "regions meanwhile, ns each",
                  "kernel mappings", "metadata", "RSS"], rows,
                 ["every block 16-32 KiB (jemalloc's smallest large sizes: each its own extent), its first "
                  "words written (a link to the previous block); medians of %d processes per allocator, "
                  "interleaved; the scans (5 explicit, after a warm-up) run while another thread runs "
                  "regions without pause" % runs])


def section_heap(runner, preload, quick):
    rows = []
    for text, size in ((("1G", GIB), ("4G", 4 * GIB)) if quick else (("1G", GIB), ("4G", 4 * GIB), ("16G", 16 * GIB))):
        why = skipped(size // 8 + size // 512 + (256 << 20))
        result = None
        if why is None:
            result, why = runner.points(preload, ["heap", text, 8], "heap: %s, every 8th page written" % text)
        if result is None:
            rows.append([text, why] + [""] * 8)
            continue
        p = result[0]
        rows.append([text, human(p["touched_bytes"]),
                     "%s (%s)" % (ms(p["collect_pause_ns"]), ms(p["collect_pause_worst_ns"])),
                     "%.2f" % (p["collect_pause_ns"] / 1e6 / (size / GIB)),
                     "%.0f" % (p["collect_concurrent_ns"] / 1e6), human(p["collect_bytes"]),
                     human(p["collect_stopped_bytes"])] + resources(p))
    return table("Sparse heaps of 4 and 16 GiB",
                 ["heap", "written", "scan pause ms, median (worst)", "pause ms per GiB of heap",
                  "concurrent phase ms", "read per scan", "read stopped", "kernel mappings", "metadata", "RSS"],
                 rows,
                 ["1 MiB blocks outside regions, every 8th page of each written (pointers into other "
                  "blocks, small integers, zeroes, random words); 5 explicit scans after a warm-up, "
                  "nothing else running"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("--only", default="regions,threads,extents,heap",
                        help="sections, comma-separated (default: all four)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--runs", type=int, default=2, help="processes per allocator for extents (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process (default 600)")
    parser.add_argument("--jemalloc", default=None, help="path of libjemalloc.so.2 (default: from ldconfig)")
    args = parser.parse_args()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"regions", "threads", "extents", "heap"}
    if unknown or args.runs < 1 or args.timeout <= 0:
        parser.error("unknown section %s" % sorted(unknown) if unknown else "--runs and --timeout must be positive")

    build = Path(args.build)
    if not build.is_absolute() and not build.exists():
        build = ROOT / build
    build = build.resolve()
    binary, preload = build / "bench" / "scale", str(build / "preload" / "libarenashim.so")
    jemalloc = args.jemalloc or find_jemalloc()
    for what, path in (("bench/scale", binary), ("the preload library", preload),
                       ("jemalloc", jemalloc if "extents" in sections else binary)):
        if not path or not os.path.exists(path):
            sys.exit("scale.py: %s not found (%s): run `ninja -C %s` (and install libjemalloc2)" % (what, path, args.build))
    runner = Runner(binary, args.timeout)

    started = time.monotonic()
    parts = ["## Scale (%s, %d CPUs, %s of memory)" % (time.strftime("%Y-%m-%d"), os.cpu_count(),
                                                          human(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")))]
    for section in sections:
        if section == "regions":
            parts.append(section_regions(runner, preload, args.quick))
        elif section == "threads":
            parts.append(section_threads(runner, preload, args.quick))
        elif section == "extents":
            parts.append(section_extents(runner, preload, jemalloc, args.quick, args.runs))
        elif section == "heap":
            parts.append(section_heap(runner, preload, args.quick))
    text = "\n\n".join(parts) + "\n\n(%.0f s in all)\n" % (time.monotonic() - started)
    print(text)
    results = build / "bench-results"
    results.mkdir(exist_ok=True)
    (results / "scale.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
