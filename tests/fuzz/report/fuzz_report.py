"""fuzz_report.py — a mutation fuzzer for `scripts/arenashim report FILE.json` (scripts/lib/report.py).

Used by tests/fuzz/run.py; also runs alone:

    /usr/bin/python3 tests/fuzz/report/fuzz_report.py [--cases N | --seconds S] [--seed N]
        [--crashes DIR] [--report PATH/TO/report.py] [SEED.json...]

Standard library only.  Each case takes a real stats_json file (tests/fuzz/report/seeds/, written
by the preload's stats_json=PATH) and applies one to three mutations, at the byte level
(truncation, flipped, inserted, deleted or repeated bytes, bytes that are not UTF-8, a BOM) or to
the parsed object (a number made huge, negative, fractional, NaN, a string or a list; a string
made a number, control characters or a lone surrogate; a key removed, regions_begun included; a
list made an object; deep nesting; thousands of entries; the top level another type), then runs
report.py's main() in-process, with stdout and stderr as strict UTF-8 streams like a terminal's.

What must hold for every input:
  - main() returns (no exception, so no traceback) 0 or 2;
  - 2: nothing on stdout, exactly one line on stderr, "arenashim: report: ...", naming the file;
  - 0: nothing on stderr, the summary on stdout: its first line "arenashim: statistics (from
    FILE)", its second the regions line with regions_begun's value;
  - a file that is not UTF-8 JSON (checked here independently), or whose top level is not an
    object with "regions_begun", gives 2;
  - a mutation that keeps the file valid (a count changed to another count, an optional key
    removed, an unknown key added, the layout changed) gives 0;
  - no case takes more than 10 s.
A failing input is saved (with what broke and the traceback) under --crashes; the CLI
cross-check (check_cli) runs the real launcher on a file in a subprocess.
"""

import argparse
import copy
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REPORT = ROOT / "scripts" / "lib" / "report.py"
LAUNCHER = ROOT / "scripts" / "arenashim"
SEEDS = Path(__file__).resolve().parent / "seeds"
CASE_SECONDS = 10

VALID, INVALID, UNKNOWN = "valid", "invalid", None

# Keys whose removal leaves a valid file: everything but regions_begun at the top, and the
# entries' optional keys (report.py's LISTS).
REQUIRED_IN = {"markers": {"spec"}, "escape_sites": {"escapes", "allocations", "marker"},
               "scan_kept": {"chunk", "pointer", "location"}, "verdicts": {"spec", "verdict"}}


