#!/usr/bin/python3
"""Reach of function markers on a real optimised library: libxml2 under xmllint.

Usage:
    /usr/bin/python3 tests/markers/reach.py --build build [--sample N | --full] [--jobs 2]
                                            [--json PATH] [--work DIR] [--table all|called|problems]

1. Makes sure xmllint (Debian package libxml2-utils) is there, installing it with apt-get if it
   can; exit status 77 with a SKIP line when it cannot.
2. Generates a moderately rich XML document (hundreds of elements, attributes, namespaces,
   entities, comments, CDATA, processing instructions) and runs a workload on it plainly:
   `xmllint --noent --format`, `xmllint --xpath ...`, `xmllint --c14n`.
3. Finds which exported functions of libxml2.so.2 (`nm -D --defined-only`) the workload calls:
   probe.c (built by meson, tests/markers/meson.build, into BUILD/tests/markers/probe; exit
   status 2 when it is not there: run `ninja -C BUILD`) runs each command under ptrace with a
   one-shot breakpoint on every function.  (When ptrace is not available, a function counts as
   called when its marker opened a region.)
4. Marks functions one at a time, ARENASHIM_REGIONS=libxml2.so:FUNC with
   ARENASHIM_OPTIONS=on_dangling=recover,stats_json=... (escapes are reported, the program goes
   on), runs the workload, and classifies each function:
     refused    exit status 2 with `arenashim: error: ... cannot hook marker ...` (reason kept)
     broken     killed by a signal, another exit status or stdout than the plain run, no
                stats, regions_begun != regions_ended, or an arenashim internal error
     hooked     resolved, not refused, and (when called) its marker opened regions
   --sample N marks about N of the called functions (every k-th, deterministic); --full marks
   every exported function, called or not (hooking must not break uncalled ones either).
5. Prints the figures (called, hooked and its share of called, output identical, broken,
   refusals grouped by reason) and a table; --json writes them for run.py.

Exit status: 0 when hooked/called >= 95% and nothing is broken, 1 otherwise.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LIBNAME = "libxml2.so"


def say(*args):
    print(*args, flush=True)


def ensure_xmllint():
    if shutil.which("xmllint"):
        return None
    if shutil.which("apt-get") is None:
        return "xmllint is missing and apt-get is not available"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return "xmllint is missing and this user cannot run apt-get"
    for cmd in (sudo + ["apt-get", "install", "-y", "libxml2-utils"],
                sudo + ["apt-get", "update"],
                sudo + ["apt-get", "install", "-y", "libxml2-utils"]):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=300)
        if proc.returncode == 0 and shutil.which("xmllint"):
            return None
    return "apt-get install libxml2-utils failed: %s" % proc.stdout.strip().splitlines()[-1:]


def library_path(binary):
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(libxml2\.so\S*) => (\S+)", line)
        if m:
            return m.group(2)
    return None


def exported_functions(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], stdout=subprocess.PIPE,
                         text=True).stdout
    functions = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("T", "i", "W"):
            name = parts[2].split("@")[0]
            functions.setdefault(name, int(parts[0], 16))
    return functions  # name -> offset


# --- the workload ------------------------------------------------------------------------------

def make_document(path):
    """Deterministic: a catalogue with namespaces, entities, comments, CDATA and PIs."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<!DOCTYPE catalogue [',
             '  <!ENTITY company "Arena &amp; Sons Ltd.">',
             '  <!ENTITY copy "&#169;">',
             '  <!ENTITY note "Prices include &company; handling.">',
             '  <!ATTLIST item status CDATA "active">',
             ']>',
             '<?xml-stylesheet type="text/xsl" href="style.xsl"?>',
             '<catalogue xmlns="urn:example:catalogue" xmlns:dc="http://purl.org/dc/elements/1.1/"',
             '           xmlns:x="urn:example:extra" version="2.1">',
             '  <!-- generated for the arenashim reach test -->',
             '  <dc:title>Catalogue of &company; &copy; 2024</dc:title>',
             '  <notice>&note;</notice>']
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    for s in range(12):
        lines.append('  <section id="s%d" x:order="%d" name="%s">' % (s, (s * 7) % 12, words[s % 10]))
        if s % 3 == 0:
            lines.append('    <!-- section %d: %s -->' % (s, " ".join(words[:s % 5 + 1])))
        for i in range(25):
            n = s * 25 + i
            attrs = 'id="i%d" name="%s-%d" price="%d.%02d"' % (n, words[n % 10], n, n % 97, n % 100)
            if n % 4 == 0:
                attrs += ' status="sold"'
            if n % 6 == 0:
                attrs += ' x:tag="t%d"' % (n % 13)
            lines.append('    <item %s>' % attrs)
            lines.append('      <dc:description>Item %d of &company; with &lt;angle&gt; &amp; '
                         '&quot;quotes&quot; &#x263A;</dc:description>' % n)
            if n % 5 == 0:
                lines.append('      <code><![CDATA[if (a < b && c > d) { return "%d"; }]]></code>' % n)
            if n % 7 == 0:
                lines.append('      <?process item="%d"?>' % n)
            if n % 9 == 0:
                lines.append('      <x:extra xmlns:y="urn:example:y" y:level="%d">  spaced   text  '
                             '</x:extra>' % (n % 4))
            lines.append('      <tags>%s</tags>' % " ".join(words[(n + k) % 10] for k in range(n % 4 + 1)))
            lines.append('      <empty/>')
            lines.append('    </item>')
        lines.append('  </section>')
    lines.append('</catalogue>')
    Path(path).write_text("\n".join(lines) + "\n")


