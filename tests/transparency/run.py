#!/usr/bin/python3
"""Transparency at scale (issue 14): Debian programs nobody here wrote behave exactly the same
under arenashim.

Usage:
    /usr/bin/python3 tests/transparency/run.py --build build [--all] [-k SUBSTRING] [--list]

Why: the other suites run programs written for them.  A malloc replacement that is loaded into
every process must not change what an ordinary program does, whatever allocation pattern,
threads, forks, signals, locale or dlopen it brings; and a function marker put on a real
function of a program or of a library it uses must not change it either, apart from what
recover mode lets through (and counts).  This suite takes the programs of a Debian system
(coreutils, grep, sed, gawk, mawk, tar, gzip, xz, bzip2, zstd, cpio, zip, diff, patch, find,
sqlite3, python3, perl, make, gcc, git, xmllint, bc, dc, m4, file, binutils, jq, openssl, dash,
bash, ...) as they are and checks them against themselves.

What it does: it first writes a fixed set of inputs into a temporary folder (seeded random
text, numbers, CSV, a directory tree with a symbolic link, XML with a DTD, JSON, an SQL
script, Python, Perl and awk programs, C sources, a Makefile, bc/dc/m4 scripts...), every file
with a fixed modification time.  A case is a program with one or more steps (argv lists, run
without a shell unless the step is a shell pipeline on purpose), and each case runs

  1. plainly,
  2. with LD_PRELOAD=BUILD/preload/libarenashim.so and no marker (no ARENASHIM_* variable),

each time in a fresh copy of the inputs at the same path, with the same minimal environment
(PATH=/usr/bin:/bin, LC_ALL=C, TZ=UTC, HOME and TMPDIR in the temporary folder, fixed git
identities and dates, PYTHONHASHSEED=0, PERL_HASH_SEED=0).  Every step's stdout, stderr and
exit status must be identical byte for byte, and so must the files the steps leave in the
working folder (names, types, permissions, contents; a few files that record inode numbers,
like git's index, are named per case and left out).  A mismatch fails the case with a short
diff.

Marked cases (`NAME.marked`) run a program a third way, with ARENASHIM_REGIONS set to a real
function of the program or of one of its libraries, most of them allocating per call (found
with `scripts/arenashim discover -- CMD` and checked by hand; the specs below say where each
comes from; pcre2_match under grep -P and libbfd's version strings allocate nothing, and only
show that thousands of regions around JIT code or libbfd change nothing), and ARENASHIM_OPTIONS=on_dangling=recover,stats_json=DIR/s.%p.json,log_path=DIR/log.%p.
Output, exit status and files must still be the plain run's; the marker must have opened
regions (the sum of markers[].regions for that spec over the processes' stats_json files);
the dangling accesses (dangling_accesses) are summed, must equal the number of reports in the
log files (counted, not hidden), and are printed in the PASS line with the regions and
objects.  A dangling access is allowed there (recover mode keeps the contents and goes on),
never in the unmarked run.

Nothing is hard-coded as an expected output: the plain run is the reference.  There are no
time limits beyond a generous per-step timeout against hangs.  Invocations whose output
legitimately depends on the process (its pid, its environment, the current time, inode
numbers, access times) are avoided rather than filtered.

A program that is missing fails its case, naming the Debian package (scripts/lib/setup.sh
lists them all, and scripts/test installs them).  The default set (83 cases, 9 of them marked)
takes 25 s on a quiet two-core machine (40-55 s with the machine busy); --all adds 6 slower or
bigger cases (gcc with a marker inside cc1, whose set-up decodes all of cc1; a 60000-line sort;
git gc; three more markers, one with over a thousand dangling reads).
Prints `PASS name: ...` or `FAIL name: reason` per case, then the time taken, and last
`N passed, N failed`; exits 1 when a case failed.
"""

import difflib
import json
import os
import random
import re
import shutil
import stat
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402  (tests/lib: what the program suites share)

ROOT = Path(__file__).resolve().parents[2]
Failure = harness.Failure
expect = harness.expect

PATH = "/usr/bin:/bin"
FIXED_MTIME = 1600000000          # 2020-09-13T12:26:40Z, every input file and folder
GIT_DATE = "2021-02-03T04:05:06Z"
STEP_TIMEOUT = 120

# The Debian package of each program the cases run (scripts/lib/setup.sh installs them).
PACKAGES = {
    "sort": "coreutils", "ls": "coreutils", "wc": "coreutils", "cut": "coreutils",
    "tr": "coreutils", "uniq": "coreutils", "od": "coreutils", "sha256sum": "coreutils",
    "md5sum": "coreutils", "b2sum": "coreutils", "cksum": "coreutils", "sum": "coreutils",
    "base64": "coreutils", "base32": "coreutils", "date": "coreutils", "seq": "coreutils",
    "factor": "coreutils", "printf": "coreutils", "join": "coreutils", "comm": "coreutils",
    "paste": "coreutils", "fmt": "coreutils", "nl": "coreutils", "split": "coreutils",
    "csplit": "coreutils", "fold": "coreutils", "expand": "coreutils", "unexpand": "coreutils",
    "tac": "coreutils", "head": "coreutils", "tail": "coreutils", "pr": "coreutils",
    "numfmt": "coreutils", "tsort": "coreutils", "shuf": "coreutils", "expr": "coreutils",
    "cat": "coreutils", "stat": "coreutils", "du": "coreutils", "dd": "coreutils",
    "readlink": "coreutils", "realpath": "coreutils", "mkdir": "coreutils", "cp": "coreutils",
    "rm": "coreutils", "test": "coreutils", "truncate": "coreutils", "ptx": "coreutils",
    "sha1sum": "coreutils", "sha512sum": "coreutils",
    "grep": "grep", "sed": "sed", "gawk": "gawk", "mawk": "mawk", "tar": "tar",
    "gzip": "gzip", "gunzip": "gzip", "zcat": "gzip", "xz": "xz-utils", "bzip2": "bzip2",
    "bunzip2": "bzip2", "zstd": "zstd", "cpio": "cpio", "zip": "zip", "unzip": "unzip",
    "diff": "diffutils", "cmp": "diffutils", "diff3": "diffutils", "patch": "patch",
    "find": "findutils", "xargs": "findutils", "sqlite3": "sqlite3", "python3": "python3",
    "perl": "perl", "make": "make", "gcc": "gcc", "git": "git", "xmllint": "libxml2-utils",
    "bc": "bc", "dc": "dc", "m4": "m4", "file": "file", "readelf": "binutils",
    "objdump": "binutils", "nm": "binutils", "strings": "binutils", "size": "binutils",
    "jq": "jq", "iconv": "libc-bin", "xxd": "xxd", "hexdump": "bsdextrautils",
    "column": "bsdextrautils", "rev": "util-linux", "openssl": "openssl", "sh": "dash",
    "bash": "bash",
}


# --- the inputs ------------------------------------------------------------------------------

SYLLABLES = ["ka", "to", "ri", "mu", "sen", "dor", "al", "qui", "ve", "zo", "pe", "lan",
             "gri", "fo", "ne", "bu", "sta", "xi", "ho", "ja", "ab", "cd", "ef", "gh"]


def word(rnd):
    return "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randrange(1, 4)))


