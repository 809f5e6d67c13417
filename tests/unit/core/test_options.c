/*
 * test_options.c — ARENASHIM_OPTIONS parsing (core/options.c); never initialises the core.
 *
 * Every key with its valid forms, every key with invalid values (false, and a message that
 * names the key), unknown keys, malformed pairs, a trailing comma, reserve < 4 chunks.
 */
#include "check.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define TIB ((size_t)1 << 40)

static struct options parsed;
static char parse_error[512];

/* Parses text over the defaults. */
static bool parse(const char *text)
{
    options_set_defaults(&parsed);
    memset(parse_error, 0, sizeof parse_error);
    return options_parse(&parsed, text, parse_error, sizeof parse_error);
}

#define CHECK_VALID(text)                                                                     \
    CHECK_MSG(parse(text), "'%s' was refused: %s", text, parse_error)

/* Invalid: refused, with a one-line message that names the culprit. */
#define CHECK_INVALID(text, culprit)                                                          \
    do {                                                                                      \
        bool check_ok_ = parse(text);                                                         \
        CHECK_MSG(!check_ok_, "'%s' was accepted", text);                                     \
        if (!check_ok_) {                                                                     \
            CHECK_MSG(strstr(parse_error, culprit) != NULL,                                   \
                      "error for '%s' does not name '%s': '%s'", text, culprit, parse_error); \
            CHECK_MSG(strchr(parse_error, '\n') == NULL, "error for '%s' is not one line",    \
                      text);                                                                  \
        }                                                                                     \
    } while (0)

static void test_defaults(void)
{
    struct options o;
    char error[64] = "";
    options_set_defaults(&o);
    CHECK_EQ(o.chunk_size, 2 * MIB);
    CHECK((o.chunk_size & (o.chunk_size - 1)) == 0);
    CHECK(o.reserve >= 64 * GIB);
    CHECK(o.reserve >= 4 * o.chunk_size);
    CHECK_EQ(o.on_dangling, ON_DANGLING_ABORT);
    CHECK(!o.partial_reuse);
    CHECK(o.quarantine_max > 0);
    CHECK(o.scan);
    CHECK_EQ(o.exclude_count, 2);
    CHECK(strcmp(o.exclude[0], "libc.so.6") == 0);
    CHECK(strcmp(o.exclude[1], "ld-linux-x86-64.so.2") == 0);
    CHECK(!o.stats);
    CHECK(o.stats_json[0] == '\0');
    CHECK(o.log_path[0] == '\0');
    CHECK_EQ(o.trace_allocs, 0);
    CHECK_EQ(o.verbose, 0);

    /* NULL and "" keep the defaults. */
    struct options copy = o;
    CHECK(options_parse(&o, NULL, error, sizeof error));
    CHECK(memcmp(&o, &copy, sizeof o) == 0);
    CHECK(options_parse(&o, "", error, sizeof error));
    CHECK(memcmp(&o, &copy, sizeof o) == 0);
}

static void test_parse_size(void)
{
    static const struct { const char *text; size_t value; } good[] = {
        { "0", 0 }, { "1", 1 }, { "4096", 4096 }, { "4K", 4 * KIB }, { "4k", 4 * KIB },
        { "1M", MIB }, { "4M", 4 * MIB }, { "4m", 4 * MIB }, { "4MiB", 4 * MIB },
        { "4MB", 4 * MIB }, { "256G", 256 * GIB }, { "256GiB", 256 * GIB }, { "1T", TIB },
        { "64T", 64 * TIB }, { "18446744073709551615", SIZE_MAX },
    };
    static const char *bad[] = {
        "", "M", "K4", "4X", "4MiBx", "4 M", " 4M", "4M ", "-1", "+1", "1.5M", "4iB", "0x10",
        "18446744073709551616", "99999999999999999999", "16777216T", "17179869184G",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t value = 12345;
        bool ok = options_parse_size(good[i].text, strlen(good[i].text), &value);
        CHECK_MSG(ok, "options_parse_size('%s') refused", good[i].text);
        CHECK_MSG(value == good[i].value, "options_parse_size('%s') = %zu, expected %zu",
                  good[i].text, value, good[i].value);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t value = 12345;
        CHECK_MSG(!options_parse_size(bad[i], strlen(bad[i]), &value),
                  "options_parse_size('%s') accepted (%zu)", bad[i], value);
    }
    /* The length bounds the text: "4M" out of "4Mjunk". */
    size_t value = 0;
    CHECK(options_parse_size("4Mjunk", 2, &value));
    CHECK_EQ(value, 4 * MIB);
}

