#!/usr/bin/python3
"""markers_startup.py — what marking many functions costs at start-up (issue 14).

Builds nothing: run `ninja -C build` first.  Runs Debian's `sqlite3 :memory: "select 1;"`
and `xmllint --version` (start-up and exit, almost no work) plainly, under the preload without
a marker, and with the first 1, 300 and all exported functions of their library marked
(libsqlite3: 1370, libxml2: 1695) from a marker file, with on_bad_marker=warn and
on_dangling=recover.  Interleaved rounds; each figure is the median CPU time (user + system,
from wait4) and wall time of the process.

Prints a markdown table and writes build/bench-results/markers_startup.md and .csv.

    /usr/bin/python3 bench/markers_startup.py [--runs N] [--build DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_micro import describe_machine, save_results  # noqa: E402

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PROGRAMS = [
    ("sqlite3", ["/usr/bin/sqlite3", ":memory:", "select 1;"], LIBDIR + "/libsqlite3.so.0", "libsqlite3.so"),
    ("xmllint", ["/usr/bin/xmllint", "--version"], LIBDIR + "/libxml2.so.2", "libxml2.so"),
]


def exported(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    return sorted({p[2].split("@")[0] for p in (l.split() for l in out.splitlines()) if len(p) == 3 and p[1] == "T"})


def run(argv, env):
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s exited %d" % (argv[0], os.waitstatus_to_exitcode(status)))
    return usage.ru_utime + usage.ru_stime, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    args = parser.parse_args()
    library = os.path.join(os.path.abspath(args.build), "preload", "libarenashim.so")
    if not os.path.exists(library):
        sys.exit("markers_startup.py: %s missing: run ninja -C %s first" % (library, args.build))
    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("ARENASHIM_")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="arenashim-markers-bench-") as tmp:
        for title, argv, lib, module in PROGRAMS:
            names = exported(lib)
            configs = [("plain", None), ("preload, no marker", [])]
            for count in (1, 300, len(names)):
                path = os.path.join(tmp, "%s.%d.txt" % (title, count))
                with open(path, "w") as f:
                    f.write("\n".join("%s:%s" % (module, n) for n in names[:count]) + "\n")
                configs.append(("%d markers" % count, path))
            samples = {name: [] for name, _ in configs}
            for r in range(args.runs):
                for name, markers in configs[r % len(configs):] + configs[:r % len(configs)]:
                    env = dict(base)
                    if markers is not None:
                        env["LD_PRELOAD"] = library
                        env["ARENASHIM_OPTIONS"] = "on_bad_marker=warn,on_dangling=recover,log_path=/dev/null"
                        if markers:
                            env["ARENASHIM_REGIONS"] = "@" + markers
                    samples[name].append(run(argv, env))
            for name, _ in configs:
                cpu = statistics.median(s[0] for s in samples[name])
                wall = statistics.median(s[1] for s in samples[name])
                rows.append({"program": title, "config": name, "cpu_ms": "%.1f" % (cpu * 1000),
                             "wall_ms": "%.1f" % (wall * 1000)})
    out = ["# Start-up with many markers", "", describe_machine(), "",
           "Median of %d interleaved runs; CPU is user + system time of the process (wait4)." % args.runs, "",
           "| program | config | CPU ms | wall ms |", "|---|---|---:|---:|"]
    out += ["| %s | %s | %s | %s |" % (r["program"], r["config"], r["cpu_ms"], r["wall_ms"]) for r in rows]
    text = "\n".join(out) + "\n"
    print(text, end="")
    save_results(os.path.abspath(args.build), "markers_startup.md", text,
                 {"markers_startup.csv": (["program", "config", "cpu_ms", "wall_ms"], rows)})


if __name__ == "__main__":
    main()