def generate_inputs(folder):
    """Writes the suite's inputs into FOLDER (deterministic: one seed, fixed timestamps)."""
    rnd = random.Random(14)
    folder = Path(folder)
    folder.mkdir(parents=True)

    def put(name, data, mode=0o644):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        path.chmod(mode)

    lines = [" ".join(word(rnd) for _ in range(rnd.randrange(1, 9))) for _ in range(3000)]
    put("words.txt", "\n".join(lines) + "\n")
    put("small.txt", "\n".join(lines[:600]) + "\n")
    put("nums.txt", "".join("%d\n" % rnd.randrange(-10**6, 10**6) for _ in range(2000)))
    depts = ["eng", "ops", "sales", "legal", "hr", "research"]
    people = ["id,name,dept,salary,start"]
    for i in range(800):
        people.append("%d,%s %s,%s,%d,20%02d-%02d-%02d" % (
            1000 + i, word(rnd).title(), word(rnd).title(), rnd.choice(depts),
            rnd.randrange(30000, 190000), rnd.randrange(0, 24), rnd.randrange(1, 13), rnd.randrange(1, 29)))
    put("people.csv", "\n".join(people) + "\n")
    put("people_head.csv", "\n".join(people[:40]) + "\n")
    keys = sorted(set(word(rnd) + str(rnd.randrange(100)) for _ in range(900)))
    left = sorted(k for k in keys if rnd.random() < 0.7)
    right = sorted(k for k in keys if rnd.random() < 0.6)
    put("left.txt", "".join("%s %d\n" % (k, rnd.randrange(1000)) for k in left))
    put("right.txt", "".join("%s %s\n" % (k, word(rnd)) for k in right))
    put("left_keys.txt", "".join(k + "\n" for k in left))
    put("right_keys.txt", "".join(k + "\n" for k in right))
    paragraphs = []
    for _ in range(40):
        sentences = []
        for _ in range(rnd.randrange(2, 7)):
            s = " ".join(word(rnd) for _ in range(rnd.randrange(4, 16)))
            sentences.append(s[0].upper() + s[1:] + rnd.choice([".", ".", "!", "?", ";"]))
        paragraphs.append(" ".join(sentences))
    put("prose.txt", "\n\n".join(paragraphs) + "\n")
    put("tabs.txt", "".join("\t".join(word(rnd) for _ in range(rnd.randrange(1, 6))) + "\n"
                            for _ in range(200)))
    put("blob.bin", bytes(rnd.randrange(256) for _ in range(16384)))
    blob2 = bytearray((folder / "blob.bin").read_bytes())
    for _ in range(20):
        blob2[rnd.randrange(len(blob2))] ^= 0x5a
    put("blob2.bin", bytes(blob2))
    put("dates.txt", "".join("@%d\n" % rnd.randrange(0, 2**31) for _ in range(40)) +
        "2024-02-29 13:14:15\n1999-12-31 23:59:59 +0530\n2038-01-19 03:14:08 UTC\n")
    put("deps.txt", "".join("%s %s\n" % ("m%02d" % a, "m%02d" % b)
                            for a in range(30) for b in range(a + 1, 30) if rnd.random() < 0.1))
    put("sizes.txt", "".join("%d %s\n" % (rnd.randrange(1, 10**12), word(rnd)) for _ in range(60)))
    put("latin1.txt", "caf\xe9 na\xefve r\xe9sum\xe9 \xe0 la fa\xe7on de \xabSt\xfcck\xbb\n".encode("latin-1") * 20)
    patterns = sorted(set(word(rnd) for _ in range(40)))
    put("patterns.txt", "".join(p + "\n" for p in patterns))
    # old.txt / new.txt for diff and patch: the same lines, with edits.
    old = lines[:400]
    new = list(old)
    for _ in range(25):
        i = rnd.randrange(len(new))
        choice = rnd.randrange(3)
        if choice == 0:
            new[i] = new[i].upper()
        elif choice == 1:
            new.insert(i, "inserted " + word(rnd))
        else:
            del new[i]
    put("old.txt", "\n".join(old) + "\n")
    put("new.txt", "\n".join(new) + "\n")
    put("mine.txt", "\n".join(old[:150] + ["mine " + w for w in old[150:155]] + old[155:]) + "\n")

    # A directory tree (and a changed copy for diff -r).
    for root in ("tree", "tree2"):
        put(root + "/README.txt", "\n".join(lines[3:40]) + "\n")
        put(root + "/a/alpha.txt", "\n".join(lines[40:200]) + "\n")
        put(root + "/a/beta.txt", "\n".join(lines[200:230]) + "\n")
        put(root + "/a/data.bin", bytes(rnd.randrange(256) for _ in range(3000)) if root == "tree"
            else (folder / "tree/a/data.bin").read_bytes())
        put(root + "/a/b/deep.txt", "\n".join(lines[230:260]) + "\n")
        put(root + "/a/b/empty.txt", "")
        put(root + "/a/b/c.csv", "\n".join(people[:30]) + "\n")
        put(root + "/c/notes.md", "# Notes\n\n" + "\n".join("- " + l for l in lines[260:300]) + "\n")
        put(root + "/c/run.sh", "#!/bin/sh\necho hello from run.sh\n", mode=0o755)
        os.symlink("a/alpha.txt", folder / root / "link")
    put("tree2/a/alpha.txt", "\n".join(lines[40:120] + ["changed line"] + lines[121:200]) + "\n")
    (folder / "tree2/a/beta.txt").unlink()
    put("tree2/c/new.txt", "a new file\n")
    cpio_list = sorted(str(p.relative_to(folder)) for p in (folder / "tree").rglob("*"))
    put("cpio_list.txt", "".join(p + "\n" for p in ["tree"] + cpio_list))

    put("doc.xml", xml_document(rnd, 300))
    put("small.xml", xml_document(rnd, 12).replace("\n  ", "").replace("\n", ""))
    put("bad.xml", "<?xml version=\"1.0\"?>\n<lib>\n  <book id=\"b1\"><title>Unclosed</book>\n"
        "  <book id=\"b2\" id=\"b3\"/>\n</lib>\n")
    records = [{"id": i, "name": "%s-%d" % (word(rnd), rnd.randrange(1000)),
                "tags": [rnd.choice(["red", "green", "blue", "cyan", "gold"]) for _ in range(rnd.randrange(4))],
                "score": rnd.randrange(10000) / 100, "active": rnd.random() < 0.5,
                "nested": {"depth": rnd.randrange(5), "note": None if rnd.random() < 0.3 else word(rnd)}}
               for i in range(400)]
    put("data.json", json.dumps(records))
    put("db.sql", sql_script(rnd))
    for name, text in SCRIPTS.items():
        put(name, text, mode=0o755 if name.endswith(".sh") else 0o644)

    # Every file, link and folder gets the same modification time (links: their own).
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, ns=(FIXED_MTIME * 10**9, FIXED_MTIME * 10**9), follow_symlinks=False)
    os.utime(folder, ns=(FIXED_MTIME * 10**9, FIXED_MTIME * 10**9))


def xml_document(rnd, books):
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<!DOCTYPE library [",
           "<!ELEMENT library (book+)>", "<!ELEMENT book (title, author+, price, note?)>",
           "<!ATTLIST book id ID #REQUIRED lang (en|fr|de) \"en\" ref IDREF #IMPLIED>",
           "<!ELEMENT title (#PCDATA)>", "<!ELEMENT author (#PCDATA)>",
           "<!ELEMENT price (#PCDATA)>", "<!ATTLIST price currency CDATA \"EUR\">",
           "<!ELEMENT note (#PCDATA|em)*>", "<!ELEMENT em (#PCDATA)>", "<!ENTITY pub \"Fixed &amp; Sons\">",
           "]>", "<library>"]
    for i in range(books):
        ref = ' ref="b%d"' % rnd.randrange(i) if i and rnd.random() < 0.3 else ""
        authors = "".join("<author>%s %s</author>" % (word(rnd).title(), word(rnd).title())
                          for _ in range(rnd.randrange(1, 4)))
        note = ("<note>%s <em>%s</em> &pub;</note>" % (word(rnd), word(rnd))) if rnd.random() < 0.4 else ""
        out.append('  <book id="b%d" lang="%s"%s><title>%s</title>%s<price>%d.%02d</price>%s</book>' % (
            i, rnd.choice(["en", "fr", "de"]), ref, " ".join(word(rnd) for _ in range(3)).title(),
            authors, rnd.randrange(5, 90), rnd.randrange(100), note))
    out.append("</library>")
    return "\n".join(out) + "\n"