static void test_chunk_size(void)
{
    static const struct { const char *text; size_t value; } good[] = {
        { "chunk_size=1M", MIB }, { "chunk_size=4M", 4 * MIB }, { "chunk_size=4MiB", 4 * MIB },
        { "chunk_size=64K", 64 * KIB }, { "chunk_size=65536", 64 * KIB },
        { "chunk_size=2M", 2 * MIB }, { "chunk_size=1G", GIB },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK_VALID(good[i].text);
        CHECK_MSG(parsed.chunk_size == good[i].value, "%s gave %zu", good[i].text,
                  parsed.chunk_size);
    }
    CHECK_INVALID("chunk_size=3M", "chunk_size");
    CHECK_INVALID("chunk_size=32K", "chunk_size");
    CHECK_INVALID("chunk_size=4096", "chunk_size");
    CHECK_INVALID("chunk_size=2G", "chunk_size");
    CHECK_INVALID("chunk_size=0", "chunk_size");
    CHECK_INVALID("chunk_size=", "chunk_size");
    CHECK_INVALID("chunk_size=abc", "chunk_size");
    CHECK_INVALID("chunk_size=1M5", "chunk_size");
    CHECK_INVALID("chunk_size=100000", "chunk_size");
    CHECK_INVALID("chunk_size=-1M", "chunk_size");
}

static void test_reserve(void)
{
    static const struct { const char *text; size_t value; } good[] = {
        { "reserve=256G", 256 * GIB }, { "reserve=64M", 64 * MIB }, { "reserve=1T", TIB },
        { "reserve=4GiB", 4 * GIB }, { "reserve=64T", 64 * TIB }, { "reserve=1G", GIB },
        { "reserve=100M", 100 * MIB },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK_VALID(good[i].text);
        CHECK_MSG(parsed.reserve == good[i].value, "%s gave %zu", good[i].text, parsed.reserve);
    }
    CHECK_INVALID("reserve=1M", "reserve");
    CHECK_INVALID("reserve=63M", "reserve");
    CHECK_INVALID("reserve=65T", "reserve");
    CHECK_INVALID("reserve=x", "reserve");
    CHECK_INVALID("reserve=", "reserve");
    CHECK_INVALID("reserve=0", "reserve");
}

static void test_reserve_vs_chunks(void)
{
    /* Exactly four chunks is enough; fewer is not, whichever key comes first. */
    CHECK_VALID("chunk_size=16M,reserve=64M");
    CHECK_EQ(parsed.reserve, 64 * MIB);
    CHECK_EQ(parsed.chunk_size, 16 * MIB);
    CHECK_VALID("reserve=64M,chunk_size=16M");
    CHECK_INVALID("chunk_size=32M,reserve=64M", "reserve");
    CHECK_INVALID("reserve=64M,chunk_size=32M", "chunk_size");
    CHECK_INVALID("reserve=1G,chunk_size=1G", "reserve");
    /* Also against the default reserve: a 1G chunk is fine there. */
    CHECK_VALID("chunk_size=1G");
}

static void test_on_dangling(void)
{
    CHECK_VALID("on_dangling=abort");
    CHECK_EQ(parsed.on_dangling, ON_DANGLING_ABORT);
    CHECK_VALID("on_dangling=recover");
    CHECK_EQ(parsed.on_dangling, ON_DANGLING_RECOVER);
    CHECK_VALID("on_dangling=recover,on_dangling=abort");
    CHECK_EQ(parsed.on_dangling, ON_DANGLING_ABORT);
    CHECK_INVALID("on_dangling=Abort", "on_dangling");
    CHECK_INVALID("on_dangling=crash", "on_dangling");
    CHECK_INVALID("on_dangling=", "on_dangling");
    CHECK_INVALID("on_dangling=1", "on_dangling");
}