def load_report(path=REPORT):
    spec = importlib.util.spec_from_file_location("arenashim_report_under_fuzz", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- mutations ---------------------------------------------------------------------------------

def paths_of(value, path=()):
    """Every (path, value) inside a parsed JSON value, the root included."""
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths_of(v, path + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths_of(v, path + (i,)))
    return out


def set_at(root, path, value):
    if not path:
        return value
    parent = root
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return root


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 64


STRANGE_NUMBERS = [2 ** 64, 2 ** 64 - 1, 10 ** 30, -1, -(2 ** 63), 1.5, 1e308, 1e-300, 0.0,
                   True, False, None, "12", "", [], {}, [1, 2], {"a": 1}]
STRANGE_STRINGS = [5, 0, -1, None, True, [], {}, ["x"], 1.5, "", "x" * 100000, "\x00\x01\x1b[2J\n\r\t",
                   "\ud800", "\udfff\ud800", "é日本\U0001f600", "%s%n%x", "'\"\\"]


def mutate_object(rng, s):
    """One mutation of the parsed object; returns (object, expectation, what)."""
    choice = rng.randrange(12)
    items = paths_of(s)
    if choice == 0:  # a number made strange (or another valid count)
        numbers = [(p, v) for p, v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            p, v = rng.choice(numbers)
            if is_count(v) and rng.random() < 0.3:
                new = rng.choice([0, 1, 2 ** 64 - 1, rng.randrange(2 ** 64)])
                # seconds_inside takes any finite number >= 0; a count stays valid anywhere.
                return set_at(s, p, new), VALID, "count %r -> %r at %r" % (v, new, p)
            new = rng.choice(STRANGE_NUMBERS)
            return set_at(s, p, copy.deepcopy(new)), UNKNOWN, "number at %r -> %r" % (p, new)
    if choice == 1:  # a string made strange
        strings = [(p, v) for p, v in items if isinstance(v, str)]
        if strings:
            p, v = rng.choice(strings)
            new = rng.choice(STRANGE_STRINGS)
            expect = VALID if isinstance(new, str) else UNKNOWN
            return set_at(s, p, copy.deepcopy(new)), expect, "string at %r -> %.40r" % (p, new)
    if choice == 2:  # a key removed
        keys = [(p, v) for p, v in items if p and isinstance(p[-1], str)]
        if keys:
            p, v = rng.choice(keys)
            parent = s
            for q in p[:-1]:
                parent = parent[q]
            del parent[p[-1]]
            if p == ("regions_begun",):
                expect = INVALID
            elif len(p) == 1:
                expect = VALID  # every other top-level key is optional
            elif len(p) == 3 and p[0] in REQUIRED_IN and isinstance(s.get(p[0]), list):
                expect = INVALID if p[-1] in REQUIRED_IN[p[0]] else VALID
            else:
                expect = UNKNOWN
            return s, expect, "removed %r" % (p,)
    if choice == 3:  # a list or object replaced by another type
        containers = [(p, v) for p, v in items if p and isinstance(v, (list, dict))]
        if containers:
            p, v = rng.choice(containers)
            new = rng.choice([{}, [], "x", 5, None, [5], [[]], [{}], {"spec": 1}, True])
            return set_at(s, p, copy.deepcopy(new)), UNKNOWN, "container at %r -> %r" % (p, new)
    if choice == 4:  # deep nesting at a random place
        p, v = rng.choice(items)
        depth = rng.choice([10, 100, 900, 1000, 3000, 100000])
        return ("DEEP", s, p, depth), UNKNOWN, "nested %d deep at %r" % (depth, p)
    if choice == 5:  # an unknown key
        where = [(p, v) for p, v in items if isinstance(v, dict)]
        if where:
            p, v = rng.choice(where)
            v["fuzz_unknown_%d" % rng.randrange(100)] = rng.choice([1, "x", [], {}, None, [[1]]])
            return s, VALID, "unknown key at %r" % (p,)
    if choice == 6 and isinstance(s, dict):  # many entries
        lists = [k for k in ("markers", "escape_sites", "scan_kept", "verdicts") if s.get(k)]
        if lists:
            k = rng.choice(lists)
            s[k] = s[k] * (3000 if rng.random() < 0.05 else rng.choice([10, 300]))
            return s, VALID, "%s x%d" % (k, len(s[k]))
    if choice == 7:  # the top level another type
        new = rng.choice([[], [s], "regions_begun", 0, None, True, {"regions_begun": None}, {}])
        expect = UNKNOWN if isinstance(new, dict) else INVALID
        return copy.deepcopy(new), expect, "top level -> %.40r" % (new,)
    if choice == 8:  # a list entry duplicated or removed
        lists = [(p, v) for p, v in items if isinstance(v, list) and v]
        if lists:
            p, v = rng.choice(lists)
            i = rng.randrange(len(v))
            if rng.random() < 0.5:
                v.insert(i, copy.deepcopy(v[i]))
            else:
                del v[i]
            return s, VALID if len(p) <= 3 else UNKNOWN, "list %r changed" % (p,)
    if choice == 9 and isinstance(s, dict):  # every counter at its maximum, or a top-level counter as a float
        if rng.random() < 0.5:
            for p, v in items:
                if is_count(v) and p and isinstance(p[-1], str):
                    set_at(s, p, 2 ** 64 - 1)
            return s, VALID, "all counts 2^64-1"
        counters = [k for k, v in s.items() if is_count(v)]
        if counters:
            k = rng.choice(counters)
            s[k] = float(s[k]) + 0.5
            return s, INVALID if k in ("regions_begun",) else UNKNOWN, "%s as a float" % k
    if choice == 10:  # booleans flipped or made numbers
        bools = [(p, v) for p, v in items if isinstance(v, bool)]
        if bools:
            p, v = rng.choice(bools)
            new = rng.choice([not v, 1, 0, "true", None])
            return set_at(s, p, new), VALID if isinstance(new, bool) else UNKNOWN, "bool at %r -> %r" % (p, new)
    return s, VALID, "unchanged"


def dump(obj, rng):
    """The object as UTF-8 JSON bytes, in one of several layouts; DEEP markers become nested text."""
    if isinstance(obj, tuple) and obj and obj[0] == "DEEP":
        _, s, p, depth = obj
        placeholder = "\u0001DEEP\u0001"
        text = json.dumps(set_at(s, p, placeholder) if p else placeholder)
        opener, closer = rng.choice([("[", "]"), ('{"a": ', "}")])
        return text.replace(json.dumps(placeholder), opener * depth + "1" + closer * depth).encode()
    layout = rng.randrange(4)
    if layout == 1 and not big(obj):  # indent takes json's slow pure-Python encoder
        return json.dumps(obj, indent=rng.choice([1, 4])).encode()
    if layout == 2:
        return json.dumps(obj, separators=(",", ":")).encode()
    if layout == 3:
        try:  # raw characters; a lone surrogate cannot be UTF-8, so it stays escaped
            return json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return json.dumps(obj).encode()


def big(obj):
    return isinstance(obj, dict) and any(isinstance(v, list) and len(v) > 100 for v in obj.values())


NOT_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
            b"\xe2\x82"]


def mutate_bytes(rng, data):
    """One byte-level mutation; returns (bytes, expectation, what)."""
    choice = rng.randrange(9)
    n = len(data)
    if choice == 0 and n:  # truncated
        cut = rng.randrange(n)
        return data[:cut], UNKNOWN, "truncated at %d" % cut
    if choice == 1 and n:  # flipped bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), UNKNOWN, "bits flipped"
    if choice == 2:  # inserted bytes
        i = rng.randrange(n + 1)
        ins = rng.choice([b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"\\ud800", b"0", b"-",
                          b"1e999", b"NaN", b"Infinity", b"-Infinity", b"null", b"\x00", b"\n",
                          b"9" * rng.choice([20, 400, 5000])])
        return data[:i] + ins + data[i:], UNKNOWN, "inserted %.20r at %d" % (ins, i)
    if choice == 3 and n:  # deleted bytes
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 64))
        return data[:i] + data[j:], UNKNOWN, "deleted [%d, %d)" % (i, j)
    if choice == 4 and n:  # a chunk repeated
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 256))
        return data[:j] + data[i:j] * rng.randint(1, 50) + data[j:], UNKNOWN, "repeated [%d, %d)" % (i, j)
    if choice == 5:  # not UTF-8: always refused
        i = rng.randrange(n + 1)
        bad = rng.choice(NOT_UTF8)
        return data[:i] + bad + data[i:], INVALID, "not UTF-8 %r at %d" % (bad, i)
    if choice == 6:  # a BOM, or other encodings
        if rng.random() < 0.5:
            return b"\xef\xbb\xbf" + data, INVALID, "UTF-8 BOM"
        return data.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-32"])), INVALID, "UTF-16/32"
    if choice == 7:  # empty, blank, or junk
        junk = rng.choice([b"", b" ", b"\n", b"{", b"null", b"0", b'""', b"[]", b"{}", b"\x00" * 10,
                           os.urandom(rng.randint(1, 64))])
        return junk, INVALID, "replaced by %.20r" % junk
    if choice == 8 and n:  # a digit replaced by a huge number
        digits = [m.start() for m in re.finditer(rb"\d+", data)]
        if digits:
            i = rng.choice(digits)
            m = re.match(rb"\d+", data[i:])
            big = rng.choice([b"1" * 5000, b"18446744073709551616", b"1e400", b"1E-400", b"-0", b"0.0",
                              b"12345678901234567890123"])
            return data[:i] + big + data[i + m.end():], UNKNOWN, "number -> %.20r" % big
    return data, VALID, "unchanged"