def sql_script(rnd):
    out = ["PRAGMA journal_mode=OFF;", "PRAGMA synchronous=OFF;",
           "CREATE TABLE dept(id INTEGER PRIMARY KEY, name TEXT UNIQUE);",
           "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, dept INTEGER REFERENCES dept(id), "
           "salary INTEGER, note TEXT);", "BEGIN;"]
    for i, d in enumerate(["eng", "ops", "sales", "legal", "hr", "research"]):
        out.append("INSERT INTO dept VALUES(%d, '%s');" % (i + 1, d))
    for i in range(600):
        out.append("INSERT INTO emp(name, dept, salary, note) VALUES('%s', %d, %d, %s);" % (
            word(rnd), rnd.randrange(1, 7), rnd.randrange(30000, 190000),
            "NULL" if rnd.random() < 0.3 else "'%s'" % " ".join(word(rnd) for _ in range(rnd.randrange(1, 12)))))
    out += ["COMMIT;",
            "CREATE INDEX emp_dept ON emp(dept, salary);",
            "SELECT d.name, count(*), sum(e.salary), round(avg(e.salary), 2) FROM emp e JOIN dept d "
            "ON d.id = e.dept GROUP BY d.name ORDER BY d.name;",
            "SELECT name, salary, rank() OVER (PARTITION BY dept ORDER BY salary DESC) AS r FROM emp "
            "WHERE dept = 3 ORDER BY r, name LIMIT 15;",
            "WITH RECURSIVE fib(a, b, n) AS (SELECT 0, 1, 0 UNION ALL SELECT b, a + b, n + 1 FROM fib "
            "WHERE n < 60) SELECT group_concat(a, ' ') FROM fib;",
            "SELECT printf('%-10s|%8.2f|%x', name, salary / 7.0, salary) FROM emp ORDER BY id LIMIT 20;",
            "SELECT upper(substr(note, 1, 12)), length(note), instr(note, 'ka') FROM emp "
            "WHERE note LIKE '%ri%' ORDER BY id LIMIT 25;",
            "UPDATE emp SET salary = salary * 11 / 10 WHERE dept IN (SELECT id FROM dept WHERE name LIKE '%e%');",
            "DELETE FROM emp WHERE id % 7 = 0;",
            "SELECT count(*), min(salary), max(salary), total(salary) FROM emp;",
            "SELECT quote(x'00ff'), typeof(1.5), json_object('a', 1, 'b', json_array(1, 2, 'x'));",
            "SELECT * FROM emp WHERE name GLOB '*[qz]*' ORDER BY salary DESC, id LIMIT 10;",
            "CREATE TABLE t2 AS SELECT dept, group_concat(name, ',') AS names FROM "
            "(SELECT * FROM emp ORDER BY id) GROUP BY dept;",
            "SELECT dept, length(names) FROM t2 ORDER BY dept;",
            "SELECT nosuchcolumn FROM emp;",
            "SELECT 'after the error';"]
    return "\n".join(out) + "\n"


SCRIPTS = {
    "t.py": r'''import collections, json, re, hashlib, zlib, struct, decimal, fractions, heapq, itertools
words = open("words.txt").read().split()
counts = collections.Counter(words)
print(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
print(hashlib.sha256(" ".join(sorted(counts)).encode()).hexdigest())
table = {w: [len(w), w[::-1], w.upper()] for w in sorted(counts)[:300]}
text = json.dumps(table, sort_keys=True, indent=1)
print(len(text), len(json.loads(text)), zlib.crc32(text.encode()))
packed = zlib.compress(text.encode() * 3, 9)
print(len(packed), zlib.decompress(packed) == text.encode() * 3)
print(sum(1 for w in words if re.fullmatch(r"(ka|to)+[a-z]*", w)))
print(struct.pack("<IhQd", 7, -3, 2**40, 1.25).hex())
decimal.getcontext().prec = 40
print(decimal.Decimal(2).sqrt(), fractions.Fraction(355, 113) - fractions.Fraction(22, 7))
print(heapq.nlargest(5, (len(w) for w in words)), list(itertools.islice(itertools.permutations("abcd"), 5)))
print(sorted({w[:2] for w in words}))
print(repr(3.0 / 7), format(12345678.9, ",.3f"), "%08.3e" % 0.000123)
import concurrent.futures, threading
chunks = [" ".join(words[i::8]).encode() for i in range(8)]
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    print([h[:12] for h in pool.map(lambda b: hashlib.sha256(zlib.compress(b, 6)).hexdigest(), chunks)])
print(threading.active_count())
''',
    "compile.py": r'''import random
r = random.Random(3)
total = 0
for i in range(60):
    terms = " + ".join("%d * x%d" % (r.randrange(1, 100), j % 7) for j in range(r.randrange(5, 60)))
    src = "def f(%s):\n    return %s\nresult = f(%s)\n" % (
        ", ".join("x%d" % k for k in range(7)), terms, ", ".join(str(k + i) for k in range(7)))
    code = compile(src, "<gen%d>" % i, "exec")
    ns = {}
    exec(code, ns)
    total += ns["result"]
print(total)
''',
    "t.pl": r'''use strict; use warnings;
my %h; my $n = 0; my $upper = 0;
open(my $fh, '<', 'words.txt') or die "words.txt: $!";
while (my $l = <$fh>) {
    chomp $l; my @w = split / /, $l; $h{$_}++ for @w;
    my $s = join(',', sort { $a cmp $b } @w); $n += length($s);
    $l =~ s/([a-d]+)/\U$1/g; $upper += ($l =~ tr/A-D//);
}
my @top = (sort { $h{$b} <=> $h{$a} || $a cmp $b } keys %h)[0..6];
printf "%d distinct, %d chars, %d upper, top: %s\n", scalar(keys %h), $n, $upper, join(' ', @top);
printf "%.6f %s %s\n", $n / 7, sprintf("%vd", "1.22.333"), unpack("H*", pack("N n C", 305419896, 4660, 86));
my @sorted = map { $_->[1] } sort { $a->[0] <=> $b->[0] or $a->[1] cmp $b->[1] } map { [length, $_] } keys %h;
print "@sorted[0..9]\n";
local $, = "-"; local $\ = "\n"; print reverse 1..12;
''',
    "prog.awk": r'''{ for (i = 1; i <= NF; i++) { n[$i]++; len[length($i)]++ } lines++; chars += length($0) }
/^(ka|to)/ { s = s substr($0, 1, 3) }
END {
    for (w in n) if (n[w] > 3) c++
    printf "%d lines %d chars %d frequent %d\n", lines, chars, c, length(s)
    m = split(s, parts, "a"); print m, toupper(substr(s, 1, 40))
    for (l = 1; l <= 12; l++) printf "%d:%d ", l, len[l]; print ""
    printf "%08.3f %e %x %c\n", lines / 7, chars * 1000, chars, 65 + lines % 26
}
''',
    "match.awk": r'''{ if (match($0, /([a-d]+)[^a-d ]*([e-h]+)/, m)) { k[m[1] "-" m[2]]++; t += RLENGTH }
  gsub(/p+/, "P"); n += split($0, f, /[aeiou]+/) }
END { PROCINFO["sorted_in"] = "@ind_str_asc"; for (x in k) if (k[x] > 2) { c++; last = x }
      print NR, t, n, c, last }
''',
    "script.sed": r'''/^$/ { x; s/\n/ /g; s/^ //; /./p; d; }
H
$ { x; s/\n/ /g; s/^ //; p; }
''',
    "calc.bc": r'''scale = 30
define f(n) { if (n <= 1) return 1; return n * f(n - 1); }
define fib(n) { auto a, b, t, i; a = 0; b = 1; for (i = 0; i < n; i++) { t = a + b; a = b; b = t; }; return a; }
sqrt(2)
4 * a(1)
e(1)
l(10)
s(1) ^ 2 + c(1) ^ 2
scale = 0
f(60)
fib(200)
2 ^ 256 % 1000000007
obase = 16
f(25)
''',
    "calc.dc": "20 k 2 v p 1 3 / p [d 1 - d 1 <F *] sF 25 lF x p 16 o 255 p 10 o 2 64 ^ p 7 3 % p\n",
    "macros.m4": r'''divert(-1)
define(`upcase', `translit(`$*', `a-z', `A-Z')')
define(`repeat', `ifelse(eval($1 > 0), 1, `$2`'repeat(decr($1), `$2')')')
define(`forloop', `pushdef(`$1', `$2')_forloop($@)popdef(`$1')')
define(`_forloop', `$4`'ifelse($1, `$3', `', `define(`$1', incr($1))$0($@)')')
define(`counter', 0)
define(`next', `define(`counter', incr(counter))counter')
divert(0)dnl
upcase(hello, world) and repeat(3, `ab')
forloop(`i', 1, 12, `i squared is eval(i * i)
')dnl
next next next len(`abcdefgh') index(`hello world', `o w') substr(`transparency', 3, 5)
format(`%05d|%-6s|%x', 42, `m4', 255)
patsubst(`the quick brown fox', `\([aeiou]\)', `<\1>')
regexp(`GNU m4 1.4', `\([0-9]+\)\.\([0-9]+\)', `major \1 minor \2')
syscmd(`echo from a shell')dnl
esyscmd(`printf "%s\n" shell-out')dnl
undefined_macro(1, 2)
''',
    "Makefile": r'''CC = gcc
CFLAGS = -O1 -Wall
all: out/summary.txt hello
	@echo all done
out:
	mkdir -p out
out/sorted.txt: words.txt | out
	sort -o $@ words.txt
out/counts.txt: out/sorted.txt
	uniq -c out/sorted.txt | sort -k1,1nr -k2 > $@
out/summary.txt: out/counts.txt nums.txt
	{ head -n 5 out/counts.txt; wc -l < nums.txt; } > $@
	cat $@
hello.o: hello.c
	$(CC) $(CFLAGS) -c -o $@ hello.c
hello: hello.o
	$(CC) -o $@ hello.o
clean:
	rm -rf out hello hello.o
.PHONY: all clean
''',
    "hello.c": r'''#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char name[24]; unsigned value; };

static unsigned mix(unsigned x)
{
    x ^= x >> 16; x *= 0x45d9f3bu; x ^= x >> 16;
    return x;
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000, sum = 0;
    struct node *head = NULL;
    for (unsigned i = 0; i < n; i++) {
        struct node *p = malloc(sizeof *p);
        if (!p)
            return 1;
        p->value = mix(i);
        snprintf(p->name, sizeof p->name, "n%u", p->value % 997);
        p->next = head;
        head = p;
    }
    for (struct node *p = head; p; p = p->next)
        sum += p->value + (unsigned)strlen(p->name);
    while (head) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
    printf("%u nodes, sum %u\n", n, sum);
    return 0;
}
''',
    "warn.c": r'''#include <stdio.h>
int unused_result(int x) { int unused; return x * 2; }
int main(void)
{
    long big = 1L << 40;
    printf("%d %s\n", big, 42);
    if (big = 3) return unused_result(1);
    return 0;
}
''',
    "broken.c": r'''#include <stdio.h>
struct s { int a; };
int main(void)
{
    struct s v = { .b = 1 };
    undeclared_function(v);
    return "not an int";
}
''',
    "bash.sh": r'''set -u
declare -A seen
count=0
while read -r first rest; do
    seen[$first]=$(( ${seen[$first]:-0} + 1 ))
    count=$((count + 1))
done < words.txt
keys=("${!seen[@]}")
IFS=$'\n' sorted=($(printf '%s\n' "${keys[@]}" | LC_ALL=C sort)); unset IFS
echo "$count lines, ${#sorted[@]} first words, first ${sorted[0]}, last ${sorted[-1]}"
s="transparency at scale"
echo "${s^^} ${s:4:7} ${s//a/A} ${#s} ${s##* }"
printf '%05.1f|%-8s|%x\n' 3.14159 bash 4095
arr=(zeta alpha mu beta); echo "${arr[@]:1:2}" "$(( 17 ** 3 % 1000 ))"
case "$s" in *scale) echo matched;; *) echo no;; esac
f() { local x=$1; (( x <= 1 )) && { echo 1; return; }; echo $(( x * $(f $((x - 1))) )); }
f 15
''',
    "pipes.sh": r'''tr ' ' '\n' < words.txt | sort | uniq -c | sort -k1,1nr -k2 | head -n 15
cut -d, -f3 people.csv | sort | uniq -c
grep -c ka words.txt; sed -n '5,9p' prose.txt | wc -w
seq 1 200 | paste -sd+ | bc
echo "exit status of false: $(false; echo $?)"
''',
}