/* A boolean key: 0/1/on/off (and true/false) parse; others name the key. */
static void check_bool_key(const char *key, size_t offset)
{
    static const struct { const char *value; bool expect; } forms[] = {
        { "1", true }, { "0", false }, { "on", true }, { "off", false },
        { "true", true }, { "false", false },
    };
    static const char *bad[] = { "2", "yes", "", "ON", "01", "-1", "o" };
    char text[128];
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(text, sizeof text, "%s=%s", key, forms[i].value);
        /* Start from the opposite value so a no-op parse cannot pass. */
        options_set_defaults(&parsed);
        *(bool *)((char *)&parsed + offset) = !forms[i].expect;
        bool ok = options_parse(&parsed, text, parse_error, sizeof parse_error);
        CHECK_MSG(ok, "'%s' refused: %s", text, parse_error);
        CHECK_MSG(*(bool *)((char *)&parsed + offset) == forms[i].expect, "'%s' parsed wrong",
                  text);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s=%s", key, bad[i]);
        CHECK_INVALID(text, key);
    }
}

static void test_booleans(void)
{
    check_bool_key("partial_reuse", offsetof(struct options, partial_reuse));
    check_bool_key("huge_pages", offsetof(struct options, huge_pages));
    check_bool_key("scan", offsetof(struct options, scan));
    check_bool_key("stats", offsetof(struct options, stats));
}

static void test_quarantine_max(void)
{
    CHECK_VALID("quarantine_max=1G");
    CHECK_EQ(parsed.quarantine_max, GIB);
    CHECK_VALID("quarantine_max=512M");
    CHECK_EQ(parsed.quarantine_max, 512 * MIB);
    CHECK_VALID("quarantine_max=4096");
    CHECK_EQ(parsed.quarantine_max, 4096);
    CHECK_VALID("quarantine_max=4MiB");
    CHECK_EQ(parsed.quarantine_max, 4 * MIB);
    CHECK_INVALID("quarantine_max=0", "quarantine_max");
    CHECK_INVALID("quarantine_max=", "quarantine_max");
    CHECK_INVALID("quarantine_max=1Q", "quarantine_max");
    CHECK_INVALID("quarantine_max=lots", "quarantine_max");
}

static void test_exclude(void)
{
    CHECK_VALID("exclude=libfoo.so");
    CHECK_EQ(parsed.exclude_count, 1);
    CHECK(strcmp(parsed.exclude[0], "libfoo.so") == 0);

    CHECK_VALID("exclude=libc.so.6:libfoo.so:libbar.so.1");
    CHECK_EQ(parsed.exclude_count, 3);
    CHECK(strcmp(parsed.exclude[0], "libc.so.6") == 0);
    CHECK(strcmp(parsed.exclude[1], "libfoo.so") == 0);
    CHECK(strcmp(parsed.exclude[2], "libbar.so.1") == 0);

    /* A later exclude replaces the list, it does not append to the defaults. */
    CHECK_VALID("exclude=a.so,exclude=b.so");
    CHECK_EQ(parsed.exclude_count, 1);
    CHECK(strcmp(parsed.exclude[0], "b.so") == 0);

    /* The limits: OPTIONS_EXCLUDE_MAX names, OPTIONS_MODULE_NAME_MAX - 1 characters each. */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "exclude=");
    for (int i = 0; i < OPTIONS_EXCLUDE_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%slib%d.so", i ? ":" : "", i);
    CHECK_VALID(text);
    CHECK_EQ(parsed.exclude_count, OPTIONS_EXCLUDE_MAX);
    CHECK(strcmp(parsed.exclude[OPTIONS_EXCLUDE_MAX - 1], "lib15.so") == 0);
    snprintf(text + n, sizeof text - n, ":one-too-many.so");
    CHECK_INVALID(text, "exclude");

    n = (size_t)snprintf(text, sizeof text, "exclude=");
    memset(text + n, 'm', OPTIONS_MODULE_NAME_MAX - 1);
    text[n + OPTIONS_MODULE_NAME_MAX - 1] = '\0';
    CHECK_VALID(text);
    CHECK_EQ(strlen(parsed.exclude[0]), OPTIONS_MODULE_NAME_MAX - 1);
    memset(text + n, 'm', OPTIONS_MODULE_NAME_MAX);
    text[n + OPTIONS_MODULE_NAME_MAX] = '\0';
    CHECK_INVALID(text, "exclude");

    CHECK_INVALID("exclude=", "exclude");
    CHECK_INVALID("exclude=a.so::b.so", "exclude");
    CHECK_INVALID("exclude=:a.so", "exclude");
    CHECK_INVALID("exclude=a.so:", "exclude");
}

