#!/usr/bin/python3
"""soak.py — a long soak of arenashim (issue 14): a million regions across 4 threads with
explicit scans, forks and a library with a marker loaded and unloaded every cycle; do kernel
mappings, descriptors, RSS and metadata stay where they were?

Runs BUILD/tests/hardening/soak (tests/hardening/programs/soak.c; tests/hardening/run.py
soak_slice runs a short slice of it) plainly once, then under LD_PRELOAD of
BUILD/preload/libarenashim.so with ARENASHIM_REGIONS=libsoakplugin.so:soak_plugin_work and
the default options, and prints a markdown table of its checkpoints (one after each cycle,
with the workers idle; --rows of them shown), then what grew from the first checkpoint after
the warm-up to the last.  Also written to BUILD/bench-results/soak.md.  Progress goes to
stderr.  Builds nothing: run `ninja -C build` first.  Standard library only.

    /usr/bin/python3 bench/soak.py [--build DIR] [--regions N] [--threads N] [--cycles N]
                                   [--forks N] [--calls N] [--rows N] [--timeout S]

Defaults: 1,000,000 regions, 4 threads, 200 cycles, a fork in every cycle, 10 calls of the
marked function per load (about a minute here).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "libsoakplugin.so:soak_plugin_work"
WARMUP = 4


def human(nbytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return "%.1f %s" % (nbytes / (1 << shift), unit)
    return "%d B" % nbytes


def run(argv, env, timeout, label):
    print("%s ..." % label, end="", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        sys.exit("soak.py: %s timed out after %g s" % (label, timeout))
    print(" %.1f s" % (time.monotonic() - started), file=sys.stderr, flush=True)
    return proc.returncode, out, err


def checkpoints(out):
    points = []
    for line in out.splitlines():
        if line.startswith("CHECKPOINT "):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            points.append({k: float(v) if k == "seconds" else int(v) for k, v in fields.items()})
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build)")
    parser.add_argument("--regions", type=int, default=1000000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=200, help="library loads (and checkpoints)")
    parser.add_argument("--forks", type=int, default=None, help="forks, spread over the cycles (default: one a cycle)")
    parser.add_argument("--calls", type=int, default=10, help="calls of the marked function per load")
    parser.add_argument("--rows", type=int, default=11, help="checkpoints shown in the table (default 11)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    args = parser.parse_args()
    forks = args.cycles if args.forks is None else args.forks
    if args.cycles <= WARMUP or args.rows < 2 or forks > args.cycles or args.threads < 1:
        parser.error("--cycles must exceed %d, --rows be 2 or more, --forks at most --cycles" % WARMUP)

    build = Path(args.build)
    if not build.is_absolute() and not build.exists():
        build = ROOT / build
    build = build.resolve()
    program, plugin = build / "tests" / "hardening" / "soak", build / "tests" / "hardening" / "libsoakplugin.so"
    library = build / "preload" / "libarenashim.so"
    for path in (program, plugin, library):
        if not path.exists():
            sys.exit("soak.py: %s not found: run `ninja -C %s`" % (path, args.build))
    argv = [str(program), str(args.regions), str(args.threads), str(args.cycles), str(forks), str(plugin),
            str(args.calls)]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("ARENASHIM_")
           and k != "SOAK_LEAK"}

    rc, plain_out, err = run(argv, env, args.timeout, "plain")
    if rc != 0:
        sys.exit("soak.py: the plain run failed (exit %s): %s" % (rc, err.strip()[-500:]))
    env.update(LD_PRELOAD=str(library), ARENASHIM_REGIONS=MARKER)
    rc, out, err = run(argv, env, args.timeout, "arenashim")
    points = checkpoints(out)
    if not points:
        sys.exit("soak.py: no checkpoint (exit %s): %s" % (rc, err.strip()[-500:]))

    shown = sorted({round(i * (len(points) - 1) / (args.rows - 1)) for i in range(args.rows)} | {WARMUP})
    lines = ["## Soak: %d regions, %d threads, %d library loads, %d forks (%s)" % (
        args.regions, args.threads, args.cycles, forks, time.strftime("%Y-%m-%d")), "",
        "| cycle | regions | seconds | marker regions (this load) | kernel mappings | descriptors | RSS | "
        "metadata | quarantine | scans |", "|" + "---|" * 10]
    for i in shown:
        p = points[i]
        lines.append("| %d%s | %d | %.1f | %d | %d | %d | %s | %s | %s | %d |" % (
            p["cycle"], " (warm)" if i == WARMUP else "", p["regions"], p["seconds"], p["marker_regions"],
            p["maps"], p["fds"], human(p["rss_kib"] * 1024), human(p["metadata_bytes"]),
            human(p["quarantine_bytes"]), p["scans"]))
    first, last = points[WARMUP], points[-1]
    result = [l for l in out.splitlines() if l.startswith(("RESULT", "MARKER"))]
    plain_result = [l for l in plain_out.splitlines() if l.startswith("RESULT")]
    unhooked = [p["cycle"] for p in points if p["marker_regions"] != args.calls]
    maxima = {k: max(p[k] for p in points[WARMUP:]) for k in ("maps", "fds", "rss_kib", "metadata_bytes")}
    lines += ["",
              "- exit status %d; %s; %s" % (rc, "; ".join(result) or "no RESULT line",
                                            "the same RESULT as the plain run" if result[:1] == plain_result
                                            else "RESULT differs from the plain run's (%s)" % plain_result),
              "- loads after which the marker did not make %d regions: %s" % (
                  args.calls, unhooked[:20] or "none"),
              "- from cycle %d to cycle %d: kernel mappings %+d, descriptors %+d, RSS %+.1f MiB, metadata %+.1f MiB "
              "(largest after the warm-up: %d mappings, %d descriptors, %s RSS, %s metadata)" % (
                  first["cycle"], last["cycle"], last["maps"] - first["maps"], last["fds"] - first["fds"],
                  (last["rss_kib"] - first["rss_kib"]) / 1024,
                  (last["metadata_bytes"] - first["metadata_bytes"]) / (1 << 20), maxima["maps"], maxima["fds"],
                  human(maxima["rss_kib"] * 1024), human(maxima["metadata_bytes"]))]
    text = "\n".join(lines) + "\n"
    print(text)
    results = build / "bench-results"
    results.mkdir(exist_ok=True)
    (results / "soak.md").write_text(text)
    return 0 if rc == 0 and not unhooked and result[:1] == plain_result else 1


if __name__ == "__main__":
    sys.exit(main())
