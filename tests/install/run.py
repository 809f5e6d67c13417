#!/usr/bin/python3
"""Install tests of arenashim (issue 15): what `meson install` and the Debian package give a
user, run from where they were installed, never from the checkout.

- `meson install` (prefix /usr, the tests off, as the package configures it) into a scratch
  DESTDIR: the launcher, the library, the header, the pkg-config file, the man pages and the
  launcher's Python parts are where a user looks for them, and nothing installed names the
  checkout (the installed launcher finds its parts relative to itself);
- the installed launcher: --help and --version, usage errors with exit status 2, a program
  run with a marker and the API, `arenashim report`, `arenashim discover`;
- a program compiled with `pkg-config --cflags arenashim` and nothing linked runs without
  arenashim (the API is weak) and with it, with the same output;
- arenashim(1) renders with man and names every option of core/options.c and the environment
  variables; arenashim(3) every function of include/arenashim.h;
- scripts/package builds the .deb with debhelper; apt accepts it (`apt-get install -s`); dpkg
  installs it into a scratch root (its own dpkg database), and the launcher installed there
  runs a program with the library installed there.

The meson build of the installed configuration is kept in BUILD/tests/install/meson (rebuilt
incrementally); each case gets its own scratch folder.  Prints PASS/FAIL per case and ends
with "N passed, N failed"; exit status 1 on failure.

    /usr/bin/python3 tests/install/run.py [--build DIR] [-k FILTER] [--list]
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
Failure = harness.Failure
expect = harness.expect
CASES = []
MULTIARCH = "x86_64-linux-gnu"
LIBDIR = "usr/lib/" + MULTIARCH
# What a user finds after installing, relative to the root installed into.
INSTALLED = {
    "launcher": "usr/bin/arenashim",
    "library": LIBDIR + "/libarenashim.so",
    "header": "usr/include/arenashim.h",
    "pkgconfig": LIBDIR + "/pkgconfig/arenashim.pc",
    "man1": "usr/share/man/man1/arenashim.1",
    "man3": "usr/share/man/man3/arenashim.3",
    "report": "usr/share/arenashim/report.py",
    "report_html": "usr/share/arenashim/report_html.py",
    "discover": "usr/share/arenashim/discover.py",
    "paths": "usr/share/arenashim/paths.sh",
}


def case(function):
    CASES.append(function)
    return function


def project_version():
    match = re.search(r"^\s*version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.M)
    expect(match is not None, "no version in meson.build")
    return match.group(1)


def run_command(argv, timeout=300, env=None, cwd=None, stdin=None):
    rc, out, err, _, _ = harness.spawn(argv, env or harness.clean_env(), timeout, stdin=stdin, cwd=cwd)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def expect_ok(argv, timeout=300, env=None, cwd=None):
    rc, out, err = run_command(argv, timeout, env, cwd)
    expect(rc == 0, "%s exited %s:\n%s%s" % (" ".join(map(str, argv)), harness.describe_status(rc),
                                             out[-3000:], err[-3000:]))
    return out, err


class Installation:
    """One `meson install` into a scratch root, made once per run of the suite."""
    made = None

    @classmethod
    def get(cls, build):
        if cls.made is None:
            cls.made = cls(build)
        return cls.made

    def __init__(self, build):
        self.meson_build = build / "tests" / "install" / "meson"
        self.root = build / "tests" / "install" / "root"
        if not (self.meson_build / "build.ninja").exists():
            shutil.rmtree(self.meson_build, ignore_errors=True)
            expect_ok(["meson", "setup", "--prefix=/usr", "--libdir=lib/" + MULTIARCH, "-Dtests=false",
                       str(self.meson_build), str(ROOT)])
        expect_ok(["ninja", "-C", str(self.meson_build)], timeout=900)
        shutil.rmtree(self.root, ignore_errors=True)
        env = harness.clean_env()
        env["DESTDIR"] = str(self.root)
        expect_ok(["meson", "install", "-C", str(self.meson_build), "--no-rebuild", "--quiet"], env=env)

    def path(self, what):
        return self.root / INSTALLED[what]


class Context:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = Path(tmp)

    def installation(self):
        return Installation.get(self.build)

    def compile_api_program(self, root):
        """api_program.c built as a user would against the header installed in root."""
        env = harness.clean_env()
        env["PKG_CONFIG_PATH"] = str(root / LIBDIR / "pkgconfig")
        env["PKG_CONFIG_SYSROOT_DIR"] = str(root)
        cflags, _ = expect_ok(["pkg-config", "--cflags", "arenashim"], env=env)
        libs, _ = expect_ok(["pkg-config", "--libs", "arenashim"], env=env)
        expect(libs.strip() == "", "pkg-config --libs arenashim: %r (the API is weak: nothing to link)" % libs)
        program = self.tmp / "api_program"
        expect_ok(["gcc", "-O2", "-o", str(program), str(ROOT / "tests/install/api_program.c")] + cflags.split())
        return program


def launcher_check_usage(launcher):
    """--help, --version and the usage errors of an installed launcher."""
    out, err = expect_ok([launcher, "--help"])
    expect(out.startswith("usage: arenashim ") and "man 1 arenashim" in out,
           "--help does not start with the installed usage:\n%s" % out)
    expect("demo" not in out and "built when missing" not in out,
           "--help of the installed launcher offers what only a checkout has:\n%s" % out)
    out, _ = expect_ok([launcher, "--version"])
    expect(out == "arenashim %s\n" % project_version(), "--version printed %r" % out)
    for argv, says in (([], "no command given"), (["--bogus"], "unknown option '--bogus'"),
                       (["--region"], "--region needs a SPEC"), (["--options", "stats"], "expected KEY=VALUE"),
                       (["--region", ""], "--region needs a SPEC")):
        rc, out, err = run_command([launcher] + argv)
        expect(rc == 2, "arenashim %s exited %s, not 2" % (" ".join(argv), harness.describe_status(rc)))
        lines = err.splitlines()
        expect(out == "" and lines and lines[0].startswith("arenashim: ") and says in lines[0],
               "arenashim %s: stderr %r, stdout %r" % (" ".join(argv), err, out))
        expect(lines[-1] == "Try 'arenashim --help'.", "arenashim %s: stderr %r" % (" ".join(argv), err))
    rc, out, err = run_command([launcher, "no-such-command-here"])
    expect(rc == 127 and "no-such-command-here: command not found" in err, "a missing command: %s %r" % (rc, err))


def launcher_check_run(ctx, root):
    """The launcher installed in root runs the program with the library installed there: the
    marker and the API open regions, the output is the plain run's."""
    program = ctx.compile_api_program(root)
    plain, _ = expect_ok([program])
    expect("api: absent\n" in plain and "library: none\n" in plain, "plain run:\n%s" % plain)
    stats = ctx.tmp / "stats.json"
    out, err = expect_ok([root / INSTALLED["launcher"], "--region", "handle", "--options",
                          "stats_json=%s" % stats, "--", program])
    library = (root / INSTALLED["library"]).resolve()
    expect("api: present\n" in out and "library: %s\n" % library in out,
           "under the installed launcher (library %s):\n%s%s" % (library, out, err))
    checksum = [l for l in plain.splitlines() if l.startswith("checksum:")]
    expect(checksum and checksum[0] + "\n" in out, "the work's checksum changed:\n%s\n%s" % (plain, out))
    data = json.loads(stats.read_text())
    markers = {m["spec"]: m for m in data.get("markers", [])}
    expect("handle" in markers and markers["handle"]["resolved"] and markers["handle"]["regions"] == 100,
           "marker handle: %r" % markers.get("handle"))
    expect(data["regions_begun"] == 101, "regions begun %d, not 100 calls and 1 of the API" % data["regions_begun"])
    return program, stats