static void check_path_key(const char *key, size_t offset)
{
    char text[OPTIONS_PATH_MAX + 64];
    snprintf(text, sizeof text, "%s=/tmp/arenashim-%%p.json", key);
    CHECK_VALID(text);
    CHECK(strcmp((char *)&parsed + offset, "/tmp/arenashim-%p.json") == 0);
    /* '=' inside the value belongs to the value. */
    snprintf(text, sizeof text, "%s=/tmp/a=b", key);
    CHECK_VALID(text);
    CHECK(strcmp((char *)&parsed + offset, "/tmp/a=b") == 0);
    /* OPTIONS_PATH_MAX - 1 characters fit, one more does not. */
    size_t n = (size_t)snprintf(text, sizeof text, "%s=", key);
    memset(text + n, 'p', OPTIONS_PATH_MAX - 1);
    text[n + OPTIONS_PATH_MAX - 1] = '\0';
    CHECK_VALID(text);
    CHECK_EQ(strlen((char *)&parsed + offset), OPTIONS_PATH_MAX - 1);
    memset(text + n, 'p', OPTIONS_PATH_MAX);
    text[n + OPTIONS_PATH_MAX] = '\0';
    CHECK_INVALID(text, key);
    snprintf(text, sizeof text, "%s=", key);
    CHECK_INVALID(text, key);
}

static void test_paths(void)
{
    check_path_key("stats_json", offsetof(struct options, stats_json));
    check_path_key("log_path", offsetof(struct options, log_path));
    check_path_key("discover_json", offsetof(struct options, discover_json));
}

static void test_discover(void)
{
    CHECK_VALID("verbose=0");
    CHECK_EQ(parsed.discover, 0); /* off unless asked */
    CHECK_VALID("discover=1");
    CHECK_EQ(parsed.discover, 1);
    CHECK_VALID("discover=64");
    CHECK_EQ(parsed.discover, 64);
    CHECK_VALID("discover=1073741824");
    CHECK_EQ(parsed.discover, (uint64_t)1 << 30);
    CHECK_INVALID("discover=1073741825", "discover");
    CHECK_INVALID("discover=-1", "discover");
    CHECK_INVALID("discover=x", "discover");
    CHECK_INVALID("discover=", "discover");
    CHECK_INVALID("discover=64K", "discover");
}

static void test_trace_allocs(void)
{
    CHECK_VALID("trace_allocs=0");
    CHECK_EQ(parsed.trace_allocs, 0);
    CHECK_VALID("trace_allocs=1");
    CHECK_EQ(parsed.trace_allocs, 1);
    CHECK_VALID("trace_allocs=100");
    CHECK_EQ(parsed.trace_allocs, 100);
    CHECK_VALID("trace_allocs=1000000000000");
    CHECK_EQ(parsed.trace_allocs, 1000000000000ull);
    CHECK_INVALID("trace_allocs=-1", "trace_allocs");
    CHECK_INVALID("trace_allocs=x", "trace_allocs");
    CHECK_INVALID("trace_allocs=", "trace_allocs");
    CHECK_INVALID("trace_allocs=1K", "trace_allocs");
    CHECK_INVALID("trace_allocs=123456789012345678901", "trace_allocs");
}

static void test_verbose(void)
{
    for (unsigned v = 0; v <= 2; v++) {
        char text[32];
        snprintf(text, sizeof text, "verbose=%u", v);
        CHECK_VALID(text);
        CHECK_EQ(parsed.verbose, v);
    }
    CHECK_INVALID("verbose=3", "verbose");
    CHECK_INVALID("verbose=x", "verbose");
    CHECK_INVALID("verbose=", "verbose");
    CHECK_INVALID("verbose=-1", "verbose");
    CHECK_INVALID("verbose=99999999999999999999", "verbose");
}

static void test_kernel_features(void)
{
    CHECK_VALID("verbose=0");
    CHECK(!parsed.kernel_features_off); /* default: auto */
    CHECK(parsed.huge_pages);           /* default: asked for */
    CHECK_VALID("kernel_features=none");
    CHECK(parsed.kernel_features_off);
    CHECK_VALID("kernel_features=none,kernel_features=auto");
    CHECK(!parsed.kernel_features_off);
    CHECK_INVALID("kernel_features=old", "kernel_features");
    CHECK_INVALID("kernel_features=", "kernel_features");
    CHECK_INVALID("kernel_features=NONE", "kernel_features");
}

