#!/usr/bin/python3
"""Fuzzing (issue 14): the three parsers that untrusted users control.

Usage:
    /usr/bin/python3 tests/fuzz/run.py --build build [-k SUBSTRING] [--list]
    /usr/bin/python3 tests/fuzz/run.py --build build --long SECONDS    # a campaign

The targets:

  options       ARENASHIM_OPTIONS, options_parse() of core/options.c (with options_parse_size and
                options_restrict_for_secure_execution): libFuzzer harness
                tests/fuzz/options/fuzz_options.c.  It asserts, beyond no crash and no ASan/UBSan
                report: the error buffer is never written past error_len (a canary behind it, for
                lengths 1024, 0, 1 and one from the input), is NUL-terminated within error_len on
                failure and untouched on success, a shorter buffer gets a prefix of the message;
                a failure's message starts "ARENASHIM_OPTIONS: " and is one line; on success every
                field is within its documented range (chunk_size a power of two in [64K, 1G],
                reserve in [64M, 64T] and >= 4 chunks, revoke_batch 0 or 2..65536, scan_threads
                <= 16, verbose <= 2, discover <= 2^30, quarantine_max > 0, enums and bools valid,
                exclude 1..16 non-empty names without ':', strings NUL-terminated within their
                arrays) and the text is key=value[,...] with known keys; the same text parsed again
                gives a byte-identical struct, and parsed over its own result changes nothing;
                the secure-execution restriction resets exactly the privileged keys and names
                each once; options_parse_size agrees with an independent model.
  marker_spec   ARENASHIM_REGIONS, marker_spec_parse() and marker_spec_describe() of
                preload/hook/marker_spec.c: libFuzzer harness tests/fuzz/marker_spec/
                fuzz_marker_spec.c.  Each input is one spec (all its bytes, NUL included) and
                also a list split on ',' as preload/hook/markers.c parse_all splits it.  It
                asserts the same error-buffer properties ("ARENASHIM_REGIONS:", one line); that
                the parser accepts exactly what an independent model of the documented grammar
                accepts (FUNC [A-Za-z_.$][A-Za-z0-9_.$]* < 256 bytes, MODULE:FUNC, MODULE+0xHEX
                within 64 bits, MODULE < 128 bytes, the spec 1..399 bytes without a NUL) with the
                same form, module, function and offset; fields NUL-terminated within their
                arrays, the record independent of the struct's old bytes; describe()'s text fits
                the marker table's 400 bytes, is cut to shorter buffers without overrun, and
                parses back to the identical record (and the whole list likewise).
  report        `scripts/arenashim report FILE.json` (scripts/lib/report.py): the mutation
                fuzzer tests/fuzz/report/fuzz_report.py (standard library only) mutates the real
                stats_json files of tests/fuzz/report/seeds/ (truncation, flipped and inserted
                bytes, non-UTF-8, a BOM, huge, negative, fractional and NaN numbers, wrong types,
                missing keys, deep nesting, thousands of entries) and runs main() in-process,
                and the real command in a subprocess for a sample.  It asserts no traceback ever,
                exit status 0 or 2; 2 with one line on stderr naming the file and nothing on
                stdout; 0 with the summary and nothing on stderr; invalid JSON or a top level
                without regions_begun always gives 2, a mutation that keeps the file valid
                always gives 0.

The cases:

  <target>_regressions   replays every file of tests/fuzz/<target>/regressions/ (inputs that once
                         failed) and the seeds; each must pass every check.
  <target>_fuzz          a short run (10 s per libFuzzer target, 4000 report cases) from the seeds
                         of tests/fuzz/<target>/seeds/ and the corpus kept in BUILD/fuzz/corpus/,
                         with the dictionary tests/fuzz/<target>/<target>.dict.  A crash or a
                         broken invariant is a FAIL naming the reproducer, kept under
                         BUILD/fuzz/crashes/<target>/ (replay it: BUILD/fuzz/fuzz_<target> FILE, or
                         fuzz_report.py's check on the .json); once fixed, copy it into
                         tests/fuzz/<target>/regressions/.

The whole short run takes about 30 s (27 s measured on a two-core machine shared with other
work; the first run compiles the harnesses for a few seconds more).

A long campaign: `python3 tests/fuzz/run.py --build build --long 3600` runs each target for an
hour (libFuzzer with -use_value_profile=1; the report fuzzer for as long, with no case limit),
one target after the other, one process at a time (-jobs and -workers are not used).  The corpus
grows in BUILD/fuzz/corpus/<target>/ and is reused by every later run; `-k options_fuzz` runs
one target.  The logs of the last run of each target are in BUILD/fuzz/logs/.

The libFuzzer harnesses are built here with clang (-fsanitize=fuzzer,address,undefined) directly
into BUILD/fuzz/, not by meson: a meson build folder has one C compiler (gcc for the project) and
libFuzzer needs clang.  Each is linked with the one source file it tests and rebuilt when that
file, the harness or a header beside them changes.  clang and libclang-rt-14-dev (libFuzzer's
runtime) come from scripts/lib/setup.sh.

Prints `PASS name` or `FAIL name: reason` and finally `N passed, N failed`; exits 1 when a case
failed.
"""