# --- cases -----------------------------------------------------------------------------------

class Step:
    """One command of a case: argv (no shell), optional stdin bytes or a file of the work
    folder for stdin."""

    def __init__(self, *argv, stdin=None, stdin_file=None):
        self.argv = list(argv)
        self.stdin = stdin.encode() if isinstance(stdin, str) else stdin
        self.stdin_file = stdin_file

    def label(self):
        text = " ".join(self.argv)
        if self.stdin_file:
            text += " < " + self.stdin_file
        return text if len(text) <= 100 else text[:97] + "..."


def steps_of(items):
    return [s if isinstance(s, Step) else Step(*s) for s in items]


class Case:
    """A program (or a few) run plainly, then under the preload; with a marker for .marked."""

    def __init__(self, name, doc, steps, ignore=(), marker=None, slow=False, needs=()):
        self.__name__ = name
        self.__doc__ = doc
        self.steps = steps_of(steps)
        self.ignore = set(ignore)      # files of the work folder left out of the comparison
        self.marker = marker
        self.slow = slow
        programs = [s.argv[0] for s in self.steps if "/" not in s.argv[0] or s.argv[0].startswith("/usr")]
        self.needs = list(dict.fromkeys(list(needs) + [Path(p).name if p.startswith("/") else p for p in programs]))


CASES = []


def case(name, doc, *steps, **kwargs):
    c = Case(name, doc, steps, **kwargs)
    CASES.append(c)
    return c


def marked(base, spec, why, steps=None, slow=False):
    """The marked variant of a case: same steps (or others), ARENASHIM_REGIONS=SPEC."""
    c = Case(base.__name__ + ".marked", "%s, marker %s: %s" % (base.__name__, spec, why),
             steps or base.steps, ignore=base.ignore, marker=spec, slow=slow or base.slow)
    CASES.append(c)
    return c


def sh(script):
    return ("sh", "-c", script)


# libbfd's file name carries binutils' version (libbfd-2.40-system.so on Debian 12): a marker
# qualified with it stays lenient in gcc, which runs first in the objdump case and never loads it.
LIBBFD = next((p.name for p in sorted(Path("/usr/lib/x86_64-linux-gnu").glob("libbfd*.so"))), "libbfd.so")

GIT = ("git", "-C", "repo", "-c", "core.pager=cat", "-c", "pack.threads=1")

# coreutils
case("sort_fields", "sort: keys, numeric reverse, field separator",
     ("sort", "-t,", "-k3,3", "-k4,4nr", "-k1,1", "people.csv"), ("sort", "-c", "people.csv"))
case("sort_numeric_unique", "sort -n -u, -g, -h, -V, -M", ("sort", "-n", "-u", "nums.txt"),
     ("sort", "-h", "-r", "sizes.txt"), ("sort", "-V", "-k2", "left.txt"))
case("sort_random_source", "sort -R and shuf with a fixed --random-source",
     ("sort", "-R", "--random-source=blob.bin", "words.txt"),
     ("shuf", "--random-source=blob.bin", "-n", "25", "words.txt"),
     ("shuf", "--random-source=blob2.bin", "-i", "1-100"))
case("sort_external", "sort with a tiny buffer: temporary files and merges in TMPDIR",
     ("sort", "-S", "64K", "--parallel=1", "-k2", "-o", "sorted.txt", "words.txt"),
     ("sort", "-m", "-k1,1", "left.txt", "right.txt"))
case("ls", "ls -lR and friends over the fixed tree",
     ("ls", "-lRn", "--time-style=+%Y-%m-%dT%H:%M:%S", "tree"), ("ls", "-1SrF", "tree/a"),
     ("ls", "-la", "--full-time", "tree/c"), ("ls", "nosuchfile"))
case("wc", "wc: lines, words, bytes, longest line", ("wc", "words.txt", "prose.txt", "people.csv"),
     ("wc", "-L", "-m", "prose.txt"), Step("wc", stdin_file="blob.bin"))
case("cut", "cut: fields, bytes, characters, complement",
     ("cut", "-d,", "-f2,4", "--output-delimiter= | ", "people.csv"), ("cut", "-c3-9,12-", "words.txt"),
     ("cut", "-d", " ", "-f", "2", "--complement", "-s", "small.txt"))
case("tr", "tr: ranges, squeeze, delete, classes",
     Step("tr", "a-z", "A-Z", stdin_file="words.txt"), Step("tr", "-s", " a", stdin_file="prose.txt"),
     Step("tr", "-cd", "[:alnum:]\n", stdin_file="prose.txt"))
case("uniq", "uniq after sort: counts, duplicates, unique, ignore case",
     ("sort", "-o", "sorted.txt", "left_keys.txt", "right_keys.txt"), ("uniq", "-c", "-d", "sorted.txt"),
     ("uniq", "-u", "-i", "sorted.txt"))
case("od", "od: hex with characters, octal, floats",
     ("od", "-A", "x", "-t", "x1z", "-N", "512", "blob.bin"), ("od", "-c", "-N", "300", "prose.txt"),
     ("od", "-t", "fD", "-t", "d4", "-j", "100", "-N", "160", "blob.bin"))
case("sha256sum", "sha256sum, then sha256sum -c of its own output",
     sh("sha256sum words.txt blob.bin prose.txt tree/a/data.bin > sums.txt; cat sums.txt"),
     ("sha256sum", "-c", "sums.txt"), ("sha512sum", "people.csv"), needs=("sha512sum",))
case("checksums", "md5sum, b2sum, cksum, sum, sha1sum",
     ("md5sum", "words.txt", "blob.bin"), ("b2sum", "-l", "256", "blob.bin"), ("cksum", "blob.bin"),
     ("sum", "-r", "words.txt"), ("sha1sum", "--tag", "nums.txt"), needs=("sha1sum",))
case("base64", "base64 and base32 both ways",
     sh("base64 -w 60 blob.bin > b64.txt; base32 blob2.bin > b32.txt"), ("base64", "-d", "b64.txt"),
     ("base32", "-d", "b32.txt"), ("base64", "prose.txt"), Step("base64", "-d", stdin="not base64!\n"))