static void test_scan_options(void)
{
    CHECK_VALID("verbose=0");
    CHECK_EQ(parsed.scan_mode, SCAN_MODE_AUTO);
    CHECK_EQ(parsed.scan_threads, 0); /* the online CPUs */
    CHECK_VALID("scan_mode=stop,scan_threads=3");
    CHECK_EQ(parsed.scan_mode, SCAN_MODE_STOP);
    CHECK_EQ(parsed.scan_threads, 3);
    CHECK_VALID("scan_mode=stop,scan_mode=auto,scan_threads=16");
    CHECK_EQ(parsed.scan_mode, SCAN_MODE_AUTO);
    CHECK_EQ(parsed.scan_threads, 16);
    CHECK_INVALID("scan_mode=concurrent", "scan_mode");
    CHECK_INVALID("scan_mode=", "scan_mode");
    CHECK_INVALID("scan_threads=17", "scan_threads");
    CHECK_INVALID("scan_threads=-1", "scan_threads");
    CHECK_INVALID("scan_threads=", "scan_threads");
}

static void test_all_keys_together(void)
{
    CHECK_VALID("chunk_size=4M,reserve=1T,on_dangling=recover,partial_reuse=1,"
                "quarantine_max=2G,scan=off,exclude=libx.so:liby.so,stats=1,"
                "stats_json=/tmp/s.json,log_path=/tmp/log,trace_allocs=7,verbose=2");
    CHECK_EQ(parsed.chunk_size, 4 * MIB);
    CHECK_EQ(parsed.reserve, TIB);
    CHECK_EQ(parsed.on_dangling, ON_DANGLING_RECOVER);
    CHECK(parsed.partial_reuse);
    CHECK_EQ(parsed.quarantine_max, 2 * GIB);
    CHECK(!parsed.scan);
    CHECK_EQ(parsed.exclude_count, 2);
    CHECK(strcmp(parsed.exclude[1], "liby.so") == 0);
    CHECK(parsed.stats);
    CHECK(strcmp(parsed.stats_json, "/tmp/s.json") == 0);
    CHECK(strcmp(parsed.log_path, "/tmp/log") == 0);
    CHECK_EQ(parsed.trace_allocs, 7);
    CHECK_EQ(parsed.verbose, 2);
    /* Later values win. */
    CHECK_VALID("chunk_size=4M,chunk_size=1M");
    CHECK_EQ(parsed.chunk_size, 1 * MIB);
}

static void test_unknown_and_malformed(void)
{
    CHECK_INVALID("foo=1", "foo");
    CHECK_INVALID("chunk_sizes=1M", "chunk_sizes");
    CHECK_INVALID("Chunk_size=1M", "Chunk_size");
    CHECK_INVALID("chunk_size=1M,bogus_key=2", "bogus_key");
    CHECK_INVALID(" chunk_size=1M", " chunk_size");
    /* Not key=value. */
    CHECK_INVALID("chunk_size", "chunk_size");
    CHECK_INVALID("chunk_size=1M,scan", "scan");
    CHECK_INVALID("=1M", "=1M");
    CHECK_INVALID("garbage", "garbage");
    /* Empty entries and a trailing comma. */
    CHECK_INVALID(",chunk_size=1M", "ARENASHIM_OPTIONS");
    CHECK_INVALID("chunk_size=1M,,scan=on", "ARENASHIM_OPTIONS");
    CHECK_INVALID(",", "ARENASHIM_OPTIONS");
    CHECK_INVALID("chunk_size=1M,", "trailing");
    CHECK_INVALID("scan=on,chunk_size=1M,", "chunk_size=1M,");
    /* The bad value of a later pair. */
    CHECK_INVALID("chunk_size=1M,reserve=", "reserve");
    CHECK_INVALID("scan=on,verbose=7,stats=1", "verbose");
}

static void test_error_buffer(void)
{
    /* A short error buffer is filled and terminated, never overrun. */
    struct options o;
    char small[16];
    memset(small, 'X', sizeof small);
    options_set_defaults(&o);
    CHECK(!options_parse(&o, "chunk_size=3M", small, 8));
    CHECK(memchr(small, '\0', 8) != NULL);
    CHECK(all_bytes_are(small + 8, 8, 'X'));
}