def make_case(rng, seeds):
    """(bytes, expectation, description) of one case: a seed and one to three mutations."""
    name, data = rng.choice(seeds)
    what = [name]
    expect = VALID
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            try:
                s = json.loads(data.decode("utf-8"))
            except (ValueError, RecursionError):
                s = None
            if s is not None:
                try:
                    obj, e, w = mutate_object(rng, s)
                    new = dump(obj, rng)
                except RecursionError:  # nested too deeply for this fuzzer's own walk
                    new = None
                if new is not None:
                    data = new
                    expect = combine(expect, e)
                    what.append(w)
                    continue
        data, e, w = mutate_bytes(rng, data)
        expect = combine(expect, e)
        what.append(w)
    return data, expect, "; ".join(what)


def combine(before, mutation):
    """A file known invalid stays unknown after more mutations (a later one may repair it)."""
    if mutation is UNKNOWN or before is UNKNOWN:
        return UNKNOWN
    if mutation == INVALID:
        return INVALID
    return before if before == INVALID else VALID


# ---- the oracle ---------------------------------------------------------------------------------

class Broken(Exception):
    """An invariant did not hold for an input; details: the traceback, when there is one."""

    def __init__(self, message, details="", kind=None):
        super().__init__(message)
        self.details = details
        self.kind = kind or message.splitlines()[0][:24]


