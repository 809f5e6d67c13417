#!/usr/bin/python3
"""discover_overhead.py — what `scripts/arenashim discover` costs a run, and what sampling
trades for it (issue 13).

Builds nothing: run `ninja -C build` first.  For each program -- bench's request loop
(wl_request) and compiler pass (wl_compile), and Debian's python3 running a small JSON and
regular-expression script that knows nothing of arenashim -- runs, interleaved round by round:

- plain: no preload;
- preload: LD_PRELOAD of arenashim with no option (what the library costs by itself);
- discover=N for N in 1, 16, 64 (the default of `scripts/arenashim discover`) and 256 (64
  only with --quick):
  the library alone with discovery on and discover_json written, exactly what the discover
  command runs.

Per configuration: the median wall time, the median of the ratios to the plain run of the same
round, the time the library measured itself following sampled allocations and writing results
(seconds_following, seconds_writing from the JSON: the rest of the overhead is the returns of
followed frames through the exit stub and the sampling countdown), the objects followed, and
the top clean candidate of scripts/lib/discover.py's ranking, with whether it is the known
answer (handle_request, compile_unit; the python3 script has no known answer).

Prints a markdown table and writes build/bench-results/discover.md and discover.csv.

    /usr/bin/python3 bench/discover_overhead.py [--quick] [--runs N] [--build DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
from run_micro import describe_machine, save_results  # noqa: E402
import discover  # noqa: E402  (the ranking the command prints)

PYTHON_SCRIPT = r"""
import json, re, sys
def handle(line):
    d = json.loads(line)
    words = re.findall(r"[a-z]+", d["text"])
    return len(words), sorted(set(words))[:3]
total = 0
for i in range(int(sys.argv[1])):
    line = json.dumps({"id": i, "text": "the quick brown fox %d jumps over the lazy dog" % i})
    total += handle(line)[0]
print(total)
"""

SAMPLES = [1, 16, 64, 256]


def programs(build, tmp, quick):
    script = os.path.join(tmp, "work.py")
    with open(script, "w") as f:
        f.write(PYTHON_SCRIPT)
    bench = os.path.join(build, "bench")
    return [
        ("request loop", [os.path.join(bench, "wl_request"), "2000" if quick else "20000"],
         "handle_request"),
        ("compiler pass", [os.path.join(bench, "wl_compile"), "40" if quick else "400"], "compile_unit"),
        ("python3 script", ["/usr/bin/python3", script, "20000" if quick else "300000"], None),
    ]


def run_once(command, library, options, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENASHIM_") and k != "LD_PRELOAD"}
    for name in os.listdir(tmp):
        if name.startswith("discover."):
            os.unlink(os.path.join(tmp, name))
    if library:
        env["LD_PRELOAD"] = library
    if options:
        env["ARENASHIM_OPTIONS"] = options
    started = time.monotonic()
    proc = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (command[0], proc.returncode, proc.stderr[-500:]))
    paths = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.startswith("discover.") and n.endswith(".json")]
    return wall, paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one round (a smoke run)")
    parser.add_argument("--runs", type=int, help="rounds (default 5, quick 1)")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    rounds = args.runs or (1 if args.quick else 5)
    build = os.path.abspath(args.build)
    library = os.path.join(build, "preload", "libarenashim.so")
    if not os.path.exists(library):
        sys.exit("discover_overhead.py: %s missing: run ninja -C %s first" % (library, build))
    configs = [("plain", None, None), ("preload", library, None)] + [
        ("discover=%d" % n, library, n) for n in ([64] if args.quick else SAMPLES)]
    rows = []
    failures = []
    with tempfile.TemporaryDirectory(prefix="arenashim-discover-bench-") as tmp:
        for title, command, answer in programs(build, tmp, args.quick):
            samples = {name: [] for name, _, _ in configs}
            for r in range(rounds):
                order = configs[r % len(configs):] + configs[:r % len(configs)]
                for name, preload, period in order:
                    options = None
                    if period:
                        options = "discover=%d,discover_json=%s/discover.%%p.json" % (period, tmp)
                    try:
                        wall, paths = run_once(command, preload, options, tmp)
                    except RuntimeError as e:
                        failures.append("%s, %s: %s" % (title, name, e))
                        continue
                    entry = {"wall": wall}
                    if period:
                        functions, _, sampled, _, following, writing = discover.merge(paths)
                        clean, _, _ = discover.rank(functions, period)
                        best = next((m for m in clean if m.get("hookable") is True), None)
                        entry.update(following=following, writing=writing, sampled=sampled,
                                     best=best["spec"] if best else "")
                    samples[name].append(entry)
            plain = samples["plain"]
            for name, _, period in configs:
                runs = samples[name]
                if not runs:
                    continue
                ratios = [e["wall"] / p["wall"] for e, p in zip(runs, plain) if p["wall"] > 0]
                row = {"program": title, "config": name, "runs": len(runs),
                       "wall_s": statistics.median(e["wall"] for e in runs),
                       "x_plain": statistics.median(ratios) if ratios else None}
                if period:
                    bests = [e["best"] for e in runs]
                    row.update(following_s=statistics.median(e["following"] for e in runs),
                               writing_s=statistics.median(e["writing"] for e in runs),
                               followed=int(statistics.median(e["sampled"] for e in runs)),
                               best=max(set(bests), key=bests.count),
                               right="-" if answer is None else
                               "%d/%d" % (sum(b == answer for b in bests), len(bests)))
                    if answer is not None and row["best"] != answer:
                        failures.append("%s, %s: best clean candidate %r, not %s" % (
                            title, name, row["best"], answer))
                rows.append(row)
    out = ["# discover: overhead and sampling%s" % (" (quick smoke run: not for quoting)" if args.quick else ""),
           "", describe_machine(), "",
           "Median of %d round%s, interleaved; 'x plain' is the median of per-round ratios to the run "
           "without arenashim.  'following' and 'writing' are what the library timed itself "
           "(following sampled allocations; checking candidates -- which decodes each candidate's "
           "module once -- and writing the JSON at exit); the rest of the overhead is returns of "
           "followed frames through the exit stub.  'best' is the top clean hookable candidate "
           "of the ranking, 'right' how many rounds it was the known answer." % (
               rounds, "s" if rounds > 1 else ""), "",
           "| program | config | wall s | x plain | following s | writing s | objects followed | best | right |",
           "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        out.append("| %s | %s | %.3f | %s | %s | %s | %s | %s | %s |" % (
            row["program"], row["config"], row["wall_s"],
            "%.2f" % row["x_plain"] if row["x_plain"] is not None else "-",
            "%.3f" % row["following_s"] if "following_s" in row else "",
            "%.3f" % row["writing_s"] if "writing_s" in row else "",
            row.get("followed", ""), row.get("best", ""), row.get("right", "")))
    if failures:
        out += ["", "## FAILURES", ""] + ["- " + f for f in failures]
    text = "\n".join(out) + "\n"
    print(text, end="")
    save_results(build, "discover.md", text, {"discover.csv": (
        ["program", "config", "runs", "wall_s", "x_plain", "following_s", "writing_s", "followed", "best",
         "right"], rows)})
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
