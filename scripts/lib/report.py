#!/usr/bin/python3
"""report.py — print arenashim's exit summary again from a saved statistics file.

    scripts/arenashim report FILE.json

FILE.json is what ARENASHIM_OPTIONS=stats_json=PATH wrote at exit: counters, markers with
their regions, bytes and escapes, escape sites with symbolised frames, verdicts, and the
referrers of chunks the last scan kept.  The output follows the text summary of stats=1.
"""

import json
import sys


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def main(argv):
    argv = argv[1:] if len(argv) > 1 and argv[1] == "report" else argv
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: scripts/arenashim report FILE.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            s = json.load(f)
    except OSError as e:
        print(f"arenashim: report: cannot read {argv[1]}: {e.strerror}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"arenashim: report: {argv[1]} is not a statistics file (invalid JSON: {e})", file=sys.stderr)
        return 2
    if not isinstance(s, dict) or "regions_begun" not in s:
        print(f"arenashim: report: {argv[1]} is not an arenashim statistics file", file=sys.stderr)
        return 2

    g = s.get
    print("arenashim: statistics (from %s)" % argv[1])
    print(f"  regions          {g('regions_begun', 0)} begun, {g('regions_ended', 0)} ended")
    print(f"  region objects   {g('region_allocs', 0)} ({human(g('region_bytes', 0))}); frees: "
          f"{g('frees_ignored', 0)} ignored, {g('frees_undone', 0)} undone, "
          f"{g('escaped_frees', 0)} after region end")
    print(f"  chunks           {g('chunks_mapped', 0)} mapped, {g('chunks_reused', 0)} reused, "
          f"{g('chunks_quarantined', 0)} quarantined, {g('chunks_released', 0)} released "
          f"(chunk {g('chunk_size', 0) // 1024} KiB)")
    print(f"  faulting         {g('fault_calls', 0)} calls, {human(g('bytes_faulted', 0))} "
          f"({human(g('bytes_recycled', 0))} of pages recycled); quarantine holds "
          f"{human(g('quarantine_bytes', 0))}")
    print(f"  scans            {g('scans', 0)}, {g('scans_concurrent', 0)} mostly concurrent "
          f"({g('scan_bytes', 0)} bytes read, {g('scan_stopped_bytes', 0)} with the world stopped; "
          f"{g('scan_ns', 0) / 1e6:.3f} ms stopped in all, longest pause {g('scan_pause_max_ns', 0) / 1e6:.3f} ms; "
          f"{g('scan_giveups', 0)} given up)")
    print(f"  dangling         {g('dangling_accesses', 0)} accesses reported")
    for m in g("markers", []):
        state = "refused" if m.get("refused") else "resolved" if m.get("resolved") else "unresolved"
        print(f"  marker '{m['spec']}': {state}, {m.get('regions', 0)} regions, {m.get('objects', 0)} "
              f"objects, {human(m.get('bytes', 0))} (largest region {human(m.get('peak_region_bytes', 0))}), "
              f"{m.get('seconds_inside', 0):.3f} s inside")
        if m.get("refused") and m.get("reason"):
            print(f"      refused: {m['reason']}")
    sites = g("escape_sites", [])
    if sites:
        print(f"  escapes by allocation site (top {len(sites)}):")
        for site in sites:
            print(f"    {site['escapes']} of {site['allocations']} traced objects escaped, marker "
                  f"'{site['marker']}', allocated at:")
            for frame in site.get("frames", [])[:8]:
                print(f"      {frame}")
    kept = g("scan_kept", [])
    if kept:
        print(f"  chunks the last scan kept ({len(kept)} shown), and who points there:")
        for k in kept:
            where = {"stack": f"stack of thread {k.get('thread')}",
                     "registers": f"registers of thread {k.get('thread')}",
                     "module": f".data/.bss of {k.get('where')}",
                     "heap": "jemalloc heap object",
                     "anonymous": "anonymous mapping" + (f" {k['where']}" if k.get("where") else ""),
                     "shared": "shared memory",
                     "region": "live region chunk"}.get(k.get("kind"), k.get("kind"))
            print(f"    chunk {k['chunk']}: pointer {k['pointer']} at {k['location']} in {where}")
    for v in g("verdicts", []):
        print(f"  verdict '{v['spec']}': {v['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
