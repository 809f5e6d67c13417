#!/usr/bin/python3
"""report.py — arenashim's exit summary again from a saved statistics file, or its pictures.

    scripts/arenashim report FILE.json                   the summary (stdout)
    scripts/arenashim report --html OUT.html FILE.json   one self-contained page (report_html.py)
    scripts/arenashim report --folded [OUT] FILE.json    folded stacks for a flame graph (stdout,
                                                         or OUT)

FILE.json is what ARENASHIM_OPTIONS=stats_json=PATH wrote at exit: counters, markers with
their regions, bytes and escapes, escape sites with symbolised frames, verdicts, and the
referrers of chunks the last scan kept; since issue 15 also the statistics over time
("timeseries") and the traced allocation sites ("alloc_sites").  The output follows the text
summary of stats=1.

--folded writes one line per stack, "frame;frame;...;frame COUNT", root first, as
flamegraph.pl, inferno-flamegraph and speedscope read it: under the root frame "allocations"
the allocation sites that trace_allocs sampled (COUNT: traced allocations, one in
trace_allocs=N of them), under "escapes" the sites of objects that escaped their region
(COUNT: objects).  Frames are function names, or module+0xOFFSET where the symbol is unknown.

Exit status 0 with the summary on stdout; 2 with one line on stderr, naming the file, when it
cannot be read or is not a statistics file.  The file is checked whole before anything is
printed: UTF-8 JSON, an object with "regions_begun", and every key the summary uses, where
present, of the type arenashim writes (counters are integers from 0 to 2^64-1); missing keys
count as 0 or empty, unknown keys are ignored.  Strings are printed as they are, characters the
output's encoding cannot hold (a lone surrogate from a \\uD800 escape) as backslash escapes.
"""

import json
import math
import os
import signal
import sys

# The counters of the top-level object that the summary prints.
COUNTERS = ("regions_begun", "regions_ended", "region_allocs", "region_bytes", "frees_ignored",
            "frees_undone", "escaped_frees", "chunks_mapped", "chunks_reused", "chunks_quarantined",
            "chunks_released", "chunk_size", "fault_calls", "bytes_faulted", "bytes_recycled",
            "quarantine_bytes", "scans", "scans_concurrent", "scan_bytes", "scan_stopped_bytes",
            "scan_ns", "scan_pause_max_ns", "scan_giveups", "dangling_accesses")

# Each list of the top-level object: the type of each key of its entries, and which are required.
COUNT, NUMBER, STRING, BOOL, STRINGS, THREAD = "count", "number", "string", "bool", "strings", "thread"
LISTS = {
    "markers": ({"spec": STRING, "resolved": BOOL, "refused": BOOL, "reason": STRING, "regions": COUNT,
                 "objects": COUNT, "bytes": COUNT, "peak_region_bytes": COUNT, "seconds_inside": NUMBER},
                ("spec",)),
    "escape_sites": ({"escapes": COUNT, "allocations": COUNT, "marker": STRING, "frames": STRINGS},
                     ("escapes", "allocations", "marker")),
    "scan_kept": ({"chunk": STRING, "pointer": STRING, "location": STRING, "kind": STRING,
                   "thread": THREAD, "where": STRING},
                  ("chunk", "pointer", "location")),
    "verdicts": ({"spec": STRING, "verdict": STRING}, ("spec", "verdict")),
}
EXPECTED = {
    COUNT: "an integer from 0 to 2^64-1",
    NUMBER: "a finite number",
    STRING: "a string",
    BOOL: "true or false",
    STRINGS: "a list of strings",
    THREAD: "a thread number",
}


class NotStatistics(Exception):
    """The file is JSON but not what arenashim writes; the message says where."""


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 64


def valid(v, kind):
    if kind == COUNT:
        return is_count(v)
    if kind == NUMBER:
        return (is_count(v) or isinstance(v, float)) and math.isfinite(v) and v >= 0
    if kind == STRING:
        return isinstance(v, str)
    if kind == BOOL:
        return isinstance(v, bool)
    if kind == STRINGS:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if kind == THREAD:
        return is_count(v) or isinstance(v, str)
    raise AssertionError(kind)


def shown(v):
    """A short, one-line picture of a value for a message."""
    try:
        text = json.dumps(v)
    except (ValueError, RecursionError):
        text = type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_value(v, kind, where):
    if not valid(v, kind):
        raise NotStatistics("%s: expected %s, got %s" % (where, EXPECTED[kind], shown(v)))