@case
def installed_files(ctx):
    """meson install puts each part where a user looks for it; nothing installed names the
    checkout, so the installed tree can move."""
    install = ctx.installation()
    for what, relative in INSTALLED.items():
        expect((install.root / relative).is_file(), "meson install did not install %s (%s)" % (relative, what))
    expect(os.access(install.path("launcher"), os.X_OK), "the launcher is not executable")
    for what in ("launcher", "paths", "pkgconfig", "report", "report_html", "discover"):
        text = install.path(what).read_text()
        expect(str(ROOT) not in text, "%s names the checkout %s" % (INSTALLED[what], ROOT))
    paths = install.path("paths").read_text()
    expect("ARENASHIM_LIBDIR='lib/%s'" % MULTIARCH in paths and "ARENASHIM_VERSION='%s'" % project_version() in paths,
           "paths.sh:\n%s" % paths)
    # Moved elsewhere, the tree still runs (the launcher finds its parts relative to itself).
    moved = ctx.tmp / "moved"
    shutil.copytree(install.root, moved, symlinks=True)
    out, _ = expect_ok([moved / INSTALLED["launcher"], "--version"])
    expect(out.startswith("arenashim "), "the moved launcher: %r" % out)
    launcher_check_run(ctx, moved)


@case
def launcher_usage(ctx):
    """The installed launcher: --help, --version, usage errors exit 2 with one reason and a hint,
    a missing command exits 127."""
    launcher_check_usage(ctx.installation().path("launcher"))