import argparse
import hashlib
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
sys.path.insert(0, str(HERE / "report"))
import harness  # noqa: E402
import fuzz_report  # noqa: E402

Failure = harness.Failure
expect = harness.expect

SHORT_SECONDS = 10
SHORT_REPORT_CASES = 4000
CFLAGS = ["-g", "-O1", "-std=gnu11", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
          "-fno-omit-frame-pointer", "-Wall", "-Wextra"]
FUZZ_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:allocator_may_return_null=1:handle_abort=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

# Each libFuzzer target: its sources (the harness first), include folders, longest input.
TARGETS = {
    "options": dict(sources=["tests/fuzz/options/fuzz_options.c", "core/options.c"],
                    includes=["core/include", "core", "include"], max_len=2048),
    "marker_spec": dict(sources=["tests/fuzz/marker_spec/fuzz_marker_spec.c", "preload/hook/marker_spec.c"],
                        includes=["preload/hook"], max_len=1024),
}

CASES = []


def case(function):
    CASES.append(function)
    return function


class Context:
    def __init__(self, build, args):
        self.build = build
        self.args = args
        self.fuzz = build / "fuzz"
        self.built = {}

    def crashes(self, target):
        path = self.fuzz / "crashes" / target
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name):
        path = self.fuzz / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path / (name + ".log")


# ---- building the libFuzzer harnesses -------------------------------------------------------------

def find_clang():
    for name in [os.environ.get("ARENASHIM_FUZZ_CC", ""), "clang"] + ["clang-%d" % v for v in range(19, 13, -1)]:
        if name and shutil.which(name):
            return shutil.which(name)
    raise Failure("clang is not installed: libFuzzer needs it (apt-get install clang libclang-rt-14-dev; "
                  "scripts/lib/setup.sh lists them)")


def build_target(ctx, target):
    """BUILD/fuzz/fuzz_TARGET, compiled when missing or when a source, a header or the flags changed."""
    if target in ctx.built:
        if isinstance(ctx.built[target], Failure):
            raise ctx.built[target]
        return ctx.built[target]
    try:
        ctx.built[target] = _build(ctx, target)
    except Failure as e:
        ctx.built[target] = e
        raise
    return ctx.built[target]


def _build(ctx, target):
    spec = TARGETS[target]
    cc = find_clang()
    ctx.fuzz.mkdir(parents=True, exist_ok=True)
    binary = ctx.fuzz / ("fuzz_" + target)
    stamp = ctx.fuzz / ("fuzz_%s.stamp" % target)
    includes = ["-I" + str(ROOT / i) for i in spec["includes"]]
    sources = [str(ROOT / s) for s in spec["sources"]]
    command = [cc] + CFLAGS + includes + sources + ["-o", str(binary)]
    digest = hashlib.sha256(" ".join(command).encode())
    inputs = list(sources)
    for folder in spec["includes"] + sorted({str(Path(s).parent) for s in spec["sources"]}) + ["tests/fuzz"]:
        inputs += sorted(str(p) for p in (ROOT / folder).glob("*.h"))
    for path in inputs:
        digest.update(path.encode() + b"\0" + Path(path).read_bytes())
    digest = digest.hexdigest()
    if binary.exists() and stamp.exists() and stamp.read_text() == digest:
        return binary
    rc, out, err, _, _ = harness.spawn(command, harness.clean_env(), timeout=300)
    if rc != 0:
        text = (out + err).decode(errors="replace")
        hint = ""
        if "libclang_rt.fuzzer" in text or "cannot find" in text:
            hint = " (libFuzzer's runtime is in libclang-rt-14-dev: apt-get install libclang-rt-14-dev)"
        raise Failure("building %s failed%s:\n%s\n%s" % (binary.name, hint, " ".join(command), text[-3000:]))
    stamp.write_text(digest)
    return binary