case("date", "date -d and -f with fixed dates, TZ=UTC and other zones",
     ("date", "-u", "-d", "2021-03-04 05:06:07", "+%s %A %j %U %V %G %c"),
     ("date", "-d", "@1600000000", "-R"), ("date", "-f", "dates.txt", "+%F %T %Z %z"),
     ("date", "--date=TZ=\"Asia/Kolkata\" 2022-06-30 12:00", "--iso-8601=seconds"),
     ("date", "-d", "not a date"))
case("seq", "seq: widths, formats, separators", ("seq", "-w", "1", "7", "1000"),
     ("seq", "-f", "%.3e", "1", "0.37", "20"), ("seq", "-s,", "100"), ("seq", "100000000000000000000", "100000000000000000020"))
case("factor", "factor: small and 64-bit numbers",
     ("factor",) + tuple(str(n) for n in list(range(1, 120)) + [2**61 - 1, 2**62 + 15, 18446744073709551557,
                                                                   600851475143, 999999000001, 2**64 - 1]))
case("printf", "coreutils printf: widths, bases, floats, %q, %b",
     ("/usr/bin/printf", "%5d|%-8s|%x|%o|%e|%q|%b\n", "42", "left", "255", "8", "31415.9265", "a b'c", "tab\\there",
      "-7", "x", "4096", "64", "0.000123", "$HOME", "\\0101"))
case("join", "join: inner, outer and unpaired lines",
     ("join", "left.txt", "right.txt"), ("join", "-a1", "-a2", "-e", "NONE", "-o", "0,1.2,2.2", "left.txt", "right.txt"),
     ("join", "-v2", "left.txt", "right.txt"))
case("comm", "comm: the three columns and each alone", ("comm", "left_keys.txt", "right_keys.txt"),
     ("comm", "-12", "left_keys.txt", "right_keys.txt"),
     ("comm", "-3", "--output-delimiter=|", "left_keys.txt", "right_keys.txt"))
case("paste", "paste: columns and serial", ("paste", "-d|", "left_keys.txt", "right_keys.txt", "nums.txt"),
     ("paste", "-s", "-d,:", "left_keys.txt"))
case("fmt", "fmt and fold", ("fmt", "-w", "50", "prose.txt"), ("fmt", "-u", "-s", "-w", "72", "prose.txt"),
     ("fold", "-w", "30", "-s", "prose.txt"), ("fold", "-b", "-w", "17", "tabs.txt"))
case("nl", "nl: numbering styles", ("nl", "-ba", "-nrz", "-w4", "prose.txt"),
     ("nl", "-s", ": ", "-v", "100", "-i", "3", "words.txt"))
case("split", "split into a folder, csplit on blank lines",
     ("mkdir", "parts"),
     ("split", "--verbose", "-l", "400", "-d", "-a", "3", "--additional-suffix=.part", "words.txt", "parts/w"),
     ("split", "-n", "l/5", "prose.txt", "parts/p."), ("csplit", "-z", "-f", "parts/sec", "prose.txt", "/^$/", "{*}"),
     ("cat", "parts/w000.part", "parts/p.ab"))
case("expand", "expand, unexpand, column", ("expand", "-t", "4,12,20", "tabs.txt"),
     sh("expand tabs.txt | unexpand -a"), ("column", "-t", "-s,", "people_head.csv"))
case("head_tail", "head, tail, tac, rev", ("head", "-n", "17", "words.txt"), ("tail", "-n", "+2990", "words.txt"),
     ("tail", "-c", "100", "prose.txt"), ("head", "-c", "-16000", "blob.bin"), ("tac", "nums.txt"), ("rev", "small.txt"))
case("pr", "pr: columns and headers (the file's fixed mtime in the header)",
     ("pr", "-2", "-t", "-w", "80", "small.txt"), ("pr", "-h", "Prose", "-l", "40", "-n", "prose.txt"),
     ("pr", "-m", "-t", "left_keys.txt", "right_keys.txt"))
case("numfmt", "numfmt: IEC and SI, both ways",
     Step("numfmt", "--to=iec-i", "--suffix=B", "--field=1", "--padding=10", stdin_file="sizes.txt"),
     Step("numfmt", "--from=si", stdin="1K\n2.5M\n3G\n17\n"), ("numfmt", "--to=si", "--round=down", "123456789"),
     ("numfmt", "garbage"))
case("tsort", "tsort of a random DAG, and a cycle", ("tsort", "deps.txt"), Step("tsort", stdin="a b\nb c\nc a\n"))
case("expr_test", "expr and test", ("expr", "12345", "*", "6789"), ("expr", "length", "transparency"),
     ("expr", "match", "abc123def", "[a-z]*\\([0-9]*\\)"), ("expr", "5", "/", "0"),
     ("test", "-f", "words.txt", "-a", "-L", "tree/link"), ("/usr/bin/test", "tree/a/b/empty.txt", "-nt", "words.txt"))
case("cat", "cat -A, -n, -s", ("cat", "-A", "tabs.txt"), ("cat", "-n", "-s", "prose.txt"), ("cat", "tree/link", "nosuch"))
case("stat_du", "stat of sizes and modes (no times of access), du --apparent-size",
     ("stat", "-c", "%n %s %F %a %Y", "words.txt", "tree", "tree/link", "tree/c/run.sh"),
     ("stat", "-L", "-c", "%n %s", "tree/link"), ("du", "-ab", "tree"), ("du", "-s", "--apparent-size", "-B1", "tree2"))
case("dd_truncate", "dd with status=none, truncate, cmp",
     ("dd", "if=blob.bin", "of=piece.bin", "bs=1k", "skip=2", "count=5", "status=none"),
     ("dd", "if=prose.txt", "conv=ucase", "bs=100", "count=3", "status=none"),
     ("cp", "blob.bin", "cut.bin"), ("truncate", "-s", "5000", "cut.bin"), ("cmp", "-n", "5000", "cut.bin", "blob.bin"))
case("readlink", "readlink, realpath (relative answers)", ("readlink", "tree/link"),
     ("realpath", "--relative-to=tree/a", "tree/link", "tree/c/run.sh"), ("readlink", "-e", "nosuch"))
case("ptx", "ptx: a permuted index", ("ptx", "-w", "60", "small.txt"))

# grep, sed, awk
case("grep", "grep: extended, counts, only-matching, word, fixed strings from a file, errors",
     ("grep", "-E", "-n", "(ka|to)[a-z]{2,}sen", "words.txt"), ("grep", "-c", "-v", "-i", "RI", "words.txt"),
     ("grep", "-o", "-E", "[a-c]{2,}[d-h]", "small.txt"), ("grep", "-c", "-F", "-w", "-f", "patterns.txt", "words.txt"),
     ("grep", "-E", "-c", "(ab)\\1", "words.txt"), ("grep", "nothing-matches-this", "words.txt"),
     ("grep", "x", "nosuchfile"))
case("grep_recursive", "grep -r over the tree", ("grep", "-r", "-n", "-H", "ka", "tree"),
     ("grep", "-rl", "--include=*.txt", "to", "tree"), ("grep", "-rc", "zo", "tree2"))
grep_perl = case("grep_perl", "grep -P (PCRE2, JIT)", ("grep", "-P", "-o", "(?<=ka)[a-z]+?(?=o)", "words.txt"),
                 ("grep", "-P", "-c", "(ab|cd)+[e-h]{2}", "words.txt"))
case("sed", "sed: extended regex with back-references, a hold-space script, -i with a backup",
     ("sed", "-E", "s/([a-d]+)x?([e-h]+)/<\\2\\1>/g;/^ka/d", "words.txt"), ("sed", "-n", "-f", "script.sed", "prose.txt"),
     ("cp", "small.txt", "edit.txt"), ("sed", "-i.bak", "-e", "s/ka/KA/g", "-e", "3~5d", "-e", "$a\\the end", "edit.txt"),
     ("sed", "-n", "l 40", "tabs.txt"), ("sed", "s/unterminated", "words.txt"))
gawk = case("gawk", "gawk: associative arrays, printf, split, substr",
            ("gawk", "-f", "prog.awk", "words.txt"),
            ("gawk", "-F,", "{ s[$3] += $4; n[$3]++ } END { PROCINFO[\"sorted_in\"] = \"@ind_str_asc\"; "
             "for (k in s) printf \"%-9s %4d %12.2f\\n\", k, n[k], s[k] / n[k] }", "people.csv"))
gawk_match = case("gawk_match", "gawk match() with capture groups (GNU regex), gsub, split on a regex",
                  ("gawk", "-f", "match.awk", "small.txt"))