static void test_secure_execution(void)
{
    /* The keys a less privileged user could use against a setuid process are reset and named;
     * the rest stay as parsed. */
    char dropped[128];
    REQUIRE(parse("log_path=/tmp/x.log,stats_json=/tmp/s.json,on_dangling=recover,partial_reuse=1,"
                  "chunk_size=4M,stats=1,verbose=1,scan=off"));
    CHECK_EQ(options_restrict_for_secure_execution(&parsed, dropped, sizeof dropped), 4);
    CHECK(strcmp(dropped, "log_path, stats_json, on_dangling, partial_reuse") == 0);
    CHECK_EQ(parsed.log_path[0], '\0');
    CHECK_EQ(parsed.stats_json[0], '\0');
    CHECK_EQ(parsed.on_dangling, ON_DANGLING_ABORT);
    CHECK(!parsed.partial_reuse);
    CHECK_EQ(parsed.chunk_size, 4 * MIB);
    CHECK(parsed.stats);
    CHECK_EQ(parsed.verbose, 1);
    CHECK(!parsed.scan);
    /* Only what was set is named; nothing set, nothing dropped. */
    REQUIRE(parse("stats_json=/tmp/s.json"));
    CHECK_EQ(options_restrict_for_secure_execution(&parsed, dropped, sizeof dropped), 1);
    CHECK(strcmp(dropped, "stats_json") == 0);
    REQUIRE(parse("stats=1"));
    CHECK_EQ(options_restrict_for_secure_execution(&parsed, dropped, sizeof dropped), 0);
    CHECK_EQ(dropped[0], '\0');
    /* discover's results are a file write like stats_json's. */
    REQUIRE(parse("discover=64,discover_json=/tmp/d.json"));
    CHECK_EQ(options_restrict_for_secure_execution(&parsed, dropped, sizeof dropped), 1);
    CHECK(strcmp(dropped, "discover_json") == 0);
    CHECK_EQ(parsed.discover_json[0], '\0');
    CHECK_EQ(parsed.discover, 64);
    /* A short buffer is cut, never overrun. */
    char tiny[6];
    memset(tiny, 'x', sizeof tiny);
    REQUIRE(parse("log_path=/a,stats_json=/b"));
    CHECK_EQ(options_restrict_for_secure_execution(&parsed, tiny, 5), 2);
    CHECK_EQ(tiny[5], 'x');
    CHECK(strlen(tiny) < 5);
}

static void test_given_flags(void)
{
    /* Whether reserve and quarantine_max were given decides whether the core may shrink them. */
    REQUIRE(parse(""));
    CHECK(!parsed.reserve_given && !parsed.quarantine_max_given);
    REQUIRE(parse("reserve=64G,quarantine_max=2G"));
    CHECK(parsed.reserve_given && parsed.quarantine_max_given);
}

static void test_error_one_line(void)
{
    /* The message quotes the user's text; a control character in it (here a newline that
     * would forge a line of output) is shown as '?' (tests/fuzz/options/regressions). */
    static const char *const texts[] = { "stats=1,bad\nkey=1", "verbose=1\n2", "a\x1b[2Jb",
                                         "stats=1,\r,", "log_path=\x7f,stats" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        CHECK_MSG(!parse(texts[i]), "'%s' was accepted", texts[i]);
        CHECK(strncmp(parse_error, "ARENASHIM_OPTIONS: ", 19) == 0);
        for (const char *c = parse_error; *c; c++)
            CHECK_MSG((unsigned char)*c >= 0x20 && *c != 0x7f, "control byte 0x%02x in '%s'", *c, parse_error);
    }
    CHECK(!parse("bad\nkey=1"));
    CHECK(strstr(parse_error, "'bad?key'") != NULL);
}

static const struct test_case cases[] = {
    TEST_CASE(secure_execution),
    TEST_CASE(given_flags),
    TEST_CASE(defaults),
    TEST_CASE(parse_size),
    TEST_CASE(chunk_size),
    TEST_CASE(reserve),
    TEST_CASE(reserve_vs_chunks),
    TEST_CASE(on_dangling),
    TEST_CASE(booleans),
    TEST_CASE(quarantine_max),
    TEST_CASE(exclude),
    TEST_CASE(paths),
    TEST_CASE(trace_allocs),
    TEST_CASE(discover),
    TEST_CASE(verbose),
    TEST_CASE(kernel_features),
    TEST_CASE(scan_options),
    TEST_CASE(all_keys_together),
    TEST_CASE(unknown_and_malformed),
    TEST_CASE(error_buffer),
    TEST_CASE(error_one_line),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