def workload(document):
    xpath = ("concat(count(//*[local-name()='item']), ' items, ', "
             "count(//*[local-name()='item'][@status='sold']), ' sold, ', "
             "sum(//*[local-name()='item']/@price), ' total, ', "
             "string(//*[local-name()='section'][@*[local-name()='order']='3']/@name), ' ', "
             "normalize-space(//*[local-name()='extra'][1]))")
    return [
        ["xmllint", "--noent", "--format", document],
        ["xmllint", "--xpath", xpath, document],
        ["xmllint", "--c14n", document],
    ]


def run(cmd, env=None, timeout=60):
    """(exit status or None on timeout, stdout, stderr).  A run whose LD_PRELOAD could not be
    loaded (the library is being relinked right now) is retried."""
    for attempt in range(6):
        rc, out, err = run_once(cmd, env, timeout)
        if b"cannot be preloaded" not in err:
            break
        time.sleep(1 + attempt)
    return rc, out, err


def run_once(cmd, env=None, timeout=60):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return None, out, err
    return proc.returncode, out, err


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENASHIM_")}
    env.pop("LD_PRELOAD", None)
    env["LC_ALL"] = "C"
    return env


# --- probing which functions are called ---------------------------------------------------------

def probe_called(probe, functions, commands, work):
    """Offsets the workload enters, or None when probing does not work here."""
    offsets = work / "offsets.txt"
    offsets.write_text("".join("%x\n" % o for o in sorted(set(functions.values()))))
    hit = set()
    for i, cmd in enumerate(commands):
        out = work / ("hits.%d.txt" % i)
        rc, _, err = run([str(probe), LIBNAME, str(offsets), str(out), "--"] + cmd, base_env(), 120)
        if rc is None or rc == 125 or not out.exists():
            say("reach: probing failed (%s); counting functions whose markers open regions as called"
                % err.decode(errors="replace").strip()[-200:])
            return None
        hit |= {int(x, 16) for x in out.read_text().split()}
    return hit


# --- marking ---------------------------------------------------------------------------------

def normalise_reason(reason):
    reason = re.sub(r"0x[0-9a-f]+", "X", reason)
    reason = re.sub(r"\b\d+\b", "N", reason)
    reason = re.sub(r"'[^']*'", "'...'", reason)
    return reason