case("mawk", "mawk with the same program", ("mawk", "-f", "prog.awk", "words.txt"),
     ("mawk", "-F,", "NR > 1 && $4 > 150000 { c++; s = s $1 \" \" } END { print c; print substr(s, 1, 60) }", "people.csv"))

# archives and compressors
case("tar", "tar: create (sorted, fixed mtimes), list, extract, gzip through a child process",
     ("tar", "--sort=name", "-cf", "a.tar", "tree"), ("tar", "-tvf", "a.tar"), ("mkdir", "out"),
     ("tar", "-xf", "a.tar", "-C", "out"), ("tar", "--sort=name", "-czf", "a.tgz", "tree2"), ("tar", "-tzvf", "a.tgz"),
     ("diff", "-r", "tree", "out/tree"))
case("gzip", "gzip, gunzip, zcat", ("gzip", "-9", "-k", "words.txt"), ("gzip", "-l", "words.txt.gz"),
     ("gunzip", "-c", "words.txt.gz"), Step("gzip", "-c", "-n", stdin_file="blob.bin"), ("zcat", "nosuch.gz"))
case("xz", "xz -9, list, test, decompress", ("xz", "-9", "-k", "-T1", "words.txt"), ("xz", "-l", "words.txt.xz"),
     ("xz", "-t", "words.txt.xz"), ("xz", "-l", "-v", "words.txt.xz"), ("xz", "-dc", "words.txt.xz"),
     Step("xz", "-c", "-e", "-T1", stdin_file="prose.txt"))
case("threads", "multi-threaded xz, zstd and sort (the same bytes whatever the scheduling)",
     ("xz", "-T2", "--block-size=16KiB", "-k", "words.txt"), ("xz", "-dc", "-T2", "words.txt.xz"),
     ("zstd", "-q", "-T2", "-3", "-c", "words.txt"),
     ("sort", "--parallel=2", "-S", "2M", "-k2", "words.txt"))
case("bzip2", "bzip2 and bunzip2", ("bzip2", "-k", "-9", "words.txt"), ("bzip2", "-tv", "words.txt.bz2"),
     ("bunzip2", "-c", "words.txt.bz2"), Step("bzip2", "-c", stdin_file="blob.bin"))
case("zstd", "zstd single-threaded", ("zstd", "-q", "-19", "--single-thread", "-k", "words.txt"),
     ("zstd", "-q", "-dc", "words.txt.zst"), ("zstd", "-q", "-t", "words.txt.zst"))
case("cpio", "cpio: a reproducible newc archive, listing, extraction",
     Step("cpio", "-o", "-H", "newc", "--reproducible", stdin_file="cpio_list.txt"),
     sh("cpio -o -H newc --reproducible < cpio_list.txt > a.cpio"), Step("cpio", "-t", "-v", stdin_file="a.cpio"),
     ("mkdir", "out"), Step("cpio", "-i", "-d", "-D", "out", stdin_file="a.cpio"))
case("zip", "zip -X and unzip", ("zip", "-X", "-r", "-q", "z.zip", "tree"), ("unzip", "-l", "z.zip"),
     ("unzip", "-p", "z.zip", "tree/a/beta.txt"), ("unzip", "-t", "z.zip"))

# diff, patch, find
case("diff", "diff: unified, context, side by side, recursive; cmp -l",
     ("diff", "-u", "old.txt", "new.txt"), ("diff", "-c", "-i", "old.txt", "new.txt"),
     ("diff", "-y", "-W", "100", "--suppress-common-lines", "old.txt", "new.txt"), ("diff", "-ruN", "tree", "tree2"),
     ("diff", "-q", "tree/a", "tree2/a"), ("cmp", "-l", "blob.bin", "blob2.bin"), ("cmp", "blob.bin", "blob2.bin"),
     ("diff3", "-m", "mine.txt", "old.txt", "new.txt"))
case("patch", "patch applies diff's output",
     sh("diff -u old.txt new.txt > p.diff; echo diff says $?"), ("patch", "-o", "patched.txt", "old.txt", "p.diff"),
     ("cmp", "patched.txt", "new.txt"), ("patch", "-R", "-o", "back.txt", "new.txt", "p.diff"), ("cmp", "back.txt", "old.txt"))
case("find", "find over the fixed tree: names, types, sizes, printf, exec, xargs",
     ("find", "tree", "-printf", "%y %m %s %P %l\n"), ("find", "tree", "-name", "*.txt", "-size", "+1k"),
     ("find", "tree", "-type", "f", "-newermt", "2020-01-01", "-empty"), ("find", "tree", "-type", "l", "-xtype", "f"),
     ("find", "tree", "-name", "*.csv", "-exec", "wc", "-l", "{}", "+"),
     sh("find tree2 -type f -print0 | xargs -0 -n 2 sha1sum"))

# interpreters, databases, build tools
sqlite = case("sqlite3", "sqlite3 runs an SQL script (joins, window functions, CTE, JSON, an error) in memory",
              Step("sqlite3", "-batch", ":memory:", stdin_file="db.sql"))
case("sqlite3_file", "sqlite3 on a database file, then .dump and .schema",
     Step("sqlite3", "-batch", "test.db", stdin_file="db.sql"), ("sqlite3", "test.db", ".dump dept"),
     ("sqlite3", "-header", "-csv", "test.db", ".schema", "SELECT * FROM emp ORDER BY id LIMIT 5;"))
python = case("python3", "/usr/bin/python3 (not a shim) runs a script: collections, json, re, hashlib, zlib, decimal",
              ("/usr/bin/python3", "t.py"),
              ("/usr/bin/python3", "-c", "import sys; print(sys.argv[1:]); raise SystemExit(3)", "a", "b"))
python_compile = case("python3_compile", "/usr/bin/python3 compiles and runs 60 generated functions",
                      ("/usr/bin/python3", "compile.py"))
case("perl", "perl: a script with hashes, sort, regexes, pack, and a one-liner",
     ("perl", "t.pl"), ("perl", "-le", "print join ',', map { sprintf '%03b', $_ } grep { $_ % 3 } 1..20"),
     ("perl", "-ne", "print if /^(ka|to).*sen$/ .. /^zo/", "words.txt"), ("perl", "-e", "die qq{on purpose\\n}"))
case("make", "make with a tiny Makefile: shell recipes, gcc, then up to date, then clean",
     ("make",), ("make",), ("make", "-n", "clean"), ("make", "clean"), ("make", "nosuchtarget"))
case("gcc", "gcc compiles (the same output files), warns (the same diagnostics), fails on errors; the binary runs the same",
     ("gcc", "-O2", "-g", "-Wall", "-Wextra", "-o", "hello", "hello.c"), ("./hello", "5000"),
     ("gcc", "-Wall", "-c", "-o", "warn.o", "warn.c"), ("gcc", "-c", "broken.c"),
     ("gcc", "-E", "-P", "-dD", "hello.c"), needs=("gcc",))
git = case("git", "git in a scratch repository: init, commits with fixed identities and dates, log, diff, tag, "
           "branch, merge, blame, grep, archive",
           ("git", "init", "-q", "-b", "main", "repo"), ("cp", "words.txt", "prose.txt", "repo/"), GIT + ("add", "."),
           GIT + ("commit", "-q", "-m", "first"), ("sed", "-i", "s/ka/KA/;50d", "repo/words.txt"),
           ("cp", "old.txt", "repo/"), GIT + ("add", "-A"), GIT + ("commit", "-q", "-m", "second\n\nwith a body"),
           GIT + ("checkout", "-q", "-b", "topic", "HEAD~1"), ("cp", "new.txt", "repo/"), GIT + ("add", "new.txt"),
           GIT + ("commit", "-q", "-m", "topic work"), GIT + ("checkout", "-q", "main"),
           GIT + ("merge", "--no-edit", "topic"), GIT + ("tag", "-a", "v1", "-m", "version 1"),
           GIT + ("log", "--graph", "--stat", "--format=%H %an %ad %s", "--date=iso"), GIT + ("log", "-p", "-3"),
           GIT + ("diff", "HEAD~2", "HEAD", "--stat"), GIT + ("show", "v1"), GIT + ("cat-file", "-p", "HEAD^{tree}"),
           GIT + ("blame", "-s", "-L", "1,20", "words.txt"), GIT + ("grep", "-n", "-c", "ka"),
           GIT + ("describe", "--tags"), GIT + ("branch", "-v"), GIT + ("status", "--short", "--branch"),
           sh("git -C repo archive --format=tar HEAD | tar -tvf -"), GIT + ("show", "nosuchref"),
           ignore=("repo/.git/index",))