def independent_verdict(data):
    """INVALID when the bytes are not a UTF-8 JSON object with regions_begun (a valid file is
    that and more, so this never says VALID); else UNKNOWN."""
    try:
        s = json.loads(data.decode("utf-8"), parse_constant=lambda c: None)
    except (ValueError, RecursionError):
        return INVALID
    if not isinstance(s, dict) or "regions_begun" not in s:
        return INVALID
    return UNKNOWN


def run_in_process(report, path):
    """main(['report.py', 'report', path]) with strict UTF-8 streams; returns (rc, out, err, seconds)."""
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", newline="\n")
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="strict", newline="\n")
    saved = sys.stdout, sys.stderr
    start = time.monotonic()
    try:
        sys.stdout, sys.stderr = out, err
        try:
            rc = report.main(["report.py", "report", str(path)])
        except SystemExit as e:
            rc = ("SystemExit", e.code)
        except BaseException:  # noqa: BLE001 - any exception is the failure we look for
            tb = traceback.format_exc()
            exception, where = raised_where(tb)
            raise Broken("main() raised (a traceback for the user): %s at %s" % (exception[:120], where), tb,
                         "%s at %s" % (exception.split(":")[0], where)) from None
        finally:
            try:
                out.flush()
                err.flush()
            except Exception:  # noqa: BLE001
                pass
    finally:
        sys.stdout, sys.stderr = saved
    return rc, out_bytes.getvalue(), err_bytes.getvalue(), time.monotonic() - start


def check_result(path, data, expect, rc, out, err, seconds):
    if seconds > CASE_SECONDS:
        raise Broken("took %.1f s" % seconds)
    if rc not in (0, 2):
        raise Broken("exit status %r, expected 0 or 2" % (rc,))
    independent = independent_verdict(data)
    if rc == 2:
        text = err.decode("utf-8")
        if out:
            raise Broken("exit 2 with output on stdout: %.200r" % out)
        if not text.endswith("\n") or "\n" in text[:-1]:
            raise Broken("exit 2 without exactly one line on stderr: %.300r" % text)
        if not text.startswith("arenashim: report: ") or str(path) not in text:
            raise Broken("exit 2, the message does not start 'arenashim: report: ' and name the file: %.300r" % text)
        if expect == VALID:
            raise Broken("a valid file refused: %s" % text.strip())
    else:
        if err:
            raise Broken("exit 0 with output on stderr: %.300r" % err)
        if independent == INVALID or expect == INVALID:
            raise Broken("an invalid file accepted (exit 0)")
        lines = out.decode("utf-8").split("\n")
        if lines[0] != "arenashim: statistics (from %s)" % path:
            raise Broken("first line of the summary: %.200r" % lines[0])
        try:
            begun = json.loads(data.decode("utf-8"))["regions_begun"]
        except RecursionError:
            return
        if not is_count(begun):
            raise Broken("accepted, with regions_begun %.40r, not a count" % (begun,))
        if len(lines) < 2 or not re.fullmatch(r"  regions          %d begun, \d+ ended" % begun, lines[1]):
            raise Broken("second line of the summary: %.200r (regions_begun %r)" % (lines[1:2], begun))


def raised_where(tb):
    """(the exception's line, FILE:LINE (FUNCTION) of the innermost frame) of a traceback."""
    lines = tb.strip().splitlines()
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', tb)
    where = "%s:%s (%s)" % (Path(frames[-1][0]).name, frames[-1][1], frames[-1][2]) if frames else "?"
    return lines[-1], where