def mark_one(name, lib, commands, plain, work, timeout):
    spec = "%s:%s" % (LIBNAME, name)
    result = {"function": name, "spec": spec, "regions": 0, "refused": False, "reason": "",
              "resolved": False, "identical": True, "broken": [], "dangling": 0}
    for i, cmd in enumerate(commands):
        stats_path = work / ("%s.%d.json" % (name, i))
        env = base_env()
        env["LD_PRELOAD"] = str(lib)
        env["ARENASHIM_REGIONS"] = spec
        env["ARENASHIM_OPTIONS"] = "on_dangling=recover,stats_json=%s" % stats_path
        rc, out, err = run(cmd, env, timeout)
        err_text = err.decode(errors="replace")
        first = err_text.splitlines()[0] if err_text else ""
        if rc == 2 and first.startswith("arenashim: error: "):
            m = re.search(r"cannot hook marker '[^']*': (.*)", first)
            result["refused"] = True
            result["reason"] = m.group(1) if m else first[len("arenashim: error: "):]
            if not m:
                result["broken"].append("start-up error: %s" % first)
            break
        prc, pout = plain[i]
        what = " ".join(cmd[1:-1]) or cmd[0]
        if rc is None:
            result["broken"].append("%s: timed out" % what)
            continue
        if rc < 0:
            result["broken"].append("%s: killed by signal %d" % (what, -rc))
        elif rc != prc:
            result["broken"].append("%s: exit status %d, plain %d" % (what, rc, prc))
        if out != pout:
            result["identical"] = False
            result["broken"].append("%s: stdout differs from the plain run" % what)
        if "internal error" in err_text:
            result["broken"].append("%s: %s" % (what, next(l for l in err_text.splitlines()
                                                             if "internal error" in l)))
        try:
            stats = json.loads(stats_path.read_text())
        except (OSError, ValueError):
            result["broken"].append("%s: no stats_json" % what)
            continue
        finally:
            try:
                stats_path.unlink()
            except OSError:
                pass
        if stats["regions_begun"] != stats["regions_ended"]:
            result["broken"].append("%s: regions_begun %d != regions_ended %d" % (
                what, stats["regions_begun"], stats["regions_ended"]))
        result["dangling"] += stats.get("dangling_accesses", 0)
        for m in stats.get("markers", []):
            if m.get("spec") == spec:
                result["regions"] += m.get("regions", 0)
                result["resolved"] = result["resolved"] or bool(m.get("resolved"))
                if m.get("refused"):
                    result["refused"] = True
                    result["reason"] = m.get("reason", "")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sample", type=int, default=60, help="about N called functions (default 60)")
    group.add_argument("--full", action="store_true", help="every exported function")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--work", help="folder for scratch files (default: a temporary one)")
    parser.add_argument("--table", choices=["all", "called", "problems"], default=None,
                        help="rows to print (default: called with --full, problems otherwise)")
    parser.add_argument("--timeout", type=int, default=60, help="per command, seconds")
    parser.add_argument("--only", help="comma-separated function names to mark (debugging)")
    args = parser.parse_args()

    start = time.monotonic()
    build_dir = Path(args.build)
    if not build_dir.is_absolute():
        build_dir = build_dir if build_dir.exists() else ROOT / build_dir
    lib = (build_dir / "preload" / "libarenashim.so").resolve()
    if not lib.exists():
        say("reach: %s does not exist" % lib)
        return 2
    probe = build_dir.resolve() / "tests" / "markers" / "probe"
    if not probe.exists():
        say("reach: %s does not exist: the test programs are built by meson, run `ninja -C %s`"
            % (probe, build_dir))
        return 2
    problem = ensure_xmllint()
    if problem:
        say("SKIP reach: %s" % problem)
        return 77
    xmllint = shutil.which("xmllint")
    library = library_path(xmllint)
    if library is None:
        say("SKIP reach: xmllint does not link libxml2.so")
        return 77
    functions = exported_functions(library)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="arenashim-reach-"))
    work.mkdir(parents=True, exist_ok=True)
    document = str(work / "catalogue.xml")
    make_document(document)
    commands = workload(document)
    plain = []
    for cmd in commands:
        rc, out, err = run(cmd, base_env(), args.timeout)
        if rc != 0:
            say("reach: the plain workload failed: %s: %s" % (" ".join(cmd), err.decode()[-300:]))
            return 2
        plain.append((rc, out))

    hit = probe_called(probe, functions, commands, work)
    probed_called = None if hit is None else sorted(n for n, o in functions.items() if o in hit)

    if args.only:
        selected = args.only.split(",")
    elif args.full:
        selected = sorted(functions)
    else:
        pool = probed_called if probed_called is not None else sorted(functions)
        step = max(1, len(pool) // max(1, args.sample))
        selected = pool[::step][:args.sample]

    results = []
    lock = threading.Lock()
    done = [0]

    def one(name):
        r = mark_one(name, lib, commands, plain, work, args.timeout)
        with lock:
            done[0] += 1
            if args.full and done[0] % 100 == 0:
                say("reach: %d/%d marked (%.0fs)" % (done[0], len(selected), time.monotonic() - start))
        return r

    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(one, selected))

    # Classification.
    called_set = set(probed_called or ())
    problems = []
    for r in results:
        r["called"] = r["function"] in called_set or r["regions"] > 0
        r["hooked"] = r["resolved"] and not r["refused"] and (r["regions"] > 0 or not r["called"])
        if r["called"] and not r["refused"] and r["resolved"] and r["regions"] == 0:
            r["hooked"] = False
            problems.append({"function": r["function"], "problem": "called, but its marker opened "
                             "no region"})
        if not r["resolved"] and not r["refused"] and not r["broken"]:
            problems.append({"function": r["function"], "problem": "marker never resolved"})
        for b in r["broken"]:
            problems.append({"function": r["function"], "problem": b})
        if r["refused"] and r["called"]:
            problems.append({"function": r["function"], "problem": "refused: " + r["reason"]})
    called = [r for r in results if r["called"]]
    hooked = [r for r in called if r["hooked"]]
    broken = [r for r in results if r["broken"]]
    identical = [r for r in results if r["identical"] and not r["refused"]]
    refused_called, refused_all = {}, {}
    for r in results:
        if r["refused"]:
            key = normalise_reason(r["reason"])
            refused_all.setdefault(key, []).append(r["function"])
            if r["called"]:
                refused_called.setdefault(key, []).append(r["function"])

    # The table.
    table = args.table or ("called" if args.full else "problems")
    rows = [r for r in results if table == "all" or (table == "called" and r["called"]) or
            (table == "problems" and (r["broken"] or (r["called"] and not r["hooked"])))]
    if rows:
        say("%-40s %-6s %-6s %8s %-9s %s" % ("function", "called", "hooked", "regions", "identical",
                                            "problem / refusal"))
        for r in rows:
            note = "; ".join(r["broken"]) or (r["reason"] if r["refused"] else "")
            say("%-40s %-6s %-6s %8d %-9s %s" % (r["function"][:40], "yes" if r["called"] else "no",
                                                "yes" if r["hooked"] else "no", r["regions"],
                                                "yes" if r["identical"] and not r["refused"] else "no",
                                                note))
    say("")
    say("libxml2 functions: %d exported, %d marked (%s), called by the workload: %s" % (
        len(functions), len(results), "all" if args.full else "sample",
        "%d of all exported (probe)" % len(probed_called) if probed_called is not None else "n/a"))
    say("called (of marked): %d" % len(called))
    say("hooked: %d of %d called (%.1f%%)" % (len(hooked), len(called),
                                              100.0 * len(hooked) / max(1, len(called))))
    say("output identical: %d of %d hooked markers" % (len(identical), sum(1 for r in results if not r["refused"])))
    say("broken: %d%s" % (len(broken), (": " + ", ".join(r["function"] for r in broken[:20])) if broken else ""))
    say("refused: %d of all marked, %d of called" % (sum(len(v) for v in refused_all.values()),
                                                      sum(len(v) for v in refused_called.values())))
    for reason, names in sorted(refused_all.items(), key=lambda kv: -len(kv[1])):
        called_names = refused_called.get(reason, [])
        say("  %4d (%d called)  %s" % (len(names), len(called_names), reason))
        say("        e.g. %s" % ", ".join((called_names or names)[:8]))
    say("dangling accesses reported (recover mode) across markers: %d" % sum(r["dangling"] for r in results))
    say("time: %.1fs" % (time.monotonic() - start))

    summary = {
        "exported": len(functions), "marked": len(results),
        "probed_called": len(probed_called) if probed_called is not None else None,
        "called": len(called), "hooked": len(hooked), "identical": len(identical),
        "broken": [r["function"] for r in broken],
        "refused": {k: v for k, v in refused_all.items()},
        "refused_called": {k: v for k, v in refused_called.items()},
        "problems": problems, "results": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    ok = not broken and len(hooked) * 100 >= 95 * len(called)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
