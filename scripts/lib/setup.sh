# shellcheck shell=bash
# scripts/lib/setup.sh — installing what arenashim needs and building it; sourced by
# scripts/test and scripts/arenashim (bash).
#
# The caller sets ARENASHIM_ROOT to the repository root before sourcing.  Functions:
#
#   arenashim_install_packages   installs the missing Debian packages (apt-get update once,
#                                then apt-get install -y); returns non-zero when it cannot.
#   arenashim_build [--quiet]    configures the meson build folder `build` when it is not
#                                configured (or half configured), then runs ninja.  ninja
#                                itself re-runs meson when a meson.build changed.  --quiet
#                                keeps the output unless something fails.  Builds are
#                                serialised with a lock in the build folder, so launchers
#                                started side by side do not run two ninjas at once.
#
# Messages go to stderr, so a launched program's stdout stays its own.

: "${ARENASHIM_ROOT:?ARENASHIM_ROOT must be set before sourcing scripts/lib/setup.sh}"

ARENASHIM_BUILD_DIR="$ARENASHIM_ROOT/build"
ARENASHIM_LIBRARY="$ARENASHIM_BUILD_DIR/preload/libarenashim.so"

# Needed to build and test (sqlite3, strace, binutils and libxml2-utils's xmllint are programs
# the tests run under the preload); libmimalloc-dev and libgoogle-perftools-dev only for
# benchmarks; the lines from gawk on hold the Debian programs of tests/transparency.
ARENASHIM_PACKAGES="meson ninja-build pkg-config gcc g++ binutils libjemalloc-dev libunwind-dev
libcapstone-dev libelf-dev sqlite3 python3 strace libxml2-utils libmimalloc-dev
libgoogle-perftools-dev
gawk mawk m4 cpio bc dc jq bzip2 xz-utils zstd zip unzip git make file diffutils findutils patch
perl tar gzip xxd bsdextrautils openssl"
# scdoc builds the man pages; debhelper builds the Debian package (scripts/package).
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES scdoc debhelper"
# man-db renders the installed man pages in tests/install.
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES man-db"
# gdb: tests/integration starts programs under it (a launcher, like strace).
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES gdb"
# tests/unit relocate_libraries decodes every function of these (libc and libstdc++ are always there).
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES libsqlite3-0 libpython3.11"
# chromium renders the HTML report in tests/reports; Python's own regression tests run with
# markers in tests/peer.
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES chromium libpython3.11-testsuite"
# clang and libFuzzer's runtime (clang-14's, Debian 12): tests/fuzz builds its harnesses with them.
ARENASHIM_PACKAGES="$ARENASHIM_PACKAGES clang libclang-rt-14-dev"

# The words of $1 on one line, separated by single spaces.
_arenashim_words() {
    printf '%s\n' "$1" | tr -s ' \n\t' '   ' | sed 's/^ //; s/ $//'
}

arenashim_say() {
    printf 'arenashim: %s\n' "$*" >&2
}

# Prints the packages of ARENASHIM_PACKAGES that are not installed, one per line.
arenashim_missing_packages() {
    local package
    for package in $ARENASHIM_PACKAGES; do
        if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed'; then
            printf '%s\n' "$package"
        fi
    done
}

arenashim_install_packages() {
    if ! command -v dpkg >/dev/null 2>&1; then
        arenashim_say "warning: not a Debian system (no dpkg): install by hand: $(_arenashim_words "$ARENASHIM_PACKAGES")"
        return 0
    fi
    local missing
    missing=$(arenashim_missing_packages)
    [ -z "$missing" ] && return 0
    missing=$(_arenashim_words "$missing")
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            arenashim_say "error: missing packages: $missing; run as root, or: apt-get install $missing"
            return 1
        fi
    fi
    arenashim_say "installing missing packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get update >&2; then
        arenashim_say "error: apt-get update failed"
        return 1
    fi
    # shellcheck disable=SC2086
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2; then
        arenashim_say "error: apt-get install -y $missing failed"
        return 1
    fi
    missing=$(arenashim_missing_packages)
    if [ -n "$missing" ]; then
        arenashim_say "error: still missing after apt-get install: $(_arenashim_words "$missing")"
        return 1
    fi
    return 0
}

# Runs "$@" with its output on stderr (unless quiet) and in the file $_arenashim_log.
_arenashim_run() {
    if [ "$_arenashim_quiet" = 1 ]; then
        "$@" >>"$_arenashim_log" 2>&1
    else
        "$@" 2>&1 | tee -a "$_arenashim_log" >&2
        return "${PIPESTATUS[0]}"
    fi
}

_arenashim_configure_and_build() {
    local build="$ARENASHIM_BUILD_DIR"
    if [ ! -f "$build/meson-private/coredata.dat" ]; then
        _arenashim_run meson setup "$build" "$ARENASHIM_ROOT" || return 1
    elif [ ! -f "$build/build.ninja" ]; then
        # A setup that was interrupted, or a build.ninja that was removed.
        _arenashim_run meson setup --reconfigure "$build" "$ARENASHIM_ROOT" || return 1
    fi
    if _arenashim_run ninja -C "$build"; then
        return 0
    fi
    # A build folder made by another meson version cannot be regenerated: wipe and retry once.
    if grep -qE 'meson setup --wipe|incompatible with the current version|generated with Meson version' \
        "$_arenashim_log"; then
        arenashim_say "the build folder is from another meson version: wiping it"
        _arenashim_run meson setup --wipe "$build" "$ARENASHIM_ROOT" || return 1
        _arenashim_run ninja -C "$build" || return 1
        return 0
    fi
    return 1
}

arenashim_build() {
    _arenashim_quiet=0
    [ "${1:-}" = --quiet ] && _arenashim_quiet=1
    _arenashim_log=$(mktemp "${TMPDIR:-/tmp}/arenashim-build.XXXXXX") || return 1
    mkdir -p "$ARENASHIM_BUILD_DIR" || return 1
    local status=0
    if command -v flock >/dev/null 2>&1; then
        {
            flock 9 || true
            _arenashim_configure_and_build || status=1
        } 9>"$ARENASHIM_BUILD_DIR/.arenashim-build.lock"
    else
        _arenashim_configure_and_build || status=1
    fi
    if [ "$status" != 0 ]; then
        if [ "$_arenashim_quiet" = 1 ]; then
            cat "$_arenashim_log" >&2
        fi
        arenashim_say "error: the build failed (meson setup / ninja -C build, output above)"
    elif [ ! -f "$ARENASHIM_LIBRARY" ]; then
        arenashim_say "error: the build did not make $ARENASHIM_LIBRARY"
        status=1
    fi
    rm -f "$_arenashim_log"
    return "$status"
}

# The launcher's fast path: the library exists and ninja finds it up to date (or rebuilds it
# without trouble); otherwise install what is missing and set up from scratch.
arenashim_ensure_library() {
    if [ -f "$ARENASHIM_LIBRARY" ] && [ -f "$ARENASHIM_BUILD_DIR/build.ninja" ] &&
        command -v ninja >/dev/null 2>&1 && arenashim_build --quiet 2>/dev/null; then
        return 0
    fi
    arenashim_install_packages || return 1
    arenashim_say "building $ARENASHIM_LIBRARY (meson setup build; ninja -C build)"
    arenashim_build --quiet
}