@case
def launcher_runs_a_program(ctx):
    """A program built with pkg-config's flags runs without arenashim, and under the installed
    launcher with a marker and the API (regions counted in stats_json)."""
    launcher_check_run(ctx, ctx.installation().root)


@case
def pkg_config(ctx):
    """arenashim.pc: the version, the header's folder, nothing to link, and the preload library's
    path in its `preload` variable."""
    root = ctx.installation().root
    env = harness.clean_env()
    env["PKG_CONFIG_PATH"] = str(root / LIBDIR / "pkgconfig")
    out, _ = expect_ok(["pkg-config", "--modversion", "arenashim"], env=env)
    expect(out.strip() == project_version(), "--modversion %r" % out)
    out, _ = expect_ok(["pkg-config", "--cflags", "arenashim"], env=env)
    expect(out.split() in ([], ["-I/usr/include"]), "--cflags %r (the header is in /usr/include)" % out)
    out, _ = expect_ok(["pkg-config", "--variable=preload", "arenashim"], env=env)
    expect(out.strip() == "/" + INSTALLED["library"], "--variable=preload %r" % out)


@case
def report_installed(ctx):
    """`arenashim report` from the installed tree prints the summary of a saved file, writes its
    HTML page and folded stacks, and refuses a missing one with exit status 2 and one line."""
    install = ctx.installation()
    _, stats = launcher_check_run(ctx, install.root)
    out, _ = expect_ok([install.path("launcher"), "report", stats])
    expect("regions" in out and "handle" in out, "arenashim report:\n%s" % out)
    page = ctx.tmp / "report.html"
    expect_ok([install.path("launcher"), "report", "--html", page, stats])
    html = page.read_text()
    expect(html.lstrip().lower().startswith("<!doctype html") and "handle" in html and "<svg" in html,
           "arenashim report --html wrote %d bytes without the marker's charts" % len(html))
    # Allocation sites are recorded when traced: every allocation of handle's regions here.
    program, traced = ctx.compile_api_program(install.root), ctx.tmp / "traced.json"
    expect_ok([install.path("launcher"), "--region", "handle", "--options",
               "trace_allocs=1,stats_json=%s" % traced, "--", program])
    out, _ = expect_ok([install.path("launcher"), "report", "--folded", traced])
    lines = out.splitlines()
    expect(lines and all(re.fullmatch(r"\S.* \d+", l) for l in lines)
           and any(";" in l and "handle" in l for l in lines), "--folded output:\n%s" % out[:2000])
    rc, out, err = run_command([install.path("launcher"), "report", ctx.tmp / "missing.json"])
    expect(rc == 2 and out == "" and len(err.splitlines()) == 1 and "missing.json" in err,
           "a missing file: exit %s, stderr %r" % (rc, err))


@case
def discover_installed(ctx):
    """`arenashim discover` from the installed tree ranks the program's handle() among its
    proposals (each call allocates 50 objects and frees them all)."""
    install = ctx.installation()
    program = ctx.compile_api_program(install.root)
    out, err = expect_ok([install.path("launcher"), "discover", "--top", "5", "--", program], timeout=120)
    expect(re.search(r"\bhandle\b", out), "discover did not propose handle:\n%s%s" % (out, err[-2000:]))