def save_crash(crashes, data, description, message):
    crashes = Path(crashes)
    crashes.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    path = crashes / ("crash-%s.json" % digest)
    path.write_bytes(data)
    (crashes / ("crash-%s.txt" % digest)).write_text("mutations: %s\n\n%s\n" % (description, message))
    return path


def check_file(report, path, data, expect=UNKNOWN):
    """Runs one file in-process and checks it; raises Broken."""
    rc, out, err, seconds = run_in_process(report, path)
    check_result(path, data, expect, rc, out, err, seconds)
    return rc


def check_cli(path, timeout=30):
    """The real command in a subprocess (C locale, as the suites run it): exit 0 or 2, no
    traceback, one line on stderr for 2.  Returns the exit status; raises Broken."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENASHIM_") and k != "LD_PRELOAD"}
    env["LC_ALL"] = "C"
    proc = subprocess.run([str(LAUNCHER), "report", str(path)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)
    err = proc.stderr.decode("utf-8", "replace")
    if "Traceback" in err or proc.returncode not in (0, 2):
        raise Broken("scripts/arenashim report %s: exit %d\n%s" % (path, proc.returncode, err[-3000:]))
    if proc.returncode == 2 and (proc.stdout or err.count("\n") != 1):
        raise Broken("scripts/arenashim report %s: exit 2 without exactly one line on stderr: %.300r"
                     % (path, err))
    if proc.returncode == 0 and proc.stderr:
        raise Broken("scripts/arenashim report %s: exit 0 with stderr %.300r" % (path, err))
    return proc.returncode


def read_seeds(paths):
    seeds = [(Path(p).name, Path(p).read_bytes()) for p in paths]
    if not seeds:
        raise SystemExit("fuzz_report: no seed files")
    return seeds


def fuzz(report, seeds, cases=None, seconds=None, seed=1, crashes=None, cli_sample=20, log=None):
    """Runs cases (or until seconds passed); returns (cases run, failures [(path, message)], counts)."""
    rng = random.Random(seed)
    failures = []
    counts = {0: 0, 2: 0}
    seen_failures = set()
    cli_checked = 0
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="arenashim-fuzz-report."))
    n = 0
    try:
        while True:
            if cases is not None and n >= cases:
                break
            if seconds is not None and time.monotonic() - start >= seconds:
                break
            data, expect, description = make_case(rng, seeds)
            path = tmp / ("case-%d.json" % n)
            path.write_bytes(data)
            n += 1
            try:
                rc = check_file(report, path, data, expect)
                counts[rc] += 1
                # Now and then the real command on the same file: the same verdict.
                if cli_checked < cli_sample and rng.random() < 0.02:
                    cli_checked += 1
                    cli_rc = check_cli(path)
                    if cli_rc != rc:
                        raise Broken("the command exits %d, main() in-process returned %d" % (cli_rc, rc))
            except Broken as e:
                key = e.kind
                if key not in seen_failures:  # the first input of each kind is kept
                    seen_failures.add(key)
                    saved = save_crash(crashes, data, description, "%s\n%s" % (e, e.details)) if crashes else path
                    failures.append((saved, "%s [%s]" % (str(e), description)))
                    if log:
                        log("failure: %s: %s" % (saved, str(e).splitlines()[0]))
            finally:
                path.unlink()
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
    return n, failures, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crashes", default=None, help="where failing inputs are saved")
    parser.add_argument("--report", default=str(REPORT), help="the report.py under test")
    parser.add_argument("seeds", nargs="*")
    args = parser.parse_args()
    if args.cases is None and args.seconds is None:
        args.cases = 2000
    report = load_report(args.report)
    seeds = read_seeds(args.seeds or sorted(SEEDS.iterdir()))
    n, failures, counts = fuzz(report, seeds, args.cases, args.seconds, args.seed, args.crashes)
    for path, message in failures:
        print("FAIL %s: %s" % (path, message.replace("\n", "\n    ")))
    print("%d cases: %d summaries (exit 0), %d refused (exit 2), %d distinct failures"
          % (n, counts[0], counts[2], len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
