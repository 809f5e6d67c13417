#!/usr/bin/python3
"""heap_scale.py — large heaps outside regions: jemalloc alone against arenashim, no marker.

Runs BUILD/bench/heap_scale (bench/heap_scale.c) for every heap size and block size given,
under LD_PRELOAD of jemalloc alone and of BUILD/preload/libarenashim.so with no
ARENASHIM_REGIONS, --runs times each, the two allocators interleaved (the order alternating
from run to run), and prints a markdown table of the medians: heap, block, phase, the
seconds of each allocator, their ratio and the peak RSS of each.  The table is also written
to BUILD/bench-results/heap_scale.md.  Progress goes to stderr.

    /usr/bin/python3 bench/heap_scale.py [--build DIR] [--sizes 1G,4G,16G] [--blocks 64,4096]
                                         [--runs N] [--timeout S] [--churn N] [--touch-every K]

A run past --timeout seconds is killed and shown as ">S s (timed out)"; that allocator then
gets no more runs of that configuration, nor of larger heaps with the same block size (they
would only time out too).  A configuration whose estimated memory need exceeds MemAvailable
(/proc/meminfo, read just before it) is skipped, and the table says so.  Builds nothing: run
`ninja -C build` first.  Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("build", "churn", "free")  # the table's; verify is no allocator work
PROGRAM_PHASES = ("build", "churn", "verify", "free")  # heap_scale's, in order
PAGE = 4096
DEBIAN_JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError("bad size %r (like 512M, 1G, 16G)" % text)
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]


def size_list(text):
    return [(item.strip(), parse_size(item)) for item in text.split(",") if item.strip()]


def block_list(text):
    try:
        blocks = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("bad block list %r (like 64,4096)" % text)
    if not blocks or min(blocks) <= 0:
        raise argparse.ArgumentTypeError("block sizes must be positive")
    return blocks


def human(nbytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return "%.1f %s" % (nbytes / (1 << shift), unit)
    return "%d B" % nbytes


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


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def memory_need(heap, block, touch_every):
    """What one heap_scale process makes resident, generously: the pages its writes touch
    (for blocks up to a page, the whole heap), the pointer array, and jemalloc's metadata
    (extent records, radix tree: a few % of the heap here, counted as 1/32) plus slack."""
    blocks = heap // block
    touched = -(-blocks // touch_every)
    resident = min(blocks * block, touched * PAGE)
    return resident + blocks * 8 + heap // 32 + (64 << 20)


def source_description(build):
    """Which commit the build folder's sources are at, for the table's heading."""
    try:
        info = json.loads((build / "meson-info" / "meson-info.json").read_text())
        source = info["directories"]["source"]
    except (OSError, ValueError, KeyError):
        source = str(ROOT)
    git = ["git", "-C", source]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no", "--", "preload", "core"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return "commit %s%s (%s)" % (head, ", preload/ or core/ modified" if dirty else "", source)


# --- one run ----------------------------------------------------------------------------------

class Result:
    """What one heap_scale process did: seconds and peak RSS per phase it finished, and how
    it ended (status 'ok', 'timeout' or 'failed', with the phase it was in)."""

    def __init__(self):
        self.seconds, self.peak_kib = {}, {}
        self.status, self.message, self.checksum = "ok", "", None

    def phase_reached(self):
        """The first phase of the table not finished (the cell a timeout or failure goes in)."""
        return next((p for p in PHASES if p not in self.seconds), None)

    def stuck_in(self):
        """The phase of heap_scale that was running when the timeout or failure struck."""
        return next((p for p in PROGRAM_PHASES if p not in self.seconds), "exit")


def run_once(binary, preload, heap_text, block, churn, touch_every, timeout):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("ARENASHIM_")}
    env["LD_PRELOAD"] = preload
    argv = [str(binary), heap_text, str(block), "--churn", str(churn), "--touch-every", str(touch_every)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    result = Result()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        result.status = "timeout"
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        if "phase" in fields and "seconds" in fields:
            result.seconds[fields["phase"]] = float(fields["seconds"])
            result.peak_kib[fields["phase"]] = int(fields.get("peak_rss_kib", 0))
        elif "checksum" in fields:
            result.checksum = fields["checksum"]
    if result.status == "ok" and (proc.returncode != 0 or result.checksum is None):
        result.status = "failed"
        last = (err.strip().splitlines() or ["no message"])[-1]
        result.message = "exit %s: %s" % (proc.returncode, last)
    return result


# --- the table -------------------------------------------------------------------------------

def cell_seconds(results, phase, timeout):
    """The median seconds of a phase, or why there is none."""
    values = [r.seconds[phase] for r in results if phase in r.seconds]
    if results and len(values) == len(results):
        return statistics.median(values), "%.3f" % statistics.median(values)
    stuck = [r for r in results if phase not in r.seconds and r.phase_reached() == phase]
    timed_out = [r for r in stuck if r.status == "timeout"]
    if timed_out:
        where = timed_out[0].stuck_in()
        return None, ">%g s (timed out%s)" % (timeout, "" if where == phase else " in " + where)
    if any(r.status == "failed" for r in stuck):
        return None, "failed (%s)" % next(r.message for r in stuck if r.status == "failed")
    return None, "—"


def cell_rss(results, phase):
    values = [r.peak_kib[phase] for r in results if phase in r.peak_kib]
    return human(statistics.median(values) * 1024) if values else "—"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("--sizes", type=size_list, default=size_list("1G,4G,16G"),
                        help="heap sizes, binary units (default 1G,4G,16G)")
    parser.add_argument("--blocks", type=block_list, default=[64, 4096],
                        help="block sizes in bytes (default 64,4096)")
    parser.add_argument("--runs", type=int, default=3, help="runs per allocator and configuration (median)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run (default 300)")
    parser.add_argument("--churn", type=int, default=3, help="churn rounds of heap_scale (default 3)")
    parser.add_argument("--touch-every", type=int, default=1,
                        help="heap_scale writes every K-th block only (default 1: every block)")
    parser.add_argument("--jemalloc", default=None, help="path of libjemalloc.so.2 (default: from ldconfig)")
    args = parser.parse_args()
    if args.runs < 1 or args.timeout <= 0 or args.churn < 0 or args.touch_every < 1:
        parser.error("--runs and --touch-every must be at least 1, --timeout positive, --churn >= 0")

    build = Path(args.build)
    if not build.is_absolute() and not build.exists():
        build = ROOT / build
    build = build.resolve()
    binary, arenashim = build / "bench" / "heap_scale", build / "preload" / "libarenashim.so"
    jemalloc = args.jemalloc or find_jemalloc()
    for what, path in (("heap_scale", binary), ("the preload library", arenashim), ("jemalloc", jemalloc)):
        if not path or not os.path.exists(path):
            sys.exit("heap_scale.py: %s not found (%s): run `ninja -C %s` (and install libjemalloc2)" %
                     (what, path, args.build))
    allocators = [("jemalloc", jemalloc), ("arenashim", str(arenashim))]

    configs = [(text, heap, block) for block in args.blocks for text, heap in args.sizes]
    configs.sort(key=lambda c: (c[2], c[1]))  # per block size, small heaps first (see gave_up)
    rows, notes = [], []
    gave_up = {}  # (allocator, block) -> heap text that timed out: larger heaps are not run
    started = time.monotonic()
    for number, (text, heap, block) in enumerate(configs, 1):
        label = "[%d/%d] %s of %d-byte blocks" % (number, len(configs), text, block)
        need, available = memory_need(heap, block, args.touch_every), mem_available()
        if available is not None and need > available:
            print("%s: skipped, needs about %s, MemAvailable %s" % (label, human(need), human(available)),
                  file=sys.stderr)
            rows.append((text, block, "all", "skipped: needs ~%s, MemAvailable %s" % (human(need), human(available)),
                         "", "", "", ""))
            continue
        results = {name: [] for name, _ in allocators}
        stopped = {name: gave_up.get((name, block)) for name, _ in allocators}
        for run in range(args.runs):
            order = allocators if run % 2 == 0 else allocators[::-1]
            for name, preload in order:
                if stopped[name]:
                    continue
                print("%s, %s, run %d of %d ..." % (label, name, run + 1, args.runs), end="", file=sys.stderr,
                      flush=True)
                r = run_once(binary, preload, text, block, args.churn, args.touch_every, args.timeout)
                results[name].append(r)
                print(" %s" % (" ".join("%s %.3f s" % (p, r.seconds[p]) for p in PHASES if p in r.seconds) or "-"),
                      end="", file=sys.stderr)
                if r.status != "ok":
                    print(" [%s in %s]" % ("timed out" if r.status == "timeout" else r.message, r.stuck_in()),
                          end="", file=sys.stderr)
                    stopped[name] = text
                    if r.status == "timeout":
                        gave_up[(name, block)] = text
                print(file=sys.stderr, flush=True)
        sums = {r.checksum for rs in results.values() for r in rs if r.checksum}
        if len(sums) > 1:
            notes.append("%s of %d-byte blocks: the allocators' checksums differ (%s)" % (text, block, ", ".join(sorted(sums))))
        for phase in PHASES:
            cells, values = [], []
            for name, _ in allocators:
                if not results[name] and stopped[name]:
                    value, cell = None, "not run (%s timed out)" % stopped[name]
                else:
                    value, cell = cell_seconds(results[name], phase, args.timeout)
                cells.append(cell)
                values.append(value)
            je, ash = values
            if je and ash:
                ratio = "%.2fx" % (ash / je)
            elif je and ash is None and cells[1].startswith(">"):
                ratio = ">%.0fx" % (args.timeout / je)
            else:
                ratio = "—"
            rows.append((text, block, phase, cells[0], cells[1], ratio,
                         cell_rss(results["jemalloc"], phase), cell_rss(results["arenashim"], phase)))

    lines = [
        "heap_scale: %s" % source_description(build),
        "%s, %d CPUs, MemTotal %s; %s; %d run(s) each, medians of wall seconds; timeout %g s; "
        "churn %d rounds of 10%%; %s" % (
            platform.node(), os.cpu_count(), human(mem_total()), datetime.date.today().isoformat(),
            args.runs, args.timeout, args.churn,
            "16 bytes of every block written" if args.touch_every == 1 else
            "16 bytes of every %d-th block written" % args.touch_every),
        "",
        "| heap | block | phase | jemalloc s | arenashim s | ratio | jemalloc peak RSS | arenashim peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| %s | %s B | %s | %s | %s | %s | %s | %s |" % row for row in rows]
    if notes:
        lines += [""] + ["note: " + n for n in notes]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out_dir = build / "bench-results"
    try:
        out_dir.mkdir(exist_ok=True)
        (out_dir / "heap_scale.md").write_text(text)
        print("written to %s (%.0f s in all)" % (out_dir / "heap_scale.md", time.monotonic() - started),
              file=sys.stderr)
    except OSError as e:
        print("could not write %s: %s" % (out_dir / "heap_scale.md", e), file=sys.stderr)
    return 0


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