def check(s):
    """Raises NotStatistics unless s is a statistics object the summary can print."""
    if not isinstance(s, dict) or "regions_begun" not in s:
        raise NotStatistics("no \"regions_begun\" in a top-level object")
    for key in COUNTERS:
        if key in s:
            check_value(s[key], COUNT, key)
    for key, (fields, required) in LISTS.items():
        if key not in s:
            continue
        if not isinstance(s[key], list):
            raise NotStatistics("%s: expected a list, got %s" % (key, shown(s[key])))
        for i, entry in enumerate(s[key]):
            where = "%s[%d]" % (key, i)
            if not isinstance(entry, dict):
                raise NotStatistics("%s: expected an object, got %s" % (where, shown(entry)))
            for name in required:
                if name not in entry:
                    raise NotStatistics("%s: no \"%s\"" % (where, name))
            for name, kind in fields.items():
                if name in entry:
                    check_value(entry[name], kind, "%s.%s" % (where, name))


def load(path):
    """The statistics object of path; OSError, or ValueError with a one-line reason."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("not UTF-8 (byte %d)" % e.start) from None

    def no_constant(name):
        raise ValueError("%s is not a JSON number" % name)

    try:
        s = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError("invalid JSON: %s" % e) from None
    except ValueError as e:  # NaN/Infinity, or an integer of more digits than Python converts
        reason = str(e) if "JSON number" in str(e) else "a number of too many digits"
        raise ValueError("invalid JSON: %s" % reason) from None
    check(s)
    return s


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def summary(s, path):
    """The summary's lines."""
    g = s.get
    out = []
    out.append("arenashim: statistics (from %s)" % path)
    out.append(f"  regions          {g('regions_begun', 0)} begun, {g('regions_ended', 0)} ended")
    out.append(f"  region objects   {g('region_allocs', 0)} ({human(g('region_bytes', 0))}); frees: "
               f"{g('frees_ignored', 0)} ignored, {g('frees_undone', 0)} undone, "
               f"{g('escaped_frees', 0)} after region end")
    out.append(f"  chunks           {g('chunks_mapped', 0)} mapped, {g('chunks_reused', 0)} reused, "
               f"{g('chunks_quarantined', 0)} quarantined, {g('chunks_released', 0)} released "
               f"(chunk {g('chunk_size', 0) // 1024} KiB)")
    out.append(f"  faulting         {g('fault_calls', 0)} calls, {human(g('bytes_faulted', 0))} "
               f"({human(g('bytes_recycled', 0))} of pages recycled); quarantine holds "
               f"{human(g('quarantine_bytes', 0))}")
    out.append(f"  scans            {g('scans', 0)}, {g('scans_concurrent', 0)} mostly concurrent "
               f"({g('scan_bytes', 0)} bytes read, {g('scan_stopped_bytes', 0)} with the world stopped; "
               f"{g('scan_ns', 0) / 1e6:.3f} ms stopped in all, longest pause {g('scan_pause_max_ns', 0) / 1e6:.3f} ms; "
               f"{g('scan_giveups', 0)} given up)")
    out.append(f"  dangling         {g('dangling_accesses', 0)} accesses reported")
    for m in g("markers", []):
        state = "refused" if m.get("refused") else "resolved" if m.get("resolved") else "unresolved"
        out.append(f"  marker '{m['spec']}': {state}, {m.get('regions', 0)} regions, {m.get('objects', 0)} "
                   f"objects, {human(m.get('bytes', 0))} (largest region {human(m.get('peak_region_bytes', 0))}), "
                   f"{m.get('seconds_inside', 0):.3f} s inside")
        if m.get("refused") and m.get("reason"):
            out.append(f"      refused: {m['reason']}")
    sites = g("escape_sites", [])
    if sites:
        out.append(f"  escapes by allocation site (top {len(sites)}):")
        for site in sites:
            out.append(f"    {site['escapes']} of {site['allocations']} traced objects escaped, marker "
                       f"'{site['marker']}', allocated at:")
            for frame in site.get("frames", [])[:8]:
                out.append(f"      {frame}")
    kept = g("scan_kept", [])
    if kept:
        out.append(f"  chunks the last scan kept ({len(kept)} shown), and who points there:")
        for k in kept:
            where = {"stack": f"stack of thread {k.get('thread')}",
                     "registers": f"registers of thread {k.get('thread')}",
                     "module": f".data/.bss of {k.get('where')}",
                     "heap": "jemalloc heap object",
                     "anonymous": "anonymous mapping" + (f" {k['where']}" if k.get("where") else ""),
                     "shared": "shared memory",
                     "region": "live region chunk"}.get(k.get("kind"), k.get("kind"))
            out.append(f"    chunk {k['chunk']}: pointer {k['pointer']} at {k['location']} in {where}")
    for v in g("verdicts", []):
        out.append(f"  verdict '{v['spec']}': {v['verdict']}")
    return out


def write(stream, text):
    """Writes text whole; what the stream's encoding cannot hold becomes backslash escapes."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = text.encode(encoding, errors="backslashreplace").decode(encoding)
    stream.write(text)
    stream.flush()


def pictures():
    """report_html.py, beside this file (imported only for --html and --folded)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import report_html
    return report_html


def check_pictures(s):
    """What --html and --folded read beyond the summary's keys; raises NotStatistics."""
    html = pictures()
    try:
        html.check(s)
    except html.BadSeries as e:
        raise NotStatistics(str(e)) from None