xmllint = case("xmllint", "xmllint: DTD validation, formatting, XPath, C14N, errors",
               ("xmllint", "--noout", "--valid", "doc.xml"), ("xmllint", "--format", "small.xml"),
               ("xmllint", "--xpath", "count(//book[@lang='fr'])", "doc.xml"),
               ("xmllint", "--xpath", "//book[price > 80]/title/text()", "doc.xml"),
               ("xmllint", "--c14n", "small.xml"), ("xmllint", "--noent", "--dropdtd", "small.xml"),
               ("xmllint", "--noout", "bad.xml"))
case("bc", "bc -l: arbitrary precision, functions, bases", ("bc", "-l", "calc.bc"),
     Step("bc", stdin="scale=50; 1/7\n2^1000\nquit\n"), Step("bc", stdin="1/0\n"))
case("dc", "dc: precision, macros, bases", ("dc", "calc.dc"), ("dc", "-e", "2 100 ^ p 3 k 22 7 / p"))
case("m4", "m4: recursion, loops, builtins, a shell out, an undefined macro", ("m4", "macros.m4"),
     Step("m4", "-D", "NAME=value", "-P", stdin="NAME m4_len(`abcdef') m4_eval(2 ** 20) len(x)\n"),
     needs=("sh",))
jq = case("jq", "jq: filters, grouping, sorting keys, raw output, errors",
          ("jq", "-S", "-c", "map(select(.score > 50)) | group_by(.tags | length) | "
           "map({n: length, top: (max_by(.score).name)})", "data.json"),
          ("jq", "-r", ".[] | select(.active and .nested.depth > 2) | "
           "\"\\(.id)\\t\\(.name)\\t\\(.tags | join(\",\"))\"", "data.json"),
          ("jq", "-S", ".[0:3]", "data.json"),
          ("jq", "--arg", "t", "gold", "[.[] | select(.tags | index($t))] | length", "data.json"),
          ("jq", "-c", ".[] | select(.score > 20)", "data.json"), ("jq", ".[", "data.json"))
binutils_build = ("gcc", "-O1", "-g", "-o", "hello", "hello.c")
case("readelf", "readelf on a binary gcc built in the step before", binutils_build,
     ("readelf", "-h", "-S", "-s", "-W", "hello"), ("readelf", "-d", "-r", "--dyn-syms", "-W", "hello"),
     ("readelf", "--debug-dump=info", "hello"))
objdump = case("objdump", "objdump: disassembly, dynamic symbols and relocations", binutils_build,
               ("objdump", "-d", "-T", "-R", "hello"), ("objdump", "-h", "-x", "hello"),
               ("objdump", "-S", "-l", "--start-address=0x1000", "--stop-address=0x1100", "hello"))
case("nm_strings_size", "nm, strings, size", binutils_build, ("nm", "-S", "-n", "hello"), ("nm", "-D", "hello"),
     ("strings", "-a", "-n", "6", "hello"), ("strings", "-t", "x", "blob.bin"), ("size", "-A", "hello"))
file_case = case("file", "file (libmagic) on the inputs",
                 ("file", "words.txt", "blob.bin", "doc.xml", "data.json", "hello.c", "t.py", "t.pl", "Makefile",
                  "tree", "tree/link", "tree/a/b/empty.txt", "tree/c/run.sh", "latin1.txt", "db.sql", "nosuch"),
                 ("file", "-b", "--mime", "doc.xml", "blob.bin", "latin1.txt"), ("file", "-L", "-z", "tree/link"))
case("iconv", "iconv between Latin-1, UTF-8 and ASCII", ("iconv", "-f", "LATIN1", "-t", "UTF-8", "latin1.txt"),
     ("iconv", "-f", "LATIN1", "-t", "UTF-16LE", "latin1.txt"), ("iconv", "-f", "UTF-8", "-t", "ASCII", "latin1.txt"))
case("xxd_hexdump", "xxd both ways, hexdump -C", ("xxd", "-l", "256", "blob.bin"),
     sh("xxd -p blob.bin | xxd -r -p | cmp - blob.bin && echo round trip"), ("hexdump", "-C", "-n", "300", "prose.txt"))
case("openssl", "openssl: digests, a cipher with a fixed key and IV, base64",
     ("openssl", "dgst", "-sha256", "-hex", "words.txt", "blob.bin"),
     ("openssl", "enc", "-aes-256-cbc", "-K", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
      "-iv", "0102030405060708090a0b0c0d0e0f10", "-nosalt", "-in", "prose.txt", "-out", "prose.enc"),
     ("openssl", "base64", "-in", "prose.enc"))
case("dash", "dash runs pipelines of the above", ("sh", "pipes.sh"))
case("bash", "bash: associative arrays, expansions, arithmetic, recursion through command substitution",
     ("bash", "bash.sh"))

# markers (recover mode): functions found with `scripts/arenashim discover -- CMD` and checked
marked(sqlite, "libsqlite3.so:sqlite3_step",
       "one region per statement step (discover: clean; schema objects first built inside a step outlive it)")
marked(xmllint, "libxml2.so.2:xmlValidateOneElement",
       "per-element validation after the parse (a few compiled content models are kept in the DTD)",
       steps=steps_of([("xmllint", "--noout", "--postvalid", "doc.xml")]))
marked(python_compile, "Py_CompileStringObject",
       "each compile(): tokenizer, parser and AST arena die inside, the code object's larger parts escape")
marked(gawk_match, "gawk:re_search", "GNU regex searches of match() with capture groups (discover: clean; "
       "the registers of re_search are kept by gawk)")
marked(git, "libz.so.1:inflate", "zlib inflation of each object git reads (its window escapes into the stream)")
marked(jq, "libjq.so.1:jv_dumpf", "printing each output value, with -S sorting the keys (discover: clean)",
       steps=steps_of([("jq", "-S", "-c", ".[] | select(.score > 20)", "data.json")]))
marked(grep_perl, "libpcre2-8.so.0:pcre2_match_8", "each match (JIT code runs inside the region; no allocation)")
marked(objdump, "%s:_bfd_elf_get_symbol_version_string" % LIBBFD, "libbfd's symbol version strings (discover: clean)",
       steps=steps_of([binutils_build, ("objdump", "-d", "-T", "-R", "hello")]))
marked(file_case, "libmagic.so.1:magic_file", "libmagic's per-file detection")

# --all: slower
case("sort_big", "sort of 60000 lines with a small buffer, several keys",
     sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do cat words.txt; done > big.txt"),
            ("sort", "-S", "256K", "--parallel=1", "-k3,3", "-k1,1r", "-s", "big.txt"), ("sort", "-u", "-k2", "big.txt"),
     slow=True)
case("git_gc", "git gc, fsck and count-objects on the scratch repository",
     *git.steps[:8], GIT + ("gc", "-q", "--aggressive"), GIT + ("fsck", "--no-progress"),
     GIT + ("count-objects", "-v"), slow=True, ignore=("repo/.git/index",))
marked(Case("gcc_cc1", "", [("gcc", "-O2", "-g", "-Wall", "-o", "hello", "hello.c"), ("./hello", "300")]),
       "cc1:_Z30estimate_numbers_of_iterationsP8function",
       "a function of cc1, the compiler's child process (the driver leaves it unresolved); slow: the marker set-up "
       "decodes all of cc1", slow=True)
marked(sqlite, "libsqlite3.so:sqlite3_prepare_v2", "the statements it compiles escape by design: many dangling reads",
       slow=True).__name__ = "sqlite3.marked_prepare"
marked(python_compile, "_PyAST_Compile", "the compiler proper, without the parser", slow=True).__name__ = \
    "python3_compile.marked_ast"
marked(xmllint, "libxml2.so.2:xmlRegexpIsDeterminist", "content models checked once each (discover: clean)",
       steps=steps_of([("xmllint", "--noout", "--valid", "doc.xml")]), slow=True).__name__ = "xmllint.marked_regexp"


# --- running ---------------------------------------------------------------------------------