def libfuzzer_env():
    env = harness.clean_env()
    env.update(FUZZ_ENV)
    return env


def culprit(text):
    """The lines that say what broke, from a libFuzzer log."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "invariant broken" in line:
            return "\n".join(lines[i:i + 3])
    for i, line in enumerate(lines):
        if re.search(r"ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:", line):
            return "\n".join(lines[i:i + 2])
    return "\n".join(lines[-8:])


# ---- libFuzzer cases ------------------------------------------------------------------------------

def regressions(target):
    folder = HERE / target / "regressions"
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.exists() else []


def seeds(target):
    return sorted(p for p in (HERE / target / "seeds").iterdir() if p.is_file())


def replay(ctx, target):
    binary = build_target(ctx, target)
    files = regressions(target) + seeds(target)
    expect(files, "no regression or seed files for %s" % target)
    argv = [binary, "-timeout=10", "-artifact_prefix=%s/" % ctx.crashes(target)] + files
    rc, out, err, _, _ = harness.spawn(argv, libfuzzer_env(), timeout=120)
    text = (out + err).decode(errors="replace")
    ctx.log(target + "-regressions").write_text(text)
    if rc != 0:
        running = re.findall(r"Running: (.*)", text)
        raise Failure("%s fails on %s (exit %s):\n%s" % (binary.name, running[-1] if running else "?",
                                                         harness.describe_status(rc), culprit(text)))
    executed = len(re.findall(r"Executed .* in \d+ ms", text))
    expect(executed == len(files), "replayed %d of %d files:\n%s" % (executed, len(files), text[-2000:]))
    return "%d regressions and %d seeds" % (len(regressions(target)), len(seeds(target)))


def fuzz_libfuzzer(ctx, target):
    binary = build_target(ctx, target)
    spec = TARGETS[target]
    seconds = ctx.args.long or SHORT_SECONDS
    corpus = ctx.fuzz / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = ctx.crashes(target)
    before = set(crashes.iterdir())
    argv = [binary, corpus, HERE / target / "seeds", "-dict=%s" % (HERE / target / (target + ".dict")),
            "-max_len=%d" % spec["max_len"], "-max_total_time=%d" % seconds, "-timeout=10",
            "-rss_limit_mb=2048", "-print_final_stats=1", "-artifact_prefix=%s/" % crashes,
            "-seed=%d" % ctx.args.seed]
    if ctx.args.long:
        argv.append("-use_value_profile=1")
    rc, out, err, elapsed, _ = harness.spawn(argv, libfuzzer_env(), timeout=seconds + 300)
    text = (out + err).decode(errors="replace")
    ctx.log(target + "-fuzz").write_text(text)
    if rc != 0:
        found = sorted(set(crashes.iterdir()) - before)
        kept = ", ".join(str(p) for p in found) or "(no artifact written)"
        raise Failure("%s: exit %s after %.0f s; reproducer: %s (replay: %s FILE; once fixed, copy it into "
                      "tests/fuzz/%s/regressions/)\n%s" % (binary.name, harness.describe_status(rc), elapsed,
                                                          kept, binary, target, culprit(text)))
    runs = re.search(r"stat::number_of_executed_units: (\d+)", text)
    status = re.findall(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", text)
    cov, ft, corp = status[-1] if status else ("?", "?", "?")
    return "%s runs in %.0f s, coverage %s edges (%s features), corpus %s" % (
        runs.group(1) if runs else "?", elapsed, cov, ft, corp)


@case
def options_regressions(ctx):
    """ARENASHIM_OPTIONS: the inputs of tests/fuzz/options/regressions/ and the seeds, replayed."""
    return replay(ctx, "options")


@case
def options_fuzz(ctx):
    """ARENASHIM_OPTIONS: libFuzzer (fuzz_options.c) from the seeds and the kept corpus."""
    return fuzz_libfuzzer(ctx, "options")


@case
def marker_spec_regressions(ctx):
    """ARENASHIM_REGIONS: the inputs of tests/fuzz/marker_spec/regressions/ and the seeds, replayed."""
    return replay(ctx, "marker_spec")


@case
def marker_spec_fuzz(ctx):
    """ARENASHIM_REGIONS: libFuzzer (fuzz_marker_spec.c) from the seeds and the kept corpus."""
    return fuzz_libfuzzer(ctx, "marker_spec")


# ---- report cases ---------------------------------------------------------------------------------

@case
def report_regressions(ctx):
    """report FILE.json: the files of tests/fuzz/report/regressions/ (exit 0 or 2, no traceback) and
    the seeds (exit 0, the summary), in-process and through scripts/arenashim report."""
    report = fuzz_report.load_report()
    files = [(p, fuzz_report.UNKNOWN) for p in regressions("report")]
    files += [(p, fuzz_report.VALID) for p in seeds("report")]
    problems = []
    for path, expectation in files:
        data = path.read_bytes()
        try:
            rc = fuzz_report.check_file(report, path, data, expectation)
            cli_rc = fuzz_report.check_cli(path)
            if cli_rc != rc:
                raise fuzz_report.Broken("the command exits %d, main() returned %d" % (cli_rc, rc))
        except fuzz_report.Broken as e:
            problems.append("%s: %s" % (path, str(e).replace("\n", "\n    ")))
    expect(not problems, "\n".join(problems))
    return "%d regressions and %d seeds" % (len(regressions("report")), len(seeds("report")))


@case
def report_fuzz(ctx):
    """report FILE.json: mutations of the seed statistics files (fuzz_report.py)."""
    report = fuzz_report.load_report()
    seed_files = fuzz_report.read_seeds(seeds("report"))
    crashes = ctx.crashes("report")
    log = ctx.log("report-fuzz").open("w")
    try:
        if ctx.args.long:
            n, failures, counts = fuzz_report.fuzz(report, seed_files, seconds=ctx.args.long, seed=ctx.args.seed,
                                                   crashes=crashes, cli_sample=200, log=log.write)
        else:
            n, failures, counts = fuzz_report.fuzz(report, seed_files, cases=ctx.args.cases, seed=ctx.args.seed,
                                                   crashes=crashes, log=log.write)
        summary = "%d cases: %d summaries (exit 0), %d refused (exit 2)" % (n, counts[0], counts[2])
        log.write(summary + "\n")
    finally:
        log.close()
    if failures:
        raise Failure("%d kinds of failure in %d cases; reproducers in %s:\n%s" % (
            len(failures), n, crashes,
            "\n".join("%s: %s" % (p, m.replace("\n", "\n    ")) for p, m in failures[:5])))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="the meson build folder (default: build); "
                        "the fuzzers are built into BUILD/fuzz/")
    parser.add_argument("-k", dest="filter", default="", help="run only the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--long", type=int, default=0, metavar="SECONDS",
                        help="a campaign: each fuzzing case runs this long")
    parser.add_argument("--cases", type=int, default=SHORT_REPORT_CASES,
                        help="report cases of a short run (default %d)" % SHORT_REPORT_CASES)
    parser.add_argument("--seed", type=int, default=1, help="the random seed (default 1)")
    args = parser.parse_args()
    selected = [c for c in CASES if args.filter in c.__name__]
    if args.list:
        for c in selected:
            print("%-24s %s" % (c.__name__, (c.__doc__ or "").strip().split("\n")[0]))
        return 0
    build = Path(args.build)
    if not build.is_absolute():
        build = (Path.cwd() / build) if (Path.cwd() / build).exists() else ROOT / build
    ctx = Context(build, args)
    passed = failed = 0
    for c in selected:
        start = time.monotonic()
        try:
            note = c(ctx)
            note = "%s; %.1f s" % (note, time.monotonic() - start) if note else "%.1f s" % (time.monotonic() - start)
            print("PASS %s (%s)" % (c.__name__, note))
            passed += 1
        except Failure as e:
            print("FAIL %s: %s" % (c.__name__, str(e).replace("\n", "\n    ")))
            failed += 1
        except Exception:  # noqa: BLE001 - a broken case is a failed case
            print("FAIL %s: %s" % (c.__name__, traceback.format_exc().replace("\n", "\n    ")))
            failed += 1
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