def rendered_man_page(path):
    env = harness.clean_env()
    env["MANWIDTH"] = "200"
    out, err = expect_ok(["man", "-l", "-P", "cat", str(path)], env=env)
    expect("warning" not in err.lower(), "man -l %s warned:\n%s" % (path, err))
    return re.sub(r".\x08", "", out)


@case
def man_pages(ctx):
    """arenashim(1) renders and names every option of core/options.c and the environment
    variables; arenashim(3) every function of include/arenashim.h."""
    install = ctx.installation()
    page = rendered_man_page(install.path("man1"))
    options = re.findall(r'^\s*\{ "([a-z_]+)", read_', (ROOT / "core/options.c").read_text(), re.M)
    expect(len(options) >= 20, "only %d options found in core/options.c's table" % len(options))
    missing = [o for o in options if not re.search(r"\b%s\b" % o, page)]
    expect(not missing, "arenashim(1) does not name the options %s" % missing)
    for word in ("ARENASHIM_REGIONS", "ARENASHIM_OPTIONS", "LD_PRELOAD", "--region", "--options", "--version",
                 "report", "discover", "EXIT STATUS"):
        expect(word in page, "arenashim(1) does not mention %s" % word)
    page = rendered_man_page(install.path("man3"))
    functions = re.findall(r"\b(arenashim_[a-z_]+)\s*\(", (ROOT / "include/arenashim.h").read_text())
    expect(len(set(functions)) >= 8, "functions of arenashim.h: %s" % sorted(set(functions)))
    missing = sorted(f for f in set(functions) if f not in page)
    expect(not missing, "arenashim(3) does not document %s" % missing)


@case
def debian_package(ctx):
    """scripts/package builds the .deb; apt accepts it; dpkg installs it into a scratch root
    with a database of its own, and the arenashim installed there runs a program."""
    out, err = expect_ok([ROOT / "scripts/package"], timeout=900)
    debs = [l for l in out.splitlines() if l.endswith(".deb")]
    expect(len(debs) == 1 and Path(debs[0]).is_file(), "scripts/package printed:\n%s%s" % (out, err[-2000:]))
    deb = Path(debs[0])
    expect(deb.name == "arenashim_%s_amd64.deb" % project_version(), "the package is named %s" % deb.name)
    fields, _ = expect_ok(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"])
    expect("Package: arenashim\n" in fields and "Version: %s\n" % project_version() in fields
           and "libjemalloc2" in fields and "python3" in fields and "libcapstone4" in fields,
           "control fields:\n%s" % fields)
    contents, _ = expect_ok(["dpkg-deb", "-c", deb])
    listed = {line.split()[-1].lstrip(".").lstrip("/") for line in contents.splitlines()}
    missing = [p for p in INSTALLED.values() if p not in listed and p + ".gz" not in listed]
    expect(not missing, "the package lacks %s" % missing)
    # apt resolves its dependencies on this system (a simulation installs nothing).
    out, err = expect_ok(["apt-get", "install", "-s", "--no-install-recommends", str(deb.resolve())], timeout=120)
    expect(re.search(r"^Inst arenashim ", out, re.M), "apt-get install -s did not plan arenashim:\n%s%s" % (out, err))

    root = ctx.tmp / "root"
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        (root / folder).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "var/lib/dpkg/available").write_text("")
    # The scratch root has no other packages, so its dependencies are the host's.
    expect_ok(["dpkg", "--root=%s" % root, "--force-depends", "--force-script-chrootless", "--install", deb],
              timeout=120)
    out, _ = expect_ok(["dpkg", "--root=%s" % root, "--status", "arenashim"])
    expect("Status: install ok installed" in out, "dpkg --status in the scratch root:\n%s" % out)
    launcher = root / INSTALLED["launcher"]
    launcher_check_usage(launcher)
    launcher_check_run(ctx, root)
    man_page = root / "usr/share/man/man1/arenashim.1.gz"
    expect(man_page.is_file() and "ARENASHIM_REGIONS" in rendered_man_page(man_page), "the packaged arenashim(1)")


def main():
    cases, build = harness.suite_arguments(__doc__.split("\n")[0], CASES, ROOT, name_width=24)
    if cases is None:
        return 0
    build = build.resolve()
    return harness.run_cases(cases, lambda tmp: Context(build, tmp), "arenashim-install-test.")


if __name__ == "__main__":
    sys.exit(main())