class Suite:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = Path(tmp)
        self.library = build / "preload" / "libarenashim.so"
        self.inputs = self.tmp / "inputs"
        self.home = self.tmp / "home"
        self.scratch = self.tmp / "scratch"
        for d in (self.home, self.scratch):
            d.mkdir()
        generate_inputs(self.inputs)

    def env(self):
        return {
            "PATH": PATH, "HOME": str(self.home), "TMPDIR": str(self.scratch), "LC_ALL": "C", "TZ": "UTC",
            "TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", "EDITOR": "true",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Ada Author", "GIT_AUTHOR_EMAIL": "ada@example.org",
            "GIT_COMMITTER_NAME": "Cy Committer", "GIT_COMMITTER_EMAIL": "cy@example.org",
            "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE,
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0",
        }

    def run(self, c, extra_env):
        """Runs C's steps in a fresh copy of the inputs at TMP/work/NAME; returns (results, files)."""
        work = self.tmp / "work" / c.__name__
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(self.inputs, work, symlinks=True)
        env = self.env()
        env.update(extra_env)
        results = []
        for s in c.steps:
            stdin = s.stdin
            if s.stdin_file:
                stdin = (work / s.stdin_file).read_bytes()
            try:
                rc, out, err, _, _ = harness.spawn(s.argv, env, STEP_TIMEOUT, stdin=stdin, cwd=str(work))
            except harness.ProcessTimeout as e:
                rc, out, err = "timeout", e.stdout, e.stderr
            results.append((rc, out, err))
        files = snapshot(work, c.ignore)
        shutil.rmtree(work)
        return results, files


def snapshot(folder, ignore):
    """Every entry under FOLDER: relative path -> (kind, mode, content or link target)."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if rel in ignore:
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                entries[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return entries


def short_diff(a, b, what, limit=14):
    """A few lines saying how B (preloaded) differs from A (plain)."""
    try:
        ta, tb = a.decode(), b.decode()
        binary = "\0" in ta or "\0" in tb
    except UnicodeDecodeError:
        binary = True
    if binary:
        at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        return "%s differs (binary): %d bytes plain, %d preloaded, first difference at byte %d: %r vs %r" % (
            what, len(a), len(b), at, a[at:at + 16], b[at:at + 16])
    lines = list(difflib.unified_diff(ta.splitlines(), tb.splitlines(), "plain " + what, "preloaded " + what,
                                      n=1, lineterm=""))
    if len(lines) > limit:
        lines = lines[:limit] + ["... (%d more diff lines)" % (len(lines) - limit)]
    return "\n".join(line if len(line) <= 160 else line[:157] + "..." for line in lines)


def compare(c, plain, other, label):
    """Fails on the first step (or file) where OTHER differs from PLAIN."""
    (presults, pfiles), (oresults, ofiles) = plain, other
    for i, (s, p, o) in enumerate(zip(c.steps, presults, oresults), 1):
        problems = []
        if p[0] != o[0]:
            problems.append("exit status %s plain, %s %s" % (describe(p[0]), describe(o[0]), label))
        if p[1] != o[1]:
            problems.append(short_diff(p[1], o[1], "stdout"))
        if p[2] != o[2]:
            problems.append(short_diff(p[2], o[2], "stderr"))
        if problems:
            raise Failure("%s: step %d `%s` differs:\n%s" % (label, i, s.label(), "\n".join(problems)))
        if p[0] == "timeout":
            raise Failure("step %d `%s` timed out (%ds) both plain and %s" % (i, s.label(), STEP_TIMEOUT, label))
    if pfiles != ofiles:
        only_p = sorted(set(pfiles) - set(ofiles))
        only_o = sorted(set(ofiles) - set(pfiles))
        changed = sorted(k for k in set(pfiles) & set(ofiles) if pfiles[k] != ofiles[k])
        text = ["%s: the files left in the work folder differ" % label]
        if only_p:
            text.append("only in the plain run: %s" % ", ".join(only_p[:10]))
        if only_o:
            text.append("only in the %s run: %s" % (label, ", ".join(only_o[:10])))
        for k in changed[:3]:
            (pk, pm, pc), (ok, om, oc) = pfiles[k], ofiles[k]
            if (pk, pm) != (ok, om):
                text.append("%s: %s %o plain, %s %o %s" % (k, pk, pm, ok, om, label))
            else:
                text.append(short_diff(pc, oc, k))
        raise Failure("\n".join(text))


def describe(rc):
    return rc if isinstance(rc, str) else harness.describe_status(rc)


def missing_programs(c):
    missing = []
    for program in c.needs:
        if program.startswith("./"):
            continue
        found = shutil.which(program, path=PATH)
        if not found:
            package = PACKAGES.get(program, "?")
            missing.append("%s (Debian package %s)" % (program, package))
    return missing


def marker_figures(stats_dir, spec):
    """(regions, objects, dangling accesses, reports in the logs, stats files) over the processes."""
    regions = objects = dangling = files = 0
    for path in sorted(stats_dir.glob("s.*.json")):
        files += 1
        with open(path) as f:
            stats = json.load(f)
        dangling += stats.get("dangling_accesses", 0)
        for m in stats.get("markers", []):
            if m.get("spec") == spec:
                regions += m.get("regions", 0)
                objects += m.get("objects", 0)
    reports = 0
    for path in sorted(stats_dir.glob("log.*")):
        reports += sum(1 for line in path.read_text(errors="replace").splitlines()
                       if re.match(r"==\d+==ERROR: arenashim: use-after-region-free", line))
    return regions, objects, dangling, reports, files


def other_log_lines(stats_dir, limit=6):
    """Lines of the logs that are neither dangling reports nor their details."""
    lines = []
    for path in sorted(stats_dir.glob("log.*")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("arenashim:"):
                lines.append("%s: %s" % (path.name, line))
    return lines[:limit]


def run_case(suite, c):
    missing = missing_programs(c)
    packages = sorted({PACKAGES.get(Path(p).name, "?") for p in c.needs if not shutil.which(p, path=PATH)})
    expect(not missing, "not installed: %s; scripts/test installs the packages listed in scripts/lib/setup.sh "
           "(or: apt-get install -y %s)" % (", ".join(missing), " ".join(packages)))
    expect(suite.library.exists(), harness.not_built(suite.library, suite.build))
    plain = suite.run(c, {})
    preloaded = suite.run(c, {"LD_PRELOAD": str(suite.library)})
    compare(c, plain, preloaded, "preloaded")
    rcs = sorted({describe(r[0]) for r in plain[0]})
    out_bytes = sum(len(r[1]) for r in plain[0])
    summary = "%d step%s, %d bytes of output, exit %s, %d files compared" % (
        len(c.steps), "" if len(c.steps) == 1 else "s", out_bytes, "/".join(rcs), len(plain[1]))
    if not c.marker:
        return summary
    stats_dir = suite.tmp / "stats" / c.__name__
    stats_dir.mkdir(parents=True)
    markedrun = suite.run(c, {
        "LD_PRELOAD": str(suite.library), "ARENASHIM_REGIONS": c.marker,
        "ARENASHIM_OPTIONS": "on_dangling=recover,stats_json=%s/s.%%p.json,log_path=%s/log.%%p" % (stats_dir, stats_dir)})
    try:
        compare(c, plain, markedrun, "marked")
    except Failure as e:
        extra = other_log_lines(stats_dir)
        raise Failure(str(e) + ("\narenashim's log: " + "\n".join(extra) if extra else ""))
    regions, objects, dangling, reports, files = marker_figures(stats_dir, c.marker)
    expect(files > 0, "marker %s: no stats_json file was written (%s)" % (c.marker, stats_dir))
    expect(regions > 0, "marker %s opened no region (%d stats files; log: %s)" % (
        c.marker, files, "; ".join(other_log_lines(stats_dir)) or "empty"))
    expect(reports == dangling, "marker %s: stats_json counts %d dangling accesses but the logs hold %d reports" % (
        c.marker, dangling, reports))
    return "%s; marker %s: %d regions, %d objects, %d dangling accesses (recover mode, %d process%s)" % (
        summary, c.marker, regions, objects, dangling, files, "" if files == 1 else "es")


def main():
    everything = "--all" in sys.argv[1:]
    if everything:
        sys.argv.remove("--all")
    chosen = [c for c in CASES if everything or not c.slow]
    cases, build = harness.suite_arguments(__doc__.split("\n")[0] + " (--all: the slower cases too)",
                                           chosen, ROOT, name_width=28)
    if cases is None:
        return 0
    start = time.monotonic()
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="arenashim-transparency.")
    try:
        suite = Suite(build, tmp)
        for c in cases:
            try:
                summary = run_case(suite, c)
                print("PASS %s: %s" % (c.__name__, summary))
                passed += 1
            except Failure as e:
                print("FAIL %s: %s" % (c.__name__, str(e).replace("\n", "\n    ")))
                failed += 1
            except Exception:  # noqa: BLE001 - a broken case is a failed case
                print("FAIL %s: %s" % (c.__name__, traceback.format_exc().replace("\n", "\n    ")))
                failed += 1
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("(%d cases, %d programs; %.1f s)" % (
        len(cases), len({p for c in cases for p in c.needs}), time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