def folded(s):
    """The folded stacks of s: [(stack, count)], allocation sites first, then escape sites."""
    names = pictures().frame_name
    stacks = {}

    def add(root, site, count):
        frames = [names(f).replace(";", ":").replace("\n", " ") for f in reversed(site.get("frames", []))]
        stack = ";".join([root] + (frames or ["(no frames)"]))
        stacks[stack] = stacks.get(stack, 0) + count

    alloc_sites = s.get("alloc_sites", [])
    for site in alloc_sites:
        if site.get("allocations"):
            add("allocations", site, site["allocations"])
    if s.get("alloc_sites_omitted_allocations"):
        stacks["allocations;(sites left out of the file)"] = s["alloc_sites_omitted_allocations"]
    escaping = [site for site in alloc_sites if site.get("escapes")] or s.get("escape_sites", [])
    for site in escaping:
        if site.get("escapes"):
            add("escapes", site, site["escapes"])
    return list(stacks.items())


USAGE = "usage: arenashim report [--html OUT.html | --folded [OUT]] FILE.json"
HELP = USAGE + """

FILE.json is a statistics file (ARENASHIM_OPTIONS=stats_json=PATH writes one at exit).
  (no option)       print the exit summary again
  --html OUT.html   write one self-contained page: regions, bytes, quarantine, scans and RSS
                    over time, region sizes, escape and allocation sites (sortable tables)
  --folded [OUT]    allocation and escape sites as folded stacks ("frame;frame count", root
                    first) for flamegraph.pl, inferno or speedscope: to stdout, or to OUT
"""


def parse_arguments(args):
    """(mode, output path or None, FILE.json); a str is a usage error's message."""
    mode, out, positional, folded_at = "summary", None, [], None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "--help"):
            return "help"
        if a == "--html" or a.startswith("--html="):
            if mode != "summary":
                return "--html and --folded go alone"
            mode = "html"
            if a == "--html":
                if i + 1 == len(args):
                    return "--html needs OUT.html"
                i += 1
                out = args[i]
            else:
                out = a[len("--html="):]
            if not out:
                return "--html needs OUT.html"
        elif a == "--folded" or a.startswith("--folded="):
            if mode != "summary":
                return "--html and --folded go alone"
            mode = "folded"
            if a == "--folded":
                folded_at = len(positional)  # the next argument is OUT when there are two
            else:
                out = a[len("--folded="):] or None
        elif a == "--":
            positional += args[i + 1:]
            break
        elif a.startswith("-") and a != "-":
            return "unknown option '%s'" % a
        else:
            positional.append(a)
        i += 1
    if mode == "folded" and out is None and len(positional) == 2 and folded_at is not None and folded_at < 2:
        out = positional.pop(folded_at)
    if len(positional) != 1:
        return "expected one FILE.json" if not positional else "too many arguments: %s" % " ".join(positional)
    return mode, out, positional[0]


def write_output(out, text):
    """text into the file out ('-': stdout); OSError."""
    if out is None or out == "-":
        write(sys.stdout, text)
        return
    with open(out, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)


def main(argv):
    argv = argv[1:] if len(argv) > 1 and argv[1] == "report" else argv
    parsed = parse_arguments(argv[1:])
    if isinstance(parsed, str):
        if parsed == "help":
            write(sys.stdout, HELP)
            return 0
        write(sys.stderr, "arenashim: report: %s; %s\n" % (parsed, USAGE))
        return 2
    mode, out, path = parsed
    if out is not None and out != "-" and os.path.abspath(out) == os.path.abspath(path):
        write(sys.stderr, f"arenashim: report: {out} is the statistics file itself; name another output\n")
        return 2
    try:
        s = load(path)
        if mode != "summary":
            check_pictures(s)
    except OSError as e:
        write(sys.stderr, f"arenashim: report: cannot read {path}: {e.strerror or e}\n")
        return 2
    except NotStatistics as e:
        write(sys.stderr, f"arenashim: report: {path} is not an arenashim statistics file ({e})\n")
        return 2
    except ValueError as e:
        write(sys.stderr, f"arenashim: report: {path} is not a statistics file ({e})\n")
        return 2
    if mode == "summary":
        write(sys.stdout, "\n".join(summary(s, path)) + "\n")
        return 0
    if mode == "html":
        text = pictures().page(s, path)
    else:
        stacks = folded(s)
        if not stacks:
            write(sys.stderr, f"arenashim: report: {path} has no allocation or escape sites "
                  "(run with trace_allocs=1 to record them): no stacks\n")
        text = "".join("%s %d\n" % (stack, count) for stack, count in stacks)
    try:
        write_output(out, text)
    except OSError as e:
        write(sys.stderr, f"arenashim: report: cannot write {out}: {e.strerror or e}\n")
        return 2
    return 0


if __name__ == "__main__":
    # Output piped into head: end quietly, as a command-line tool does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv))
